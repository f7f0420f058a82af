"""Every file owf-run reads is read here: regular files only, bounded, strict UTF-8 (DESIGN §9).

A job file could name ``/dev/zero`` (endless), a FIFO (blocks forever), or a 3 GiB file: each is
a clear error naming the file, not a hang, a bug or a memory blow-up. The caps are fixed: a file
that needs more is a mistake, or (a big foreach list) belongs in a streamed CSV or JSONL source.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from owf_runner.problems import Location
from owf_runner.redaction import escape_controls

MiB = 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    noun: str  # how messages name the file: "job file", "secret file"
    cap: int  # most bytes read; one more is an error


JOB_FILE = FileKind("job file", 5 * MiB)
VARS_FILE = FileKind("vars file", 5 * MiB)
STUB_FILE = FileKind("stub file", 5 * MiB)
SECRET_FILE = FileKind("secret file", 1 * MiB)  # a PEM key is ~3 KiB, a token ~50 bytes
CA_BUNDLE = FileKind("CA bundle", 5 * MiB)  # Mozilla's whole trust store is ~0.2 MiB
# Loaded whole, and JSON grows ~25 times as Python objects (16 MiB of `{},` takes 430 MiB).
JSON_SOURCE = FileKind("JSON foreach source", 16 * MiB)
# CSV and JSONL sources are streamed, so only a line is bounded, not the file; an item larger
# than a payload (1 MiB) could not be sent whole anyway.
STREAMED_SOURCE = FileKind("foreach source", 1 * MiB)
MAX_LINE_BYTES = STREAMED_SOURCE.cap

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_NOT_REGULAR = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class UnreadableFile(Exception):
    """A file owf-run cannot use; ``str()`` names the file (and the line, when there is one)."""

    def __init__(self, location: Location, reason: str) -> None:
        self.location = location
        self.reason = reason  # without the file name: "job file is not UTF-8"
        # A name from a job file may hold an escape code: it must not drive the terminal.
        super().__init__(escape_controls(f"{location}: {reason}"))


class CannotOpen(UnreadableFile):
    """The system refused to open it; ``strerror`` says why ("Permission denied")."""

    def __init__(self, path: Path, kind: FileKind, strerror: str) -> None:
        self.strerror = strerror
        super().__init__(Location(path), f"cannot read {kind.noun}: {strerror}")


class FileMissing(CannotOpen):
    """No such file: a rehearsal may stand in for a missing secret file."""


def open_regular(path: Path, kind: FileKind) -> BinaryIO:
    """The file opened for binary reading, once it is known to be a regular file.

    Checked before opening (a socket cannot even be opened) and again after, on the file
    actually opened; O_NONBLOCK keeps the open from waiting for a FIFO's writer in between.
    """
    try:
        _check_regular(path, kind, os.stat(path).st_mode)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise FileMissing(path, kind, exc.strerror or "No such file or directory") from None
    except OSError as exc:
        raise CannotOpen(path, kind, exc.strerror or type(exc).__name__) from None
    except ValueError as exc:  # a NUL in the name, from a YAML "\0" escape
        raise CannotOpen(path, kind, str(exc)) from None
    try:
        _check_regular(path, kind, os.fstat(fd).st_mode)
    except UnreadableFile:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_regular(path: Path, kind: FileKind, mode: int) -> None:
    if not stat.S_ISREG(mode):
        what = _NOT_REGULAR.get(stat.S_IFMT(mode), "a special file")
        raise UnreadableFile(Location(path), f"{kind.noun} is not a regular file ({what})")


def read_bytes(path: Path, kind: FileKind) -> bytes:
    """The whole file, or UnreadableFile when it holds more than ``kind.cap`` bytes."""
    with open_regular(path, kind) as handle:
        return read_all(handle, path, kind)


def read_all(handle: BinaryIO, path: Path, kind: FileKind) -> bytes:
    """What is left in ``handle``, at most ``kind.cap`` bytes (UnreadableFile beyond)."""
    try:
        data = handle.read(kind.cap + 1)  # one more tells "too big", even if it grew
    except OSError as exc:
        raise CannotOpen(path, kind, exc.strerror or type(exc).__name__) from None
    if len(data) > kind.cap:
        message = f"{kind.noun} is larger than the {size_text(kind.cap)} limit"
        raise UnreadableFile(Location(path), message)
    return data


def read_text(path: Path, kind: FileKind) -> str:
    return decode(read_bytes(path, kind), path, kind)


def decode(data: bytes, path: Path, kind: FileKind, first_line: int = 1) -> str:
    """Strict UTF-8; a bad byte is an error at its line and column (``first_line`` of ``data``)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_and_column(data, exc.start)
        location = Location(path, first_line + line - 1, col)
        raise UnreadableFile(location, f"{kind.noun} is not UTF-8") from None


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    # Everything before the first bad byte decodes, so the column counts characters.
    column = len(data[line_start:offset].decode("utf-8")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def size_text(limit: int) -> str:
    """A cap as people read it: "5 MiB", "10 bytes"."""
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"


def is_utf8(text: str) -> bool:
    """False for the lone surrogates Python makes of argv or environ bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
