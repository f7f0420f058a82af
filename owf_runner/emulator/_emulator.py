"""The Okta emulator: token endpoint, flow invocations, stubs, faults and the call record."""

from __future__ import annotations

import json
import math
import re
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from joserfc.jwk import ECKey, RSAKey

from owf_runner.templating import TemplateError, render_value

from . import _assertion
from ._assertion import ASSERTION_TYPE, OAuthError, PublicKey, invalid_client
from ._http import Reply, Request, Server, json_reply
from ._models import Fault, FlowStub, RecordedCall
from ._stubs import load_stub_file

_TOKEN_FAULTS = "\0token"  # noqa: S105 - a fault-count key that no flow id can be
TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 -- a URL path, not a password
INVOKE_SCOPE = "okta.workflows.invoke.manage"
_INVOKE_PATH = re.compile(r"/api/flo/(?P<flow>[^/]+)/invoke")
# Okta marks token answers uncacheable; clients may rely on it.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_DEFAULT_STUB = FlowStub()


@dataclass(frozen=True)
class _IssuedToken:
    client_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class _Outcome:
    """What an invocation resolved to, before it becomes a Reply and a record."""

    reply: Reply
    client_id: str | None = None
    error: str | None = None


class Emulator:
    """A loopback HTTP server that answers like Okta's token and Workflows invoke endpoints."""

    def __init__(
        self,
        token_lifetime: int = 3600,
        *,
        clock: Callable[[], float] = time.time,
        keep_calls: int | None = None,
        on_call: Callable[[RecordedCall], None] | None = None,
    ) -> None:
        """`keep_calls` bounds `calls` to the latest N (None: all of them, as tests want; a
        long-running emulator serving 100,000 calls would otherwise grow without end).
        `on_call` sees every call as it is recorded, kept or not, from the serving threads:
        it must be thread-safe and quick (a benchmark tallies statuses with it).
        """
        if keep_calls is not None and keep_calls < 0:
            raise ValueError(f"keep_calls must be None or at least 0, not {keep_calls}")
        self.token_lifetime = token_lifetime
        self.require_dpop = False
        # Per-flow cap on invocations in any one-second window (Okta allows about 10/s).
        # Off by default so tests are not at the mercy of scheduling jitter.
        self.rate_limit: int | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, PublicKey]] = {}
        self._scopes: dict[str, frozenset[str]] = {}
        self._client_tokens: set[str] = set()
        self._stubs: dict[str, FlowStub] = {}
        self._tokens: dict[str, _IssuedToken] = {}
        self._used_jtis: set[tuple[str, str]] = set()
        self._calls: deque[RecordedCall] = deque(maxlen=keep_calls)
        self._on_call = on_call
        self._fault_counts: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # flow → (tokens, when)
        self._token_faults: tuple[Fault, ...] = ()
        self._server: Server | None = None
        self._scheme = "http"
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        kid: str,
        public_key: RSAKey | ECKey | Mapping[str, Any],
        scopes: Iterable[str] = (INVOKE_SCOPE,),
    ) -> None:
        """Register (another) key of a client; the latest call sets its granted scopes."""
        key = _assertion.to_public_key(public_key)
        with self._lock:
            self._keys.setdefault(client_id, {})[kid] = key
            self._scopes[client_id] = frozenset(scopes)

    def register_client_token(self, token: str) -> None:
        with self._lock:
            self._client_tokens.add(token)

    def set_stub(self, flow_id: str, stub: FlowStub) -> None:
        """Set a flow's stub; its faults count from the next call on."""
        with self._lock:
            self._stubs[flow_id] = stub
            self._fault_counts.pop(flow_id, None)

    def stub(self, flow_id: str) -> FlowStub | None:
        """The stub set for a flow, or None when it would get the default echo."""
        with self._lock:
            return self._stubs.get(flow_id)

    def load_stubs(self, path: Path) -> None:
        """Set every stub in a stub file; a file with any problem (JobError) sets none."""
        for flow_id, stub in load_stub_file(Path(path)).items():
            self.set_stub(flow_id, stub)

    # -- lifecycle ---------------------------------------------------------------------

    def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> str:
        """Serve in a daemon thread; returns the base URL, e.g. http://127.0.0.1:PORT.

        With ``tls`` (a server-side context) it serves https, for tests of certificate checks.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._scheme = "https" if tls else "http"
        server = Server((host, port), self._handle, tls, self._clock)
        thread = threading.Thread(target=server.serve, name="okta-emulator", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self.base_url

    def stop(self) -> None:
        with self._lock:  # serve_forever's finally and a signal handler may both stop
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.stop_serving()
        if thread is not None:
            thread.join()
        server.close_connections()
        server.server_close()

    def wait(self) -> None:
        """Block until stop() is called from another thread (Ctrl-C still interrupts)."""
        thread = self._thread
        while thread is not None and thread.is_alive():
            thread.join(timeout=0.5)  # short joins keep KeyboardInterrupt deliverable

    @contextmanager
    def running(self) -> Iterator[str]:
        base_url = self.start()
        try:
            yield base_url
        finally:
            self.stop()

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else host
        return f"{self._scheme}://{host_text}:{port}"

    # -- what happened -----------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def token_requests(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.kind == "token"]

    def invocations(self, flow_id: str | None = None) -> list[RecordedCall]:
        return [
            call
            for call in self.calls
            if call.kind == "invoke" and (flow_id is None or call.flow_id == flow_id)
        ]

    # -- routing -----------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH:
            return self._handle_token(request)
        match = _INVOKE_PATH.fullmatch(request.path)
        if match is not None:
            return self._handle_invoke(request, unquote(match["flow"]))
        return json_reply(
            404,
            {
                "error": "not_found",
                "error_description": f"No such endpoint: {request.method} {request.path}",
            },
        )

    def _record(
        self,
        kind: Literal["token", "invoke"],
        request: Request,
        reply: Reply,
        **details: Any,
    ) -> None:
        call = RecordedCall(
            kind=kind,
            method=request.method,
            host=request.host,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=request.body,
            status=0 if reply.drop else reply.status,
            received_at=self._clock(),
            **details,
        )
        with self._lock:
            self._calls.append(call)
        if self._on_call is not None:
            self._on_call(call)

    # -- token endpoint ----------------------------------------------------------------

    def set_token_faults(self, *faults: Fault) -> None:
        """Faults for the next token requests (an outage of the token endpoint)."""
        with self._lock:
            self._token_faults = tuple(faults)
            self._fault_counts.pop(_TOKEN_FAULTS, None)

    def _handle_token(self, request: Request) -> Reply:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        claims = _peek_claims(form.get("client_assertion", ""))
        client_id = claims.get("iss") if claims else None
        jti = claims.get("jti") if claims else None
        fault = self._next_fault(_TOKEN_FAULTS, self._token_faults)
        try:
            # A faulty endpoint answers before it looks at the assertion: its jti stays unused.
            reply = self._token_fault(request, fault) if fault else self._grant(request, form)
            error = None
        except OAuthError as refusal:
            reply = _oauth_error_reply(refusal, _NO_STORE)
            error = refusal.error
        self._record(
            "token",
            request,
            reply,
            client_id=client_id if isinstance(client_id, str) else None,
            jti=jti if isinstance(jti, str) else None,
            claims=claims,
            error=error,
        )
        return reply

    def _token_fault(self, request: Request, fault: Fault) -> Reply:
        if fault.drop:
            return Reply(0, drop=True, delay=fault.delay)
        reply = self._fault_reply(request, fault, fault.status or 503)
        return Reply(reply.status, reply.headers, reply.body, delay=fault.delay)

    def _grant(self, request: Request, form: Mapping[str, str]) -> Reply:
        if request.method != "POST":
            raise OAuthError("invalid_request", "The token endpoint accepts POST only.", 405)
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise OAuthError(
                "invalid_request",
                "The request Content-Type must be application/x-www-form-urlencoded.",
            )
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server. "
                "Configured grant types: [client_credentials].",
            )
        client_id = self._authenticate(request, form)
        scopes = self._granted_scopes(client_id, form.get("scope", ""))
        self._check_dpop(request)
        return self._issue(client_id, scopes)

    def _authenticate(self, request: Request, form: Mapping[str, str]) -> str:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise invalid_client(f"The client_assertion_type must be {ASSERTION_TYPE}.")
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise invalid_client(
                "Client authentication failed. Either the client or the client credentials "
                "are invalid."
            )
        with self._lock:
            keys = {client: dict(by_kid) for client, by_kid in self._keys.items()}
        verified = _assertion.verify(
            assertion, _token_url(request, self._scheme), keys, self._clock()
        )
        with self._lock:
            # Check and mark in one step: two concurrent requests with one jti get one token.
            if (verified.client_id, verified.jti) in self._used_jtis:
                raise invalid_client("The client_assertion token has already been used.")
            self._used_jtis.add((verified.client_id, verified.jti))
        return verified.client_id

    def _granted_scopes(self, client_id: str, scope: str) -> tuple[str, ...]:
        requested = scope.split()
        if not requested:
            raise OAuthError(
                "invalid_scope",
                "The authorization server resource does not have any configured default "
                "scopes, 'scope' must be provided.",
            )
        with self._lock:
            granted = self._scopes.get(client_id, frozenset())
        missing = [name for name in requested if name not in granted]
        if missing:
            raise OAuthError(
                "invalid_scope",
                f"The following scopes are not granted to the client: {' '.join(missing)}",
            )
        return tuple(dict.fromkeys(requested))  # as asked, without repeats

    def _check_dpop(self, request: Request) -> None:
        if "dpop" in request.headers:
            # Honest refusal rather than a DPoP-bound token the invoke side could not check.
            raise OAuthError("invalid_dpop_proof", "This emulator does not verify DPoP proofs.")
        if self.require_dpop:
            raise OAuthError("invalid_dpop_proof", "The DPoP proof JWT header is missing.")

    def _issue(self, client_id: str, scopes: tuple[str, ...]) -> Reply:
        token = secrets.token_urlsafe(32)
        issued = _IssuedToken(client_id, frozenset(scopes), self._clock() + self.token_lifetime)
        with self._lock:
            self._tokens[token] = issued
        body = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": token,
            "scope": " ".join(scopes),
        }
        return json_reply(200, body, _NO_STORE)

    # -- invoke endpoint ---------------------------------------------------------------

    def _handle_invoke(self, request: Request, flow_id: str) -> Reply:
        with self._lock:
            stub = self._stubs.get(flow_id, _DEFAULT_STUB)
        outcome = self._invoke(request, flow_id, stub)
        self._record(
            "invoke",
            request,
            outcome.reply,
            flow_id=flow_id,
            client_id=outcome.client_id,
            error=outcome.error,
        )
        return outcome.reply

    def _invoke(self, request: Request, flow_id: str, stub: FlowStub) -> _Outcome:
        if request.method not in ("GET", "POST"):
            reply = json_reply(405, {"error": "method_not_allowed"}, {"Allow": "GET, POST"})
            return _Outcome(reply)
        try:
            client_id = self._authorize(request, stub)
        except OAuthError as refusal:
            return _Outcome(_invoke_refusal(refusal, stub), error=refusal.error)
        limited = self._rate_limited(flow_id)
        if limited is not None:
            return _Outcome(limited, client_id)
        return _Outcome(self._answer(request, flow_id, stub), client_id)

    def _authorize(self, request: Request, stub: FlowStub) -> str | None:
        """The client id behind the call (None when not OAuth); raises OAuthError if refused."""
        if stub.effective_security == "none":
            return None
        if stub.effective_security == "client_token":
            with self._lock:
                known = request.headers.get("x-api-client-token") in self._client_tokens
            if not known:
                raise OAuthError(
                    "invalid_token", "The x-api-client-token header is missing or invalid.", 401
                )
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise OAuthError("invalid_token", "The access token is missing.", 401)
        with self._lock:
            issued = self._tokens.get(token.strip())
        if issued is None:
            raise OAuthError("invalid_token", "The access token is invalid.", 401)
        if issued.expires_at <= self._clock():
            raise OAuthError("invalid_token", "The access token is expired.", 401)
        if INVOKE_SCOPE not in issued.scopes:
            raise OAuthError(
                "insufficient_scope", f"The access token lacks the {INVOKE_SCOPE} scope.", 403
            )
        return issued.client_id

    def _rate_limited(self, flow_id: str) -> Reply | None:
        """A token bucket per flow: `rate_limit` calls a second, bursts up to that many.

        Evenly paced traffic at the limit always finds a token, so it passes even
        with scheduling jitter; a burst of more than the limit gets 429s.
        """
        limit = self.rate_limit
        if limit is None:
            return None
        with self._lock:  # read the clock under the lock: refills happen in time order
            now = self._clock()
            tokens, then = self._buckets.get(flow_id, (float(limit), now))
            tokens = min(float(limit), tokens + (now - then) * limit)
            allowed = tokens >= 1.0
            self._buckets[flow_id] = (tokens - 1.0 if allowed else tokens, now)
        if allowed:
            return None
        headers = {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": str(math.ceil(now + (1.0 - tokens) / limit)),
        }
        return json_reply(429, {"error": "too_many_requests"}, headers)

    def _answer(self, request: Request, flow_id: str, stub: FlowStub) -> Reply:
        fault = self._next_fault(flow_id, stub.faults)
        if fault is None:
            return self._stub_reply(request, stub, {})
        if fault.drop:
            return Reply(0, drop=True, delay=fault.delay)
        if fault.status is None:
            reply = self._stub_reply(request, stub, fault.headers)
        else:
            reply = self._fault_reply(request, fault, fault.status)
        return Reply(reply.status, reply.headers, reply.body, delay=fault.delay)

    def _next_fault(self, key: str, faults: tuple[Fault, ...]) -> Fault | None:
        if not faults:
            return None
        with self._lock:
            count = self._fault_counts.get(key, 0) + 1
            self._fault_counts[key] = count
        for fault in faults:  # consumed in order: each covers the next `times` calls
            if count <= fault.times:
                return fault
            count -= fault.times
        return None

    def _fault_reply(self, request: Request, fault: Fault, status: int) -> Reply:
        try:
            context = self._context(request)
            headers = _render_headers(fault.headers, context)
            body = render_value(fault.body, context)
        except TemplateError as error:
            return _template_error(error)
        if body is None:
            body = {"error": f"injected fault {status}"}
        return _body_reply(status, headers, body)

    def _stub_reply(
        self, request: Request, stub: FlowStub, extra_headers: Mapping[str, str]
    ) -> Reply:
        parsed_ok, parsed = _parse_json(request.body)
        try:
            context = self._context(request)
            headers = _render_headers({**stub.headers, **extra_headers}, context)
            if stub.body is not None:
                return _body_reply(stub.status, headers, render_value(stub.body, context))
        except TemplateError as error:
            return _template_error(error)
        if not stub.echo:
            return Reply(stub.status, headers)
        if request.method == "GET":
            return _body_reply(stub.status, headers, dict(request.query))
        if not parsed_ok:
            return json_reply(
                400,
                {"error": "invalid_request", "error_description": "The request body is not JSON."},
            )
        return _body_reply(stub.status, headers, {} if parsed is None else parsed)

    def _context(self, request: Request) -> dict[str, Any]:
        return {
            "request": {
                "body": _parse_json(request.body)[1],
                "query": dict(request.query),
                "headers": dict(request.headers),
                "method": request.method,
                "path": request.path,
            },
            # Epoch seconds, for headers such as X-Rate-Limit-Reset: "{{ epoch() + 1 }}".
            "epoch": lambda: int(self._clock()),
        }


def _token_url(request: Request, scheme: str) -> str:
    # Behind the runner's emulation rewrite the original scheme arrives as X-Forwarded-Proto.
    proto = request.headers.get("x-forwarded-proto", scheme)
    return f"{proto}://{request.host}{TOKEN_PATH}"


def _peek_claims(assertion: str) -> dict[str, Any] | None:
    if not assertion:
        return None
    try:
        return _assertion.peek(assertion)[1]
    except OAuthError:
        return None


def _oauth_error_reply(refusal: OAuthError, headers: Mapping[str, str]) -> Reply:
    body = {"error": refusal.error, "error_description": refusal.description}
    return json_reply(refusal.status, body, headers)


def _invoke_refusal(refusal: OAuthError, stub: FlowStub) -> Reply:
    headers: dict[str, str] = {}
    if stub.effective_security == "oauth2":
        headers["WWW-Authenticate"] = (
            f'Bearer error="{refusal.error}", error_description="{refusal.description}"'
        )
    return _oauth_error_reply(refusal, headers)


def _render_headers(headers: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(render_value(value, context)) for name, value in headers.items()}


def _body_reply(status: int, headers: Mapping[str, str], body: Any) -> Reply:
    """JSON unless the stub names a non-JSON Content-Type for a text body (Return Raw)."""
    content_type = next(
        (value for name, value in headers.items() if name.lower() == "content-type"), None
    )
    if isinstance(body, str) and content_type is not None and "json" not in content_type:
        return Reply(status, headers, body.encode())
    all_headers = dict(headers) if content_type else {**headers, "Content-Type": "application/json"}
    return Reply(status, all_headers, json.dumps(body).encode())


def _template_error(error: TemplateError) -> Reply:
    description = f"The stub's template failed: {error}"
    return json_reply(500, {"error": "stub_template_error", "error_description": description})


def _parse_json(body: bytes) -> tuple[bool, Any]:
    """(parsed?, value); an empty body parses to None."""
    if not body.strip():
        return True, None
    try:
        return True, json.loads(body)
    except ValueError:
        return False, None
