"""The budget of one render: time, loop iterations and bytes built are all bounded.

Jinja's sandbox keeps templates away from Python's internals, not from exhausting the
machine: ``'a'.ljust(10**10)``, ``'%*s' % (10**10, 'x')`` and two nested
``range(100000)`` loops are all legal Jinja. So every render runs under a
:class:`Budget` (a contextvar), and the sandbox charges it before doing anything that
could grow without bound: each loop iteration, call, filter, operator and output.
A template over its budget fails with ``template exceeded its budget: ...``
(:class:`BudgetExceeded`) instead of eating the machine's memory or time.

Values are measured as JSON (:func:`json_size`), shared parts counted in full, so a
list holding the same 1 MiB string a million times is 1 TiB, not 8 MB.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Undefined

MIB = 1024 * 1024
MAX_STRING = MIB  # characters in one string a template builds or renders
MAX_ITEMS = MIB  # elements in one list a template builds
MAX_BUILT = 32 * MIB  # bytes built in one render, everything counted (a list slot is 8)
MAX_VALUE = 64 * MIB  # a value a render yields, as JSON
MAX_ITERATIONS = 1_000_000  # loop iterations (and items out of lazy filters) in one render
MAX_SECONDS = 1.0  # wall-clock time of one render
MAX_INT_DIGITS = 4000  # Python will not print an int over 4300 digits; JSON readers choke sooner
MAX_DEPTH = 256  # nesting of a value (server answers are bounded at 64)
MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10))
_SLOT = 8  # bytes a list, tuple or dict entry costs


class BudgetExceeded(Exception):
    """A render went over one of its limits; the text says which."""


class NotJson(Exception):
    """A value JSON cannot carry; the text says what it is."""


@dataclass
class Budget:
    """What one render has spent so far."""

    clock: Callable[[], float] = time.monotonic
    deadline: float = field(init=False)
    iterations: int = 0
    built: int = 0

    def __post_init__(self) -> None:
        self.deadline = self.clock() + MAX_SECONDS

    def tick(self) -> None:
        """One loop iteration (the clock is read every 64: an iteration alone is quick)."""
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise BudgetExceeded(f"more than {MAX_ITERATIONS:,} loop iterations")
        if not self.iterations % 64:
            self.check_time()

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise BudgetExceeded(f"took longer than {MAX_SECONDS:g} s")

    def charge(self, value: Any) -> Any:
        """Count a value just built against the render's bytes; returns it."""
        self.spend(_footprint(value))
        return value

    def spend(self, size: int) -> None:
        if size:
            self.built += size
            if self.built > MAX_BUILT:
                raise BudgetExceeded(f"built more than {_human(MAX_BUILT)}")
            self.check_time()


_CURRENT: ContextVar[Budget | None] = ContextVar("owf_template_budget", default=None)


@contextlib.contextmanager
def render_budget(clock: Callable[[], float] = time.monotonic) -> Iterator[Budget]:
    """The budget of the render in progress, or a fresh one when none is (nested renders share)."""
    active = _CURRENT.get()
    if active is not None:
        yield active
        return
    budget = Budget(clock)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current() -> Budget:
    """The active budget; outside a render (Jinja folding constants), a fresh one."""
    return _CURRENT.get() or Budget()


def _footprint(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict):
        return _SLOT * len(value)
    if isinstance(value, int):
        return value.bit_length() // 8
    return 0


def _human(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size:,} bytes"


# -- sizes ------------------------------------------------------------------------------


def too_long(what: str, limit: int) -> BudgetExceeded:
    unit = _human(limit) if what in {"a string", "a value"} else f"{limit:,} items"
    return BudgetExceeded(f"{what} over {unit}")


def check_length(length: int, limit: int = MAX_STRING, what: str = "a string") -> None:
    if length > limit:
        raise too_long(what, limit)


def check_digits(bits: float) -> None:
    """An integer of about ``bits`` bits may be built (Python would not even print a longer one)."""
    if bits > MAX_INT_BITS:
        raise BudgetExceeded(f"a number of more than {MAX_INT_DIGITS:,} digits")


def text_size(value: Any) -> int:
    """About how long ``str(value)`` is, without building it (JSON data only)."""
    if isinstance(value, str):
        return len(value)
    return json_size(value, MAX_STRING, "a string")


def json_size(value: Any, limit: int = MAX_VALUE, what: str = "a value") -> int:
    """About how long ``value`` is as JSON; NotJson if JSON cannot carry it.

    BudgetExceeded once it is over ``limit``: the walk stops there, and a part
    shared many times is measured once (memo), so it is quick on any value.
    """
    return _Measure(limit, what).size(value, 0)


@dataclass
class _Measure:
    limit: int
    what: str
    seen: dict[int, int] = field(default_factory=dict)  # id(container) -> size
    visits: int = 0

    def size(self, value: Any, depth: int) -> int:
        if isinstance(value, str):
            return len(value) + 2
        if value is None or isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return _int_size(value)
        if isinstance(value, float):
            return _float_size(value)
        if isinstance(value, list | tuple | dict):
            return self.container(value, depth)
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        raise NotJson(describe(value))

    def container(self, value: list[Any] | tuple[Any, ...] | dict[Any, Any], depth: int) -> int:
        known = self.seen.get(id(value))
        if known is not None:
            return known
        if depth >= MAX_DEPTH:
            raise NotJson(f"nested more than {MAX_DEPTH} levels deep")
        self.visits += 1
        if self.visits % 1024 == 0:
            current().check_time()
        total = 2
        for part in _parts(value):
            total += self.size(part, depth + 1) + 1
            if total > self.limit:
                raise too_long(self.what, self.limit)
        self.seen[id(value)] = total
        return total


def _parts(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> Iterator[Any]:
    if not isinstance(value, dict):
        yield from value
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise NotJson(f"a mapping with a key that is not a string ({describe_key(key)})")
        yield key
        yield item


def _int_size(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise NotJson(f"a number of more than {MAX_INT_DIGITS:,} digits")
    return value.bit_length() * 3 // 10 + 2


def _float_size(value: float) -> int:
    if not math.isfinite(value):
        raise NotJson(f"{value} (JSON has no NaN or infinity)")
    return 24


def describe(value: Any) -> str:
    """What a non-JSON value is, with the usual cure."""
    kind = type(value).__name__
    if kind in {"generator", "range", "set", "frozenset", "dict_keys", "dict_values", "dict_items"}:
        return f"a {kind} (add `| list`)"
    if callable(value):
        return f"a {kind} (call it?)"
    return f"a {kind}"


def describe_key(key: Any) -> str:
    return repr(key) if isinstance(key, int | float | bool) or key is None else type(key).__name__


# -- loops --------------------------------------------------------------------------------


class Counted:
    """An iterable whose iterations tick the budget; sized when what it wraps is."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError when unsized: Jinja copes

    def __iter__(self) -> Iterator[Any]:
        budget = current()
        for item in self._items:
            budget.tick()
            yield item


def counted(items: Iterable[Any]) -> Counted:
    """What a ``{% for %}`` loops over (the sandbox rewrites every loop to call this)."""
    return Counted(items)


def concat(*parts: Any) -> str:
    """``a ~ b ~ c``, measured before it is built (the sandbox rewrites ``~`` to call this)."""
    check_length(sum(text_size(part) for part in parts))
    joined = "".join(map(str, parts))
    check_length(len(joined))
    return str(current().charge(joined))
