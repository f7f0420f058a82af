"""httpcore2's network backend for owf-run: anyio's sockets, lean on the hot path.

httpcore2's own anyio backend does what this one does, but two of its habits cost more than
a third of owf-run's CPU per request at concurrency 50 (measured with py-spy, bench (d)):

- Each time a request joins or leaves the pool, the pool asks every idle connection whether
  its server has closed it (``get_extra_info("is_readable")``). httpcore2 answered by
  rebuilding the socket's anyio attribute table (a ``getpeername()`` call) and a new poll
  object, per idle connection, per request. Here each stream keeps one poll object for its
  socket: the same ``poll(0)``, the same answer.
- Each read and write entered an anyio cancel scope for its timeout, even with no timeout.
  owf-run sets none (every exchange has one deadline of its own, see ``http.exchange``), so
  here a scope is entered only when a timeout is given.

Errors are httpcore2's, mapped as its anyio backend maps them.
"""

from __future__ import annotations

import contextlib
import select
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls
import httpcore2

_READ_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError)
_WRITE_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
_CONNECT_ERRORS = (OSError, anyio.BrokenResourceError)
_TLS_ERRORS = (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError)


class LeanBackend(httpcore2.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return await _connected(
            lambda: anyio.connect_tcp(host, port, local_host=local_address),
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return await _connected(lambda: anyio.connect_unix(path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


async def _connected(
    connect: Callable[[], Awaitable[anyio.abc.SocketStream]],
    timeout: float | None,
    socket_options: Iterable[httpcore2.SOCKET_OPTION] | None,
) -> LeanStream:
    try:
        with _deadline(timeout):
            stream = await connect()
        return LeanStream.opened(stream, socket_options)
    except TimeoutError as exc:
        raise httpcore2.ConnectTimeout(exc) from exc
    except _CONNECT_ERRORS as exc:
        raise httpcore2.ConnectError(exc) from exc


class LeanStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: anyio.abc.ByteStream, probe: select.poll) -> None:
        self._stream = stream
        self._probe = probe  # watches the socket: see get_extra_info("is_readable")

    @classmethod
    def opened(
        cls,
        stream: anyio.abc.SocketStream,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None,
    ) -> LeanStream:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 (anyio, not Django)
        for option in socket_options or ():
            sock.setsockopt(*option)
        probe = select.poll()
        probe.register(sock.fileno(), select.POLLIN)
        return cls(stream, probe)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with _deadline(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore2.ReadTimeout(exc) from exc
        except _READ_ERRORS as exc:
            raise httpcore2.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            with _deadline(timeout):
                await self._stream.send(buffer)
        except TimeoutError as exc:
            raise httpcore2.WriteTimeout(exc) from exc
        except _WRITE_ERRORS as exc:
            raise httpcore2.WriteError(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with _deadline(timeout):
                tls = await anyio.streams.tls.TLSStream.wrap(
                    self._stream,
                    ssl_context=ssl_context,
                    hostname=server_hostname,
                    standard_compatible=False,
                    server_side=False,
                )
        except Exception as exc:
            await self.aclose()
            if isinstance(exc, TimeoutError):
                raise httpcore2.ConnectTimeout(exc) from exc
            if isinstance(exc, _TLS_ERRORS):
                raise httpcore2.ConnectError(exc) from exc
            raise
        # The TLS stream runs over the same socket: the same probe answers for it.
        return LeanStream(tls, self._probe)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Readable while idle: the server closed it (or sent what it should not have).
            # On a closed descriptor poll says POLLNVAL: not empty either, so not reused.
            return bool(self._probe.poll(0))
        attribute = _ATTRIBUTES.get(info)
        return None if attribute is None else self._stream.extra(attribute, None)  # noqa: S610


def _deadline(timeout: float | None) -> contextlib.AbstractContextManager[Any]:
    """anyio's cancel scope for a timeout; none without one (owf-run's case: see the top)."""
    return contextlib.nullcontext() if timeout is None else anyio.fail_after(timeout)


_ATTRIBUTES: dict[str, Any] = {
    "ssl_object": anyio.streams.tls.TLSAttribute.ssl_object,
    "client_addr": anyio.abc.SocketAttribute.local_address,
    "server_addr": anyio.abc.SocketAttribute.remote_address,
    "socket": anyio.abc.SocketAttribute.raw_socket,
}
