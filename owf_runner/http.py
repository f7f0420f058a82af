"""The shared httpx2 client, its transports (real, or redirected to an emulator), responses."""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore2
import httpx2

from owf_runner import __version__, jsonstrict
from owf_runner.failures import EXCERPT, Failure, FailureClass
from owf_runner.files import CA_BUNDLE, read_text
from owf_runner.network import LeanBackend
from owf_runner.outcomes import Response
from owf_runner.redaction import shown

USER_AGENT = f"owf-runner/{__version__}"
LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's own
URL_CACHE_SIZE = 1024  # distinct URLs parsed once each; more (a URL per item) start over


def real_transport(ca_bundles: Sequence[Path] = ()) -> httpx2.AsyncBaseTransport:
    return PooledTransport(tls_context(ca_bundles))


class PooledTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport on a pool whose network backend is lean (owf_runner.network).

    httpx2 does not take a network backend, so the pool it made is replaced by one that is
    the same but for its backend (tests/test_network.py fails if httpx2 stops using it).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(retries=0, verify=context)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=context,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=LeanBackend(),
        )


def build_client(transport: httpx2.AsyncBaseTransport, *, redirected: bool) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=transport,
        follow_redirects=False,  # a 3xx is a step failure that names the Location
        headers={"User-Agent": USER_AGENT},
        # Proxy settings from the environment would bypass a redirecting transport.
        trust_env=not redirected,
        limits=LIMITS,
        cookies=_NoCookies(),
        # No library timeout: each exchange has one deadline of its own (the step's
        # `timeout`, see exchange()); httpx2's default would cut every read at 5 s.
        timeout=None,
    )


class _NoCookies(http.cookiejar.CookieJar):
    """Flows and token endpoints are APIs: a cookie one sets is never kept nor sent back.

    Kept, a server's cookie would travel with later requests — and one that is not ASCII
    could not even be encoded into them.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        return

    def add_cookie_header(self, request: Any) -> None:
        return


def tls_context(ca_bundles: Sequence[Path]) -> ssl.SSLContext:
    """The default trust store plus each org's `ca_bundle` (a corporate proxy's CA).

    Verification is never switched off: the bundles only add trust anchors.
    """
    context = httpx2.create_ssl_context()
    for bundle in ca_bundles:
        # Read bounded, as the check did: a bundle swapped for a FIFO since then cannot hang us.
        context.load_verify_locations(cadata=read_text(bundle, CA_BUNDLE))
    return context


class EmulatorTransport(httpx2.AsyncBaseTransport):
    """Sends every request to the emulator, keeping its Host and scheme in headers.

    The URL the runner builds (and signs into the assertion's ``aud``) stays the
    real Okta one; only the socket goes to loopback.
    """

    def __init__(self, emulator_url: str, inner: httpx2.AsyncBaseTransport) -> None:
        self._target = httpx2.URL(emulator_url)
        self._inner = inner
        self._redirected: dict[str, httpx2.URL] = {}  # a job calls a few URLs many times

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers.setdefault("X-Forwarded-Proto", request.url.scheme)
        request.url = self._redirect(request.url)
        return await self._inner.handle_async_request(request)

    def _redirect(self, url: httpx2.URL) -> httpx2.URL:
        """``url`` on the emulator's socket, rebuilt once per distinct URL (a parse each)."""
        key = str(url)
        redirected = self._redirected.get(key)
        if redirected is None:
            if len(self._redirected) >= URL_CACHE_SIZE:  # URLs made per item: stay bounded
                self._redirected.clear()
            target = self._target
            redirected = url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
            self._redirected[key] = redirected
        return redirected

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- one bounded exchange ------------------------------------------------------------

MAX_JSON_DEPTH = 64  # Okta flows answer shallow JSON; deeper would strain every later stage


@dataclass(frozen=True)
class Bounds:
    """What one exchange may cost: a deadline for all of it, and the body's size after decoding."""

    deadline: float  # seconds: connect, send and read the whole answer
    max_bytes: int
    setting: str = ""  # the knob that raises the deadline, named in the message


@dataclass(frozen=True)
class Received:
    """A complete answer, its body read within the Bounds (and decompressed)."""

    status: int
    headers: dict[str, str]  # names lower-cased
    content: bytes
    content_type: str
    charset: str | None


class BodyTooLarge(Exception):
    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"HTTP {status}: the response body is over {limit} bytes")
        self.status = status


class TooDeep(jsonstrict.TooDeep):
    """An answer's JSON nested deeper than MAX_JSON_DEPTH."""

    def __str__(self) -> str:
        return f"the response JSON is {super().__str__()}"


async def exchange(
    client: httpx2.AsyncClient,
    request: httpx2.Request,
    bounds: Bounds,
    auth: httpx2.Auth | None = None,
) -> Received:
    """Send ``request`` and read its answer whole, within ``bounds``.

    Failure (classed) when no complete answer came; BodyTooLarge past the size cap.
    The deadline is in the event loop's real time, not the injected Clock's: it bounds
    what sockets do, while the Clock governs the waits the runner chooses (backoff, pacing).
    """
    progress = _Progress()
    request.extensions["trace"] = progress.trace
    try:
        async with asyncio.timeout(bounds.deadline):
            return await _receive(client, request, auth, bounds.max_bytes)
    except TimeoutError:
        raise _deadline_failure(progress.sent, bounds) from None
    except httpx2.RequestError as exc:
        raise transport_failure(exc) from None


class _Progress:
    """Has the request started to leave? (httpcore's trace hook tells.)"""

    def __init__(self) -> None:
        self.sent = False

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.sent = True


def _deadline_failure(sent: bool, bounds: Bounds) -> Failure:
    within = f"within {bounds.deadline:g}s" + (f" ({bounds.setting})" if bounds.setting else "")
    if sent:  # the flow may be running: unknown outcome
        return Failure(FailureClass.TIMEOUT, f"timeout: no complete answer {within}")
    return Failure(FailureClass.CONNECT, f"connect: could not send the request {within}")


async def _receive(
    client: httpx2.AsyncClient, request: httpx2.Request, auth: httpx2.Auth | None, max_bytes: int
) -> Received:
    answer = await client.send(request, auth=auth or httpx2.USE_CLIENT_DEFAULT, stream=True)
    try:
        content = await _read_capped(answer, max_bytes)
    finally:
        await answer.aclose()
    headers = {name.lower(): value for name, value in answer.headers.items()}
    content_type = headers.get("content-type", "")
    # httpx2 parses the header with the email package to find it: only when one is named.
    charset = answer.charset_encoding if "charset" in content_type.lower() else None
    return Received(answer.status_code, headers, content, content_type, charset)


async def _read_capped(answer: httpx2.Response, max_bytes: int) -> bytes:
    """The decoded body, never holding more than ``max_bytes`` plus one decoded chunk."""
    body = bytearray()
    async for chunk in answer.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(answer.status_code, max_bytes)
    return bytes(body)


def transport_failure(exc: httpx2.RequestError) -> Failure:
    failure_class = classify_exception(exc)
    detail = f"{type(exc).__name__}: {shown(str(exc), EXCERPT)}"
    if failure_class is None:
        return Failure(None, detail)
    return Failure(failure_class, f"{failure_class}: {detail}")


def classify_exception(exc: httpx2.RequestError) -> FailureClass | None:
    """Did the request leave? ``connect``: no; ``timeout``/``dropped``: unknown outcome.

    None: retrying cannot help (a body that does not decompress, a request h11 refuses to send).
    """
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return FailureClass.CONNECT
    if isinstance(exc, httpx2.TimeoutException):
        return FailureClass.TIMEOUT
    if isinstance(exc, httpx2.DecodingError | httpx2.LocalProtocolError):
        return None
    return FailureClass.DROPPED


def outgoing(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes | None,
) -> httpx2.Request:
    """The request to send; Failure (never retried) when HTTP cannot carry it.

    Header names and values were checked where they were rendered (``headers.header_problem``).
    """
    if body is not None and not any(name.lower() == "content-type" for name in headers):
        headers = {**headers, "Content-Type": "application/json"}
    try:
        target = _without_query(url)
        # No params: httpx2 would parse the URL again only to add nothing.
        return client.build_request(
            method, target, params=query or None, headers=headers, content=body
        )
    except httpx2.InvalidURL as exc:
        raise Failure(None, f"invalid URL: {shown(str(exc), EXCERPT)}") from None
    except UnicodeEncodeError:  # lone surrogates from an environment or --var that is not UTF-8
        raise Failure(None, "the URL or query holds text that is not UTF-8") from None


@functools.lru_cache(maxsize=URL_CACHE_SIZE)
def _without_query(url: str) -> httpx2.URL:
    """``url`` parsed once: a step sends the same URL for every item, as a rule.

    Its own query is dropped, as httpx2 drops it whenever params are given: `query:` decides.
    """
    return httpx2.URL(url).copy_with(query=None)


async def invoke(
    client: httpx2.AsyncClient, request: httpx2.Request, bounds: Bounds, auth: httpx2.Auth
) -> Response:
    """One try at a flow; Failure when no answer came, or one too large or deep to read."""
    try:
        received = await exchange(client, request, bounds, auth)
    except BodyTooLarge as exc:
        advice = "raise `max_response_bytes` (on the step or in `defaults`) to accept more"
        raise Failure(None, f"{exc} (counted after decompression); {advice}") from None
    try:
        return to_record(received)
    except TooDeep as exc:
        unread = Response(received.status, received.headers, None)
        raise Failure(None, f"HTTP {received.status}: {exc}", unread) from None


# -- what the answer says ----------------------------------------------------------------


def to_record(received: Received) -> Response:
    """The answer as templates see it; TooDeep when its JSON is nested past MAX_JSON_DEPTH."""
    return Response(received.status, received.headers, _body(received))


def _body(received: Received) -> Any:
    """JSON when the flow says so (the Return card does); otherwise the text as is."""
    if not received.content:
        return None
    if "json" not in (received.content_type or "json"):
        return _text(received)
    try:
        return parse_json(received.content)
    except ValueError:  # not JSON, or numbers JSON cannot carry (NaN, 1e999, 5000 digits)
        return _text(received)


def _text(received: Received) -> str:
    try:
        return received.content.decode(received.charset or "utf-8", errors="replace")
    except (LookupError, ValueError):  # a charset Python does not know, or "idna", "\x00"…
        return received.content.decode("utf-8", errors="replace")


def parse_json(content: bytes, lenient_numbers: bool = False) -> Any:
    """JSON, nested at most MAX_JSON_DEPTH deep (TooDeep); ValueError when it is not JSON.

    Strict by default: NaN, Infinity and numbers beyond a float are not JSON values we can
    carry. ``lenient_numbers`` reads every number as a float (inf when huge) instead.
    """
    try:
        return jsonstrict.loads(content, MAX_JSON_DEPTH, lenient_numbers)
    except jsonstrict.TooDeep as exc:
        raise TooDeep(exc.limit) from None
