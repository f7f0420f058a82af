"""The built-in Okta emulator: a loopback HTTP server for the token and invoke endpoints.

Register clients (public keys by kid) and client tokens, set flow stubs, then serve with
`with emu.running() as base_url:`; `emu.calls` records every request and its answer.
Stub files (`load_stub_file`, `Emulator.load_stubs`) are read like job files: YAML 1.2,
checked by the `StubFile` model, every problem a JobError record at file:line:col.
"""

from __future__ import annotations

from collections.abc import Callable

from ._emulator import INVOKE_SCOPE, TOKEN_PATH, Emulator
from ._models import Fault, FlowStub, RecordedCall
from ._stubs import StubFile, load_stub_file

__all__ = [
    "INVOKE_SCOPE",
    "TOKEN_PATH",
    "Emulator",
    "Fault",
    "FlowStub",
    "RecordedCall",
    "StubFile",
    "load_stub_file",
    "serve_forever",
]


def serve_forever(
    emu: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (KeyboardInterrupt propagates); `ready` gets the base URL."""
    base_url = emu.start(host=host, port=port)
    try:
        if ready is not None:
            ready(base_url)
        emu.wait()
    finally:
        emu.stop()
