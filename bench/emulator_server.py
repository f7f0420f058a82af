"""The project's Okta emulator in a process of its own, for the benchmarks.

    python bench/emulator_server.py --client-id ID --kid KID --public-key KEY.json
        [--rate-limit N] [--fail-after N]

Prints one JSON line, {"url": "http://127.0.0.1:PORT"}, then reads commands on stdin, one a line,
and answers each with one JSON line on stdout:

    reset   forget the tally                      -> {"ok": true}
    stats   what was invoked since the last reset -> {"flows": {...}, "tokens": N, "peak_rss_mb": F}

End of input stops the server. Flows: `echo` answers at once (with --fail-after N: only its
first N calls; later ones get a 400), `slow` after 50 ms; both ask for OAuth 2.0. The emulator
keeps no call record (`keep_calls=0`): its memory stays flat over 100,000 calls, and the tally
is all the benchmark needs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from owf_runner.emulator import Emulator, Fault, FlowStub, RecordedCall

SLOW_FLOW_DELAY = 0.05
# A fault that never runs out: every call to the slow flow is answered normally, late.
_ALWAYS_LATE = Fault(times=2**62, delay=SLOW_FLOW_DELAY)
REFUSED = 400  # a client error: owf-run fails the item at once, without retrying it


def _echo_faults(fail_after: int | None) -> tuple[Fault, ...]:
    """None: none. Else the first `fail_after` calls are answered normally, every later one
    is refused (the faults are consumed in order)."""
    if fail_after is None:
        return ()
    refused = Fault(times=2**62, status=REFUSED)
    return (refused,) if fail_after == 0 else (Fault(times=fail_after), refused)


@dataclass
class FlowTally:
    """Invocations of one flow: how many, their statuses, when the first and last arrived."""

    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    first: float = float("inf")
    last: float = float("-inf")

    def add(self, status: int, at: float) -> None:
        self.count += 1
        self.statuses[status] += 1
        self.first = min(self.first, at)
        self.last = max(self.last, at)

    def as_json(self) -> dict[str, Any]:
        statuses = {str(code): n for code, n in self.statuses.items()}
        return {"count": self.count, "statuses": statuses, "first": self.first, "last": self.last}


class Tally:
    """What the emulator served since the last reset; fed from the serving threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flows: dict[str, FlowTally] = {}
        self._tokens = 0

    def on_call(self, call: RecordedCall) -> None:
        with self._lock:
            if call.kind == "token":
                self._tokens += 1
            else:
                flow = self._flows.setdefault(call.flow_id or "", FlowTally())
                flow.add(call.status, call.received_at)

    def reset(self) -> None:
        with self._lock:
            self._flows.clear()
            self._tokens = 0

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            flows = {name: flow.as_json() for name, flow in self._flows.items()}
            return {"flows": flows, "tokens": self._tokens, "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def build_emulator(options: argparse.Namespace, tally: Tally) -> Emulator:
    emulator = Emulator(keep_calls=0, on_call=tally.on_call)
    emulator.rate_limit = options.rate_limit
    public_key = json.loads(Path(options.public_key).read_text())
    emulator.register_client(options.client_id, options.kid, public_key)
    emulator.set_stub("echo", FlowStub(security="oauth2", faults=_echo_faults(options.fail_after)))
    emulator.set_stub("slow", FlowStub(security="oauth2", faults=(_ALWAYS_LATE,)))
    return emulator


def answer_commands(tally: Tally) -> None:
    """Serve the control channel until stdin closes."""
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            tally.reset()
            reply: dict[str, Any] = {"ok": True}
        elif command == "stats":
            reply = tally.as_json()
        else:
            reply = {"error": f"unknown command {command!r}"}
        print(json.dumps(reply), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--kid", required=True)
    parser.add_argument("--public-key", required=True, help="the client's public JWK (JSON file)")
    parser.add_argument("--rate-limit", type=int, default=None, help="invocations/s per flow")
    parser.add_argument("--fail-after", type=int, default=None, help="echo: 400 after N calls")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    tally = Tally()
    emulator = build_emulator(options, tally)
    print(json.dumps({"url": emulator.start()}), flush=True)
    try:
        answer_commands(tally)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
