"""Sandboxed Jinja over data structures.

Payloads are built as data, never by rendering JSON text: every string in a
structure is its own template, and a string that is exactly one
``{{ expression }}`` yields the expression's native value.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from owf_runner import template_budget
from owf_runner.template_budget import (
    MAX_STRING,
    BudgetExceeded,
    NotJson,
    check_length,
    counted,
    current,
    json_size,
    render_budget,
    text_size,
)
from owf_runner.template_guards import (
    BoundedFormatter,
    bounded_dumps,
    guard_binop,
    guard_method,
    guarded_filters,
    settled,
)

MAX_PAYLOAD_BYTES = MAX_STRING  # a rendered payload, as JSON
_LONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
# Tests/filters that make an undefined reference legitimate.
_GUARDS = {"defined", "undefined", "default", "d"}


class TemplateError(Exception):
    """A template failed to compile or render; the text is user-facing.

    ``path`` is where, inside the rendered structure, the failing string is.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path

    def at(self, key: str | int) -> TemplateError:
        return TemplateError(str(self), (key, *self.path))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _uuid4() -> str:
    return str(uuid.uuid4())


class _StrictChainableUndefined(ChainableUndefined, StrictUndefined):
    """Fails on use like StrictUndefined, but ``vars.a.b | default(1)`` works when a is missing."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, on a budget: see template_budget and template_guards."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        guard_binop(operator, left, right)
        return current().charge(super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        current().check_time()
        if isinstance(obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (counted(args[0]), *args[1:])
        args = guard_method(obj, args, kwargs)
        return settled(super().call(context, obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        item = super().getitem(obj, argument)
        return settled(item) if isinstance(argument, slice) else item

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format(...)`` with every field measured first (BoundedFormatter)."""
        text = getattr(value, "__self__", None)
        name = getattr(value, "__name__", None)
        if not isinstance(text, str) or name not in {"format", "format_map"}:
            return None

        def format_(*args: Any, **kwargs: Any) -> str:
            if name == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return BoundedFormatter(self).vformat(text, (), args[0])
            return BoundedFormatter(self).vformat(text, args, kwargs)

        return format_

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        return super()._generate(_Budgeted().visit(source), name, filename, defer_init)


_NO_FILES = "{{% {tag} %}} is not supported: a template cannot load other templates"


class _Budgeted(NodeTransformer):
    """Rewrites a parsed template so that its loops and ``~`` go through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("counted", [node.iter], node.iter.lineno)  # type: ignore[list-item]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("concat", list(node.nodes), node.lineno)

    def visit_Include(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(_NO_FILES.format(tag="include"), node.lineno)

    def visit_Import(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(_NO_FILES.format(tag="import"), node.lineno)

    def visit_FromImport(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(_NO_FILES.format(tag="from"), node.lineno)

    def visit_Extends(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(_NO_FILES.format(tag="extends"), node.lineno)

    def visit_Const(self, node: nodes.Const) -> nodes.Node:
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise TemplateSyntaxError(
                "a number too large for JSON (it would be infinite)", node.lineno
            )
        return node


def _call(function: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    target = nodes.ImportedName(f"{template_budget.__name__}.{function}", lineno=lineno)
    return nodes.Call(target, args, [], None, None, lineno=lineno)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` of a text template: printable, measured and paid for before it is."""
    current().spend(text_size(value))
    return value


def _environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        undefined=_StrictChainableUndefined, autoescape=False, finalize=_finalize, optimized=False
    )
    env.globals.update(now=_now, uuid4=_uuid4)
    del env.globals["lipsum"]  # random text of any length, for HTML mock-ups
    env.filters = guarded_filters(env.filters)
    env.policies["json.dumps_function"] = bounded_dumps
    return env


ENV = _environment()


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def check_syntax(text: str) -> None:
    """Parse and compile: compiling also finds unknown filters and tests."""
    _cached_form(text)


@dataclass(eq=False)
class _Form:
    """One template, parsed once: what it refers to (taken from that one tree) and its code."""

    lone: bool  # a lone ``{{ expression }}``: keeps its native type
    refs: tuple[Reference, ...]  # every reference, in the order written
    bound: frozenset[str]  # names the template binds itself ({% set %}, macro parameters)
    lookup: tuple[str, ...] | None  # a lone ``a.b.c``: looked up without running Jinja
    tree: nodes.Node
    code: Any = None

    @property
    def compiled(self) -> Any:
        """Compiled at once, or on first use for a lone ``a.b.c`` (which cannot fail to compile).

        Two threads may both compile it (the emulator renders in its own): the same code.
        """
        if self.code is None:
            self.code = _compile(self.lone, self.tree)
        return self.code

    @property
    def free_refs(self) -> tuple[Reference, ...]:
        return tuple(ref for ref in self.refs if ref.root not in self.bound)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(ref.root for ref in self.free_refs)


def _form(text: str) -> _Form:
    """Parse ``text`` once, analyse that tree, then compile it; TemplateError when it is wrong."""
    try:
        lone, tree = _parse(text)
        lookup = _lookup_path(tree) if lone else None
        # Before compiling: compiling rewrites the tree (_Budgeted).
        analysis = _analysis(tree) if lookup is None else _lookup_analysis(lookup)
        form = _Form(lone, *(analysis or ((), frozenset())), lookup, tree)
        if lookup is None:  # compiling is what finds unknown filters and tests
            form.compiled  # noqa: B018 - compiled now, for its errors
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None
    except ValueError as exc:  # Python's own limit on the digits of an int literal
        raise TemplateError(f"template syntax error: {str(exc).split(';')[0]}") from None
    except RecursionError:
        analysis = None
    if analysis is None:  # compile errors are told first, as when the walk came second
        raise TemplateError("template nested too deeply")
    return form


_cached_form = lru_cache(maxsize=4096)(_form)  # for templates met outside a job's Templates


def _parse(text: str) -> tuple[bool, nodes.Node]:
    match = _LONE_EXPRESSION.match(text)
    if not match:
        return False, Parser(ENV, text).parse()
    chain = _ATTRIBUTE_CHAIN.match(match.group("expr"))
    if chain and chain.group("root") not in _JINJA_WORDS:
        return True, _chain_tree(chain.group("root"), chain.group("rest"))
    return True, _parse_expression(match.group("expr"))


# `vars.first_name`, `steps.x.outputs.y`: the tree Jinja's parser makes, made without it.
_ATTRIBUTE_CHAIN = re.compile(
    r"^\s*(?P<root>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*$"
)
_JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"}
)


def _chain_tree(root: str, rest: str) -> nodes.Expr:
    tree: nodes.Expr = nodes.Name(root, "load", lineno=1)
    for attribute in rest[1:].split("."):
        tree = nodes.Getattr(tree, attribute, "load", lineno=1)
    tree.set_environment(ENV)
    return tree


def _parse_expression(source: str) -> nodes.Expr:
    """As ``Environment.compile_expression`` parses, keeping the tree for the analysis."""
    parser = Parser(ENV, source, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    expression.set_environment(ENV)
    return expression


def _compile(lone: bool, tree: nodes.Node) -> Any:
    if not lone:
        return ENV.from_string(cast(nodes.Template, tree))
    assign = nodes.Assign(nodes.Name("result", "store"), tree, lineno=1)
    return TemplateExpression(ENV.from_string(nodes.Template([assign], lineno=1)), False)


def _analysis(tree: nodes.Node) -> tuple[tuple[Reference, ...], frozenset[str]] | None:
    """(references, locally bound names), or None when the tree is too deep to walk."""
    try:
        return tuple(_walk(tree, frozenset())), frozenset(_bound(tree))
    except RecursionError:
        return None


def _lookup_analysis(path: tuple[str, ...]) -> tuple[tuple[Reference, ...], frozenset[str]]:
    """What ``_walk`` finds in ``a.b.c``: one reference to ``a.b``, and nothing bound."""
    return (Reference(path[0], path[1]),), frozenset()


def _lookup_path(tree: nodes.Node) -> tuple[str, ...] | None:
    """``vars.a.b`` → ("vars", "a", "b"); None for any other expression."""
    attributes: list[str] = []
    while isinstance(tree, nodes.Getattr):
        attributes.append(tree.attr)
        tree = tree.node
    if isinstance(tree, nodes.Name) and tree.ctx == "load" and attributes:
        return (tree.name, *reversed(attributes))
    return None


_MISSING: Any = object()


def _looked_up(path: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    """What the sandbox's ``getattr`` finds along ``path`` through plain dicts, or _MISSING.

    Anything else — an attribute that shadows the key (``d.items``), a missing key (an
    undefined error to word), a value that is not a dict — is left to Jinja.
    """
    value = context.get(path[0], _MISSING)
    for attribute in path[1:]:
        if type(value) is not dict or attribute not in value or hasattr(value, attribute):
            return _MISSING
        value = value[attribute]
    return value


class Templates:
    """The templates of one job, each parsed and compiled once: the checks and the plan share it."""

    def __init__(self) -> None:
        self._forms: dict[str, _Form | TemplateError] = {}

    def form(self, text: str) -> _Form:
        found = self._forms.get(text)
        if found is None:
            try:
                found = _form(text)
            except TemplateError as exc:
                found = exc
            self._forms[text] = found
        if isinstance(found, TemplateError):
            raise TemplateError(str(found))  # a fresh one: callers add their own path
        return found


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    if not is_template(text):
        return text
    with render_budget():
        return _render_form(_cached_form(text), context)


def _render_form(form: _Form, context: Mapping[str, Any]) -> Any:
    try:
        return _evaluate(form, context)
    except UndefinedError as exc:
        raise TemplateError(f"undefined: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"not allowed in templates: {exc}") from None
    except BudgetExceeded as exc:
        raise TemplateError(f"template exceeded its budget: {exc}") from None
    except MemoryError:
        raise TemplateError("template exceeded its budget: out of memory") from None
    except NotJson as exc:
        raise TemplateError(f"not a JSON value: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise TemplateError("template nested too deeply") from None


def _evaluate(form: _Form, context: Mapping[str, Any]) -> Any:
    if form.lookup is not None:
        value = _looked_up(form.lookup, context)
        if value is not _MISSING:
            return _json_value(value)
    if form.lone:
        return _json_value(form.compiled(context))
    return _text(form.compiled, context)


def _json_value(value: Any) -> Any:
    """A lone expression's value: JSON data (any field may end up in a request or a report)."""
    json_size(value)
    return value


def _text(template: Any, context: Mapping[str, Any]) -> str:
    """A text template's output, cut off (an error) as soon as it passes the string cap."""
    chunks: list[str] = []
    total = 0
    for chunk in template.generate(context):
        total += len(chunk)
        check_length(total)
        chunks.append(chunk)
    return "".join(chunks)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value``; dict keys are rendered as strings."""
    return compile_value(value).render(context)


# -- compiled values: a structure whose templates are compiled once -------------------


class Compiled:
    """A value from the job file, ready to render: every template in it compiled once."""

    names: frozenset[str] = frozenset()  # the free names its templates use

    def render(self, context: Mapping[str, Any]) -> Any:
        """Render the whole value on one budget (template_budget)."""
        with render_budget():
            return self.rendered(context)

    def rendered(self, context: Mapping[str, Any]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Compiled):
    value: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        return self.value  # nothing to run: no budget to keep

    def rendered(self, context: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Template(Compiled):
    """One string with ``{{ }}`` / ``{% %}``; a lone expression keeps its native type."""

    text: str
    names: frozenset[str]
    form: _Form | None = field(default=None, compare=False, repr=False)  # None: compiled on use

    @property
    def is_lone_expression(self) -> bool:
        return _LONE_EXPRESSION.match(self.text) is not None

    @property
    def expression(self) -> str:
        """The expression of a lone ``{{ expression }}``, or the text itself."""
        match = _LONE_EXPRESSION.match(self.text)
        return match.group("expr").strip() if match else self.text

    def rendered(self, context: Mapping[str, Any]) -> Any:
        return _render_form(self.form or _cached_form(self.text), context)


@dataclass(frozen=True)
class MappingValue(Compiled):
    items: tuple[tuple[Compiled, Compiled], ...]
    keys: tuple[str, ...]  # as written, for error paths
    names: frozenset[str]

    def rendered(self, context: Mapping[str, Any]) -> Any:
        rendered: dict[str, Any] = {}
        for written, (key, value) in zip(self.keys, self.items, strict=True):
            rendered[str(_at(written, key, context))] = _at(written, value, context)
        return rendered


@dataclass(frozen=True)
class SequenceValue(Compiled):
    items: tuple[Compiled, ...]
    names: frozenset[str]

    def rendered(self, context: Mapping[str, Any]) -> Any:
        return [_at(index, item, context) for index, item in enumerate(self.items)]


def _at(key: str | int, value: Compiled, context: Mapping[str, Any]) -> Any:
    try:
        return value.rendered(context)
    except TemplateError as exc:
        raise exc.at(key) from None


def compile_value(value: Any, templates: Templates | None = None) -> Compiled:
    """Compile every template inside ``value`` (plain strings stay plain), each one once."""
    return _compiled_value(value, Templates() if templates is None else templates)


def _compiled_value(value: Any, templates: Templates) -> Compiled:
    if isinstance(value, str):
        if not is_template(value):
            return Constant(value)
        form = templates.form(value)
        return Template(value, form.names, form)
    if isinstance(value, Mapping):
        pairs = tuple(
            (_compiled_value(str(k), templates), _compiled_value(v, templates))
            for k, v in value.items()
        )
        names = frozenset().union(*(k.names | v.names for k, v in pairs))
        return MappingValue(pairs, tuple(str(k) for k in value), names)
    if isinstance(value, list | tuple):
        items = tuple(_compiled_value(item, templates) for item in value)
        return SequenceValue(items, frozenset().union(*(item.names for item in items)))
    return Constant(value)


def free_names(text: str) -> frozenset[str]:
    """The names a template takes from its context (not those it binds itself)."""
    return _cached_form(text).names if is_template(text) else frozenset()


def as_json(value: Any) -> str:
    """A rendered value as the JSON the request carries; one that is not JSON fails its step."""
    _check_json(value)
    return json.dumps(value, allow_nan=False)


def json_body(value: Any) -> bytes:
    """A rendered payload as the bytes sent: compact UTF-8 JSON, checked like ``as_json``."""
    _check_json(value)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: how Python hands over an environment or --var that is not UTF-8.
        raise TemplateError("not a JSON value: it holds text that is not UTF-8") from None


def _check_json(value: Any) -> None:
    try:
        json_size(value)  # a range, a set, NaN, a huge int; and bounded before it is built
    except NotJson as exc:
        raise TemplateError(f"not a JSON value: {exc}") from None
    except BudgetExceeded as exc:
        raise TemplateError(f"too large: {exc}") from None


def truthy(value: Any) -> bool:
    """``when`` and ``expect.that`` results: a rendered string "false" is false too."""
    if isinstance(value, str):
        return value.strip().lower() not in {"", "false", "0", "no", "none", "null"}
    return bool(value)


# -- static analysis -------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """``root.name`` used in a template, e.g. ``steps.create_user``."""

    root: str
    name: str | None
    guarded: bool = field(default=False, compare=False)  # under `is defined` / `| default`


def template_strings(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(relative key path, string) for every string inside ``value``."""
    if isinstance(value, str):
        yield (), value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield ((key,), key) if isinstance(key, str) else ((key,), str(key))
            for sub, text in template_strings(item):
                yield (key, *sub), text
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            for sub, text in template_strings(item):
                yield (index, *sub), text


def references(text: str) -> list[Reference]:
    """Top-level names and their first attribute, as used in a template."""
    return list(_cached_form(text).refs) if is_template(text) else []


def _walk(node: nodes.Node, guarded: frozenset[Reference]) -> Iterator[Reference]:
    """References under ``node``; ``guarded`` holds those a surrounding test made safe."""
    if isinstance(node, nodes.Test | nodes.Filter) and node.name in _GUARDS:
        yield from _walk_guard(node, guarded)
    elif isinstance(node, nodes.If | nodes.CondExpr):
        yield from _walk_conditional(node, guarded)
    elif isinstance(node, nodes.For):
        yield from _walk_loop(node, guarded)
    elif isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name):
        ref = _reference(node)
        yield Reference(ref.root, ref.name, ref in guarded)
        if isinstance(node, nodes.Getitem):
            yield from _walk(node.arg, guarded)  # vars[steps.x.outputs.key]
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        yield Reference(node.name, None, Reference(node.name, None) in guarded)
    else:
        for child in node.iter_child_nodes():
            yield from _walk(child, guarded)


def _walk_guard(
    node: nodes.Test | nodes.Filter, guarded: frozenset[Reference]
) -> Iterator[Reference]:
    # `x | default(...)` and `x is defined` make x, and anything chained on it, safe.
    for child in node.iter_child_nodes():
        inner = guarded | _chain_roots(child) if child is node.node else guarded
        yield from _walk(child, inner)


def _walk_conditional(
    node: nodes.If | nodes.CondExpr, guarded: frozenset[Reference]
) -> Iterator[Reference]:
    # `{% if x is defined %}{{ x }}{% endif %}`: x is safe in the first branch only.
    tests = [node.test, *node.test.find_all(nodes.Test)]
    safe = guarded.union(
        *(_chain_roots(t.node) for t in tests if isinstance(t, nodes.Test) and t.name == "defined")
    )
    first = node.body if isinstance(node, nodes.If) else [node.expr1]
    yield from _walk(node.test, guarded)
    for child in first:
        yield from _walk(child, safe)
    rest: list[nodes.Node | None] = (
        [*node.elif_, *node.else_] if isinstance(node, nodes.If) else [node.expr2]
    )
    for other in rest:
        if other is not None:
            yield from _walk(other, guarded)


def _walk_loop(node: nodes.For, guarded: frozenset[Reference]) -> Iterator[Reference]:
    # The loop's own names (and `loop`) exist in its body only, not after the loop.
    yield from _walk(node.iter, guarded)
    own = _names(node.target) | {"loop"}
    for child in [*node.body, *([node.test] if node.test else [])]:
        yield from (ref for ref in _walk(child, guarded) if ref.root not in own)
    for child in node.else_:
        yield from _walk(child, guarded)


def _names(target: nodes.Node) -> set[str]:
    found = [target] if isinstance(target, nodes.Name) else list(target.find_all(nodes.Name))
    return {name.name for name in found if isinstance(name, nodes.Name)}


def _chain_roots(top: nodes.Node | None) -> frozenset[Reference]:
    """The ``root.name`` at the bottom of an attribute chain like ``vars.a.b``."""
    node: nodes.Node | None = top
    while isinstance(node, nodes.Getattr | nodes.Getitem) and not isinstance(node.node, nodes.Name):
        node = node.node
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return frozenset({_reference(node)})
    if isinstance(node, nodes.Name):
        return frozenset({Reference(node.name, None)})
    return frozenset()


def _reference(node: nodes.Getattr | nodes.Getitem) -> Reference:
    assert isinstance(node.node, nodes.Name)  # noqa: S101 - callers check
    return Reference(node.node.name, _attribute(node))


def _attribute(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def locally_bound(text: str) -> set[str]:
    """Names a template assigns itself with {% set %}, {% with %} or macro parameters.

    Loop variables are not here: ``references`` already scopes them to their loop.
    """
    return set(_cached_form(text).bound) if is_template(text) else set()


def _bound(tree: nodes.Node) -> set[str]:
    loop_names = {name for loop in tree.find_all(nodes.For) for name in _names(loop.target)}
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in {"store", "param"}}
    return stored - loop_names
