"""Property: whatever a server answers, the run ends with its documented exit code, soon, silently.

Hypothesis scripts hostile answers — any status, malformed `Retry-After`,
`X-Rate-Limit-Reset`, `Date`, `Content-Type`, `Content-Encoding` and `Location`
headers, bodies of random bytes, random or deeply nested JSON, non-UTF-8 text,
invalid or bombing gzip — and serves them through ``httpx2.MockTransport`` to the
real stages (load → resolve → credentials → execute → console report, behind the
real error boundary) on a virtual clock. It answers (a) a flow step, authenticated
by a bearer token or a client token, and (b) the token request itself.

The same answers meet four foreach items on three workers (429 holds, refreshes and
failures meet each other), and raw bytes — broken status lines, malformed header lines,
Content-Length and Transfer-Encoding lies — go over a loopback socket
(tests/hostile.py) through the real transport.

A hostile server also reflects what it received — the bearer token, the client
token, the signed client assertion — in its bodies and headers, in every encoding
the redactor promises to mask, and around the 300-character excerpt cut.

Asserted for every answer: the exit code is 0, 1 or 4 (never 70), the run makes a
bounded number of requests and sleeps a bounded virtual time, returns within a hard
real-time limit, keeps no response body over the step's cap, and no secret — the
private key, the client token, the access token, any client assertion — shows in
what it printed, in any form or as a 16-character fragment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gzip
import hashlib
import io
import itertools
import json
import re
import urllib.parse
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from owf_runner import boundary, commands
from owf_runner.auth import TOKEN_ATTEMPTS
from owf_runner.credentials import build_auths, resolve_credentials
from owf_runner.errors import ExitCode
from owf_runner.http import build_client
from owf_runner.outcomes import RunResult
from owf_runner.plan import Plan
from owf_runner.report import ConsoleReporter
from owf_runner.runner import execute
from tests import hostile as server_side
from tests.conftest import ec_key, encodings, pem
from tests.fakes import FakeClock, SteppingClock
from tests.hostile import hard_limit

CAP = 64 * 1024  # the steps' max_response_bytes: small, so that big bodies are cheap to serve
ATTEMPTS, MAX_WAIT = 3, 60
MAX_FLOW_REQUESTS = 2 * ATTEMPTS * 2  # two steps; each attempt may be re-sent after a 401
MAX_TOKEN_REQUESTS = 4 * (MAX_FLOW_REQUESTS + 1)  # four tries per fetch; a fetch per 401
MAX_VIRTUAL_SLEEP = 3600.0
HARD_LIMIT_SECONDS = 10  # real time; an example that takes longer is a hang
FRAGMENT = 16  # this many consecutive characters of a token printed count as a leak
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PRIVATE_KEY = pem(ec_key("P-256"))  # EC: fast to sign; one key, its PEM the planted canary
FLOW_URL = "https://acme.workflows.okta.com/api/flo/fuzz/invoke"
TOKEN_PATH = "/oauth2/v1/token"
_canary_numbers = itertools.count()


def canary(kind: str) -> str:
    """A fresh secret per example (the redactor never forgets one), deterministic per run.

    `+` and `/` make its URL-encoded forms differ from the raw one.
    """
    digest = hashlib.sha256(f"{kind}-{next(_canary_numbers)}".encode()).hexdigest()
    return f"{kind[:2].upper()}{digest[:18]}+/{digest[18:38]}"


# -- what a hostile server sends --------------------------------------------------

ENCODERS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "quote": lambda s: urllib.parse.quote(s, safe=""),
    "quote_plus": urllib.parse.quote_plus,
    "json": lambda s: json.dumps(s)[1:-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


@dataclasses.dataclass(frozen=True)
class Reflect:
    """The secret the server received, put back in one encoding after ``pad`` filler characters.

    A pad of 270-310 puts it across the 300-character excerpt cut of an error message.
    """

    encoding: str
    pad: int = 0

    def text(self, secret: str) -> str:
        return "x" * self.pad + ENCODERS[self.encoding](secret)


Piece = str | Reflect


def materialize(node: Any, secret: str) -> Any:
    """``node`` with every Reflect replaced by the secret it stands for."""
    if isinstance(node, Reflect):
        return node.text(secret)
    if isinstance(node, list):
        return [materialize(child, secret) for child in node]
    if isinstance(node, dict):
        return {materialize(k, secret): materialize(v, secret) for k, v in node.items()}
    return node


@dataclasses.dataclass(frozen=True)
class Body:
    """``raw`` bytes, or a JSON value, or text pieces; optionally gzipped after reflection."""

    raw: bytes = b""
    hostile: str = ""  # a name in HOSTILE_BODIES
    json_value: Any = None
    is_json: bool = False
    pieces: tuple[Piece, ...] = ()
    ascii_only: bool = True
    gzipped: bool = False

    def build(self, secret: str) -> bytes:
        if self.is_json:
            value = materialize(self.json_value, secret)
            data = json.dumps(value, ensure_ascii=self.ascii_only).encode("utf-8", "surrogatepass")
        elif self.pieces:
            data = "".join(materialize(list(self.pieces), secret)).encode("utf-8", "surrogatepass")
        else:
            data = HOSTILE_BODIES[self.hostile] if self.hostile else self.raw
        return gzip.compress(data, mtime=0) if self.gzipped else data


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, bytes | Reflect], ...]
    body: Body

    def build(self, secret: str) -> httpx2.Response:
        headers = [
            (name.encode(), value.text(secret).encode() if isinstance(value, Reflect) else value)
            for name, value in self.headers
        ]
        if self.body.gzipped:
            headers.append((b"Content-Encoding", b"gzip"))
        return httpx2.Response(self.status, headers=headers, content=self.body.build(secret))


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes, a few KiB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join([*parts, packer.flush()])


NUMBERISH = [
    "", " ", "0", "-1", "3", " 2 ", "1.5", "1e9", "NaN", "inf", "-inf", "0x10", "²", "٣", "¹²",
    "9" * 30, "9" * 5000, "1" * 4301, "\x00", "\t", "1\x0b",
    "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 99 Foo 9999 99:99:99 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
    "Sun, 06 Nov 1994 08:49:37 +9999", "Tue, 01 Jan 0001 00:00:00 GMT",
    "Sat, 1 Jan 10000 0:0:0 GMT",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
    "application/json; charset=bogus-9", "application/json; charset=", "text/plain",
    "text/html; charset=latin-1", "text/plain; charset=utf-32", "application/problem+json",
    "json", "", "application/octet-stream", "text/plain; charset=\x7f",
]  # fmt: skip
ENCODINGS_HEADER = ["gzip", "deflate", "br", "zstd", "identity", "gzip, gzip", "bogus", "GZIP", ""]
LOCATIONS = [
    "", "/", "https://evil.example/x", "javascript:alert(1)", "\x1b[2J", "http://[::1", "%zz",
    "https://user:pass@evil.example/",
]  # fmt: skip
HEADER_NAMES = [
    "Retry-After", "X-Rate-Limit-Reset", "Date", "Content-Type", "Content-Encoding", "Location",
    "X-Rate-Limit-Remaining", "X-Rate-Limit-Limit", "WWW-Authenticate", "Set-Cookie", "Link",
]  # fmt: skip
# By name, so that a failing case prints short.
HOSTILE_BODIES = {
    "deep list": b"[" * 200_000 + b"]" * 200_000,
    "deep object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "unclosed list": b"[" * 200_000,
    "lone surrogates": b'{"error": "\\ud800", "error_description": "\\udfff"}',
    "5000-digit int": b"[1" + b"0" * 5000 + b"]",
    "5000-digit expires_in": b'{"expires_in": 1' + b"0" * 5000 + b"}",
    "non-finite": b"[1e400, -1e400, NaN, Infinity]",
    "utf-16 bom": b'\xff\xfe{"a": 1}',
    "latin-1 in json": b'{"a": "\xe9\xe8"}',
    "terminal escapes": b"\x1b[2J\x1b[31m\x07\x08\x9b31m",
    "forged lines": b"ok\nFORGED: step succeeded\r\nFORGED: run succeeded",
    "bidi and nel": "\u202eevil\u2066 \u0085FORGED\u2028FORGED".encode(),
    "over the cap": b"a" * (CAP * 3),
    "json over the cap": b'{"a": "' + b"b" * (CAP * 2) + b'"}',
    "gzip magic, then garbage": b"\x1f\x8b\x08\x00garbage",
    "truncated gzip": gzip.compress(b"x" * 100, mtime=0)[:-6],
    "gzip bomb": _gzip_bomb(16 * 1024 * 1024),  # inflates to 256 times the cap
}


def reflections(pad: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Reflect]:
    pads = pad if pad is not None else st.integers(0, 8) | st.integers(270, 310)
    return st.builds(Reflect, st.sampled_from(sorted(ENCODERS)), pads)


printable = st.text(st.characters(codec="utf-8"), max_size=20) | st.just("\nFORGED: ok\x1b[0m")
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    printable,
    reflections(),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(printable | reflections(), children, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    kind = draw(st.sampled_from(["empty", "bytes", "json", "pieces", "hostile"]))
    gzipped = kind in ("json", "pieces", "hostile") and draw(st.booleans())
    if kind == "bytes":
        return Body(raw=draw(st.binary(max_size=600)))
    if kind == "json":
        return Body(json_value=draw(json_values), is_json=True, ascii_only=draw(st.booleans()))
    if kind == "pieces":
        pieces = draw(st.lists(printable | reflections(), min_size=1, max_size=4))
        return Body(pieces=tuple(pieces), gzipped=gzipped)
    if kind == "hostile":
        return Body(hostile=draw(st.sampled_from(sorted(HOSTILE_BODIES))), gzipped=gzipped)
    return Body()


def header_values(name: str) -> st.SearchStrategy[bytes | Reflect]:
    choices: list[str] = {
        "Content-Type": CONTENT_TYPES,
        "Content-Encoding": ENCODINGS_HEADER,
        "Location": LOCATIONS,
    }.get(name, NUMBERISH)
    text = st.sampled_from(choices).map(lambda s: s.encode("utf-8"))
    junk = st.binary(max_size=40).filter(lambda b: not set(b) & {0x0A, 0x0D})
    return st.one_of(text, junk, reflections(st.just(0)))


@st.composite
def headers(draw: st.DrawFn) -> tuple[tuple[str, bytes | Reflect], ...]:
    names = draw(
        st.lists(
            st.sampled_from(HEADER_NAMES) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z"),
            max_size=5,
        )
    )
    return tuple((name, draw(header_values(name))) for name in names)


STATUSES = [200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 429, 500, 502, 503, 504]
answers = st.builds(
    Answer,
    st.sampled_from(STATUSES) | st.integers(100, 999),
    headers(),
    bodies(),
)
# A token endpoint's answers also play with the OAuth fields themselves.
TOKEN_FIELDS = {
    "access_token": st.none() | st.integers() | st.just("") | st.just(["a"]) | printable,
    "token_type": st.sampled_from(["Bearer", "DPoP", "dpop", "", "mac"]) | st.integers(),
    "expires_in": st.sampled_from(["abc", "", "3600", "-5", "1e400", "NaN", None, True, [], {}])
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True),
    "error": st.sampled_from(["invalid_client", "use_dpop_nonce", "invalid_scope", "x"])
    | printable
    | reflections(),
    "error_description": printable | reflections() | json_values,
}


@st.composite
def token_bodies(draw: st.DrawFn) -> Body:
    if draw(st.booleans()):
        return draw(bodies())
    fields = draw(st.lists(st.sampled_from(sorted(TOKEN_FIELDS)), unique=True))
    value = {name: draw(TOKEN_FIELDS[name]) for name in fields}
    return Body(json_value=value, is_json=True, ascii_only=draw(st.booleans()))


token_answers = st.builds(
    Answer, st.sampled_from([200, 400, 401, 429, 500, 503]) | st.integers(100, 999), headers(),
    token_bodies(),
)  # fmt: skip


# -- the server, the job and the run ----------------------------------------------


class HostileServer:
    """Serves scripted answers in turn (the last one repeats), reflecting what it received."""

    def __init__(self, token_script: Sequence[Answer], flow_script: Sequence[Answer]) -> None:
        self.token_script, self.flow_script = token_script, flow_script
        self.assertions: list[str] = []
        self.flow_requests = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == TOKEN_PATH:
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            self.assertions.append(form["client_assertion"])
            return _turn(self.token_script, len(self.assertions)).build(self.assertions[-1])
        self.flow_requests += 1
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        secret = bearer or request.headers.get("x-api-client-token", "")
        return _turn(self.flow_script, self.flow_requests).build(secret)


def _turn(script: Sequence[Answer], number: int) -> Answer:
    return script[min(number, len(script)) - 1]


def issued(access_token: str) -> Answer:
    body = {"token_type": "Bearer", "expires_in": 3600, "access_token": access_token}
    return Answer(
        200, (("Content-Type", b"application/json"),), Body(json_value=body, is_json=True)
    )


ECHO = Answer(200, (), Body(json_value={"you_sent": Reflect("raw")}, is_json=True))

CREDENTIALS = {
    "jwt": "{type: private_key_jwt, client_id: 0oaFUZZ, key_id: fuzz-kid, "
    "private_key: {env: OWF_FUZZ_KEY}}",
    "ct": "{type: client_token, token: {env: OWF_FUZZ_CT}}",
}


def job_text(credential: str, foreach: bool = False) -> str:
    """Step `s` meets the answers (as one call, or four items three at a time); `then`
    sends what it answered on."""
    each = ", foreach: '{{ [1, 2, 3, 4] }}', concurrency: 3" if foreach else ""
    return (
        "version: 1\n"
        f"orgs: {{acme: {{domain: acme.okta.com, credential: {credential}}}}}\n"
        f"credentials: {{{credential}: {CREDENTIALS[credential]}}}\n"
        f"defaults: {{max_response_bytes: {CAP}, timeout: 5,"
        f" retry: {{attempts: {ATTEMPTS}, max_wait: {MAX_WAIT}}}}}\n"
        "steps:\n"
        f"  - {{id: s, flow: '{FLOW_URL}', payload: {{n: 1}}, continue_on_error: true{each},\n"
        "      expect: {that: ['{{ (response.body | tojson | length) >= 0 }}']},\n"
        "      outputs: {whole: '{{ response.body }}', status: '{{ response.status }}',\n"
        "        text: '{{ response.body | string }}',\n"
        "        header: \"{{ response.headers['retry-after'] | default('none') }}\"}}\n"
        # The answer, as data, sent on: templates and JSON encoding meet whatever came back.
        "  - {id: then, when: \"{{ steps.s.status == 'succeeded' }}\",\n"
        f"      flow: '{FLOW_URL}', payload: {{whole: '{{{{ steps.s.outputs.whole }}}}'}}}}\n"
    )


class Plans(dict[str, Plan]):
    def __repr__(self) -> str:  # hypothesis prints its arguments: the plans are not the case
        return "Plans(jwt, ct, jwt-foreach, ct-foreach)"


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    folder = tmp_path_factory.mktemp("fuzz-responses")
    loaded = Plans()
    for credential in CREDENTIALS:
        for foreach in (False, True):
            name = f"{credential}-foreach" if foreach else credential
            path = folder / f"{name}.yaml"
            path.write_text(job_text(credential, foreach), encoding="utf-8")
            loaded[name] = commands.load_plan(path)
    return loaded


@dataclasses.dataclass
class Outcome:
    code: int
    printed: str
    result: RunResult | None
    clock: SteppingClock | FakeClock


def strict_stream() -> io.TextIOWrapper:
    """Like stdout into a pipe: UTF-8, and a character it cannot encode is an error."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def printed_text(stream: io.TextIOWrapper) -> str:
    raw = stream.buffer
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue().decode("utf-8", "replace")


def run_against(
    plan: Plan,
    server: HostileServer,
    env: dict[str, str],
    clock: SteppingClock | FakeClock | None = None,
) -> Outcome:
    """The real stages behind the real boundary; what the console and stderr got.

    On a SteppingClock unless told: a FakeClock lets concurrent foreach workers wait
    side by side.
    """
    clock = clock or SteppingClock()
    out, err = strict_stream(), strict_stream()
    reporter = ConsoleReporter(stream=out, verbose=True)
    results: list[RunResult] = []

    def action() -> int:
        resolved = resolve_credentials(plan)
        result = asyncio.run(_execute(plan, resolved, server, reporter, clock))
        results.append(result)
        reporter.summary(result)
        return int(result.exit_code)

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        for name, value in env.items():
            patch.setenv(name, value)
        with hard_limit(HARD_LIMIT_SECONDS):
            code = boundary.call(action)
    printed = printed_text(out) + printed_text(err)
    return Outcome(code, printed, results[0] if results else None, clock)


async def _execute(
    plan: Plan, resolved: Any, server: HostileServer, reporter: ConsoleReporter, clock: Any
) -> RunResult:
    transport: httpx2.AsyncBaseTransport = httpx2.MockTransport(server)
    if isinstance(clock, FakeClock):
        transport = clock.track(transport)  # time stands still while an exchange is in flight
    async with build_client(transport, redirected=True) as client:
        auths = build_auths(plan, resolved, client, clock)
        return await execute(plan, client, auths, reporter, clock)


# -- what must hold -----------------------------------------------------------------


def crash_details(printed: str) -> str:
    found = re.search(r"details in (\S+)", printed)
    if not found or not Path(found.group(1)).is_file():
        return printed
    traceback = Path(found.group(1)).read_text(encoding="utf-8").splitlines()
    return "\n".join([printed, *traceback[-12:]])  # the innermost frames and the exception


def assert_promises_held(
    outcome: Outcome, server: HostileServer, *tokens: str, items: int = 1
) -> None:
    """``tokens``: the opaque ones (access, client), of which not even a fragment may show."""
    assert outcome.code in (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.AUTH_REFUSED), (
        crash_details(outcome.printed)
    )
    assert server.flow_requests <= MAX_FLOW_REQUESTS * items
    assert len(server.assertions) <= MAX_TOKEN_REQUESTS * items
    assert outcome.clock.now <= MAX_VIRTUAL_SLEEP, outcome.clock.sleeps
    assert_bodies_capped(outcome.result)
    assert_terminal_safe(outcome.printed)
    assert_nothing_leaked(outcome.printed, PRIVATE_KEY, *server.assertions, *tokens)
    assert_no_fragment(outcome.printed, *tokens)


def assert_bodies_capped(result: RunResult | None) -> None:
    """No response kept for templates, reports or the console is over the step's cap."""
    for step in result.steps if result else ():
        for response in [step.response, *(item.response for item in step.results)]:
            if response is None or response.body is None:
                continue
            body = response.body
            text = body if isinstance(body, str) else json.dumps(body, allow_nan=True)
            size = len(text.encode("utf-8", "surrogatepass"))
            assert size <= CAP, f"kept a {size}-byte body; the cap is {CAP}"


def assert_terminal_safe(printed: str) -> None:
    """Server text cannot drive the terminal nor forge a line of ours (escaped, not printed)."""
    unsafe = sorted({ch for ch in printed if not ch.isprintable() and ch != "\n"})
    assert not unsafe, f"printed raw control characters {unsafe}"
    forged = [line for line in printed.split("\n") if line.startswith("FORGED")]
    assert not forged, f"a server forged lines: {forged}"


def assert_nothing_leaked(printed: str, *secrets: str) -> None:
    for secret in secrets:
        for form in encodings(secret):
            assert form not in printed, f"leaked {form!r}"


def assert_no_fragment(printed: str, *tokens: str) -> None:
    """A cut before redaction prints most of a token: 30 of 32 characters are a leak too."""
    for token in tokens:
        for form in encodings(token):
            windows = {form[i : i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)}
            pieces = sorted(w for w in windows if w in printed)
            assert not pieces, f"leaked fragments of {token!r}: {pieces[:3]}"


# -- the properties -------------------------------------------------------------------


@SETTINGS
@given(
    credential=st.sampled_from(sorted(CREDENTIALS)),
    script=st.lists(answers, min_size=1, max_size=4),
)
def test_any_flow_answer_ends_the_run_cleanly_and_leaks_nothing(
    plans: dict[str, Plan], credential: str, script: list[Answer]
) -> None:
    access, client_token = canary("access"), canary("client")
    server = HostileServer([issued(access)], script)
    env = {"OWF_FUZZ_KEY": PRIVATE_KEY, "OWF_FUZZ_CT": client_token}

    outcome = run_against(plans[credential], server, env)

    assert_promises_held(outcome, server, access, client_token)


@SETTINGS
@given(script=st.lists(token_answers, min_size=1, max_size=4), then_issue=st.booleans())
def test_any_token_endpoint_answer_ends_the_run_cleanly_and_leaks_nothing(
    plans: dict[str, Plan], script: list[Answer], then_issue: bool
) -> None:
    access = canary("access")
    tokens = [*script, issued(access)] if then_issue else script
    server = HostileServer(tokens, [ECHO])

    outcome = run_against(plans["jwt"], server, {"OWF_FUZZ_KEY": PRIVATE_KEY})

    assert_promises_held(outcome, server, access)


@SETTINGS
@given(
    credential=st.sampled_from(sorted(CREDENTIALS)),
    script=st.lists(answers, min_size=1, max_size=6),
)
def test_concurrent_items_meeting_any_answers_end_cleanly_and_leak_nothing(
    plans: dict[str, Plan], credential: str, script: list[Answer]
) -> None:
    """Four items, three workers: 429 holds, refreshes and failures meet each other."""
    access, client_token = canary("access"), canary("client")
    server = HostileServer([issued(access)], script)
    env = {"OWF_FUZZ_KEY": PRIVATE_KEY, "OWF_FUZZ_CT": client_token}

    outcome = run_against(plans[f"{credential}-foreach"], server, env, FakeClock())

    assert_promises_held(outcome, server, access, client_token, items=4)


@SETTINGS
@given(script=st.lists(token_answers, min_size=1, max_size=4), then_issue=st.booleans())
def test_concurrent_items_meeting_any_token_endpoint_end_cleanly_and_leak_nothing(
    plans: dict[str, Plan], script: list[Answer], then_issue: bool
) -> None:
    """Three workers share one token source, whatever the endpoint answers them."""
    access = canary("access")
    server = HostileServer([*script, issued(access)] if then_issue else script, [ECHO])

    outcome = run_against(plans["jwt-foreach"], server, {"OWF_FUZZ_KEY": PRIVATE_KEY}, FakeClock())

    assert_promises_held(outcome, server, access, items=4)


UNREACHABLE = Answer(500, (), Body())
INVALID_CLIENT = Body(json_value={"error": "invalid_client"}, is_json=True)
REFUSED = Answer(400, (("Content-Type", b"application/json"),), INVALID_CLIENT)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        pytest.param(UNREACHABLE, ExitCode.OK, id="unreachable"),  # the step continues on error
        pytest.param(REFUSED, ExitCode.AUTH_REFUSED, id="invalid_client"),
    ],
)
def test_fifty_workers_share_one_failed_token_fetch(
    tmp_path: Path, answer: Answer, code: ExitCode
) -> None:
    """One fetch however many callers (DESIGN §3) — when it fails too: fifty workers waiting on
    the token must not each ask again, four times over, one after another."""
    fifty = job_text("jwt", foreach=True).replace("[1, 2, 3, 4]", "range(50) | list")
    path = tmp_path / "fifty.yaml"
    path.write_text(fifty.replace("concurrency: 3", "concurrency: 50"), encoding="utf-8")
    server = HostileServer([answer], [ECHO])
    env = {"OWF_FUZZ_KEY": PRIVATE_KEY}

    outcome = run_against(commands.load_plan(path), server, env, FakeClock())

    assert outcome.code == code, outcome.printed
    assert len(server.assertions) <= TOKEN_ATTEMPTS, f"{len(server.assertions)} token requests"
    assert outcome.printed.count("could not reach the token endpoint") <= 1, outcome.printed


# -- the same, byte by byte over a loopback socket: the real transport parses it ------------

RAW_STATUS_LINES = [
    b"HTTP/1.1 200 OK", b"HTTP/1.1 500 Oops", b"HTTP/1.1 429 Slow down", b"HTTP/1.1 302 Found",
    b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 abc Nope", b"HTTP/1.1 99 Low",
    b"HTTP/1.1 1000 High", b"HTTP/2 200 OK", b"ICY 200 OK", b"HTTP/1.1 200 \xff\xfe\x1b[31m",
    b"", b"\x00\x00",
]  # fmt: skip
RAW_HEADER_LINES = [
    b"Content-Length: -1", b"Content-Length: 5, 6", b"Content-Length: 99999999999999999999",
    b"Content-Length: abc", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: bogus", b"NoColonHere", b" folded: continuation", b": empty-name",
    b"X-\xff\xfe: obs-text name", b"X-Ok: \xff\xfe obs-text value", b"Content-Type: \x7f",
    b"Content-Encoding: gzip", b"Content-Encoding: br", b"Content-Encoding: deflate",
]  # fmt: skip


@st.composite
def raw_answers(draw: st.DrawFn, secret: str) -> tuple[bytes, bytes]:
    """A status line and headers (well-formed or not) and a body, as bytes on the wire."""
    lines = [draw(st.sampled_from(RAW_STATUS_LINES))]
    for name, value in draw(headers()):
        text = value.text(secret).encode() if isinstance(value, Reflect) else value
        lines.append(name.encode() + b": " + text)
    lines += draw(st.lists(st.sampled_from(RAW_HEADER_LINES), max_size=2))
    body = draw(bodies()).build(secret)
    if draw(st.booleans()):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"", b""]), body


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(data=st.data(), to_token=st.booleans())
def test_any_bytes_a_server_sends_end_the_run_cleanly(
    data: st.DataObject,
    to_token: bool,
    hostile: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OWF_HOSTILE_KEY", PRIVATE_KEY)
    path = tmp_path / "job.yaml"
    path.write_text(server_side.job_text(hostile, "    timeout: 5\n"), "utf-8")
    answers = data.draw(st.lists(raw_answers(server_side.TOKEN), min_size=1, max_size=3))
    hostile.script(
        "/token" if to_token else "/flow", *(server_side.raw(*answer) for answer in answers)
    )
    out, clock = strict_stream(), SteppingClock()
    before = len(hostile.received)

    with contextlib.redirect_stderr(out), hard_limit(HARD_LIMIT_SECONDS):
        code = boundary.call(lambda: _socket_run(path, clock, out))

    printed = printed_text(out)
    event(f"exit {code}")  # see --hypothesis-show-statistics
    allowed = (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.AUTH_REFUSED)
    assert code in allowed, crash_details(printed)
    assert len(hostile.received) - before <= MAX_TOKEN_REQUESTS + MAX_FLOW_REQUESTS
    assert sum(clock.sleeps) <= MAX_VIRTUAL_SLEEP, clock.sleeps
    assert_terminal_safe(printed)
    assert_nothing_leaked(printed, PRIVATE_KEY, server_side.TOKEN)
    assert_no_fragment(printed, server_side.TOKEN)


def _socket_run(path: Path, clock: SteppingClock, out: io.TextIOWrapper) -> int:
    done = server_side.run(path, clock, limit=HARD_LIMIT_SECONDS)
    out.write(done.out)
    return int(done.code)
