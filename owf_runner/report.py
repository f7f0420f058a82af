"""Console output: timestamped lines, progress of foreach steps, the end-of-run summary.

On a terminal a foreach step gets a live bar (done/total, rate, ETA, failures); elsewhere
(cron, CI logs) it gets a heartbeat line at each tenth of its items, or every 30 s when the
total is not known in advance (a file) — never a line per item.

Every line is redacted, then has its control characters escaped, as it leaves (``printable``);
a standard output that goes away (``owf-run JOB | head -1``) is let go and the run goes on.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from owf_runner.boundary import Output
from owf_runner.failures import Failure
from owf_runner.outcomes import ItemResult, RunResult, Status, StepResult, attempts_text
from owf_runner.plan import StepPlan
from owf_runner.redaction import escape_controls, printable

if TYPE_CHECKING:  # rich loads only when a terminal shows a bar
    from rich.progress import ProgressColumn


HEARTBEAT_SECONDS = 30.0  # at most this long without a line, off a terminal


@dataclass
class ConsoleReporter:
    stream: TextIO | None = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    verbose: bool = False
    live: bool | None = None  # live bars; None: when the stream is a terminal
    clock: Callable[[], float] = time.monotonic  # for heartbeats and rates

    def __post_init__(self) -> None:
        self.output = Output(self.stream)
        if self.live is None:
            self.live = _is_terminal(self.stream)
        self.bars: _Bars | None = None
        self.heartbeats: dict[str, Heartbeat] = {}

    def say(self, text: str, *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.bars is not None:
            self.bars.say(printable(f"{stamp} {text}"))
        else:
            self.output.write(f"{stamp} {text}\n")

    def step_started(self, step: StepPlan) -> None:
        self.say(f"{step.id}: started ({step.method} on org {step.org.name})")

    def foreach_started(self, step: StepPlan, total: int | None) -> None:
        self.heartbeats[step.id] = Heartbeat(total, self.clock())
        if self.live and not self.quiet and self.stream is not None:
            self.bars = self.bars or _Bars(self.stream)
            self.bars.start(step.id, total)

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        failed = result.status.failed
        if failed:
            self.say(f"{step.id}[{result.name}]: failed: {result.error}", always=True)
        elif self.verbose:
            how = "earlier; restored" if result.restored else attempts_text(result.attempts)
            self.say(f"{step.id}[{result.name}]: {result.status} ({how})")
        self._progress(step, failed)

    def _progress(self, step: StepPlan, failed: bool) -> None:
        beat = self.heartbeats.get(step.id)
        if beat is None:
            return
        now = self.clock()
        beat.add(failed)
        if self.bars is not None:
            self.bars.advance(step.id, beat.failed)
        elif beat.beat_due(now):
            self.say(f"{step.id}: {beat.describe(now)}")

    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None:
        reason = str(failure)
        if not reason.startswith(f"{failure.failure_class}: "):  # transport messages name it
            reason = f"{failure.failure_class}: {reason}"
        who = step.id if item is None else f"{step.id}[{item}]"
        self.say(f"{who}: attempt {attempt} failed ({reason}); retrying in {wait:.1f}s")

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        self.heartbeats.pop(step.id, None)
        if self.bars is not None:
            self.bars.stop()
            self.bars = None
        detail = f": {result.error}" if result.error else ""
        items = f"{result.items} items, " if step.foreach is not None else ""
        if result.left_out:
            items += f"{result.left_out} left out by where, "
        timing = f"{items}{attempts_text(result.attempts)}, {result.seconds:.2f}s"
        if result.restored and result.status is Status.SUCCEEDED:
            timing = "earlier; restored from the journal, not run again"
        line = f"{step.id}: {result.shown_status} ({timing}){detail}"
        self.say(line, always=result.status is Status.FAILED)
        if self.verbose and result.response is not None:
            body = json.dumps(result.response.body, ensure_ascii=False)
            self.say(f"{step.id}: HTTP {result.response.status} {body}")

    def summary(self, run: RunResult, job: str = "JOB") -> None:
        if self.quiet and run.outcome == "succeeded":  # cron mails only what went wrong
            return
        lines = [f"run {run.run_id} of {run.job_name}: {run.outcome}", *_table(run.steps)]
        advice = unknown_advice(run, job)
        self.output.write("\n".join([*lines, advice] if advice else lines) + "\n")


def unknown_advice(run: RunResult, job: str) -> str | None:
    """Which invocations may have run the flow (never sent again by themselves), and how on."""
    count = sum(step.unknown_count for step in run.steps)
    if not count:
        return None
    named = [name for step in run.steps for name in step.unknown]
    more = f" and {count - len(named)} more" if count > len(named) else ""
    return (
        f"{count} {'invocation' if count == 1 else 'invocations'} may have run the flow and "
        f"{'was' if count == 1 else 'were'} not sent again: {', '.join(named)}{more}. Check in "
        f"Okta whether they ran; `owf-run {job} --resume --retry-unknown` sends them again "
        f"(`owf-run show {run.run_id}` lists them)."
    )


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed under us: no terminal to draw on
        return False


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


@dataclass
class Heartbeat:
    """One foreach step's progress, for its heartbeat lines."""

    total: int | None
    started: float
    done: int = 0
    failed: int = 0
    last_beat: float = field(init=False)
    next_tenth: int = 1

    def __post_init__(self) -> None:
        self.last_beat = self.started

    def add(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed

    def beat_due(self, now: float) -> bool:
        """At each tenth of a known total, else every HEARTBEAT_SECONDS; never per item.

        Not at the last item: the step's own line follows at once."""
        if self.done == self.total:
            return False
        if self.total and self.done * 10 >= self.next_tenth * self.total:
            self.next_tenth = self.done * 10 // self.total + 1
        elif now - self.last_beat < HEARTBEAT_SECONDS:
            return False
        self.last_beat = now
        return True

    def describe(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        share = f" ({self.done * 100 // self.total} %)" if self.total else ""
        parts = [f"{self.done}/{self.total if self.total else '?'} items{share}", f"{rate:.1f}/s"]
        parts.append(f"{self.failed} failed")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {(self.total - self.done) / rate:.0f}s")
        return ", ".join(parts)


class _Bars:
    """A live bar per foreach step on a terminal (rich, which typer already brings).

    Lines printed meanwhile go above the bar, already redacted and escaped.
    """

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _rate_column(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=Console(file=stream, highlight=False, markup=False),
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def start(self, step_id: str, total: int | None) -> None:
        self.tasks[step_id] = self.progress.add_task(
            escape_controls(step_id), total=total, failed=0
        )

    def advance(self, step_id: str, failed: int) -> None:
        self.progress.update(self.tasks[step_id], advance=1, failed=failed)

    def say(self, line: str) -> None:
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.progress.stop()


def _rate_column() -> ProgressColumn:
    """Items per second (rich's own speed column counts bytes)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f}/s")

    return Rate()
