"""Safe YAML loading that remembers where every value came from.

We compose the node graph ourselves instead of calling ``yaml.safe_load`` so
that every key path can be traced back to ``line:col`` for error messages,
duplicate keys are caught, and alias expansion is bounded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from owf_runner.errors import JobError
from owf_runner.files import JOB_FILE, FileKind, UnreadableFile, decode, read_bytes
from owf_runner.problems import KeyPath, Location, Problem
from owf_runner.redaction import escape_controls

MAX_NODES = 100_000
MAX_DEPTH = 64


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars.

    YAML 1.1 turns ``no`` (Norway), ``on``, ``1:20`` and ``012`` into bools,
    sexagesimals and octals; a job file should mean what it looks like.
    """


_Yaml12Loader.yaml_implicit_resolvers = {}
_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]
for _tag, _pattern, _first in _RESOLVERS:
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class _TooDeep(Exception):
    """Nesting past MAX_DEPTH, met while composing (the exact pass locates it)."""


def _c_loader() -> type | None:
    """libyaml's event parser under our composer and YAML 1.2 resolver, when it is built in."""
    if not yaml.__with_libyaml__:
        return None
    from yaml._yaml import CParser

    class CLoader(CParser, _Yaml12Loader):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            Resolver.__init__(self)
            self.depth = 0

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
            # Bounded here, in the one pass: the composer recurses once per level.
            # isinstance, not check_event: libyaml's check_event matches exact classes only.
            opens = isinstance(self.peek_event(), yaml.CollectionStartEvent)
            self.depth += opens
            if self.depth > MAX_DEPTH:
                raise _TooDeep
            node = Composer.compose_node(self, parent, index)
            self.depth -= opens
            return node

    return CLoader


_CLoader = _c_loader()


@dataclass(frozen=True)
class Mark:
    line: int
    col: int


@dataclass
class YamlDocument:
    """Plain data plus the position of every key path in the source file."""

    path: Path
    data: Any
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    sha256: str = ""  # of the file's bytes: tells a changed job file from the one that ran

    def locate(self, key_path: KeyPath) -> Mark:
        """The position of ``key_path``, or of its nearest ancestor that has one."""
        for depth in range(len(key_path), -1, -1):
            mark = self.marks.get(tuple(key_path[:depth]))
            if mark is not None:
                return mark
        return Mark(1, 1)

    def location(self, key_path: KeyPath) -> Location:
        mark = self.locate(key_path)
        return Location(self.path, mark.line, mark.col)

    def problem(self, key_path: KeyPath, message: str) -> Problem:
        return Problem(self.location(key_path), key_path, message)


def load_yaml(path: Path, kind: FileKind = JOB_FILE) -> YamlDocument:
    """A job, vars or stub file (``kind``), read bounded and strictly; JobError otherwise."""
    raw, text = _read(path, kind)
    node = _compose_fast(text)
    if node is _FAILED:
        node = _compose_exactly(path, text)
    doc = YamlDocument(path=path, data=None, sha256=hashlib.sha256(raw).hexdigest())
    builder = _Builder(doc)
    doc.data = builder.build(node, ()) if node is not None else None
    if builder.problems:
        raise JobError(builder.problems)
    return doc


# The fast pass found something wrong: the exact pass says what.
_FAILED = yaml.Node("", None, None, None)


def _compose_fast(text: str) -> yaml.Node | None:
    """One pass of libyaml, or _FAILED: a file it refuses is read again by the exact pass.

    libyaml words its errors differently (and some not at all): every message comes from
    the pure-Python pass, so a file means the same with or without libyaml.
    """
    if _CLoader is None:
        return _FAILED
    loader = _CLoader(text)
    try:
        node: yaml.Node | None = Composer.get_single_node(loader)
        return node
    except (yaml.YAMLError, _TooDeep):
        return _FAILED
    finally:
        loader.dispose()


def _compose_exactly(path: Path, text: str) -> yaml.Node | None:
    """The pure-Python passes: depth from the events first, so the composer cannot recurse."""
    try:
        _check_depth(path, text)
        node: yaml.Node | None = yaml.compose(text, Loader=_Yaml12Loader)
        return node
    except yaml.YAMLError as exc:
        raise JobError([_syntax_problem(path, text, exc)]) from None


def _read(path: Path, kind: FileKind) -> tuple[bytes, str]:
    try:
        raw = read_bytes(path, kind)
        return raw, decode(raw, path, kind)
    except UnreadableFile as exc:
        raise JobError([Problem(exc.location, None, exc.reason)]) from None


def _check_depth(path: Path, text: str) -> None:
    """Refuse deep nesting from the event stream: the composer would recurse too deep."""
    depth = 0
    for event in yaml.parse(text, Loader=_Yaml12Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                message = f"nested more than {MAX_DEPTH} levels deep"
                raise JobError([Problem(_location(path, event.start_mark), (), message)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _location(path: Path, mark: Any) -> Location:
    return Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1)


def _syntax_problem(path: Path, text: str, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        location, what = _location(path, exc.problem_mark), exc.problem or exc.context
    elif isinstance(exc, ReaderError):  # a character YAML refuses, e.g. BEL
        location = _position(path, text, exc.position)
        what = f"character U+{exc.character:04X} is not allowed"
    else:  # not raised by a loader today; kept a located error rather than a bug
        location, what = Location(path, 1), str(exc)
    # Escaped, not redacted: the boundary redacts every line out, and no secret is known yet.
    return Problem(location, (), f"invalid YAML: {escape_controls(str(what))}")


def _position(path: Path, text: str, offset: int) -> Location:
    line_start = text.rfind("\n", 0, offset) + 1
    return Location(path, text.count("\n", 0, offset) + 1, offset - line_start + 1)


class _Builder:
    """Turns a composed node graph into plain data, recording marks and problems."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.built: set[int] = set()  # id() of every node built once
        self.copies = 0  # values built again, through an alias

    def build(self, node: yaml.Node, key_path: KeyPath) -> Any:
        self._count(node, key_path)
        self.doc.marks.setdefault(key_path, _mark(node))
        if isinstance(node, yaml.CollectionNode) and node.tag not in _COLLECTION_TAGS:
            self._problem(node, key_path, f"unsupported YAML tag {_shown(node.tag)}")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, key_path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*key_path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, key_path)

    def _count(self, node: yaml.Node, key_path: KeyPath) -> None:
        # Aliases make a small file expand into a huge or endless tree ("billion laughs").
        # Only what they copy counts: a long job of plain values is no bomb.
        if id(node) in self.built:
            self.copies += 1
        self.built.add(id(node))
        if len(key_path) > MAX_DEPTH:
            message = f"nested more than {MAX_DEPTH} levels deep (through aliases)"
        elif self.copies > MAX_NODES:
            message = f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)"
        else:
            return
        mark = _mark(node)  # the full key path may be 100s deep: name its top key only
        raise JobError(
            [Problem(Location(self.doc.path, mark.line, mark.col), key_path[:1], message)]
        )

    def _mapping(self, node: yaml.MappingNode, key_path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, key_path)
            if key in result:
                self._problem(key_node, (*key_path, key), f"duplicate key {key!r}")
                continue
            self.doc.marks[(*key_path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*key_path, key))
        return result

    def _key(self, node: yaml.Node, key_path: KeyPath) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self._problem(node, key_path, "mapping keys must be plain strings")
            return f"<complex key at line {_mark(node).line}>"
        return str(node.value)

    def _scalar(self, node: yaml.Node, key_path: KeyPath) -> Any:
        value = str(node.value)
        tag = node.tag.rsplit(":", 1)[-1]
        converter = _CONVERTERS.get(tag)
        if converter is None:
            self._problem(node, key_path, f"unsupported YAML tag {_shown(node.tag)}")
            return None
        try:
            return converter(value)
        except ValueError:  # e.g. an integer of more than 4300 digits
            what = "an integer" if tag == "int" else "a number"
            self._problem(node, key_path, f"cannot read {value[:20]!r}... as {what}")
            return None

    def _problem(self, node: yaml.Node, key_path: KeyPath, message: str) -> None:
        mark = _mark(node)
        self.problems.append(
            Problem(Location(self.doc.path, mark.line, mark.col), key_path, message)
        )


def _shown(tag: str) -> str:
    """A tag as the user wrote it: ``!!python/object``, not ``tag:yaml.org,2002:python/object``."""
    return tag.replace("tag:yaml.org,2002:", "!!")


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _float(value: str) -> float:
    lowered = value.lower()
    if lowered.endswith(".inf"):
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    return float(value)


def _bool(value: str) -> bool:
    return value.lower() == "true"


def _null(value: str) -> None:
    return None


_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _int(value: str) -> int:
    # YAML 1.2: 0o17 and 0x1F are integers; 012 is twelve, not octal ten.
    if value.lower().lstrip("+-").startswith(("0o", "0x")):
        return int(value, 0)
    return int(value)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "null": _null,
}
