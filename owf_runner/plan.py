"""resolve: a checked job → the immutable :class:`Plan` that ``plan`` renders and the runner runs.

Every default is applied here, once: a step's org, credential, retry policy,
rate, timeout, compiled templates and foreach source are all settled, and
nothing downstream fills a gap with ``or``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from owf_runner.failures import AMBIGUOUS, DEFAULT_RETRY_ON, FailureClass
from owf_runner.loader import LoadedJob, gc_paused
from owf_runner.model import (
    ClientTokenCredential,
    Credential,
    FileSourceRecord,
    Job,
    Org,
    PrivateKeyJwtCredential,
    Record,
    Retry,
    Step,
    rate_per_second,
)
from owf_runner.problems import KeyPath, Problem
from owf_runner.sources import SourceError, SourceKind, file_items
from owf_runner.templating import Compiled, Templates, compile_value
from owf_runner.yamlfile import YamlDocument

AuthKind = Literal["oauth2", "client_token", "none"]
RecordT = TypeVar("RecordT", bound=Record)


@dataclass(frozen=True)
class JobIdentity:
    """Which job this is (its resolved path), which version of it (its content hash), and
    with which variables (a hash of them, after --vars-file and --var)."""

    path: Path
    sha256: str
    vars_sha256: str


@dataclass(frozen=True)
class Field:
    """A compiled value and where it is in the job file, for messages."""

    at: KeyPath
    value: Compiled
    written: Any  # as in the job file, for messages such as "expectation failed: ..."


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff_initial: float
    backoff_max: float
    max_wait: float
    on: frozenset[FailureClass]


@dataclass(frozen=True)
class OrgPlan:
    name: str
    credential: str
    auth: AuthKind
    token_url: str
    ca_bundle: Path | None


@dataclass(frozen=True)
class ListSource:
    items: Field  # a list, or a template giving one

    @property
    def field(self) -> Field:
        return self.items

    def open(self, rendered: Any, base_dir: Path) -> Iterator[Any]:
        """The items, given the rendered ``field``; SourceError when it is not a list."""
        if not isinstance(rendered, list):
            raise SourceError(f"expected a list, found {type(rendered).__name__}")
        return iter(rendered)


@dataclass(frozen=True)
class FileSource:
    kind: SourceKind
    path: Field  # relative to the job file
    where: Field | None = None  # a per-item filter: items rendering it falsy are left out

    @property
    def field(self) -> Field:
        return self.path

    def open(self, rendered: Any, base_dir: Path) -> Iterator[Any]:
        """The items, streamed from the file the rendered ``field`` names (SourceError)."""
        return file_items(self.kind, base_dir / str(rendered))


@dataclass(frozen=True)
class OutputPlan:
    name: str
    value: Field
    secret: bool


@dataclass(frozen=True)
class StepPlan:
    index: int
    id: str
    org: OrgPlan
    method: Literal["POST", "GET"]
    flow: Field
    query: Field
    headers: Field
    payload: Field
    when: Field | None
    foreach: ListSource | FileSource | None
    label: Field | None  # names each foreach item; None: its index
    concurrency: int
    fail_fast: bool
    expect_status: frozenset[int] | None  # None: any 2xx
    expect_that: tuple[Field, ...]
    outputs: tuple[OutputPlan, ...]
    continue_on_error: bool
    idempotent: bool
    retry: RetryPolicy
    rate_limit: str  # as written, e.g. 10/s
    per_second: float
    timeout: float
    max_response_bytes: int


@dataclass(frozen=True)
class Plan:
    identity: JobIdentity
    name: str
    document: YamlDocument
    vars: Mapping[str, Any]
    orgs: Mapping[str, OrgPlan]
    credentials: Mapping[str, Credential]
    steps: tuple[StepPlan, ...]

    @property
    def base_dir(self) -> Path:
        return self.document.path.parent

    def problem(self, at: KeyPath, message: str) -> Problem:
        return self.document.problem(at, message)

    def ca_bundles(self) -> list[Path]:
        return [self.base_dir / org.ca_bundle for org in self.orgs.values() if org.ca_bundle]

    def used_credentials(self) -> list[str]:
        """Credentials some step uses: an unused org's key need not be at hand."""
        return sorted({step.org.credential for step in self.steps})


def fields_of(steps: tuple[StepPlan, ...]) -> Iterator[Field]:
    """Every Field of the steps: their own, and those of their sources and outputs."""
    for step in steps:
        for value in vars(step).values():
            for part in value if isinstance(value, tuple) else (value,):
                if isinstance(part, Field):
                    yield part
                elif dataclasses.is_dataclass(part):  # a source, an output: one level down
                    yield from (v for v in vars(part).values() if isinstance(v, Field))


def vars_digest(variables: Mapping[str, Any]) -> str:
    """The same variables, the same digest: a resume must run with what the run had."""
    text = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def resolve(loaded: LoadedJob) -> Plan:
    with gc_paused():
        return _resolve(loaded)


def _resolve(loaded: LoadedJob) -> Plan:
    job, document = loaded.job, loaded.document
    orgs = {name: _org(job, name, org) for name, org in job.orgs.items()}
    return Plan(
        identity=JobIdentity(document.path.resolve(), document.sha256, vars_digest(loaded.vars)),
        name=loaded.name,
        document=document,
        vars=loaded.vars,
        orgs=orgs,
        credentials=job.credentials,
        steps=tuple(
            _step(job, orgs, index, step, loaded.templates) for index, step in enumerate(job.steps)
        ),
    )


def _org(job: Job, name: str, org: Org) -> OrgPlan:
    credential = job.credentials[org.credential]
    return OrgPlan(
        name=name,
        credential=org.credential,
        auth=_auth_kind(credential),
        token_url=org.token_url or f"https://{org.domain}/oauth2/v1/token",
        ca_bundle=None if org.ca_bundle is None else Path(org.ca_bundle),
    )


def _auth_kind(credential: Credential) -> AuthKind:
    if isinstance(credential, PrivateKeyJwtCredential):
        return "oauth2"
    return "client_token" if isinstance(credential, ClientTokenCredential) else "none"


def _step(
    job: Job, orgs: Mapping[str, OrgPlan], index: int, step: Step, templates: Templates
) -> StepPlan:
    at: KeyPath = ("steps", index)
    _field = _Fields(at, templates)
    org_name = step.org or job.default_org or ""  # the checks made sure there is one
    rate = step.rate_limit or job.orgs[org_name].rate_limit or job.defaults.rate_limit
    retry = job.defaults.retry if step.retry is None else _overlay(job.defaults.retry, step.retry)
    return StepPlan(
        index=index,
        id=step.id,
        org=orgs[org_name],
        method=step.method,
        flow=_field(("flow",), step.flow),
        query=_field(("query",), step.query),
        headers=_field(("headers",), step.headers),
        payload=_field(("payload",), step.payload),
        when=None if step.when is None else _field(("when",), step.when),
        foreach=_foreach(_field, step.foreach),
        label=None if step.label is None else _field(("label",), step.label),
        concurrency=step.concurrency,
        fail_fast=step.fail_fast,
        expect_status=None if step.expect.status is None else frozenset(step.expect.status),
        expect_that=tuple(_field(("expect", "that", i), t) for i, t in enumerate(step.expect.that)),
        outputs=tuple(_outputs(_field, step)),
        continue_on_error=step.continue_on_error,
        idempotent=step.idempotent,
        retry=_policy(retry, step.idempotent),
        rate_limit=rate,
        per_second=rate_per_second(rate),
        timeout=step.timeout or job.defaults.timeout,
        max_response_bytes=step.max_response_bytes or job.defaults.max_response_bytes,
    )


@dataclass(frozen=True)
class _Fields:
    """Makes one step's fields, compiling with the job's templates (the checks parsed them)."""

    step_at: KeyPath
    templates: Templates

    def __call__(self, key: KeyPath, value: Any) -> Field:
        return Field((*self.step_at, *key), compile_value(value, self.templates), value)


def _foreach(field: _Fields, source: Any) -> ListSource | FileSource | None:
    if source is None:
        return None
    if isinstance(source, FileSourceRecord):
        return _file_source(field, source)
    return ListSource(field(("foreach",), source))


def _file_source(field: _Fields, source: FileSourceRecord) -> FileSource:
    where = None if source.where is None else field(("foreach", "where"), source.where)
    return FileSource(SourceKind(source.KEY), field(("foreach", source.KEY), source.path), where)


def _outputs(field: _Fields, step: Step) -> list[OutputPlan]:
    outputs = []
    for name, spec in step.outputs.items():
        if isinstance(spec, str):
            outputs.append(OutputPlan(name, field(("outputs", name), spec), secret=False))
        else:
            value = field(("outputs", name, "value"), spec.value)
            outputs.append(OutputPlan(name, value, spec.secret))
    return outputs


def _policy(retry: Retry, idempotent: bool) -> RetryPolicy:
    chosen = DEFAULT_RETRY_ON if retry.on is None else frozenset(retry.on)
    return RetryPolicy(
        attempts=retry.attempts,
        backoff_initial=retry.backoff.initial,
        backoff_max=retry.backoff.max,
        max_wait=retry.max_wait,
        on=chosen | AMBIGUOUS if idempotent else chosen,
    )


def _overlay(base: RecordT, top: RecordT) -> RecordT:
    """``base`` with the keys ``top`` set explicitly, merged recursively."""
    update: dict[str, Any] = {}
    for name in top.model_fields_set:
        mine, theirs = getattr(top, name), getattr(base, name)
        both_records = isinstance(mine, Record) and isinstance(theirs, Record)
        update[name] = _overlay(theirs, mine) if both_records else mine
    return base.model_copy(update=update)
