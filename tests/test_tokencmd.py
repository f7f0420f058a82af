"""`owf-run token ORG --job JOB`: the real CLI, in process, against the Okta emulator."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from joserfc.jwk import RSAKey

from owf_runner import emulation, tokencmd
from owf_runner.auth import TOKEN_ATTEMPTS
from owf_runner.emulator import Emulator, Fault
from tests.conftest import Cli, encodings, pem, rsa_key
from tests.fakes import FakeClock

RunCli = Callable[..., Cli]
INVOKE = "/api/flo/f/invoke"

JOB = """\
version: 1
orgs:
  acme: {domain: acme.okta.com, credential: jwt}
  spare: {domain: spare.okta.com, credential: spare_jwt}
  tokened: {domain: tokened.okta.com, credential: ct}
  public: {domain: public.okta.com, credential: open}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaACME, key_id: acme-kid, private_key: {env: OWF_T_KEY}}
  spare_jwt:
    {type: private_key_jwt, client_id: 0oaSPARE, key_id: spare-kid, private_key: {env: OWF_T_KEY}}
  ct: {type: client_token, token: {env: OWF_T_CLIENT_TOKEN}}
  open: {type: none}
steps:
  - {id: a, org: acme, flow: "https://acme.workflows.okta.com/api/flo/f/invoke"}
  - {id: t, org: tokened, flow: "https://tokened.workflows.okta.com/api/flo/g/invoke"}
  - {id: p, org: public, flow: "https://public.workflows.okta.com/api/flo/h/invoke"}
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    return path


@functools.cache
def known_key() -> RSAKey:
    """One key for every test: generating a 2048-bit key takes a tenth of a second."""
    return rsa_key()


@pytest.fixture
def emulator(timed_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """An emulator on the command's fake clock, knowing acme's and spare's key.

    The client token's variable is not set: the command resolves only the org it is asked for.
    """
    key = known_key()
    monkeypatch.setenv("OWF_T_KEY", pem(key))
    monkeypatch.delenv("OWF_T_CLIENT_TOKEN", raising=False)
    timed_emulator.register_client("0oaACME", "acme-kid", key.as_dict(private=False))
    timed_emulator.register_client("0oaSPARE", "spare-kid", key.as_dict(private=False))
    return timed_emulator


@pytest.fixture(autouse=True)
def on_fake_clock(fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs between token tries are recorded, not slept."""
    monkeypatch.setattr(tokencmd, "token", functools.partial(tokencmd.token, clock=fake_clock))


def issued(result: Cli, emulator: Emulator) -> str:
    """The one token the emulator issued, checked to be all that was printed."""
    (request,) = emulator.token_requests()
    assert request.status == 200
    assert emulator.invocations() == []
    assert result.out.endswith("\n")
    return result.out.removesuffix("\n").removeprefix("Authorization: Bearer ")


def invoke(base_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx2.post(base_url + INVOKE, headers=headers, json={}).status_code


def test_prints_the_token_alone_and_it_opens_a_flow(
    job: Path, emulator: Emulator, cli: RunCli
) -> None:
    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    token = issued(result, emulator)
    assert (result.code, result.out, result.err) == (0, f"{token}\n", "")
    assert token
    assert invoke(emulator.base_url, token) == 200


def test_header_prints_the_authorization_line(job: Path, emulator: Emulator, cli: RunCli) -> None:
    result = cli("token", "acme", "--job", str(job), "--header", "--emulator", emulator.base_url)

    token = issued(result, emulator)
    assert (result.code, result.out, result.err) == (0, f"Authorization: Bearer {token}\n", "")
    assert invoke(emulator.base_url, token) == 200


def test_the_token_request_is_the_one_a_run_sends(
    job: Path, emulator: Emulator, cli: RunCli
) -> None:
    cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    (request,) = emulator.token_requests()
    assert request.host == "acme.okta.com"  # the org's own token URL, redirected
    assert request.claims is not None
    assert request.claims["aud"] == "https://acme.okta.com/oauth2/v1/token"


def test_an_org_no_step_uses_gets_a_token_too(job: Path, emulator: Emulator, cli: RunCli) -> None:
    result = cli("token", "spare", "--job", str(job), "--emulator", emulator.base_url)

    assert result.code == 0
    assert emulator.token_requests()[0].client_id == "0oaSPARE"
    assert invoke(emulator.base_url, issued(result, emulator)) == 200


# -- refusals -------------------------------------------------------------------------------


def test_an_unknown_org_is_refused_with_the_closest_name(
    job: Path, emulator: Emulator, cli: RunCli
) -> None:
    result = cli("token", "acm", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (2, "")
    assert result.err == f"owf-run: no org 'acm' in {job}; did you mean 'acme'?\n"
    assert emulator.calls == []


def test_an_unknown_org_like_none_of_them_lists_them(job: Path, cli: RunCli) -> None:
    result = cli("token", "zzz\x1b[2J", "--job", str(job))

    assert (result.code, result.out) == (2, "")
    assert result.err == (
        f"owf-run: no org 'zzz\\x1b[2J' in {job}; its orgs: acme, public, spare, tokened\n"
    )


def test_a_client_token_org_is_told_what_to_send_instead(
    job: Path, emulator: Emulator, cli: RunCli
) -> None:
    result = cli("token", "tokened", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "owf-run: org 'tokened' calls its flows with a client token, not an access token: in "
        "Postman, send its client token (credential 'ct') in the header x-api-client-token, "
        "with no Authorization header\n"
    )
    assert emulator.calls == []


def test_an_org_without_authentication_has_no_token(
    job: Path, emulator: Emulator, cli: RunCli
) -> None:
    result = cli("token", "public", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "owf-run: org 'public' calls its flows without authentication (credential 'open'), "
        "so there is no token: in Postman, send no Authorization header\n"
    )
    assert emulator.calls == []


def test_an_invalid_job_exits_3_and_sends_nothing(
    tmp_path: Path, emulator: Emulator, cli: RunCli
) -> None:
    job = tmp_path / "bad.yaml"
    job.write_text(JOB.replace("version: 1", "version: 7"))

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (3, "")
    assert result.err.startswith(f"{job}:")
    assert emulator.calls == []


def test_a_missing_key_is_an_invalid_job(
    job: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_T_KEY")

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (3, "")
    assert "OWF_T_KEY" in result.err
    assert emulator.calls == []


def test_a_refused_client_exits_4_with_oktas_error(
    job: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_T_KEY", pem(rsa_key()))  # not the key the emulator knows

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (4, "")
    assert result.err.startswith(
        "owf-run: token request to https://acme.okta.com/oauth2/v1/token (client 0oaACME) "
        "refused: invalid_client: "
    )
    assert "\n  hint: check `client_id` and `key_id` (kid)" in result.err
    assert len(emulator.token_requests()) == 1  # a refusal is not retried


def test_a_token_endpoint_that_stays_busy_exits_1_after_the_runs_tries(
    job: Path, emulator: Emulator, cli: RunCli, fake_clock: FakeClock
) -> None:
    emulator.set_token_faults(Fault(times=TOKEN_ATTEMPTS, status=503))

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "owf-run: could not reach the token endpoint https://acme.okta.com/oauth2/v1/token "
        f"({TOKEN_ATTEMPTS} tries; HTTP 503)\n"
    )
    assert len(emulator.token_requests()) == TOKEN_ATTEMPTS
    assert len(fake_clock.sleeps) == TOKEN_ATTEMPTS - 1  # waited, but never really


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A loopback URL nothing listens on (the port stays bound, so nobody takes it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def test_an_unreachable_token_endpoint_exits_1(
    job: Path, emulator: Emulator, cli: RunCli, closed_port: str
) -> None:
    result = cli("token", "acme", "--job", str(job), "--emulator", closed_port)

    assert (result.code, result.out) == (1, "")
    assert result.err.startswith(
        "owf-run: could not reach the token endpoint https://acme.okta.com/oauth2/v1/token "
        f"({TOKEN_ATTEMPTS} tries; "
    )


def test_the_emulator_url_is_checked_as_a_runs(job: Path, cli: RunCli) -> None:
    result = cli("token", "acme", "--job", str(job), "--emulate", "--emulator", "http://x")

    assert (result.code, result.err) == (
        2,
        "owf-run: use either --emulate or --emulator URL, not both\n",
    )


# -- --emulate --------------------------------------------------------------------------------


@pytest.fixture
def rehearsed(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> list[Emulator]:
    """The emulators `--emulate` makes (on the command's clock), kept for the test to see."""
    made: list[Emulator] = []

    def new_emulator() -> Emulator:
        made.append(Emulator(clock=fake_clock.time))
        return made[-1]

    monkeypatch.setattr(emulation, "new_emulator", new_emulator)
    return made


def test_emulate_prints_a_token_the_built_in_emulator_issued(
    job: Path, cli: RunCli, rehearsed: list[Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWF_T_KEY", raising=False)  # a rehearsal stands a fresh key in

    result = cli("token", "acme", "--job", str(job), "--emulate")

    (emulator,) = rehearsed
    token = issued(result, emulator)
    assert (result.code, result.out) == (0, f"{token}\n")
    assert token not in result.err
    assert "emulating Okta" in result.err
    assert result.err.endswith(f"owf-run: note: {tokencmd.EMULATED_NOTE}\n")
    with emulator.running() as base_url:  # it stopped with the command; its tokens live on
        assert invoke(base_url, token) == 200


# -- the token goes nowhere else ---------------------------------------------------------------


def test_a_crash_after_the_fetch_keeps_the_token_out_of_stderr_and_the_crash_log(
    job: Path,
    emulator: Emulator,
    cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fetched: list[str] = []

    def crash(line: str) -> None:
        fetched.append(line)
        raise RuntimeError(f"a bug holding {line!r}")

    monkeypatch.setattr(tokencmd, "_print_token", crash)

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.out) == (70, "")
    (log,) = (tmp_path / "state" / "logs").iterdir()
    text = log.read_text()
    assert "RuntimeError: a bug holding '********'" in text
    (token,) = fetched
    for form in encodings(token):
        assert form not in result.err
        assert form not in text


def test_a_lost_stdout_is_exit_1_not_a_silent_success(
    job: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Gone:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stdout", Gone())

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert result.code == 1
    assert result.err == (
        "owf-run: cannot write the token to standard output ([Errno 28] No space left on device)\n"
    )


def test_vars_are_read_as_a_run_reads_them(job: Path, cli: RunCli) -> None:
    result = cli("token", "acme", "--job", str(job), "--var", "novalue")

    assert (result.code, result.out) == (2, "")
    assert result.err == "owf-run: --var expects KEY=VALUE, got 'novalue'\n"


def test_a_closed_stdout_is_exit_1(
    job: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout", None)  # as Python starts with descriptor 1 closed

    result = cli("token", "acme", "--job", str(job), "--emulator", emulator.base_url)

    assert (result.code, result.err) == (
        1,
        "owf-run: cannot write the token: standard output is closed\n",
    )
