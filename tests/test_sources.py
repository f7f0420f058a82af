"""Foreach file sources, read lazily."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import owf_runner.sources
from owf_runner.sources import BadItem, SourceError, SourceKind, file_items


def test_csv_rows_are_dicts_keyed_by_the_header_without_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffemail,app\na@x.io,slack\nb@x.io,github\n".encode())

    rows = list(file_items(SourceKind.CSV, path))

    assert rows == [{"email": "a@x.io", "app": "slack"}, {"email": "b@x.io", "app": "github"}]


def test_a_csv_row_with_missing_or_extra_fields_is_a_bad_item_naming_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('email,app\na@x.io\n\nb@x.io,slack,extra,more\n"c@x.io\n",zoom\nd@x.io,\n')

    rows = list(file_items(SourceKind.CSV, path))

    assert rows == [
        BadItem(f"{path}:2: 1 field, but the header names 2"),
        BadItem(f"{path}:4: 4 fields, but the header names 2"),  # line 3 is blank: no row
        {"email": "c@x.io\n", "app": "zoom"},  # a quoted newline: one record over two lines
        {"email": "d@x.io", "app": ""},  # an empty field is still a field
    ]


def test_a_bad_row_after_a_multi_line_record_names_the_line_it_starts_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('a,b\n"1\n\n2",x\n\n\n3\n')

    rows = list(file_items(SourceKind.CSV, path))

    assert rows == [
        {"a": "1\n\n2", "b": "x"},
        BadItem(f"{path}:7: 1 field, but the header names 2"),
    ]


def test_jsonl_skips_blank_lines_and_names_the_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"n": 1}\n\n{"n": 2}\nnot json\n')
    items = file_items(SourceKind.JSONL, path)

    assert [next(items), next(items)] == [{"n": 1}, {"n": 2}]
    with pytest.raises(SourceError) as raised:
        next(items)
    assert str(raised.value) == f"{path}:4:1: invalid JSON: Expecting value"


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


def errors(kind: SourceKind, path: Path) -> tuple[list[object], str]:
    """The items read before the source failed, and how it failed."""
    items: list[object] = []
    with pytest.raises(SourceError) as raised:
        items.extend(file_items(kind, path))
    return items, str(raised.value)


@pytest.mark.parametrize("kind", list(SourceKind))
def test_dev_zero_is_not_a_regular_file(kind: SourceKind) -> None:
    _, message = errors(kind, Path("/dev/zero"))

    noun = "JSON foreach source" if kind is SourceKind.JSON else "foreach source"
    assert message == f"/dev/zero: {noun} is not a regular file (a character device)"


@pytest.mark.parametrize("kind", list(SourceKind))
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, kind: SourceKind) -> None:
    os.mkfifo(tmp_path / "pipe")

    _, message = errors(kind, tmp_path / "pipe")

    noun = "JSON foreach source" if kind is SourceKind.JSON else "foreach source"
    assert message == f"{tmp_path / 'pipe'}: {noun} is not a regular file (a FIFO)"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    _, message = errors(SourceKind.CSV, tmp_path)

    assert message == f"{tmp_path}: foreach source is not a regular file (a directory)"


@pytest.mark.parametrize(
    ("kind", "content", "read"),
    [
        (SourceKind.JSONL, b'{"n": 1}\n{"n": "\xe9"}\n{"n": 3}\n', [{"n": 1}]),
        (SourceKind.CSV, b"n,app\n1,slack\n2,caf\xe9\n", [{"n": "1", "app": "slack"}]),
    ],
    ids=["jsonl", "csv"],
)
def test_a_bad_byte_fails_at_its_line_after_the_items_before_it(
    tmp_path: Path, kind: SourceKind, content: bytes, read: list[object]
) -> None:
    path = tmp_path / f"items.{kind}"
    path.write_bytes(content)

    items, message = errors(kind, path)

    assert items == read
    line, col = (2, 8) if kind is SourceKind.JSONL else (3, 6)
    assert message == f"{path}:{line}:{col}: foreach source is not UTF-8"


def test_a_bad_byte_in_a_json_source_names_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_bytes(b'[\n  {"n": 1},\n  {"n": "\xff"}\n]\n')

    assert errors(SourceKind.JSON, path) == ([], f"{path}:3:10: JSON foreach source is not UTF-8")


@pytest.mark.parametrize("kind", [SourceKind.JSONL, SourceKind.CSV])
def test_a_line_over_the_cap_is_refused_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: SourceKind
) -> None:
    monkeypatch.setattr(owf_runner.sources, "MAX_LINE_BYTES", 100)
    path = tmp_path / f"items.{kind}"
    path.write_text('"n"\n' + '"' + "x" * 98 + '"\n' + '"' + "x" * 99 + '"\n')

    items, message = errors(kind, path)

    assert len(items) == (2 if kind is SourceKind.JSONL else 1)  # 100 bytes and \\n: still read
    assert message == f"{path}:3: line longer than 100 bytes"


def test_a_csv_record_spanning_lines_is_bounded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owf_runner.sources, "MAX_LINE_BYTES", 100)
    path = tmp_path / "rows.csv"
    path.write_text('a,b\n1,2\n"' + "xx\n" * 60 + '",3\n')

    items, message = errors(SourceKind.CSV, path)

    assert items == [{"a": "1", "b": "2"}]
    assert message == f"{path}:52: record longer than 100 bytes"  # 3 + 49 * 2 bytes, newlines aside


def test_a_csv_field_over_the_csv_limit_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a\nsmall\n" + "x" * 200_000 + "\n")

    items, message = errors(SourceKind.CSV, path)

    assert items == [{"a": "small"}]
    assert message == f"{path}:3: field larger than field limit (131072)"


@pytest.mark.parametrize(
    ("kind", "text", "where"),
    [
        (SourceKind.JSONL, '{"n": 1}\n' + "[" * 200_000 + "\n", ":2"),
        (SourceKind.JSONL, '{"n": 1}\n' + "[" * 65 + "]" * 65 + "\n", ":2"),
        (SourceKind.JSON, "[" * 200_000, ""),
        (SourceKind.JSON, "[" + '{"a": ' * 64 + "1" + "}" * 64 + "]", ""),
    ],
    ids=["jsonl-200000", "jsonl-65", "json-200000", "json-65"],
)
def test_json_nested_too_deep_is_refused(
    tmp_path: Path, kind: SourceKind, text: str, where: str
) -> None:
    path = tmp_path / f"items.{kind}"
    path.write_text(text)

    _, message = errors(kind, path)

    assert message == f"{path}{where}: nested more than 64 levels deep"


def test_json_nested_64_deep_is_read(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text("[" * 64 + "]" * 64 + "\n")

    assert len(list(file_items(SourceKind.JSONL, path))) == 1


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ('{"n": NaN}', "NaN is not a JSON number"),
        ('{"n": -Infinity}', "-Infinity is not a JSON number"),
        ('{"n": 1e400}', "1e400 is too large for a number"),
        ('{"n": ' + "9" * 5000 + "}", "a number too long to read"),
    ],
    ids=["nan", "infinity", "1e400", "5000-digits"],
)
def test_numbers_json_does_not_have_are_refused(tmp_path: Path, item: str, problem: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(item + "\n")

    assert errors(SourceKind.JSONL, path) == ([], f"{path}:1: invalid JSON: {problem}")


def test_a_json_source_over_its_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    with path.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024 + 1)  # sparse

    assert errors(SourceKind.JSON, path) == (
        [],
        f"{path}: JSON foreach source is larger than the 16 MiB limit",
    )


def test_a_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[\n  {"n": 1},\n  {"n": }\n]\n')

    assert errors(SourceKind.JSON, path) == ([], f"{path}:3:9: invalid JSON: Expecting value")


def test_a_bom_is_dropped_from_jsonl_and_json(tmp_path: Path) -> None:
    jsonl, json_file = tmp_path / "items.jsonl", tmp_path / "items.json"
    jsonl.write_bytes('\ufeff{"n": 1}\n'.encode())
    json_file.write_bytes('\ufeff[{"n": 1}]'.encode())

    assert list(file_items(SourceKind.JSONL, jsonl)) == [{"n": 1}]
    assert list(file_items(SourceKind.JSON, json_file)) == [{"n": 1}]


def test_the_line_cap_is_1_mib(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('"' + "x" * (1024 * 1024 - 2) + '"\n' + '"' + "x" * (1024 * 1024) + '"\n')

    items, message = errors(SourceKind.JSONL, path)

    assert [len(item) for item in items] == [1024 * 1024 - 2]  # 1 MiB exactly, and a newline
    assert message == f"{path}:2: line longer than 1 MiB"
