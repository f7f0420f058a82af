"""Stub files are read like job files: YAML 1.2, strict models, problems at file:line:col.

Every bad sample in tests/data/stubs/ pins the exact problems it gives, in file order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from owf_runner.emulator import Emulator, Fault, FlowStub, load_stub_file
from owf_runner.errors import ExitCode, JobError

STUBS = Path(__file__).parent / "data" / "stubs"
FLOW = "d71da429cdb0b4ef4dc23a1bb1ed9d1b"

# file name -> the problems it gives, without the leading "FILE:"
EXPECTED: dict[str, list[str]] = {
    "unknown_key.yaml": [
        "3:5: flows.abc.statsu: unknown key 'statsu'; did you mean 'status'?",
        "5:23: flows.abc.faults[0].bdy: unknown key 'bdy'; did you mean 'body'?",
    ],
    "wrong_type.yaml": [
        "3:5: flows.abc.status: expected an integer, found a string",
        "4:15: flows.abc.headers.X-Retry: expected a string, found a boolean",
        "5:5: flows.abc.faults: expected a list, found a mapping",
    ],
    "status_out_of_range.yaml": [
        "3:5: flows.abc.status: expected at most 599, found 600",
        "5:10: flows.abc.faults[0].times: expected at least 1, found 0",
        "5:20: flows.abc.faults[0].status: expected at least 100, found 99",
        "5:32: flows.abc.faults[0].delay: expected at least 0, found -1",
    ],
    "fault_body_without_status.yaml": [
        "4:20: flows.abc.faults[0].body: needs `status` (without it the call is answered normally)",
    ],
    "echo_yes.yaml": [
        "4:5: flows.abc.echo: expected true or false, found a string",
    ],
    "unknown_security.yaml": [
        "2:9: flows.abc.security: expected 'oauth2', 'client_token' or 'none', found 'basic'",
    ],
    "invalid_yaml.yaml": [
        "3:6: (top level): invalid YAML: expected ',' or '}', but got ':'",
    ],
    "duplicate_key.yaml": [
        "4:5: flows.abc.status: duplicate key 'status'",
    ],
}


def problems_of(path: Path) -> list[str]:
    with pytest.raises(JobError) as caught:
        load_stub_file(path)
    assert caught.value.exit_code == ExitCode.INVALID_JOB
    return [str(problem) for problem in caught.value.problems]


def test_every_sample_is_covered() -> None:
    assert {path.name for path in STUBS.iterdir()} == {*EXPECTED, "valid.yaml"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_stub_file_gives_exactly_the_expected_problems(name: str) -> None:
    path = STUBS / name

    assert problems_of(path) == [f"{path}:{suffix}" for suffix in EXPECTED[name]]


def test_missing_stub_file_names_the_file() -> None:
    path = STUBS / "missing.yaml"

    assert problems_of(path) == [f"{path}: cannot read stub file: No such file or directory"]


def test_valid_stub_file_loads_every_key() -> None:
    stubs = load_stub_file(STUBS / "valid.yaml")

    assert stubs == {
        FLOW: FlowStub(
            status=201,
            headers={"Content-Type": "application/json", "X-Rate-Limit-Remaining": "0"},
            body={"id": "00u{{ uuid4()[:8] }}", "active": True},
            echo=False,
            security="client_token",
            faults=(
                Fault(
                    times=2,
                    status=429,
                    headers={"X-Rate-Limit-Reset": "1700000000"},
                    body={"error": "slow down"},
                ),
                Fault(drop=True),
                Fault(delay=0.5),
            ),
        ),
        "by_alias": FlowStub(status=204),
        "echo_default": FlowStub(),
    }


def test_security_is_left_to_the_caller_when_the_stub_does_not_say() -> None:
    stubs = load_stub_file(STUBS / "valid.yaml")

    assert stubs["by_alias"].security is None
    assert stubs["by_alias"].effective_security == "oauth2"
    assert stubs[FLOW].effective_security == "client_token"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "flows:\n", "flows: {}\n"])
def test_a_file_without_flows_has_no_stubs(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stubs.yaml"
    path.write_text(text)

    assert load_stub_file(path) == {}


@pytest.mark.parametrize("text", ["flows:\n  f:\n", "flows:\n  f: {}\n", "flows: {f: null}\n"])
def test_an_empty_stub_is_the_default_echo(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stubs.yaml"
    path.write_text(text)

    assert load_stub_file(path) == {"f": FlowStub()}


def test_a_bad_stub_file_sets_no_stub(tmp_path: Path) -> None:
    path = tmp_path / "stubs.yaml"
    path.write_text("flows:\n  good: {status: 204}\n  bad: {status: 600}\n")
    emulator = Emulator()

    with pytest.raises(JobError):
        emulator.load_stubs(path)
    assert emulator.stub("good") is None
