"""``owf-run plan``: every request a Plan would send, rendered, with no network.

A value known before the run is rendered exactly as the run renders it; a value
that depends on run-time data (earlier steps, the answer, the run's id and clock,
the items of a run-time list) is shown by its expression, e.g.
``<steps.lookup.outputs.id | length>``. So the plan never reports a failure the
run would not have.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from owf_runner.context import FOREACH_NAMES, RUN_TIME_NAMES, item_context, job_context
from owf_runner.headers import header_problem
from owf_runner.loader import gc_paused
from owf_runner.model import PrivateKeyJwtCredential
from owf_runner.plan import Field, FileSource, ListSource, Plan, RetryPolicy, StepPlan
from owf_runner.redaction import REDACTOR
from owf_runner.sources import LEFT_OUT, BadItem, Filtered
from owf_runner.templating import (
    Compiled,
    MappingValue,
    SequenceValue,
    Template,
    TemplateError,
    free_names,
    json_body,
    render_string,
    truthy,
)
from owf_runner.urls import url_problem

MAX_ITEMS_SHOWN = 10
_OUTPUT = re.compile(r"\{\{-?(?P<expr>(?:(?!\{\{|\}\}).)*?)-?\}\}", re.DOTALL)


class _Fails(Exception):
    """A value the run would fail to render too; the message is already located."""


@dataclass(frozen=True)
class _Scope:
    plan: Plan
    context: Mapping[str, Any]
    run_time: frozenset[str]  # names whose values only the run knows

    def show(self, field: Field) -> Any:
        try:
            return _shown(field.value, self.context, self.run_time)
        except TemplateError as exc:
            raise _Fails(str(self.plan.problem((*field.at, *exc.path), str(exc)))) from None

    def check_json(self, field: Field, value: Any) -> None:
        """The run sends payload and query as JSON; a value that is not JSON fails there."""
        try:
            json_body(value)
        except TemplateError as exc:
            self.check(field, str(exc))

    def check_headers(self, field: Field, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem:
                raise _Fails(str(self.plan.problem((*field.at, name), problem)))

    def check(self, field: Field, problem: str | None) -> None:
        if problem:
            raise _Fails(str(self.plan.problem(field.at, problem)))

    def known(self, field: Field) -> bool:
        return not field.value.names & self.run_time

    def within(self, item: Any, index: int) -> _Scope:
        """This scope inside a foreach, at one item."""
        return _Scope(self.plan, item_context(self.context, item, index), self.run_time)


def plan_text(plan: Plan) -> str:
    with gc_paused():  # as while loading: many objects, next to no garbage
        return _plan_text(plan)


def _plan_text(plan: Plan) -> str:
    lines = [f"plan for {plan.name} ({plan.document.path}): no request is sent", ""]
    scope = _Scope(plan, job_context(plan.vars, plan.name, run=None), RUN_TIME_NAMES)
    for step in plan.steps:
        lines += _step_lines(scope, step)
    return REDACTOR.redact("\n".join(lines))


def _step_lines(scope: _Scope, step: StepPlan) -> list[str]:
    auth = _auth(scope.plan, step)
    head = f"{step.index + 1}. {step.id}: {step.method} via org {step.org.name} ({auth})"
    lines = [head, f"   retry: {_retry(step.retry)}; rate limit {step.rate_limit}"]
    try:
        note, skipped = _when(scope, step)
        lines += [f"   {note}"] if note else []
        if skipped:
            return [*lines, ""]
        for note, item_scope in _items(scope, step):
            lines += _request_lines(item_scope, step, note)
    except _Fails as exc:
        lines.append(f"   fails before sending: {exc}")
    return [*lines, ""]


def _auth(plan: Plan, step: StepPlan) -> str:
    credential = plan.credentials[step.org.credential]
    if isinstance(credential, PrivateKeyJwtCredential):
        return f"OAuth 2.0 as {credential.client_id}, token from {step.org.token_url}"
    return "client token header" if step.org.auth == "client_token" else "no authentication"


def _retry(policy: RetryPolicy) -> str:
    classes = ", ".join(sorted(policy.on))
    backoff = f"backoff {policy.backoff_initial:g}-{policy.backoff_max:g}s"
    return f"{policy.attempts} attempts on {classes}; {backoff}; max wait {policy.max_wait:g}s"


def _when(scope: _Scope, step: StepPlan) -> tuple[str | None, bool]:
    """A line about ``when`` (or None), and whether the step is skipped for sure."""
    if step.when is None:
        return None, False
    if not scope.known(step.when):
        return f"runs only if: {step.when.written}", False
    if truthy(scope.show(step.when)):
        return None, False
    return f"skipped: `when` is false ({step.when.written})", True


def _items(scope: _Scope, step: StepPlan) -> Iterator[tuple[str, _Scope]]:
    source = step.foreach
    if source is None:
        yield "", scope
        return
    field = source.field
    if not scope.known(field):
        run_time = scope.run_time | FOREACH_NAMES
        of = (
            _display(field.value) if isinstance(field.value, Template) else _json(scope.show(field))
        )
        yield f"for each item of {of}", _Scope(scope.plan, scope.context, run_time)
        return
    where = source.where if isinstance(source, FileSource) else None
    if where is not None and not scope.known(where):
        yield f"... only the items for which the run finds {where.written} true", scope
        where = None
    items, total, left_out = _first_items(scope, source, where)
    for index, item in items:
        yield _labelled_item(scope.within(item, index), step, index)
    if total > len(items):
        yield f"... and {total - len(items)} more items", scope
    if left_out:
        yield f"... {left_out} left out by where", scope


def _labelled_item(scope: _Scope, step: StepPlan, index: int) -> tuple[str, _Scope]:
    """``item 3: ada@example.com``; a label that fails to render fails the item, as in a run."""
    unlabelled = isinstance(scope.context["item"], BadItem)  # a row the run fails unsent
    if unlabelled or step.label is None or not scope.known(step.label):
        return f"item {index}", scope
    try:
        return f"item {index}: {scope.show(step.label)}", scope
    except _Fails as exc:
        return f"item {index}", scope.within(BadItem(str(exc)), index)


def _first_items(
    scope: _Scope, source: ListSource | FileSource, where: Field | None
) -> tuple[list[tuple[int, Any]], int, int]:
    """The first items the run would send, how many there are in all, and how many
    ``where`` leaves out."""
    rendered = scope.show(source.field)
    try:
        stream: Iterator[tuple[int, Any]] = enumerate(source.open(rendered, scope.plan.base_dir))
        filtered = None if where is None else Filtered(stream, _keep(scope, where))
        stream = stream if filtered is None else filtered
        shown = list(itertools.islice(stream, MAX_ITEMS_SHOWN))
        total = len(shown) + sum(1 for _ in stream)
    except TemplateError as exc:  # a missing file, a bad row, not a list: as in the run
        raise _Fails(str(scope.plan.problem(source.field.at, str(exc)))) from None
    return shown, total, 0 if filtered is None else filtered.left_out


def _keep(scope: _Scope, where: Field) -> Callable[[int, Any], Any]:
    def keep(index: int, item: Any) -> Any:
        try:
            kept = truthy(scope.within(item, index).show(where))
        except _Fails as exc:
            return BadItem(str(exc))
        return item if kept else LEFT_OUT

    return keep


def _request_lines(scope: _Scope, step: StepPlan, note: str) -> list[str]:
    prefix = f"   [{note}] " if note else "   "
    if note.startswith("..."):
        return [f"   {note}"]
    item = scope.context.get("item")
    if isinstance(item, BadItem):  # a row the run fails unsent
        return [f"{prefix}fails before sending: {item.message}"]
    try:  # in the order the run builds a request, so the first failure is the same
        url = scope.show(step.flow)
        if isinstance(step.flow.value, Template) and scope.known(step.flow):
            scope.check(step.flow, url_problem(str(url)))  # a literal URL was checked on load
        payload = scope.show(step.payload)
        scope.check_json(step.payload, payload)
        query = scope.show(step.query)
        scope.check_json(step.query, query)
        headers = {name: str(value) for name, value in scope.show(step.headers).items()}
        if scope.known(step.headers):
            scope.check_headers(step.headers, headers)
    except _Fails as exc:
        return [f"{prefix}fails before sending: {exc}"]
    lines = [f"{prefix}{step.method} {url}"]
    if query:
        lines.append(_labelled("query", query))
    if headers:
        lines.append(_labelled("headers", headers))
    if step.method == "POST":
        lines.append(_labelled("payload", payload))
    return lines


def _labelled(label: str, value: Any) -> str:
    return f"     {label}: " + _json(value).replace("\n", "\n     ")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


# -- showing a compiled value: render what is known, name what is not ---------------


def _shown(value: Compiled, context: Mapping[str, Any], run_time: frozenset[str]) -> Any:
    if not value.names & run_time:
        return value.render(context)
    if isinstance(value, MappingValue):
        return {
            str(_shown(key, context, run_time)): _shown(item, context, run_time)
            for key, item in value.items
        }
    if isinstance(value, SequenceValue):
        return [_shown(item, context, run_time) for item in value.items]
    assert isinstance(value, Template)  # noqa: S101 - only templates have names
    return _partly_rendered(value, context, run_time)


def _partly_rendered(
    template: Template, context: Mapping[str, Any], run_time: frozenset[str]
) -> str:
    """``Hi {{ vars.name }}, {{ steps.x.outputs.n }}`` → ``Hi Ada, <steps.x.outputs.n>``.

    Blocks (``{% %}``) can mix both kinds; such a template is shown whole.
    """
    if template.is_lone_expression or "{%" in template.text or "{#" in template.text:
        return _display(template)

    def one(match: re.Match[str]) -> str:
        expression = "{{" + match.group("expr") + "}}"
        if free_names(expression) & run_time:
            return f"<{match.group('expr').strip()}>"
        return str(render_string(expression, context))

    return _OUTPUT.sub(one, template.text)


def _display(value: Any) -> str:
    return f"<{value.expression}>" if isinstance(value, Template) else _json(value)
