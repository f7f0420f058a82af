"""What the sandbox checks before a template builds something big.

Each guard works out, cheaply, how large a result would be — ``'a'.ljust(n)`` is
``n`` characters, ``'%*s' % (n, x)`` at least ``n`` — and raises
:class:`BudgetExceeded` before Python allocates it. Results are then charged to
the render's budget, so many small allocations add up too.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.filters import make_attrgetter
from jinja2.sandbox import SandboxedFormatter
from jinja2.utils import _PassArg

from owf_runner.template_budget import (
    MAX_ITEMS,
    BudgetExceeded,
    Counted,
    check_digits,
    check_length,
    current,
    json_size,
    text_size,
)

MAX_JSON_INDENT = 64
# HTML and Python-repr helpers make no sense in JSON payloads and only widen the surface.
REMOVED_FILTERS = frozenset({"urlize", "xmlattr", "pprint"})
# Filters that turn their input into text: the input must be printable within the cap.
_TEXT_FILTERS = frozenset(
    {"capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower", "safe"}
    | {"replace", "string", "striptags", "title", "trim", "truncate", "upper", "urlencode"}
    | {"wordcount", "wordwrap"}
)

Guard = Callable[..., None]


# -- results ------------------------------------------------------------------------------


def settled(result: Any) -> Any:
    """A result checked against the caps and charged; a lazy one counts its items as it goes."""
    if isinstance(result, str | bytes):
        check_length(len(result))
    elif isinstance(result, list | tuple | dict):
        check_length(len(result), MAX_ITEMS, "a list")
    elif isinstance(result, types.GeneratorType):
        return iter(Counted(result))
    return current().charge(result)


# -- str and bytes methods ----------------------------------------------------------------


def guard_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a str/bytes method call before it runs; returns the arguments to call it with."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str | bytes):
        return args
    name = getattr(method, "__name__", "")
    if name == "join" and args:
        items = list(Counted(args[0]))
        check_length(sum(map(_length, items)) + len(owner) * max(len(items) - 1, 0))
        return (items, *args[1:])
    guard = _METHOD_GUARDS.get(name)
    if guard is not None:
        guard(owner, *args, **kwargs)
    return args


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes) else 0


def _padded(owner: str | bytes, width: Any = 0, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        check_length(width)


def _tabs(owner: str | bytes, tabsize: Any = 8, **_: Any) -> None:
    if isinstance(tabsize, int):
        tab = "\t" if isinstance(owner, str) else b"\t"
        check_length(len(owner) + owner.count(tab) * max(tabsize, 0))  # type: ignore[arg-type]


def _replaced(owner: str | bytes, old: Any = "", new: Any = "", count: Any = -1, **_: Any) -> None:
    if type(old) is type(owner) and type(new) is type(owner) and isinstance(count, int):
        check_length(len(owner) + _occurrences(owner, old, count) * (len(new) - len(old)))


def _occurrences(text: Any, old: Any, count: int) -> int:
    found: int = text.count(old) if old else len(text) + 1
    return min(found, count) if count >= 0 else found


def _translated(owner: str | bytes, table: Any = None, **_: Any) -> None:
    if isinstance(table, Mapping):
        longest = max((len(v) for v in table.values() if isinstance(v, str | bytes)), default=1)
        check_length(len(owner) * max(longest, 1))


_METHOD_GUARDS: dict[str, Guard] = {
    "ljust": _padded,
    "rjust": _padded,
    "center": _padded,
    "zfill": _padded,
    "expandtabs": _tabs,
    "replace": _replaced,
    "translate": _translated,
}


# -- operators -------------------------------------------------------------------------


def guard_binop(operator: str, left: Any, right: Any) -> None:
    """``*``, ``**``, ``%`` and ``+``: refuse a result over the caps before Python builds it."""
    if operator == "*":
        _repeated(left, right)
        _repeated(right, left)
    elif operator == "**" and _is_int(left) and _is_int(right) and right > 0:
        check_digits(math.log2(abs(left) or 1) * right)
    elif operator == "%" and isinstance(left, str | bytes):
        guard_percent(left, right)
    elif operator == "+":
        _added(left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _repeated(seq: Any, times: Any) -> None:
    if not _is_int(times):
        return
    if isinstance(seq, str | bytes):
        check_length(len(seq) * times)
    elif isinstance(seq, list | tuple):
        check_length(len(seq) * times, MAX_ITEMS, "a list")
    elif _is_int(seq):
        check_digits(seq.bit_length() + times.bit_length())


def _added(left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        check_length(len(left) + len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        check_length(len(left) + len(right), MAX_ITEMS, "a list")


# -- % formatting -----------------------------------------------------------------------

_CONVERSION = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<kind>.)",
    re.DOTALL,
)


def guard_percent(template: str | bytes, values: Any) -> None:
    """``template % values``: the literal text, every width and precision, every value."""
    text = template if isinstance(template, str) else template.decode("latin-1")
    positional = list(values) if isinstance(values, tuple) else [values]
    total = len(text)
    for match in _CONVERSION.finditer(text):
        if match["kind"] == "%":
            continue
        for number in (match["width"], match["precision"]):
            total += _number(number, positional)
        total += _converted_size(match["key"], values, positional)
    check_length(total)


def _number(written: str | None, positional: list[Any]) -> int:
    if written == "*":
        value = positional.pop(0) if positional else 0
        return abs(value) if isinstance(value, int) else 0
    return int(written) if written else 0


def _converted_size(key: str | None, values: Any, positional: list[Any]) -> int:
    if key is not None:
        return text_size(values.get(key)) if isinstance(values, Mapping) else 0
    return text_size(positional.pop(0)) if positional else 0


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, measuring every field before it is formatted."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.total = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            text_size(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        widths = sum(int(number) for number in re.findall(r"\d+", format_spec))
        check_length(text_size(value) + widths)
        text = super().format_field(value, format_spec)
        self.total += len(text)
        check_length(self.total)
        return text


# -- JSON (the tojson filter) -----------------------------------------------------------


def bounded_dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` for ``| tojson``: JSON data only, cut off at the string cap."""
    indent = options.get("indent")
    width = len(indent) if isinstance(indent, str) else indent or 0
    if isinstance(width, int) and width > MAX_JSON_INDENT:
        raise BudgetExceeded(f"an indent over {MAX_JSON_INDENT}")
    json_size(value)
    chunks: list[str] = []
    total = 0
    for chunk in json.JSONEncoder(allow_nan=False, **options).iterencode(value):
        total += len(chunk)
        check_length(total)
        chunks.append(chunk)
    return "".join(chunks)


# -- filters ------------------------------------------------------------------------------


def guarded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters, each checked before it runs and its result settled after."""
    return {
        name: _guarded(name, func) for name, func in filters.items() if name not in REMOVED_FILTERS
    }


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 0 if _PassArg.from_obj(func) is None else 1  # env, eval_ctx or context comes first
    guard = _FILTER_GUARDS.get(name)
    replacement = _REPLACED_FILTERS.get(name)
    text = name in _TEXT_FILTERS

    @functools.wraps(func)
    def filter_(*args: Any, **kwargs: Any) -> Any:
        current().check_time()
        if text and len(args) > skip:
            text_size(args[skip])
        if guard is not None:
            guard(*args[skip:], **kwargs)
        if replacement is not None:
            return settled(replacement(func, *args, **kwargs))
        return settled(func(*args, **kwargs))

    return filter_


def _center(value: Any, width: Any = 80, **_: Any) -> None:
    if isinstance(width, int):
        check_length(text_size(value) + width)


def _indent(s: Any, width: Any = 4, **_: Any) -> None:
    prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    lines = s.count("\n") + 1 if isinstance(s, str) else text_size(s) + 1
    check_length(text_size(s) + lines * prefix)


def _wordwrap(
    s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, **_: Any
) -> None:
    if isinstance(s, str) and isinstance(width, int) and isinstance(wrapstring, str):
        lines = len(s) // max(width, 1) + s.count("\n") + 1
        check_length(len(s) + lines * len(wrapstring))


def _replace(s: Any, old: Any = "", new: Any = "", count: Any = None, **_: Any) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        found = _occurrences(s, old, count if isinstance(count, int) else -1)
        check_length(len(s) + found * (len(new) - len(old)))


def _format(template: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(template, str):
        guard_percent(template, kwargs or args)


def _filled(value: Any, linecount: Any = 1, fill_with: Any = None, **_: Any) -> None:
    if isinstance(linecount, int) and fill_with is not None:
        check_length(linecount, MAX_ITEMS, "a list")


def _sliced(value: Any, slices: Any = 1, **_: Any) -> None:
    if isinstance(slices, int):
        check_length(slices, MAX_ITEMS, "a list")


_FILTER_GUARDS: dict[str, Guard] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "batch": _filled,
    "slice": _sliced,
}


def _join(
    func: Callable[..., Any], eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None
) -> Any:
    """``| join``: the items are known and measured before the text is built."""
    items = list(Counted(value))
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    separator = text_size(d) * max(len(items) - 1, 0)
    check_length(sum(text_size(item) for item in items) + separator)
    return func(eval_ctx, items, d)


def _sum(
    func: Callable[..., Any], env: Any, iterable: Any, attribute: Any = None, start: Any = 0
) -> Any:
    """``| sum``: lists are joined in one pass (Python's sum copies them over and over)."""
    if not isinstance(start, list | tuple):
        return func(env, Counted(iterable), attribute, start)
    get = make_attrgetter(env, attribute) if attribute is not None else (lambda item: item)
    joined = list(start)
    for item in Counted(iterable):
        joined.extend(Counted(get(item)))
        check_length(len(joined), MAX_ITEMS, "a list")
    return type(start)(joined)


_REPLACED_FILTERS: dict[str, Callable[..., Any]] = {"join": _join, "sum": _sum}
