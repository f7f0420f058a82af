"""Job loading: every problem as FILE:LINE:COL: key.path: message; defaults applied by resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from owf_runner.errors import ExitCode, JobError
from owf_runner.failures import DEFAULT_RETRY_ON, FailureClass
from owf_runner.loader import LoadedJob, load_job
from owf_runner.plan import RetryPolicy, resolve
from owf_runner.problems import Problem

INVALID = Path(__file__).parent / "data" / "invalid"

# Files whose EXPECTED lines are what the runner should print but does not (yet).
# Files whose actual output lacks the FILE:LINE:COL: key.path: message shape.
HEAD = """\
version: 1
vars:
  first_name: Ada
orgs:
  acme: {domain: acme.okta.com, credential: acme_jwt}
credentials:
  acme_jwt: {type: client_token, token: {env: ACME_TOKEN}}
"""
PING = "https://acme.workflows.okta.com/api/flo/ping/invoke"


def problem_records(path: Path, overrides: dict[str, object] | None = None) -> list[Problem]:
    with pytest.raises(JobError) as info:
        load_job(path, overrides)
    assert info.value.exit_code == ExitCode.INVALID_JOB
    return list(info.value.problems)


def problems_of(path: Path, overrides: dict[str, object] | None = None) -> list[str]:
    return [str(problem) for problem in problem_records(path, overrides)]


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def job_with_step(tmp_path: Path, step: str, head: str = HEAD) -> Path:
    return write(tmp_path, f"{head}steps:\n  - id: ping\n    flow: {PING}\n{step}")


def test_all_problems_are_reported_at_once() -> None:
    problems = problem_records(INVALID / "three_problems.yaml")

    assert len(problems) == 3
    assert len(str(JobError(problems)).splitlines()) == 3


def test_var_override_makes_a_reference_valid(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "    payload: {team: '{{ vars.team }}'}\n")
    assert "unknown variable 'team'" in problems_of(path)[0]

    loaded = load_job(path, {"team": "core", "first_name": "Grace"})

    assert loaded.vars == {"first_name": "Grace", "team": "core"}


@pytest.mark.parametrize(
    "guarded",
    [
        "'{{ vars.team is defined }}'",
        "\"{{ vars.team | default('core') }}\"",
        "'{{ vars.team | d(1) }}'",
    ],
)
def test_guarded_var_reference_does_not_require_the_var(tmp_path: Path, guarded: str) -> None:
    path = job_with_step(tmp_path, f"    payload: {{team: {guarded}}}\n")

    assert isinstance(load_job(path), LoadedJob)


@pytest.mark.parametrize(
    "flow",
    [
        "http://127.0.0.1:8080/api/flo/ping/invoke",
        "http://localhost:8080/api/flo/ping/invoke",
        "http://[::1]:8080/api/flo/ping/invoke",
        "http://127.0.0.2/api/flo/ping/invoke",
    ],
)
def test_loopback_http_flow_is_accepted(tmp_path: Path, flow: str) -> None:
    path = write(tmp_path, f"{HEAD}steps:\n  - id: ping\n    flow: '{flow}'\n")

    assert load_job(path).job.steps[0].flow == flow


def test_templated_flow_skips_the_literal_url_check(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("vars:", "vars:\n  url: http://example.com/x")
        + "steps:\n  - id: ping\n    flow: '{{ vars.url }}'\n",
    )

    assert load_job(path).job.steps[0].flow == "{{ vars.url }}"


def test_token_url_is_checked_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("{domain: acme.okta.com,", "{token_url: 'http://evil.example/t',")
        + f"steps:\n  - id: ping\n    flow: {PING}\n",
    )

    assert problems_of(path) == [
        f"{path}:5:10: orgs.acme.token_url: expected an https URL, found 'http://evil.example/t'"
    ]


def test_domain_must_be_a_host_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("domain: acme.okta.com", "domain: 'https://acme.okta.com'")
        + f"steps:\n  - id: ping\n    flow: {PING}\n",
    )

    assert problems_of(path) == [
        f"{path}:5:10: orgs.acme.domain: expected a host name like acme.okta.com, "
        "found 'https://acme.okta.com'"
    ]


def test_x_api_client_token_header_is_refused(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "    headers: {x-api-client-token: abc}\n")

    assert problems_of(path) == [
        f"{path}:11:15: steps[0].headers.x-api-client-token: "
        "header 'x-api-client-token' is set by the org's credential; remove it here"
    ]


def test_foreach_step_may_use_item_and_index(tmp_path: Path) -> None:
    path = job_with_step(
        tmp_path, "    foreach: [1, 2]\n    payload: {a: '{{ item }}', i: '{{ index }}'}\n"
    )

    assert load_job(path).job.steps[0].payload == {"a": "{{ item }}", "i": "{{ index }}"}


def test_response_only_in_outputs_and_expect(tmp_path: Path) -> None:
    ok = job_with_step(
        tmp_path,
        "    outputs: {id: '{{ response.body.id }}'}\n"
        "    expect: {that: ['{{ response.status == 200 }}']}\n",
    )
    assert load_job(ok).job.steps[0].outputs == {"id": "{{ response.body.id }}"}

    bad = job_with_step(tmp_path, "    payload: {r: '{{ response }}'}\n", head=HEAD)
    assert problems_of(bad) == [
        f"{bad}:11:15: steps[0].payload.r: 'response' is only available in `outputs` and "
        "`expect.that`, once the flow has answered"
    ]


def test_globals_and_locally_bound_names_are_allowed(tmp_path: Path) -> None:
    path = job_with_step(
        tmp_path,
        "    payload:\n"
        "      at: '{{ now() }}'\n"
        "      id: '{{ uuid4() }}'\n"
        "      n: '{% set q = 1 %}{{ q }}'\n"
        "      r: '{% for i in range(3) %}{{ i }}{% endfor %}'\n",
    )

    assert isinstance(load_job(path), LoadedJob)


def test_reference_to_a_step_that_does_not_exist(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "    payload: {a: '{{ steps.ghost.outputs.x }}'}\n")

    assert problems_of(path) == [
        f"{path}:11:15: steps[0].payload.a: steps.ghost names no step; "
        "templates can only use earlier steps"
    ]


def test_earlier_step_reference_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEAD}steps:\n"
        f"  - id: first\n    flow: {PING}\n"
        f"  - id: second\n    flow: {PING}\n"
        "    when: '{{ steps.first.outputs.id is defined }}'\n"
        "    payload: {id: '{{ steps.first.outputs.id }}'}\n",
    )

    assert [step.id for step in load_job(path).job.steps] == ["first", "second"]


def test_later_step_reference_inside_a_subscript_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEAD}steps:\n"
        f"  - id: first\n    flow: {PING}\n"
        "    payload: {a: '{{ vars[steps.second.outputs.key] }}'}\n"
        f"  - id: second\n    flow: {PING}\n",
    )

    assert problems_of(path) == [
        f"{path}:11:15: steps[0].payload.a: steps.second names a later step; "
        "templates can only use earlier steps"
    ]


def test_extra_key_in_secret_reference_names_that_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("{env: ACME_TOKEN}", "{env: ACME_TOKEN, x: 1}")
        + f"steps:\n  - id: ping\n    flow: {PING}\n",
    )

    [message] = problems_of(path)
    assert "unknown key 'x'" in message


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "", head=HEAD)

    loaded = load_job(path)

    assert loaded.name == "job"
    assert loaded.path == path
    assert str(loaded.document.location(("steps", 0, "flow"))) == f"{path}:10:5"


MERGE_HEAD = """\
version: 1
orgs:
  acme: {domain: acme.okta.com, credential: c, rate_limit: 2/s}
  globex: {domain: globex.okta.com, credential: c}
credentials:
  c: {type: none}
defaults:
  org: globex
  timeout: 12
  rate_limit: 5/s
  retry: {attempts: 2, max_wait: 10, backoff: {initial: 0.5, max: 9}, on: [server]}
steps:
  - id: plain
    flow: https://x.example/one
"""
SERVER_ONLY = frozenset({FailureClass.SERVER})


def test_the_loader_keeps_steps_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, MERGE_HEAD)

    [plain] = load_job(path).job.steps

    assert (plain.org, plain.timeout, plain.rate_limit, plain.retry) == (None, None, None, None)


def test_resolve_applies_the_defaults_to_every_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MERGE_HEAD + "  - id: custom\n    org: acme\n    timeout: 3\n"
        "    flow: https://x.example/two\n    retry: {attempts: 7}\n"
        "  - id: own_rate\n    org: acme\n    rate_limit: 1/m\n    flow: https://x.example/3\n",
    )

    plain, custom, own_rate = resolve(load_job(path)).steps

    assert (plain.org.name, plain.timeout, plain.rate_limit) == ("globex", 12.0, "5/s")
    assert plain.per_second == 5.0
    assert plain.retry == RetryPolicy(
        attempts=2, backoff_initial=0.5, backoff_max=9, max_wait=10, on=SERVER_ONLY
    )
    assert (custom.org.name, custom.timeout, custom.rate_limit) == ("acme", 3.0, "2/s")
    assert custom.retry == RetryPolicy(
        attempts=7, backoff_initial=0.5, backoff_max=9, max_wait=10, on=SERVER_ONLY
    )
    assert (own_rate.rate_limit, own_rate.per_second) == ("1/m", 1 / 60)


def test_resolve_deep_merges_the_retry_backoff(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MERGE_HEAD + "  - id: custom\n    flow: https://x.example/two\n"
        "    retry: {backoff: {max: 5}}\n",
    )

    custom = resolve(load_job(path)).steps[1]

    assert (custom.retry.backoff_initial, custom.retry.backoff_max) == (0.5, 5)
    assert (custom.retry.attempts, custom.retry.max_wait, custom.retry.on) == (2, 10, SERVER_ONLY)


def test_only_org_is_the_default_org(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "")

    [step] = resolve(load_job(path)).steps

    assert step.org.name == "acme"
    assert step.org.token_url == "https://acme.okta.com/oauth2/v1/token"
    assert step.timeout == 65.0
    assert step.retry == RetryPolicy(
        attempts=4, backoff_initial=1.0, backoff_max=30.0, max_wait=300.0, on=DEFAULT_RETRY_ON
    )
    assert (step.rate_limit, step.per_second) == ("10/s", 10.0)


def test_unknown_defaults_org_points_at_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"{HEAD}defaults:\n  org: acmee\nsteps:\n  - id: ping\n    flow: {PING}\n"
    )

    assert problems_of(path) == [
        f"{path}:9:3: defaults.org: unknown org 'acmee'; did you mean 'acme'?"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 1\n", "1:1: (top level): expected a mapping of job keys"),
        ("", "1:1: (top level): expected a mapping of job keys"),
        ("version: true\n", "1:1: version: unsupported version True; this runner reads version 1"),
        ("version: '1'\n", "1:1: version: unsupported version '1'; this runner reads version 1"),
    ],
)
def test_not_a_version_1_job(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert problems_of(path) == [f"{path}:{expected}"]


def test_missing_required_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n")

    assert problems_of(path) == [
        f"{path}:1:1: orgs: required key is missing",
        f"{path}:1:1: steps: required key is missing",
    ]


def test_wrong_list_type_message(tmp_path: Path) -> None:
    path = job_with_step(tmp_path, "    expect: {status: 200}\n")

    assert problems_of(path) == [
        f"{path}:11:14: steps[0].expect.status: expected a list, found an integer"
    ]
