"""Resuming (resume.py): which run is continued, and what an earlier run settled — read from a
journal filled by hand in tmp_path, with a plan loaded from a job file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from owf_runner import commands
from owf_runner.errors import ExitCode, UsageError
from owf_runner.journal import (
    EMULATOR,
    OKTA,
    STEP_INVOCATION,
    ItemRecord,
    Journal,
    RunRecord,
    StepRecord,
)
from owf_runner.outcomes import ItemResult, Response, Status, StepResult
from owf_runner.plan import Plan, StepPlan
from owf_runner.recording import item_digest
from owf_runner.resume import ResumeChoice, Resumed, ResumeRefused, _Walk, run_to_resume
from owf_runner.runner import STOPPED_IN_FLIGHT, results_read_by
from owf_runner.sources import BadItem

RUN = "20261129T140000Z-aaaaaa"
HEADER = (
    "version: 1\n"
    "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
    "credentials:\n"
    "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
    "steps:\n"
)
ITEMS = [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
RETRY_UNKNOWN = "`--retry-unknown` sends it again"
FRESH = ResumeChoice(None, retry_unknown=False, force=False)


def step(step_id: str, extra: str = "") -> str:
    flow = f"https://acme.workflows.okta.com/api/flo/{step_id}/invoke"
    return f"  - id: {step_id}\n    flow: {flow}\n{extra}"


FOREACH = '    foreach: "{{ vars.items }}"\n'
SECRET_TOKEN = (
    '    outputs:\n      token: {value: "{{ response.body.token }}", secret: true}\n'
    '      user: "{{ response.body.user }}"\n'
)
USES_TOKEN = '    headers: {X-Token: "{{ steps.login.outputs.token }}"}\n'


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "state") as opened:
        yield opened


class Job:
    """A job file, its plan, and its runs in the journal."""

    def __init__(self, tmp_path: Path, journal: Journal) -> None:
        self.path, self.journal = tmp_path / "job.yaml", journal

    def plan(self, steps: str) -> Plan:
        self.path.write_text(HEADER + steps)
        return commands.load_plan(self.path, {"items": ITEMS})

    def begin(self, plan: Plan, run_id: str = RUN, **fields: Any) -> RunRecord:
        values: dict[str, Any] = {
            "id": run_id,
            "job_path": str(plan.identity.path),
            "job_sha256": plan.identity.sha256,
            "vars_sha256": plan.identity.vars_sha256,
            "job_name": plan.name,
            "started_at": f"2026-11-29T14:00:{len(self.journal.runs(limit=100)):02d}Z",
            "status": "failed",
            **fields,
        }
        record = RunRecord(**values)
        self.journal.begin_run(record)
        found = self.journal.run(run_id)
        assert found is not None
        return found

    def step(self, step_id: str, status: str, **fields: Any) -> None:
        position = fields.pop("position", 0)
        self.journal.step_finished(
            StepRecord(run_id=RUN, step_id=step_id, position=position, status=status, **fields)
        )

    def item(self, step_id: str, index: int, status: str, **fields: Any) -> None:
        if index != STEP_INVOCATION:
            fields.setdefault("digest", item_digest(ITEMS[index]))
        self.journal.finished(
            ItemRecord(run_id=RUN, step_id=step_id, index=index, status=status, **fields)
        )
        self.journal.flush()

    def resumed(self, plan: Plan, record: RunRecord, **choice: bool) -> Resumed:
        chosen = ResumeChoice(RUN, choice.get("retry_unknown", False), choice.get("force", False))
        return Resumed(self.journal, record, plan, chosen, results_read_by(plan))


@pytest.fixture
def job(tmp_path: Path, journal: Journal) -> Job:
    return Job(tmp_path, journal)


def the(plan: Plan, step_id: str) -> StepPlan:
    return next(s for s in plan.steps if s.id == step_id)


def unknown_since(reason: str) -> str:
    return f"not re-sent: its outcome is unknown since run {RUN} ({reason}); {RETRY_UNKNOWN}"


# -- which run ---------------------------------------------------------------------------------


def test_the_latest_run_succeeded_nothing_to_resume(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, "20261129T130000Z-000000", status="failed")
    job.begin(plan, "20261129T140000Z-111111", status="succeeded")

    assert run_to_resume(job.journal, plan, FRESH, OKTA) is None


def test_the_latest_run_that_failed_is_resumed(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, "20261129T130000Z-000000", status="succeeded")
    job.begin(plan, "20261129T140000Z-111111", status="interrupted")

    record = run_to_resume(job.journal, plan, FRESH, OKTA)

    assert record is not None
    assert record.id == "20261129T140000Z-111111"


def test_no_run_of_the_job_is_a_usage_error(job: Job) -> None:
    plan = job.plan(step("a"))

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, FRESH, OKTA)

    assert str(caught.value) == (
        f"nothing to resume: no run of {plan.identity.path} is in the journal"
    )
    assert caught.value.exit_code == ExitCode.USAGE


def test_an_unknown_run_id_is_a_usage_error(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan)

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, ResumeChoice("nope", False, False), OKTA)

    assert str(caught.value) == "no run 'nope' in the journal (`owf-run history` lists them)"


def test_an_unknown_run_id_is_shown_with_its_controls_escaped_once(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan)

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, ResumeChoice("nope\x1b[2J", False, False), OKTA)

    assert str(caught.value) == (
        "no run 'nope\\x1b[2J' in the journal (`owf-run history` lists them)"
    )


def test_a_run_of_another_job_is_a_usage_error(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, job_path="/jobs/other\x1b.yaml")

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, ResumeChoice(RUN, False, False), OKTA)

    assert str(caught.value) == (
        f"run {RUN} is a run of /jobs/other\\x1b.yaml, not of {plan.identity.path}"
    )


def test_a_rehearsal_is_not_resumed_as_a_real_run(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, target=EMULATOR)

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, ResumeChoice(RUN, False, False), OKTA)

    assert str(caught.value) == (
        f"run {RUN} sent its requests to an emulator; this run sends to Okta: "
        "it cannot finish that one"
    )
    with pytest.raises(UsageError) as latest:  # the latest run sent to Okta: there is none
        run_to_resume(job.journal, plan, FRESH, OKTA)
    assert str(latest.value) == (
        f"nothing to resume: no run of {plan.identity.path} is in the journal"
    )


def test_a_run_with_a_target_the_journal_never_writes_is_refused_cleanly(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, target="elsewhere")

    with pytest.raises(UsageError) as caught:
        run_to_resume(job.journal, plan, ResumeChoice(RUN, False, False), OKTA)

    assert str(caught.value) == (
        f"run {RUN} sent its requests to 'elsewhere' (not a target owf-run writes); this run "
        "sends to Okta: it cannot finish that one"
    )


def test_a_changed_job_file_is_refused_with_exit_3_unless_forced(job: Job) -> None:
    plan = job.plan(step("a"))
    job.begin(plan, job_sha256="00" * 32)

    with pytest.raises(ResumeRefused) as caught:
        run_to_resume(job.journal, plan, FRESH, OKTA)

    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert int(ExitCode.INVALID_JOB) == 3
    assert str(caught.value) == (
        f"{plan.identity.path} has changed since run {RUN}: resuming could send what that run "
        "would not have; run the job afresh (without --resume), or pass --force to resume anyway"
    )
    forced = run_to_resume(job.journal, plan, ResumeChoice(None, False, True), OKTA)
    assert forced is not None
    assert forced.id == RUN


def test_other_variables_are_refused_with_exit_3_unless_forced(job: Job) -> None:
    """Another --var could skip (by `when`) a step the run failed, and call the run done."""
    job.begin(job.plan(step("a")))
    other = commands.load_plan(job.path, {"items": ITEMS, "only": "eu"})

    with pytest.raises(ResumeRefused) as caught:
        run_to_resume(job.journal, other, FRESH, OKTA)

    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert str(caught.value) == (
        f"run {RUN} of {other.identity.path} had other variables (--var, --vars-file) than "
        "these: resuming with them could send what that run would not have, or skip a step it "
        "failed; give the same ones, or pass --force to resume anyway"
    )
    forced = run_to_resume(job.journal, other, ResumeChoice(None, False, True), OKTA)
    assert forced is not None
    assert forced.id == RUN


def test_the_same_variables_given_in_another_order_resume(job: Job) -> None:
    job.begin(commands.load_plan(job.plan(step("a")).identity.path, {"b": "2", "items": ITEMS}))
    same = commands.load_plan(job.path, {"items": ITEMS, "b": "2"})

    record = run_to_resume(job.journal, same, FRESH, OKTA)

    assert record is not None
    assert record.id == RUN


def test_a_run_that_recorded_no_variables_is_not_checked(job: Job) -> None:
    """A run journaled before variables were recorded (schema 1) resumes as it did."""
    job.begin(job.plan(step("a")), vars_sha256=None)
    other = commands.load_plan(job.path, {"items": ITEMS, "only": "eu"})

    record = run_to_resume(job.journal, other, FRESH, OKTA)

    assert record is not None
    assert record.vars_sha256 is None


# -- what the run settled: items ---------------------------------------------------------------


def foreach_plan(job: Job, extra: str = "") -> Plan:
    return job.plan(step("users", FOREACH) + extra)


def test_succeeded_items_are_restored_with_their_outputs(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "succeeded", attempts=2, http_status=201, outputs={"id": "u0"},
             body={"ok": True}, label="zero")  # fmt: skip

    restored = job.resumed(plan, record).item(the(plan, "users"), 0, ITEMS[0])

    assert restored == ItemResult(
        0, ITEMS[0], Status.SUCCEEDED, 2, {"id": "u0"}, Response(201, {}, {"ok": True}),
        label="zero", restored=True,
    )  # fmt: skip


def test_failed_items_are_sent_again(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "failed", attempts=1, http_status=400, error="HTTP 400")

    assert job.resumed(plan, record).item(the(plan, "users"), 0, ITEMS[0]) is None


def test_an_item_sent_again_counts_the_requests_sent_before_once(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "failed", attempts=3, http_status=503, error="HTTP 503")
    resumed = job.resumed(plan, record)
    users = the(plan, "users")

    assert resumed.item(users, 0, ITEMS[0]) is None
    assert [resumed.sent_before(users, 0), resumed.sent_before(users, 0)] == [3, 0]
    assert resumed.sent_before(users, 1) == 0  # never sent before


def test_a_plain_step_run_again_counts_the_requests_sent_before(job: Job) -> None:
    plan = job.plan(step("a"))
    record = job.begin(plan)
    job.step("a", "failed", attempts=2)
    job.item("a", STEP_INVOCATION, "failed", attempts=2, http_status=503, error="HTTP 503")

    resumed = job.resumed(plan, record)

    assert resumed.step(the(plan, "a")) is None
    assert resumed.sent_before(the(plan, "a"), None) == 2


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        ("sending", None, "in flight when the run stopped"),
        ("unknown", STOPPED_IN_FLIGHT, "in flight when the run was stopped: the flow may have run"),
        (
            "unknown",
            "timeout: no answer in 65s (not re-sent: the flow may have run; `idempotent: true` "
            "allows retries)",
            "timeout: no answer in 65s",
        ),
    ],
)
def test_items_of_unknown_outcome_are_not_sent_again(
    job: Job, status: str, error: str | None, reason: str
) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 1, status, attempts=1, error=error, label="one")

    settled = job.resumed(plan, record).item(the(plan, "users"), 1, ITEMS[1])

    assert settled == ItemResult(
        1, ITEMS[1], Status.UNKNOWN, 1, error=unknown_since(reason), label="one", restored=True
    )


@pytest.mark.parametrize("status", ["sending", "unknown"])
def test_retry_unknown_sends_items_of_unknown_outcome_again(job: Job, status: str) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 1, status, attempts=1)

    resumed = job.resumed(plan, record, retry_unknown=True)

    assert resumed.item(the(plan, "users"), 1, ITEMS[1]) is None


CHANGED = (
    f"not sent: this is not the item run {RUN} had at this place (the data changed), so which "
    "items were sent cannot be told; `--force` resumes by place anyway"
)


@pytest.mark.parametrize("status", ["succeeded", "failed", "sending"])
def test_an_item_that_changed_is_failed_unsent(job: Job, status: str) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 2, status, label="two")

    settled = job.resumed(plan, record).item(the(plan, "users"), 2, {"n": "not two"})

    assert settled == ItemResult(2, {"n": "not two"}, Status.FAILED, 0, error=CHANGED, label="two")


def test_force_resumes_a_changed_item_by_place(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 2, "succeeded", outputs={"id": "u2"})
    job.item("users", 3, "failed")

    resumed = job.resumed(plan, record, force=True)
    users = the(plan, "users")

    restored = resumed.item(users, 2, {"n": "not two"})
    assert restored is not None
    assert (restored.status, restored.outputs, restored.restored) == (
        Status.SUCCEEDED,
        {"id": "u2"},
        True,
    )
    assert resumed.item(users, 3, {"n": "not three"}) is None


def test_an_item_recorded_without_a_digest_is_not_checked(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "succeeded", digest=None)

    restored = job.resumed(plan, record).item(the(plan, "users"), 0, {"n": "anything"})

    assert restored is not None
    assert restored.status is Status.SUCCEEDED


def test_a_bad_row_is_read_again_not_restored(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "failed", digest=None, error="users.csv:2: 3 fields, the header has 2")

    bad = BadItem("users.csv:2: 3 fields, the header has 2")

    assert job.resumed(plan, record).item(the(plan, "users"), 0, bad) is None


def test_items_are_read_forward_across_gaps(job: Job) -> None:
    plan = foreach_plan(job)
    record = job.begin(plan)
    job.item("users", 0, "succeeded")
    job.item("users", 2, "failed")
    job.item("users", 3, "succeeded")

    resumed = job.resumed(plan, record)
    users = the(plan, "users")
    found = [resumed.item(users, i, ITEMS[i]) for i in range(5)]

    assert [None if r is None else r.status for r in found] == [
        Status.SUCCEEDED, None, None, Status.SUCCEEDED, None,
    ]  # fmt: skip


def test_the_walk_returns_the_record_at_each_index_and_none_in_the_gaps() -> None:
    records = [ItemRecord(run_id=RUN, step_id="s", index=i, status="succeeded") for i in (1, 4, 5)]
    read: list[int] = []

    def stream() -> Iterator[ItemRecord]:
        for record in records:
            read.append(record.index)
            yield record

    walk = _Walk(stream())
    found = [walk.at(i) for i in range(8)]

    assert [None if r is None else r.index for r in found] == [
        None,
        1,
        None,
        None,
        4,
        5,
        None,
        None,
    ]
    assert read == [1, 4, 5]  # each record read once


def test_the_walk_of_a_step_without_records_finds_nothing() -> None:
    walk = _Walk(iter(()))

    assert [walk.at(i) for i in range(3)] == [None, None, None]


def test_each_step_has_a_walk_of_its_own(job: Job) -> None:
    plan = job.plan(step("users", FOREACH) + step("groups", FOREACH))
    record = job.begin(plan)
    job.item("users", 0, "succeeded", outputs={"u": 0})
    job.item("groups", 0, "succeeded", outputs={"g": 0})

    resumed = job.resumed(plan, record)
    users = resumed.item(the(plan, "users"), 0, ITEMS[0])
    groups = resumed.item(the(plan, "groups"), 0, ITEMS[0])

    assert (users and users.outputs, groups and groups.outputs) == ({"u": 0}, {"g": 0})


# -- what the run settled: steps ---------------------------------------------------------------


def test_a_succeeded_step_is_restored_with_its_answer(job: Job) -> None:
    plan = job.plan(step("a") + step("b"))
    record = job.begin(plan)
    response = {"status": 200, "headers": {"x": "1"}, "body": {"id": 7}}
    job.step("a", "succeeded", attempts=2, seconds=0.5, outputs={"id": 7}, response=response)
    job.step("b", "failed", position=1, error="HTTP 400")

    resumed = job.resumed(plan, record)

    assert resumed.step(the(plan, "a")) == StepResult(
        "a", Status.SUCCEEDED, 2, 0.5, {"id": 7}, Response(200, {"x": "1"}, {"id": 7}),
        restored=True,
    )  # fmt: skip
    assert resumed.step(the(plan, "b")) is None


def test_a_succeeded_foreach_whose_results_nobody_reads_is_settled_whole(job: Job) -> None:
    plan = foreach_plan(job, step("after"))
    record = job.begin(plan)
    job.step("users", "succeeded", items=5)

    settled = job.resumed(plan, record).step(the(plan, "users"))

    assert settled is not None
    assert (settled.status, settled.items, settled.restored) == (Status.SUCCEEDED, 5, True)


def test_a_foreach_whose_results_a_later_step_reads_comes_back_item_by_item(job: Job) -> None:
    reads = "    payload: {ids: \"{{ steps.users.results | map(attribute='outputs') | list }}\"}\n"
    plan = foreach_plan(job, step("after", reads))
    record = job.begin(plan)
    job.step("users", "succeeded", items=5)
    job.item("users", 0, "succeeded", outputs={"id": "u0"})

    resumed = job.resumed(plan, record)

    assert resumed.step(the(plan, "users")) is None
    restored = resumed.item(the(plan, "users"), 0, ITEMS[0])
    assert restored is not None
    assert restored.outputs == {"id": "u0"}


@pytest.mark.parametrize("status", ["sending", "unknown"])
def test_a_step_of_unknown_outcome_is_settled_failed_and_named(job: Job, status: str) -> None:
    plan = job.plan(step("a") + step("b"))
    record = job.begin(plan)
    job.step("a", "failed")
    job.item("a", STEP_INVOCATION, status, attempts=1, error=STOPPED_IN_FLIGHT)

    settled = job.resumed(plan, record).step(the(plan, "a"))

    assert settled == StepResult(
        "a", Status.FAILED, 1,
        error=unknown_since("in flight when the run was stopped: the flow may have run"),
        unknown=("a",), unknown_count=1, restored=True,
    )  # fmt: skip


def test_retry_unknown_runs_a_step_of_unknown_outcome_again(job: Job) -> None:
    plan = job.plan(step("a"))
    record = job.begin(plan)
    job.item("a", STEP_INVOCATION, "sending")

    assert job.resumed(plan, record, retry_unknown=True).step(the(plan, "a")) is None


def test_a_failed_step_is_run_again(job: Job) -> None:
    plan = job.plan(step("a"))
    record = job.begin(plan)
    job.step("a", "failed")
    job.item("a", STEP_INVOCATION, "failed", error="HTTP 400")

    assert job.resumed(plan, record).step(the(plan, "a")) is None


# -- secret outputs, which the journal never keeps ---------------------------------------------


def refusal(user: str, step_id: str) -> str:
    return (
        f"step {user} still has to run and may use the secret outputs of step {step_id}, which "
        "the journal does not keep; running it again would repeat it, and it is not "
        f"`idempotent: true`: run the job afresh, or mark {step_id} idempotent if it is safe to "
        "repeat"
    )


def login_then(job: Job, login: str, *later: str) -> tuple[Plan, RunRecord]:
    plan = job.plan(step("login", login) + "".join(later))
    record = job.begin(plan)
    job.step("login", "succeeded", outputs={"user": "u1"})
    return plan, record


def test_a_pending_step_needing_a_secret_of_a_step_that_is_not_idempotent_is_refused(
    job: Job,
) -> None:
    plan, record = login_then(job, SECRET_TOKEN, step("use", USES_TOKEN))

    with pytest.raises(ResumeRefused) as caught:
        job.resumed(plan, record)

    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert str(caught.value) == (
        "step use still has to run and may use the secret outputs of step login, which the "
        "journal does not keep; running it again would repeat it, and it is not "
        "`idempotent: true`: run the job afresh, or mark login idempotent if it is safe to repeat"
    )
    assert str(caught.value) == refusal("use", "login")


def test_an_idempotent_step_whose_secret_a_pending_step_needs_runs_again(job: Job) -> None:
    plan, record = login_then(job, "    idempotent: true\n" + SECRET_TOKEN, step("use", USES_TOKEN))

    assert job.resumed(plan, record).step(the(plan, "login")) is None


def test_a_secret_nobody_still_to_run_names_keeps_its_step_settled(job: Job) -> None:
    plan, record = login_then(job, SECRET_TOKEN, step("other"))

    settled = job.resumed(plan, record).step(the(plan, "login"))

    assert settled is not None
    assert (settled.status, settled.outputs) == (Status.SUCCEEDED, {"user": "u1"})


def test_a_step_that_already_succeeded_needs_no_secret_again(job: Job) -> None:
    plan, record = login_then(job, SECRET_TOKEN, step("use", USES_TOKEN))
    job.step("use", "succeeded", position=1)

    resumed = job.resumed(plan, record)

    assert resumed.step(the(plan, "login")) is not None
    assert resumed.step(the(plan, "use")) is not None


def test_steps_by_subscript_may_name_any_step_and_counts_as_naming_it(job: Job) -> None:
    uses = "    headers: {X-Token: \"{{ steps['login'].outputs.token }}\"}\n"
    plan, record = login_then(job, SECRET_TOKEN, step("use", uses))

    with pytest.raises(ResumeRefused) as caught:
        job.resumed(plan, record)

    assert str(caught.value) == refusal("use", "login")


def test_a_step_run_again_for_its_secret_brings_back_the_secrets_it_needs(job: Job) -> None:
    idempotent = "    idempotent: true\n"
    session = (
        idempotent
        + '    payload: {t: "{{ steps.login.outputs.token }}"}\n'
        + '    outputs:\n      sid: {value: "{{ response.body.sid }}", secret: true}\n'
    )
    uses_session = '    headers: {X-Session: "{{ steps.session.outputs.sid }}"}\n'
    plan, record = login_then(
        job, idempotent + SECRET_TOKEN, step("session", session), step("use", uses_session)
    )
    job.step("session", "succeeded", position=1)

    resumed = job.resumed(plan, record)

    assert resumed.step(the(plan, "session")) is None  # runs again: `use` needs its sid
    assert resumed.step(the(plan, "login")) is None  # and `session` needs login's token


def test_a_template_that_takes_steps_whole_counts_as_naming_every_step(job: Job) -> None:
    whole = '    payload: "{% set all = steps %}{{ all.login.outputs.token }}"\n'
    plan, record = login_then(job, SECRET_TOKEN, step("use", whole))

    with pytest.raises(ResumeRefused) as caught:
        job.resumed(plan, record)

    assert str(caught.value) == refusal("use", "login")


def test_a_later_step_naming_only_other_steps_does_not_name_it(job: Job) -> None:
    others = '    payload: {u: "{{ steps.login_audit.outputs.id }}", v: "{{ steps.other }}"}\n'
    plan, record = login_then(
        job, SECRET_TOKEN, step("login_audit"), step("other"), step("use", others)
    )

    assert job.resumed(plan, record).step(the(plan, "login")) is not None


def test_a_pending_step_reading_secret_outputs_of_restored_items_is_refused(job: Job) -> None:
    reads = "    payload: {t: \"{{ steps.users.results | map(attribute='outputs') | list }}\"}\n"
    plan = job.plan(step("users", FOREACH + SECRET_TOKEN) + step("after", reads))
    record = job.begin(plan)
    job.step("users", "succeeded", items=5)
    for index in range(5):
        job.item("users", index, "succeeded", outputs={"user": f"u{index}"})

    with pytest.raises(ResumeRefused) as caught:
        job.resumed(plan, record)

    assert str(caught.value) == refusal("after", "users")
