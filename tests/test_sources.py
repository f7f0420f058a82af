"""Foreach file sources, read lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

from owf_runner.sources import SourceError, SourceKind, file_items


def test_csv_rows_are_dicts_keyed_by_the_header_without_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffemail,app\na@x.io,slack\nb@x.io,github\n".encode())

    rows = list(file_items(SourceKind.CSV, path))

    assert rows == [{"email": "a@x.io", "app": "slack"}, {"email": "b@x.io", "app": "github"}]


def test_jsonl_skips_blank_lines_and_names_the_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"n": 1}\n\n{"n": 2}\nnot json\n')
    items = file_items(SourceKind.JSONL, path)

    assert [next(items), next(items)] == [{"n": 1}, {"n": 2}]
    with pytest.raises(SourceError, match=rf"^{path}:4: invalid JSON: "):
        next(items)


def test_a_json_source_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('{"n": 1}')

    with pytest.raises(SourceError) as raised:
        list(file_items(SourceKind.JSON, path))

    assert str(raised.value) == f"{path}: expected a JSON list, found dict"


def test_a_missing_file_fails_when_opened_not_when_read(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as raised:
        file_items(SourceKind.CSV, tmp_path / "gone.csv")

    assert str(raised.value) == f"cannot read {tmp_path / 'gone.csv'}: No such file or directory"
