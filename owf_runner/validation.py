"""Pydantic validation errors → problems users can act on, at the key that is wrong."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from owf_runner.problems import KeyPath, Problem
from owf_runner.yamlfile import YamlDocument

Schema = dict[str, Any]  # a JSON Schema, for "did you mean" suggestions


def validation_problems(
    exc: ValidationError, document: YamlDocument, schema: Schema
) -> Iterator[Problem]:
    by_path: dict[KeyPath, list[str]] = {}
    for error in _without_echoes(exc.errors(include_url=False)):
        path, message = _located(error, document.data, schema)
        messages = by_path.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    for path, messages in by_path.items():
        for message in _merge_type_errors(messages):
            yield document.problem(path, message)


def _without_echoes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Pydantic adds "too short" to a list whose items all failed: the items say it better."""
    failed_items = {error["loc"][:-1] for error in errors if error["loc"]}
    return [e for e in errors if not (e["type"] == "too_short" and e["loc"] in failed_items)]


def _located(error: ErrorDetails, data: Any, schema: Schema) -> tuple[KeyPath, str]:
    path = _data_path(error["loc"], data, error["type"] in _KEY_ERRORS)
    value = error.get("input")
    if error["type"] == "union_tag_invalid" and isinstance(value, dict) and "type" in value:
        path = (*path, "type")  # point at the wrong type, not at the credential
    stray = _stray_secret_key(error, value)
    if stray is not None:
        return (*path, stray), _unknown_key((*path, stray), schema)
    return path, _describe(error, path, schema)


def _stray_secret_key(error: ErrorDetails, value: Any) -> str | None:
    """The one unknown key of a secret reference like ``{envv: X}``, to point at."""
    if error["type"] != "secret_reference" or not isinstance(value, dict) or len(value) != 1:
        return None
    key = next(iter(value))
    return None if key in {"env", "file", "command"} else str(key)


def _merge_type_errors(messages: list[str]) -> list[str]:
    """`when: 5` fails both union members; say "expected a string or true or false" once."""
    wanted = [m.removeprefix("expected ").split(", found ")[0] for m in messages]
    found = {m.split(", found ", 1)[-1] for m in messages}
    if len(messages) < 2 or len(found) != 1 or not all(m.startswith("expected ") for m in messages):
        return messages
    return [f"expected {' or '.join(wanted)}, found {found.pop()}"]


def _data_path(loc: tuple[str | int, ...], data: Any, about_a_key: bool) -> KeyPath:
    """Pydantic's loc minus the union tags it inserts (``env``, ``private_key_jwt``...).

    A tag can also be a key of the data (``{env: X, typo: 1}``), so both readings
    are tried; the one that places the loc's last part wins.
    """
    readings = _readings(loc, data, (), about_a_key)
    return max(readings, key=lambda reading: (reading[1], len(reading[0])))[0]


def _readings(
    loc: tuple[str | int, ...], data: Any, path: KeyPath, about_a_key: bool
) -> Iterator[tuple[KeyPath, bool]]:
    """(path, whether the last loc part was placed) for each way of reading ``loc``."""
    if not loc:
        yield path, False
        return
    part, rest = loc[0], loc[1:]
    if not rest:
        placed = _indexes(data, part) or (about_a_key and isinstance(data, dict))
        yield ((*path, part), True) if placed else (path, False)
        return
    if _indexes(data, part):
        yield from _readings(rest, data[part], (*path, part), about_a_key)
    yield from _readings(rest, data, path, about_a_key)


def _indexes(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _describe(error: ErrorDetails, path: KeyPath, schema: Schema) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(path, schema)
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, found {_type_name(value)}"
    special = _SPECIAL.get(kind)
    if special:
        return special(value, ctx, path)
    return str(error["msg"]).removeprefix("Value error, ")


def _secret_reference(value: Any, ctx: dict[str, Any], path: KeyPath) -> str:
    if isinstance(value, str):
        return (
            "secrets do not live in job files: use {env: NAME}, {file: PATH} "
            "or {command: [argv, ...]}"
        )
    keys = ", ".join(map(str, value)) if isinstance(value, dict) else _type_name(value)
    return f"expected exactly one of env, file or command, found {keys or 'nothing'}"


def _pattern(value: Any, ctx: dict[str, Any], path: KeyPath) -> str:
    key = path[-2] if len(path) > 1 and isinstance(path[-1], int) else path[-1] if path else ""
    what = {
        "id": "a step id (letters, digits and _, not starting with a digit)",
        "rate_limit": "a rate like 10/s, 600/min or 3600/h",
        "scopes": "a scope (printable ASCII without spaces or quotes)",
        "name": "a name without control characters",
    }.get(str(key), f"text matching {ctx.get('pattern')}")
    return f"expected {what}, found {value!r}"


def _spelled(number: Any) -> str:
    """A number as a job file would spell it: 86400, 2.5, .inf (not 86400.0, 2.5e+00, inf)."""
    if isinstance(number, float):
        if math.isnan(number):
            return ".nan"
        if math.isinf(number):
            return ".inf" if number > 0 else "-.inf"
        if number.is_integer() and abs(number) < 1e16:
            return str(int(number))
    return repr(number)


_SPECIAL: dict[str, Callable[[Any, dict[str, Any], KeyPath], str]] = {
    "secret_reference": _secret_reference,
    "string_pattern_mismatch": _pattern,
    "too_short": lambda v, ctx, p: "needs at least one entry",
    "string_too_short": lambda v, ctx, p: "must not be empty",
    "literal_error": lambda v, ctx, p: f"expected {ctx['expected']}, found {v!r}",
    "enum": lambda v, ctx, p: f"expected {ctx['expected']}, found {v!r}",
    "finite_number": lambda v, ctx, p: f"expected a finite number, found {_spelled(v)}",
    "union_tag_not_found": lambda v, ctx, p: (
        "`type` is required: private_key_jwt, client_token or none"
    ),
    "union_tag_invalid": lambda v, ctx, p: (
        f"unknown type {ctx['tag']!r}; expected {ctx['expected_tags']}"
    ),
    "greater_than": lambda v, ctx, p: (
        f"expected a number above {_spelled(ctx['gt'])}, found {_spelled(v)}"
    ),
    "greater_than_equal": lambda v, ctx, p: (
        f"expected at least {_spelled(ctx['ge'])}, found {_spelled(v)}"
    ),
    "less_than_equal": lambda v, ctx, p: (
        f"expected at most {_spelled(ctx['le'])}, found {_spelled(v)}"
    ),
}
_KEY_ERRORS = {"missing", "extra_forbidden"}


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names |= {dict: "a mapping", list: "a list", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _unknown_key(path: KeyPath, schema: Schema) -> str:
    key = str(path[-1])
    allowed = _allowed_keys(schema, path[:-1])
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint}"


def _allowed_keys(schema: Schema, path: KeyPath) -> set[str]:
    """The property names the JSON Schema allows at ``path``."""
    defs = schema.get("$defs", {})
    candidates = [schema]
    for part in path:
        candidates = [child for node in candidates for child in _children(node, part, defs)]
    return {name for node in candidates for name in _properties(node, defs)}


def _expand(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in node:
        return _expand(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return [leaf for branch in branches for leaf in _expand(branch, defs)]
    return [node]


def _children(node: dict[str, Any], part: str | int, defs: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for leaf in _expand(node, defs):
        if isinstance(part, int) and isinstance(leaf.get("items"), dict):
            found.append(leaf["items"])
        elif part in leaf.get("properties", {}):
            found.append(leaf["properties"][part])
        elif isinstance(leaf.get("additionalProperties"), dict):
            found.append(leaf["additionalProperties"])
    return found


def _properties(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    return {name for leaf in _expand(node, defs) for name in leaf.get("properties", {})}
