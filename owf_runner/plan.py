"""``owf-run plan``: every request a job would send, rendered, with no network.

Values only a run can know (earlier steps' outputs and responses) render as
placeholders such as ``<steps.create_user.outputs.user_id>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from owf_runner.loader import LoadedJob
from owf_runner.model import (
    ClientTokenCredential,
    CsvSource,
    JsonlSource,
    JsonSource,
    PrivateKeyJwtCredential,
    Retry,
    Step,
)
from owf_runner.redaction import REDACTOR
from owf_runner.templating import TemplateError, render_value, truthy

MAX_ITEMS_SHOWN = 10


class Placeholder:
    """Stands for a value known only at run time; any attribute is another placeholder."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return Placeholder(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> Placeholder:
        return Placeholder(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<{self._path}>"

    def __iter__(self) -> Iterator[Placeholder]:
        yield Placeholder(f"{self._path}[*]")


def plan_text(loaded: LoadedJob) -> str:
    lines = [f"plan for {loaded.name} ({loaded.path}): no request is sent", ""]
    for number, step in enumerate(loaded.job.steps, start=1):
        lines += _step_lines(loaded, number, step)
    return REDACTOR.redact("\n".join(lines))


def _step_lines(loaded: LoadedJob, number: int, step: Step) -> list[str]:
    context = _context(loaded)
    head = f"{number}. {step.id}: {step.method} via org {step.org} ({_auth(loaded, step)})"
    lines = [head, f"   retry: {_retry(step)}; rate limit {step.rate_limit}"]
    skip = _when(step, context)
    if skip:
        return [*lines, f"   {skip}", ""]
    for note, item_context in _items(loaded, step, context):
        lines += _request_lines(step, item_context, note)
    return [*lines, ""]


def _context(loaded: LoadedJob) -> dict[str, Any]:
    steps = {s.id: Placeholder(f"steps.{s.id}") for s in loaded.job.steps}
    return {
        "vars": loaded.vars,
        "env": dict(os.environ),
        "steps": steps,
        "run": {"id": "<run.id>", "started_at": "<run.started_at>"},
        "job": {"name": loaded.name},
    }


def _auth(loaded: LoadedJob, step: Step) -> str:
    org = loaded.job.orgs[step.org or ""]
    credential = loaded.job.credentials.get(org.credential)
    if isinstance(credential, PrivateKeyJwtCredential):
        return f"OAuth 2.0 as {credential.client_id}, token from {org.resolved_token_url}"
    if isinstance(credential, ClientTokenCredential):
        return "client token header"
    return "no authentication"


def _retry(step: Step) -> str:
    policy = step.retry or Retry()
    classes = ", ".join(sorted(policy.classes(step.idempotent)))
    backoff = f"backoff {policy.backoff.initial:g}-{policy.backoff.max:g}s"
    return f"{policy.attempts} attempts on {classes}; {backoff}; max wait {policy.max_wait:g}s"


def _when(step: Step, context: dict[str, Any]) -> str | None:
    if step.when is None:
        return None
    try:
        value = render_value(step.when, context)
    except TemplateError as exc:
        return f"fails: when: {exc}"
    if _depends_on_run(value):
        return None if value is True else f"runs only if: {step.when}"
    return None if truthy(value) else f"skipped: `when` is false ({step.when})"


def _depends_on_run(value: Any) -> bool:
    return isinstance(value, Placeholder) or (isinstance(value, str) and "<steps." in value)


def _items(
    loaded: LoadedJob, step: Step, context: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    if step.foreach is None:
        yield "", context
        return
    items = _foreach_items(step, context)
    if items is None:
        yield (
            "for each item of a run-time list",
            {**context, "item": Placeholder("item"), "index": Placeholder("index")},
        )
        return
    for index, item in enumerate(items[:MAX_ITEMS_SHOWN]):
        yield f"item {index}", {**context, "item": item, "index": index}
    if len(items) > MAX_ITEMS_SHOWN:
        yield f"... and {len(items) - MAX_ITEMS_SHOWN} more items", {}


def _foreach_items(step: Step, context: dict[str, Any]) -> list[Any] | None:
    if isinstance(step.foreach, CsvSource | JsonlSource | JsonSource):
        return None
    try:
        items = render_value(step.foreach, context)
    except TemplateError:
        return None
    return items if isinstance(items, list) else None


def _request_lines(step: Step, context: dict[str, Any], note: str) -> list[str]:
    if not context:
        return [f"   {note}"]
    prefix = f"   [{note}] " if note else "   "
    try:
        url = render_value(step.flow, context)
        payload = render_value(step.payload, context)
        query = render_value(step.query, context)
        headers = render_value(step.headers, context)
    except TemplateError as exc:
        return [f"{prefix}fails before sending: {exc}"]
    lines = [f"{prefix}{step.method} {url}"]
    if query:
        lines.append(f"     query: {_json(query)}")
    if headers:
        lines.append(f"     headers: {_json(headers)}")
    if step.method == "POST":
        lines.append("     payload: " + _json(payload).replace("\n", "\n     "))
    return lines


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
