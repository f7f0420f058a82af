"""Stub files (`flows: {flow_id_or_alias: {...}}`), read like job files.

The same YAML 1.2 loader, strict frozen pydantic records and problem records as
job files: every problem names file:line:col and key path, and all are raised at
once as a JobError.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from owf_runner.errors import JobError
from owf_runner.files import STUB_FILE
from owf_runner.model import Bool, Int, Record, Seconds
from owf_runner.problems import in_file_order
from owf_runner.validation import validation_problems
from owf_runner.yamlfile import load_yaml

from ._models import Fault, FlowStub, Security


def _header_text(value: Any) -> Any:
    # `X-Rate-Limit-Remaining: 0` is an int in YAML, but header values are text;
    # anything else (true, 1.5, a mapping) is left for the strict check to refuse.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _null_is_empty(value: Any) -> Any:
    # `flows:` with nothing under it, or `some_flow:` alone, means "nothing to say".
    return {} if value is None else value


HeaderValue = Annotated[str, Strict(), BeforeValidator(_header_text)]
Headers = dict[str, HeaderValue]
Status = Annotated[Int, Field(ge=100, le=599)]


class FaultSpec(Record):
    """One `faults:` entry; see :class:`Fault`."""

    times: Annotated[Int, Field(ge=1, description="How many calls, from the next one on")] = 1
    status: Status | None = Field(None, description="Answer this instead; default: answer normally")
    headers: Headers = Field({}, description="Added to the answer")
    body: Any = Field(None, description="The answer's body; needs `status`")
    drop: Bool = Field(False, description="Read the request, then close without an answer")
    delay: Annotated[Seconds, Field(ge=0, description="Seconds to wait before answering")] = 0.0

    @field_validator("body")
    @classmethod
    def _body_needs_status(cls, body: Any, info: ValidationInfo) -> Any:
        # A wrong `status` is reported on its own; only a missing one makes the body moot.
        if body is not None and "status" in info.data and info.data["status"] is None:
            raise ValueError("needs `status` (without it the call is answered normally)")
        return body

    def fault(self) -> Fault:
        return Fault(
            times=self.times,
            status=self.status,
            headers=self.headers,
            body=self.body,
            drop=self.drop,
            delay=self.delay,
        )


class StubSpec(Record):
    """How the emulator answers one flow; see :class:`FlowStub`."""

    status: Status = Field(200, description="HTTP status of the answer")
    headers: Headers = Field(
        {},
        description="Answer headers; values are templates over `request`",
        examples=[{"X-Request-Id": "{{ uuid4() }}"}],
    )
    body: Any = Field(
        None,
        description="Answer body, any YAML value; every string in it is a template over "
        "`request`. Default: see `echo`",
        examples=[{"id": "00u1", "login": "{{ request.body.firstName | lower }}@acme.example"}],
    )
    echo: Bool = Field(True, description="Without `body`: answer with the request's body")
    security: Security | None = Field(
        None,
        description="What the flow's API Endpoint card requires: `oauth2` (a bearer token), "
        "`client_token` (an `x-api-client-token` header) or `none`. Default: as the job calls "
        "the flow (`oauth2` for the bare emulator)",
    )
    faults: tuple[FaultSpec, ...] = Field((), description="Answers replacing the next calls")

    def flow_stub(self) -> FlowStub:
        return FlowStub(
            status=self.status,
            headers=self.headers,
            body=self.body,
            echo=self.echo,
            security=self.security,
            faults=tuple(spec.fault() for spec in self.faults),
        )


Flows = Annotated[
    dict[str, Annotated[StubSpec, BeforeValidator(_null_is_empty)]],
    BeforeValidator(_null_is_empty),
]


class StubFile(Record):
    """A whole stub file."""

    flows: Flows = Field(
        {},
        description="Stubs by flow id (or the alias in the flow's URL); a flow without a stub "
        "echoes its request",
        examples=[{"lookup_user": {"body": {"found": True}}, "public_flow": {"security": "none"}}],
    )


def load_stub_file(path: Path) -> dict[str, FlowStub]:
    """Every stub in the file, by flow id; any problem raises JobError (all at once)."""
    document = load_yaml(path, STUB_FILE)
    try:
        stubs = StubFile.model_validate(_null_is_empty(document.data))
    except ValidationError as exc:
        problems = validation_problems(exc, document, _schema())
        raise JobError(in_file_order(problems)) from None
    return {flow_id: spec.flow_stub() for flow_id, spec in stubs.flows.items()}


@cache
def _schema() -> dict[str, Any]:
    # What "did you mean" suggestions for unknown keys are drawn from.
    return StubFile.model_json_schema()
