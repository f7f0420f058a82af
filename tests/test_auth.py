"""The token cache and client assertions, over httpx2.MockTransport."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Callable

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
    ready,
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


def test_callers_that_waited_on_a_failed_fetch_share_its_failure() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(502))
    tokens = source(endpoint)

    async def fifty_then_one_more() -> tuple[list[BaseException | str], BaseException | str]:
        waited = await asyncio.gather(*(tokens.token() for _ in range(50)), return_exceptions=True)
        later = await asyncio.gather(tokens.token(), return_exceptions=True)
        return waited, later[0]

    waited, later = asyncio.run(fifty_then_one_more())

    assert {type(answer) for answer in waited} == {TokenEndpointUnreachable}
    assert len({str(answer) for answer in waited}) == 1
    assert isinstance(later, TokenEndpointUnreachable)  # a later step may find it back up
    assert len(endpoint.forms) == 2 * auth.TOKEN_ATTEMPTS  # one round for the fifty, one later


def test_a_refusal_stands_for_every_caller_and_is_not_asked_again() -> None:
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(401, json={"error": "invalid_client"}))
    tokens = source(endpoint)

    async def fifty_then_one_more() -> list[BaseException | str]:
        waited = await asyncio.gather(*(tokens.token() for _ in range(50)), return_exceptions=True)
        return [*waited, *await asyncio.gather(tokens.token(), return_exceptions=True)]

    answers = asyncio.run(fifty_then_one_more())

    assert {type(answer) for answer in answers} == {AuthError}
    assert len(endpoint.forms) == 1  # Okta is sent one assertion to refuse, not 51


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


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "5"}, {"X-Rate-Limit-Reset": str(int(1.7e9) + 5)}],
    ids=["retry-after", "rate-limit-reset"],
)
@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_token_endpoint_is_waited_on_as_it_asks(
    status: int, headers: dict[str, str]
) -> None:
    clock = SteppingClock()  # time() is 1.7e9 + now
    endpoint = FakeTokenEndpoint(
        lambda n: httpx2.Response(status, headers=headers) if n < 2 else ok("t")
    )

    assert asyncio.run(source(endpoint, clock).token()) == "t"
    assert clock.sleeps == [5.0]


def test_a_token_endpoint_asking_for_more_than_max_wait_is_unreachable_at_once() -> None:
    clock = SteppingClock()
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(429, headers={"Retry-After": "301"}))

    with pytest.raises(TokenEndpointUnreachable) as raised:
        asyncio.run(source(endpoint, clock).token())

    assert str(raised.value) == (
        f"could not reach the token endpoint {TOKEN_URL} "
        "(1 try; HTTP 429; the server asked to wait 301s, over 300s)"
    )
    assert clock.sleeps == []


@pytest.mark.parametrize("retry_after", ["²", "-5", "1e999", "NaN", "9" * 5000, "Mon, 99 Foo"])
def test_a_malformed_retry_after_from_the_token_endpoint_means_backoff(retry_after: str) -> None:
    clock = SteppingClock()
    busy = httpx2.Response(503, headers={"Retry-After": retry_after.encode()})  # as sent
    endpoint = FakeTokenEndpoint(lambda n: busy if n < 2 else ok("t"))

    assert asyncio.run(source(endpoint, clock).token()) == "t"
    [wait] = clock.sleeps
    assert 0 < wait <= 8  # the token backoff, not the header


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


class Raw(httpx2.AsyncByteStream):
    """Bytes as they come off the wire: httpx2.Response(content=...) would decode them early."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.content


GZIP = {"Content-Encoding": "gzip"}


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (lambda: Raw(b" " * (64 * 1024 + 1)), "HTTP 200: the response body is over 65536 bytes"),
        (lambda: Raw(b"[" * 30_000 + b"]" * 30_000), "HTTP 200"),  # within 64 KiB
        (
            lambda: Raw(b"junk"),
            "DecodingError: Error -3 while decompressing data: incorrect header check",
        ),
    ],
    ids=["over-64-KiB", "30000-deep", "bad-gzip"],
)
def test_an_unreadable_token_answer_is_not_an_oauth_answer(
    answer: Callable[[], Raw], what: str
) -> None:
    gzip = GZIP if "Decoding" in what else {}
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(200, stream=answer(), headers=gzip))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    assert str(raised.value) == (
        f"token request to {TOKEN_URL} (client 0oaX): {what}, not an OAuth answer"
    )
    assert len(endpoint.forms) == 1


def test_a_refusal_is_shown_escaped_and_cut() -> None:
    body = {"error": "invalid_client\x1b[2J", "error_description": "bad\nforged line" + "x" * 400}
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(401, json=body))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    description = ("bad\\nforged line" + "x" * 400)[:300] + "…"
    assert str(raised.value) == (
        f"token request to {TOKEN_URL} (client 0oaX) refused: invalid_client\\x1b[2J: {description}"
    )


def test_a_token_response_without_an_access_token_is_an_auth_error() -> None:
    body = {"token_type": "Bearer", "expires_in": 3600}
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(200, json=body))

    with pytest.raises(AuthError, match="the token response has no access_token"):
        asyncio.run(source(endpoint).token())


@pytest.mark.parametrize(
    "token", ["tok en-123456", "tok\nen-123456", "tøken-123456", "tok\x00en-123456"]
)
def test_an_access_token_that_cannot_travel_in_a_header_is_an_auth_error(token: str) -> None:
    endpoint = FakeTokenEndpoint(lambda n: ok(token))

    with pytest.raises(AuthError) as raised:
        asyncio.run(source(endpoint).token())

    assert str(raised.value) == (
        f"token request to {TOKEN_URL} (client 0oaX): the access_token is not a bearer token "
        "(RFC 6750: letters, digits and -._~+/ only)"
    )


def test_a_jwt_access_token_is_a_bearer_token() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIwb2EifQ.c2ln-_~+/=="
    endpoint = FakeTokenEndpoint(lambda n: ok(jwt))

    assert asyncio.run(source(endpoint).token()) == jwt


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
    [None, "soon", "", 0, -5, "nan", "inf", [3600], True, {"s": 1}, "1e999", 10**400],
    ids=[
        "missing",
        "text",
        "empty",
        "zero",
        "negative",
        "nan",
        "inf",
        "list",
        "bool",
        "dict",
        "text-beyond-float",
        "int-beyond-float",
    ],
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


def invoke_with(auth: httpx2.Auth, flow: Callable[[httpx2.Request], httpx2.Response]) -> int:
    """POST to a flow answering with ``flow``, through ``auth``; the final status."""

    async def call() -> int:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(flow)) as client:
            response = await client.post("https://x.example/invoke", auth=auth)
            return response.status_code

    return asyncio.run(call())


def test_bearer_auth_refreshes_once_after_a_401() -> None:
    tokens = source(FakeTokenEndpoint())
    seen: list[str] = []

    def flow(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["Authorization"])
        return httpx2.Response(401)

    assert invoke_with(BearerAuth(tokens), flow) == 401
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_client_token_auth_sends_the_token_as_a_header_only() -> None:
    seen: list[httpx2.Request] = []

    def flow(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200)

    invoke_with(ClientTokenAuth("tok-123456"), flow)

    [request] = seen
    assert request.headers["x-api-client-token"] == "tok-123456"
    assert "tok-123456" not in str(request.url)
    assert "Authorization" not in request.headers


def test_an_expires_in_of_5000_digits_is_an_hour_not_a_broken_answer() -> None:
    clock = SteppingClock()
    body = b'{"token_type": "Bearer", "access_token": "t", "expires_in": ' + b"9" * 5000 + b"}"
    endpoint = FakeTokenEndpoint(lambda n: httpx2.Response(200, content=body))
    tokens = source(endpoint, clock)

    async def main() -> list[str]:
        first = await tokens.token()
        clock.now = 3540
        return [first, await tokens.token()]

    assert asyncio.run(main()) == ["t", "t"]
    assert len(endpoint.forms) == 2  # refreshed at Okta's hour, less the margin


def test_a_401_body_is_not_read_before_the_refresh() -> None:
    tokens = source(FakeTokenEndpoint())
    read: list[bytes] = []

    class Endless(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                read.append(b"x")
                yield b"x" * 65536

    def flow(request: httpx2.Request) -> httpx2.Response:
        if request.headers["Authorization"] == "Bearer token-1":
            return httpx2.Response(401, stream=Endless())
        return httpx2.Response(200)

    assert invoke_with(BearerAuth(tokens), flow) == 200
    assert read == []


def test_ready_fetches_a_bearer_token_ahead_and_is_a_no_op_otherwise() -> None:
    endpoint = FakeTokenEndpoint()
    tokens = source(endpoint)

    async def main() -> None:
        await ready(ClientTokenAuth("tok-123456"))
        await ready(httpx2.Auth())
        assert endpoint.forms == []
        await ready(BearerAuth(tokens))

    asyncio.run(main())
    assert len(endpoint.forms) == 1
