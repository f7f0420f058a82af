"""Flat memory: a foreach keeps counts and its first failures, not a result per item.

No wall clock here: the measure is how many per-item records are alive while the step
runs, counted by type at points spread over the run, for 2,000 and for 20,000 items.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path

import httpx2
import pytest

from owf_runner.clock import SYSTEM_CLOCK
from owf_runner.commands import load_plan
from owf_runner.credentials import build_auths, resolve_credentials
from owf_runner.failures import Failure
from owf_runner.http import build_client
from owf_runner.outcomes import ItemResult, Response, RunResult, StepResult
from owf_runner.plan import StepPlan
from owf_runner.runner import FAILURES_KEPT, execute

CONCURRENCY = 20
SAMPLES = 4  # counts taken at evenly spread items
PER_ITEM = (ItemResult, Response)


class LiveCounter:
    """A Reporter that counts the per-item records alive at a few points of the run."""

    def __init__(self, items: int) -> None:
        self.every = items // SAMPLES
        self.finished = 0
        self.most: Counter[str] = Counter()

    def step_started(self, step: StepPlan) -> None:
        pass

    def foreach_started(self, step: StepPlan, total: int | None) -> None:
        pass

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        self.finished += 1
        if self.finished % self.every == 0:
            alive = Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, PER_ITEM))
            self.most |= alive  # the largest count of each type seen so far

    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None:
        pass

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        pass


def job(tmp_path: Path, items: int, more_steps: str = "") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: anyone}}\n"
        "credentials: {anyone: {type: none}}\n"
        "defaults: {rate_limit: 1000000/s}\n"
        "steps:\n"
        "  - id: each\n"
        "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
        f'    foreach: "{{{{ range({items}) | list }}}}"\n'
        f"    concurrency: {CONCURRENCY}\n"
        "    continue_on_error: true\n"
        '    payload: {n: "{{ item }}"}\n'
        '    outputs: {n: "{{ response.body.n }}"}\n'
        f"{more_steps}"
    )
    return path


def answer(request: httpx2.Request) -> httpx2.Response:
    n = int(request.content.decode().split(":")[1].rstrip("}"))
    return httpx2.Response(400 if n % 1000 == 7 else 200, json={"n": n})


def run(path: Path, counter: LiveCounter) -> RunResult:
    plan = load_plan(path)

    async def main() -> RunResult:
        transport = httpx2.MockTransport(answer)
        async with build_client(transport, redirected=True) as client:
            auths = build_auths(plan, resolve_credentials(plan), client, SYSTEM_CLOCK)
            return await execute(plan, client, auths, counter, SYSTEM_CLOCK)

    return asyncio.run(main())


@pytest.mark.parametrize("items", [2_000, 20_000])
def test_a_foreach_holds_the_same_records_for_2000_items_as_for_20000(
    tmp_path: Path, items: int
) -> None:
    counter = LiveCounter(items)

    result = run(job(tmp_path, items), counter)

    [step] = result.steps
    failed = items // 1000  # items 7, 1007, 2007, ...
    assert (step.items, step.error) == (items, f"{failed} of {items} items failed")
    kept = min(failed, FAILURES_KEPT)
    assert [r.index for r in step.failures] == [1000 * n + 7 for n in range(kept)]
    assert step.results == ()
    # Those in flight, the failures kept, and a few the event loop has not let go of yet.
    bound = CONCURRENCY + FAILURES_KEPT + 5
    assert counter.most["ItemResult"] <= bound
    assert counter.most["Response"] <= bound


def test_a_foreach_whose_results_a_later_step_reads_keeps_them_all(tmp_path: Path) -> None:
    later = (
        "  - id: count\n"
        "    flow: https://acme.workflows.okta.com/api/flo/g/invoke\n"
        "    payload: {n: \"{{ steps.each.results | selectattr('status', 'eq', 'failed') "
        '| list | length }}"}\n'
    )
    counter = LiveCounter(2_000)

    result = run(job(tmp_path, 2_000, later), counter)

    each, count = result.steps
    assert [r.index for r in each.results] == list(range(2_000))
    assert count.response is not None
    assert count.response.body == {"n": 2}
    assert counter.most["ItemResult"] >= 2_000 // SAMPLES * (SAMPLES - 1)
