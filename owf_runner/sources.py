"""Foreach item sources: a list, or a CSV / JSON Lines / JSON file streamed item by item.

Files are read as every file is (files.py: regular files only, strict UTF-8); CSV and JSONL
are streamed a bounded line at a time, a JSON file is read whole under its own cap. A bad
byte, an overlong line or item, or JSON nested too deep is a SourceError naming file:line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from owf_runner import jsonstrict
from owf_runner.files import (
    JSON_SOURCE,
    MAX_LINE_BYTES,
    STREAMED_SOURCE,
    CannotOpen,
    FileKind,
    UnreadableFile,
    decode,
    open_regular,
    read_all,
    size_text,
)
from owf_runner.redaction import escape_controls
from owf_runner.templating import TemplateError

MAX_NESTING = 64  # as for YAML; json itself would recurse until Python's stack gives out
# CSV fields stay under the csv module's own limit (131072 characters): it is process-wide,
# so it is never raised here.


class SourceKind(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"


class SourceError(TemplateError):
    """A foreach source could not be read; it fails the step before that item is sent."""


@dataclass(frozen=True)
class BadItem:
    """An item the source could not make (a CSV row with missing or extra fields).

    It fails alone, named by ``file:line``; the items around it still run.
    """

    message: str


LEFT_OUT = object()  # what a `where` filter returns for an item it leaves out


class Filtered:
    """The (index, item) pairs ``keep`` keeps — it returns the item to send (a BadItem when
    the filter fails for it), or LEFT_OUT — counting those it left out. Indexes stay the
    file's own: an item is named the same whatever the filter."""

    def __init__(self, items: Iterator[tuple[int, Any]], keep: Callable[[int, Any], Any]) -> None:
        self.items, self.keep = items, keep
        self.left_out = 0

    def __iter__(self) -> Filtered:
        return self

    def __next__(self) -> tuple[int, Any]:
        for index, item in self.items:
            if isinstance(item, BadItem):  # a row that could not be read fails, unfiltered
                return index, item
            kept = self.keep(index, item)
            if kept is not LEFT_OUT:
                return index, kept
            self.left_out += 1
        raise StopIteration


class _Line(NamedTuple):
    number: int
    text: str
    size: int  # in bytes, without the newline


def file_items(kind: SourceKind, path: Path) -> Iterator[Any]:
    """Opens the file now (so a missing file fails at once) and yields its items lazily."""
    file_kind = JSON_SOURCE if kind is SourceKind.JSON else STREAMED_SOURCE
    try:
        handle = open_regular(path, file_kind)
    except CannotOpen as exc:
        raise SourceError(f"cannot read {_at(path)}: {exc.strerror}") from None
    except UnreadableFile as exc:
        raise SourceError(str(exc)) from None
    readers = {SourceKind.CSV: _csv_rows, SourceKind.JSONL: _jsonl_items}
    return readers.get(kind, _json_items)(handle, path)


def _lines(handle: BinaryIO, path: Path) -> Iterator[_Line]:
    """Each line decoded (a BOM, as Excel writes, dropped), none longer than MAX_LINE_BYTES."""
    number = 0
    while raw := _read_line(handle, path):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise SourceError(f"{_at(path, number)}: line longer than {size_text(MAX_LINE_BYTES)}")
        text = _decoded(raw, path, number, STREAMED_SOURCE)
        size = len(raw) - raw.endswith(b"\n")
        yield _Line(number, text.removeprefix("\ufeff") if number == 1 else text, size)


def _read_line(handle: BinaryIO, path: Path) -> bytes:
    try:
        return handle.readline(MAX_LINE_BYTES + 1)  # a 1 GiB line is never held whole
    except OSError as exc:
        raise SourceError(f"cannot read {_at(path)}: {exc.strerror}") from None


def _decoded(raw: bytes, path: Path, first_line: int, kind: FileKind) -> str:
    try:
        return decode(raw, path, kind, first_line)
    except UnreadableFile as exc:
        raise SourceError(str(exc)) from None


def _csv_rows(handle: BinaryIO, path: Path) -> Iterator[Any]:
    """Each row a dict keyed by the header, as csv.DictReader makes it; a row with missing
    or extra fields is a BadItem (DictReader would file extras under None, fill gaps with None)."""
    record = _RecordSize(path)
    reader = csv.reader(record.counted(_lines(handle, path)))
    with handle:  # closed here, when reading ends for any reason, not whenever GC gets to it
        try:
            header = next(reader, [])  # the header: a record of its own
            record.ended()
            for row in reader:
                first = record.first
                record.ended()
                if row:  # a blank line is no row
                    yield _row(row, header, path, first)
        except csv.Error as exc:  # csv's line_num counts the lines of the failed row too
            raise SourceError(f"{_at(path, reader.line_num)}: {exc}") from None


def _row(row: list[str], header: list[str], path: Path, line: int) -> dict[str, str] | BadItem:
    if len(row) == len(header):
        return dict(zip(header, row, strict=True))
    fields = "1 field" if len(row) == 1 else f"{len(row)} fields"
    return BadItem(f"{_at(path, line)}: {fields}, but the header names {len(header)}")


class _RecordSize:
    """Bounds one CSV record: quoted newlines let a record run over many (bounded) lines.

    Also notes the line a record starts on (``first``): blank lines before it are skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.first = 0

    def counted(self, lines: Iterator[_Line]) -> Iterator[str]:
        for line in lines:
            self.size += line.size
            if self.size > MAX_LINE_BYTES:
                limit = size_text(MAX_LINE_BYTES)
                raise SourceError(f"{_at(self.path, line.number)}: record longer than {limit}")
            if not self.first and line.text.strip("\r\n"):
                self.first = line.number
            yield line.text

    def ended(self) -> None:
        self.size = 0  # csv reads no further than the end of the record it returns
        self.first = 0


def _jsonl_items(handle: BinaryIO, path: Path) -> Iterator[Any]:
    with handle:
        for line in _lines(handle, path):
            if line.text.strip():
                yield _json(line.text, path, line.number)


def _json_items(handle: BinaryIO, path: Path) -> Iterator[Any]:
    with handle:
        try:
            raw = read_all(handle, path, JSON_SOURCE)
        except UnreadableFile as exc:
            raise SourceError(str(exc)) from None
    data = _json(_decoded(raw, path, 1, JSON_SOURCE).removeprefix("\ufeff"), path, None)
    if not isinstance(data, list):
        raise SourceError(f"{_at(path)}: expected a JSON list, found {type(data).__name__}")
    yield from data


def _json(text: str, path: Path, line: int | None) -> Any:
    """One JSON value, strict: no NaN or Infinity, finite numbers, at most MAX_NESTING deep."""
    where = _at(path, line)
    try:
        return jsonstrict.loads(text, MAX_NESTING)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{_at(path, line or exc.lineno)}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except jsonstrict.NotJsonNumber as exc:
        raise SourceError(f"{where}: invalid JSON: {exc}") from None
    except ValueError:  # json reads any digits; Python refuses an int of over 4300
        raise SourceError(f"{where}: invalid JSON: a number too long to read") from None
    except jsonstrict.TooDeep as exc:
        raise SourceError(f"{where}: {exc}") from None


def _at(path: Path, line: int | None = None) -> str:
    """``file`` or ``file:line``; a name from a template may hold escape codes, shown escaped."""
    return escape_controls(f"{path}:{line}" if line else str(path))
