"""Resuming a run (DESIGN §6): which run, what it settled, and what is left to send.

A resume continues the same run — same id, so ``run.id`` renders the same — and runs only
what did not succeed. What succeeded is restored from the journal (outputs, the answer as
recorded); an invocation whose outcome is unknown (in flight when the run died, or a
timeout on a flow that is not idempotent) is not sent again unless ``--retry-unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from owf_runner.errors import ExitCode, OwfError, UsageError
from owf_runner.journal import (
    EMULATOR,
    OKTA,
    SENDING,
    STEP_INVOCATION,
    SUCCEEDED,
    ItemRecord,
    Journal,
    RunRecord,
    StepRecord,
)
from owf_runner.outcomes import ItemResult, Response, Status, StepResult
from owf_runner.plan import Plan, StepPlan, fields_of
from owf_runner.recording import item_digest
from owf_runner.redaction import escape_controls
from owf_runner.sources import BadItem
from owf_runner.templating import template_strings

UNKNOWN = str(Status.UNKNOWN)
RETRY_UNKNOWN = "`--retry-unknown` sends it again"


class ResumeRefused(OwfError):
    """Resuming would risk sending what should not be sent; nothing was."""

    exit_code = ExitCode.INVALID_JOB


@dataclass(frozen=True)
class ResumeChoice:
    """What ``--resume`` asked for."""

    run_id: str | None  # --run; None: the latest run of the job
    retry_unknown: bool
    force: bool


def run_to_resume(
    journal: Journal, plan: Plan, choice: ResumeChoice, target: str
) -> RunRecord | None:
    """The run to continue; None when it (the latest, or the one named) fully succeeded.

    Only a run against the same ``target``: what a rehearsal sent to the emulator was
    never sent to Okta, and a real run must not count it as done."""
    job = str(plan.identity.path)
    if choice.run_id is None:
        record = journal.latest_run(job, target)
    else:
        record = journal.run(choice.run_id)
    if record is None:
        raise UsageError(_none_found(plan, choice.run_id))
    if record.job_path != job:
        raise UsageError(
            f"run {choice.run_id} is a run of {_shown_path(record.job_path)}, not of {job}"
        )
    if record.target != target:
        raise UsageError(
            f"run {record.id} sent its requests to {_target(record.target)}; this run sends "
            f"to {_target(target)}: it cannot finish that one"
        )
    if record.status == SUCCEEDED:
        return None
    if record.job_sha256 != plan.identity.sha256 and not choice.force:
        raise ResumeRefused(
            f"{job} has changed since run {record.id}: resuming could send what that run "
            "would not have; run the job afresh (without --resume), or pass --force to resume "
            "anyway"
        )
    if _other_vars(record, plan) and not choice.force:
        raise ResumeRefused(
            f"run {record.id} of {job} had other variables (--var, --vars-file) than these: "
            "resuming with them could send what that run would not have, or skip a step it "
            "failed; give the same ones, or pass --force to resume anyway"
        )
    return record


def _other_vars(record: RunRecord, plan: Plan) -> bool:
    return record.vars_sha256 is not None and record.vars_sha256 != plan.identity.vars_sha256


_TARGETS = {OKTA: "Okta", EMULATOR: "an emulator"}


def _target(target: str) -> str:
    return _TARGETS.get(target) or f"{target!r} (not a target owf-run writes)"


def _none_found(plan: Plan, run_id: str | None) -> str:
    if run_id is None:
        return f"nothing to resume: no run of {plan.identity.path} is in the journal"
    return f"no run {run_id!r} in the journal (`owf-run history` lists them)"


def _shown_path(path: str) -> str:
    return escape_controls(path)


class Resumed:
    """The Earlier a resumed run consults: steps and items the run settled before.

    Items are looked up by walking the step's records in index order alongside the source
    (both go forward), so a resume of 100,000 items reads each record once, in pages.
    """

    def __init__(
        self,
        reader: Journal,
        run: RunRecord,
        plan: Plan,
        choice: ResumeChoice,
        results_read: frozenset[str],
    ) -> None:
        self.reader, self.run, self.choice = reader, run, choice
        records = {record.step_id: record for record in reader.steps(run.id)}
        invocations = _invocations(reader, run, plan, records)
        self.settled = _settled_steps(run, plan, records, invocations, choice, results_read)
        self.resend = _items_to_send_again(plan, self.settled, results_read)
        self._walks: dict[str, _Walk] = {}
        # Requests sent for invocations that run again; taken when counted (memory stays flat).
        self._sent: dict[tuple[str, int], int] = {
            (step_id, STEP_INVOCATION): invocation.attempts
            for step_id, invocation in invocations.items()
            if step_id not in self.settled
        }

    def step(self, step: StepPlan) -> StepResult | None:
        return self.settled.get(step.id)

    def item(self, step: StepPlan, index: int, item: Any) -> ItemResult | None:
        if isinstance(item, BadItem):  # unreadable then and now: it fails again, unsent
            return None
        walk = self._walks.get(step.id)
        if walk is None:
            walk = self._walks[step.id] = _Walk(self.reader.items(self.run.id, step.id))
        record = walk.at(index)
        if record is None:
            return None
        return self._settled_item(record, index, item)

    def sent_before(self, step: StepPlan, index: int | None) -> int:
        return self._sent.pop((step.id, STEP_INVOCATION if index is None else index), 0)

    def _settled_item(self, record: ItemRecord, index: int, item: Any) -> ItemResult | None:
        if (
            record.digest is not None
            and record.digest != item_digest(item)
            and not self.choice.force
        ):
            return ItemResult(
                index, item, Status.FAILED, 0, error=self._changed(), label=record.label
            )
        # An item's secret outputs are not on record: sent again when a step needs them.
        if record.status == SUCCEEDED and record.step_id not in self.resend:
            return _restored_item(record, index, item)
        if record.status in (SENDING, UNKNOWN) and not self.choice.retry_unknown:
            error = _unknown(self.run, record.error)
            return ItemResult(
                index,
                item,
                Status.UNKNOWN,
                record.attempts,
                error=error,
                label=record.label,
                restored=True,
            )
        self._sent[record.step_id, index] = record.attempts
        return None  # failed, or unknown and the user asked for it: send it again

    def _changed(self) -> str:
        return (
            f"not sent: this is not the item run {self.run.id} had at this place (the data "
            "changed), so which items were sent cannot be told; `--force` resumes by place anyway"
        )


class _Walk:
    """A step's item records in index order, read forward as the items come."""

    def __init__(self, records: Iterator[ItemRecord]) -> None:
        self._records = records
        self._next: ItemRecord | None = next(records, None)

    def at(self, index: int) -> ItemRecord | None:
        while self._next is not None and self._next.index < index:
            self._next = next(self._records, None)
        if self._next is not None and self._next.index == index:
            return self._next
        return None


def _unknown(run: RunRecord, reason: str | None) -> str:
    # The reason as the run gave it, without its own "(not re-sent ...)" advice: this one says it.
    why = (reason or "in flight when the run stopped").split(" (not re-sent", 1)[0]
    return f"not re-sent: its outcome is unknown since run {run.id} ({why}); {RETRY_UNKNOWN}"


def _restored_item(record: ItemRecord, index: int, item: Any) -> ItemResult:
    response = None if record.http_status is None else Response(record.http_status, {}, record.body)
    return ItemResult(
        index,
        item,
        Status.SUCCEEDED,
        record.attempts,
        record.outputs,
        response,
        label=record.label,
        restored=True,
    )


# -- which steps are settled ------------------------------------------------------------------


def _settled_steps(
    run: RunRecord,
    plan: Plan,
    records: dict[str, StepRecord],
    invocations: dict[str, ItemRecord],
    choice: ResumeChoice,
    results_read: frozenset[str],
) -> dict[str, StepResult]:
    settled: dict[str, StepResult] = {}
    for step in plan.steps:
        restored = _restored(step, records.get(step.id), invocations.get(step.id), results_read)
        if restored is not None:
            settled[step.id] = restored
    succeeded = {step.id: step for step in plan.steps if step.id in settled}
    for step in _needing_secrets_again(plan, succeeded):
        del settled[step.id]
    for step_id, invocation in invocations.items():
        if step_id not in settled and not choice.retry_unknown:
            unknown = _unknown_invocation(run, step_id, invocation)
            if unknown is not None:
                settled[step_id] = unknown
    return settled


def _invocations(
    reader: Journal, run: RunRecord, plan: Plan, records: dict[str, StepRecord]
) -> dict[str, ItemRecord]:
    """The one invocation of each plain step its own record does not say succeeded."""
    found = {}
    for step in plan.steps:
        record = records.get(step.id)
        if step.foreach is None and (record is None or record.status != SUCCEEDED):
            invocation = reader.item(run.id, step.id, STEP_INVOCATION)
            if invocation is not None:
                found[step.id] = invocation
    return found


def _restored(
    step: StepPlan,
    record: StepRecord | None,
    invocation: ItemRecord | None,
    results_read: frozenset[str],
) -> StepResult | None:
    """A step that succeeded, as recorded. A foreach whose results a later template reads is
    not restored whole: its items come back one by one, with the items themselves."""
    if record is not None and record.status == SUCCEEDED and step.id not in results_read:
        return _restored_step(record)
    # A plain step's own record may have been lost with a crash; its invocation's tells.
    if invocation is None or invocation.status != SUCCEEDED:
        return None
    answer = _restored_item(invocation, STEP_INVOCATION, None)
    return StepResult(
        step.id,
        Status.SUCCEEDED,
        invocation.attempts,
        outputs=answer.outputs,
        response=answer.response,
        restored=True,
    )


def _restored_step(record: StepRecord) -> StepResult:
    answer = record.response
    response = None
    if isinstance(answer, dict) and isinstance(answer.get("status"), int):
        headers = answer.get("headers")
        response = Response(
            answer["status"], headers if isinstance(headers, dict) else {}, answer.get("body")
        )
    return StepResult(
        record.step_id,
        Status.SUCCEEDED,
        record.attempts,
        record.seconds,
        record.outputs,
        response,
        items=record.items,
        restored=True,
    )


def _unknown_invocation(run: RunRecord, step_id: str, record: ItemRecord) -> StepResult | None:
    if record.status not in (SENDING, UNKNOWN):
        return None
    return StepResult(
        step_id,
        Status.FAILED,
        record.attempts,
        error=_unknown(run, record.error),
        unknown=(step_id,),
        unknown_count=1,
        restored=True,
    )


def _needing_secrets_again(plan: Plan, succeeded: dict[str, StepPlan]) -> Iterator[StepPlan]:
    """Succeeded steps to run again for their secret outputs (see _must_run_again).

    Walked backwards: a step run again may need an earlier step's secret in turn."""
    pending = [step for step in plan.steps if step.id not in succeeded]
    for step in reversed(plan.steps):
        if step.id in succeeded and _must_run_again(step, pending):
            pending.append(step)
            yield step


def _items_to_send_again(
    plan: Plan, settled: dict[str, StepResult], results_read: frozenset[str]
) -> frozenset[str]:
    """Foreach steps whose succeeded items are sent again: a step still to run reads their
    results, secret outputs included (see _must_run_again)."""
    pending = [step for step in plan.steps if step.id not in settled]
    return frozenset(
        step.id for step in plan.steps if step.id in results_read and _must_run_again(step, pending)
    )


def _must_run_again(step: StepPlan, pending: Iterable[StepPlan]) -> bool:
    """Does a later step still to run (may) use ``step``'s secret outputs, which the journal
    never keeps? Then ``step`` runs again if it is idempotent; otherwise ResumeRefused."""
    if not any(output.secret for output in step.outputs):
        return False
    user = next(
        (later for later in pending if later.index > step.index and _names(later, step.id)),
        None,
    )
    if user is None:
        return False
    if not step.idempotent:
        raise ResumeRefused(_secret_refusal(step, user))
    return True


def _secret_refusal(step: StepPlan, user: StepPlan) -> str:
    return (
        f"step {user.id} still has to run and may use the secret outputs of step {step.id}, "
        "which the journal does not keep; running it again would repeat it, and it is not "
        f"`idempotent: true`: run the job afresh, or mark {step.id} idempotent if it is safe "
        "to repeat"
    )


_STEPS = re.compile(r"\bsteps\b(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?")


def _names(step: StepPlan, step_id: str) -> bool:
    """Does any template of ``step`` (may) reach ``steps.<step_id>``? Any use of ``steps``
    but ``steps.<another id>`` may: ``steps[...]``, ``steps | tojson``, ``steps`` whole."""
    return any(
        match.group(1) in (None, step_id)
        for field in fields_of((step,))
        for _, text in template_strings(field.written)
        for match in _STEPS.finditer(text)
    )
