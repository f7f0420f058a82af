"""Failure classes, response records, and the emulator transport."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from owf_runner.http import (
    USER_AGENT,
    EmulatorTransport,
    HttpResponse,
    build_client,
    classify_exception,
    classify_status,
    to_record,
)


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [
        (429, "throttled"),
        (503, "unavailable"),
        (500, "server"),
        (502, "server"),
        (504, "server"),
        (200, None),
        (204, None),
        (302, None),
        (400, None),
        (401, None),
        (404, None),
        (501, None),
    ],
)
def test_classify_status(status: int, failure_class: str | None) -> None:
    assert classify_status(status) == failure_class


@pytest.mark.parametrize(
    ("exc", "failure_class"),
    [
        (httpx2.ConnectError("refused"), "connect"),
        (httpx2.ConnectTimeout("slow connect"), "connect"),
        (httpx2.PoolTimeout("pool"), "connect"),
        (httpx2.ReadTimeout("slow read"), "timeout"),
        (httpx2.WriteTimeout("slow write"), "timeout"),
        (httpx2.RemoteProtocolError("peer closed"), "dropped"),
        (httpx2.ReadError("reset"), "dropped"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_classify_exception(exc: httpx2.TransportError, failure_class: str) -> None:
    assert classify_exception(exc) == failure_class


def test_to_record_parses_json_and_lowercases_headers() -> None:
    response = httpx2.Response(201, json={"id": "00u1", "n": [1, 2]}, headers={"X-Thing": "v"})

    record = to_record(response)

    assert record.status == 201
    assert record.body == {"id": "00u1", "n": [1, 2]}
    assert record.headers["x-thing"] == "v"
    assert all(name == name.lower() for name in record.headers)


def test_to_record_keeps_text_as_text() -> None:
    record = to_record(httpx2.Response(200, text="hello, not json"))

    assert record.body == "hello, not json"


def test_to_record_empty_body_is_none() -> None:
    assert to_record(httpx2.Response(204)).body is None
    assert to_record(httpx2.Response(200, content=b"")).body is None


def test_as_context() -> None:
    record = HttpResponse(200, {"a": "b"}, {"ok": True})

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


def test_emulator_transport_closes_inner() -> None:
    closed: list[bool] = []

    class Inner(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200)

        async def aclose(self) -> None:
            closed.append(True)

    asyncio.run(EmulatorTransport("http://127.0.0.1:1", Inner()).aclose())

    assert closed == [True]


def test_build_client_with_emulator() -> None:
    async def main() -> None:
        async with build_client("http://127.0.0.1:8765") as client:
            assert client.follow_redirects is False
            assert client.headers["User-Agent"] == USER_AGENT
            assert client.trust_env is False

    asyncio.run(main())


def test_build_client_without_emulator_trusts_env_and_does_not_follow_redirects() -> None:
    async def main() -> None:
        async with build_client() as client:
            assert client.follow_redirects is False
            assert client.trust_env is True

    asyncio.run(main())
