"""The emulator's public records: flow stubs, injected faults and recorded calls."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Security = Literal["oauth2", "client_token", "none"]
SECURITY_LEVELS: tuple[Security, ...] = ("oauth2", "client_token", "none")


def _frozen_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    # Frozen dataclasses still hand out their dicts; a read-only copy keeps
    # a stub shared between threads from being changed under a request.
    return MappingProxyType({str(k): str(v) for k, v in headers.items()})


@dataclass(frozen=True)
class Fault:
    """Replaces the answer to the next `times` calls of a flow.

    With `status` set the fault answers `status`/`headers`/`body`; without it the
    call is answered normally (after `delay`, with `headers` added). `drop` reads the
    request and closes the connection without a response.
    """

    times: int = 1
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    drop: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError(f"Fault.times must be at least 1, not {self.times}")
        if not (math.isfinite(self.delay) and self.delay >= 0):  # inf would hang the call
            raise ValueError(f"Fault.delay must be finite and not negative, not {self.delay}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status code, not {self.status}")
        if self.status is None and self.body is not None:
            raise ValueError("Fault.body needs Fault.status: a body alone would be ignored")
        object.__setattr__(self, "headers", _frozen_headers(self.headers))


@dataclass(frozen=True)
class FlowStub:
    """How the emulator answers one flow: a fixed/templated answer or an echo."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    echo: bool = True
    # None: the stub does not say; whoever sets it up (the rehearsal wiring) matches
    # how the job calls the flow. The emulator itself then asks for OAuth 2.0.
    security: Security | None = None
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"FlowStub.status must be an HTTP status code, not {self.status}")
        if self.security is not None and self.security not in SECURITY_LEVELS:
            raise ValueError(
                f"FlowStub.security must be one of {', '.join(SECURITY_LEVELS)}, "
                f"not {self.security!r}"
            )
        object.__setattr__(self, "headers", _frozen_headers(self.headers))
        object.__setattr__(self, "faults", tuple(self.faults))

    @property
    def effective_security(self) -> Security:
        """What the emulator checks: `security`, or OAuth 2.0 when the stub does not say."""
        return self.security or "oauth2"


@dataclass(frozen=True)
class RecordedCall:
    """One request the emulator received, and what it answered."""

    kind: Literal["token", "invoke"]
    method: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    flow_id: str | None = None
    client_id: str | None = None
    jti: str | None = None
    claims: dict[str, Any] | None = None
    error: str | None = None
    received_at: float = 0.0  # the emulator's clock (epoch seconds) when it arrived
