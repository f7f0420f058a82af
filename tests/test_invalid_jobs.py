"""Issue 3: bad input never reaches Okta.

Every file in tests/data/invalid/ is run through the real CLI against a running
emulator: exit code 3, exactly the expected problems on stderr, nothing on
stdout, and not a single request (not even a token request).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from owf_runner.emulator import Emulator
from tests.conftest import Cli
from tests.test_loader import EXPECTED, INVALID

RunCli = Callable[..., Cli]
NAMES = sorted(EXPECTED)


def expected_lines(name: str) -> list[str]:
    return [f"{INVALID / name}:{suffix}" for suffix in EXPECTED[name]]


def test_every_invalid_file_is_covered() -> None:
    assert {p.name for p in INVALID.iterdir()} == set(EXPECTED)
    assert len(NAMES) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_invalid_job_exits_3_and_sends_nothing(
    name: str, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the secret at hand, a job that slipped through would get as far as a request.
    monkeypatch.setenv("ACME_TOKEN", "token-for-the-invalid-jobs")
    emulator.register_client_token("token-for-the-invalid-jobs")
    path = INVALID / name

    result = cli(str(path), "--emulator", emulator.base_url)

    assert emulator.calls == []
    assert result.code == 3, result.err
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert lines
    assert all(line.startswith(f"{path}:") for line in lines), result.err


@pytest.mark.parametrize("name", NAMES)
def test_invalid_job_prints_exactly_the_expected_problems(
    name: str, emulator: Emulator, cli: RunCli
) -> None:
    result = cli(str(INVALID / name), "--emulator", emulator.base_url)

    assert result.err.splitlines() == expected_lines(name)
    assert result.err.endswith("\n")
    assert (result.code, result.out, emulator.calls) == (3, "", [])


def test_validate_reports_every_file_at_once(cli: RunCli) -> None:
    paths = [str(INVALID / name) for name in NAMES]

    result = cli("validate", *paths)

    assert result.code == 3
    printed = result.err.splitlines()
    for name in NAMES:
        for line in expected_lines(name):
            assert line in printed
    reported = {line.split(":", 1)[0] for line in printed}
    assert reported == set(paths)
