"""End-to-end: the real CLI against the Okta emulator over loopback sockets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from owf_runner import runcmd
from owf_runner.auth import TOKEN_ATTEMPTS
from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.redaction import MASK
from owf_runner.report import ConsoleReporter
from tests.conftest import (
    DATA,
    Cli,
    assert_not_leaked,
    ec_key,
    encodings,
    jwt_segments,
    pem,
    rsa_key,
)
from tests.fakes import FakeClock, run_commands_on

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

    assert result.code == 0, result.out
    assert [call.flow_id for call in emulator.invocations()] == ["one", "two"]
    assert re.search(r"^\S+ one: failed \(ignored\) \(1 attempt, ", result.out, re.MULTILINE)
    assert re.search(r"^run \S+ of job: succeeded with 1 ignored failure$", result.out, re.M)
    assert _summary_row(result.out, "one") == ["one", "failed", "(ignored)", "1"]
    assert _summary_row(result.out, "two") == ["two", "succeeded", "1"]


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


def test_foreach_items_share_one_token(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa_key()
    monkeypatch.setenv("OWF_TEST_KEY", pem(key))
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    emulator.set_stub("each", FlowStub(faults=(Fault(times=1, delay=0.2),)))
    job = tmp_path / "each.yaml"
    job.write_text(
        _jwt_job().replace(
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
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ec_key("P-384")
    monkeypatch.setenv("OWF_TEST_KEY", pem(key, "sec1"))
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    unauthorized = Fault(times=1, status=401, body={"error": "invalid_token"})
    emulator.set_stub("each", FlowStub(faults=(unauthorized,)))
    job = tmp_path / "job.yaml"
    job.write_text(_jwt_job())

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
    job.write_text(_jwt_job().replace("{env: OWF_TEST_KEY}", "{file: key.pem}"))

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
    assert "token request to https://acme.okta.com/oauth2/v1/token (client 0oaACME) refused: " in (
        result.err
    )
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
    two_orgs: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom-7f3a")

    monkeypatch.setattr(runcmd, "execute", explode)

    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url)

    assert result.code == 70
    assert two_orgs.calls == []
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


def _jwt_job() -> str:
    """A one-step OAuth job; its key is the PEM in OWF_TEST_KEY."""
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
    ("signum", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_a_signal_mid_run_exits_with_its_code(
    tmp_path: Path, signum: int, code: int, word: str
) -> None:
    job = _none_job(tmp_path, "")
    script = shutil.which("owf-run", path=str(Path(sys.executable).parent))
    assert script
    env = {**os.environ, "OWF_STATE_DIR": str(tmp_path / "state")}
    # A listener that never answers stands in for a flow that runs for ever. Its timeouts
    # only bound a hang: accept() and recv() return as soon as the child connects and sends.
    with socket.create_server(("127.0.0.1", 0)) as flow:
        flow.settimeout(60)
        url = f"http://127.0.0.1:{flow.getsockname()[1]}"
        command = [script, str(job), "--emulator", url, "--grace", "0.2"]
        with _sigint_not_ignored(), _popen(command, env) as process:
            connection, _ = flow.accept()
            with connection:
                request = _read_request(connection)
                process.send_signal(signum)  # at once: the request may still be in asyncio's hands
                out, err = process.communicate(timeout=60)

    assert request.startswith(b"POST /api/flo/one/invoke ")
    assert "one: started" in out
    assert process.returncode == code, out + err
    # The request in flight was let go after the grace period: its outcome is unknown.
    assert "one: failed (1 attempt, " in out
    assert "1 invocation may have run the flow and was not sent again: one." in out
    assert err == f"owf-run: {word}; finish the job with: owf-run {job} --resume\n"


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Start children with SIGINT at its default.

    A process started in the background by a non-interactive shell (``pytest ... &`` in a
    script, some CI runners) ignores SIGINT, its children inherit that, and Python then
    never raises KeyboardInterrupt: the child would sit out the signal. A handled signal is
    reset to its default across exec, so handling it here for the moment of the fork does.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _popen(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A child that is always reaped, its pipes closed, whatever the test asserts.

    A child left running with open pipes makes a ResourceWarning when garbage collected,
    which `filterwarnings = error` turns into a failure of whichever test runs then.
    """
    pipe = subprocess.PIPE
    with subprocess.Popen(args, stdout=pipe, stderr=pipe, text=True, env=env) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


def _read_request(connection: socket.socket) -> bytes:
    """One whole HTTP request (headers and Content-Length body) from ``connection``."""
    connection.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        data += _receive(connection)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    while length and len(body) < int(length[1]):
        body += _receive(connection)
    return data


def _receive(connection: socket.socket) -> bytes:
    chunk = connection.recv(65536)
    if not chunk:
        raise AssertionError("the run closed the connection before its request was whole")
    return chunk


def test_an_unreachable_token_endpoint_fails_its_step_and_the_rest_do_not_run(
    tmp_path: Path, cli: RunCli, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = fake_clock
    run_commands_on(clock, monkeypatch)  # the backoff between tries is recorded, not slept
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OWF_TEST_KEY", pem(ec_key("P-256")))
    # Bound but never listening: every connection is refused, and the port stays ours.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{closed.getsockname()[1]}"
        job = tmp_path / "job.yaml"
        job.write_text(
            _jwt_job()
            .replace("{domain: acme.okta.com,", f"{{token_url: '{base}/oauth2/v1/token',")
            .replace("https://acme.workflows.okta.com", base)
            + f"  - id: after\n    flow: {base}/api/flo/after/invoke\n"
        )

        result = cli(str(job))

    assert result.code == 1, result.out + result.err
    assert result.err == ""
    assert (
        f"each: failed (0 attempts, {clock.now:.2f}s): could not reach the token endpoint "
        f"{base}/oauth2/v1/token ({TOKEN_ATTEMPTS} tries; ConnectError: "
    ) in result.out
    assert re.search(r"^run \S+ of job: failed$", result.out, re.MULTILINE)
    assert _summary_row(result.out, "each") == ["each", "failed", "0"]
    assert _summary_row(result.out, "after") == ["after", "not", "run", "0"]
    assert len(clock.sleeps) == TOKEN_ATTEMPTS - 1


LOOPBACK_ONLY = "must be a loopback URL (127.0.0.1, ::1, localhost), not"
HTTP_ONLY = "must be an http URL like http://127.0.0.1:8080, not"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com", f"{LOOPBACK_ONLY} 'example.com'"),
        ("http://localhost.evil.example", f"{LOOPBACK_ONLY} 'localhost.evil.example'"),
        ("http://127.0.0.1.nip.io:80", f"{LOOPBACK_ONLY} '127.0.0.1.nip.io'"),
        ("http://2130706433:8080", f"{LOOPBACK_ONLY} '2130706433'"),
        ("http:///path", f"{LOOPBACK_ONLY} ''"),
        ("ftp://127.0.0.1:21", f"{HTTP_ONLY} 'ftp://127.0.0.1:21'"),
        ("127.0.0.1:8080", f"{HTTP_ONLY} '127.0.0.1:8080'"),
        ("http://user:pw@127.0.0.1:1", f"{HTTP_ONLY} 'http://user:pw@127.0.0.1:1'"),
        ("http://[::1", "is not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
        (
            "http://127.0.0.1:99999",
            "is not a valid URL (Port out of range 0-65535): 'http://127.0.0.1:99999'",
        ),
    ],
)
def test_emulator_url_must_be_loopback_and_nothing_is_sent(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    transports: list[object] = []
    monkeypatch.setattr(runcmd, "real_transport", lambda *args: transports.append(args))

    result = cli(str(_none_job(tmp_path, "")), "--emulator", url)

    assert result.code == 2
    assert result.err == f"owf-run: --emulator {message}\n"
    assert result.out == ""
    assert transports == []  # no client was even built


def test_stubs_need_emulate(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    stubs = DATA / "stubs" / "valid.yaml"

    result = cli(
        str(_none_job(tmp_path, "")), "--emulator", emulator.base_url, "--stubs", str(stubs)
    )

    assert result.code == 2
    assert result.err == (
        "owf-run: --stubs needs --emulate (an emulator serving elsewhere has its own)\n"
    )
    assert emulator.calls == []


def test_quiet_prints_nothing_when_the_run_succeeds(two_orgs: Emulator, cli: RunCli) -> None:
    result = cli(TWO_ORGS, "--emulator", two_orgs.base_url, "--quiet")

    assert (result.code, result.out, result.err) == (0, "", "")
    assert len(two_orgs.invocations()) >= 2  # it did run


def test_quiet_prints_the_failure_and_the_summary_when_it_fails(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("one", FlowStub(security="none"))
    job = _none_job(tmp_path, "expect: {status: [201]}", second=True)

    result = cli(str(job), "--emulator", emulator.base_url, "--quiet")

    assert result.code == 1
    lines = [
        line.split(" ", 1)[1] if line[:4].isdigit() else line for line in result.out.splitlines()
    ]
    assert lines[0].startswith("one: failed (1 attempt, ")
    assert lines[0].endswith('s): HTTP 200 (expected 201): {"n": 1}')
    assert lines[1].startswith("run ")
    assert lines[1].endswith(" of job: failed")
    assert _summary_row(result.out, "two") == ["two", "not", "run", "0"]


def test_two_orgs_with_the_same_app_share_one_token(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa_key()
    monkeypatch.setenv("OWF_TEST_KEY", pem(key))
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    job = tmp_path / "job.yaml"
    job.write_text(
        _jwt_job()
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


# -- a lost standard output ----------------------------------------------------

PIPE_JOB = """version: 1
orgs: {local: {domain: acme.okta.com, credential: open}}
credentials: {open: {type: none}}
steps:
  - id: big
    flow: https://acme.workflows.okta.com/api/flo/big/invoke
    payload: {pad: "{{ 'x' * 300000 }}"}
  - id: last
    flow: https://acme.workflows.okta.com/api/flo/last/invoke
    retry: {attempts: 1}
"""


def _console_script(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The installed `owf-run`, and an environment keeping its state under ``tmp_path``."""
    script = shutil.which("owf-run", path=str(Path(sys.executable).parent))
    assert script
    return script, {**os.environ, "OWF_STATE_DIR": str(tmp_path / "state")}


def _pipe_job(tmp_path: Path, stubs: str) -> Path:
    job = tmp_path / "pipe.yaml"
    job.write_text(PIPE_JOB)
    if stubs:
        (tmp_path / "stubs").mkdir()
        (tmp_path / "stubs" / "pipe.yaml").write_text(stubs)
    return job


@pytest.mark.parametrize(
    ("stubs", "code"),
    [("", 0), ("flows: {last: {status: 500}}\n", 1)],
    ids=["run succeeds", "last step fails"],
)
def test_a_reader_gone_after_one_line_never_aborts_the_run(
    tmp_path: Path, stubs: str, code: int
) -> None:
    # `owf-run JOB | head -1`. The 300 kB echo under --verbose cannot fit in a pipe (64 kB),
    # so the child is certain to write after the reader has gone, whatever the timing.
    job = _pipe_job(tmp_path, stubs)
    script, env = _console_script(tmp_path)

    with _sigint_not_ignored(), _popen([script, str(job), "--emulate", "-v"], env) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()
        _, err = process.communicate(timeout=60)

    assert first.endswith(
        " emulating Okta: every request goes to a built-in emulator on loopback\n"
    )
    assert (process.returncode, err) == (code, "")  # the run's own outcome, and no complaint
    assert not (tmp_path / "state" / "logs").exists()


def test_a_stdout_closed_from_the_start_never_aborts_the_run(tmp_path: Path) -> None:
    job = _pipe_job(tmp_path, "flows: {last: {status: 500}}\n")
    script, env = _console_script(tmp_path)

    done = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" "$@" >&-', script, str(job), "--emulate", "-v"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stderr) == (1, "")


# -- the canary sweep: no secret, in any encoding, in any sink ------------------


@dataclass(frozen=True)
class Canaries:
    job: Path
    key: str
    token: str
    output: dict[str, Any]

    def secrets(self) -> list[str]:
        nested = self.output["nested"]
        leaves = [self.output["name"], *nested["list"], nested["path"]]
        return [self.key, self.token, *map(str, leaves)]


CANARY_JOB = """version: 1
orgs:
  acme: {{domain: acme.okta.com, credential: jwt}}
  hooks: {{domain: acme.okta.com, credential: hook}}
credentials:
  jwt:
    type: private_key_jwt
    client_id: 0oaX
    key_id: kid-x
    private_key: {{env: OWF_CANARY_KEY}}
  hook: {{type: client_token, token: {{env: OWF_CANARY_TOKEN}}}}
steps:
  - id: issue
    org: acme
    flow: https://acme.workflows.okta.com/api/flo/issue/invoke
    outputs:
      creds: {{value: "{{{{ response.body.creds }}}}", secret: true}}
  - id: use
    org: hooks
    flow: https://acme.workflows.okta.com/api/flo/use/invoke
    query: {{name: "{{{{ steps.issue.outputs.creds.name }}}}"}}
    payload:
      creds: "{{{{ steps.issue.outputs.creds }}}}"
      said: "sent {{{{ steps.issue.outputs.creds }}}} and {{{{ steps.issue.outputs.creds.name }}}}"
      token: "{{{{ env.OWF_CANARY_TOKEN }}}}"
      key: "{{{{ env.OWF_CANARY_KEY }}}}"
{more}"""
PATH_STEP = """  - id: path
    org: hooks
    flow: "https://acme.workflows.okta.com/api/flo/use/{{ steps.issue.outputs.creds.nested.path
      }}/invoke"
"""


@pytest.fixture
def canaries(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, request: Any
) -> Canaries:
    """A job whose every secret is a fresh canary; a flow hands out a secret output."""
    tag = os.urandom(3).hex()
    key = rsa_key()
    token = f"client-token-canary-{tag}"
    output = {
        "name": f"Zoë-ключ-canary-{tag}",
        "nested": {"list": [f"ünï-canary-{tag}", 987654], "path": f"päth canary/sëcret+{tag}"},
    }
    monkeypatch.setenv("OWF_CANARY_KEY", pem(key))
    monkeypatch.setenv("OWF_CANARY_TOKEN", token)
    emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    emulator.register_client_token(token)
    emulator.set_stub("issue", FlowStub(body={"creds": output}, echo=False))
    emulator.set_stub("use", FlowStub(security="client_token"))
    job = tmp_path / "canary.yaml"
    with_path = getattr(request, "param", False)
    job.write_text(CANARY_JOB.format(more=PATH_STEP if with_path else ""))
    return Canaries(job, pem(key), token, output)


def _assert_no_canary(text: str, canaries: Canaries) -> None:
    whole = [json.dumps(canaries.output, ensure_ascii=a) for a in (True, False)]
    for secret in [*canaries.secrets(), *whole]:
        leaked = sorted(form for form in encodings(secret) if form in text)
        assert leaked == [], f"{secret!r} leaked as {leaked}"


@pytest.mark.parametrize(
    ("canaries", "args", "code"),
    [(False, [], 0), (False, ["--verbose"], 0), (True, ["--verbose"], 1)],
    ids=["success", "verbose", "step failure"],
    indirect=["canaries"],
)
def test_no_canary_leaks_from_a_run(
    canaries: Canaries, emulator: Emulator, cli: RunCli, args: list[str], code: int
) -> None:
    result = cli(str(canaries.job), "--emulator", emulator.base_url, *args)

    assert result.code == code, result.out + result.err
    sent = body(emulator.invocations("use")[0])
    assert sent["creds"] == canaries.output  # the secrets did travel where the job sent them
    if args:
        assert f'"creds": {MASK}' in result.out  # the echo was printed, masked
    if code:
        assert "No such endpoint: POST /api/flo/use/" in result.out
    _assert_no_canary(result.out + result.err, canaries)


def test_no_canary_leaks_from_a_plan(canaries: Canaries, cli: RunCli) -> None:
    result = cli("plan", str(canaries.job))

    assert (result.code, result.err) == (0, "")
    assert f'"token": "{MASK}"' in result.out  # {{ env.OWF_CANARY_TOKEN }}, rendered and masked
    _assert_no_canary(result.out, canaries)


def test_no_canary_leaks_from_a_crash_log(
    canaries: Canaries, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: ConsoleReporter, run: object, job: str) -> None:
        creds = json.dumps(canaries.output, ensure_ascii=False)
        path = urllib.parse.quote(canaries.output["nested"]["path"])
        raise RuntimeError(f"boom {creds} {path} {canaries.token} {canaries.key}")

    monkeypatch.setattr(ConsoleReporter, "summary", explode)

    result = cli(str(canaries.job), "--emulator", emulator.base_url, "--verbose")

    assert result.code == 70, result.out + result.err
    log = Path(result.err.rsplit(" ", 1)[-1].strip())
    logged = log.read_text()
    assert f"RuntimeError: boom {MASK} {MASK} {MASK} {MASK}" in logged
    _assert_no_canary(result.out + result.err + logged, canaries)


# -- terminal safety at the sinks ------------------------------------------------


def test_a_file_name_with_control_characters_is_printed_escaped(
    tmp_path: Path, cli: RunCli
) -> None:
    job = tmp_path / "evil\x1b]0;pwned\x07\r.yaml"
    job.write_text(_none_job(tmp_path, "").read_text())

    result = cli("validate", str(job))

    assert (result.code, result.err) == (0, "")
    assert result.out == f"{tmp_path}/evil\\x1b]0;pwned\\x07\\r.yaml: ok\n"


def test_lost_stdout_and_stderr_leave_the_exit_code_to_the_run(tmp_path: Path) -> None:
    job = _pipe_job(tmp_path, "flows: {last: {status: 500}}\n")
    script, env = _console_script(tmp_path)
    reader, writer = os.pipe()
    os.close(reader)  # both streams go to a pipe nobody reads

    try:
        done = subprocess.run(
            [script, str(job), "--emulate", "-v"],
            env=env,
            stdout=writer,
            stderr=writer,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)

    assert done.returncode == 1
    assert not (tmp_path / "state" / "logs").exists()


UNUSED_SECRET_JOB = """\
version: 1
orgs:
  acme: {domain: acme.okta.com, credential: open}
credentials:
  open: {type: none}
  spare: {type: client_token, token: {env: RUN_CANARY_TOKEN}}
steps:
  - id: s
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    payload: {token: "{{ env.RUN_CANARY_TOKEN }}"}
"""


def test_a_run_masks_the_env_value_of_a_credential_no_step_uses(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"run-canary-{tmp_path.name}"
    monkeypatch.setenv("RUN_CANARY_TOKEN", canary)
    job = tmp_path / "job.yaml"
    job.write_text(UNUSED_SECRET_JOB)

    result = cli(str(job), "--emulate", "-v")

    assert result.code == 0
    assert 's: HTTP 200 {"token": "********"}' in result.out  # the emulator echoed it back
    assert canary not in result.out + result.err


def test_a_var_that_is_not_utf8_is_a_usage_error_and_nothing_is_sent(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = _none_job(tmp_path, "")

    result = cli(str(job), "--emulator", emulator.base_url, "--var", "name=\udcff\udcfe")

    assert (result.code, result.out) == (2, "")
    assert result.err == "owf-run: --var 'name': the value holds bytes that are not UTF-8\n"
    assert emulator.calls == []


def test_an_env_value_that_is_not_utf8_fails_the_step_that_sends_it(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_NOT_UTF8", "caf\udce9")  # b"caf\xe9": Latin-1, as Python hands it over
    job = tmp_path / "job.yaml"
    job.write_text(
        _none_job(tmp_path, "").read_text().replace("{n: 1}", '{n: "{{ env.OWF_NOT_UTF8 }}"}')
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 1
    assert (
        f"one: failed (0 attempts, 0.00s): {job}:11:5: steps[0].payload: "
        "not a JSON value: it holds text that is not UTF-8\n"
    ) in result.out
    assert emulator.calls == []


def test_a_content_type_the_step_sets_is_the_one_sent(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("one", FlowStub(security="none"))
    job = _none_job(tmp_path, "headers: {content-type: application/json; charset=utf-8}")

    assert cli(str(job), "--emulator", emulator.base_url).code == 0
    (call,) = emulator.calls
    assert call.headers["content-type"] == "application/json; charset=utf-8"
    assert call.body == b'{"n":1}'  # compact UTF-8 JSON, as without the header


@pytest.mark.parametrize(
    "foreach",
    ["foreach: [1, 2, 3, 4, 5]", "foreach: {csv: rows.csv}"],
    ids=["list", "csv"],
)
def test_limit_runs_only_the_first_items_of_each_foreach(
    tmp_path: Path, emulator: Emulator, cli: RunCli, foreach: str
) -> None:
    (tmp_path / "rows.csv").write_text("n\n1\n2\n3\n4\n5\n")
    emulator.set_stub("one", FlowStub(security="none"))
    job = _none_job(tmp_path, foreach)

    result = cli(str(job), "--emulator", emulator.base_url, "--limit", "2")

    assert result.code == 0
    assert len(emulator.calls) == 2
    assert "one: succeeded (2 items, 2 attempts, " in result.out


def test_limit_counts_the_items_where_keeps(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    (tmp_path / "rows.csv").write_text("n\n1\n2\n3\n4\n5\n6\n")
    emulator.set_stub("one", FlowStub(security="none"))
    where = 'foreach: {csv: rows.csv, where: "{{ item.n | int is even }}"}'
    job = _none_job(tmp_path, where + '\n    headers: {x-n: "{{ item.n }}"}')

    result = cli(str(job), "--emulator", emulator.base_url, "--limit", "2")

    assert result.code == 0
    assert [call.headers["x-n"] for call in emulator.calls] == ["2", "4"]
    # Rows 1 and 3 were left out on the way; the file was not read past row 4.
    assert "one: succeeded (2 items, 2 left out by where, 2 attempts, " in result.out


def test_limit_must_be_at_least_one(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    result = cli(str(_none_job(tmp_path, "")), "--emulator", emulator.base_url, "--limit", "0")

    assert result.code == 2
    assert "Invalid value for '--limit'" in result.err
    assert emulator.calls == []


# -- reports ----------------------------------------------------------------------------------


def test_a_run_writes_its_reports_and_show_writes_the_same_later(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("one", FlowStub(security="none", status=500))
    job = _none_job(tmp_path, "")
    out = tmp_path / "out"
    out.mkdir()
    reports = ["--report", str(out / "run.json"), "--junit", str(out / "junit.xml")]

    result = cli(str(job), "--emulator", emulator.base_url, *reports, "--html", str(out / "r.html"))

    assert result.code == 1
    report = json.loads((out / "run.json").read_text())
    assert (report["format"], report["version"], report["status"]) == (
        "owf-run report",
        1,
        "failed",
    )
    assert [(s["id"], s["status"]) for s in report["steps"]] == [("one", "failed")]
    assert '<testcase classname="job" name="one"' in (out / "junit.xml").read_text()
    assert "<title>" in (out / "r.html").read_text()
    later = tmp_path / "later.json"
    shown = cli("show", report["run_id"], "--report", str(later))
    assert shown.code == 0
    assert json.loads(later.read_text()) == report


def test_a_report_path_that_cannot_be_written_fails_before_anything_is_sent(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("one", FlowStub(security="none"))
    job = _none_job(tmp_path, "")
    missing = tmp_path / "nowhere" / "run.json"

    result = cli(str(job), "--emulator", emulator.base_url, "--report", str(missing))

    assert result.code == 2
    assert result.err.startswith(f"owf-run: {missing}: cannot write the report")
    assert emulator.calls == []


def test_two_reports_to_one_file_are_refused(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = _none_job(tmp_path, "")
    same = str(tmp_path / "r.out")

    result = cli(str(job), "--emulator", emulator.base_url, "--report", same, "--html", same)

    assert (result.code, result.err) == (
        2,
        f"owf-run: --html and --report name the same file: {same}\n",
    )
    assert emulator.calls == []


def test_schema_report_prints_the_committed_report_schema(cli: RunCli) -> None:
    result = cli("schema", "--report")

    assert result.code == 0
    committed = Path(__file__).parent.parent / "schemas" / "report.schema.json"
    assert result.out == committed.read_text()
