"""Static checks before anything is sent: references, URLs, templates.

They run over :class:`JobParts`, which the loader builds from a valid job or,
piecewise, from the parts of an invalid one that did validate — so one run of
``owf-run validate`` reports every problem in the file, not only the first kind.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from owf_runner.context import COMMON_NAMES, FOREACH_NAMES, RESPONSE_NAMES
from owf_runner.headers import header_problem
from owf_runner.model import FileSourceRecord, Org, Step
from owf_runner.problems import KeyPath, Problem
from owf_runner.redaction import escape_controls
from owf_runner.template_budget import MAX_INT_BITS, MAX_INT_DIGITS
from owf_runner.templating import (
    ENV,
    MAX_PAYLOAD_BYTES,
    Reference,
    TemplateError,
    Templates,
)
from owf_runner.templating import is_template as is_template_text
from owf_runner.templating import template_strings as strings_in
from owf_runner.urls import url_problem
from owf_runner.yamlfile import YamlDocument

CREDENTIAL_HEADERS = {"authorization", "x-api-client-token"}
_ONLY_IN = {
    "response": "in `outputs` and `expect.that`, once the flow has answered",
    "item": "in a step with `foreach` (not in its `when`, nor in the list or file it names)",
    "index": "in a step with `foreach` (not in its `when`, nor in the list or file it names)",
}


@dataclass(frozen=True)
class JobParts:
    document: YamlDocument
    vars: Mapping[str, Any]
    orgs: Mapping[str, Org]
    steps: tuple[tuple[int, Step], ...]  # (index in the file, step as written)
    step_ids: tuple[str, ...]  # every step's id as written, valid or not
    org_names: frozenset[str]  # as written, valid or not
    credential_names: frozenset[str]
    default_org: str | None  # for steps without `org`
    templates: Templates = field(default_factory=Templates)  # each parsed once, for the plan too

    def problem(self, key_path: KeyPath, message: str) -> Problem:
        return self.document.problem(key_path, message)

    @cached_property
    def first_index(self) -> Mapping[str, int]:
        """Where each step id is first written (one dict: not a set of earlier ids per step)."""
        found: dict[str, int] = {}
        for index, step_id in enumerate(self.step_ids):
            found.setdefault(step_id, index)
        return found


def static_problems(parts: JobParts) -> Iterator[Problem]:
    yield from _org_problems(parts)
    yield from _step_problems(parts)
    yield from _data_problems(parts, ("vars",), _own_vars(parts.document))


# -- orgs ----------------------------------------------------------------------------


def _org_problems(parts: JobParts) -> Iterator[Problem]:
    for name, org in parts.orgs.items():
        at = ("orgs", name)
        if org.credential not in parts.credential_names:
            message = unknown(org.credential, parts.credential_names, "credential")
            yield parts.problem((*at, "credential"), message)
        if not org.domain and not org.token_url:
            yield parts.problem(at, "needs `domain` (or `token_url`)")
        if org.domain and not _is_host_name(org.domain):
            message = f"expected a host name like acme.okta.com, found {org.domain!r}"
            yield parts.problem((*at, "domain"), message)
        if org.token_url:
            yield from _url_problems(parts, (*at, "token_url"), org.token_url)
        if org.ca_bundle:
            yield from _ca_bundle_problems(parts, (*at, "ca_bundle"), org.ca_bundle)


def _ca_bundle_problems(parts: JobParts, at: KeyPath, bundle: str) -> Iterator[Problem]:
    # Read here, bounded, rather than by OpenSSL: /dev/zero or a FIFO must not hang the check.
    from owf_runner.files import CA_BUNDLE, FileMissing, UnreadableFile, read_text

    path = parts.document.path.parent / bundle
    try:
        pem = read_text(path, CA_BUNDLE)
        ssl.create_default_context().load_verify_locations(cadata=pem)
    except FileMissing:
        yield parts.problem(at, f"no such file: {path}")
    except UnreadableFile as exc:
        yield parts.problem(at, str(exc))
    except (ValueError, ssl.SSLError) as exc:  # ValueError: empty, or not ASCII
        yield parts.problem(at, f"not a PEM file of CA certificates: {path} ({exc})")


def _is_host_name(domain: str) -> bool:
    """A bare host name: the token URL ``https://{domain}/oauth2/v1/token`` is made of it."""
    bare = bool(domain) and not any(c in domain for c in "/:@ ?#")
    return bare and url_problem(f"https://{domain}/") is None


# -- steps ---------------------------------------------------------------------------


def _step_problems(parts: JobParts) -> Iterator[Problem]:
    for index, raw_id in enumerate(parts.step_ids):
        first = parts.first_index[raw_id]
        if first < index:
            message = f"duplicate step id {raw_id!r} (see steps[{first}])"
            yield parts.problem(("steps", index, "id"), message)
    for index, step in parts.steps:
        yield from _one_step_problems(parts, index, step)


def _one_step_problems(parts: JobParts, index: int, step: Step) -> Iterator[Problem]:
    at: KeyPath = ("steps", index)
    yield from _step_org_problems(parts, step, at)
    if not is_template_text(step.flow):
        yield from _url_problems(parts, (*at, "flow"), step.flow)
    if step.method == "GET" and step.payload is not None:
        yield parts.problem((*at, "payload"), "a GET sends no body; use `query` instead")
    yield from _header_problems(parts, step, at)
    for key in ("payload", "query", "foreach"):
        yield from _data_problems(parts, (*at, key), getattr(step, key))
    yield from _payload_size_problems(parts, step, at)
    yield from _missing_source_problems(parts, step, at)
    if step.label is not None and step.foreach is None:
        yield parts.problem(
            (*at, "label"), "`label` names the items of a `foreach`; this step has none"
        )
    scope = TemplateScope(parts, step.id, index)
    yield from _template_problems(scope, step, at)


def _header_problems(parts: JobParts, step: Step, at: KeyPath) -> Iterator[Problem]:
    for name, value in step.headers.items():
        if name.lower() in CREDENTIAL_HEADERS:
            message = f"header {name!r} is set by the org's credential; remove it here"
            yield parts.problem((*at, "headers", name), message)
            continue
        literal_value = None if is_template_text(value) else value
        problem = None if is_template_text(name) else header_problem(name, literal_value)
        if problem:
            yield parts.problem((*at, "headers", name), problem)


def _payload_size_problems(parts: JobParts, step: Step, at: KeyPath) -> Iterator[Problem]:
    """A payload without templates is sent as written: its size is known now."""
    if any(is_template_text(text) for _, text in strings_in(step.payload)):
        return
    try:
        size = len(json.dumps(step.payload, allow_nan=False).encode())
    except ValueError:  # NaN or a huge number: _data_problems says where
        return
    if size > MAX_PAYLOAD_BYTES:
        message = f"payload is {size} bytes as JSON; the limit is 1 MiB"
        yield parts.problem((*at, "payload"), message)


def _missing_source_problems(parts: JobParts, step: Step, at: KeyPath) -> Iterator[Problem]:
    """A foreach file named without a template must exist: the run would fail it mid-job.

    Only "missing" is told here, in the run's words; a file that exists but cannot be
    read (a FIFO, /dev/zero, no permission) still fails its step, as it would then.
    """
    key, written = _source_file(step.foreach)
    if written is None or is_template_text(written):
        return
    path = parts.document.path.parent / written
    try:
        os.stat(path)
    except FileNotFoundError as exc:
        message = f"cannot read {escape_controls(str(path))}: {exc.strerror}"
        yield parts.problem((*at, "foreach", key), message)
    except (OSError, ValueError):  # the run says what is wrong with it
        return


def _source_file(source: Any) -> tuple[str, str | None]:
    """(key, path as written) of a file source; ("", None) for a list or no foreach."""
    if isinstance(source, FileSourceRecord):
        return source.KEY, source.path
    return "", None


def _step_org_problems(parts: JobParts, step: Step, at: KeyPath) -> Iterator[Problem]:
    org = step.org or parts.default_org
    if org is None:
        if parts.org_names:  # with no org at all, `orgs` says so already
            message = "no `org`: set it on the step or in `defaults.org` (the job has several orgs)"
            yield parts.problem(at, message)
    elif org not in parts.org_names:
        key = (*at, "org") if step.org else ("defaults", "org")
        yield parts.problem(key, unknown(org, parts.org_names, "org"))


def unknown(name: str, known: Iterable[str], kind: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint}"


# -- data (vars, payload, query, foreach lists): what JSON carries -------------------------


def _own_vars(document: YamlDocument) -> Any:
    """The job file's own vars: a --vars-file value is not at a place in this file."""
    return document.data.get("vars") if isinstance(document.data, dict) else None


def _data_problems(parts: JobParts, at: KeyPath, value: Any) -> Iterator[Problem]:
    for sub, problem in _not_json(value):
        yield parts.problem((*at, *sub), problem)


def _not_json(value: Any) -> Iterator[tuple[KeyPath, str]]:
    """(key path, problem) for each number JSON cannot carry: NaN, infinity, huge integers."""
    if isinstance(value, float) and not math.isfinite(value):
        yield (), f"expected a finite number, found {yaml_number(value)}"
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            yield (
                (),
                f"a number of more than {MAX_INT_DIGITS:,} digits; JSON readers cannot take it",
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from (((key, *sub), problem) for sub, problem in _not_json(item))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from (((index, *sub), problem) for sub, problem in _not_json(item))


def yaml_number(value: float) -> str:
    """How YAML spells a non-finite float (``1e400`` reads as ``.inf``)."""
    if math.isnan(value):
        return ".nan"
    return ".inf" if value > 0 else "-.inf"


# -- URLs ----------------------------------------------------------------------------


def _url_problems(parts: JobParts, at: KeyPath, url: str) -> Iterator[Problem]:
    message = url_problem(url)
    if message:
        yield parts.problem(at, message)


# -- templates -----------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateScope:
    """What the templates of one step may refer to."""

    parts: JobParts
    step_id: str
    index: int

    def is_earlier(self, step_id: str) -> bool:
        return self.parts.first_index.get(step_id, self.index) < self.index


def _template_fields(step: Step) -> Iterator[tuple[KeyPath, Any, frozenset[str]]]:
    """(key path within the step, value, names it may use beyond the common ones)."""
    extra = FOREACH_NAMES if step.foreach is not None else frozenset()
    yield ("flow",), step.flow, extra
    yield ("query",), step.query, extra
    yield ("headers",), step.headers, extra
    yield ("payload",), step.payload, extra
    if isinstance(step.when, str):
        yield ("when",), step.when, frozenset()
    yield from _source_fields(step.foreach)
    if step.label is not None:
        yield ("label",), step.label, FOREACH_NAMES  # without foreach: one problem, said above
    yield ("expect", "that"), list(step.expect.that), extra | RESPONSE_NAMES
    for name, spec in step.outputs.items():
        key = ("outputs", name) if isinstance(spec, str) else ("outputs", name, "value")
        yield key, spec if isinstance(spec, str) else spec.value, extra | RESPONSE_NAMES


def _source_fields(source: Any) -> Iterator[tuple[KeyPath, Any, frozenset[str]]]:
    """The foreach source's templates: its list or path sees no item; ``where`` sees each."""
    if isinstance(source, str):
        yield ("foreach",), source, frozenset()
    key, path = _source_file(source)
    if path is not None:
        yield ("foreach", key), path, frozenset()
    if isinstance(source, FileSourceRecord) and isinstance(source.where, str):
        yield ("foreach", "where"), source.where, FOREACH_NAMES


def _template_problems(scope: TemplateScope, step: Step, at: KeyPath) -> Iterator[Problem]:
    for key, value, extra in _template_fields(step):
        for sub, text in strings_in(value):
            message = _template_message(scope, text, COMMON_NAMES | extra)
            if message:
                yield scope.parts.problem((*at, *key, *sub), message)


def _template_message(scope: TemplateScope, text: str, allowed: frozenset[str]) -> str | None:
    if not is_template_text(text):  # plain text: nothing to compile, nothing it refers to
        return None
    try:
        form = scope.parts.templates.form(text)
    except TemplateError as exc:
        return str(exc)
    problems = (_reference_problem(scope, ref, allowed) for ref in form.free_refs)
    return next((problem for problem in problems if problem), None)


def _reference_problem(scope: TemplateScope, ref: Reference, allowed: frozenset[str]) -> str | None:
    if ref.root not in allowed and ref.root not in ENV.globals:  # range(), dict(), now() ...
        where = _ONLY_IN.get(ref.root)
        if where:
            return f"{ref.root!r} is only available {where}"
        return f"unknown name {ref.root!r} in template (available: {', '.join(sorted(allowed))})"
    if ref.root == "steps" and ref.name is not None and not scope.is_earlier(ref.name):
        return _step_reference_problem(scope, ref.name)
    variables = scope.parts.vars
    unsafe_var = ref.root == "vars" and ref.name is not None and not ref.guarded
    if unsafe_var and ref.name not in variables:
        return (
            unknown(str(ref.name), variables, "variable")
            + " (define it under `vars` or pass --var)"
        )
    return None


def _step_reference_problem(scope: TemplateScope, name: str) -> str:
    if name == scope.step_id:
        return f"steps.{name} is this step; templates can only use earlier steps"
    what = "a later step" if name in scope.parts.step_ids else "no step"
    return f"steps.{name} names {what}; templates can only use earlier steps"
