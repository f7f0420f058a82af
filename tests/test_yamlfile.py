"""YAML loading: 1.2 scalars, positions, duplicate keys, refused tags and bombs."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from owf_runner import yamlfile
from owf_runner.errors import ExitCode, JobError
from owf_runner.files import JOB_FILE, VARS_FILE, FileKind
from owf_runner.problems import Location, Problem, format_key_path, in_file_order
from owf_runner.yamlfile import Mark, load_yaml


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(JobError) as info:
        load_yaml(path)
    assert info.value.exit_code == ExitCode.INVALID_JOB
    return [str(problem) for problem in info.value.problems]


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("Yes", "Yes"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("012", 12),
        ("-7", -7),
        ("1:20", "1:20"),
        ("2024-01-02", "2024-01-02"),
        ("2024-01-02T10:00:00Z", "2024-01-02T10:00:00Z"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("~", None),
        ("null", None),
        ("", None),
        ("'012'", "012"),
        ('"true"', "true"),
    ],
)
def test_yaml_12_core_scalars(tmp_path: Path, scalar: str, expected: object) -> None:
    value = load_yaml(write(tmp_path, f"value: {scalar}\n")).data["value"]

    assert value == expected
    assert type(value) is type(expected)


def test_special_floats(tmp_path: Path) -> None:
    data = load_yaml(write(tmp_path, "a: .inf\nb: -.Inf\nc: .nan\n")).data

    assert data["a"] == math.inf
    assert data["b"] == -math.inf
    assert math.isnan(data["c"])


def test_empty_file_is_none(tmp_path: Path) -> None:
    assert load_yaml(write(tmp_path, "")).data is None


def test_location_gives_file_line_col_of_each_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "top: 1\nnested:\n  list: [1, {inner: 2}]\n  other: x\n")
    doc = load_yaml(path)

    assert doc.data == {"top": 1, "nested": {"list": [1, {"inner": 2}], "other": "x"}}
    assert doc.location(("top",)) == Location(path, 1, 1)
    assert str(doc.location(("top",))) == f"{path}:1:1"
    assert str(doc.location(("nested", "list"))) == f"{path}:3:3"
    assert str(doc.location(("nested", "list", 1))) == f"{path}:3:13"
    assert str(doc.location(("nested", "list", 1, "inner"))) == f"{path}:3:14"
    assert str(doc.location(("nested", "other"))) == f"{path}:4:3"


def test_location_falls_back_to_nearest_ancestor(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nnested:\n  b: 2\n")
    doc = load_yaml(path)

    assert doc.locate(("nested", "missing", 3)) == Mark(2, 1)
    assert str(doc.location(("nowhere",))) == f"{path}:1:1"


def test_document_problem_is_a_record_at_the_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nnested:\n  b: 2\n")
    doc = load_yaml(path)

    problem = doc.problem(("nested", "b"), "wrong")

    assert problem == Problem(Location(path, 3, 3), ("nested", "b"), "wrong")
    assert str(problem) == f"{path}:3:3: nested.b: wrong"
    assert str(doc.problem((), "whole file")) == f"{path}:1:1: (top level): whole file"


def test_a_problem_without_a_key_path_or_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"

    assert str(Problem(Location(path), None, "cannot read")) == f"{path}: cannot read"


def test_in_file_order_sorts_by_line_then_column_and_drops_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    late = Problem(Location(path, 9, 1), ("b",), "late")
    early = Problem(Location(path, 2, 7), ("a",), "early")
    earlier = Problem(Location(path, 2, 3), ("a",), "earlier")
    whole = Problem(Location(path), None, "unreadable")

    assert in_file_order([late, early, late, earlier, whole]) == [whole, earlier, early, late]


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\n")

    assert load_yaml(path).sha256 == hashlib.sha256(b"a: 1\n").hexdigest()


def test_format_key_path() -> None:
    assert format_key_path(("steps", 0, "payload", "name")) == "steps[0].payload.name"
    assert format_key_path(()) == ""


def test_format_key_path_quotes_keys_that_are_not_plain() -> None:
    assert format_key_path(("headers", "X Thing")) == 'headers["X Thing"]'
    assert format_key_path(("a", "line\nbreak")) == 'a["line\\nbreak"]'


def test_duplicate_keys_name_position_and_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nb:\n  c: 2\n  c: 3\na: 4\n")

    assert problems(path) == [
        f"{path}:4:3: b.c: duplicate key 'c'",
        f"{path}:5:1: a: duplicate key 'a'",
    ]


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system x\n", "!!python/object:os.system"),
        ("a: !!python/name:os.system ''\n", "!!python/name:os.system"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !custom x\n", "!custom"),
    ],
)
def test_unsupported_tags_are_refused(tmp_path: Path, text: str, tag: str) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [f"{path}:1:4: a: unsupported YAML tag {tag}"]


def test_python_object_tag_on_a_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: !!python/object/apply:os.system\n  args: [echo pwned]\n")

    [message] = problems(path)
    assert message.startswith(f"{path}:1:4: a: unsupported YAML tag")


def test_tag_on_a_sequence_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: !!python/tuple [1, 2]\n")

    assert problems(path) == [f"{path}:1:4: a: unsupported YAML tag !!python/tuple"]


def test_complex_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "? [a, b]\n: 1\n")

    [message] = problems(path)
    assert message.startswith(f"{path}:1:3: ")
    assert message.endswith("mapping keys must be plain strings")


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    path = write(tmp_path, "\n".join(lines) + "\n")

    [message] = problems(path)
    assert message.startswith(f"{path}:")
    assert message.endswith(": more than 100000 values once aliases are expanded (an alias bomb?)")


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: &a [*a]\n")

    assert problems(path) == [f"{path}:1:4: a: nested more than 64 levels deep (through aliases)"]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: " + "[" * 80 + "]" * 80 + "\n")

    assert problems(path) == [f"{path}:1:67: (top level): nested more than 64 levels deep"]


def test_very_deep_nesting_is_refused_without_recursion(tmp_path: Path) -> None:
    # Deep enough that a recursive composer would hit Python's recursion limit.
    path = write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")

    assert problems(path) == [f"{path}:1:67: (top level): nested more than 64 levels deep"]


def test_files_over_5_mib_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(JOB_FILE.cap + 1)  # sparse: no 5 MiB written

    assert problems(path) == [f"{path}: job file is larger than the 5 MiB limit"]


def test_size_limit_boundary(tmp_path: Path) -> None:
    tiny = FileKind("job file", 10)
    at_limit = tmp_path / "ten.yaml"
    at_limit.write_bytes(b"a: 123456\n")
    over = tmp_path / "eleven.yaml"
    over.write_bytes(b"a: 1234567\n")

    assert load_yaml(at_limit, tiny).data == {"a": 123456}
    with pytest.raises(JobError) as info:
        load_yaml(over, tiny)
    assert str(info.value) == f"{over}: job file is larger than the 10 bytes limit"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n")

    [message] = problems(path)
    assert message.startswith(f"{path}:3:2: (top level): invalid YAML: ")
    assert "expected ',' or ']'" in message


def test_tab_indentation_is_invalid_yaml_with_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a:\n\tb: 1\n")

    [message] = problems(path)
    assert message.startswith(f"{path}:2:1: (top level): invalid YAML: ")


def test_non_utf8_file_is_refused_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: \xc3\xa9\xe9\n")  # é, then a lone Latin-1 é

    assert problems(path) == [f"{path}:3:5: job file is not UTF-8"]


@pytest.mark.parametrize(
    ("text", "where", "code"),
    [
        ("a: 1\nb: x\x07y\n", "2:5", "0007"),
        ("a: \x00\n", "1:4", "0000"),
        ("a: '\x1b[31mred'\n", "1:5", "001B"),
        ("a: 1\n\x7f: 2\n", "2:1", "007F"),
    ],
    ids=["BEL", "NUL", "ESC", "DEL"],
)
def test_a_character_yaml_refuses_is_a_located_problem(
    tmp_path: Path, text: str, where: str, code: str
) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [
        f"{path}:{where}: (top level): invalid YAML: character U+{code} is not allowed"
    ]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a:\n\tb: 1\n", "2:1", "found character '\\t' that cannot start any token"),  # scanner
        ("a: [1, 2\nb: 3\n", "2:2", "expected ',' or ']', but got ':'"),  # parser
        ("a: 1\nb: *nope\n", "2:4", "found undefined alias 'nope'"),  # composer
        ("a: 1\n---\nb: 2\n", "2:1", "but found another document"),  # composer
        ("a: \x07\n", "1:4", "character U+0007 is not allowed"),  # reader
    ],
    ids=["scanner", "parser", "undefined-alias", "two-documents", "reader"],
)
def test_every_kind_of_yaml_error_is_one_located_problem(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [f"{path}:{where}: (top level): invalid YAML: {problem}"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    assert problems(path) == [f"{path}: cannot read job file: No such file or directory"]


def test_an_integer_too_long_to_read_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "a: " + "9" * 5000 + "\n")

    assert problems(path) == [f"{path}:1:4: a: cannot read '99999999999999999999'... as an integer"]


def test_messages_name_what_the_file_is(tmp_path: Path) -> None:
    missing = tmp_path / "vars.yaml"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"a: caf\xe9\n")

    with pytest.raises(JobError) as unreadable:
        load_yaml(missing, VARS_FILE)
    with pytest.raises(JobError) as undecodable:
        load_yaml(latin1, VARS_FILE)
    with pytest.raises(JobError) as not_regular:
        load_yaml(tmp_path, VARS_FILE)

    assert [str(p) for p in unreadable.value.problems] == [
        f"{missing}: cannot read vars file: No such file or directory"
    ]
    assert [str(p) for p in undecodable.value.problems] == [f"{latin1}:1:7: vars file is not UTF-8"]
    assert [str(p) for p in not_regular.value.problems] == [
        f"{tmp_path}: vars file is not a regular file (a directory)"
    ]


SAMPLE = """\
version: 1
vars: {a: yes, b: 012, c: 1:20, d: .inf, e: ~, f: "x"}
steps:
  - id: one
    payload:
      list: [1, 2.5, true, null]
      anchor: &shared {k: v}
      alias: *shared
      text: |
        two
        lines
"""


def test_libyaml_and_the_pure_loader_read_a_file_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SAMPLE)
    fast = load_yaml(path)
    monkeypatch.setattr(yamlfile, "_CLoader", None)  # as on a Python built without libyaml
    exact = load_yaml(path)

    assert yamlfile.yaml.__with_libyaml__
    assert (fast.data, fast.marks) == (exact.data, exact.marks)
    assert fast.data["vars"] == {
        "a": "yes",
        "b": 12,
        "c": "1:20",
        "d": math.inf,
        "e": None,
        "f": "x",
    }


def test_a_valid_file_is_read_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def second_pass(path: Path, text: str) -> None:
        raise AssertionError("read twice")

    monkeypatch.setattr(yamlfile, "_compose_exactly", second_pass)

    assert load_yaml(write(tmp_path, SAMPLE)).marks[("steps", 0, "payload", "text")] == Mark(9, 7)


def test_a_long_file_without_aliases_is_no_alias_bomb(tmp_path: Path) -> None:
    # A 10,000-step job holds more than 100,000 values, none of them copied by an alias.
    path = write(tmp_path, "big: [" + "0, " * 120_000 + "0]\n")

    assert len(load_yaml(path).data["big"]) == 120_001


def test_values_copied_by_aliases_are_counted(tmp_path: Path) -> None:
    shared = "shared: &s [" + ", ".join(["x"] * 999) + "]\n"  # the list and its 999 items
    copies = "\n".join(f"c{i}: *s" for i in range(100)) + "\n"  # 100 copies of 1,000 values

    assert load_yaml(write(tmp_path, shared + copies)).data["c99"] == ["x"] * 999
    [message] = problems(write(tmp_path, shared + copies + "c100: *s\n", name="more.yaml"))
    assert message == (  # at the value copied, under the key that copied it
        f"{tmp_path / 'more.yaml'}:1:9: c100: "
        "more than 100000 values once aliases are expanded (an alias bomb?)"
    )
