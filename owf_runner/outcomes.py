"""One outcome model: a Result per step and per item, and the exit code derived from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from owf_runner.errors import ExitCode


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"
    UNKNOWN = "unknown"  # a failed invocation that may have run the flow: never re-sent by itself

    @property
    def failed(self) -> bool:
        return self in (Status.FAILED, Status.UNKNOWN)


def attempts_text(count: int) -> str:
    """``1 attempt``, ``3 attempts``: how lines count tries."""
    return f"{count} attempt" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class Response:
    """An HTTP answer as templates see it: ``response.status``, ``.headers``, ``.body``."""

    status: int
    headers: Mapping[str, str]
    body: Any

    def as_context(self) -> dict[str, Any]:
        # Shared, not copied: templates run in an immutable sandbox, and a foreach whose
        # results a later step reads holds one of these per item.
        return {"status": self.status, "headers": self.headers, "body": self.body}


@dataclass(frozen=True)
class ItemResult:
    """One invocation: a step without foreach, or one item of a foreach."""

    index: int | None
    item: Any
    status: Status
    attempts: int
    outputs: Mapping[str, Any] = field(default_factory=dict)
    response: Response | None = None
    error: str | None = None
    label: str | None = None  # the step's `label:` rendered for this item
    restored: bool = False  # settled by an earlier run of a resumed job: not sent now

    @property
    def name(self) -> str:
        """How lines name the item: its label, else its index."""
        return str(self.index) if self.label is None else self.label

    def as_context(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "index": self.index,
            "label": self.label,
            # Templates know two ways to fail; that the flow may have run is for the journal.
            "status": str(Status.FAILED if self.status.failed else self.status),
            "outputs": self.outputs,
            "response": self.response.as_context() if self.response else None,
        }


@dataclass(frozen=True)
class StepResult:
    id: str
    status: Status
    attempts: int = 0
    seconds: float = 0.0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    response: Response | None = None
    # A foreach: how many items ran; every item's result only when a later template reads
    # `steps.<id>.results` (else none: memory stays flat); the first few failures always.
    results: tuple[ItemResult, ...] = ()
    error: str | None = None
    ignored: bool = False  # failed under continue_on_error: reported, but the run goes on
    items: int = 0
    failures: tuple[ItemResult, ...] = ()
    left_out: int = 0  # items a file source's `where` filtered out
    failed_items: int = 0
    unknown: tuple[str, ...] = ()  # invocations that may have run: how lines name them (first few)
    unknown_count: int = 0
    restored: bool = False  # settled by an earlier run of a resumed job: not run now

    @property
    def shown_status(self) -> str:
        return "failed (ignored)" if self.ignored else str(self.status)

    def as_context(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "outputs": self.outputs,
            "response": self.response.as_context() if self.response else None,
            "results": [item.as_context() for item in self.results],
        }


@dataclass(frozen=True)
class RunResult:
    run_id: str
    job_name: str
    started_at: str
    steps: tuple[StepResult, ...]

    @property
    def ignored_failures(self) -> int:
        return sum(step.ignored for step in self.steps)

    @property
    def exit_code(self) -> ExitCode:
        failed = any(s.status is Status.FAILED and not s.ignored for s in self.steps)
        return ExitCode.STEP_FAILED if failed else ExitCode.OK

    @property
    def outcome(self) -> str:
        if self.exit_code != ExitCode.OK:
            return "failed"
        ignored = self.ignored_failures
        if ignored:
            return f"succeeded with {ignored} ignored failure" + ("s" if ignored > 1 else "")
        return "succeeded"
