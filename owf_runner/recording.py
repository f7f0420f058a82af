"""The journal as the runner's RunLog: each step and invocation recorded as it happens.

Secret outputs are never written (DESIGN §6); everything else passes the one redactor at
the journal's door. An invocation is `sending` — committed — before its first request leaves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from owf_runner.journal import STEP_INVOCATION, ItemRecord, Journal, StepRecord
from owf_runner.outcomes import ItemResult, StepResult
from owf_runner.plan import StepPlan

# Where Okta Workflows names an execution, so that `owf-run show` can point at it.
EXECUTION_HEADERS = ("x-okta-flow-execution-id", "x-execution-id")
EXECUTION_KEYS = ("executionId", "execution_id")


class JournalLog:
    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal, self.run_id = journal, run_id
        self._digests: dict[tuple[str, int], str | None] = {}  # in flight only: memory stays flat

    def step_started(self, step: StepPlan) -> None:
        # A foreach is on record as `running` while its items go; a plain step's one
        # invocation says as much, and its row comes with its outcome (a write less per step).
        if step.foreach is not None:
            self.journal.step_started(self.run_id, step.id, step.index)

    async def sending(
        self, step: StepPlan, index: int | None, label: str | None, item: Any
    ) -> None:
        at = _index(index)
        digest = self._digests[step.id, at] = None if index is None else item_digest(item)
        self.journal.sending(self.run_id, step.id, at, label, digest)
        await self.journal.durable(shared=step.concurrency > 1)

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        at = _index(result.index)
        digest = self._digests.pop((step.id, at), None)
        if digest is None and result.index is not None:
            digest = item_digest(result.item)
        self.journal.finished(_item_record(self.run_id, step, result, at, digest))

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        self.journal.step_finished(
            StepRecord(
                run_id=self.run_id,
                step_id=step.id,
                position=step.index,
                status=str(result.status),
                attempts=result.attempts,
                seconds=result.seconds,
                items=result.items,
                failed_items=result.failed_items,
                outputs=public_outputs(step, result.outputs),
                response=None if result.response is None else result.response.as_context(),
                error=result.error,
            )
        )


def _item_record(
    run_id: str, step: StepPlan, result: ItemResult, at: int, digest: str | None
) -> ItemRecord:
    response = result.response
    return ItemRecord(
        run_id=run_id,
        step_id=step.id,
        index=at,
        status=str(result.status),
        label=result.label,
        digest=digest,
        attempts=result.attempts,
        http_status=None if response is None else response.status,
        outputs=public_outputs(step, result.outputs),
        # A plain step's answer is on record once, in its step's record (same commit).
        body=None if response is None or at == STEP_INVOCATION else response.body,
        error=result.error,
        execution_id=None if response is None else execution_id(response.headers, response.body),
    )


def _index(index: int | None) -> int:
    return STEP_INVOCATION if index is None else index


def public_outputs(step: StepPlan, outputs: Any) -> dict[str, Any]:
    """The outputs a journal may hold: every one but the secret ones."""
    if not outputs:  # most items have none
        return {}
    secret = {output.name for output in step.outputs if output.secret}
    return {name: value for name, value in dict(outputs).items() if name not in secret}


def item_digest(item: Any) -> str:
    """A fingerprint of an item: a resume tells a changed file from the one it ran."""
    text = _flat_row(item) or _json_text(item)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _json_text(item: Any) -> str:
    try:
        return json.dumps(item, sort_keys=True, ensure_ascii=False, default=repr)
    except TypeError:  # keys of several types cannot be sorted (never a checked foreach item)
        return json.dumps(item, ensure_ascii=False, default=repr)


def execution_id(headers: Any, body: Any) -> str | None:
    for name in EXECUTION_HEADERS:
        value = headers.get(name) if hasattr(headers, "get") else None
        if isinstance(value, str) and value:
            return value
    if isinstance(body, dict):
        for key in EXECUTION_KEYS:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _flat_row(item: Any) -> str | None:
    """A CSV row's text for its fingerprint, a few times cheaper than JSON; None otherwise.
    Each key and value is length-prefixed, so no two rows share a text (nor a row and JSON)."""
    if not isinstance(item, dict):
        return None
    try:
        pairs = sorted(item.items())  # keys are unique: values are never compared
    except TypeError:  # keys of several types: not a row
        return None
    parts = ["row:"]
    for key, value in pairs:
        if not (isinstance(key, str) and isinstance(value, str)):
            return None
        parts.append(f"{len(key)}:{key}{len(value)}:{value}")
    return "".join(parts)
