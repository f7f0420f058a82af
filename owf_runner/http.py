"""The shared httpx2 client, emulator redirection, and failure classes."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from owf_runner import __version__

USER_AGENT = f"owf-runner/{__version__}"


def build_client(
    emulator_url: str | None = None, ca_bundles: Sequence[Path] = ()
) -> httpx2.AsyncClient:
    transport: httpx2.AsyncBaseTransport = httpx2.AsyncHTTPTransport(
        retries=0, verify=tls_context(ca_bundles)
    )
    if emulator_url:
        transport = EmulatorTransport(emulator_url, transport)
    return httpx2.AsyncClient(
        transport=transport,
        follow_redirects=False,  # a 3xx is a step failure that names the Location
        headers={"User-Agent": USER_AGENT},
        # Proxy settings from the environment would bypass the emulator transport.
        trust_env=emulator_url is None,
        limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
    )


def tls_context(ca_bundles: Sequence[Path]) -> ssl.SSLContext:
    """The default trust store plus each org's `ca_bundle` (a corporate proxy's CA).

    Verification is never switched off: the bundles only add trust anchors.
    """
    context = httpx2.create_ssl_context()
    for bundle in ca_bundles:
        context.load_verify_locations(cafile=bundle)
    return context


class EmulatorTransport(httpx2.AsyncBaseTransport):
    """Sends every request to the emulator, keeping its Host and scheme in headers.

    The URL the runner builds (and signs into the assertion's ``aud``) stays the
    real Okta one; only the socket goes to loopback.
    """

    def __init__(self, emulator_url: str, inner: httpx2.AsyncBaseTransport) -> None:
        self._target = httpx2.URL(emulator_url)
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers.setdefault("X-Forwarded-Proto", request.url.scheme)
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class HttpResponse:
    """What templates see as ``response``."""

    status: int
    headers: Mapping[str, str]
    body: Any

    def as_context(self) -> dict[str, Any]:
        return {"status": self.status, "headers": dict(self.headers), "body": self.body}


def to_record(response: httpx2.Response) -> HttpResponse:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return HttpResponse(response.status_code, headers, _body(response))


def _body(response: httpx2.Response) -> Any:
    """JSON when the flow says so (the Return card does); otherwise the text as is."""
    if not response.content:
        return None
    if "json" not in response.headers.get("content-type", "json"):
        return response.text
    try:
        return json.loads(response.content)
    except ValueError:
        return response.text


# -- failure classes (DESIGN §2 Retry) -------------------------------------------

_STATUS_CLASSES = {
    429: "throttled",
    503: "unavailable",
    500: "server",
    502: "server",
    504: "server",
}


def classify_status(status: int) -> str | None:
    return _STATUS_CLASSES.get(status)


def classify_exception(exc: httpx2.TransportError) -> str:
    """Did the request leave? ``connect``: no; ``timeout``/``dropped``: unknown outcome."""
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return "connect"
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    return "dropped"
