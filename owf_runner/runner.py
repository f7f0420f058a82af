"""Executes a Plan — when, foreach, expect, outputs, concurrency — over the client it is handed."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, Protocol

import httpx2

from owf_runner.auth import TokenEndpointUnreachable, ready
from owf_runner.clock import Clock
from owf_runner.context import (
    RunInfo,
    item_context,
    job_context,
    response_context,
    results_read,
    step_context,
)
from owf_runner.errors import OwfError
from owf_runner.failures import AMBIGUOUS, Failure, FailureClass, status_failure
from owf_runner.headers import header_problem
from owf_runner.http import URL_CACHE_SIZE, Bounds, invoke, outgoing
from owf_runner.outcomes import ItemResult, Response, RunResult, Status, StepResult, attempts_text
from owf_runner.plan import Field, FileSource, ListSource, Plan, StepPlan, fields_of
from owf_runner.redaction import REDACTOR, TooDeep
from owf_runner.retry import Pacer, with_retries
from owf_runner.sources import LEFT_OUT, BadItem, Filtered, SourceError
from owf_runner.stopping import Stop
from owf_runner.templating import (
    MAX_PAYLOAD_BYTES,
    TemplateError,
    as_json,
    json_body,
    template_strings,
    truthy,
)
from owf_runner.urls import url_problem

FAILURES_KEPT = 10  # a foreach's first failed items, kept for the summary and reports
STOPPED_IN_FLIGHT = (
    "in flight when the run was stopped: the flow may have run "
    "(not re-sent; `--resume --retry-unknown` sends it again)"
)
MAX_LABEL = 200  # characters of an item's label in lines; a label is a name, not a payload


class Reporter(Protocol):
    def step_started(self, step: StepPlan) -> None: ...
    def foreach_started(self, step: StepPlan, total: int | None) -> None: ...
    def item_finished(self, step: StepPlan, result: ItemResult) -> None: ...
    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None: ...
    def step_finished(self, step: StepPlan, result: StepResult) -> None: ...


class RunReporter(Reporter, Protocol):
    """A Reporter that also speaks for the command: notes, and the run's summary at its end
    (ConsoleReporter for people, JsonLinesReporter for machines)."""

    def say(self, text: str, *, always: bool = False) -> None: ...
    def summary(self, run: RunResult, job: str = "JOB") -> None: ...


class RunLog(Protocol):
    """Where the runner records its work as it goes: the journal (NO_LOG: nowhere).

    ``sending`` is awaited before an invocation's first request leaves, and returns once
    that is on record: a crash after it leaves the item `sending`, never forgotten.
    """

    def step_started(self, step: StepPlan) -> None: ...
    async def sending(
        self, step: StepPlan, index: int | None, label: str | None, item: Any
    ) -> None: ...
    def item_finished(self, step: StepPlan, result: ItemResult) -> None: ...
    def step_finished(self, step: StepPlan, result: StepResult) -> None: ...


class Earlier(Protocol):
    """What an earlier run of this job settled, when this run resumes it."""

    def step(self, step: StepPlan) -> StepResult | None:
        """The step's result if it is settled (not to be run again), else None."""

    def item(self, step: StepPlan, index: int, item: Any) -> ItemResult | None:
        """The item's result if it is settled (not to be sent again), else None."""

    def sent_before(self, step: StepPlan, index: int | None) -> int:
        """Requests earlier sessions sent for an invocation that runs again now (a plain
        step's: ``index`` None): its attempts count them too. Asked once per invocation."""


class _NoLog:
    def step_started(self, step: StepPlan) -> None:
        pass

    async def sending(
        self, step: StepPlan, index: int | None, label: str | None, item: Any
    ) -> None:
        pass

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        pass

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        pass


class _NothingEarlier:
    def step(self, step: StepPlan) -> StepResult | None:
        return None

    def item(self, step: StepPlan, index: int, item: Any) -> ItemResult | None:
        return None

    def sent_before(self, step: StepPlan, index: int | None) -> int:
        return 0


NO_LOG: RunLog = _NoLog()
NOTHING_EARLIER: Earlier = _NothingEarlier()


@dataclasses.dataclass(frozen=True)
class Session:
    """This run beyond its plan: its id, a trial limit, its journal, what it resumes, its stop."""

    info: RunInfo
    limit: int | None = None  # only the first N items of each foreach (a trial run)
    log: RunLog = NO_LOG
    earlier: Earlier = NOTHING_EARLIER
    stop: Stop = dataclasses.field(default_factory=Stop)


class _Stopped(Exception):
    """The run was asked to stop before this try was sent."""


@dataclasses.dataclass
class _Tries:
    """One invocation's tries so far, and whether its `sending` is on record."""

    attempts: int = 0
    announced: bool = False
    in_flight: bool = False  # a try has left and has not been answered

    def when_stopped(self) -> tuple[Status, str]:
        """Stopped mid-way: unknown if a try was in flight, else failed — and safe to send
        again: nothing left, or every try failed in a class that is retried."""
        if self.in_flight:
            return Status.UNKNOWN, STOPPED_IN_FLIGHT
        if self.attempts:
            return (
                Status.FAILED,
                f"not retried: the run was stopped after {attempts_text(self.attempts)}",
            )
        return Status.FAILED, "not sent: the run was stopped first"


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    url: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None  # the payload as sent: JSON, or nothing for a GET


async def execute(
    plan: Plan,
    client: httpx2.AsyncClient,
    auths: Mapping[str, httpx2.Auth],
    reporter: Reporter,
    clock: Clock,
    session: Session | None = None,
) -> RunResult:
    """Run ``plan``: a fresh run of every step, unless ``session`` says otherwise."""
    session = session or Session(new_run(clock))
    return await Runner(plan, client, auths, reporter, clock, session).run()


def new_run(clock: Clock) -> RunInfo:
    now = datetime.datetime.fromtimestamp(clock.time(), datetime.UTC)
    run_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    return RunInfo(run_id, now.isoformat(timespec="seconds"))


class Runner:
    def __init__(
        self,
        plan: Plan,
        client: httpx2.AsyncClient,
        auths: Mapping[str, httpx2.Auth],
        reporter: Reporter,
        clock: Clock,
        session: Session,
    ) -> None:
        self.plan, self.client, self.auths, self.session = plan, client, auths, session
        self.limit, self.log, self.stop = session.limit, session.log, session.stop
        self.reporter, self.clock = reporter, session.stop.clock(clock)
        self.info = session.info
        self.base = job_context(plan.vars, plan.name, self.info)
        self.states: dict[str, dict[str, Any]] = {}
        self.pacers: dict[str, Pacer] = {}
        self.good_urls: set[str] = set()  # checked once: a step's URL is the same for each item
        self.results_read = results_read_by(plan)

    async def run(self) -> RunResult:
        results: list[StepResult] = []
        stopped = False
        for step in self.plan.steps:
            stopped = stopped or self.stop.requested
            result = StepResult(step.id, Status.NOT_RUN) if stopped else await self.run_step(step)
            results.append(result)
            self.states[step.id] = result.as_context()
            stopped = stopped or (result.status is Status.FAILED and not result.ignored)
        return RunResult(self.info.id, self.plan.name, self.info.started_at, tuple(results))

    async def run_step(self, step: StepPlan) -> StepResult:
        settled = self.session.earlier.step(step)
        if settled is not None:  # a resume: its outcome and outputs are those on record
            ignored = settled.status is Status.FAILED and step.continue_on_error
            settled = dataclasses.replace(settled, ignored=ignored)
            self.reporter.step_finished(step, settled)
            return settled
        self.reporter.step_started(step)
        self.log.step_started(step)
        started = self.clock.monotonic()
        try:
            result = await self._cancellable(
                self._run_step(step, step_context(self.base, self.states))
            )
        except (TemplateError, TokenEndpointUnreachable) as exc:
            result = StepResult(step.id, Status.FAILED, error=str(exc))
        ignored = result.status is Status.FAILED and step.continue_on_error
        seconds = self.clock.monotonic() - started
        result = dataclasses.replace(result, seconds=seconds, ignored=ignored)
        self.log.step_finished(step, result)
        self.reporter.step_finished(step, result)
        return result

    async def _cancellable(self, running: Coroutine[Any, Any, StepResult]) -> StepResult:
        """Run a step as a task the stop can cancel once its grace period is over."""
        task = asyncio.ensure_future(running)
        with self.stop.cancellable(task):
            return await task

    async def _run_step(self, step: StepPlan, context: dict[str, Any]) -> StepResult:
        if step.when is not None and not truthy(self._render(step.when, context)):
            return StepResult(step.id, Status.SKIPPED)
        if step.foreach is not None:
            return await self._foreach(step, step.foreach, context)
        item = self._counted(step, await self._invoke(step, context))
        self.log.item_finished(step, item)
        unknown = item.status is Status.UNKNOWN
        return StepResult(
            step.id,
            Status.FAILED if unknown else item.status,
            item.attempts,
            0.0,
            item.outputs,
            item.response,
            error=item.error,
            unknown=(step.id,) if unknown else (),
            unknown_count=int(unknown),
        )

    def _render(self, field: Field, context: Mapping[str, Any]) -> Any:
        """Render one field; a failure names the file, line and key path."""
        try:
            return field.value.render(context)
        except TemplateError as exc:
            raise self._located(field, str(exc), exc.path) from None

    def _located(
        self, field: Field, message: str, sub: tuple[str | int, ...] = ()
    ) -> TemplateError:
        return TemplateError(str(self.plan.problem((*field.at, *sub), message)))

    # -- foreach ---------------------------------------------------------------

    async def _foreach(
        self, step: StepPlan, source: ListSource | FileSource, context: dict[str, Any]
    ) -> StepResult:
        items, total, filtered = self._items(source, context)
        self.reporter.foreach_started(step, total)
        tally = _Tally(keep_all=step.id in self.results_read)
        errors: list[str] = []
        halt = asyncio.Event()

        async def worker() -> None:
            while not halt.is_set() and not self.stop.requested:
                try:
                    index, item = next(items)
                except StopIteration:
                    return
                except SourceError as exc:  # a bad row: the items before it were sent
                    errors.append(str(self._located(source.field, str(exc))))
                    return halt.set()
                try:
                    result = await self._item(step, context, index, item)
                except TokenEndpointUnreachable as exc:
                    if str(exc) not in errors:  # the workers that waited on it share one answer
                        errors.append(str(exc))  # every other item would meet the same silence
                    return halt.set()
                tally.add(result)
                self.reporter.item_finished(step, result)
                if result.status.failed and step.fail_fast:
                    halt.set()

        try:
            await _gather_workers(worker, step.concurrency)
        except asyncio.CancelledError:  # the grace period is over: what was in flight is told
            if not self.stop.requested:
                raise
            _uncancel()
        if self.stop.requested and not _exhausted(items):
            errors.append("stopped before every item had run")
        return tally.result(step, errors, 0 if filtered is None else filtered.left_out)

    async def _item(
        self, step: StepPlan, context: dict[str, Any], index: int, item: Any
    ) -> ItemResult:
        settled = self.session.earlier.item(step, index, item)
        if settled is not None:  # a resume: sent before (or its outcome unknown): not again
            return settled
        result = self._counted(step, await self._fresh_item(step, context, index, item))
        self.log.item_finished(step, result)
        return result

    def _counted(self, step: StepPlan, result: ItemResult) -> ItemResult:
        """With the requests a resumed run's earlier sessions sent for it."""
        before = self.session.earlier.sent_before(step, result.index)
        return dataclasses.replace(result, attempts=result.attempts + before) if before else result

    async def _fresh_item(
        self, step: StepPlan, context: dict[str, Any], index: int, item: Any
    ) -> ItemResult:
        if isinstance(item, BadItem):  # a row the source could not read fails alone, unsent
            return ItemResult(index, None, Status.FAILED, 0, error=item.message)
        with_item = item_context(context, item, index)
        try:
            label = None if step.label is None else self._label(step.label, with_item)
        except TemplateError as exc:  # as any template's error: the item fails, unsent
            return ItemResult(index, item, Status.FAILED, 0, error=str(exc))
        return await self._invoke(step, with_item, index, item, label)

    def _label(self, field: Field, context: Mapping[str, Any]) -> str:
        value = self._render(field, context)
        text = value if isinstance(value, str) else self._json(field, value)
        text = REDACTOR.redact(text)  # before the cut: a secret cut in two is no longer seen
        return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"

    def _items(
        self, source: ListSource | FileSource, context: Mapping[str, Any]
    ) -> tuple[Iterator[tuple[int, Any]], int | None, Filtered | None]:
        """The items (the first ``limit`` that ``where`` keeps), how many there are when that
        is known without reading a file, and the filter, which counts what it left out."""
        rendered = self._render(source.field, context)
        try:
            items: Iterator[tuple[int, Any]] = enumerate(source.open(rendered, self.plan.base_dir))
        except SourceError as exc:
            raise self._located(source.field, str(exc)) from None
        filtered = None
        if isinstance(source, FileSource) and source.where is not None:
            items = filtered = Filtered(items, self._where(source.where, context))
        total = len(rendered) if isinstance(source, ListSource) else None
        if total is not None and self.limit is not None:
            total = min(total, self.limit)
        return itertools.islice(items, self.limit), total, filtered  # not read past the limit

    def _where(self, where: Field, context: Mapping[str, Any]) -> Callable[[int, Any], Any]:
        def keep(index: int, item: Any) -> Any:
            """The item, LEFT_OUT, or a BadItem when ``where`` fails for it (it fails alone)."""
            try:
                kept = truthy(self._render(where, item_context(context, item, index)))
            except TemplateError as exc:
                return BadItem(str(exc))
            return item if kept else LEFT_OUT

        return keep

    # -- one invocation --------------------------------------------------------

    async def _invoke(
        self,
        step: StepPlan,
        context: dict[str, Any],
        index: int | None = None,
        item: Any = None,
        label: str | None = None,
    ) -> ItemResult:
        tries = _Tries()
        name = None if index is None else str(index) if label is None else label

        async def attempt() -> Response:
            if self.stop.requested:
                raise _Stopped
            try:
                response, pacer = await self._send(step, request, tries, announce)
                self._mask_secret_outputs(step, context, response)
                self._raise_for_status(step, response, pacer)
            except Failure:
                tries.in_flight = False  # answered, or failed in a known way
                raise
            return response

        async def announce() -> None:
            await self.log.sending(step, index, label, item)
            tries.announced = True

        try:
            request = self._build_request(step, context)
            hook = self._retry_hook(step, name)
            response = await with_retries(attempt, step.retry, hook, self.clock)
            outputs = self._check(step, context, response)
        except (Failure, TemplateError) as exc:
            failed = exc.response if isinstance(exc, Failure) else None
            note = _not_resent_note(step, exc)  # a note: the flow may have run
            status = Status.UNKNOWN if note else Status.FAILED
            return ItemResult(
                index,
                item,
                status,
                tries.attempts,
                response=failed,
                error=str(exc) + note,
                label=label,
            )
        except (_Stopped, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not self.stop.requested:
                raise
            _uncancel()
            status, error = tries.when_stopped()
            return ItemResult(index, item, status, tries.attempts, error=error, label=label)
        return ItemResult(
            index, item, Status.SUCCEEDED, tries.attempts, outputs, response, label=label
        )

    def _retry_hook(
        self, step: StepPlan, item: str | None
    ) -> Callable[[Failure, int, float], None]:
        def hook(failure: Failure, attempt: int, wait: float) -> None:
            self.reporter.retrying(step, item, failure, attempt, wait)

        return hook

    def _build_request(self, step: StepPlan, context: Mapping[str, Any]) -> Request:
        url = str(self._render(step.flow, context))
        self._check_url(step, url)
        body = self._body(step, context)
        query = self._render(step.query, context)
        query = {
            k: v if isinstance(v, str) else self._json(step.query, v) for k, v in query.items()
        }
        headers = self._headers(step, context)
        return Request(step.method, url, query, headers, body)

    def _check_url(self, step: StepPlan, url: str) -> None:
        # Only good URLs are remembered: a problem's text is redacted with the secrets known now.
        if url in self.good_urls:
            return
        problem = url_problem(url)
        if problem:
            raise self._located(step.flow, problem)
        if len(self.good_urls) < URL_CACHE_SIZE:
            self.good_urls.add(url)

    def _body(self, step: StepPlan, context: Mapping[str, Any]) -> bytes | None:
        payload = self._render(step.payload, context)
        try:
            body = json_body(payload)
        except TemplateError as exc:
            raise self._located(step.payload, str(exc)) from None
        if len(body) > MAX_PAYLOAD_BYTES:
            message = f"rendered payload is {len(body)} bytes; the limit is 1 MiB"
            raise self._located(step.payload, message)
        return body if step.method == "POST" else None

    def _headers(self, step: StepPlan, context: Mapping[str, Any]) -> dict[str, str]:
        headers = {k: str(v) for k, v in self._render(step.headers, context).items()}
        for name, value in headers.items():  # a rendered name or value HTTP cannot carry
            problem = header_problem(name, value)
            if problem:
                raise self._located(step.headers, problem, (name,))
        return headers

    def _json(self, field: Field, value: Any) -> str:
        try:
            return as_json(value)
        except TemplateError as exc:
            raise self._located(field, str(exc)) from None

    async def _send(
        self,
        step: StepPlan,
        request: Request,
        tries: _Tries,
        announce: Callable[[], Awaitable[None]],
    ) -> tuple[Response, Pacer]:
        """One try, and the pacer of its flow; the first try is put on record (``announce``)
        just before it leaves."""
        auth = self.auths[step.org.name]
        if self.stop.requested:
            raise _Stopped
        await ready(auth)  # a token fetch, and its waits, come before the step's deadline
        sending = outgoing(
            self.client, request.method, request.url, request.query, request.headers, request.body
        )
        pacer = self._pacer(step, request.url)
        await pacer.turn()
        if self.stop.requested:  # stopped while it waited its turn: it has not left
            raise _Stopped
        if not tries.announced:
            await announce()
            if self.stop.requested:  # stopped while it was put on record: it has not left
                raise _Stopped
        tries.attempts += 1  # counted as it leaves: a try stopped before that was never made
        tries.in_flight = True
        bounds = Bounds(step.timeout, step.max_response_bytes, "the step's `timeout`")
        return await invoke(self.client, sending, bounds, auth), pacer

    def _mask_secret_outputs(
        self, step: StepPlan, context: Mapping[str, Any], response: Response
    ) -> None:
        """A secret output is masked as soon as its answer arrives: a check that fails on that
        answer (expect.status, expect.that, an earlier output) prints it, and it must not show."""
        secret = [output for output in step.outputs if output.secret]
        if not secret:
            return
        with_response = response_context(context, response.as_context())
        for output in secret:
            try:
                REDACTOR.add_value(output.value.value.render(with_response))
            except (TemplateError, TooDeep):  # the checks that follow say what is wrong
                continue

    def _raise_for_status(self, step: StepPlan, response: Response, pacer: Pacer) -> None:
        max_wait = step.retry.max_wait
        failure = status_failure(response, step.expect_status, max_wait, self.clock.time())
        if failure is None:
            return
        wait = failure.requested_wait
        if failure.failure_class is FailureClass.THROTTLED and wait and wait <= max_wait:
            pacer.hold(wait)  # every worker on this flow waits for the reset, not only this one
        raise failure

    def _pacer(self, step: StepPlan, url: str) -> Pacer:
        if url not in self.pacers:
            self.pacers[url] = Pacer(step.per_second, self.clock)
        return self.pacers[url]

    def _check(self, step: StepPlan, context: dict[str, Any], response: Response) -> dict[str, Any]:
        with_response = response_context(context, response.as_context())
        for that in step.expect_that:
            if not truthy(self._render(that, with_response)):
                raise Failure(None, f"expectation failed: {that.written}", response)
        outputs: dict[str, Any] = {}
        for output in step.outputs:
            value = outputs[output.name] = self._render(output.value, with_response)
            if output.secret:
                try:
                    REDACTOR.add_value(value)  # every leaf and rendering, before anything prints
                except TooDeep as exc:  # unmaskable: the step fails before the value is used
                    raise self._located(output.value, str(exc)) from None
        return outputs


class _Tally:
    """What a foreach keeps of its items: counts and the first failures — and every result
    only when a later template reads them (``keep_all``), so memory does not grow with items."""

    def __init__(self, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.done = self.failed = self.unknown = self.attempts = 0
        self.failures: list[ItemResult] = []
        self.kept: list[ItemResult] = []

    def add(self, result: ItemResult) -> None:
        self.done += 1
        self.attempts += result.attempts
        if result.status.failed:
            self.failed += 1
            self.unknown += result.status is Status.UNKNOWN
            if len(self.failures) < FAILURES_KEPT:
                self.failures.append(result)
        if self.keep_all:
            self.kept.append(result)

    def result(self, step: StepPlan, errors: list[str], left_out: int) -> StepResult:
        if self.failed:
            errors = [*errors, f"{self.failed} of {self.done} items failed"]
        if self.unknown:
            errors[-1] += f" ({self.unknown} of them may have run the flow: not re-sent)"
        return StepResult(
            step.id,
            Status.FAILED if errors else Status.SUCCEEDED,
            self.attempts,
            results=tuple(sorted(self.kept, key=_by_index)),
            error="; ".join(errors) or None,
            items=self.done,
            failures=tuple(sorted(self.failures, key=_by_index)),
            left_out=left_out,
            failed_items=self.failed,
            unknown=tuple(
                f"{step.id}[{r.name}]" for r in self.failures if r.status is Status.UNKNOWN
            ),
            unknown_count=self.unknown,
        )


def _by_index(result: ItemResult) -> int:
    return result.index or 0


def results_read_by(plan: Plan) -> frozenset[str]:
    """The foreach steps whose per-item results some template reads (context.results_read)."""
    foreach_ids = frozenset(step.id for step in plan.steps if step.foreach is not None)
    if not foreach_ids:
        return foreach_ids
    texts = (text for field in fields_of(plan.steps) for _, text in template_strings(field.written))
    return results_read(texts, frozenset(step.id for step in plan.steps), foreach_ids)


def _not_resent_note(step: StepPlan, exc: Exception) -> str:
    if not isinstance(exc, Failure) or exc.failure_class not in AMBIGUOUS:
        return ""
    if exc.failure_class in step.retry.on:
        return ""
    return " (not re-sent: the flow may have run; `idempotent: true` allows retries)"


async def _gather_workers(worker: Callable[[], Coroutine[Any, Any, None]], count: int) -> None:
    """Run ``count`` workers; a run-ending error (auth refused) surfaces as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(worker())
    except* OwfError as errors:
        # Python raises a lone exception from except* as itself, not as a group.
        raise errors.exceptions[0] from None


def _uncancel() -> None:
    """The stop's own cancel (its grace period is over) is handled here: the task goes on,
    to tell what became of what it was doing."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


def _exhausted(items: Iterator[tuple[int, Any]]) -> bool:
    """Had every item been taken? (Reading one more sends nothing.)"""
    try:
        return next(items, None) is None
    except SourceError:  # a bad row was next: it had not been taken
        return False
