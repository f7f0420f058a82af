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

# file name -> the exact problems after "FILE:" (one entry per line of output)
EXPECTED: dict[str, list[str]] = {
    "unknown_top_level_key.yaml": ["6:1: step: unknown key 'step'; did you mean 'steps'?"],
    "unknown_step_key.yaml": [
        "9:5: steps[0].paylaod: unknown key 'paylaod'; did you mean 'payload'?"
    ],
    "wrong_type.yaml": ["9:5: steps[0].timeout: expected a number, found a string"],
    "missing_version.yaml": ["1:1: version: required (this runner reads `version: 1`)"],
    "version_2.yaml": ["1:1: version: unsupported version 2; this runner reads version 1"],
    "plain_string_secret.yaml": [
        "7:5: credentials.acme_jwt.token: secrets do not live in job files: "
        "use {env: NAME}, {file: PATH} or {command: [argv, ...]}"
    ],
    "unknown_org.yaml": ["8:5: steps[0].org: unknown org 'acmee'; did you mean 'acme'?"],
    "unknown_credential.yaml": [
        "5:5: orgs.acme.credential: unknown credential 'acme_jwtt'; did you mean 'acme_jwt'?"
    ],
    "duplicate_step_id.yaml": ["9:5: steps[1].id: duplicate step id 'ping' (see steps[0])"],
    "bad_step_id.yaml": [
        "7:5: steps[0].id: expected a step id (letters, digits and _, not starting with a "
        "digit), found 'create-user'"
    ],
    "later_step_reference.yaml": [
        "10:7: steps[0].payload.user: steps.second names a later step; "
        "templates can only use earlier steps"
    ],
    "self_step_reference.yaml": [
        "8:5: steps[0].when: steps.ping is this step; templates can only use earlier steps"
    ],
    "unknown_var.yaml": [
        "12:7: steps[0].payload.name: unknown variable 'frist_name'; "
        "did you mean 'first_name'? (define it under `vars` or pass --var)"
    ],
    "unknown_template_name.yaml": [
        "10:7: steps[0].payload.app: 'item' is only available in a step with `foreach` "
        "(not in its `when` or `foreach`)",
    ],
    "template_syntax_error.yaml": [
        "10:7: steps[0].payload.name: template syntax error: "
        "unexpected end of template, expected 'end of print statement'."
    ],
    "http_flow_url.yaml": [
        "8:5: steps[0].flow: expected an https URL, "
        "found 'http://acme.workflows.okta.com/api/flo/ping/invoke'"
    ],
    "url_userinfo.yaml": [
        "8:5: steps[0].flow: URLs with user info (user@host) are refused: "
        "credentials belong in `credentials`"
    ],
    "authorization_header.yaml": [
        "10:7: steps[0].headers.Authorization: header 'Authorization' is set by the org's "
        "credential; remove it here"
    ],
    "no_org_several_orgs.yaml": [
        "8:5: steps[0]: no `org`: set it on the step or in `defaults.org` "
        "(the job has several orgs)"
    ],
    "org_without_domain.yaml": ["3:3: orgs.acme: needs `domain` (or `token_url`)"],
    "duplicate_yaml_key.yaml": ["9:5: steps[0].flow: duplicate key 'flow'"],
    "three_problems.yaml": [
        "8:5: steps[0].org: unknown org 'acmee'; did you mean 'acme'?",
        "9:5: steps[0].flow: expected an https URL, "
        "found 'http://acme.workflows.okta.com/api/flo/first/invoke'",
        "11:7: steps[0].payload.name: unknown variable 'missing' "
        "(define it under `vars` or pass --var)",
    ],
    "yaml_syntax_error.yaml": ["4:12: (top level): invalid YAML: expected ',' or '}', but got ':'"],
    "not_a_mapping.yaml": ["1:1: (top level): expected a mapping of job keys"],
    "not_utf8.yaml": ["1:1: (top level): job file is not valid UTF-8"],
    "alias_bomb.yaml": [
        "3:31: vars: more than 100000 values once aliases are expanded (an alias bomb?)"
    ],
    "python_tag.yaml": [
        "9:14: steps[0].payload: unsupported YAML tag !!python/object:os.system",
    ],
    "complex_key.yaml": ["10:9: steps[0].payload: mapping keys must be plain strings"],
    "duplicate_nested_key.yaml": ["11:7: steps[0].retry.attempts: duplicate key 'attempts'"],
    "unknown_key_without_suggestion.yaml": ["6:1: zzzqqq: unknown key 'zzzqqq'"],
    "vars_not_mapping.yaml": ["2:1: vars: expected a mapping, found a list"],
    "no_orgs.yaml": ["2:1: orgs: needs at least one entry"],
    "no_steps.yaml": ["6:1: steps: needs at least one entry"],
    "steps_mapping.yaml": ["6:1: steps: expected a list, found a mapping"],
    "credential_without_type.yaml": [
        "5:3: credentials.acme_jwt: `type` is required: private_key_jwt, client_token or none"
    ],
    "unknown_credential_type.yaml": [
        "6:5: credentials.acme_jwt.type: unknown type 'basic_auth'; "
        "expected 'private_key_jwt', 'client_token', 'none'",
    ],
    "empty_client_id.yaml": [
        "7:5: credentials.acme_jwt.client_id: must not be empty",
    ],
    "secret_two_keys.yaml": [
        "7:5: credentials.acme_jwt.token: expected exactly one of env, file or command, "
        "found env, file"
    ],
    "secret_unknown_key.yaml": [
        "7:13: credentials.acme_jwt.token.envv: unknown key 'envv'; did you mean 'env'?",
    ],
    "bad_algorithm.yaml": [
        "10:5: credentials.acme_jwt.algorithm: expected 'RS256', 'RS384', 'RS512', 'ES256', "
        "'ES384' or 'ES512', found 'HS256'"
    ],
    "scopes_string.yaml": ["10:5: credentials.acme_jwt.scopes: expected a list, found a string"],
    "bad_rate_limit.yaml": [
        "3:55: orgs.acme.rate_limit: expected a rate like 10/s, 600/min or 3600/h, found 'fast'"
    ],
    "domain_with_scheme.yaml": [
        "3:10: orgs.acme.domain: expected a host name like acme.okta.com, "
        "found 'https://acme.okta.com'"
    ],
    "token_url_http.yaml": [
        "4:5: orgs.acme.token_url: expected an https URL, "
        "found 'http://login.acme.com/oauth2/v1/token'"
    ],
    "step_without_flow.yaml": ["7:5: steps[0].flow: required key is missing"],
    "method_put.yaml": ["9:5: steps[0].method: expected 'POST' or 'GET', found 'PUT'"],
    "negative_timeout.yaml": ["9:5: steps[0].timeout: expected a number above 0, found -5"],
    "concurrency_zero.yaml": ["10:5: steps[0].concurrency: expected at least 1, found 0"],
    "retry_attempts_too_many.yaml": [
        "9:13: steps[0].retry.attempts: expected at most 100, found 101"
    ],
    "retry_on_unknown_class.yaml": [
        "10:21: steps[0].retry.on[1]: expected 'connect', 'throttled', 'unavailable', 'server', "
        "'timeout' or 'dropped', found 'http_500'"
    ],
    "unknown_backoff_key.yaml": [
        "8:27: defaults.retry.backoff.maximum: unknown key 'maximum'; did you mean 'max'?"
    ],
    "expect_status_empty.yaml": ["10:7: steps[0].expect.status: needs at least one entry"],
    "expect_status_not_integers.yaml": [
        "10:21: steps[0].expect.status[1]: expected an integer, found a string"
    ],
    "output_unknown_key.yaml": [
        "10:50: steps[0].outputs.user_id.secrte: unknown key 'secrte'; did you mean 'secret'?"
    ],
    "output_not_a_template.yaml": [
        '9:15: steps[0].outputs.user_id: expected a template, or {value: "{{ ... }}", secret: true}'
    ],
    "foreach_unknown_source.yaml": [
        "9:5: steps[0].foreach: expected a list, a template giving a list, "
        "or one of {csv: PATH}, {jsonl: PATH}, {json: PATH}"
    ],
    "header_integer.yaml": ["9:15: steps[0].headers.X-Count: expected a string, found an integer"],
    "when_integer.yaml": [
        "9:5: steps[0].when: expected a string or true or false, found an integer",
    ],
    "get_with_payload.yaml": ["10:5: steps[0].payload: a GET sends no body; use `query` instead"],
    "unknown_name_in_when.yaml": [
        "9:5: steps[0].when: unknown name 'enabled' in template "
        "(available: env, job, run, steps, vars)"
    ],
    "response_in_payload.yaml": [
        "10:7: steps[0].payload.status: 'response' is only available in `outputs` and "
        "`expect.that`, once the flow has answered",
    ],
    "nonexistent_step_reference.yaml": [
        "9:15: steps[0].payload.a: steps.nope names no step; templates can only use earlier steps"
    ],
    "jinja_if_empty.yaml": [
        "9:15: steps[0].payload.a: template syntax error: "
        "Expected an expression, got 'end of statement block'"
    ],
    "unknown_filter.yaml": [
        "11:15: steps[1].payload.name: template syntax error: No filter named 'nosuchfilter'.",
    ],
}

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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_job_exact_messages(name: str) -> None:
    path = INVALID / name

    assert problems_of(path) == [f"{path}:{suffix}" for suffix in EXPECTED[name]]


def test_every_invalid_file_has_expectations() -> None:
    assert {p.name for p in INVALID.glob("*.yaml")} == set(EXPECTED)


def test_all_problems_are_reported_at_once() -> None:
    problems = problem_records(INVALID / "three_problems.yaml")

    assert len(problems) == 3
    assert len(str(JobError(problems)).splitlines()) == 3


def test_there_are_at_least_40_invalid_files() -> None:
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_message_has_file_line_col_key_path(name: str) -> None:
    path = INVALID / name
    for message in problems_of(path):
        rest = message.removeprefix(f"{path}:")
        line, col, key_and_message = rest.split(":", 2)
        assert line.isdigit(), message
        assert col.isdigit(), message
        assert ": " in key_and_message.strip(), message


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
