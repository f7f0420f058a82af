"""Broken and malicious servers, as flows and as the token endpoint (DESIGN §9).

Every answer comes from tests/hostile.py's server over a real loopback socket; the job
runs through the real stages and transport. Waits the runner asks for are on a fake
clock; only the deadlines under test cost real time, and each is under a second.
Whatever the server sends, the run ends with a clear message and its exit code — never
70, never a hang, never the whole of an unbounded body in memory.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from owf_runner import auth
from owf_runner.http import Bounds
from tests.conftest import Cli, ec_key, pem
from tests.fakes import EPOCH, FakeClock, Run
from tests.hostile import (
    TOKEN,
    Answer,
    HostileServer,
    MiB,
    chunked,
    deep_json,
    dripping,
    dropped_mid_body,
    endless,
    gzip_bomb,
    gzipped,
    hard_limit,
    head,
    huge_headers,
    job_text,
    json_reply,
    raw,
    reply,
    run,
    silent,
)

RunCli = Callable[..., Cli]
WriteJob = Callable[..., Path]
NOT_RESENT = " (not re-sent: the flow may have run; `idempotent: true` allows retries)"
CAP_ADVICE = (
    "(counted after decompression); raise `max_response_bytes` (on the step or in `defaults`) "
    "to accept more"
)


@pytest.fixture(autouse=True)
def _hard_limit() -> Iterator[None]:
    """No test here may hang the suite, whatever the server does."""
    with hard_limit(60):
        yield


@pytest.fixture
def job(tmp_path: Path, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> WriteJob:
    """Writes a one-step job against ``hostile``; the argument is extra YAML for the step."""
    monkeypatch.setenv("OWF_HOSTILE_KEY", pem(ec_key()))

    def write(step_yaml: str = "", auth: str = "jwt") -> Path:
        path = tmp_path / "job.yaml"
        path.write_text(job_text(hostile, step_yaml, auth))
        return path

    return write


def error(done: Run) -> str | None:
    """The one step's failure message."""
    return done.result.steps[0].error


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# -- bounded bodies ------------------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_cap(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", gzip_bomb())  # 200 MiB once inflated
    before = peak_rss_mib()

    done = run(job(), fake_clock)

    assert done.code == 1
    assert error(done) == f"HTTP 200: the response body is over 10485760 bytes {CAP_ADVICE}"
    assert peak_rss_mib() - before < 64  # the cap and a chunk, not 200 MiB
    assert hostile.paths() == ["/token", "/flow"]  # never re-sent: the flow answered


def test_an_endless_body_stops_at_a_step_cap(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", endless(length=3 * 1024 * MiB))  # claims 3 GiB

    done = run(job("    max_response_bytes: 1000\n"), fake_clock)

    assert done.code == 1
    assert error(done) == f"HTTP 200: the response body is over 1000 bytes {CAP_ADVICE}"


@pytest.mark.parametrize(("size", "code"), [(1000, 0), (1001, 1)])
def test_the_cap_is_exact_and_counts_decompressed_bytes(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock, size: int, code: int
) -> None:
    body = gzipped(b'"' + b"a" * (size - 2) + b'"')  # a few dozen bytes on the wire
    hostile.script("/flow", reply(200, body, {"Content-Encoding": "gzip"}))

    done = run(job("    max_response_bytes: 1000\n"), fake_clock)

    assert done.code == code, done.out


def test_an_endless_chunked_body_stops_at_the_cap(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", chunked(b"[1,", b"2,", endless_chunks=True))

    done = run(job("    max_response_bytes: 4096\n"), fake_clock)

    assert error(done) == f"HTTP 200: the response body is over 4096 bytes {CAP_ADVICE}"


def test_a_chunked_answer_is_read_whole(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", chunked(b'{"id": ', b'"00u1"}'))

    done = run(job('    outputs: {id: "{{ response.body.id }}"}\n'), fake_clock)

    assert done.code == 0, done.out
    assert done.result.steps[0].outputs == {"id": "00u1"}


# -- the deadline ------------------------------------------------------------------


def test_a_dripping_body_times_out_at_the_deadline(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", dripping(every=0.05))
    started = time.monotonic()

    done = run(job("    timeout: 0.5\n"), fake_clock)

    elapsed = time.monotonic() - started
    assert done.code == 1
    assert error(done) == (
        "timeout: no complete answer within 0.5s (the step's `timeout`)" + NOT_RESENT
    )
    assert 0.5 <= elapsed < 2.0
    assert hostile.paths() == ["/token", "/flow"]


def test_a_server_that_never_answers_times_out(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", silent())

    done = run(job("    timeout: 0.3\n", auth="none"), fake_clock)

    assert error(done) == (
        "timeout: no complete answer within 0.3s (the step's `timeout`)" + NOT_RESENT
    )


# httpcore's anyio backend does not close a socket whose TLS handshake is cancelled (it
# closes on Exception, not on CancelledError): the garbage collector does, with a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_deadline_before_the_request_left_is_connect_and_retried(
    tmp_path: Path, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    # https to a server that reads the TLS hello and never answers: the handshake never ends.
    job = tmp_path / "job.yaml"
    text = job_text(hostile, "    timeout: 0.2\n    retry: {attempts: 2}\n", auth="none")
    job.write_text(text.replace(f"flow: {hostile.url}", f"flow: https://127.0.0.1:{hostile.port}"))
    hostile.script("/", silent(), silent())

    done = run(job, fake_clock)

    assert done.code == 1
    assert error(done) == "connect: could not send the request within 0.2s (the step's `timeout`)"
    assert len(fake_clock.sleeps) == 1  # retried once: the flow cannot have run
    assert "s: attempt 1 failed (connect: could not send the request within 0.2s" in done.out
    gc.collect()  # the leaked sockets' warnings belong to this test, not to a later one


# -- broken answers ----------------------------------------------------------------


def test_a_connection_dropped_mid_body_is_dropped(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", dropped_mid_body(b'{"partial": ', length=1000))

    done = run(job(), fake_clock)

    assert error(done) == (
        "dropped: RemoteProtocolError: peer closed connection without sending complete message "
        "body (received 12 bytes, expected 1000)" + NOT_RESENT
    )


def test_huge_headers_are_refused_not_read(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", huge_headers())

    done = run(job(), fake_clock)

    assert done.code == 1
    assert error(done).startswith("dropped: RemoteProtocolError: ")


def test_a_body_that_does_not_decompress_fails_unretried(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}))

    done = run(job("    idempotent: true\n"), fake_clock)

    assert error(done) == (
        "DecodingError: Error -3 while decompressing data: incorrect header check"
    )
    assert hostile.paths() == ["/token", "/flow"]


def test_a_status_line_that_is_not_http_is_dropped(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", raw(b"HELLO\x1b[2J\r\n\r\n"))

    done = run(job(), fake_clock)

    assert done.code == 1
    message = error(done)
    assert message.startswith("dropped: RemoteProtocolError: ")
    assert "\x1b" not in done.out


def test_an_odd_status_is_a_failure_that_names_it(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", raw(head("HTTP/1.1 999 Whatever", [("Content-Length", "0")])))

    done = run(job(), fake_clock)

    assert error(done) == "HTTP 999 (expected 2xx)"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            lambda: raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nhello"),
            "dropped: RemoteProtocolError: Received server _SWITCH_UPGRADE event without a "
            "pending proposal" + NOT_RESENT,
        ),
        (
            lambda: Answer(b"", itertools.repeat(b"HTTP/1.1 100 Continue\r\n\r\n")),
            "timeout: no complete answer within 0.3s (the step's `timeout`)" + NOT_RESENT,
        ),
        (
            lambda: reply(200, b"x", {"Content-Encoding": "gzip,gzip,gzip,gzip,gzip,gzip"}),
            "DecodingError: Cannot apply more than 5 content encodings.",
        ),
        (
            lambda: reply(
                200, gzipped(gzipped(bytes(64 * MiB))), {"Content-Encoding": "gzip, gzip"}
            ),
            f"HTTP 200: the response body is over 10485760 bytes {CAP_ADVICE}",
        ),
        (
            lambda: raw(b"HTTP/1.1 200 OK\r\nX: a\x00\x1b[2J\r\nContent-Length: 0\r\n\r\n"),
            "dropped: RemoteProtocolError: illegal header line: "
            "bytearray(b'X: a\\x00\\x1b[2J')" + NOT_RESENT,
        ),
    ],
    ids=["101-upgrade", "endless-100-continue", "six-encodings", "gzip-in-gzip", "nul-in-header"],
)
def test_protocol_abuse_ends_the_step_with_a_message(
    job: WriteJob,
    hostile: HostileServer,
    fake_clock: FakeClock,
    answer: Callable[[], Answer],
    expected: str,
) -> None:
    hostile.script("/flow", answer())

    done = run(job("    timeout: 0.3\n"), fake_clock)

    assert done.code == 1
    assert error(done) == expected


def test_json_200000_deep_fails_the_step(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", deep_json(200_000))

    done = run(job(), fake_clock)

    assert done.code == 1
    assert error(done) == "HTTP 200: the response JSON is nested more than 64 levels deep"


# -- what the server asks for --------------------------------------------------------


@pytest.mark.parametrize(
    "wait_header",
    [
        ("Retry-After", "²"),
        ("Retry-After", "-5"),
        ("Retry-After", "1e999"),
        ("Retry-After", "NaN"),
        ("Retry-After", "9" * 5000),
        ("Retry-After", "Mon, 99 Foo 2024 25:61:61 GMT"),
        ("X-Rate-Limit-Reset", "9" * 5000),
        ("X-Rate-Limit-Reset", "-5"),
        ("X-Rate-Limit-Reset", "٣"),
    ],
    ids=lambda header: f"{header[0]}={header[1][:12]}",
)
def test_a_malformed_wait_header_is_absent_so_the_step_backs_off(
    job: WriteJob,
    hostile: HostileServer,
    fake_clock: FakeClock,
    wait_header: tuple[str, str],
) -> None:
    hostile.script("/flow", reply(503, b"", dict([wait_header])))

    done = run(job("    retry: {backoff: {initial: 7, max: 7}}\n"), fake_clock)

    assert done.code == 0, done.out
    assert fake_clock.sleeps == [7.0]  # the backoff, as if no header had come


def test_an_absurd_but_wellformed_wait_fails_at_once(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/flow", reply(429, b"", {"Retry-After": "999999999999999"}))

    done = run(job(), fake_clock)

    assert error(done) == (
        "HTTP 429 (expected 2xx); the server asked to wait 999999999999999s, "
        "over retry.max_wait (300s)"
    )
    assert fake_clock.sleeps == []


def test_cookies_are_never_kept_nor_sent_back(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    cookies = [("Set-Cookie", "session=abc; Path=/"), ("Set-Cookie", "n=²")]
    # The raw answer's socket is closed after it: said so, or the retry may race to reuse it.
    busy = [*cookies, ("Content-Length", "0"), ("Connection", "close")]
    hostile.script("/token", raw(head("HTTP/1.1 503 Busy", busy)))
    hostile.script("/flow", raw(head("HTTP/1.1 503 Busy", busy)))

    done = run(job(), fake_clock)

    assert done.code == 0, done.out
    assert hostile.paths() == ["/token", "/token", "/flow", "/flow"]
    assert [request.headers.get("cookie") for request in hostile.received] == [None] * 4


# -- the token endpoint --------------------------------------------------------------


def test_a_throttled_token_endpoint_is_waited_on_as_it_asks(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script(
        "/token",
        reply(429, b"", {"X-Rate-Limit-Reset": str(EPOCH + 5)}),
        reply(429, b"", {"X-Rate-Limit-Reset": str(EPOCH + 12)}),
    )

    done = run(job(), fake_clock)

    assert done.code == 0, done.out
    assert fake_clock.sleeps == [5.0, 7.0]  # to each reset, on the fake clock
    assert fake_clock.now == 12.0
    tokens = hostile.token_requests()
    assert len(tokens) == 3
    assert len({request.jti() for request in tokens}) == 3  # a fresh assertion each time
    assert hostile.received[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_token_endpoint_asking_for_a_day_fails_the_step_at_once(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    hostile.script("/token", reply(503, b"", {"Retry-After": "86400"}))

    done = run(job(), fake_clock)

    assert done.code == 1
    assert error(done) == (
        f"could not reach the token endpoint {hostile.url}/token "
        "(1 try; HTTP 503; the server asked to wait 86400s, over 300s)"
    )
    assert fake_clock.sleeps == []
    assert hostile.paths() == ["/token"]


@pytest.mark.parametrize(
    "expires_in",
    [b'"abc"', b"1e999", b"-1", b"9" * 5000, b"true", b'{"nested": [3600]}'],
    ids=["text", "beyond-float", "negative", "5000-digits", "bool", "nested"],
)
def test_a_malformed_expires_in_is_an_hour(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock, expires_in: bytes
) -> None:
    body = b'{"token_type": "Bearer", "access_token": "%s", "expires_in": %s}' % (
        TOKEN.encode(),
        expires_in,
    )
    hostile.script("/token", reply(200, body, {"Content-Type": "application/json"}))

    done = run(job(), fake_clock)

    assert done.code == 0, done.out
    assert hostile.received[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_token_endpoint_that_drips_times_out_and_is_retried(
    job: WriteJob,
    hostile: HostileServer,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "TOKEN_BOUNDS", Bounds(deadline=0.1, max_bytes=64 * 1024))
    hostile.script("/token", *(dripping(every=0.05) for _ in range(auth.TOKEN_ATTEMPTS)))

    done = run(job(), fake_clock)

    assert done.code == 1
    assert error(done) == (
        f"could not reach the token endpoint {hostile.url}/token "
        f"({auth.TOKEN_ATTEMPTS} tries; no complete answer within 0.1s)"
    )
    assert len({request.jti() for request in hostile.token_requests()}) == auth.TOKEN_ATTEMPTS
    assert hostile.paths() == ["/token"] * auth.TOKEN_ATTEMPTS


@pytest.mark.parametrize(
    "answer",
    [gzip_bomb, lambda: endless(length=3 * 1024 * MiB), lambda: deep_json(200_000)],
    ids=["gzip-bomb", "endless", "deep-json"],
)
def test_a_token_answer_too_large_or_deep_is_not_an_oauth_answer(
    job: WriteJob, cli: RunCli, hostile: HostileServer, answer: Callable[[], object]
) -> None:
    hostile.script("/token", answer())  # type: ignore[arg-type]

    result = cli(str(job()))

    assert result.code == 4
    assert hostile.paths() == ["/token"]
    assert result.err.startswith(
        f"owf-run: token request to {hostile.url}/token (client 0oaH): HTTP 200"
    )
    assert "not an OAuth answer" in result.err


# -- server text on the terminal --------------------------------------------------------


FORGED = "oops\x1b[2J\n12:00:00 s: succeeded\r"
FORGED_SHOWN = "oops\\x1b[2J\\n12:00:00 s: succeeded\\r"


def test_an_error_body_cannot_forge_a_line(
    job: WriteJob, cli: RunCli, hostile: HostileServer
) -> None:
    hostile.script("/flow", reply(500, FORGED.encode(), {"Content-Type": "text/plain"}))

    result = cli(str(job()))

    assert result.code == 1
    assert f"HTTP 500 (expected 2xx): {FORGED_SHOWN}{NOT_RESENT}" in result.out
    assert "\x1b" not in result.out + result.err
    assert "\n12:00:00 s: succeeded" not in result.out


def test_a_token_refusal_is_shown_escaped(
    job: WriteJob, cli: RunCli, hostile: HostileServer
) -> None:
    refusal = {"error": "invalid_client", "error_description": FORGED}
    hostile.script("/token", json_reply(refusal, status=401))

    result = cli(str(job()))

    assert result.code == 4
    assert f"refused: invalid_client: {FORGED_SHOWN}\n  hint: check `client_id`" in result.err
    assert "\x1b" not in result.out + result.err


def test_a_redirect_location_is_shown_escaped(
    job: WriteJob, cli: RunCli, hostile: HostileServer
) -> None:
    hostile.script("/flow", reply(302, b"", {"Location": "https://x.example/\x1b]0;owned\x07"}))

    result = cli(str(job()))

    assert result.code == 1
    assert (
        "HTTP 302 redirect to https://x.example/\\x1b]0;owned\\x07; redirects are not followed"
    ) in result.out


def test_a_token_in_an_error_body_is_masked_even_across_the_cut(
    job: WriteJob, cli: RunCli, hostile: HostileServer
) -> None:
    body = "x" * 290 + TOKEN + "y" * 100  # the token spans character 300
    hostile.script("/flow", reply(400, body.encode(), {"Content-Type": "text/plain"}))

    result = cli(str(job()))

    assert result.code == 1
    assert f"HTTP 400 (expected 2xx): {'x' * 290}********yy…" in result.out
    assert TOKEN[:6] not in result.out


# -- a 401's body ------------------------------------------------------------------------


def test_an_endless_401_is_not_read_before_the_token_is_refreshed(
    job: WriteJob, hostile: HostileServer, fake_clock: FakeClock
) -> None:
    endless_ok = endless(length=3 * 1024 * MiB)
    unauthorized = dataclasses.replace(
        endless_ok, head=endless_ok.head.replace(b"200 OK", b"401 No")
    )
    hostile.script("/flow", unauthorized)

    done = run(job(), fake_clock)

    assert done.code == 0, done.out
    assert hostile.paths() == ["/token", "/flow", "/token", "/flow"]


# -- a real process ----------------------------------------------------------------------

# The child's own peak: VmHWM starts afresh at exec, where ru_maxrss keeps the forked parent's.
CHILD = """
import sys
from owf_runner.cli import main
try:
    code = main(sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    print("peak-rss-kib", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_owf_run_reads_a_gzip_bomb_in_bounded_memory_and_time(
    job: WriteJob, hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.script("/flow", gzip_bomb())  # 200 MiB once inflated
    env = {**os.environ, "OWF_STATE_DIR": str(tmp_path / "state")}
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(job())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"HTTP 200: the response body is over 10485760 bytes {CAP_ADVICE}" in done.stdout
    peak_mib = int(done.stderr.rsplit("peak-rss-kib ", 1)[1]) / 1024
    assert peak_mib < 150  # the interpreter, its libraries, the cap: not the 200 MiB
