"""JSON from outside — a server's answer, a foreach file — read strictly and bounded.

Python's json takes NaN, Infinity and 1e400 (inf), which JSON cannot carry on to a flow, and
recurses as deep as the text nests, until Python's stack gives out. Here such numbers are
refused (:class:`NotJsonNumber`) and nesting is bounded (:class:`TooDeep`), the same way for
every reader.
"""

from __future__ import annotations

import json
from typing import Any


class NotJsonNumber(ValueError):
    """NaN, Infinity or a number beyond a float: Python reads them, JSON has no such value."""


class TooDeep(Exception):
    """Nested deeper than the reader allows (not a ValueError: the text may well be JSON)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested more than {limit} levels deep")
        self.limit = limit


def loads(text: str | bytes, max_depth: int, lenient_numbers: bool = False) -> Any:
    """The JSON value of ``text``; ValueError (json's own, or NotJsonNumber) when it is not JSON.

    ``lenient_numbers`` reads every number as a float (inf when huge) instead of refusing it.
    """
    try:
        value = json.loads(
            text,
            parse_float=float if lenient_numbers else _finite,
            parse_int=float if lenient_numbers else None,
            parse_constant=float if lenient_numbers else _no_constant,
        )
    except RecursionError:
        raise TooDeep(max_depth) from None
    if _brackets(text) > max_depth and deeper_than(value, max_depth):  # counting is cheap
        raise TooDeep(max_depth)
    return value


def _brackets(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def deeper_than(value: Any, limit: int) -> bool:
    """Without recursion: the value may be as deep as Python's stack allowed json to go."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):  # one level of containers at a time
        level = [child for node in level for child in _containers_in(node)]
    return bool(level)


def _containers_in(node: Any) -> list[Any]:
    children = node.values() if isinstance(node, dict) else node
    return [child for child in children if isinstance(child, dict | list)]


def _no_constant(name: str) -> Any:
    raise NotJsonNumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise NotJsonNumber(f"{text[:20]} is too large for a number")
    return number
