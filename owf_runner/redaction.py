"""The one redactor every byte the runner writes passes through (DESIGN §4).

Kept free of heavy imports: the error boundary needs it before anything else loads.

Very short secrets: a secret of 4 or more characters is masked wherever it appears; one of 1 to 3
characters is masked only where it stands alone as a word (not inside a longer word or number),
since masking every "ab" inside other words would mangle the output without hiding anything. The
JSON literals `true`, `false` and `null` inside a secret output are not masked on their own (they
are one of three values, and masking them would blank every boolean printed), though the whole
value they are part of is.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MASK = "********"
SHORT = 4  # a secret shorter than this is masked only as a whole word
MAX_SECRET_DEPTH = 64  # as deep as a response's JSON may be
# An environment value that is not UTF-8 reaches Python as lone surrogates: encode them back
# to the bytes they stand for rather than fail to register the secret.
_AS_BYTES = "surrogateescape"
_LONG_LINE = 16  # a multi-line secret (a PEM key) also leaks line by line, from this length
_JSON_STYLES: tuple[dict[str, Any], ...] = (
    {"separators": (",", ":")},  # compact, as httpx2 sends a payload
    {},  # json.dumps's default, as `as_json` and the console print it
    {"indent": 2},  # pretty, as `plan` prints it
)


@dataclass(frozen=True)
class _Needle:
    text: str
    alone: bool  # masked only where it stands as a whole word


# Needles kept in compiled patterns; past this many, new ones go to the _Index (a `secret: true`
# output per item of a 20,000-item foreach makes ~70,000: one regex of them took 8 s and 300 MB).
COMPILED_NEEDLES = 1024


class Redactor:
    """Masks every registered secret, and its common encodings, in text.

    Needles are kept in a few compiled regular expressions (one trie-shaped alternation each):
    a new batch gets its own, and two of similar size are merged, so that registering secrets
    one by one costs O(n log n) compiling in all and a redaction scans with O(log n) of them.
    Past ``compiled_needles``, new needles go to an index instead, which costs nothing to add
    to and a dict look-up per character of text to scan, however many needles it holds.
    """

    def __init__(self, compiled_needles: int = COMPILED_NEEDLES) -> None:
        self._known: set[_Needle] = set()
        self._pending: set[_Needle] = set()
        self._tiers: list[_Tier] = []
        self._compiled: list[re.Pattern[str]] = []  # the tiers' patterns, once compiled
        self._index = _Index()
        self._compiled_needles = compiled_needles
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """A credential or token: the string, its encodings and, when multi-line, its long lines."""
        secret = secret.strip()
        if len(secret) < SHORT and not any(ch.isalnum() for ch in secret):
            return  # a lone ":" or "-" cannot be told from punctuation: masking it garbles all
        forms = _encodings(secret) | _long_lines(secret) | _long_runs(secret)
        self._register(forms, alone=len(secret) < SHORT)

    def add_value(self, value: Any) -> None:
        """A ``secret: true`` output of any type: every leaf, and every rendering of the value
        and of each part of it (compact, default and pretty JSON, ASCII-escaped or not).

        TooDeep, registering nothing, when it is nested past MAX_SECRET_DEPTH."""
        for piece in list(_pieces(value, MAX_SECRET_DEPTH)):  # all, or none if too deep
            self.add(piece)

    def redact(self, text: str) -> str:
        # Most texts hold no secret: one search per pattern says so, with no spans to gather.
        found = [pattern for pattern in self._patterns() if pattern.search(text)]
        spans = [span for pattern in found for span in _matches(pattern, text)]
        if self._index:
            spans += self._index.spans(text)
        return _masked(text, spans) if spans else text

    def _register(self, forms: Iterable[str], alone: bool) -> None:
        needles = {_Needle(form, alone) for form in forms if form}
        with self._lock:
            new = needles - self._known
            if len(self._known) + len(new) > self._compiled_needles:
                indexed = {n for n in new if not n.alone and len(n.text) >= _ANCHOR}
                for needle in indexed:  # the index knows its own: no _Needle kept for them
                    self._index.add(needle.text)
                new -= indexed  # word rules (alone) and the shortest stay with the patterns
            self._known |= new
            self._pending |= new

    def _patterns(self) -> list[re.Pattern[str]]:
        if not self._pending:  # as it is between registrations: no lock, no new list
            return self._compiled
        with self._lock:
            if self._pending:
                self._tiers.append(_Tier(frozenset(self._pending)))
                self._pending = set()
                self._merge_similar_tiers()
            self._compiled = [tier.pattern for tier in self._tiers]
            return self._compiled

    def _merge_similar_tiers(self) -> None:
        tiers = self._tiers
        while len(tiers) >= 2 and 2 * len(tiers[-1].needles) >= len(tiers[-2].needles):
            last = tiers.pop()
            tiers[-1] = _Tier(tiers[-1].needles | last.needles)


_ANCHOR = SHORT  # an indexed needle is looked up by its first characters


class _Index:
    """Needles by their first _ANCHOR characters: at each position of a text, one dict look-up.

    A start most needles have alone holds the needle itself; one shared holds its needles by
    length, a set look-up per length (kept small: 20,000 secret outputs make 70,000 needles).
    """

    def __init__(self) -> None:
        self._by_start: dict[str, str | dict[int, set[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_start)

    def add(self, needle: str) -> None:
        start = needle[:_ANCHOR]
        bucket = self._by_start.get(start)
        if bucket is None or bucket == needle:
            self._by_start[start] = needle
            return
        if isinstance(bucket, str):
            bucket = self._by_start[start] = {len(bucket): {bucket}}
        bucket.setdefault(len(needle), set()).add(needle)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where needles are, the longest at each position (as a trie pattern finds them)."""
        found = []
        starting = self._by_start.get
        for start in range(len(text) - _ANCHOR + 1):
            bucket = starting(text[start : start + _ANCHOR])
            if bucket is None:
                continue
            if isinstance(bucket, str):
                if text.startswith(bucket, start):
                    found.append((start, start + len(bucket)))
                continue
            for length in sorted(bucket, reverse=True):
                if text[start : start + length] in bucket[length]:
                    found.append((start, start + length))
                    break
        return found


class _Tier:
    def __init__(self, needles: frozenset[_Needle]) -> None:
        self.needles = needles

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        anywhere = [n.text for n in self.needles if not n.alone]
        alone = [n.text for n in self.needles if n.alone]
        try:
            return _compile(_trie_pattern(anywhere), _trie_pattern(alone))
        except (RecursionError, re.error):  # secrets nested as prefixes of each other, deeply
            return _compile(_alternation(anywhere), _alternation(alone))


def _compile(anywhere: str, alone: str) -> re.Pattern[str]:
    branches = [anywhere] if anywhere else []
    if alone:
        branches.append(rf"(?<!\w)(?:{alone})(?!\w)")
    return re.compile("|".join(branches))


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


def _trie_pattern(words: list[str]) -> str:
    """One regex for many literals, shaped like their trie: at each character one branch can
    go on, so matching costs the length of the text, not the number of words; the longest
    word at a position wins."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return _node_pattern(root)


def _node_pattern(node: dict[str, Any]) -> str:
    branches = []
    for char, child in node.items():
        if not char:
            continue
        chain = [char]
        while len(child) == 1 and "" not in child:  # a run without forks: one literal
            ((char, child),) = child.items()
            chain.append(char)
        branches.append(re.escape("".join(chain)) + _node_pattern(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    """Every match, overlapping ones too: after a match the search goes on from its second
    character, so that a secret starting inside another one is found (and the masks merge)."""
    match = pattern.search(text)
    while match:
        yield match.span()
        match = pattern.search(text, match.start() + 1)


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span masked; overlapping spans (needles of several tiers) merged."""
    pieces: list[str] = []
    cursor = 0
    for start, stop in sorted(spans):
        if start < cursor:  # overlaps the mask just placed: widen it
            cursor = max(cursor, stop)
            continue
        pieces += [text[cursor:start], MASK]
        cursor = stop
    pieces.append(text[cursor:])
    return "".join(pieces)


def _encodings(secret: str) -> set[str]:
    """The forms a secret takes on its way out: JSON-escaped, URL-encoded, base64."""
    if not secret:
        return set()
    forms = {
        secret,
        json.dumps(secret)[1:-1],  # non-ASCII as \uXXXX
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],  # as Python quotes it: Jinja's "no attribute '...'" messages
        ascii(secret)[1:-1],
        urllib.parse.quote(secret, safe="", errors=_AS_BYTES),
        urllib.parse.quote(secret, safe="/", errors=_AS_BYTES),
        urllib.parse.quote_plus(secret, errors=_AS_BYTES),  # a query value, as httpx2 encodes it
        *_url_forms(secret),
    }
    raw = secret.encode(errors=_AS_BYTES)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return forms


def _url_forms(secret: str) -> set[str]:
    """What httpx2 makes of the secret written into a URL's path, or its query."""
    import httpx2  # here: redaction loads before the HTTP stack, which registering needs anyway

    forms = set()
    for prefix in ("https://h/", "https://h/?q="):
        try:
            url = str(httpx2.URL(prefix + secret))
        except (httpx2.InvalidURL, ValueError):  # it cannot be sent in a URL at all
            continue
        forms.add(url.removeprefix(prefix))
    return forms


def _long_lines(secret: str) -> set[str]:
    return {line for line in secret.splitlines() if len(line) >= _LONG_LINE}


def _long_runs(secret: str) -> set[str]:
    """Its long runs of letters and digits, which every encoding leaves as they are.

    Text JSON-encoded twice (``tojson`` in a template, then echoed by a flow and printed)
    escapes a non-ASCII or ``"`` character in a form no list of encodings foresees; the
    runs between such characters still carry the secret, and are masked wherever they are.
    """
    return set(_RUN.findall(secret))


_RUN = re.compile(rf"[A-Za-z0-9]{{{_LONG_LINE},}}")


class TooDeep(ValueError):
    """A secret output nested deeper than MAX_SECRET_DEPTH: it cannot be masked reliably."""


def _pieces(value: Any, depth: int) -> Iterator[str]:
    """The strings a secret output of any type can be printed as."""
    if depth < 0:
        raise TooDeep(f"a secret output nested more than {MAX_SECRET_DEPTH} levels deep")
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return  # see the module's docstring
    elif isinstance(value, int | float):
        yield json.dumps(value)
    elif isinstance(value, dict | list | tuple):
        for part in value.values() if isinstance(value, dict) else value:
            yield from _pieces(part, depth - 1)
        yield from _renderings(value)
    else:
        yield str(value)


def _renderings(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> Iterator[str]:
    yield str(value)  # as a template prints it inside a string: {'k': 'v'}
    for style in _JSON_STYLES:
        for ascii_only in (True, False):
            try:
                yield json.dumps(value, ensure_ascii=ascii_only, default=str, **style)
            except (TypeError, ValueError):  # not JSON (NaN is fine, circular is not)
                return


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


def quoted(text: str, limit: int | None = None) -> str:
    """``repr`` of a rendered value for a message, redacted first: ``repr`` escapes control
    characters, and a secret with one inside would no longer match its masked forms."""
    redacted = REDACTOR.redact(text)
    if limit is not None and len(redacted) > limit:
        return repr(redacted[:limit]) + "..."
    return repr(redacted)


def printable(text: str) -> str:
    """One of our own messages, ready for a terminal: redacted, then every control character
    but the newlines we put there escaped (the last step before a byte leaves)."""
    return escape_controls(REDACTOR.redact(text), keep="\n")


def escape_controls(text: str, keep: str = "") -> str:
    """ESC, BEL, CR, bidi overrides… → visible ``\\x1b``; ``keep`` names the ones left as is."""
    if text.isprintable() or (keep and _printable_but(text, keep)):
        return text
    return "".join(
        ch if ch in keep or ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _printable_but(text: str, keep: str) -> bool:
    """Printable once the ``keep`` characters are taken out: a plan's many lines, checked in C."""
    return text.translate({ord(ch): None for ch in keep}).isprintable()
