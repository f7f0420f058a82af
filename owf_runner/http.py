"""The shared httpx2 client, its transports (real, or redirected to an emulator), responses."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2

from owf_runner import __version__
from owf_runner.failures import FailureClass
from owf_runner.outcomes import Response

USER_AGENT = f"owf-runner/{__version__}"


def real_transport(ca_bundles: Sequence[Path] = ()) -> httpx2.AsyncBaseTransport:
    return httpx2.AsyncHTTPTransport(retries=0, verify=tls_context(ca_bundles))


def build_client(transport: httpx2.AsyncBaseTransport, *, redirected: bool) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=transport,
        follow_redirects=False,  # a 3xx is a step failure that names the Location
        headers={"User-Agent": USER_AGENT},
        # Proxy settings from the environment would bypass a redirecting transport.
        trust_env=not redirected,
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


def to_record(response: httpx2.Response) -> Response:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Response(response.status_code, headers, _body(response))


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


def classify_exception(exc: httpx2.TransportError) -> FailureClass:
    """Did the request leave? ``connect``: no; ``timeout``/``dropped``: unknown outcome."""
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return FailureClass.CONNECT
    if isinstance(exc, httpx2.TimeoutException):
        return FailureClass.TIMEOUT
    return FailureClass.DROPPED
