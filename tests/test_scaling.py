"""Loading, checking and planning grow linearly with the number of steps.

Counted, never timed: how often a template is parsed and compiled, and how many
contexts and values ``plan`` builds, for jobs of a few sizes. A linear count
f(n) = a·n + b has f(400) - f(100) == 3·(f(200) - f(100)); a quadratic one has not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from owf_runner import dryrun, templating
from owf_runner.loader import load_job
from owf_runner.plan import resolve


def chained_job(tmp_path: Path, steps: int) -> Path:
    """Each step refers to the previous one's output and to vars; half of them loop."""
    lines = [
        "version: 1",
        "vars: {first_name: Ada, department: Engineering}",
        "orgs: {acme: {domain: acme.okta.com, credential: hook}}",
        "credentials: {hook: {type: client_token, token: {env: HOOK_TOKEN}}}",
        "steps:",
    ]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            f"    flow: https://acme.workflows.okta.com/api/flo/{i:032x}/invoke",
            "    payload:",
            '      first: "{{ vars.first_name }}"',
            '      note: "Hello {{ vars.first_name }} of {{ vars.department | upper }}"',
            "      home: https://example.com/users",
            *([f'      prev: "{{{{ steps.s{i - 1}.outputs.id }}}}"'] if i else []),
            *(['      item: "{{ item }}"', "    foreach: [a, b]"] if i % 2 else []),
            '    outputs: {id: "{{ response.body.id }}"}',
        ]
    path = tmp_path / f"job{steps}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def distinct_templates(steps: int) -> int:
    # vars.first_name, the note, response.body.id, item, and one `prev` per step but the first
    return 4 + steps - 1


class Calls:
    """Counts calls of the functions it wraps, by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        self.monkeypatch = monkeypatch

    def wrap(self, owner: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return original(*args, **kwargs)

        self.monkeypatch.setattr(owner, name, counted)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    monkeypatch.setenv("HOOK_TOKEN", "a-hook-token-of-some-length")
    templating._cached_form.cache_clear()
    counter = Calls(monkeypatch)
    counter.wrap(templating, "_parse")
    counter.wrap(templating.ENV, "compile")
    counter.wrap(dryrun, "job_context")
    counter.wrap(dryrun, "item_context")
    counter.wrap(dryrun, "_shown")
    return counter


def counts_for(tmp_path: Path, calls: Calls, steps: int, then_plan: bool) -> Counter[str]:
    calls.counts.clear()
    plan = resolve(load_job(chained_job(tmp_path, steps)))
    if then_plan:
        dryrun.plan_text(plan)
    return Counter(calls.counts)


@pytest.mark.parametrize("steps", [100, 400])
def test_validate_and_plan_parse_each_template_once(
    tmp_path: Path, calls: Calls, steps: int
) -> None:
    counts = counts_for(tmp_path, calls, steps, then_plan=True)

    assert counts["_parse"] == distinct_templates(steps)
    # A lone `a.b.c` (vars.first_name, steps.x.outputs.id, ...) is looked up, never compiled:
    # only the note is compiled, and `item` (a bare name) — once each.
    assert counts["compile"] == 2


def test_plan_builds_one_job_context_and_one_per_item(tmp_path: Path, calls: Calls) -> None:
    counts = counts_for(tmp_path, calls, 100, then_plan=True)

    assert counts["job_context"] == 1
    assert counts["item_context"] == 50 * 2  # 50 steps loop over two items


def test_plan_work_is_linear_in_the_number_of_steps(tmp_path: Path, calls: Calls) -> None:
    f = {n: counts_for(tmp_path, calls, n, then_plan=True) for n in (100, 200, 400)}

    for name in ("_parse", "compile", "job_context", "item_context", "_shown"):
        assert f[400][name] - f[100][name] == 3 * (f[200][name] - f[100][name]), name
    assert f[400]["_shown"] > f[100]["_shown"] > 0  # counted at all
