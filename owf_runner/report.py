"""Console output: plain timestamped progress lines and the end-of-run summary.

Every line is redacted, then has its control characters escaped, as it leaves (``printable``);
a standard output that goes away (``owf-run JOB | head -1``) is let go and the run goes on.
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass, field
from typing import TextIO

from owf_runner.boundary import Output
from owf_runner.failures import Failure
from owf_runner.outcomes import ItemResult, RunResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.redaction import escape_controls


@dataclass
class ConsoleReporter:
    stream: TextIO | None = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        self.output = Output(self.stream)

    def say(self, text: str, *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        self.output.write(f"{stamp} {text}\n")

    def step_started(self, step: StepPlan) -> None:
        self.say(f"{step.id}: started ({step.method} on org {step.org.name})")

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        if result.status is Status.FAILED:
            self.say(f"{step.id}[{result.index}]: failed: {result.error}", always=True)
        elif self.verbose:
            self.say(f"{step.id}[{result.index}]: {result.status} ({_attempts(result.attempts)})")

    def retrying(self, step: StepPlan, failure: Failure, attempt: int, wait: float) -> None:
        reason = str(failure)
        if not reason.startswith(f"{failure.failure_class}: "):  # transport messages name it
            reason = f"{failure.failure_class}: {reason}"
        self.say(f"{step.id}: attempt {attempt} failed ({reason}); retrying in {wait:.1f}s")

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        detail = f": {result.error}" if result.error else ""
        items = f"{result.items} items, " if step.foreach is not None else ""
        timing = f"{items}{_attempts(result.attempts)}, {result.seconds:.2f}s"
        line = f"{step.id}: {result.shown_status} ({timing}){detail}"
        self.say(line, always=result.status is Status.FAILED)
        if self.verbose and result.response is not None:
            body = json.dumps(result.response.body, ensure_ascii=False)
            self.say(f"{step.id}: HTTP {result.response.status} {body}")

    def summary(self, run: RunResult) -> None:
        lines = [f"run {run.run_id} of {run.job_name}: {run.outcome}", *_table(run.steps)]
        self.output.write("\n".join(lines) + "\n")


def _attempts(count: int) -> str:
    return f"{count} attempt" + ("" if count == 1 else "s")


def _table(steps: tuple[StepResult, ...]) -> list[str]:
    rows = [("STEP", "STATUS", "ATTEMPTS", "TIME")]
    # Escaped before measuring, so that the columns line up as printed.
    rows += [
        (escape_controls(s.id), s.shown_status, str(s.attempts), f"{s.seconds:.2f}s") for s in steps
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
