"""The network backend's idle probe, against a keep-alive server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import select
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest

from owf_runner.http import real_transport
from owf_runner.network import LeanBackend, LeanStream

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class KeepAliveServer:
    """Answers each request on a connection with ANSWER, keeping the connection open; after
    ``close_after`` answers on one connection it closes it, without saying so in a header."""

    def __init__(self, close_after: int | None = None) -> None:
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.url = ""
        self._handlers: list[asyncio.Task[None]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, close_after: int | None = None) -> AsyncIterator[KeepAliveServer]:
        """The server, listening while the caller's loop body runs; its connections are
        closed (the client hung up, or the server did) before it returns."""
        server = cls(close_after)
        listener = await asyncio.start_server(server._accept, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        server.url = f"http://127.0.0.1:{port}/flow"
        async with listener:
            yield server
        async with asyncio.timeout(10):
            await asyncio.gather(*server._handlers)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.append(asyncio.create_task(self._serve(reader, writer)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for answered in itertools.count(1):
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                writer.write(ANSWER)
                await writer.drain()
                if answered == self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):  # the client hung up
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def readable(sock: socket.socket) -> None:
    """Returns once the socket has something to read (bounded: a broken test fails, not hangs)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    watched = os.dup(sock.fileno())  # the socket's own number is its transport's
    loop.add_reader(watched, ready.set)
    try:
        async with asyncio.timeout(10):
            await ready.wait()
    finally:
        loop.remove_reader(watched)
        os.close(watched)


def reference_answer(sock: socket.socket) -> bool:
    """httpcore2's own answer to `is_readable`, for the same socket."""
    probe = select.poll()
    probe.register(sock.fileno(), select.POLLIN)
    return bool(probe.poll(0))


def test_the_probe_answers_as_httpcore_would_while_idle_and_once_data_waits() -> None:
    async def scenario() -> list[bool]:
        answers = []
        async with KeepAliveServer.running() as server:
            host, port = server.url.split("/")[2].split(":")
            stream = await LeanBackend().connect_tcp(host, int(port))
            sock = stream.get_extra_info("socket")
            answers += [stream.get_extra_info("is_readable"), reference_answer(sock)]
            await stream.write(b"GET /flow HTTP/1.1\r\nHost: x\r\n\r\n")
            await readable(sock)  # the answer waits, unread
            answers += [stream.get_extra_info("is_readable"), reference_answer(sock)]
            await stream.aclose()
            answers.append(stream.get_extra_info("is_readable"))  # closed: never reused
        return answers

    assert asyncio.run(scenario()) == [False, False, True, True, True]


def test_other_questions_go_to_anyio() -> None:
    async def scenario() -> tuple[Any, Any]:
        async with KeepAliveServer.running() as server:
            host, port = server.url.split("/")[2].split(":")
            stream = await LeanBackend().connect_tcp(host, int(port))
            try:
                return stream.get_extra_info("server_addr"), stream.get_extra_info("nonsense")
            finally:
                await stream.aclose()

    server_addr, nonsense = asyncio.run(scenario())
    assert server_addr[0] == "127.0.0.1"
    assert nonsense is None


async def two_requests(close_after: int | None) -> tuple[list[int], int, int, bool]:
    async with KeepAliveServer.running(close_after) as server:
        async with httpx2.AsyncClient(transport=real_transport()) as client:
            first = await client.get(server.url)
            stream = first.extensions["network_stream"]
            sock = stream.get_extra_info("socket")
            if close_after is not None and sock.fileno() != -1:  # not dropped already
                await readable(sock)  # the server's FIN arrived
            second = await client.get(server.url)
        return (
            [first.status_code, second.status_code],
            server.connections,
            server.requests,
            isinstance(stream, LeanStream),
        )


def test_an_idle_connection_is_reused() -> None:
    statuses, connections, requests, probed = asyncio.run(two_requests(close_after=None))
    assert (statuses, connections, requests) == ([200, 200], 1, 2)
    assert probed  # httpx2 still sends through the pool owf-run gave it


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    statuses, connections, requests, probed = asyncio.run(two_requests(close_after=1))
    assert (statuses, connections, requests) == ([200, 200], 2, 2)
    assert probed


@pytest.mark.parametrize("name", ["connect_tcp", "connect_unix_socket", "sleep"])
def test_the_backend_covers_httpcores_interface(name: str) -> None:
    assert getattr(LeanBackend, name) is not getattr(httpcore2.AsyncNetworkBackend, name)


def address(server: KeepAliveServer) -> tuple[str, int]:
    host, port = server.url.split("/")[2].split(":")
    return host, int(port)


def test_a_refused_connection_is_httpcores_connect_error() -> None:
    with socket.socket() as bound:  # bound, never listening: connecting to it is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with pytest.raises(httpcore2.ConnectError):
            asyncio.run(LeanBackend().connect_tcp("127.0.0.1", port))


def test_timeouts_are_httpcores_and_only_enter_a_scope_when_given() -> None:
    async def scenario() -> list[str]:
        raised = []
        async with KeepAliveServer.running() as server:
            stream = await LeanBackend().connect_tcp(*address(server))
            try:
                await stream.read(10, timeout=0)  # the server says nothing unasked
            except httpcore2.ReadTimeout:
                raised.append("read")
            await stream.write(b"GET /flow HTTP/1.1\r\nHost: x\r\n\r\n", timeout=None)
            raised.append(bytes(await stream.read(len(ANSWER), timeout=None)).decode()[:15])
            await stream.aclose()
            try:
                await LeanBackend().connect_tcp(*address(server), timeout=0)
            except httpcore2.ConnectTimeout:
                raised.append("connect")
        return raised

    assert asyncio.run(scenario()) == ["read", "HTTP/1.1 200 OK", "connect"]


def test_reading_a_closed_stream_is_a_read_error_and_writing_one_a_write_error() -> None:
    async def scenario() -> list[type[Exception]]:
        raised: list[type[Exception]] = []
        async with KeepAliveServer.running() as server:
            stream = await LeanBackend().connect_tcp(*address(server))
            await stream.aclose()
            for attempt in (stream.read(10), stream.write(b"x")):
                try:
                    await attempt
                except Exception as exc:
                    raised.append(type(exc))
        return raised

    assert asyncio.run(scenario()) == [httpcore2.ReadError, httpcore2.WriteError]


def test_tls_with_a_server_that_does_not_speak_it_is_a_connect_error() -> None:
    async def scenario() -> bool:
        async with KeepAliveServer.running(close_after=1) as server:
            stream = await LeanBackend().connect_tcp(*address(server))
            await stream.write(b"GET /flow HTTP/1.1\r\nHost: x\r\n\r\n")  # then it hangs up
            with pytest.raises(httpcore2.ConnectError):
                await stream.start_tls(ssl.create_default_context(), "localhost")
            return bool(stream.get_extra_info("is_readable"))  # closed by the failure

    assert asyncio.run(scenario())


def test_a_unix_socket_connects_and_is_probed_too(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, bytes]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ANSWER)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        path = str(tmp_path / "s")
        async with await asyncio.start_unix_server(answer, path):
            stream = await LeanBackend().connect_unix_socket(path)
            idle = stream.get_extra_info("is_readable")
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await stream.read(15)
            await stream.aclose()
        return idle, head

    assert asyncio.run(scenario()) == (False, b"HTTP/1.1 200 OK")
