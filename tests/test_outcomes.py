"""One outcome model: the run's exit code and outcome line are derived from its results."""

from __future__ import annotations

import pytest

from owf_runner.errors import ExitCode
from owf_runner.outcomes import RunResult, Status, StepResult

OK = StepResult("ok", Status.SUCCEEDED)
SKIPPED = StepResult("maybe", Status.SKIPPED)
FAILED = StepResult("broken", Status.FAILED)
IGNORED = StepResult("optional", Status.FAILED, ignored=True)
NOT_RUN = StepResult("later", Status.NOT_RUN)


def run(*steps: StepResult) -> RunResult:
    return RunResult("r1", "job", "2026-11-29T10:00:00+00:00", steps)


@pytest.mark.parametrize(
    ("steps", "code", "outcome"),
    [
        ((OK, SKIPPED), ExitCode.OK, "succeeded"),
        ((OK, IGNORED, OK), ExitCode.OK, "succeeded with 1 ignored failure"),
        ((IGNORED, IGNORED), ExitCode.OK, "succeeded with 2 ignored failures"),
        ((OK, FAILED, NOT_RUN), ExitCode.STEP_FAILED, "failed"),
        ((IGNORED, FAILED, NOT_RUN), ExitCode.STEP_FAILED, "failed"),
    ],
)
def test_exit_code_and_outcome_follow_the_results(
    steps: tuple[StepResult, ...], code: ExitCode, outcome: str
) -> None:
    result = run(*steps)

    assert result.exit_code is code
    assert result.outcome == outcome


def test_an_ignored_failure_shows_as_such_but_templates_still_see_failed() -> None:
    assert IGNORED.shown_status == "failed (ignored)"
    assert IGNORED.as_context()["status"] == "failed"
    assert FAILED.shown_status == "failed"
    assert NOT_RUN.shown_status == "not run"
