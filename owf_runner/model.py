"""The job model: frozen pydantic records, unknown keys forbidden.

``schemas/job.schema.json`` is generated from these classes
(``owf-run schema``); a test fails when the committed copy is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from owf_runner.failures import FailureClass

DEFAULT_SCOPE = "okta.workflows.invoke.manage"
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"
RATE_LIMIT = r"^\s*\d+(\.\d+)?\s*/\s*(s|m|min|h)\s*$"

Algorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


# YAML already typed every value: `yes`, "5" and 1 are not booleans or numbers in disguise.
Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict()]
Seconds = Annotated[float, Strict(), AllowInfNan(False)]
# Absurd values get a bound: a timeout or wait of more than a day is a typo, not a plan.
MAX_SECONDS = 86400.0
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024  # a body owf-run may be told to hold in memory
SCOPE = r"^[\x21\x23-\x5b\x5d-\x7e]+$"  # RFC 6749 scope-token: printable ASCII, no space
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- secret references --------------------------------------------------------


class EnvSecret(Record):
    env: Annotated[
        str,
        Field(
            min_length=1,
            description="Name of the environment variable holding the secret. Unset or empty "
            "is an error (exit 3), except that a rehearsal (`--emulate`) makes up a stand-in.",
            examples=["ACME_OKTA_PRIVATE_KEY"],
        ),
    ]


class FileSecret(Record):
    file: Annotated[
        str,
        Field(
            min_length=1,
            description="Path of the file holding the secret, relative to the job file: a "
            "regular file of at most 1 MiB. A missing file is an error (exit 3), except that a "
            "rehearsal (`--emulate`) makes up a stand-in. A warning when group or others have "
            "any access to it (`chmod 600` it).",
            examples=["keys/acme.pem", "secrets/hook-token"],
        ),
    ]


class CommandSecret(Record):
    command: Annotated[
        list[Annotated[str, Field(min_length=1)]],
        Field(
            min_length=1,
            description="A command as an argv list, run without a shell; its standard output, "
            "one trailing newline removed, is the secret. It must exit 0 and print something, "
            "at most 1 MiB, within 30 seconds; its standard error is not shown.",
            examples=[
                ["op", "read", "op://it/okta/private-key"],
                ["vault", "kv", "get", "-field=private_key", "secret/okta/acme"],
            ],
        ),
    ]


def _rate_is_positive(text: str) -> str:
    """A rate of zero would never send; one slower than a day never finishes."""
    if rate_per_second(text) * MAX_SECONDS < 1:
        raise ValueError(f"expected at least one per day, found {text!r}")
    return text


Rate = Annotated[str, Field(pattern=RATE_LIMIT), AfterValidator(_rate_is_positive)]


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
    type: Literal["private_key_jwt"] = Field(
        description="`private_key_jwt`: an OAuth 2.0 access token, got with a signed client "
        "assertion, for flows secured with OAuth 2.0."
    )
    client_id: Annotated[
        str,
        Field(
            min_length=1,
            description="Client ID of the Okta API Services app (the assertion's `iss` and `sub`).",
            examples=["0oa2781yr7ajUaJfd0h8"],
        ),
    ]
    key_id: Annotated[str, Field(min_length=1)] | None = Field(
        None,
        description="Key ID (`kid`) of the app's public key, sent in the assertion header. "
        "Default: the `kid` of a JWK private key; a PEM key needs it.",
        examples=["-w3inv9SakDtvMpxlwpEx8GnkuKBtlGMzSHwJtQxbr8"],
    )
    private_key: SecretRef = Field(
        description="Secret reference to the private key, `{env: NAME}`, `{file: PATH}` or "
        "`{command: [argv, ...]}`, never the key itself. The key: PEM (PKCS#8, PKCS#1, SEC1) "
        "or JWK, RSA or EC P-256/P-384/P-521, unencrypted.",
        examples=[
            {"env": "ACME_OKTA_PRIVATE_KEY"},
            {"file": "keys/acme.pem"},
            {"command": ["op", "read", "op://it/okta/private-key"]},
        ],
    )
    algorithm: Algorithm | None = Field(
        None,
        description="Signing algorithm of the assertion; it must fit the key. Default: from "
        "the key, RS256 for RSA, ES256/ES384/ES512 for EC P-256/P-384/P-521.",
    )
    scopes: Annotated[tuple[Annotated[str, Field(pattern=SCOPE)], ...], Field(min_length=1)] = (
        Field(
            (DEFAULT_SCOPE,),
            description="Scopes requested with the token, at least one; each printable ASCII "
            "without spaces, quotes or backslashes. Default: `okta.workflows.invoke.manage`.",
        )
    )


class ClientTokenCredential(Record):
    type: Literal["client_token"] = Field(
        description="`client_token`: the flow's client token in the `x-api-client-token` "
        "header, for flows secured with a client token."
    )
    token: SecretRef = Field(
        description="Secret reference to the flow's client token, `{env: NAME}`, `{file: PATH}` "
        "or `{command: [argv, ...]}`, never the token itself.",
        examples=[{"env": "HOOK_CLIENT_TOKEN"}, {"file": "secrets/hook-token"}],
    )


class NoCredential(Record):
    type: Literal["none"] = Field(
        description="`none`: no credential, for flows whose API Endpoint card has no security."
    )


Credential = Annotated[
    PrivateKeyJwtCredential | ClientTokenCredential | NoCredential, Field(discriminator="type")
]


class Org(Record):
    domain: str | None = Field(
        None,
        description="Okta domain of the org, a bare host name; the token URL is "
        "`https://{domain}/oauth2/v1/token`. Required unless `token_url` is set.",
        examples=["acme.okta.com", "acme.oktapreview.com"],
    )
    token_url: str | None = Field(
        None,
        description="Token endpoint, when it is not `https://{domain}/oauth2/v1/token` "
        "(e.g. a custom domain). https only (loopback excepted), without user info.",
        examples=["https://login.acme.com/oauth2/v1/token"],
    )
    credential: str = Field(
        description="Name of the entry under `credentials` this org uses.",
        examples=["acme_invoker"],
    )
    rate_limit: Rate | None = Field(
        None,
        description="Pace of invocations per flow URL for steps on this org, as `N/s`, "
        "`N/m` (or `N/min`) or `N/h`, at least one per day. Default: `defaults.rate_limit`; "
        "a step's own `rate_limit` wins.",
        examples=["5/s", "300/m", "0.5/s"],
    )
    ca_bundle: str | None = Field(
        None,
        description="PEM file of extra CA certificates to trust (e.g. a TLS-inspecting proxy), "
        "relative to the job file. Certificate verification is never switched off.",
        examples=["certs/proxy-ca.pem"],
    )


# -- retries ---------------------------------------------------------------------


class Backoff(Record):
    initial: Annotated[Seconds, Field(gt=0, le=MAX_SECONDS)] = Field(
        1.0,
        description="Wait before the first retry, in seconds; it doubles with each retry, "
        "plus up to 1 s of jitter; at most 86400 (a day). Default: 1.",
        examples=[0.5, 2],
    )
    max: Annotated[Seconds, Field(gt=0, le=MAX_SECONDS)] = Field(
        30.0,
        description="Longest backoff wait between two tries, in seconds; at most 86400 (a day). "
        "A wait the server asks for is bounded by `max_wait` instead. Default: 30.",
        examples=[60],
    )


class Retry(Record):
    attempts: Annotated[Int, Field(ge=1, le=100)] = Field(
        4,
        description="Total tries, the first included (1: no retry), 1 to 100. Default: 4.",
        examples=[1, 6],
    )
    backoff: Backoff = Field(
        Backoff(),
        description="Exponential backoff between tries, used when the server names no wait.",
        examples=[{"initial": 2, "max": 60}],
    )
    max_wait: Annotated[Seconds, Field(ge=0, le=MAX_SECONDS)] = Field(
        300.0,
        description="Longest wait, in seconds, a server may ask for (`Retry-After`, "
        "`X-Rate-Limit-Reset`); a longer one fails the step at once. At most 86400 (a day). "
        "Default: 300.",
        examples=[60, 900],
    )
    on: tuple[FailureClass, ...] | None = Field(
        None,
        description="Failure classes that are retried. Default: `connect`, `throttled`, "
        "`unavailable` (the flow did not run); `idempotent: true` on the step adds `server`, "
        "`timeout`, `dropped`.",
        examples=[["connect", "throttled", "unavailable", "server"]],
    )


# -- steps -------------------------------------------------------------------------


class Defaults(Record):
    org: str | None = Field(
        None,
        description="Org of steps without `org`. Default: the job's only org, when it has one "
        "(with several orgs, each step then needs `org`).",
        examples=["acme"],
    )
    timeout: Annotated[Seconds, Field(gt=0, le=MAX_SECONDS)] = Field(
        65.0,
        description="Time limit for each try of an invocation, in seconds, "
        "for steps without `timeout`; at most 86400 (a day). Default: 65 (Okta closes the "
        "connection at 60).",
        examples=[120],
    )
    retry: Retry = Field(
        Retry(),
        description="Retry policy of every step; a step's `retry` overrides it key by key.",
        examples=[{"attempts": 4, "backoff": {"initial": 1, "max": 30}, "max_wait": 300}],
    )
    rate_limit: Rate = Field(
        "10/s",
        description="Pace of invocations per flow URL, as `N/s`, `N/m` (or `N/min`) or `N/h`, "
        "evenly spaced, at least one per day. Default: `10/s` (Okta allows about 10 per second "
        "per flow). An org's or a step's `rate_limit` wins.",
        examples=["10/s", "300/m"],
    )
    max_response_bytes: Annotated[Int, Field(gt=0, le=MAX_RESPONSE_BYTES)] = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        description="Largest response body read from a flow, in bytes, counted after "
        "decompression; a larger answer fails the step. At most 1073741824 (1 GiB). "
        "Default: 10485760 (10 MiB).",
        examples=[52428800],
    )


class FileSourceRecord(Record):
    """A foreach file: its key in the job file (``csv``, ``jsonl``, ``json``) names its kind."""

    KEY: ClassVar[str]

    @property
    def path(self) -> str:
        """The file as written (the value under KEY)."""
        return str(getattr(self, "json_" if self.KEY == "json" else self.KEY))

    where: str | Bool | None = Field(
        None,
        description="Run only the items for which this template renders truthy; it sees "
        "`item` and `index` (the item's place in the file, counted before filtering). Items "
        "left out are not sent and not in `results`. Default: every item.",
        examples=["{{ item.status == 'active' }}"],
    )


class CsvSource(FileSourceRecord):
    KEY: ClassVar[str] = "csv"

    csv: str = Field(
        description="CSV file, relative to the job file (may be a template). Each row is one "
        "`item`: a mapping of strings keyed by the header row. Read as the items run.",
        examples=["data/new_hires.csv", "{{ vars.hires_file }}"],
    )


class JsonlSource(FileSourceRecord):
    KEY: ClassVar[str] = "jsonl"

    jsonl: str = Field(
        description="JSON Lines file, relative to the job file (may be a template). Each "
        "non-blank line is one `item`, any JSON value. Read as the items run.",
        examples=["data/users.jsonl"],
    )


class JsonSource(FileSourceRecord):
    KEY: ClassVar[str] = "json"

    json_: str = Field(
        alias="json",
        description="JSON file holding one list, relative to the job file (may be a template). "
        "Each element is one `item`. Read whole: prefer `jsonl` for large inputs.",
        examples=["data/apps.json"],
    )


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
    status: (
        Annotated[tuple[Annotated[Int, Field(ge=100, le=599)], ...], Field(min_length=1)] | None
    ) = Field(
        None,
        description="HTTP status codes that count as success; any other fails the step. "
        "Default: any 2xx.",
        examples=[[200, 404]],
    )
    that: tuple[str, ...] = Field(
        (),
        description="Templates that must all render truthy; they see `response`. A failed "
        "expectation is never retried. Default: none.",
        examples=[["{{ response.body.assigned }}", "{{ response.body.errors | length == 0 }}"]],
    )


class SecretOutput(Record):
    value: str = Field(
        description="Template giving the output's value; it sees `response`.",
        examples=["{{ response.body.password }}"],
    )
    secret: Bool = Field(
        False,
        description="Mask the value in everything owf-run prints or writes. Default: false.",
    )


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
    id: Annotated[str, Field(pattern=STEP_ID)] = Field(
        description="Unique name of the step (letters, digits, `_`; not starting with a digit); "
        "later steps use it as `steps.<id>`.",
        examples=["create_user"],
    )
    description: str | None = Field(
        None, description="Free text for readers; not used.", examples=["Find the user by email"]
    )
    org: str | None = Field(
        None,
        description="Org whose credential calls the flow. Default: `defaults.org`, else the "
        "job's only org.",
        examples=["acme"],
    )
    flow: str = Field(
        description="Invoke URL of the flow, `https://ORG.workflows.okta.com/api/flo/ID/invoke` "
        "(ID: the flow id or alias). https only (loopback excepted), without user info; may be "
        "a template. Redirects are not followed: a 3xx fails the step.",
        examples=[
            "https://acme.workflows.okta.com/api/flo/d71da429cdb0b4ef4dc23a1bb1ed9d1b/invoke",
            "https://acme.workflows.okta.com/api/flo/lookup_user/invoke",
        ],
    )
    method: Literal["POST", "GET"] = Field(
        "POST",
        description="`POST` sends `payload` as JSON; `GET` sends no body (a `GET` step with a "
        "`payload` is an error: use `query`). Default: `POST`.",
    )
    query: dict[str, Any] = Field(
        {},
        description="Query parameters (templates); a value that is not a string is sent as "
        "JSON text. Default: none.",
        examples=[{"email": "{{ vars.email }}"}],
    )
    headers: dict[str, str] = Field(
        {},
        description="Extra request headers (templates). `Authorization` and "
        "`x-api-client-token` are refused: the credential sets them. Default: none.",
        examples=[{"X-Request-Source": "owf-run"}],
    )
    payload: Any = Field(
        None,
        description="Request body: any YAML value, sent as JSON; every string in it (and every "
        "key) is a template, and a string that is exactly one `{{ expression }}` keeps the "
        "expression's type. At most 1 MiB rendered. Default: no body.",
        examples=[{"firstName": "{{ vars.first_name }}", "groups": "{{ vars.groups }}"}],
    )
    when: str | Bool | None = Field(
        None,
        description="Run the step only if this template renders truthy (a rendered `''`, "
        "`false`, `0`, `no`, `none` or `null`, any case, is false); otherwise it is `skipped`. "
        "Also a plain `true` or `false`. In a `foreach` step it is checked once, before the "
        "items (no `item`). Default: always run.",
        examples=["{{ steps.create_user.outputs.user_id is defined }}"],
    )
    foreach: ForeachSource | None = Field(
        None,
        description="Run the step once per item of a list, a template giving a list, "
        "`{csv: PATH}`, `{jsonl: PATH}` or `{json: PATH}` (relative to the job file); the "
        "step's templates see `item` and `index` (from 0).",
        examples=[
            ["slack", "github"],
            "{{ vars.apps }}",
            {"csv": "data/new_hires.csv"},
            {"jsonl": "data/users.jsonl", "where": "{{ item.status == 'active' }}"},
        ],
    )
    label: Annotated[str, Field(min_length=1)] | None = Field(
        None,
        description="Template naming each `foreach` item in progress lines, retries, "
        "failures, reports and the journal; it sees `item` and `index`. Only with `foreach`; "
        "cut at 200 characters. Default: the item's index.",
        examples=["{{ item.email }}"],
    )
    concurrency: Annotated[Int, Field(ge=1, le=100)] = Field(
        1,
        description="Items of a `foreach` in flight at once, 1 to 100; `rate_limit` still "
        "paces them. Default: 1.",
        examples=[5],
    )
    fail_fast: Bool = Field(
        False,
        description="Start no further `foreach` items once one has failed. Default: false "
        "(every item runs; the step fails if any item failed).",
    )
    expect: Expect = Field(
        Expect(),
        description="When an answer counts as success. Default: any 2xx.",
        examples=[{"status": [200], "that": ["{{ response.body.assigned }}"]}],
    )
    outputs: dict[str, Output] = Field(
        {},
        description="Values kept for later steps as `steps.<id>.outputs.NAME`: NAME: a template "
        'over `response`, or `{value: "{{ ... }}", secret: true}`. In a `foreach` step, per '
        "item: `steps.<id>.results[i].outputs`. Default: none.",
        examples=[
            {
                "user_id": "{{ response.body.id }}",
                "temp_password": {"value": "{{ response.body.password }}", "secret": True},
            }
        ],
    )
    continue_on_error: Bool = Field(
        False,
        description="If the step fails, run the next steps anyway; the failure is reported as "
        "ignored and does not change the exit code. Default: false (later steps: `not run`).",
    )
    idempotent: Bool = Field(
        False,
        description="The flow is safe to run twice: also retry `server`, `timeout` and "
        "`dropped`, where the flow may have run. Default: false.",
    )
    retry: Retry | None = Field(
        None,
        description="Retry policy of this step, merged key by key over `defaults.retry`.",
        examples=[{"attempts": 2}],
    )
    timeout: Annotated[Seconds, Field(gt=0, le=MAX_SECONDS)] | None = Field(
        None,
        description="Time limit for each try, in seconds: connect, send and read the whole "
        "answer; at most 86400 (a day). Default: `defaults.timeout`.",
        examples=[120],
    )
    rate_limit: Rate | None = Field(
        None,
        description="Pace of invocations of this flow URL, as `N/s`, `N/m` (or `N/min`) or "
        "`N/h`, at least one per day. Default: the org's `rate_limit`, else "
        "`defaults.rate_limit`.",
        examples=["2/s", "1000/h"],
    )
    max_response_bytes: Annotated[Int, Field(gt=0, le=MAX_RESPONSE_BYTES)] | None = Field(
        None,
        description="Largest response body read from this flow, in bytes, counted after "
        "decompression; at most 1073741824 (1 GiB). Default: `defaults.max_response_bytes`.",
        examples=[52428800],
    )


class Job(Record):
    version: Literal[1] = Field(description="Format version of the job file: `1`.")
    name: Annotated[str, Field(pattern=NO_CONTROLS)] | None = Field(
        None,
        description="Name of the job in output and as `job.name`, without control characters. "
        "Default: the job file's name without its extension.",
        examples=["onboarding"],
    )
    description: str | None = Field(
        None,
        description="Free text for readers; not used.",
        examples=["Onboard this week's new hires"],
    )
    vars: dict[str, Any] = Field(
        {},
        description="Variables for templates (`vars.NAME`), any YAML values. `--vars-file` "
        "overrides them and `--var KEY=VALUE` (a string) overrides both. Default: none.",
        examples=[{"first_name": "Ada", "groups": ["engineering", "on-call"]}],
    )
    orgs: Annotated[dict[str, Org], Field(min_length=1)] = Field(
        description="Okta orgs by name, at least one: where tokens come from and with which "
        "credential.",
        examples=[{"acme": {"domain": "acme.okta.com", "credential": "acme_invoker"}}],
    )
    credentials: dict[str, Credential] = Field(
        {},
        description="Credentials by name, used by `orgs.NAME.credential`; `type` chooses "
        "`private_key_jwt`, `client_token` or `none`. Only those of orgs some step uses must "
        "resolve. Default: none.",
        examples=[
            {
                "acme_invoker": {
                    "type": "private_key_jwt",
                    "client_id": "0oa2781yr7ajUaJfd0h8",
                    "key_id": "-w3inv9SakDtvMpxlwpEx8GnkuKBtlGMzSHwJtQxbr8",
                    "private_key": {"env": "ACME_OKTA_PRIVATE_KEY"},
                },
                "hook_token": {"type": "client_token", "token": {"env": "HOOK_CLIENT_TOKEN"}},
            }
        ],
    )
    defaults: Defaults = Field(
        Defaults(),
        description="Settings for every step that does not set its own.",
        examples=[{"org": "acme", "timeout": 65, "retry": {"attempts": 4}}],
    )
    steps: Annotated[list[Step], Field(min_length=1)] = Field(
        description="The flow invocations, at least one, run in the order written; a failed "
        "step stops the job unless it has `continue_on_error: true`.",
        examples=[
            [
                {
                    "id": "create_user",
                    "flow": "https://acme.workflows.okta.com/api/flo/"
                    "d71da429cdb0b4ef4dc23a1bb1ed9d1b/invoke",
                    "payload": {"firstName": "{{ vars.first_name }}"},
                    "outputs": {"user_id": "{{ response.body.id }}"},
                }
            ]
        ],
    )

    @property
    def default_org(self) -> str | None:
        return implicit_org(self.defaults.org, list(self.orgs))


def implicit_org(defaults_org: str | None, org_names: list[str]) -> str | None:
    """``defaults.org``, or the only org: what a step without ``org`` uses."""
    return defaults_org or (org_names[0] if len(org_names) == 1 else None)


def rate_per_second(text: str) -> float:
    match = re.match(r"^\s*([\d.]+)\s*/\s*(\w+)\s*$", text)
    if not match:
        raise ValueError(f"invalid rate limit {text!r}")
    per = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) / per


# A name, not an address: the repository is hosted nowhere it can promise to answer for,
# and editors find the schema by path (the modeline), never by fetching its $id. It names
# version 1 of the format and changes only with a version 2.
JOB_SCHEMA_ID = "urn:owf-runner:job:1"


class _SchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator, but an example keeps its keys in the order written (`id` first)."""

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        sorted_value: JsonSchemaValue = _sorted(value, parent_key)
        return sorted_value


def _sorted(value: Any, parent_key: str | None) -> Any:
    """Keys sorted as pydantic sorts them, except in ``examples`` (documents a user writes)."""
    if isinstance(value, list):
        return [_sorted(item, parent_key) for item in value]
    if not isinstance(value, dict) or parent_key == "examples":
        return value
    keys = list(value) if parent_key in ("properties", "default") else sorted(value)
    return {key: _sorted(value[key], key) for key in keys}


def job_schema() -> dict[str, Any]:
    """The job file's JSON Schema (draft 2020-12), as ``schemas/job.schema.json`` holds it."""
    schema = Job.model_json_schema(schema_generator=_SchemaGenerator)
    schema.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": JOB_SCHEMA_ID,
        "title": "owf-runner job file (version 1)",
        "description": "A job file of owf-runner: the Okta orgs to talk to, how to "
        "authenticate to each, and the flow invocations (steps) to run, in order.",
        **schema,
    }
