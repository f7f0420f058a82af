"""Header rules (RFC 9110): what a step may send, checked before anything is sent.

A name is a token of ASCII letters, digits and ``!#$%&'*+-.^_`|~``; a value is
printable ASCII (tabs allowed inside), without spaces at either end. Literal
headers are checked by ``validate``; rendered ones fail their step, located.
"""

from __future__ import annotations

import re

from owf_runner.redaction import quoted

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SHOWN = 60  # characters of a bad name or value quoted in a message


def header_problem(name: str, value: str | None) -> str | None:
    """What is wrong with a header (``value`` None: the name alone), or None."""
    if not _TOKEN.fullmatch(name):
        return (
            f"not a valid HTTP header name: {_quoted(name)} "
            "(ASCII letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    if value is None:
        return None
    return _value_problem(value)


def _value_problem(value: str) -> str | None:
    if _CONTROL.search(value):
        return f"a header value cannot hold control characters or line breaks: {_quoted(value)}"
    if not value.isascii():
        return f"a header value must be ASCII: {_quoted(value)}"
    if value != value.strip(" \t"):
        return f"a header value cannot start or end with a space: {_quoted(value)}"
    return None


def _quoted(text: str) -> str:
    """``repr`` escapes control characters: nothing in a message moves the terminal."""
    return quoted(text, _SHOWN)
