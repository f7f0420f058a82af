"""A hostile HTTP server on loopback: every answer scripted by the test, byte by byte.

``HostileServer`` listens on 127.0.0.1 (port 0) in a thread of its own and answers each
request with the next ``Answer`` scripted for its path (``server.script("/flow", ...)``);
with none left, ``/token`` gets a good OAuth answer and any other path ``{"ok": true}``.
It records what it received (``server.received``). Every connection is closed after its
answer, so each request is a fresh exchange.

The answers are what a broken or malicious server sends: a raw status line and headers,
bodies that drip, never end, inflate past any cap (``gzip_bomb``), break off mid-way, nest
JSON 200,000 deep, or headers larger than any client takes. Point a job's ``token_url``
and ``flow`` at ``server.url`` (http loopback URLs are allowed) and run it with ``run``:
the real stages, the real transport, an injected clock and a hard time limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import gzip
import io
import itertools
import json
import signal
import threading
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from owf_runner import commands
from owf_runner.clock import Clock
from owf_runner.credentials import build_auths, resolve_credentials
from owf_runner.http import build_client, real_transport
from owf_runner.report import ConsoleReporter
from owf_runner.runner import execute
from tests.conftest import jwt_segments
from tests.fakes import Run

MiB = 1024 * 1024
TOKEN = "tok-hostile-0123456789abcdef"
GOOD_TOKEN = {"token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN}


# -- what the server sends -------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Bytes to send: ``head`` (status line and headers), then each of ``parts``.

    ``every`` seconds pass between parts (a drip); ``hold`` keeps the connection open,
    silent, after the last part until the client gives up.
    """

    head: bytes
    parts: Iterable[bytes] = ()
    every: float = 0.0
    hold: bool = False


def head(status_line: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [status_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode()


def reply(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    """A well-formed answer with a Content-Length."""
    fields = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    return Answer(head(f"HTTP/1.1 {status} Whatever", fields.items()), (body,))


def json_reply(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(value).encode()
    return reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def raw(status_line_and_headers: bytes, *parts: bytes) -> Answer:
    """Exactly these bytes: no header is added."""
    return Answer(status_line_and_headers, parts)


def endless(content_type: str = "application/json", length: int | None = None) -> Answer:
    """Zeros as fast as the client reads them, forever (``length``: what the head claims)."""
    fields = [("Content-Type", content_type), ("Connection", "close")]
    if length is not None:
        fields.append(("Content-Length", str(length)))
    return Answer(head("HTTP/1.1 200 OK", fields), itertools.repeat(b"0" * (64 * 1024)))


def dripping(every: float = 0.05, length: int = 10_000) -> Answer:
    """One byte every ``every`` seconds of a body that claims ``length`` bytes."""
    fields = [("Content-Type", "text/plain"), ("Content-Length", str(length))]
    return Answer(head("HTTP/1.1 200 OK", fields), itertools.repeat(b"x", length), every)


def chunked(*parts: bytes, endless_chunks: bool = False) -> Answer:
    """``Transfer-Encoding: chunked``: each part one chunk, then the last chunk (or never)."""
    fields = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    framed = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts]
    last = [b"0\r\n\r\n"]  # the zero-length chunk that ends the body
    body = itertools.cycle(framed) if endless_chunks else framed + last
    return Answer(head("HTTP/1.1 200 OK", fields), body)


def dropped_mid_body(sent: bytes, length: int) -> Answer:
    """Claims ``length`` bytes, sends ``sent``, then closes the connection."""
    fields = [("Content-Type", "application/json"), ("Content-Length", str(length))]
    return Answer(head("HTTP/1.1 200 OK", fields), (sent,))


def silent() -> Answer:
    """Reads the request, then says nothing at all."""
    return Answer(b"", (), hold=True)


def gzip_bomb(status: int = 200) -> Answer:
    """About 200 KiB on the wire that inflates to 200 MiB."""
    body = _bomb()
    fields = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return reply(status, body, fields)


@functools.cache
def _bomb(inflated: int = 200 * MiB) -> bytes:
    """Compressed once per test session, streaming: 200 MiB of zeros never sit in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(inflated // MiB)]
    return b"".join([*parts, compressor.flush()])


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


def deep_json(depth: int = 200_000, status: int = 200) -> Answer:
    return reply(status, b"[" * depth + b"]" * depth, {"Content-Type": "application/json"})


def huge_headers(size: int = 1 * MiB) -> Answer:
    fields = [("X-Filler", "a" * 1000) for _ in range(size // 1000)]
    return Answer(head("HTTP/1.1 200 OK", [*fields, ("Content-Length", "0")]))


# -- what the server received ---------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))

    def jti(self) -> object:
        return jwt_segments(self.form()["client_assertion"])[1]["jti"]


# -- the server ------------------------------------------------------------------------


@dataclass
class HostileServer:
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _scripts: dict[str, collections.deque[Answer]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to ``path`` with ``answers``, in order."""
        self._scripts[path].extend(answers)

    def paths(self) -> list[str]:
        return [request.path for request in self.received]

    def token_requests(self) -> list[Received]:
        return [request for request in self.received if request.path == "/token"]

    @contextlib.contextmanager
    def running(self) -> Iterator[HostileServer]:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        stop = asyncio.Event()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(self._serve(started, stop),), daemon=True
        )
        thread.start()
        if not started.wait(10):
            raise RuntimeError("the hostile server did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()

    async def _serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await stop.wait()
            server.close()
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            for task in handlers:
                task.cancel()  # dripping, endless and silent answers end here
            await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            self.received.append(request)
            await _send(writer, self._next(request.path))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client gave up: that is the point of most answers
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _next(self, path: str) -> Answer:
        if self._scripts[path]:
            return self._scripts[path].popleft()
        return json_reply(GOOD_TOKEN if path == "/token" else {"ok": True})


async def _read_request(reader: asyncio.StreamReader) -> Received:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in filter(None, lines[1:]):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, urllib.parse.urlsplit(target).path, headers, body)


async def _send(writer: asyncio.StreamWriter, answer: Answer) -> None:
    writer.write(answer.head)
    await writer.drain()
    for part in answer.parts:
        writer.write(part)
        await writer.drain()
        if answer.every:
            await asyncio.sleep(answer.every)
    if answer.hold:
        await asyncio.Event().wait()


# -- a job against it -------------------------------------------------------------------


def job_text(server: HostileServer, step_yaml: str = "", auth: str = "jwt") -> str:
    """One org whose token endpoint and one-step flow are ``server``'s.

    ``auth="jwt"`` signs with the key in $OWF_HOSTILE_KEY; ``"none"`` sends no credential.
    """
    return (
        "version: 1\n"
        f"orgs: {{acme: {{token_url: '{server.url}/token', credential: {auth}}}}}\n"
        "credentials:\n"
        "  none: {type: none}\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaH, key_id: kid-h,\n"
        "        private_key: {env: OWF_HOSTILE_KEY}}\n"
        "steps:\n"
        f"  - id: s\n    flow: {server.url}/flow\n{step_yaml}"
    )


class HardLimit(BaseException):
    """Real time ran out. Not an Exception: no handler in the runner may swallow it."""


@contextlib.contextmanager
def hard_limit(seconds: int) -> Iterator[None]:
    """Interrupt whatever runs after ``seconds`` of real time: a hang fails, never stalls."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise HardLimit(f"still running after {seconds}s of real time")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(job: Path, clock: Clock, limit: float = 20.0) -> Run:
    """Run ``job`` through the real stages and a real transport, on ``clock``.

    ``limit`` (real seconds) bounds the run: a hang fails the test, never the suite.
    """
    plan = commands.load_plan(job)
    resolved = resolve_credentials(plan)
    out = io.StringIO()
    console = ConsoleReporter(stream=out)

    async def main() -> Run:
        # Proxy settings from the environment must not reroute loopback: redirected=True.
        async with build_client(real_transport(), redirected=True) as client:
            auths = build_auths(plan, resolved, client, clock)
            result = await asyncio.wait_for(execute(plan, client, auths, console, clock), limit)
        console.summary(result)
        return Run(result, out.getvalue())

    return asyncio.run(main())
