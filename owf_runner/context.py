"""The one template-context builder: what a template may name, and where it comes from.

``plan`` and the runner build contexts here and nowhere else, so a template
means the same in ``owf-run plan`` as in a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Names every template may use, and the extra ones only some fields see.
COMMON_NAMES = frozenset({"vars", "env", "steps", "run", "job"})
FOREACH_NAMES = frozenset({"item", "index"})
RESPONSE_NAMES = frozenset({"response"})
# What only a run can know: earlier steps, the answer, the run's id and clock.
RUN_TIME_NAMES = frozenset({"steps", "run", "response", "now", "uuid4"})


@dataclass(frozen=True)
class RunInfo:
    id: str
    started_at: str


def job_context(variables: Mapping[str, Any], job_name: str, run: RunInfo | None) -> dict[str, Any]:
    """What every template of a job sees; ``run`` is None in ``owf-run plan``."""
    context: dict[str, Any] = {
        "vars": variables,
        "env": dict(os.environ),
        "job": {"name": job_name},
    }
    if run is not None:
        context["run"] = {"id": run.id, "started_at": run.started_at}
    return context


def step_context(job: Mapping[str, Any], steps: Mapping[str, Any]) -> dict[str, Any]:
    return {**job, "steps": steps}


def item_context(step: Mapping[str, Any], item: Any, index: int) -> dict[str, Any]:
    return {**step, "item": item, "index": index}


def response_context(context: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    return {**context, "response": response}
