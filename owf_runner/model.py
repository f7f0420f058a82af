"""The job model: frozen pydantic records, unknown keys forbidden.

``schemas/job.schema.json`` is generated from these classes
(``owf-run schema``); a test fails when the committed copy is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Discriminator, Field, Strict, Tag

DEFAULT_SCOPE = "okta.workflows.invoke.manage"
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"
RATE_LIMIT = r"^\s*\d+(\.\d+)?\s*/\s*(s|m|min|h)\s*$"

Algorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
FailureClass = Literal["connect", "throttled", "unavailable", "server", "timeout", "dropped"]
DEFAULT_RETRY_ON: tuple[FailureClass, ...] = ("connect", "throttled", "unavailable")
IDEMPOTENT_RETRY_ON: tuple[FailureClass, ...] = ("server", "timeout", "dropped")


# YAML already typed every value: `yes`, "5" and 1 are not booleans or numbers in disguise.
Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict()]
Seconds = Annotated[float, Strict(), AllowInfNan(False)]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- secret references --------------------------------------------------------


class EnvSecret(Record):
    env: Annotated[str, Field(min_length=1, description="Name of an environment variable")]


class FileSecret(Record):
    file: Annotated[str, Field(min_length=1, description="Path, relative to the job file")]


class CommandSecret(Record):
    command: Annotated[
        list[str], Field(min_length=1, description="argv of a command whose stdout is the secret")
    ]


def _kind_by_key(kinds: dict[str, type[Record]]) -> Callable[[Any], str | None]:
    """A discriminator: the one key of ``kinds`` a mapping has (or a record's own kind)."""

    def kind(value: Any) -> str | None:
        if isinstance(value, Record):
            return next((k for k, cls in kinds.items() if isinstance(value, cls)), None)
        if isinstance(value, dict):
            present = [k for k in kinds if k in value]
            return present[0] if len(present) == 1 else None
        return None

    return kind


SecretRef = Annotated[
    Annotated[EnvSecret, Tag("env")]
    | Annotated[FileSecret, Tag("file")]
    | Annotated[CommandSecret, Tag("command")],
    Discriminator(
        _kind_by_key({"env": EnvSecret, "file": FileSecret, "command": CommandSecret}),
        custom_error_type="secret_reference",
        custom_error_message="expected one of {env: NAME}, {file: PATH} or {command: [argv, ...]}",
    ),
]


# -- credentials and orgs -------------------------------------------------------


class PrivateKeyJwtCredential(Record):
    type: Literal["private_key_jwt"]
    client_id: Annotated[str, Field(min_length=1)]
    key_id: str | None = Field(None, description="kid; defaults to the JWK's kid")
    private_key: SecretRef
    algorithm: Algorithm | None = Field(None, description="Default: RS256 for RSA, ES* for EC")
    scopes: tuple[str, ...] = (DEFAULT_SCOPE,)


class ClientTokenCredential(Record):
    type: Literal["client_token"]
    token: SecretRef


class NoCredential(Record):
    type: Literal["none"]


Credential = Annotated[
    PrivateKeyJwtCredential | ClientTokenCredential | NoCredential, Field(discriminator="type")
]


class Org(Record):
    domain: str | None = Field(None, description="Okta domain, e.g. acme.okta.com")
    token_url: str | None = Field(None, description="Overrides https://{domain}/oauth2/v1/token")
    credential: str
    rate_limit: Annotated[str, Field(pattern=RATE_LIMIT)] | None = None
    ca_bundle: str | None = Field(None, description="Extra CA certificates (PEM), for a proxy")

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or f"https://{self.domain}/oauth2/v1/token"


# -- retries ---------------------------------------------------------------------


class Backoff(Record):
    initial: Annotated[Seconds, Field(gt=0)] = 1.0
    max: Annotated[Seconds, Field(gt=0)] = 30.0


class Retry(Record):
    attempts: Annotated[Int, Field(ge=1, le=100)] = 4
    backoff: Backoff = Backoff()
    max_wait: Annotated[Seconds, Field(ge=0)] = 300.0
    on: tuple[FailureClass, ...] | None = Field(
        None,
        description="Default: connect, throttled, unavailable (+ server, timeout, dropped "
        "when the step is idempotent)",
    )

    def classes(self, idempotent: bool) -> frozenset[str]:
        chosen = self.on if self.on is not None else DEFAULT_RETRY_ON
        return frozenset(chosen + (IDEMPOTENT_RETRY_ON if idempotent else ()))


# -- steps -------------------------------------------------------------------------


class Defaults(Record):
    org: str | None = None
    timeout: Annotated[Seconds, Field(gt=0)] = 65.0
    retry: Retry = Retry()
    rate_limit: Annotated[str, Field(pattern=RATE_LIMIT)] = "10/s"


class CsvSource(Record):
    csv: str


class JsonlSource(Record):
    jsonl: str


class JsonSource(Record):
    json_: str = Field(alias="json")


def _foreach_kind(value: Any) -> str | None:
    if isinstance(value, str | list):
        return type(value).__name__
    return _kind_by_key({"csv": CsvSource, "jsonl": JsonlSource, "json": JsonSource})(value)


ForeachSource = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[list[Any], Tag("list")]
    | Annotated[CsvSource, Tag("csv")]
    | Annotated[JsonlSource, Tag("jsonl")]
    | Annotated[JsonSource, Tag("json")],
    Discriminator(
        _foreach_kind,
        custom_error_type="foreach_source",
        custom_error_message="expected a list, a template giving a list, or one of "
        "{csv: PATH}, {jsonl: PATH}, {json: PATH}",
    ),
]


class Expect(Record):
    status: tuple[Int, ...] | None = Field(None, description="Default: any 2xx")
    that: tuple[str, ...] = ()


class SecretOutput(Record):
    value: str
    secret: Bool = False


Output = Annotated[
    Annotated[str, Tag("str")] | Annotated[SecretOutput, Tag("record")],
    Discriminator(
        lambda v: (
            "str" if isinstance(v, str) else "record" if isinstance(v, dict | Record) else None
        ),
        custom_error_type="output",
        custom_error_message='expected a template, or {value: "{{ ... }}", secret: true}',
    ),
]


class Step(Record):
    id: Annotated[str, Field(pattern=STEP_ID)]
    description: str | None = None
    org: str | None = None
    flow: str
    method: Literal["POST", "GET"] = "POST"
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    payload: Any = None
    when: str | Bool | None = None
    foreach: ForeachSource | None = None
    concurrency: Annotated[Int, Field(ge=1, le=100)] = 1
    fail_fast: Bool = False
    expect: Expect = Expect()
    outputs: dict[str, Output] = {}
    continue_on_error: Bool = False
    idempotent: Bool = False
    retry: Retry | None = None
    timeout: Annotated[Seconds, Field(gt=0)] | None = None
    rate_limit: Annotated[str, Field(pattern=RATE_LIMIT)] | None = None


class Job(Record):
    version: Literal[1]
    name: str | None = None
    description: str | None = None
    vars: dict[str, Any] = {}
    orgs: Annotated[dict[str, Org], Field(min_length=1)]
    credentials: dict[str, Credential] = {}
    defaults: Defaults = Defaults()
    steps: Annotated[list[Step], Field(min_length=1)]


def rate_per_second(text: str) -> float:
    match = re.match(r"^\s*([\d.]+)\s*/\s*(\w+)\s*$", text)
    if not match:
        raise ValueError(f"invalid rate limit {text!r}")
    per = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) / per


def job_schema() -> dict[str, Any]:
    schema = Job.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "owf-runner job file (version 1)"
    return schema
