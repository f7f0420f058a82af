"""Credentials → httpx2 auth flows; client assertions; the per-org token cache.

One token per (token URL, client id, scopes), fetched lazily, shared by every
step and concurrent item, refreshed before it expires and once after a 401.
We sign assertions with authlib's ``private_key_jwt_sign`` per request instead
of using ``AsyncOAuth2Client``: a fresh ``jti`` every time, ``exp`` of five
minutes, and a joserfc key object so EC keys work (see DESIGN §3 traps).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.oauth2.rfc7523 import private_key_jwt_sign

from owf_runner.clock import Clock
from owf_runner.errors import AuthError
from owf_runner.failures import (
    EXCERPT,
    Failure,
    FailureClass,
    classify_status,
    requested_wait,
)
from owf_runner.http import BodyTooLarge, Bounds, Received, TooDeep, exchange, parse_json
from owf_runner.model import Algorithm
from owf_runner.plan import RetryPolicy
from owf_runner.redaction import REDACTOR, shown
from owf_runner.retry import retrying
from owf_runner.secrets import SigningKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300
TOKEN_ATTEMPTS = 4
# Every class: a token request runs no flow, so retrying it (with a fresh jti) is always safe.
TOKEN_RETRY = RetryPolicy(
    attempts=TOKEN_ATTEMPTS,
    backoff_initial=0.5,
    backoff_max=8.0,
    max_wait=300.0,  # as `retry.max_wait`: a longer requested wait fails at once
    on=frozenset(FailureClass),
)
# The whole token exchange; an OAuth answer is a few hundred bytes.
TOKEN_BOUNDS = Bounds(deadline=30.0, max_bytes=64 * 1024)

# RFC 6750's b64token: what an `Authorization: Bearer` header can carry.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

_HINTS = {
    "invalid_client": "check `client_id` and `key_id` (kid), and that this public key is uploaded "
    "to the app with client authentication 'Public key / Private key'",
    "invalid_scope": "grant the scope okta.workflows.invoke.manage to the app "
    "(Okta API Scopes tab) or fix `scopes`",
    "unauthorized_client": "allow the Client Credentials grant type in the app's General Settings",
    "access_denied": "the app may not request this token; check its grants and admin roles",
    "invalid_dpop_proof": "untick 'Require Demonstrating Proof of Possession (DPoP) header in "
    "token requests' in the app's General Settings",
}
_HINTS["use_dpop_nonce"] = _HINTS["invalid_dpop_proof"]


@dataclass(frozen=True)
class ClientAssertion:
    """What it takes to sign a ``private_key_jwt`` client assertion."""

    client_id: str
    key_id: str
    algorithm: Algorithm
    key: SigningKey

    def sign(self, token_url: str, now: float) -> str:
        # claims=None on every call: authlib then draws a fresh jti each time.
        assertion: str = private_key_jwt_sign(
            self.key,
            client_id=self.client_id,
            token_endpoint=token_url,
            alg=self.algorithm,
            header={"kid": self.key_id},
            issued_at=int(now),  # the injected clock's, so a rehearsal's clock agrees
            expires_in=ASSERTION_LIFETIME,
        )
        REDACTOR.add(assertion)
        return assertion


@dataclass(frozen=True)
class TokenKey:
    token_url: str
    client_id: str
    scopes: tuple[str, ...]


class TokenEndpointUnreachable(Exception):
    """Every try at the token endpoint failed: the steps that need it fail (exit 1).

    Not an AuthError: Okta did not refuse the credentials, nobody answered (or only "busy").
    """


class TokenSource:
    """The access token of one TokenKey, fetched once however many callers ask."""

    def __init__(
        self,
        client: httpx2.AsyncClient,
        key: TokenKey,
        assertion: ClientAssertion,
        clock: Clock,
        policy: RetryPolicy = TOKEN_RETRY,
    ) -> None:
        self._client = client
        self._clock = clock
        self._policy = policy
        self._key = key
        self._assertion = assertion
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._fetches = 0  # fetches ended so far, succeeded or failed
        self._failure: TokenEndpointUnreachable | AuthError | None = None  # of the last one

    async def token(self) -> str:
        fetches_before = self._fetches
        async with self._lock:
            if self._shares_failure(fetches_before):
                assert self._failure is not None  # noqa: S101 - _shares_failure checked it
                raise type(self._failure)(str(self._failure))
            if self._token is None or self._clock.monotonic() >= self._refresh_at:
                await self._fetch_once()
            assert self._token is not None  # noqa: S101 - _fetch sets it or raises
            return self._token

    def _shares_failure(self, fetches_before: int) -> bool:
        """Fifty workers get the failed fetch's answer, not fifty more rounds of tries at an
        endpoint that is down. A refusal stands for the whole run: asking again would only
        send Okta more assertions to refuse."""
        if isinstance(self._failure, AuthError):
            return True
        return self._failure is not None and self._fetches != fetches_before

    async def _fetch_once(self) -> None:
        self._failure = None
        try:
            await self._fetch()
        except (TokenEndpointUnreachable, AuthError) as failure:
            self._failure = failure
            raise
        finally:
            self._fetches += 1

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after a 401, unless another caller already replaced it."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        tries = 0
        try:
            async for attempt in retrying(self._policy, _unreported, self._clock):
                with attempt:
                    tries += 1
                    answer = await self._request_token()
        except Failure as failure:  # only classed failures reach here: the others are AuthErrors
            raise self._unreachable(failure, tries) from None
        self._accept(answer)

    def _unreachable(self, failure: Failure, tries: int) -> TokenEndpointUnreachable:
        where = f"could not reach the token endpoint {self._key.token_url}"
        reason = failure.message.removeprefix(f"{failure.failure_class}: ")
        return TokenEndpointUnreachable(f"{where} ({_tries(tries)}; {reason})")

    async def _request_token(self) -> Mapping[str, Any]:
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(self._key.scopes),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion.sign(self._key.token_url, self._clock.time()),
        }
        request = self._client.build_request("POST", self._key.token_url, data=form)
        try:
            received = await exchange(self._client, request, TOKEN_BOUNDS)
        except BodyTooLarge as exc:
            raise self._not_oauth(str(exc)) from None
        except Failure as failure:
            if failure.failure_class is None:  # it answered, but nothing readable (bad gzip)
                raise self._not_oauth(failure.message) from None
            raise
        self._raise_if_busy(received)
        return self._parse(received)

    def _not_oauth(self, what: str) -> AuthError:
        return AuthError(f"{self._describe()}: {what}, not an OAuth answer")

    def _raise_if_busy(self, received: Received) -> None:
        """429, 503 and 5xx are not refusals: wait as asked (within max_wait) and try again."""
        status = received.status
        failure_class = classify_status(status) or (FailureClass.SERVER if status >= 500 else None)
        if failure_class is None:
            return
        message = f"HTTP {status}"
        wait = requested_wait(received.headers, self._clock.time())
        if wait is not None and wait > self._policy.max_wait:
            message += f"; the server asked to wait {wait:.0f}s, over {self._policy.max_wait:g}s"
        raise Failure(failure_class, message, requested_wait=wait)

    def _parse(self, received: Received) -> Mapping[str, Any]:
        try:
            # Numbers as floats: a 5000-digit `expires_in` is then inf, i.e. malformed, not fatal.
            body = parse_json(received.content, lenient_numbers=True)
        except (ValueError, TooDeep):
            body = None
        if not isinstance(body, dict):
            raise self._not_oauth(f"HTTP {received.status}")
        if received.status != 200 or "error" in body:
            raise AuthError(_refusal(self._describe(), received.status, body))
        return body

    def _accept(self, answer: Mapping[str, Any]) -> None:
        if str(answer.get("token_type", "")).lower() == "dpop":
            hint = _HINTS["invalid_dpop_proof"]
            raise AuthError(f"{self._describe()}: Okta issued a DPoP-bound token\n  hint: {hint}")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self._describe()}: the token response has no access_token")
        REDACTOR.add(token)
        if not _BEARER_TOKEN.fullmatch(token):  # it could not even travel in a header
            raise AuthError(
                f"{self._describe()}: the access_token is not a bearer token "
                "(RFC 6750: letters, digits and -._~+/ only)"
            )
        lifetime = _lifetime(answer.get("expires_in"))
        self._token = token
        self._refresh_at = self._clock.monotonic() + lifetime - min(60.0, lifetime / 2)

    def _describe(self) -> str:
        return f"token request to {self._key.token_url} (client {self._key.client_id})"


def _unreported(failure: Failure, attempt: int, wait: float) -> None:
    """Token retries have no progress line: the step's own line reports the outcome."""


def _tries(count: int) -> str:
    return f"{count} try" if count == 1 else f"{count} tries"


def _lifetime(expires_in: Any) -> float:
    """Seconds the token lives; a missing or malformed ``expires_in`` means Okta's hour."""
    if isinstance(expires_in, bool):
        return 3600.0
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return 3600.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 3600.0


def _refusal(what: str, status: int, body: Mapping[str, Any]) -> str:
    error = shown(str(body.get("error", f"HTTP {status}")), EXCERPT)
    description = body.get("error_description")
    message = f"{what} refused: {error}"
    if description:
        message += f": {shown(str(description), EXCERPT)}"
    hint = _HINTS.get(error)
    return message + (f"\n  hint: {hint}" if hint else "")


async def ready(auth: httpx2.Auth) -> None:
    """Fetch a bearer token before an exchange starts: its waits are not the flow's deadline."""
    if isinstance(auth, BearerAuth):
        await auth.source.token()


class BearerAuth(httpx2.Auth):
    """``Authorization: Bearer`` from a TokenSource; one refresh after a 401."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The flow did not run: the token was refused before it started.
            self.source.invalidate(token)
            await _discard_body(response)
            request.headers["Authorization"] = f"Bearer {await self.source.token()}"
            yield request


async def _discard_body(response: httpx2.Response) -> None:
    """Close a 401's body unread: httpx would read it whole, and a hostile one is endless."""
    body = response.stream
    response.stream = httpx2.ByteStream(b"")
    if isinstance(body, httpx2.AsyncByteStream):
        await body.aclose()


class ClientTokenAuth(httpx2.Auth):
    """The API Endpoint card's client token, always as a header (the query leaks to logs)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["x-api-client-token"] = self._token
        yield request
