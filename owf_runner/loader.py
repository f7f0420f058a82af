"""Job file → validated :class:`LoadedJob`.

Every problem becomes ``FILE:LINE:COL: key.path: message``; all of them are
reported at once, and a job with any problem sends nothing.
"""

from __future__ import annotations

import difflib
import ipaddress
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from owf_runner.errors import JobError
from owf_runner.model import Job, Record, Step, job_schema
from owf_runner.templating import (
    ENV,
    Reference,
    TemplateError,
    check_syntax,
    locally_bound,
    references,
)
from owf_runner.templating import is_template as is_template_text
from owf_runner.templating import template_strings as strings_in
from owf_runner.yamlfile import KeyPath, YamlDocument, format_key_path, load_yaml

RecordT = TypeVar("RecordT", bound=Record)

# Names every template may use, and the extra ones only some fields see.
COMMON_NAMES = {"vars", "env", "steps", "run", "job"}
FOREACH_NAMES = {"item", "index"}
RESPONSE_NAMES = {"response"}


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
    job = _validate(document)
    merged = _merge_defaults(job)
    variables = {**job.vars, **(var_overrides or {})}
    loaded = LoadedJob(path=path, job=merged, document=document, vars=variables)
    problems = list(static_problems(loaded))
    if problems:
        raise JobError(problems)
    return loaded


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


def _validate(document: YamlDocument) -> Job:
    try:
        return Job.model_validate(document.data)
    except ValidationError as exc:
        raise JobError(list(_messages(exc, document))) from None


def _messages(exc: ValidationError, document: YamlDocument) -> Iterator[str]:
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], document.data)
        message = _describe(error, path, document.data)
        line = f"{document.where(path)}: {format_key_path(path) or '(top level)'}: {message}"
        if line not in seen:
            seen.add(line)
            yield line


def _data_path(loc: tuple[str | int, ...], data: Any) -> KeyPath:
    """Pydantic's loc minus the union tags it inserts (``env``, ``private_key_jwt``...).

    A tag can also be a key of the data (``{env: X, typo: 1}``), so both readings
    are tried; the one that places the loc's last part wins.
    """
    return max(_readings(loc, data, ()), key=lambda reading: (reading[1], len(reading[0])))[0]


def _readings(
    loc: tuple[str | int, ...], data: Any, path: KeyPath
) -> Iterator[tuple[KeyPath, bool]]:
    """(path, whether the last loc part was placed) for each way of reading ``loc``."""
    if not loc:
        yield path, False
        return
    part, rest = loc[0], loc[1:]
    if not rest:
        placed = _indexes(data, part) or isinstance(data, dict)  # a missing or extra key
        yield ((*path, part), True) if placed else (path, False)
        return
    if _indexes(data, part):
        yield from _readings(rest, data[part], (*path, part))
    yield from _readings(rest, data, path)


def _indexes(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _describe(error: ErrorDetails, path: KeyPath, data: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(path, data)
    if kind == "missing":
        return "required key is missing"
    found = _type_name(error.get("input"))
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, found {found}"
    return str(error["msg"]).removeprefix("Value error, ")


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names |= {dict: "a mapping", list: "a list", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _unknown_key(path: KeyPath, data: Any) -> str:
    key = str(path[-1])
    allowed = _allowed_keys(job_schema(), path[:-1], data)
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint}"


def _allowed_keys(schema: dict[str, Any], path: KeyPath, data: Any) -> set[str]:
    """The property names the JSON Schema allows at ``path``."""
    defs = schema.get("$defs", {})
    candidates = [schema]
    for part in path:
        candidates = [child for node in candidates for child in _children(node, part, defs)]
    return {name for node in candidates for name in _properties(node, defs)}


def _expand(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in node:
        return _expand(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return [leaf for branch in branches for leaf in _expand(branch, defs)]
    return [node]


def _children(node: dict[str, Any], part: str | int, defs: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for leaf in _expand(node, defs):
        if isinstance(part, int) and isinstance(leaf.get("items"), dict):
            found.append(leaf["items"])
        elif part in leaf.get("properties", {}):
            found.append(leaf["properties"][part])
        elif isinstance(leaf.get("additionalProperties"), dict):
            found.append(leaf["additionalProperties"])
    return found


def _properties(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    return {name for leaf in _expand(node, defs) for name in leaf.get("properties", {})}


# -- defaults ---------------------------------------------------------------------


def _merge_defaults(job: Job) -> Job:
    steps = [_with_defaults(job, step) for step in job.steps]
    return job.model_copy(update={"steps": steps})


def _with_defaults(job: Job, step: Step) -> Step:
    defaults = job.defaults
    org_name = step.org or defaults.org or (next(iter(job.orgs)) if len(job.orgs) == 1 else None)
    org = job.orgs.get(org_name or "")
    retry = defaults.retry if step.retry is None else _overlay(defaults.retry, step.retry)
    return step.model_copy(
        update={
            "org": org_name,
            "timeout": step.timeout or defaults.timeout,
            "retry": retry,
            "rate_limit": step.rate_limit or (org and org.rate_limit) or defaults.rate_limit,
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


# -- static checks ----------------------------------------------------------------


def static_problems(loaded: LoadedJob) -> Iterator[str]:
    yield from _org_problems(loaded)
    yield from _step_problems(loaded)


def _org_problems(loaded: LoadedJob) -> Iterator[str]:
    job = loaded.job
    for name, org in job.orgs.items():
        at = ("orgs", name)
        if org.credential not in job.credentials:
            yield _problem(
                loaded, (*at, "credential"), _unknown(org.credential, job.credentials, "credential")
            )
        if not org.domain and not org.token_url:
            yield _problem(loaded, at, "needs `domain` (or `token_url`)")
        if org.domain and ("/" in org.domain or ":" in org.domain.split(":")[0]):
            yield _problem(
                loaded,
                (*at, "domain"),
                f"expected a host name like acme.okta.com, found {org.domain!r}",
            )
        if org.token_url:
            yield from _url_problems(loaded, (*at, "token_url"), org.token_url)


def _step_problems(loaded: LoadedJob) -> Iterator[str]:
    first_index: dict[str, int] = {}
    for index, step in enumerate(loaded.job.steps):
        at: KeyPath = ("steps", index)
        if step.id in first_index:
            first = first_index[step.id]
            yield _problem(
                loaded, (*at, "id"), f"duplicate step id {step.id!r} (see steps[{first}])"
            )
        yield from _step_org_problems(loaded, step, at)
        if not is_template_text(step.flow):
            yield from _url_problems(loaded, (*at, "flow"), step.flow)
        if step.method == "GET" and step.payload is not None:
            yield _problem(loaded, (*at, "payload"), "a GET sends no body; use `query` instead")
        scope = TemplateScope(loaded, step.id, earlier=frozenset(first_index))
        yield from _template_problems(scope, step, at)
        first_index.setdefault(step.id, index)


def _step_org_problems(loaded: LoadedJob, step: Step, at: KeyPath) -> Iterator[str]:
    orgs = loaded.job.orgs
    if step.org is None:
        yield _problem(
            loaded,
            at,
            "no `org`: set it on the step or in `defaults.org` (the job has several orgs)",
        )
    elif step.org not in orgs:
        key = (*at, "org") if "org" in _raw(loaded, at) else ("defaults", "org")
        yield _problem(loaded, key, _unknown(step.org, orgs, "org"))


def _raw(loaded: LoadedJob, key_path: KeyPath) -> Any:
    data = loaded.document.data
    for part in key_path:
        data = data[part]
    return data


def _unknown(name: str, known: Iterable[str], kind: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint}"


def _url_problems(loaded: LoadedJob, at: KeyPath, url: str) -> Iterator[str]:
    message = url_problem(url)
    if message:
        yield _problem(loaded, at, message)


def url_problem(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return "URLs with user info (user@host) are refused: credentials belong in `credentials`"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return None
    return f"expected an https URL, found {url!r}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _template_fields(step: Step) -> Iterator[tuple[str, Any, set[str]]]:
    """(field, value, names it may use beyond the common ones)."""
    extra = FOREACH_NAMES if step.foreach is not None else set()
    yield "flow", step.flow, extra
    yield "query", step.query, extra
    yield "headers", step.headers, extra
    yield "payload", step.payload, extra
    if isinstance(step.when, str):
        yield "when", step.when, set()
    if isinstance(step.foreach, str):
        yield "foreach", step.foreach, set()
    yield "expect", {"that": list(step.expect.that)}, extra | RESPONSE_NAMES
    outputs = {k: v if isinstance(v, str) else {"value": v.value} for k, v in step.outputs.items()}
    yield "outputs", outputs, extra | RESPONSE_NAMES


@dataclass(frozen=True)
class TemplateScope:
    """What the templates of one step may refer to."""

    loaded: LoadedJob
    step_id: str
    earlier: frozenset[str]


def _template_problems(scope: TemplateScope, step: Step, at: KeyPath) -> Iterator[str]:
    for field, value, extra in _template_fields(step):
        for sub, text in strings_in(value):
            message = _template_message(scope, text, COMMON_NAMES | extra)
            if message:
                yield _problem(scope.loaded, (*at, field, *sub), message)


def _template_message(scope: TemplateScope, text: str, allowed: set[str]) -> str | None:
    try:
        check_syntax(text)
        refs = references(text)
    except TemplateError as exc:
        return str(exc)
    bound = locally_bound(text)
    problems = (_reference_problem(scope, ref, allowed) for ref in refs if ref.root not in bound)
    return next((problem for problem in problems if problem), None)


def _reference_problem(scope: TemplateScope, ref: Reference, allowed: set[str]) -> str | None:
    if ref.root not in allowed and ref.root not in ENV.globals:  # range(), dict(), now() ...
        return f"unknown name {ref.root!r} in template (available: {', '.join(sorted(allowed))})"
    if ref.root == "steps" and ref.name is not None and ref.name not in scope.earlier:
        return _step_reference_problem(scope, ref.name)
    variables = scope.loaded.vars
    if (
        ref.root == "vars"
        and ref.name is not None
        and not ref.guarded
        and ref.name not in variables
    ):
        return _unknown(ref.name, variables, "variable") + " (define it under `vars` or pass --var)"
    return None


def _step_reference_problem(scope: TemplateScope, name: str) -> str:
    if name == scope.step_id:
        return f"steps.{name} is this step; templates can only use earlier steps"
    later = {step.id for step in scope.loaded.job.steps}
    what = "a later step" if name in later else "no step"
    return f"steps.{name} names {what}; templates can only use earlier steps"


def _problem(loaded: LoadedJob, key_path: KeyPath, message: str) -> str:
    return f"{loaded.where(key_path)}: {format_key_path(key_path)}: {message}"
