"""The one redactor every byte the runner writes passes through (DESIGN §4).

Kept free of heavy imports: the error boundary needs it before anything else loads.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse

MASK = "********"


class Redactor:
    """Masks every registered secret, and its common encodings, in text."""

    def __init__(self) -> None:
        self._needles: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < 6:  # masking "abc" everywhere would mangle output, not protect
            return
        with self._lock:
            self._needles.update(_encodings(secret))

    def redact(self, text: str) -> str:
        with self._lock:
            needles = sorted(self._needles, key=len, reverse=True)
        for needle in needles:
            text = text.replace(needle, MASK)
        return text


def _encodings(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    # A multi-line secret (a PEM key) also leaks line by line.
    forms.update(line for line in secret.splitlines() if len(line) >= 16)
    return {form for form in forms if form}


REDACTOR = Redactor()


def shown(text: str, limit: int | None = None) -> str:
    """Untrusted text (a server's, a file's) made safe to print inside one of our lines.

    Redacted first, so a cut can never keep part of a secret; then control characters,
    newlines included, are escaped so the text cannot forge a line or drive the terminal;
    cut last.
    """
    safe = escape_controls(REDACTOR.redact(text))
    if limit is not None and len(safe) > limit:
        return safe[:limit] + "…"
    return safe


def escape_controls(text: str, keep: str = "") -> str:
    """ESC, BEL, CR, bidi overrides… → visible ``\\x1b``; ``keep`` names the ones left as is."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch in keep or ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )
