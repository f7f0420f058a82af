"""The token cache and client assertions, over httpx2.MockTransport."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable

import httpx2
import pytest

from owf_runner import auth
from owf_runner.auth import (
    BearerAuth,
    ClientAssertion,
    ClientTokenAuth,
    TokenEndpointUnreachable,
    TokenKey,
    TokenSource,
)
from owf_runner.errors import AuthError, ExitCode
from tests.conftest import ec_key, jwt_segments, rsa_key
from tests.fakes import SteppingClock

TOKEN_URL = "https://acme.okta.com/oauth2/v1/token"
KEY = TokenKey(TOKEN_URL, "0oaX", ("okta.workflows.invoke.manage",))
Answer = Callable[[int], httpx2.Response]


class FakeTokenEndpoint:
    """Answers token requests with ``answer(n)`` and keeps every form it got."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.forms: list[dict[str, str]] = []
        self.answer = answer or (lambda n: ok(f"token-{n}"))

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.forms.append(dict(urllib.parse.parse_qsl(request.content.decode())))
        return self.answer(len(self.forms))

    def jtis(self) -> list[object]:
        return [jwt_segments(form["client_assertion"])[1]["jti"] for form in self.forms]


def ok(token: str, expires_in: object = 3600, token_type: str = "Bearer") -> httpx2.Response:
    body = {"token_type": token_type, "expires_in": expires_in, "access_token": token}
    return httpx2.Response(200, json=body)


def source(endpoint: FakeTokenEndpoint, clock: SteppingClock | None = None) -> TokenSource:
    """A TokenSource on a clock that records its waits (never sleeping through them)."""
    assertion = ClientAssertion("0oaX", "kid-1", "RS256", SHARED_KEY)
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(endpoint))
    return TokenSource(client, KEY, assertion, clock or SteppingClock())


SHARED_KEY = rsa_key()


def test_fifty_concurrent_callers_share_one_token_request() -> None:
    endpoint = FakeTokenEndpoint()
    tokens = source(endpoint)

    async def fifty() -> list[str]:
        return await asyncio.gather(*(tokens.token() for _ in range(50)))

    assert set(asyncio.run(fifty())) == {"token-1"}
    assert len(endpoint.forms) == 1


def test_token_request_form_and_assertion_claims() -> None:
    endpoint = FakeTokenEndpoint()

    asyncio.run(source(endpoint).token())

    form = endpoint.forms[0]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "okta.workflows.invoke.manage"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header, claims = jwt_segments(form["client_assertion"])
    assert header == {"alg": "RS256", "kid": "kid-1", "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == "0oaX"
    assert claims["aud"] == TOKEN_URL
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == 300


def test_an_ec_key_signs_es256() -> None:
    endpoint = FakeTokenEndpoint()
    assertion = ClientAssertion("0oaX", "kid-ec", "ES256", ec_key("P-256"))
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(endpoint))

    asyncio.run(TokenSource(client, KEY, assertion, SteppingClock()).token())

    assert jwt_segments(endpoint.forms[0]["client_assertion"])[0]["alg"] == "ES256"


def test_server_errors_are_retried_with_a_fresh_jti_each_time() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(503) if n < 3 else ok("t"))

    assert asyncio.run(source(endpoint).token()) == "t"
    assert len(endpoint.forms) == 3
    assert len(set(endpoint.jtis())) == 3


def test_a_throttled_token_endpoint_is_retried_not_a_refusal() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(429) if n < 2 else ok("t"))

    assert asyncio.run(source(endpoint).token()) == "t"
    assert len(endpoint.forms) == 2
    assert len(set(endpoint.jtis())) == 2


def test_endpoint_down_for_every_attempt_is_unreachable_not_refused() -> None:
    clock = SteppingClock()
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(502))
    tokens = source(endpoint, clock)

    with pytest.raises(TokenEndpointUnreachable) as raised:
        asyncio.run(tokens.token())

    assert str(raised.value) == (
        f"could not reach the token endpoint {TOKEN_URL} ({auth.TOKEN_ATTEMPTS} tries; HTTP 502)"
    )
    assert not isinstance(raised.value, AuthError)  # Okta refused nothing: not exit 4
    assert len(endpoint.forms) == auth.TOKEN_ATTEMPTS
    assert len(set(endpoint.jtis())) == auth.TOKEN_ATTEMPTS
    # Each wait between tries went to the clock, none to real time; jittered, at most 8 s.
    assert len(clock.sleeps) == auth.TOKEN_ATTEMPTS - 1
    assert all(0 < wait <= 8 for wait in clock.sleeps)
    assert clock.now == pytest.approx(sum(clock.sleeps))


def test_a_token_endpoint_that_refuses_connections_is_unreachable() -> None:
    clock = SteppingClock()

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))
    assertion = ClientAssertion("0oaX", "kid-1", "RS256", SHARED_KEY)
    tokens = TokenSource(client, KEY, assertion, clock)

    with pytest.raises(TokenEndpointUnreachable) as raised:
        asyncio.run(tokens.token())

    assert str(raised.value) == (
        f"could not reach the token endpoint {TOKEN_URL} "
        f"({auth.TOKEN_ATTEMPTS} tries; ConnectError: connection refused)"
    )
    assert len(clock.sleeps) == auth.TOKEN_ATTEMPTS - 1


def test_a_refusal_is_an_auth_error_with_exit_code_4() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(401, json={"error": "invalid_client"}))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    assert raised.value.exit_code == ExitCode.AUTH_REFUSED
    assert int(raised.value.exit_code) == 4


def test_an_answer_that_is_not_oauth_is_an_auth_error() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(200, text="<html>login</html>"))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    assert str(raised.value) == (
        f"token request to {TOKEN_URL} (client 0oaX): HTTP 200, not an OAuth answer"
    )
    assert len(endpoint.forms) == 1


def test_a_token_response_without_an_access_token_is_an_auth_error() -> None:
    body = {"token_type": "Bearer", "expires_in": 3600}
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(200, json=body))

    with pytest.raises(AuthError, match="the token response has no access_token"):
        asyncio.run(source(endpoint).token())


def test_refreshes_before_expiry() -> None:
    clock = SteppingClock()
    endpoint = FakeTokenEndpoint(lambda n: ok(f"token-{n}", expires_in=100))
    tokens = source(endpoint, clock)

    async def main() -> tuple[str, str, str]:
        first = await tokens.token()
        clock.now += 49  # margin is min(60, 100 / 2) = 50 s
        still = await tokens.token()
        clock.now += 2
        fresh = await tokens.token()
        return first, still, fresh

    assert asyncio.run(main()) == ("token-1", "token-1", "token-2")
    assert len(set(endpoint.jtis())) == 2
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "expires_in",
    [None, "soon", "", 0, -5, "nan", "inf", [3600]],
    ids=["missing", "text", "empty", "zero", "negative", "nan", "inf", "list"],
)
def test_a_missing_or_malformed_expires_in_means_an_hour(expires_in: object) -> None:
    clock = SteppingClock()
    endpoint = FakeTokenEndpoint(lambda n: ok(f"token-{n}", expires_in=expires_in))
    tokens = source(endpoint, clock)

    async def main() -> list[str]:
        first = await tokens.token()
        clock.now = 3539  # refreshed 60 s before the hour is up
        still = await tokens.token()
        clock.now = 3540
        return [first, still, await tokens.token()]

    assert asyncio.run(main()) == ["token-1", "token-1", "token-2"]


def test_expires_in_as_a_numeric_string_is_honoured() -> None:
    clock = SteppingClock()
    endpoint = FakeTokenEndpoint(lambda n: ok(f"token-{n}", expires_in="300"))
    tokens = source(endpoint, clock)

    async def main() -> list[str]:
        first = await tokens.token()
        clock.now = 240  # 300 - min(60, 150)
        return [first, await tokens.token()]

    assert asyncio.run(main()) == ["token-1", "token-2"]


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("invalid_client", "check `client_id` and `key_id` (kid)"),
        ("invalid_scope", "grant the scope okta.workflows.invoke.manage"),
        ("unauthorized_client", "allow the Client Credentials grant type"),
        ("invalid_dpop_proof", "untick 'Require Demonstrating Proof of Possession (DPoP) header"),
    ],
)
def test_refusals_carry_okta_error_and_a_hint(error: str, hint: str) -> None:
    body = {"error": error, "error_description": f"described {error}"}
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(400, json=body))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    message = str(raised.value)
    assert f"(client 0oaX) refused: {error}: described {error}\n  hint: {hint}" in message
    assert len(endpoint.forms) == 1  # never retried


def test_a_dpop_bound_token_is_refused_with_the_hint() -> None:
    endpoint = FakeTokenEndpoint(lambda n: ok("t", token_type="DPoP"))

    with pytest.raises(AuthError, match="Okta issued a DPoP-bound token"):
        asyncio.run(source(endpoint).token())


def test_bearer_auth_refreshes_once_after_a_401() -> None:
    endpoint = FakeTokenEndpoint()
    tokens = source(endpoint)
    seen: list[str] = []

    def flow(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["Authorization"])
        return httpx2.Response(401)

    async def call() -> int:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(flow)) as client:
            response = await client.post("https://x.example/invoke", auth=BearerAuth(tokens))
            return response.status_code

    assert asyncio.run(call()) == 401
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_client_token_auth_sends_the_token_as_a_header_only() -> None:
    seen: list[httpx2.Request] = []

    def flow(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200)

    async def call() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(flow)) as client:
            await client.post("https://x.example/invoke", auth=ClientTokenAuth("tok-123456"))

    asyncio.run(call())

    [request] = seen
    assert request.headers["x-api-client-token"] == "tok-123456"
    assert "tok-123456" not in str(request.url)
    assert "Authorization" not in request.headers
