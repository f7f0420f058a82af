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
