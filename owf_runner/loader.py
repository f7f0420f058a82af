"""Job file → checked :class:`LoadedJob`: the file as written, positions, vars.

Every problem is a record; all of them are reported at once, in file order,
and a job with any problem sends nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from owf_runner.checks import JobParts, static_problems
from owf_runner.errors import JobError
from owf_runner.model import Defaults, Job, Org, Step, implicit_org, job_schema
from owf_runner.problems import Problem, in_file_order
from owf_runner.templating import Templates
from owf_runner.validation import validation_problems
from owf_runner.yamlfile import YamlDocument, load_yaml


@dataclass(frozen=True)
class LoadedJob:
    document: YamlDocument
    job: Job  # as written: defaults are applied when the plan is resolved
    vars: Mapping[str, Any]  # job vars with --vars-file and --var applied
    templates: Templates = field(default_factory=Templates)  # parsed by the checks, once

    @property
    def path(self) -> Path:
        return self.document.path

    @property
    def name(self) -> str:
        return self.job.name or self.path.stem


def load_job(path: Path, var_overrides: Mapping[str, Any] | None = None) -> LoadedJob:
    with gc_paused():
        return _load_job(path, var_overrides)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off while a job is read and resolved.

    Loading makes many objects and almost no garbage; the collector's repeated full
    passes over all of them took 60 % of loading a 5,000-step job. Any cycle made
    meanwhile is collected once it is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_job(path: Path, var_overrides: Mapping[str, Any] | None) -> LoadedJob:
    document = load_yaml(path)
    version_problem = _check_version(document)
    if version_problem:
        raise JobError([version_problem])
    try:
        job = Job.model_validate(document.data)
    except ValidationError as exc:
        found = validation_problems(exc, document, _schema())
        invalid = _parts_of_invalid(document, var_overrides)
        raise JobError(in_file_order([*found, *static_problems(invalid)])) from None
    variables = {**job.vars, **(var_overrides or {})}
    parts = _parts_of(job, document, variables)
    problems = in_file_order(static_problems(parts))
    if problems:
        raise JobError(problems)
    return LoadedJob(document=document, job=job, vars=variables, templates=parts.templates)


@cache
def _schema() -> dict[str, Any]:
    return job_schema()


def _check_version(document: YamlDocument) -> Problem | None:
    data = document.data
    if not isinstance(data, dict):
        return document.problem((), "expected a mapping of job keys")
    if "version" not in data:
        return document.problem(("version",), "required (this runner reads `version: 1`)")
    if data["version"] != 1 or isinstance(data["version"], bool):
        message = f"unsupported version {data['version']!r}; this runner reads version 1"
        return document.problem(("version",), message)
    return None


# -- parts for the static checks ------------------------------------------------------


def _parts_of(job: Job, document: YamlDocument, variables: Mapping[str, Any]) -> JobParts:
    return JobParts(
        document=document,
        vars=variables,
        orgs=job.orgs,
        steps=tuple(enumerate(job.steps)),
        step_ids=tuple(step.id for step in job.steps),
        org_names=frozenset(job.orgs),
        credential_names=frozenset(job.credentials),
        default_org=job.default_org,
    )


def _parts_of_invalid(document: YamlDocument, overrides: Mapping[str, Any] | None) -> JobParts:
    """The parts of an invalid job that validate on their own, for the static checks."""
    data = document.data
    raw_orgs, raw_credentials = _mapping(data.get("orgs")), _mapping(data.get("credentials"))
    defaults = _valid({"d": data.get("defaults", {})}, Defaults.model_validate).get("d")
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    return JobParts(
        document=document,
        vars={**_mapping(data.get("vars")), **(overrides or {})},
        orgs=_valid(raw_orgs, Org.model_validate),
        steps=tuple(_valid(dict(enumerate(raw_steps)), Step.model_validate).items()),
        step_ids=tuple(str(s.get("id")) if isinstance(s, dict) else "" for s in raw_steps),
        org_names=frozenset(raw_orgs),
        credential_names=frozenset(raw_credentials),
        default_org=implicit_org(defaults.org if defaults else None, list(raw_orgs)),
    )


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _valid(raw: Mapping[Any, Any], validate: Callable[[Any], Any]) -> dict[Any, Any]:
    valid: dict[Any, Any] = {}
    for key, value in raw.items():
        try:
            valid[key] = validate(value)
        except ValidationError:
            continue
    return valid
