"""The one template-context builder."""

from __future__ import annotations

import pytest

from owf_runner.context import (
    COMMON_NAMES,
    RUN_TIME_NAMES,
    RunInfo,
    item_context,
    job_context,
    response_context,
    results_read,
    step_context,
)


def test_a_run_context_has_every_common_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWF_CONTEXT_TEST", "here")
    run = RunInfo("20261129T100000Z-abcdef", "2026-11-29T10:00:00+00:00")

    context = step_context(job_context({"a": 1}, "onboarding", run), {"s": {"status": "ok"}})

    assert set(context) == COMMON_NAMES
    assert context["vars"] == {"a": 1}
    assert context["env"]["OWF_CONTEXT_TEST"] == "here"
    assert context["job"] == {"name": "onboarding"}
    assert context["run"] == {"id": run.id, "started_at": run.started_at}
    assert context["steps"] == {"s": {"status": "ok"}}


def test_a_plan_context_has_no_run() -> None:
    assert "run" not in job_context({}, "job", run=None)
    assert "run" in RUN_TIME_NAMES


def test_items_and_responses_are_added_without_changing_the_base() -> None:
    base = job_context({}, "job", run=None)

    with_item = item_context(base, {"email": "a@x.io"}, 3)
    with_response = response_context(with_item, {"status": 200})

    assert (with_item["item"], with_item["index"]) == ({"email": "a@x.io"}, 3)
    assert with_response["response"] == {"status": 200}
    assert "item" not in base
    assert "response" not in with_item


STEPS = frozenset({"user", "apps", "groups"})
FOREACH = frozenset({"apps", "groups"})


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("{{ steps.apps.results | length }}", {"apps"}),
        ("{{ steps['apps']['results'][0].outputs }}", {"apps"}),
        (
            "n={{ steps.apps.results | selectattr('status', 'eq', 'failed') | list | length }}",
            {"apps"},
        ),
        ("{{ steps.apps.get('results') }}", {"apps"}),
        ("{{ steps.apps | tojson }}", {"apps"}),  # the whole record, results and all
        ("{{ steps .apps. results }}", {"apps"}),  # spaced as Jinja allows
        ("{{ steps.apps.status == 'succeeded' and steps.groups.outputs }}", set()),
        ("{{ steps.apps.response.status }}", set()),
        ("{{ steps.user.outputs.id }} and {{ steps.user }}", set()),  # not a foreach
        ("{{ vars.steps }} {{ item.results }}", set()),
        ("plain text naming steps and results", set()),
        ("{{ steps }}", FOREACH),
        ("{{ steps[vars.which].results }}", FOREACH),  # a step named at run time
        ("{% for s in steps.values() %}{{ s }}{% endfor %}", FOREACH),
    ],
)
def test_results_are_read_only_where_a_template_may_reach_them(text: str, read: set[str]) -> None:
    assert results_read([text], STEPS, FOREACH) == read


def test_results_read_gathers_every_template() -> None:
    texts = ["{{ steps.user.outputs.id }}", "{{ steps.groups.results }}", "{{ steps.apps }}"]

    assert results_read(texts, STEPS, FOREACH) == FOREACH
