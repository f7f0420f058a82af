"""Job file → validated :class:`LoadedJob`.

Every problem becomes ``FILE:LINE:COL: key.path: message``; all of them are
reported at once, and a job with any problem sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from owf_runner.checks import JobParts, static_problems
from owf_runner.errors import JobError
from owf_runner.model import Defaults, Job, Org, Record, Step
from owf_runner.problems import in_file_order, validation_problems
from owf_runner.yamlfile import KeyPath, YamlDocument, load_yaml

RecordT = TypeVar("RecordT", bound=Record)


@dataclass(frozen=True)
class LoadedJob:
    path: Path
    job: Job  # defaults already merged into every step
    document: YamlDocument
    vars: Mapping[str, Any]  # job vars with --vars-file and --var applied

    @property
    def name(self) -> str:
        return self.job.name or self.path.stem

    def where(self, key_path: KeyPath) -> str:
        return self.document.where(key_path)


def load_job(path: Path, var_overrides: Mapping[str, Any] | None = None) -> LoadedJob:
    document = load_yaml(path)
    version_problem = _check_version(document)
    if version_problem:
        raise JobError([version_problem])
    try:
        job = Job.model_validate(document.data)
    except ValidationError as exc:
        parts = _parts_of_invalid(document, var_overrides)
        raise JobError(
            in_file_order([*validation_problems(exc, document), *static_problems(parts)])
        ) from None
    merged = _merge_defaults(job)
    variables = {**job.vars, **(var_overrides or {})}
    problems = list(static_problems(_parts_of(merged, document, variables)))
    if problems:
        raise JobError(in_file_order(problems))
    return LoadedJob(path=path, job=merged, document=document, vars=variables)


def _check_version(document: YamlDocument) -> str | None:
    data = document.data
    if not isinstance(data, dict):
        return f"{document.where(())}: (top level): expected a mapping of job keys"
    if "version" not in data:
        return f"{document.where(())}: version: required (this runner reads `version: 1`)"
    if data["version"] != 1 or isinstance(data["version"], bool):
        return (
            f"{document.where(('version',))}: version: unsupported version "
            f"{data['version']!r}; this runner reads version 1"
        )
    return None


# -- defaults ---------------------------------------------------------------------


def _merge_defaults(job: Job) -> Job:
    steps = [_with_defaults(job.defaults, job.orgs, step) for step in job.steps]
    return job.model_copy(update={"steps": steps})


def _with_defaults(defaults: Defaults, orgs: Mapping[str, Any], step: Step) -> Step:
    only_org = next(iter(orgs)) if len(orgs) == 1 else None
    org_name = step.org or defaults.org or only_org
    org = orgs.get(org_name or "")
    org_rate = org.rate_limit if isinstance(org, Org) else None
    retry = defaults.retry if step.retry is None else _overlay(defaults.retry, step.retry)
    return step.model_copy(
        update={
            "org": org_name,
            "timeout": step.timeout or defaults.timeout,
            "retry": retry,
            "rate_limit": step.rate_limit or org_rate or defaults.rate_limit,
        }
    )


def _overlay(base: RecordT, top: RecordT) -> RecordT:
    """``base`` with the keys ``top`` set explicitly, merged recursively."""
    update: dict[str, Any] = {}
    for name in top.model_fields_set:
        mine, theirs = getattr(top, name), getattr(base, name)
        both_records = isinstance(mine, Record) and isinstance(theirs, Record)
        update[name] = _overlay(theirs, mine) if both_records else mine
    return base.model_copy(update=update)


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
    )


def _parts_of_invalid(document: YamlDocument, overrides: Mapping[str, Any] | None) -> JobParts:
    """The parts of an invalid job that validate on their own, for the static checks."""
    data = document.data
    raw_orgs, raw_credentials = _mapping(data.get("orgs")), _mapping(data.get("credentials"))
    orgs = _valid(raw_orgs, Org.model_validate)
    defaults = next(
        iter(_valid({"d": data.get("defaults", {})}, Defaults.model_validate).values()), Defaults()
    )
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    steps = _valid(dict(enumerate(raw_steps)), Step.model_validate)
    return JobParts(
        document=document,
        vars={**_mapping(data.get("vars")), **(overrides or {})},
        orgs=orgs,
        steps=tuple((i, _with_defaults(defaults, raw_orgs, s)) for i, s in steps.items()),
        step_ids=tuple(str(s.get("id")) if isinstance(s, dict) else "" for s in raw_steps),
        org_names=frozenset(raw_orgs),
        credential_names=frozenset(raw_credentials),
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
