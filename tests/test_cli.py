"""End-to-end: the real CLI against the Okta emulator over loopback sockets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from owf_runner.emulator import Emulator, Fault, FlowStub
from tests.conftest import DATA, Cli, assert_not_leaked, ec_key, jwt_segments, pem, rsa_key

ROOT = Path(__file__).parent.parent
TWO_ORGS = str(DATA / "two_orgs.yaml")
RunCli = Callable[..., Cli]


@pytest.fixture
def two_orgs(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator set up for tests/data/two_orgs.yaml, keys in the environment."""
    acme, globex = rsa_key(), ec_key("P-256")
    monkeypatch.setenv("OWF_TEST_ACME_KEY", pem(acme))
    monkeypatch.setenv("OWF_TEST_GLOBEX_KEY", pem(globex, "sec1"))
    emulator.register_client("0oaACME", "acme-kid", acme.as_dict(private=False))
    emulator.register_client("0oaGLOBEX", "globex-kid", globex.as_dict(private=False))
    emulator.set_stub("create", FlowStub(body={"id": "00u-{{ request.body.firstName }}"}))
    emulator.set_stub("lookup", FlowStub(body={"manager": "boss-of-{{ request.body.userId }}"}))
    return emulator


def body(call: Any) -> Any:
    return json.loads(call.body)


def test_two_org_job_gets_one_token_per_org(two_orgs: Emulator, cli: RunCli) -> None:
    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url)

    assert result.code == 0, result.err
    clients = sorted(str(call.client_id) for call in two_orgs.token_requests())
    assert clients == ["0oaACME", "0oaGLOBEX"]
    assert [call.flow_id for call in two_orgs.invocations()] == ["create", "lookup", "notify"]


def test_assertions_carry_kid_aud_exp_and_unique_jti(two_orgs: Emulator, cli: RunCli) -> None:
    assert cli(TWO_ORGS, "--emulator", two_orgs.base_url).code == 0

    seen: dict[str, dict[str, Any]] = {}
    for call in two_orgs.token_requests():
        form = dict(pair.split("=", 1) for pair in call.body.decode().split("&"))
        header, claims = jwt_segments(form["client_assertion"])
        seen[str(claims["iss"])] = {"header": header, "claims": claims}
    acme, globex = seen["0oaACME"], seen["0oaGLOBEX"]
    assert acme["header"]["kid"] == "acme-kid"
    assert acme["header"]["alg"] == "RS256"
    assert globex["header"]["alg"] == "ES256"
    assert acme["claims"]["aud"] == "https://acme.okta.com/oauth2/v1/token"
    assert globex["claims"]["aud"] == "https://globex.okta.com/oauth2/v1/token"
    assert acme["claims"]["sub"] == "0oaACME"
    lifetime = int(acme["claims"]["exp"]) - int(acme["claims"]["iat"])
    assert 60 <= lifetime <= 300
    assert acme["claims"]["jti"] != globex["claims"]["jti"]


def test_outputs_pass_across_steps_and_orgs_with_native_types(
    two_orgs: Emulator, cli: RunCli
) -> None:
    assert cli(TWO_ORGS, "--emulator", two_orgs.base_url).code == 0

    create, lookup, notify = two_orgs.invocations()
    assert body(create) == {
        "firstName": "Ada",
        "groups": ["eng", "ops"],
        "count": 3,
        "active": True,
        "meta": {"team": "core"},
        "nothing": None,
        "label": "n=3",
    }
    assert lookup.host == "globex.workflows.okta.com"
    assert body(lookup) == {"userId": "00u-Ada"}
    assert body(notify) == {"userId": "00u-Ada", "manager": "boss-of-00u-Ada", "audit": "skipped"}


def test_when_false_skips_the_step_and_the_summary_says_so(two_orgs: Emulator, cli: RunCli) -> None:
    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url)

    assert "audit" not in {call.flow_id for call in two_orgs.invocations()}
    assert _summary_row(result.out, "audit") == ["audit", "skipped", "0"]
    assert _summary_row(result.out, "notify") == ["notify", "succeeded", "1"]


def test_var_overrides_job_vars(two_orgs: Emulator, cli: RunCli) -> None:
    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url, "--var", "first_name=Grace")

    assert result.code == 0
    assert body(two_orgs.invocations("create")[0])["firstName"] == "Grace"


def test_expectation_failure_exits_1_and_later_steps_do_not_run(
    two_orgs: Emulator, cli: RunCli
) -> None:
    two_orgs.set_stub("lookup", FlowStub(status=404, body={"error": "no such user"}))

    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url)

    assert result.code == 1
    assert [call.flow_id for call in two_orgs.invocations()] == ["create", "lookup"]
    assert "lookup: failed (1 attempt" in result.out
    assert 'HTTP 404 (expected 2xx): {"error": "no such user"}' in result.out
    assert _summary_row(result.out, "notify") == ["notify", "not", "run", "0"]


def test_expect_that_false_fails_the_step(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    job = _none_job(tmp_path, 'expect: {that: ["{{ response.body.ok }}"]}')
    emulator.set_stub("one", FlowStub(body={"ok": False}, security="none"))

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 1
    assert "one: failed (1 attempt" in result.out
    assert "expectation failed: {{ response.body.ok }}" in result.out


def test_continue_on_error_runs_later_steps(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = _none_job(tmp_path, "continue_on_error: true", second=True)
    emulator.set_stub("one", FlowStub(status=400, security="none"))
    emulator.set_stub("two", FlowStub(security="none"))

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0
    assert [call.flow_id for call in emulator.invocations()] == ["one", "two"]
    assert _summary_row(result.out, "one")[:2] == ["one", "failed"]


def test_redirect_is_a_failure_naming_the_location(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = _none_job(tmp_path, "")
    stub = FlowStub(
        status=302, headers={"Location": "https://elsewhere.example/x"}, security="none"
    )
    emulator.set_stub("one", stub)

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 1
    assert (
        "HTTP 302 redirect to https://elsewhere.example/x; redirects are not followed" in result.out
    )
    assert len(emulator.calls) == 1


def test_foreach_items_share_one_token(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    key = rsa_key()
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    emulator.set_stub("each", FlowStub(faults=(Fault(times=1, delay=0.2),)))
    job = tmp_path / "each.yaml"
    job.write_text(
        _jwt_job(pem(key)).replace(
            "    payload: {n: 1}",
            '    foreach: "{{ range(20) | list }}"\n    concurrency: 8\n    rate_limit: 1000/s\n'
            '    payload: {n: "{{ item }}"}\n'
            '    outputs: {n: "{{ response.body.n }}"}',
        )
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out + result.err
    assert len(emulator.token_requests()) == 1
    assert sorted(body(call)["n"] for call in emulator.invocations()) == list(range(20))


def test_a_401_refreshes_the_token_once_with_a_new_jti(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    key = ec_key("P-384")
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    unauthorized = Fault(times=1, status=401, body={"error": "invalid_token"})
    emulator.set_stub("each", FlowStub(faults=(unauthorized,)))
    job = tmp_path / "job.yaml"
    job.write_text(_jwt_job(pem(key, "sec1")))

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out
    tokens = emulator.token_requests()
    assert len(tokens) == 2
    assert tokens[0].jti != tokens[1].jti
    assert [call.status for call in emulator.invocations()] == [401, 200]


@pytest.mark.parametrize(
    ("make_key", "text"),
    [
        (rsa_key, lambda k: pem(k, "pkcs8")),
        (rsa_key, lambda k: pem(k, "pkcs1")),
        (lambda: ec_key("P-256"), lambda k: pem(k, "sec1")),
        (lambda: ec_key("P-384"), lambda k: pem(k, "pkcs8")),
        (
            lambda: ec_key("P-521"),
            lambda k: json.dumps({**k.as_dict(private=True), "kid": "kid-x"}),
        ),
        (rsa_key, lambda k: json.dumps({**k.as_dict(private=True), "kid": "kid-x"})),
    ],
    ids=["rsa-pkcs8", "rsa-pkcs1", "ec256-sec1", "ec384-pkcs8", "ec521-jwk", "rsa-jwk"],
)
def test_rsa_and_ec_keys_in_every_format_authenticate(
    tmp_path: Path,
    emulator: Emulator,
    cli: RunCli,
    make_key: Callable[[], RSAKey | ECKey],
    text: Callable[[Any], str],
) -> None:
    key = make_key()
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    key_file = tmp_path / "key.pem"
    key_file.write_text(text(key))
    key_file.chmod(0o600)
    job = tmp_path / "job.yaml"
    job.write_text(_jwt_job(None).replace("{env: OWF_TEST_KEY}", "{file: key.pem}"))

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out + result.err
    assert len(emulator.token_requests()) == 1
    assert emulator.invocations()[0].status == 200


def test_client_token_credential_sends_the_header(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "client-token-canary-7d1f")
    emulator.register_client_token("client-token-canary-7d1f")
    emulator.set_stub("one", FlowStub(security="client_token"))
    job = (
        _none_job(tmp_path, "")
        .read_text()
        .replace(
            "none_cred: {type: none}", "none_cred: {type: client_token, token: {env: HOOK_TOKEN}}"
        )
    )
    (tmp_path / "job.yaml").write_text(job)

    result = cli(str(tmp_path / "job.yaml"), "--emulator", emulator.base_url, "--verbose")

    assert result.code == 0, result.out
    (call,) = emulator.invocations()
    assert call.headers["x-api-client-token"] == "client-token-canary-7d1f"
    assert "authorization" not in call.headers
    assert "clientToken" not in call.query
    assert emulator.token_requests() == []
    assert "client-token-canary" not in result.out + result.err


def test_none_credential_sends_no_auth(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    emulator.set_stub("one", FlowStub(security="none"))

    result = cli(str(_none_job(tmp_path, "")), "--emulator", emulator.base_url)

    assert result.code == 0
    (call,) = emulator.invocations()
    assert "authorization" not in call.headers
    assert "x-api-client-token" not in call.headers


def test_refused_token_exits_4_with_okta_error_and_hint(
    emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_ACME_KEY", pem(rsa_key()))  # never uploaded to the "app"
    monkeypatch.setenv("OWF_TEST_GLOBEX_KEY", pem(rsa_key()))

    result = cli(TWO_ORGS, "--emulator", emulator.base_url)

    assert result.code == 4
    assert "token request to https://acme.okta.com/oauth2/v1/token (client 0oaACME) refused: "
    assert "refused: invalid_client" in result.err
    assert "hint: check `client_id` and `key_id` (kid)" in result.err
    assert emulator.invocations() == []


def test_invalid_job_exits_3_and_sends_nothing(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = tmp_path / "bad.yaml"
    job.write_text(
        _none_job(tmp_path, "").read_text().replace("payload: {n: 1}", "payload: 1\n    retyr: {}")
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 3
    assert result.err == f"{job}:12:5: steps[0].retyr: unknown key 'retyr'; did you mean 'retry'?\n"
    assert emulator.calls == []


def test_missing_secret_exits_3_naming_the_reference_line(
    emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_ACME_KEY", raising=False)
    monkeypatch.setenv("OWF_TEST_GLOBEX_KEY", pem(rsa_key()))

    result = cli(TWO_ORGS, "--emulator", emulator.base_url)

    assert result.code == 3
    assert result.err == (
        f"{TWO_ORGS}:25:5: credentials.acme_jwt.private_key: "
        "environment variable OWF_TEST_ACME_KEY is not set (to rehearse: --emulate)\n"
    )
    assert emulator.calls == []


def test_usage_errors_exit_2(cli: RunCli) -> None:
    assert cli(TWO_ORGS, "--no-such-option").code == 2
    assert cli(TWO_ORGS, "--var", "no_equals_sign").code == 2


def test_unexpected_exception_exits_70_with_a_log_file(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom-7f3a")

    monkeypatch.setattr("owf_runner.commands.run_job", explode)

    result = cli(TWO_ORGS)

    assert result.code == 70
    assert result.err.startswith("owf-run: internal error (a bug in owf-runner); details in ")
    log = Path(result.err.rsplit(" ", 1)[-1].strip())
    assert log.parent == tmp_path / "state" / "logs"
    assert "RuntimeError: boom-7f3a" in log.read_text()
    assert "boom-7f3a" not in result.err


def test_no_secret_reaches_any_output(
    two_orgs: Emulator, cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flows echo the credentials back, so a careless --verbose would print them.
    echo_auth = {"seen": "{{ request.headers.authorization }}", "n": 1}
    two_orgs.set_stub("create", FlowStub(body={**echo_auth, "id": "00u1"}))
    two_orgs.set_stub("notify", FlowStub(body=echo_auth))

    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url, "--verbose")

    assert result.code == 0, result.err
    printed = result.out + result.err
    assert '"seen": "Bearer ********"' in printed  # the echoed header was there, masked
    bearer = two_orgs.invocations()[0].headers["authorization"].removeprefix("Bearer ")
    keys = os.environ["OWF_TEST_ACME_KEY"], os.environ["OWF_TEST_GLOBEX_KEY"]
    assert_not_leaked(result, bearer, *keys)


def test_schema_command_matches_the_committed_file(cli: RunCli) -> None:
    result = cli("schema")

    assert result.code == 0
    committed = (ROOT / "schemas" / "job.schema.json").read_text()
    assert result.out == committed, "schemas/job.schema.json is stale: owf-run schema > it"


def test_validate_accepts_every_sample_job(cli: RunCli) -> None:
    jobs = sorted(str(p) for p in (ROOT / "jobs").glob("*.yaml"))

    result = cli("validate", *jobs)

    assert jobs
    assert result.code == 0, result.err
    assert result.out.count(": ok\n") == len(jobs)


def test_sample_job_runs_green_with_emulate_from_the_console_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_")}
    env["OWF_STATE_DIR"] = str(tmp_path)
    script = shutil.which("owf-run", path=str(Path(sys.executable).parent))
    assert script, "the owf-run console script is installed next to python"

    done = subprocess.run(
        [script, "jobs/onboarding.yaml", "--emulate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert ": succeeded\n" in done.stdout
    assert _summary_row(done.stdout, "add_to_apps") == ["add_to_apps", "succeeded", "3"]


# -- helpers -------------------------------------------------------------------


def _summary_row(out: str, step: str) -> list[str]:
    table = out[out.index("STEP ") :]
    rows = [line.split() for line in table.splitlines()]
    return next(row[:-1] for row in rows if row and row[0] == step)


def _none_job(tmp_path: Path, extra: str, second: bool = False) -> Path:
    text = f"""version: 1
orgs:
  local:
    domain: acme.okta.com
    credential: none_cred
credentials:
  none_cred: {{type: none}}
steps:
  - id: one
    flow: https://acme.workflows.okta.com/api/flo/one/invoke
    payload: {{n: 1}}
    {extra}
"""
    if second:
        text += "  - id: two\n    flow: https://acme.workflows.okta.com/api/flo/two/invoke\n"
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def _jwt_job(key_pem: str | None) -> str:
    if key_pem is not None:
        os.environ["OWF_TEST_KEY"] = key_pem
    return """version: 1
orgs:
  acme: {domain: acme.okta.com, credential: jwt}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaX, key_id: kid-x, private_key: {env: OWF_TEST_KEY}}
steps:
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/each/invoke
    payload: {n: 1}
"""


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(15, 143, "terminated"), (2, 130, "interrupted")]
)
def test_a_signal_mid_run_exits_with_its_code(
    tmp_path: Path, emulator: Emulator, signum: int, code: int, word: str
) -> None:
    emulator.set_stub("one", FlowStub(security="none", faults=(Fault(delay=30),)))
    job = _none_job(tmp_path, "")
    script = shutil.which("owf-run", path=str(Path(sys.executable).parent))
    assert script
    env = {**os.environ, "OWF_STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen(
        [script, str(job), "--emulator", emulator.base_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(200):  # until the request is in flight (at most 20 s)
            if emulator.invocations():
                break
            time.sleep(0.1)
        assert emulator.invocations(), "the run never sent its request"
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == code
    assert err.endswith(f"owf-run: {word}\n")


def test_quiet_prints_only_the_summary(two_orgs: Emulator, cli: RunCli) -> None:
    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url, "--quiet")

    assert result.code == 0
    assert result.out.splitlines()[0].startswith("run ")
    assert "started" not in result.out
    assert _summary_row(result.out, "notify") == ["notify", "succeeded", "1"]


def test_two_orgs_with_the_same_app_share_one_token(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa_key()
    monkeypatch.setenv("OWF_TEST_KEY", pem(key))
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    job = tmp_path / "job.yaml"
    job.write_text(
        _jwt_job(None)
        .replace(
            "  acme: {domain: acme.okta.com, credential: jwt}\n",
            "  acme: {domain: acme.okta.com, credential: jwt}\n"
            "  acme_again: {domain: acme.okta.com, credential: jwt2}\n",
        )
        .replace(
            "credentials:\n",
            "credentials:\n  jwt2: {type: private_key_jwt, client_id: 0oaX, key_id: kid-x,"
            " private_key: {env: OWF_TEST_KEY}}\n",
        )
        + "    org: acme\n  - id: again\n    org: acme_again\n"
        "    flow: https://acme.workflows.okta.com/api/flo/each/invoke\n"
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.err
    assert len(emulator.token_requests()) == 1
    assert len(emulator.invocations()) == 2
