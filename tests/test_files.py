"""Every file owf-run reads is read bounded and strictly (DESIGN §9).

Unit tests of owf_runner.files, then each kind of file through the real CLI: a device, a FIFO,
a file over its cap, a bad byte or a character YAML refuses is one located message with its
exit code — never exit 70, never a hang, never a request that should not have been sent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from owf_runner.emulator import Emulator, FlowStub
from owf_runner.files import (
    JOB_FILE,
    CannotOpen,
    FileKind,
    FileMissing,
    UnreadableFile,
    decode,
    read_bytes,
    read_text,
)
from tests.conftest import DATA, Cli

RunCli = Callable[..., Cli]
HOSTILE = DATA / "hostile"
TOKEN = "token-for-the-hostile-files"
TINY = FileKind("job file", 10)


@pytest.fixture
def served(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator knows the client token the jobs in tests/data/hostile/ read from ACME_TOKEN."""
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    emulator.register_client_token(TOKEN)
    for flow in ("ping", "after"):
        emulator.set_stub(flow, FlowStub(security="client_token"))
    return emulator


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


# -- files.py ------------------------------------------------------------------------


def test_a_regular_file_is_read_whole_up_to_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "ten.yaml"
    path.write_bytes(b"a: 123456\n")

    assert read_bytes(path, TINY) == b"a: 123456\n"


def test_one_byte_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "eleven.yaml"
    path.write_bytes(b"a: 1234567\n")

    with pytest.raises(UnreadableFile) as raised:
        read_bytes(path, TINY)

    assert str(raised.value) == f"{path}: job file is larger than the 10 bytes limit"


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda tmp: Path("/dev/zero"), "a character device"),
        (lambda tmp: Path("/dev/null"), "a character device"),
        (lambda tmp: tmp, "a directory"),
    ],
    ids=["dev-zero", "dev-null", "directory"],
)
def test_anything_but_a_regular_file_is_refused(
    tmp_path: Path, make: Callable[[Path], Path], what: str
) -> None:
    path = make(tmp_path)

    with pytest.raises(UnreadableFile) as raised:
        read_bytes(path, JOB_FILE)

    assert str(raised.value) == f"{path}: job file is not a regular file ({what})"


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(UnreadableFile) as raised:
        read_bytes(fifo, JOB_FILE)

    assert str(raised.value) == f"{fifo}: job file is not a regular file (a FIFO)"


def test_a_pipe_as_stdin_is_refused() -> None:
    # What /dev/stdin is under `cat job.yaml | owf-run /dev/stdin`.
    reader, writer = os.pipe()
    try:
        with pytest.raises(UnreadableFile) as raised:
            read_bytes(Path(f"/dev/fd/{reader}"), JOB_FILE)
    finally:
        os.close(reader)
        os.close(writer)

    assert str(raised.value) == f"/dev/fd/{reader}: job file is not a regular file (a FIFO)"


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(UnreadableFile) as raised:
            read_bytes(path, JOB_FILE)

    assert str(raised.value) == f"{path}: job file is not a regular file (a socket)"


def test_a_missing_file_is_its_own_kind_of_error(tmp_path: Path) -> None:
    with pytest.raises(FileMissing) as raised:
        read_bytes(tmp_path / "gone.yaml", JOB_FILE)

    assert raised.value.strerror == "No such file or directory"
    assert str(raised.value) == (
        f"{tmp_path / 'gone.yaml'}: cannot read job file: No such file or directory"
    )


def test_a_nul_in_the_name_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(CannotOpen) as raised:
        read_bytes(tmp_path / "a\x00b", JOB_FILE)

    assert str(raised.value) == (f"{tmp_path}/a\\x00b: cannot read job file: embedded null byte")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_an_unreadable_file_is_not_missing(tmp_path: Path) -> None:
    path = tmp_path / "locked.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)

    with pytest.raises(CannotOpen) as raised:
        read_bytes(path, JOB_FILE)

    assert not isinstance(raised.value, FileMissing)
    assert raised.value.strerror == "Permission denied"


@pytest.mark.parametrize(
    ("data", "line", "col"),
    [
        (b"\xff", 1, 1),
        (b"ab\ncd\n\xc3\xa9\xc3\xa9x\xe9\n", 3, 4),  # columns count characters, not bytes
        (b"a: 1\nb: 2\nc: \xc3\xa9\xe9\n", 3, 5),
        (b"ok\n\xc3", 2, 1),  # cut in the middle of a character
        (b"ok\n\xed\xa0\x80\n", 2, 1),  # a surrogate, which UTF-8 may not hold
    ],
)
def test_a_bad_byte_is_located_at_its_line_and_column(
    tmp_path: Path, data: bytes, line: int, col: int
) -> None:
    path = tmp_path / "f.yaml"

    with pytest.raises(UnreadableFile) as raised:
        decode(data, path, JOB_FILE)

    assert str(raised.value) == f"{path}:{line}:{col}: job file is not UTF-8"


def test_a_bad_byte_in_a_later_chunk_counts_from_its_first_line(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile) as raised:
        decode(b"x\xff", tmp_path / "f", JOB_FILE, first_line=41)

    assert str(raised.value) == f"{tmp_path / 'f'}:41:2: job file is not UTF-8"


def test_read_text_is_strict_utf8(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes("café: ✓\n".encode())

    assert read_text(path, JOB_FILE) == "café: ✓\n"


def test_a_name_with_an_escape_code_is_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "\x1b[2Jevil.yaml"

    with pytest.raises(FileMissing) as raised:
        read_bytes(path, JOB_FILE)

    assert "\x1b" not in str(raised.value)
    assert str(raised.value).startswith(f"{tmp_path}/\\x1b[2Jevil.yaml: cannot read job file")


# -- through the CLI: job files ------------------------------------------------------------


def assert_refused(result: Cli, emulator: Emulator, line: str) -> None:
    """Exit 3, exactly this one line on stderr, nothing on stdout, nothing sent."""
    assert (result.code, result.out, result.err) == (3, "", line + "\n")
    assert emulator.calls == []


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_as_job_file(served: Emulator, cli: RunCli, device: str) -> None:
    result = cli(device, "--emulator", served.base_url)

    assert_refused(result, served, f"{device}: job file is not a regular file (a character device)")


def test_a_directory_as_job_file(served: Emulator, cli: RunCli, tmp_path: Path) -> None:
    result = cli(str(tmp_path), "--emulator", served.base_url)

    assert_refused(result, served, f"{tmp_path}: job file is not a regular file (a directory)")


def test_a_fifo_as_job_file_does_not_hang(fifo: Path) -> None:
    # A real process with a deadline: were the FIFO opened blocking, this would wait forever.
    done = subprocess.run(
        [sys.executable, "-m", "owf_runner", "validate", str(fifo)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == f"{fifo}: job file is not a regular file (a FIFO)\n"


def test_a_job_file_one_byte_over_5_mib(served: Emulator, cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes((HOSTILE / "ok.yaml").read_bytes())
    with path.open("r+b") as handle:
        handle.truncate(5 * 1024 * 1024 + 1)  # the rest is sparse NULs: never reached

    result = cli(str(path), "--emulator", served.base_url)

    assert_refused(result, served, f"{path}: job file is larger than the 5 MiB limit")


def test_a_job_file_of_exactly_5_mib_is_read(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    text = (HOSTILE / "ok.yaml").read_bytes()
    path.write_bytes(text + b"#" * (5 * 1024 * 1024 - len(text)))

    result = cli("validate", str(path))

    assert (result.code, result.out, result.err) == (0, f"{path}: ok\n", "")


def test_a_bel_byte_in_the_job_file(served: Emulator, cli: RunCli) -> None:
    path = HOSTILE / "bel.yaml"

    result = cli(str(path), "--emulator", served.base_url)

    assert_refused(
        result, served, f"{path}:2:11: (top level): invalid YAML: character U+0007 is not allowed"
    )


def test_invalid_utf8_is_located(served: Emulator, cli: RunCli) -> None:
    path = HOSTILE / "not_utf8_at_3_5.yaml"

    result = cli(str(path), "--emulator", served.base_url)

    assert_refused(result, served, f"{path}:3:5: job file is not UTF-8")


def test_validate_names_each_bad_file_and_goes_on(cli: RunCli) -> None:
    result = cli("validate", "/dev/zero", str(HOSTILE / "ok.yaml"), str(HOSTILE / "bel.yaml"))

    assert result.code == 3
    assert result.out == f"{HOSTILE / 'ok.yaml'}: ok\n"
    assert result.err.splitlines() == [
        "/dev/zero: job file is not a regular file (a character device)",
        f"{HOSTILE / 'bel.yaml'}:2:11: (top level): invalid YAML: character U+0007 is not allowed",
    ]


# -- through the CLI: vars and stub files -----------------------------------------------


def test_dev_zero_as_vars_file(served: Emulator, cli: RunCli) -> None:
    job = str(HOSTILE / "ok.yaml")

    result = cli(job, "--emulator", served.base_url, "--vars-file", "/dev/zero")

    assert_refused(
        result, served, "/dev/zero: vars file is not a regular file (a character device)"
    )


def test_a_bad_byte_in_a_vars_file(served: Emulator, cli: RunCli, tmp_path: Path) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_bytes(b"name: Ada\nteam: caf\xe9\n")

    result = cli(
        str(HOSTILE / "ok.yaml"), "--emulator", served.base_url, "--vars-file", str(vars_file)
    )

    assert_refused(result, served, f"{vars_file}:2:10: vars file is not UTF-8")


def test_dev_zero_as_stub_file(cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_TOKEN", TOKEN)

    result = cli(str(HOSTILE / "ok.yaml"), "--emulate", "--stubs", "/dev/zero")

    assert (result.code, result.out) == (3, "")
    assert result.err == "/dev/zero: stub file is not a regular file (a character device)\n"


def test_a_bel_byte_in_a_stub_file(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    stubs = tmp_path / "stubs.yaml"
    stubs.write_bytes(b'flows:\n  ping: {body: "\x07"}\n')

    result = cli(str(HOSTILE / "ok.yaml"), "--emulate", "--stubs", str(stubs))

    assert (result.code, result.out) == (3, "")
    assert result.err == (
        f"{stubs}:2:17: (top level): invalid YAML: character U+0007 is not allowed\n"
    )


# -- through the CLI: foreach sources --------------------------------------------------


def step_failure(out: str, step: str) -> str:
    """What the console said after "STEP: failed (...): "."""
    [line] = [line for line in out.splitlines() if f" {step}: failed (" in line]
    return line.split("): ", 1)[1]


def test_a_bad_byte_on_line_2_of_a_jsonl_source_fails_the_step(
    served: Emulator, cli: RunCli
) -> None:
    job, source = HOSTILE / "foreach_bad_byte.yaml", HOSTILE / "bad_byte_line2.jsonl"

    result = cli(str(job), "--emulator", served.base_url)

    assert (result.code, result.err) == (1, "")
    assert step_failure(result.out, "ping") == (
        f"{job}:9:15: steps[0].foreach.jsonl: {source}:2:11: foreach source is not UTF-8"
    )
    assert " ping: failed (1 items, 1 attempt, " in result.out  # the item before it was sent
    assert [json.loads(call.body) for call in served.invocations()] == [{"n": 1}]
    assert re.search(r"^after +not run ", result.out, re.MULTILINE)


def test_dev_zero_as_foreach_source_fails_the_step_before_any_item(
    served: Emulator, cli: RunCli
) -> None:
    job = HOSTILE / "foreach_dev_zero.yaml"

    result = cli(str(job), "--emulator", served.base_url)

    assert (result.code, result.err) == (1, "")
    assert step_failure(result.out, "ping") == (
        f"{job}:9:15: steps[0].foreach.json: "
        "/dev/zero: JSON foreach source is not a regular file (a character device)"
    )
    assert served.invocations() == []


def test_plan_shows_an_unreadable_source_as_a_failure_before_sending(cli: RunCli) -> None:
    job = HOSTILE / "foreach_dev_zero.yaml"

    result = cli("plan", str(job))

    assert result.code == 0, result.err
    assert (
        f"   fails before sending: {job}:9:15: steps[0].foreach.json: "
        "/dev/zero: JSON foreach source is not a regular file (a character device)"
    ) in result.out.splitlines()


# -- through the CLI: a CA bundle -------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "what"), [("/dev/zero", "a character device"), ("pipe.yaml", "a FIFO")]
)
def test_a_ca_bundle_that_is_not_a_regular_file(
    cli: RunCli, tmp_path: Path, fifo: Path, bundle: str, what: str
) -> None:
    job = tmp_path / "job.yaml"
    text = (HOSTILE / "ok.yaml").read_text()
    job.write_text(text.replace("credential: hook}", f"credential: hook, ca_bundle: {bundle}}}"))

    result = cli("validate", str(job))

    shown = bundle if bundle.startswith("/") else str(tmp_path / bundle)
    assert (result.code, result.out) == (3, "")
    assert result.err == (
        f"{job}:3:51: orgs.acme.ca_bundle: {shown}: CA bundle is not a regular file ({what})\n"
    )
