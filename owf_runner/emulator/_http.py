"""The HTTP layer: a quiet, keep-alive ThreadingHTTPServer that hands parsed requests to an app.

The app is a plain function Request -> Reply, so the Okta behaviour lives apart from sockets.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 8 * 1024 * 1024  # Okta refuses big payloads too; this only guards the test process


@dataclass(frozen=True)
class Request:
    method: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # seconds to wait before answering (or dropping)


App = Callable[[Request], Reply]


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return Reply(status, all_headers, json.dumps(payload).encode())


class _BadRequest(Exception):
    pass


class _ClientGone(Exception):
    """The client closed before sending the whole request: nothing to answer or record."""


class Server(ThreadingHTTPServer):
    # Handler threads must not keep the process (or stop()) waiting on idle keep-alive clients.
    daemon_threads = True

    # handle_request() is only called once select() says a connection waits; never block.
    timeout = 0

    # socketserver's default backlog of 5 drops connections when a run opens 50 at once
    # (the kernel caps it at net.core.somaxconn).
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.tls = tls
        self.clock = clock  # the Date header agrees with X-Rate-Limit-Reset and token expiry
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        # serve_forever() notices shutdown() only at its next poll; a wake-up socket lets
        # stop() return at once instead (tests start and stop a server per test).
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = False
        super().__init__(address, _Handler)

    def serve(self) -> None:
        """Accept connections until stop_serving() is called."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self and not self._stopping:
                        self.handle_request()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is not None:
            # The handshake happens on first read, in the handler's thread, not here in the
            # accept loop where a slow or refusing client would stall everyone.
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def stop_serving(self) -> None:
        self._stopping = True
        self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; the emulator must stay silent.
        # Errors inside the app are already answered as 500s by the handler.
        return

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut open keep-alive sockets so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection)


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may have closed first
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length on every answer keeps client connections alive.
    protocol_version = "HTTP/1.1"
    server: Server

    def date_time_string(self, timestamp: float | None = None) -> str:
        return super().date_time_string(self.server.clock() if timestamp is None else timestamp)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the client's delayed
        # ACK would add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return  # never write access logs to stderr

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            request = self._read_request()
        except _ClientGone:
            self.close_connection = True
            return
        except _BadRequest as error:
            self.close_connection = True  # the stream position is unknown now
            self._write(
                json_reply(400, {"error": "invalid_request", "error_description": str(error)})
            )
            return
        try:
            reply = self.server.app(request)
        except Exception as error:  # a bug in the emulator must not hang the client
            reply = json_reply(500, {"error": "emulator_error", "error_description": repr(error)})
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            _shutdown(self.connection)
            return
        self._write(reply)

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        return Request(
            method=self.command,
            host=self.headers.get("Host", ""),
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise _BadRequest("The Content-Length header is not a number.") from error
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest(f"The request body must be at most {MAX_BODY} bytes.")
        return self._read_exactly(length)

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise _ClientGone
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as error:
                raise _BadRequest("The chunked request body is malformed.") from error
            total += size
            if total > MAX_BODY:
                raise _BadRequest(f"The request body must be at most {MAX_BODY} bytes.")
            if size == 0:
                self._skip_trailers()
                return b"".join(chunks)
            chunks.append(self._read_exactly(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _skip_trailers(self) -> None:
        while self.rfile.readline(1024).strip():
            pass

    def _write(self, reply: Reply) -> None:
        # 1xx, 204 and 304 answers have no body by definition (RFC 9110), whatever a stub says.
        bodyless = reply.status < 200 or reply.status in (204, 304)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if not bodyless:
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not bodyless:
            self.wfile.write(reply.body)
