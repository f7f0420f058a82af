"""A rehearsal behaves like the run: same credentials and refusals; stubs as the job calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DATA, Cli, pem, rsa_key

RunCli = Callable[..., Cli]
FLOW = "https://acme.workflows.okta.com/api/flo/hook/invoke"


def token_job(tmp_path: Path) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: hook}}\n"
        "credentials: {hook: {type: client_token, token: {env: EMU_HOOK_TOKEN}}}\n"
        f"steps:\n  - id: call\n    flow: {FLOW}\n    payload: {{n: 1}}\n"
    )
    return job


def stubs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stubs" / "job.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_an_explicit_stub_follows_the_jobs_client_token(tmp_path: Path, cli: RunCli) -> None:
    # The stub says nothing about security: the job calls the flow with a client token.
    stubs(tmp_path, "flows:\n  hook: {echo: true}\n")

    result = cli(str(token_job(tmp_path)), "--emulate")

    assert result.code == 0, result.out + result.err
    assert "call: succeeded (1 attempt," in result.out


def test_a_stub_that_says_oauth2_is_not_overruled(tmp_path: Path, cli: RunCli) -> None:
    stubs(tmp_path, "flows:\n  hook: {security: oauth2}\n")

    result = cli(str(token_job(tmp_path)), "--emulate")

    assert result.code == 1
    assert "call: failed (1 attempt," in result.out
    assert "HTTP 401 (expected 2xx)" in result.out
    assert "The access token is missing." in result.out


def test_a_pem_key_without_key_id_is_refused_in_a_rehearsal_too(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMU_PEM_KEY", pem(rsa_key()))
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
        "credentials:\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaX, private_key: {env: EMU_PEM_KEY}}\n"
        f"steps:\n  - id: call\n    flow: {FLOW}\n"
    )
    expected = (
        f"{job}:4:49: credentials.jwt.private_key: no `key_id`, and the key is not a JWK "
        "with a kid; Okta needs the kid\n"
    )

    rehearsed = cli(str(job), "--emulate")
    real = cli(str(job))

    assert (rehearsed.code, rehearsed.err) == (3, expected)
    assert (real.code, real.err) == (3, expected)


def test_a_secret_that_is_set_but_broken_gets_no_stand_in(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMU_PEM_KEY", "-----BEGIN PRIVATE KEY-----\nnot a key\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
        "credentials:\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaX, key_id: k,\n"
        "        private_key: {env: EMU_PEM_KEY}}\n"
        f"steps:\n  - id: call\n    flow: {FLOW}\n"
    )

    result = cli(str(job), "--emulate")

    assert result.code == 3
    assert result.err == (
        f"{job}:5:9: credentials.jwt.private_key: not a PEM private key (or it is encrypted)\n"
    )


@pytest.mark.parametrize("command", ["run", "emulate"])
def test_a_missing_stub_file_exits_3(tmp_path: Path, cli: RunCli, command: str) -> None:
    missing = tmp_path / "missing.yaml"
    args = [str(token_job(tmp_path)), "--emulate"] if command == "run" else ["emulate"]

    result = cli(*args, "--stubs", str(missing))

    assert result.code == 3
    assert result.err == f"{missing}: cannot read stub file: No such file or directory\n"


@pytest.mark.parametrize("command", ["run", "emulate"])
def test_a_bad_stub_file_exits_3_with_its_line(tmp_path: Path, cli: RunCli, command: str) -> None:
    bad = DATA / "stubs" / "unknown_key.yaml"
    args = [str(token_job(tmp_path)), "--emulate"] if command == "run" else ["emulate"]

    result = cli(*args, "--stubs", str(bad))

    assert result.code == 3
    assert result.err.splitlines() == [
        f"{bad}:3:5: flows.abc.statsu: unknown key 'statsu'; did you mean 'status'?",
        f"{bad}:5:23: flows.abc.faults[0].bdy: unknown key 'bdy'; did you mean 'body'?",
    ]
    assert result.out == ""


def test_a_bad_default_stub_file_is_refused_too(tmp_path: Path, cli: RunCli) -> None:
    path = stubs(tmp_path, "flows:\n  hook: {echo: yes}\n")

    result = cli(str(token_job(tmp_path)), "--emulate")

    assert result.code == 3
    assert result.err == f"{path}:2:10: flows.hook.echo: expected true or false, found a string\n"


def test_emulate_serves_a_job_that_then_runs_against_it(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMU_HOOK_TOKEN", "emu-hook-token-1234567890")
    job = token_job(tmp_path)
    # As at a terminal: a shell that started us in the background made SIGINT ignored.
    code = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    argv = [sys.executable, "-c", code + "from owf_runner.cli import main; main()"]
    env = {**os.environ, "OWF_STATE_DIR": str(tmp_path / "state")}
    with subprocess.Popen(
        [*argv, "emulate", "--job", str(job)], stdout=subprocess.PIPE, text=True, env=env
    ) as server:
        assert server.stdout is not None
        ready = server.stdout.readline()  # blocks until the server says where it listens
        try:
            result = cli(str(job), "--emulator", ready.split(" listening on ")[1].split(" ")[0])
        finally:
            server.send_signal(signal.SIGINT)  # Ctrl-C is how a server is stopped: exit 0
            stopped = _wait(server)
        assert stopped == 0

    assert ready.startswith("Okta emulator listening on http://127.0.0.1:")
    assert result.code == 0, result.out + result.err
    assert "call: succeeded (1 attempt," in result.out


def _wait(process: subprocess.Popen[str]) -> int | None:
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()  # never hang the suite on a server that would not stop
        return None


def test_importing_the_runner_loads_no_emulator_code() -> None:
    code = (
        "import sys, owf_runner.runner, owf_runner.commands\n"
        "print(sorted(m for m in sys.modules if 'emulat' in m))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


VARS_JOB = """\
version: 1
orgs: {acme: {domain: acme.okta.com, credential: none}}
credentials: {none: {type: none}}
steps:
  - id: leave
    flow: https://acme.workflows.okta.com/api/flo/leave/invoke
    payload: {email: "{{ vars.email }}"}
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What `owf-run emulate` would serve; it returns at once instead of serving."""
    emulators: list[object] = []
    monkeypatch.setattr(
        "owf_runner.emulator.serve_forever", lambda emulator, **_: emulators.append(emulator)
    )
    return emulators


def test_emulate_takes_the_vars_a_job_needs(
    tmp_path: Path, cli: RunCli, served: list[object]
) -> None:
    job = tmp_path / "leaver.yaml"
    job.write_text(VARS_JOB)

    without = cli("emulate", "--job", str(job))
    given = cli("emulate", "--job", str(job), "--var", "email=ada@example.com")

    assert without.code == 3
    assert without.err == (
        f"{job}:7:15: steps[0].payload.email: unknown variable 'email' (define it under `vars` "
        "or pass --var)\n"
    )
    assert given.code == 0, given.err
    assert len(served) == 1


def test_emulate_refuses_vars_without_a_job(cli: RunCli, served: list[object]) -> None:
    result = cli("emulate", "--var", "email=ada@example.com")

    assert result.code == 2
    assert result.err == "owf-run: --var and --vars-file are the job's: give --job too\n"
    assert served == []
