"""Problems as records: where (file, line, column, key path) and what.

A problem is formatted once, by ``str()``, as ``FILE:LINE:COL: key.path: message``;
lists of them are sorted by position, never by parsing their text back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

KeyPath = tuple[str | int, ...]
TOP = "(top level)"  # the key path of a problem with the whole file


@dataclass(frozen=True)
class Location:
    file: Path
    line: int | None = None  # None: the problem is with the file as a whole (unreadable)
    col: int = 1

    def __str__(self) -> str:
        return str(self.file) if self.line is None else f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    location: Location
    key_path: KeyPath | None  # None: not about a key ("cannot read job file")
    message: str

    def __str__(self) -> str:
        if self.key_path is None:
            return f"{self.location}: {self.message}"
        return f"{self.location}: {format_key_path(self.key_path) or TOP}: {self.message}"

    @property
    def position(self) -> tuple[int, int]:
        return (self.location.line or 0, self.location.col)


def in_file_order(problems: Iterable[Problem]) -> list[Problem]:
    """Sorted by line, then column (stable); exact duplicates dropped."""
    return sorted(dict.fromkeys(problems), key=lambda problem: problem.position)


def format_key_path(key_path: KeyPath) -> str:
    return "".join(_key_parts(key_path)).lstrip(".")


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key_parts(key_path: KeyPath) -> Iterator[str]:
    for part in key_path:
        if isinstance(part, int):
            yield f"[{part}]"
        elif _PLAIN_KEY.match(part):
            yield f".{part}"
        else:  # quoted, so a key with a newline or an escape code stays on one harmless line
            yield f"[{json.dumps(part)}]"
