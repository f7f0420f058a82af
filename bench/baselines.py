"""The plain loops owf-run is measured against: the same requests, written the obvious way.

    python bench/baselines.py chain-sync  URL N
    python bench/baselines.py chain-async URL N
    python bench/baselines.py pool        URL FLOW N CONCURRENCY
    python bench/baselines.py csv         URL CSV_FILE CONCURRENCY

The bearer token comes in BENCH_BEARER_TOKEN (fetched once by bench/run.py); the payloads are
the ones the generated jobs send (bench/workloads.py). Each exits non-zero if a call failed.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import httpx2


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['BENCH_BEARER_TOKEN']}"}


def invoke_url(base_url: str, flow: str) -> str:
    return f"{base_url}/api/flo/{flow}/invoke"


def chain_sync(base_url: str, steps: int) -> None:
    """Each request carries the previous answer's `step`, as the chained job's templates do."""
    url, previous = invoke_url(base_url, "echo"), 0
    with httpx2.Client(headers=_headers()) as client:
        for step in range(1, steps + 1):
            response = client.post(url, json={"step": step, "prev": previous})
            response.raise_for_status()
            previous = response.json()["step"]


async def chain_async(base_url: str, steps: int) -> None:
    url, previous = invoke_url(base_url, "echo"), 0
    async with httpx2.AsyncClient(headers=_headers()) as client:
        for step in range(1, steps + 1):
            response = await client.post(url, json={"step": step, "prev": previous})
            response.raise_for_status()
            previous = response.json()["step"]


async def pool(base_url: str, flow: str, count: int, concurrency: int) -> None:
    payloads = ({"n": n} for n in range(count))
    await _drain(invoke_url(base_url, flow), payloads, concurrency)


async def csv_rows(base_url: str, path: str, concurrency: int) -> None:
    """Rows streamed from the file, never held all at once."""
    with open(path, newline="", encoding="utf-8-sig") as rows:
        await _drain(invoke_url(base_url, "echo"), csv.DictReader(rows), concurrency)


async def _drain(url: str, payloads: Iterator[Any], concurrency: int) -> None:
    """`concurrency` workers share one iterator of payloads and post each one."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(headers=_headers(), limits=limits) as client:

        async def worker() -> None:
            for payload in payloads:
                response = await client.post(url, json=payload)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _run(coroutine: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    return lambda *args: asyncio.run(coroutine(*args))


COMMANDS: dict[str, Callable[..., None]] = {
    "chain-sync": lambda url, n: chain_sync(url, int(n)),
    "chain-async": lambda url, n: _run(chain_async)(url, int(n)),
    "pool": lambda url, flow, n, c: _run(pool)(url, flow, int(n), int(c)),
    "csv": lambda url, path, c: _run(csv_rows)(url, path, int(c)),
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        sys.exit(f"usage: baselines.py {{{','.join(COMMANDS)}}} ARGS...")
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
