"""Foreach item sources: a list, or a CSV / JSON Lines / JSON file streamed item by item."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from owf_runner.templating import TemplateError


class SourceKind(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"


class SourceError(TemplateError):
    """A foreach source could not be read; it fails the step before that item is sent."""


def file_items(kind: SourceKind, path: Path) -> Iterator[Any]:
    """Opens the file now (so a missing file fails at once) and yields its items lazily."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")  # a BOM (Excel) is dropped
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    readers = {SourceKind.CSV: _csv_rows, SourceKind.JSONL: _jsonl_items}
    return readers.get(kind, _json_items)(handle, path)


def _csv_rows(handle: IO[str], path: Path) -> Iterator[Any]:
    with handle:
        try:
            yield from csv.DictReader(handle)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: {exc}") from None


def _jsonl_items(handle: IO[str], path: Path) -> Iterator[Any]:
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise SourceError(f"{path}:{number}: invalid JSON: {exc}") from None


def _json_items(handle: IO[str], path: Path) -> Iterator[Any]:
    with handle:
        try:
            data = json.load(handle)
        except ValueError as exc:
            raise SourceError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list, found {type(data).__name__}")
    yield from data
