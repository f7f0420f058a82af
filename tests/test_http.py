"""Failure classes, response records, the client and the emulator transport."""

from __future__ import annotations

import asyncio
import math

import httpx2
import pytest

from owf_runner.failures import FailureClass, classify_status, status_failure
from owf_runner.http import (
    MAX_JSON_DEPTH,
    URL_CACHE_SIZE,
    USER_AGENT,
    Bounds,
    EmulatorTransport,
    Received,
    TooDeep,
    build_client,
    classify_exception,
    invoke,
    outgoing,
    parse_json,
    real_transport,
    to_record,
    transport_failure,
)
from owf_runner.outcomes import Response
from owf_runner.redaction import MASK, REDACTOR

THROTTLED, UNAVAILABLE, SERVER = (
    FailureClass.THROTTLED,
    FailureClass.UNAVAILABLE,
    FailureClass.SERVER,
)
CONNECT, TIMEOUT, DROPPED = FailureClass.CONNECT, FailureClass.TIMEOUT, FailureClass.DROPPED


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [
        (429, THROTTLED),
        (503, UNAVAILABLE),
        (500, SERVER),
        (502, SERVER),
        (504, SERVER),
        (200, None),
        (204, None),
        (302, None),
        (400, None),
        (401, None),
        (404, None),
        (501, None),
    ],
)
def test_classify_status(status: int, failure_class: FailureClass | None) -> None:
    assert classify_status(status) is failure_class


@pytest.mark.parametrize(
    ("exc", "failure_class"),
    [
        (httpx2.ConnectError("refused"), CONNECT),
        (httpx2.ConnectTimeout("slow connect"), CONNECT),
        (httpx2.PoolTimeout("pool"), CONNECT),
        (httpx2.ReadTimeout("slow read"), TIMEOUT),
        (httpx2.WriteTimeout("slow write"), TIMEOUT),
        (httpx2.RemoteProtocolError("peer closed"), DROPPED),
        (httpx2.ReadError("reset"), DROPPED),
        (httpx2.DecodingError("bad gzip"), None),  # the flow answered: re-sending cannot help
        (httpx2.LocalProtocolError("illegal header"), None),  # ours to fix, not the server's
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_classify_exception(exc: httpx2.RequestError, failure_class: FailureClass | None) -> None:
    assert classify_exception(exc) is failure_class


def test_a_transport_failure_quotes_the_exception_escaped_and_cut() -> None:
    exc = httpx2.RemoteProtocolError("illegal header line: b'\x1b[2J" + "x" * 400 + "'")

    failure = transport_failure(exc)

    assert failure.failure_class is DROPPED
    expected = "illegal header line: b'\\x1b[2J" + "x" * 300
    assert failure.message == f"dropped: RemoteProtocolError: {expected[:300]}…"


def received(
    content: bytes, content_type: str = "application/json", charset: str | None = None
) -> Received:
    return Received(201, {"x-thing": "v"}, content, content_type, charset)


def test_to_record_parses_json() -> None:
    record = to_record(received(b'{"id": "00u1", "n": [1, 2]}'))

    assert isinstance(record, Response)
    assert (record.status, record.headers) == (201, {"x-thing": "v"})
    assert record.body == {"id": "00u1", "n": [1, 2]}


def test_to_record_keeps_text_as_text() -> None:
    assert to_record(received(b"hello, not json", "text/plain")).body == "hello, not json"
    assert to_record(received(b"{nope", "application/json")).body == "{nope"


def test_to_record_decodes_text_by_its_charset() -> None:
    assert to_record(received(b"caf\xe9", "text/plain", "latin-1")).body == "café"


@pytest.mark.parametrize("charset", ["x-no-such", "base64", "idna", "punycode", "utf\x00"])
def test_a_charset_that_cannot_decode_text_falls_back_to_utf8(charset: str) -> None:
    assert to_record(received(b"caf\xe9", "text/plain", charset)).body == "caf\ufffd"


def test_to_record_without_a_content_type_tries_json() -> None:
    assert to_record(received(b"[1]", "")).body == [1]


def test_to_record_empty_body_is_none() -> None:
    assert to_record(received(b"")).body is None


@pytest.mark.parametrize(
    "content",
    [b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"1e999", b"[" + b"9" * 5000 + b"]"],
    ids=["nan", "infinity", "minus-infinity", "beyond-float", "5000-digits"],
)
def test_numbers_json_cannot_carry_leave_the_body_as_text(content: bytes) -> None:
    assert to_record(received(content)).body == content.decode()


def test_json_nested_64_deep_is_read() -> None:
    content = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH

    body = to_record(received(content)).body

    for _ in range(MAX_JSON_DEPTH - 1):
        body = body[0] if body else body
    assert body == []


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 200_000])
def test_json_nested_deeper_is_refused(depth: int) -> None:
    content = b'{"a": ' * depth + b"1" + b"}" * depth

    with pytest.raises(TooDeep) as raised:
        to_record(received(content))

    assert str(raised.value) == "the response JSON is nested more than 64 levels deep"


def test_many_brackets_in_strings_are_not_depth() -> None:
    content = b'{"a": "' + b"[" * 1000 + b'", "b": [[1]]}'

    assert to_record(received(content)).body == {"a": "[" * 1000, "b": [[1]]}


def test_lenient_numbers_read_every_number_as_a_float() -> None:
    content = b'{"a": 3600, "b": ' + b"9" * 5000 + b', "c": NaN, "d": 1e999}'

    value = parse_json(content, lenient_numbers=True)

    assert value["a"] == 3600.0
    assert value["b"] == value["d"] == math.inf
    assert math.isnan(value["c"])


def test_as_context() -> None:
    record = Response(200, {"a": "b"}, {"ok": True})

    assert record.as_context() == {"status": 200, "headers": {"a": "b"}, "body": {"ok": True}}


def send_via_emulator(
    url: str, headers: dict[str, str] | None = None
) -> tuple[httpx2.Request, httpx2.Response]:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": True})

    async def main() -> httpx2.Response:
        transport = EmulatorTransport("http://127.0.0.1:8765", httpx2.MockTransport(handler))
        async with httpx2.AsyncClient(transport=transport) as client:
            return await client.post(url, json={"x": 1}, headers=headers)

    response = asyncio.run(main())
    [request] = seen
    return request, response


def test_emulator_transport_rewrites_origin_and_keeps_host() -> None:
    request, response = send_via_emulator("https://acme.okta.com/oauth2/v1/token?a=1&b=2")

    assert response.json() == {"ok": True}
    assert str(request.url) == "http://127.0.0.1:8765/oauth2/v1/token?a=1&b=2"
    assert request.headers["Host"] == "acme.okta.com"
    assert request.headers["X-Forwarded-Proto"] == "https"
    assert request.content == b'{"x":1}'


def test_emulator_transport_keeps_a_non_default_port_in_host() -> None:
    request, _ = send_via_emulator("https://acme.okta.com:8443/api/flo/x/invoke")

    assert request.url.host == "127.0.0.1"
    assert request.url.port == 8765
    assert request.headers["Host"] == "acme.okta.com:8443"


def test_emulator_transport_keeps_an_existing_forwarded_proto() -> None:
    request, _ = send_via_emulator("https://acme.okta.com/x", headers={"X-Forwarded-Proto": "http"})

    assert request.headers["X-Forwarded-Proto"] == "http"


def test_emulator_transport_sends_each_of_many_urls_to_its_own_path() -> None:
    """Rewritten URLs are remembered; past the cache's size it starts over, never mixing them."""
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200)

    paths = [f"/api/flo/f{n % (URL_CACHE_SIZE + 7)}/invoke" for n in range(2 * URL_CACHE_SIZE)]

    async def main() -> None:
        transport = EmulatorTransport("http://127.0.0.1:8765", httpx2.MockTransport(handler))
        async with httpx2.AsyncClient(transport=transport) as client:
            for path in paths:
                await client.post(f"https://acme.workflows.okta.com{path}")

    asyncio.run(main())

    assert seen == [f"http://127.0.0.1:8765{path}" for path in paths]


@pytest.mark.parametrize(
    ("query", "sent"),
    [
        ({}, "https://acme.okta.com/api/flo/f/invoke#top"),
        ({"q": "a b"}, "https://acme.okta.com/api/flo/f/invoke?q=a+b#top"),
    ],
)
def test_a_flow_urls_own_query_gives_way_to_the_steps_query(
    query: dict[str, str], sent: str
) -> None:
    client = httpx2.AsyncClient()
    url = "https://acme.okta.com/api/flo/f/invoke?old=1#top"

    for _ in range(2):  # the second time from the parsed URL kept for it
        request = outgoing(client, "POST", url, query, {}, b"{}")

        assert str(request.url) == sent
        assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain; charset=latin-1", "cafÃ©"),
        ("text/plain; Charset=latin-1", "cafÃ©"),
        ("text/plain", "café"),  # none named: UTF-8
    ],
)
def test_a_text_answer_is_decoded_by_the_charset_it_names(content_type: str, expected: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"Content-Type": content_type}, content=b"caf\xc3\xa9")

    async def main() -> Response:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            request = client.build_request("POST", "https://acme.okta.com/api/flo/f/invoke")
            return await invoke(client, request, Bounds(5, 1000), httpx2.Auth())

    assert asyncio.run(main()).body == expected


def test_emulator_transport_closes_inner() -> None:
    closed: list[bool] = []

    class Inner(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200)

        async def aclose(self) -> None:
            closed.append(True)

    asyncio.run(EmulatorTransport("http://127.0.0.1:1", Inner()).aclose())

    assert closed == [True]


def test_build_client_for_a_redirecting_transport_ignores_proxy_settings() -> None:
    async def main() -> None:
        inner = httpx2.MockTransport(lambda request: httpx2.Response(200))
        transport = EmulatorTransport("http://127.0.0.1:8765", inner)
        async with build_client(transport, redirected=True) as client:
            assert client.follow_redirects is False
            assert client.headers["User-Agent"] == USER_AGENT
            assert client.trust_env is False

    asyncio.run(main())


def test_build_client_without_redirection_trusts_env_and_does_not_follow_redirects() -> None:
    async def main() -> None:
        async with build_client(real_transport(), redirected=False) as client:
            assert client.follow_redirects is False
            assert client.headers["User-Agent"] == USER_AGENT
            assert client.trust_env is True

    asyncio.run(main())


def test_a_redirect_is_returned_to_the_caller_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(302, headers={"Location": "https://elsewhere.example/"})

    async def main() -> int:
        transport = httpx2.MockTransport(handler)
        async with build_client(transport, redirected=False) as client:
            response = await client.post("https://acme.okta.com/api/flo/f/invoke")
            return response.status_code

    assert asyncio.run(main()) == 302
    assert seen == ["https://acme.okta.com/api/flo/f/invoke"]


# -- status_failure: which answers fail a try, and how they read --------------------

NOW = 1_700_000_000.0


def answer(status: int, body: object = None, **headers: str) -> Response:
    return Response(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_succeeds_when_no_status_is_expected(status: int) -> None:
    assert status_failure(answer(status), None, 300.0, NOW) is None


def test_an_expected_status_succeeds_even_when_it_is_not_2xx() -> None:
    assert status_failure(answer(404), frozenset({200, 404}), 300.0, NOW) is None


def test_a_2xx_that_is_not_expected_fails_and_is_never_retried() -> None:
    # Words no other test registers as a secret: the redactor is one per process.
    body = {"state": "pending-review"}
    failure = status_failure(answer(200, body), frozenset({201}), 300.0, NOW)

    assert failure is not None
    assert failure.failure_class is None
    assert failure.message == 'HTTP 200 (expected 201): {"state": "pending-review"}'


def test_a_client_error_names_the_expected_statuses_in_order() -> None:
    failure = status_failure(answer(400, "bad input"), frozenset({404, 200}), 300.0, NOW)

    assert failure is not None
    assert (failure.failure_class, failure.message) == (
        None,
        "HTTP 400 (expected 200, 404): bad input",
    )


def test_a_redirect_is_a_failure_that_names_the_location() -> None:
    response = answer(302, location="https://login.example/")

    failure = status_failure(response, None, 300.0, NOW)

    assert failure is not None
    assert failure.failure_class is None
    assert failure.message == (
        "HTTP 302 redirect to https://login.example/; redirects are not followed"
    )
    assert failure.response is response


def test_a_redirect_without_a_location() -> None:
    failure = status_failure(answer(301), None, 300.0, NOW)

    assert failure is not None
    assert failure.message == "HTTP 301 redirect to (none); redirects are not followed"


@pytest.mark.parametrize(
    ("status", "failure_class"), [(429, THROTTLED), (503, UNAVAILABLE), (500, SERVER)]
)
def test_retryable_statuses_carry_their_class_and_the_requested_wait(
    status: int, failure_class: FailureClass
) -> None:
    failure = status_failure(answer(status, retry_after="7"), None, 300.0, NOW)

    assert failure is not None
    assert failure.failure_class is failure_class
    assert failure.requested_wait == 7.0
    assert failure.message == f"HTTP {status} (expected 2xx)"


def test_a_rate_limit_reset_is_read_against_now() -> None:
    response = answer(429, x_rate_limit_reset=str(int(NOW) + 42))

    failure = status_failure(response, None, 300.0, NOW)

    assert failure is not None
    assert failure.requested_wait == 42.0


def test_a_requested_wait_over_max_wait_says_so() -> None:
    failure = status_failure(answer(429, retry_after="600"), None, 300.0, NOW)

    assert failure is not None
    assert failure.requested_wait == 600.0
    assert failure.message == (
        "HTTP 429 (expected 2xx); the server asked to wait 600s, over retry.max_wait (300s)"
    )


def test_an_unclassified_status_ignores_wait_headers() -> None:
    failure = status_failure(answer(404, retry_after="5"), None, 300.0, NOW)

    assert failure is not None
    assert (failure.failure_class, failure.requested_wait) == (None, None)


def test_a_long_body_is_cut_at_300_characters() -> None:
    failure = status_failure(answer(400, "x" * 400), None, 300.0, NOW)

    assert failure is not None
    assert failure.message == "HTTP 400 (expected 2xx): " + "x" * 300 + "…"


def test_a_secret_straddling_the_cut_is_masked_whole() -> None:
    secret = "tok-" + "s" * 28  # 32 characters
    REDACTOR.add(secret)
    body = "x" * 290 + secret + "y" * 100  # the cut at 300 falls inside the secret

    failure = status_failure(answer(400, body), None, 300.0, NOW)

    assert failure is not None
    shown_body = ("x" * 290 + MASK + "y" * 100)[:300] + "…"
    assert failure.message == f"HTTP 400 (expected 2xx): {shown_body}"


def test_a_body_cannot_forge_a_line_or_drive_the_terminal() -> None:
    body = "oops\x1b[2J\n12:00:00 step: succeeded\r\x07"

    failure = status_failure(answer(500, body), None, 300.0, NOW)

    assert failure is not None
    assert failure.message == (
        "HTTP 500 (expected 2xx): oops\\x1b[2J\\n12:00:00 step: succeeded\\r\\x07"
    )


def test_a_json_body_is_quoted_as_ascii_json() -> None:
    failure = status_failure(answer(400, {"error": "bad\u202eevil"}), None, 300.0, NOW)

    assert failure is not None  # the bidi override stays an inert \u202e
    assert failure.message == 'HTTP 400 (expected 2xx): {"error": "bad\\u202eevil"}'


def test_a_redirect_location_is_escaped() -> None:
    response = answer(302, location="https://x.example/\x1b]0;owned\x07")

    failure = status_failure(response, None, 300.0, NOW)

    assert failure is not None
    assert failure.message == (
        "HTTP 302 redirect to https://x.example/\\x1b]0;owned\\x07; redirects are not followed"
    )
