"""Credential problems are found up front, before any request, and never echo a secret.

Each problem is one line at the secret reference (exit 3, zero requests); the
planted canaries (a client token and the PEM text of a key) appear in no
output, in any common encoding.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from joserfc.jwk import ECKey, RSAKey

import owf_runner.secrets
from owf_runner.auth import BearerAuth, ClientAssertion, ClientTokenAuth
from owf_runner.commands import load_plan
from owf_runner.credentials import (
    ClientToken,
    Resolved,
    SecretCredential,
    build_auths,
    resolve_credentials,
)
from owf_runner.emulator import Emulator, FlowStub
from owf_runner.errors import JobError
from owf_runner.model import ClientTokenCredential
from owf_runner.redaction import MASK
from tests.conftest import Cli, assert_not_leaked, ec_key, jwt_segments, pem, rsa_key, write_key
from tests.fakes import SteppingClock

RunCli = Callable[..., Cli]
CANARY = "canary-secret-value-93f1"

# The private key reference is on line 8; `extra` lines come after it.
JWT_JOB = """\
version: 1
orgs:
  acme: {{domain: acme.okta.com, credential: acme_jwt}}
credentials:
  acme_jwt:
    type: private_key_jwt
    client_id: 0oaACME
    private_key: {ref}
{extra}steps:
  - id: ping
    flow: https://acme.workflows.okta.com/api/flo/ping/invoke
    payload: {{n: 1}}
"""
AT_KEY = "8:5: credentials.acme_jwt.private_key"

# The client token reference is on line 7.
TOKEN_JOB = """\
version: 1
orgs:
  acme: {{domain: acme.okta.com, credential: hook}}
credentials:
  hook:
    type: client_token
    token: {ref}
steps:
  - id: ping
    flow: https://acme.workflows.okta.com/api/flo/ping/invoke
    payload: {{n: 1}}
"""
AT_TOKEN = "7:5: credentials.hook.token"


def jwt_job(tmp_path: Path, ref: str, *extra: str) -> Path:
    path = tmp_path / "job.yaml"
    lines = "".join(f"    {line}\n" for line in extra)
    path.write_text(JWT_JOB.format(ref=ref, extra=lines), encoding="utf-8")
    return path


def token_job(tmp_path: Path, ref: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(TOKEN_JOB.format(ref=ref), encoding="utf-8")
    return path


def assert_refused(result: Cli, emulator: Emulator, line: str) -> None:
    """Exit 3, exactly one problem line, nothing on stdout, nothing sent."""
    assert result.err == line + "\n"
    assert (result.code, result.out) == (3, "")
    assert emulator.calls == []
    # The message itself holds no secret: the redactor had nothing to mask.
    assert MASK not in result.err


def test_missing_env_var(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_ABSENT_KEY", raising=False)
    job = jwt_job(tmp_path, "{env: OWF_TEST_ABSENT_KEY}", "key_id: kid-x")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(
        result,
        emulator,
        f"{job}:{AT_KEY}: environment variable OWF_TEST_ABSENT_KEY is not set "
        "(to rehearse: --emulate)",
    )


def test_empty_env_var_counts_as_missing(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_EMPTY_TOKEN", "")
    job = token_job(tmp_path, "{env: OWF_TEST_EMPTY_TOKEN}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(
        result,
        emulator,
        f"{job}:{AT_TOKEN}: environment variable OWF_TEST_EMPTY_TOKEN is not set "
        "(to rehearse: --emulate)",
    )


def test_missing_key_file(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    job = jwt_job(tmp_path, "{file: missing.pem}", "key_id: kid-x")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(
        result,
        emulator,
        f"{job}:{AT_KEY}: cannot read {tmp_path / 'missing.pem'}: No such file or directory",
    )


def test_file_that_is_not_a_key(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    write_key(tmp_path / "notes.pem", f"this is not a key but a {CANARY}\n")
    job = jwt_job(tmp_path, "{file: notes.pem}", "key_id: kid-x")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_KEY}: not a PEM private key (or it is encrypted)")
    assert_not_leaked(result, CANARY)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_unreadable_key_file(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    key_file = write_key(tmp_path / "locked.pem", pem(rsa_key()))
    key_file.chmod(0o000)
    job = jwt_job(tmp_path, "{file: locked.pem}", "key_id: kid-x")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_KEY}: cannot read {key_file}: Permission denied")


@pytest.mark.parametrize(
    ("make_key", "algorithm", "message"),
    [
        (ec_key, "RS256", "algorithm RS256 does not fit this key (use ES256)"),
        (rsa_key, "ES256", "algorithm ES256 does not fit this key (use RS256)"),
        (lambda: ec_key("P-384"), "ES256", "algorithm ES256 does not fit this key (use ES384)"),
    ],
    ids=["ec-with-RS256", "rsa-with-ES256", "p384-with-ES256"],
)
def test_algorithm_that_does_not_fit_the_key(
    tmp_path: Path,
    emulator: Emulator,
    cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    make_key: Callable[[], RSAKey | ECKey],
    algorithm: str,
    message: str,
) -> None:
    key_pem = pem(make_key())
    monkeypatch.setenv("OWF_TEST_KEY", key_pem)
    job = jwt_job(tmp_path, "{env: OWF_TEST_KEY}", "key_id: kid-x", f"algorithm: {algorithm}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_KEY}: {message}")
    assert_not_leaked(result, key_pem)


def test_pem_key_without_key_id(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_KEY", pem(rsa_key()))
    job = jwt_job(tmp_path, "{env: OWF_TEST_KEY}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(
        result,
        emulator,
        f"{job}:{AT_KEY}: no `key_id`, and the key is not a JWK with a kid; Okta needs the kid",
    )


def test_jwk_with_a_kid_needs_no_key_id(tmp_path: Path, emulator: Emulator, cli: RunCli) -> None:
    key = ec_key()
    emulator.register_client("0oaACME", "jwk-kid-5", key.as_dict(private=False))
    jwk = json.dumps({**key.as_dict(private=True), "kid": "jwk-kid-5"})
    write_key(tmp_path / "key.json", jwk)
    job = jwt_job(tmp_path, "{file: key.json}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out + result.err
    (token,) = emulator.token_requests()
    form = urllib.parse.parse_qs(token.body.decode())
    header, claims = jwt_segments(form["client_assertion"][0])
    assert (header["kid"], header["alg"], claims["iss"]) == ("jwk-kid-5", "ES256", "0oaACME")
    assert [call.status for call in emulator.invocations()] == [200]
    assert_not_leaked(result, jwk, str(key.as_dict(private=True)["d"]))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("['false']", "command false exited with status 1"),
        ("[no-such-binary-xyz]", "command not found: no-such-binary-xyz"),
        (f"[sh, -c, 'echo {CANARY}; exit 3']", "command sh exited with status 3"),
        ("['true']", "command true printed nothing"),
    ],
    ids=["false", "not-found", "prints-then-fails", "prints-nothing"],
)
def test_failing_command(
    tmp_path: Path, emulator: Emulator, cli: RunCli, command: str, message: str
) -> None:
    job = token_job(tmp_path, f"{{command: {command}}}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_TOKEN}: {message}")
    assert_not_leaked(result, CANARY)


def test_unquoted_false_is_a_yaml_boolean_not_a_command(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = token_job(tmp_path, "{command: [false]}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(
        result,
        emulator,
        f"{job}:7:23: credentials.hook.token.command[0]: expected a string, found a boolean",
    )


def test_command_that_times_out(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owf_runner.secrets, "COMMAND_TIMEOUT", 0.5)
    job = token_job(tmp_path, "{command: [sleep, '5']}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_TOKEN}: command sleep timed out after 0.5s")


def test_every_credential_problem_is_reported_at_once(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_ABSENT_TOKEN", raising=False)
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs:\n"
        "  acme: {domain: acme.okta.com, credential: hook}\n"
        "  globex: {domain: globex.okta.com, credential: jwt}\n"
        "credentials:\n"
        "  hook: {type: client_token, token: {env: OWF_TEST_ABSENT_TOKEN}}\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaG, key_id: k, private_key: {file: no.pem}}\n"
        "steps:\n"
        "  - {id: one, org: acme, flow: 'https://acme.workflows.okta.com/api/flo/one/invoke'}\n"
        "  - {id: two, org: globex, flow: 'https://globex.workflows.okta.com/api/flo/two/invoke'}\n"
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.err.splitlines() == [
        f"{job}:6:30: credentials.hook.token: environment variable OWF_TEST_ABSENT_TOKEN "
        "is not set (to rehearse: --emulate)",
        f"{job}:7:60: credentials.jwt.private_key: cannot read {tmp_path / 'no.pem'}: "
        "No such file or directory",
    ]
    assert (result.code, result.out, emulator.calls) == (3, "", [])


def test_credential_problems_are_in_file_order(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_ABSENT_1", raising=False)
    monkeypatch.delenv("OWF_TEST_ABSENT_2", raising=False)
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs:\n"
        "  acme: {domain: acme.okta.com, credential: zeta}\n"
        "  globex: {domain: globex.okta.com, credential: alpha}\n"
        "credentials:\n"
        "  zeta: {type: client_token, token: {env: OWF_TEST_ABSENT_1}}\n"
        "  alpha: {type: client_token, token: {env: OWF_TEST_ABSENT_2}}\n"
        "steps:\n"
        "  - {id: one, org: acme, flow: 'https://acme.workflows.okta.com/api/flo/one/invoke'}\n"
        "  - {id: two, org: globex, flow: 'https://globex.workflows.okta.com/api/flo/two/invoke'}\n"
    )

    result = cli(str(job), "--emulator", emulator.base_url)

    assert (result.code, emulator.calls) == (3, [])
    assert [line.split(": ")[1] for line in result.err.splitlines()] == [
        "credentials.zeta.token",
        "credentials.alpha.token",
    ]


def test_group_readable_key_file_warns_and_the_run_proceeds(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    key = rsa_key()
    key_pem = pem(key)
    emulator.register_client("0oaACME", "kid-x", key.as_dict(private=False))
    key_file = write_key(tmp_path / "key.pem", key_pem)
    key_file.chmod(0o640)
    job = jwt_job(tmp_path, "{file: key.pem}", "key_id: kid-x")

    result = cli(str(job), "--emulator", emulator.base_url, "--verbose")

    assert result.code == 0, result.out + result.err
    assert result.err == (
        f"owf-run: WARNING: {key_file} is readable by group/others; chmod 600 it\n"
    )
    assert len(emulator.token_requests()) == 1
    assert [call.status for call in emulator.invocations()] == [200]
    assert_not_leaked(result, key_pem)


def test_client_token_canary_never_reaches_any_output(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_HOOK_TOKEN", CANARY)
    emulator.register_client_token(CANARY)
    # The flow echoes the token back, so --verbose would print it if nothing masked it.
    echo = FlowStub(
        security="client_token", body={"seen": "{{ request.headers['x-api-client-token'] }}"}
    )
    emulator.set_stub("ping", echo)
    job = token_job(tmp_path, "{env: OWF_TEST_HOOK_TOKEN}")

    result = cli(str(job), "--emulator", emulator.base_url, "--verbose")

    assert result.code == 0, result.out + result.err
    (call,) = emulator.invocations()
    assert call.headers["x-api-client-token"] == CANARY
    assert f'"seen": "{MASK}"' in result.out  # the echo was printed, masked
    assert_not_leaked(result, CANARY)


# -- resolve_credentials and build_auths, without the CLI ------------------------------


THREE_ORGS = """\
version: 1
orgs:
  acme: {domain: acme.okta.com, credential: jwt}
  acme_again: {token_url: 'https://acme.okta.com/oauth2/v1/token', credential: jwt}
  globex: {domain: globex.okta.com, credential: jwt}
  hooks: {domain: hooks.okta.com, credential: hook}
  open: {domain: open.okta.com, credential: public}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaJ, key_id: kid-j, private_key: {env: OWF_TEST_JWT}}
  hook: {type: client_token, token: {env: OWF_TEST_HOOK}}
  public: {type: none}
steps:
  - {id: a, org: acme, flow: 'https://acme.workflows.okta.com/api/flo/a/invoke'}
  - {id: b, org: acme_again, flow: 'https://acme.workflows.okta.com/api/flo/b/invoke'}
  - {id: c, org: globex, flow: 'https://globex.workflows.okta.com/api/flo/c/invoke'}
  - {id: d, org: hooks, flow: 'https://hooks.workflows.okta.com/api/flo/d/invoke'}
  - {id: e, org: open, flow: 'https://open.workflows.okta.com/api/flo/e/invoke'}
"""


def write_job(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_only_the_credentials_a_step_uses_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_UNUSED", raising=False)
    path = write_job(
        tmp_path,
        "version: 1\n"
        "orgs:\n"
        "  acme: {domain: acme.okta.com, credential: public}\n"
        "  spare: {domain: spare.okta.com, credential: unused}\n"
        "credentials:\n"
        "  public: {type: none}\n"
        "  unused: {type: client_token, token: {env: OWF_TEST_UNUSED}}\n"
        "steps:\n"
        "  - {id: a, org: acme, flow: 'https://acme.workflows.okta.com/api/flo/a/invoke'}\n",
    )

    assert resolve_credentials(load_plan(path)) == {"public": None}


def test_a_missing_secret_is_a_problem_record_at_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_TEST_ABSENT", raising=False)
    path = token_job(tmp_path, "{env: OWF_TEST_ABSENT}")

    with pytest.raises(JobError) as raised:
        resolve_credentials(load_plan(path))

    [problem] = raised.value.problems
    assert problem.key_path == ("credentials", "hook", "token")
    assert str(problem) == (
        f"{path}:{AT_TOKEN}: environment variable OWF_TEST_ABSENT is not set "
        "(to rehearse: --emulate)"
    )


@pytest.mark.parametrize("ref", ["{env: OWF_TEST_ABSENT}", "{file: no-such-token.txt}"])
def test_a_stand_in_replaces_a_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    monkeypatch.delenv("OWF_TEST_ABSENT", raising=False)
    asked: list[tuple[str, SecretCredential]] = []

    def stand_in(name: str, credential: SecretCredential) -> Resolved:
        asked.append((name, credential))
        return ClientToken("stand-in-token")

    missing = resolve_credentials(load_plan(token_job(tmp_path, ref)), stand_in)

    assert missing == {"hook": ClientToken("stand-in-token")}
    [(name, credential)] = asked
    assert name == "hook"
    assert isinstance(credential, ClientTokenCredential)


def test_a_stand_in_never_replaces_a_secret_that_is_set_but_broken(tmp_path: Path) -> None:
    def stand_in(name: str, credential: SecretCredential) -> Resolved:
        raise AssertionError("a broken secret must not get a stand-in")

    path = token_job(tmp_path, "{command: ['false']}")

    with pytest.raises(JobError) as raised:
        resolve_credentials(load_plan(path), stand_in)

    assert [str(p) for p in raised.value.problems] == [
        f"{path}:{AT_TOKEN}: command false exited with status 1"
    ]


def test_resolved_credentials_and_their_auth_flows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_JWT", pem(rsa_key()))
    monkeypatch.setenv("OWF_TEST_HOOK", "hook-token-4471")
    plan = load_plan(write_job(tmp_path, THREE_ORGS))

    resolved = resolve_credentials(plan)

    jwt = resolved["jwt"]
    assert isinstance(jwt, ClientAssertion)
    assert (jwt.client_id, jwt.key_id, jwt.algorithm) == ("0oaJ", "kid-j", "RS256")
    assert resolved["hook"] == ClientToken("hook-token-4471")
    assert resolved["public"] is None

    async def main() -> dict[str, httpx2.Auth]:
        async with httpx2.AsyncClient() as client:
            return build_auths(plan, resolved, client, SteppingClock())

    auths = asyncio.run(main())

    acme, again, globex = auths["acme"], auths["acme_again"], auths["globex"]
    assert isinstance(acme, BearerAuth)
    assert isinstance(again, BearerAuth)
    assert isinstance(globex, BearerAuth)
    assert again.source is acme.source  # same token URL, client and scopes: one token
    assert globex.source is not acme.source
    assert isinstance(auths["hooks"], ClientTokenAuth)
    assert type(auths["open"]) is httpx2.Auth  # sent as is


def test_orgs_sharing_a_token_endpoint_fetch_one_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_JWT", pem(rsa_key()))
    monkeypatch.setenv("OWF_TEST_HOOK", "hook-token-4471")
    plan = load_plan(write_job(tmp_path, THREE_ORGS))
    resolved = resolve_credentials(plan)
    token_hosts: list[str] = []
    bearers: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth2/v1/token":
            token_hosts.append(request.url.host)
            body = {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": f"t{len(token_hosts)}",
            }
            return httpx2.Response(200, json=body)
        bearers.append(request.headers["Authorization"])
        return httpx2.Response(200)

    async def main() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            auths = build_auths(plan, resolved, client, SteppingClock())
            for org in ("acme", "acme_again", "globex"):
                await client.post(f"https://{org}.example/invoke", auth=auths[org])

    asyncio.run(main())

    assert token_hosts == ["acme.okta.com", "globex.okta.com"]
    assert bearers == ["Bearer t1", "Bearer t1", "Bearer t2"]


# -- secret values are checked: one trailing newline dropped, broken values refused -------


def test_a_token_file_ending_in_a_newline_sends_the_token_without_it(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    write_key(tmp_path / "token.txt", f"{CANARY}\r\n")
    emulator.register_client_token(CANARY)
    emulator.set_stub("ping", FlowStub(security="client_token"))
    job = token_job(tmp_path, "{file: token.txt}")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out + result.err
    (call,) = emulator.invocations()
    assert call.headers["x-api-client-token"] == CANARY
    assert_not_leaked(result, CANARY)


def control_token(tmp_path: Path) -> str:
    write_key(tmp_path / "ctrl.txt", f"{CANARY}\x1b[0m\n")
    return "{file: ctrl.txt}"


def empty_token(tmp_path: Path) -> str:
    write_key(tmp_path / "empty.txt", "\n")
    return "{file: empty.txt}"


def two_line_token(tmp_path: Path) -> str:
    write_key(tmp_path / "two.txt", f"{CANARY}\nsecond-line\n")
    return "{file: two.txt}"


REFUSED_TOKENS: list[tuple[Callable[[Path], str], str]] = [
    (
        lambda tmp: "{file: /dev/zero}",
        "/dev/zero: secret file is not a regular file (a character device)",
    ),
    (
        lambda tmp: "{file: /dev/null}",
        "/dev/null: secret file is not a regular file (a character device)",
    ),
    (empty_token, "{tmp}/empty.txt is empty"),
    (control_token, "{tmp}/ctrl.txt holds a control character (U+001B)"),
    (two_line_token, "{tmp}/two.txt holds more than one line (only a PEM or JWK key may)"),
    (lambda tmp: "{command: [/]}", "command / cannot be run: it is a directory"),
    (
        lambda tmp: '{command: [sh, -c, \'printf "%s\\\\377" ' + CANARY + "']}",
        "command sh printed something that is not UTF-8",
    ),
    (
        lambda tmp: "{command: [yes, " + CANARY + "]}",
        "command yes printed more than 1 MiB; stopped it",
    ),
]
REFUSED_IDS = [
    "dev-zero",
    "dev-null",
    "empty",
    "control",
    "two-lines",
    "directory",
    "not-utf8",
    "endless",
]


@pytest.mark.parametrize(("make_ref", "message"), REFUSED_TOKENS, ids=REFUSED_IDS)
def test_a_broken_secret_is_one_located_message_and_nothing_is_sent(
    tmp_path: Path, emulator: Emulator, cli: RunCli, make_ref: Callable[[Path], str], message: str
) -> None:
    job = token_job(tmp_path, make_ref(tmp_path))

    result = cli(str(job), "--emulator", emulator.base_url)

    assert_refused(result, emulator, f"{job}:{AT_TOKEN}: {message.format(tmp=tmp_path)}")
    assert_not_leaked(result, CANARY)


@pytest.mark.parametrize(("make_ref", "message"), REFUSED_TOKENS, ids=REFUSED_IDS)
def test_a_rehearsal_stands_in_for_no_secret_that_is_present_but_broken(
    tmp_path: Path, cli: RunCli, make_ref: Callable[[Path], str], message: str
) -> None:
    job = token_job(tmp_path, make_ref(tmp_path))

    result = cli(str(job), "--emulate")

    assert (result.code, result.out) == (3, "")
    assert result.err == f"{job}:{AT_TOKEN}: {message.format(tmp=tmp_path)}\n"


def test_an_env_secret_with_a_control_character_is_refused_even_in_a_rehearsal(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_BELL_TOKEN", f"{CANARY}\a")
    job = token_job(tmp_path, "{env: OWF_TEST_BELL_TOKEN}")

    result = cli(str(job), "--emulate")

    assert (result.code, result.out) == (3, "")
    assert result.err == (
        f"{job}:{AT_TOKEN}: environment variable OWF_TEST_BELL_TOKEN "
        "holds a control character (U+0007)\n"
    )
    assert_not_leaked(result, CANARY)


def test_a_pem_key_file_with_windows_line_ends_signs(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    key = rsa_key()
    emulator.register_client("0oaACME", "kid-crlf", key.as_dict(private=False))
    key_file = write_key(tmp_path / "key.pem", "")
    key_file.write_bytes(pem(key).replace("\n", "\r\n").encode())
    job = jwt_job(tmp_path, "{file: key.pem}", "key_id: kid-crlf")

    result = cli(str(job), "--emulator", emulator.base_url)

    assert result.code == 0, result.out + result.err
    assert len(emulator.token_requests()) == 1
