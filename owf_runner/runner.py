"""Executes the steps of a loaded job, in order, over one shared client."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx2

from owf_runner import emulation
from owf_runner.checks import url_problem
from owf_runner.credentials import Resolved, build_auths, resolve_credentials
from owf_runner.emulator import Emulator
from owf_runner.errors import OwfError
from owf_runner.http import (
    HttpResponse,
    build_client,
    classify_exception,
    classify_status,
    to_record,
)
from owf_runner.loader import LoadedJob, load_job
from owf_runner.model import (
    IDEMPOTENT_RETRY_ON,
    CsvSource,
    JsonlSource,
    JsonSource,
    Retry,
    Step,
    rate_per_second,
)
from owf_runner.redaction import REDACTOR
from owf_runner.retry import Failure, Pacer, RetryHook, requested_wait, retrying
from owf_runner.sources import SourceError, file_items, source_key, source_path
from owf_runner.templating import TemplateError, render_value, truthy
from owf_runner.yamlfile import KeyPath, format_key_path

MAX_PAYLOAD_BYTES = 1024 * 1024
SUCCEEDED, FAILED, SKIPPED, NOT_RUN = "succeeded", "failed", "skipped", "not run"


@dataclass(frozen=True)
class ItemResult:
    index: int | None
    item: Any
    status: str
    attempts: int
    outputs: Mapping[str, Any] = field(default_factory=dict)
    response: HttpResponse | None = None
    error: str | None = None

    def as_context(self) -> dict[str, Any]:
        response = self.response.as_context() if self.response else None
        return {
            "item": self.item,
            "index": self.index,
            "status": self.status,
            "outputs": dict(self.outputs),
            "response": response,
        }


@dataclass(frozen=True)
class StepResult:
    id: str
    status: str
    attempts: int = 0
    seconds: float = 0.0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    response: HttpResponse | None = None
    results: tuple[ItemResult, ...] = ()
    error: str | None = None

    def as_context(self) -> dict[str, Any]:
        response = self.response.as_context() if self.response else None
        return {
            "status": self.status,
            "outputs": dict(self.outputs),
            "response": response,
            "results": [item.as_context() for item in self.results],
        }


@dataclass(frozen=True)
class RunResult:
    run_id: str
    job_name: str
    started_at: str
    steps: tuple[StepResult, ...]
    exit_code: int


class Reporter(Protocol):
    def step_started(self, step: Step) -> None: ...
    def item_finished(self, step: Step, result: ItemResult) -> None: ...
    def retrying(self, step: Step, failure: Failure, attempt: int, wait: float) -> None: ...
    def step_finished(self, step: Step, result: StepResult) -> None: ...


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    query: Mapping[str, Any]
    headers: Mapping[str, str]
    payload: Any


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class Runner:
    def __init__(
        self,
        loaded: LoadedJob,
        client: httpx2.AsyncClient,
        auths: Mapping[str, httpx2.Auth],
        reporter: Reporter,
    ) -> None:
        self.loaded = loaded
        self.client = client
        self.auths = auths  # by org name
        self.reporter = reporter
        self.run_id = new_run_id()
        self.started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.states: dict[str, dict[str, Any]] = {}
        self.pacers: dict[str, Pacer] = {}
        self.step_index = {step.id: index for index, step in enumerate(loaded.job.steps)}

    async def run(self) -> RunResult:
        results: list[StepResult] = []
        stopped = False
        for step in self.loaded.job.steps:
            result = StepResult(step.id, NOT_RUN) if stopped else await self.run_step(step)
            results.append(result)
            self.states[step.id] = result.as_context()
            stopped = stopped or (result.status == FAILED and not step.continue_on_error)
        exit_code = 1 if stopped else 0
        return RunResult(self.run_id, self.loaded.name, self.started_at, tuple(results), exit_code)

    def context(self, **extra: Any) -> dict[str, Any]:
        return {
            "vars": self.loaded.vars,
            "env": dict(os.environ),
            "steps": self.states,
            "run": {"id": self.run_id, "started_at": self.started_at},
            "job": {"name": self.loaded.name},
            **extra,
        }

    async def run_step(self, step: Step) -> StepResult:
        self.reporter.step_started(step)
        started = time.monotonic()
        try:
            result = await self._run_step(step)
        except TemplateError as exc:
            result = StepResult(step.id, FAILED, error=str(exc))
        result = dataclasses.replace(result, seconds=time.monotonic() - started)
        self.reporter.step_finished(step, result)
        return result

    async def _run_step(self, step: Step) -> StepResult:
        if step.when is not None and not truthy(self._render(step, ("when",), step.when)):
            return StepResult(step.id, SKIPPED)
        if step.foreach is not None:
            return await self._foreach(step)
        item = await self._invoke(step, self.context())
        return StepResult(
            step.id,
            item.status,
            item.attempts,
            outputs=item.outputs,
            response=item.response,
            error=item.error,
        )

    def _render(
        self, step: Step, key: KeyPath, value: Any, context: Mapping[str, Any] | None = None
    ) -> Any:
        """Render one field of ``step``; a failure names the file, line and key path."""
        try:
            return render_value(value, context if context is not None else self.context())
        except TemplateError as exc:
            raise self._located(step, (*key, *exc.path), str(exc)) from None

    def _located(self, step: Step, key: KeyPath, message: str) -> TemplateError:
        at = ("steps", self.step_index[step.id], *key)
        return TemplateError(f"{self.loaded.where(at)}: {format_key_path(at)}: {message}")

    # -- foreach ---------------------------------------------------------------

    async def _foreach(self, step: Step) -> StepResult:
        items = self._items(step)
        results: list[ItemResult] = []
        source_errors: list[str] = []
        halt = asyncio.Event()

        async def worker() -> None:
            while not halt.is_set():
                try:
                    index, item = next(items)
                except StopIteration:
                    return
                except SourceError as exc:
                    source_errors.append(str(exc))
                    halt.set()
                    return
                result = await self._invoke(step, self.context(item=item, index=index), index, item)
                results.append(result)
                self.reporter.item_finished(step, result)
                if result.status == FAILED and step.fail_fast:
                    halt.set()

        await _gather_workers(worker, step.concurrency)
        return _foreach_result(step, sorted(results, key=lambda r: r.index or 0), source_errors)

    def _items(self, step: Step) -> Iterator[tuple[int, Any]]:
        source = step.foreach
        if isinstance(source, CsvSource | JsonlSource | JsonSource):
            path = self._render(step, ("foreach", source_key(source)), source_path(source))
            return enumerate(file_items(source, self.loaded.path.parent / str(path)))
        items = self._render(step, ("foreach",), source)
        if not isinstance(items, list):
            raise TemplateError(f"foreach: expected a list, found {type(items).__name__}")
        return enumerate(items)

    # -- one invocation --------------------------------------------------------

    async def _invoke(
        self, step: Step, context: dict[str, Any], index: int | None = None, item: Any = None
    ) -> ItemResult:
        attempts = 0
        try:
            request = self._build_request(step, context)
            hook = self._retry_hook(step)
            async for attempt in retrying(_policy(step), step.idempotent, hook):
                with attempt:
                    attempts += 1
                    response = await self._send(step, request)
            outputs = self._check(step, context, response)
        except (Failure, TemplateError) as exc:
            failed = exc.response if isinstance(exc, Failure) else None
            error = str(exc) + _not_resent_note(step, exc)
            return ItemResult(index, item, FAILED, attempts, response=failed, error=error)
        return ItemResult(index, item, SUCCEEDED, attempts, outputs, response)

    def _retry_hook(self, step: Step) -> RetryHook:
        def hook(failure: Failure, attempt: int, wait: float) -> None:
            self.reporter.retrying(step, failure, attempt, wait)

        return hook

    def _build_request(self, step: Step, context: Mapping[str, Any]) -> RenderedRequest:
        url = str(self._render(step, ("flow",), step.flow, context))
        problem = url_problem(url)
        if problem:
            raise self._located(step, ("flow",), problem)
        payload = self._render(step, ("payload",), step.payload, context)
        size = len(json.dumps(payload).encode())
        if size > MAX_PAYLOAD_BYTES:
            message = f"rendered payload is {size} bytes; the limit is 1 MiB"
            raise self._located(step, ("payload",), message)
        query = self._render(step, ("query",), step.query, context)
        headers = {
            k: str(v) for k, v in self._render(step, ("headers",), step.headers, context).items()
        }
        return RenderedRequest(step.method, url, query, headers, payload)

    async def _send(self, step: Step, request: RenderedRequest) -> HttpResponse:
        pacer = self._pacer(step, request.url)
        await pacer.turn()
        try:
            response = await self.client.request(
                request.method,
                request.url,
                params=_query(request.query),
                headers=dict(request.headers),
                json=request.payload if request.method == "POST" else None,
                auth=self.auths[step.org or ""],
                timeout=step.timeout,
            )
        except httpx2.TransportError as exc:
            failure_class = classify_exception(exc)
            raise Failure(failure_class, f"{failure_class}: {type(exc).__name__}: {exc}") from None
        record = to_record(response)
        _raise_for_status(step, record, pacer)
        return record

    def _pacer(self, step: Step, url: str) -> Pacer:
        if url not in self.pacers:
            self.pacers[url] = Pacer(rate_per_second(step.rate_limit or "10/s"))
        return self.pacers[url]

    def _check(self, step: Step, context: dict[str, Any], response: HttpResponse) -> dict[str, Any]:
        with_response = {**context, "response": response.as_context()}
        for index, expression in enumerate(step.expect.that):
            if not truthy(self._render(step, ("expect", "that", index), expression, with_response)):
                raise Failure(None, f"expectation failed: {expression}", response)
        return self._outputs(step, with_response)

    def _outputs(self, step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, spec in step.outputs.items():
            if isinstance(spec, str):
                outputs[name] = self._render(step, ("outputs", name), spec, context)
                continue
            value = self._render(step, ("outputs", name, "value"), spec.value, context)
            if spec.secret:
                REDACTOR.add(value if isinstance(value, str) else json.dumps(value))
            outputs[name] = value
        return outputs


def _foreach_result(step: Step, results: list[ItemResult], source_errors: list[str]) -> StepResult:
    failed = sum(r.status == FAILED for r in results)
    errors = (
        [*source_errors, f"{failed} of {len(results)} items failed"] if failed else source_errors
    )
    status = FAILED if errors else SUCCEEDED
    attempts = sum(r.attempts for r in results)
    return StepResult(
        step.id, status, attempts, results=tuple(results), error="; ".join(errors) or None
    )


def _not_resent_note(step: Step, exc: Exception) -> str:
    ambiguous = isinstance(exc, Failure) and exc.failure_class in IDEMPOTENT_RETRY_ON
    if not ambiguous or step.idempotent:
        return ""
    return " (not re-sent: the flow may have run; `idempotent: true` allows retries)"


def _query(query: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}


def _raise_for_status(step: Step, response: HttpResponse, pacer: Pacer) -> None:
    failure = _status_failure(step, response)
    if failure is None:
        return
    wait = failure.requested_wait
    if failure.failure_class == "throttled" and wait and wait <= _max_wait(step):
        pacer.hold(wait)  # every worker on this flow waits for the reset, not only this one
    raise failure


def _status_failure(step: Step, response: HttpResponse) -> Failure | None:
    status, expected = response.status, step.expect.status
    if expected is not None and status in expected:
        return None
    if 300 <= status < 400:
        location = response.headers.get("location", "(none)")
        message = f"HTTP {status} redirect to {location}; redirects are not followed"
        return Failure(None, message, response)
    failure_class = classify_status(status)
    if failure_class is None and expected is None and 200 <= status < 300:
        return None
    wait = requested_wait(response.headers) if failure_class else None
    wanted = ", ".join(map(str, expected)) if expected else "2xx"
    message = f"HTTP {status} (expected {wanted}){_excerpt(response)}"
    if wait is not None and wait > _max_wait(step):
        message += (
            f"; the server asked to wait {wait:.0f}s, over retry.max_wait ({_max_wait(step):g}s)"
        )
    return Failure(failure_class, message, response, wait)


def _max_wait(step: Step) -> float:
    return _policy(step).max_wait


def _policy(step: Step) -> Retry:
    return step.retry or Retry()  # the loader always sets it; this keeps mypy honest


def _excerpt(response: HttpResponse) -> str:
    if response.body is None:
        return ""
    text = response.body if isinstance(response.body, str) else json.dumps(response.body)
    return ": " + (text if len(text) <= 300 else text[:300] + "…")


async def _gather_workers(worker: Any, count: int) -> None:
    """Run ``count`` workers; a run-ending error (auth refused) surfaces as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(worker())
    except* OwfError as errors:
        # Python raises a lone exception from except* as itself, not as a group.
        raise errors.exceptions[0] from None


# -- the whole run -----------------------------------------------------------------


def run_job(
    path: Path,
    reporter: Reporter,
    variables: Mapping[str, Any] | None = None,
    *,
    emulator: Emulator | None = None,
    emulator_url: str | None = None,
    stubs: Path | None = None,
) -> RunResult:
    """Load, check and run a job.

    ``emulator``: an in-process emulator, prepared for this job (stand-in keys for
    missing secrets). ``emulator_url``: one already serving elsewhere (``owf-run
    emulate``); every secret must then resolve, as in a real run.
    """
    loaded = load_job(path, variables)
    if emulator is None:
        resolved = resolve_credentials(loaded)
        return asyncio.run(_execute(loaded, resolved, reporter, emulator_url))
    resolved = resolve_credentials(loaded, fallback=emulation.stand_in)
    emulation.prepare(emulator, loaded, resolved, stubs or emulation.default_stubs_path(path))
    with emulation.serving(emulator) as base_url:
        return asyncio.run(_execute(loaded, resolved, reporter, base_url))


async def _execute(
    loaded: LoadedJob, resolved: dict[str, Resolved], reporter: Reporter, emulator_url: str | None
) -> RunResult:
    base = loaded.path.parent
    bundles = [base / org.ca_bundle for org in loaded.job.orgs.values() if org.ca_bundle]
    async with build_client(emulator_url, bundles) as client:
        auths = build_auths(loaded, resolved, client)
        return await Runner(loaded, client, auths, reporter).run()
