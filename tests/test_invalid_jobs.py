"""Bad input never reaches Okta: the invalid-job corpus, once, through the real CLI.

Every file in tests/data/invalid/ (one file per message) is run against a running
emulator with its secret at hand, so a job that slipped through would get as far as
a request: exit code 3, exactly the expected problems on stderr in file order,
nothing on stdout, and not a single request (not even a token request).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from owf_runner.emulator import Emulator
from tests.conftest import DATA, Cli

RunCli = Callable[..., Cli]
INVALID = DATA / "invalid"

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
    "label_without_foreach.yaml": [
        "9:5: steps[0].label: `label` names the items of a `foreach`; this step has none"
    ],
    "item_in_source_path.yaml": [
        "9:15: steps[0].foreach.csv: 'item' is only available in a step with `foreach` "
        "(not in its `when`, nor in the list or file it names)"
    ],
    "where_unknown_name.yaml": [
        "9:47: steps[0].foreach.where: unknown name 'itme' in template "
        "(available: env, index, item, job, run, steps, vars)"
    ],
    "where_on_a_list.yaml": [
        "9:5: steps[0].foreach: expected a list, a template giving a list, or one of "
        "{csv: PATH}, {jsonl: PATH}, {json: PATH}"
    ],
    "unknown_template_name.yaml": [
        "10:7: steps[0].payload.app: 'item' is only available in a step with `foreach` "
        "(not in its `when`, nor in the list or file it names)",
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
    "not_utf8.yaml": ["2:10: job file is not UTF-8"],
    "alias_bomb.yaml": [
        "3:16: vars: more than 100000 values once aliases are expanded (an alias bomb?)"
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
    "command_empty_argument.yaml": [
        "7:23: credentials.acme_jwt.token.command[0]: must not be empty",
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
    # issue 9: a foreach file named without a template is there before anything is sent
    "foreach_missing_csv.yaml": [
        f"9:15: steps[0].foreach.csv: cannot read {INVALID / 'new_hires_missing.csv'}: "
        "No such file or directory"
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
    # issue 8: what JSON cannot carry, absurd numbers, URLs and headers HTTP cannot carry
    "payload_nan.yaml": ["9:15: steps[0].payload.ratio: expected a finite number, found .nan"],
    "payload_infinite.yaml": ["10:7: steps[0].payload.big: expected a finite number, found .inf"],
    "vars_infinite.yaml": ["3:3: vars.limit: expected a finite number, found -.inf"],
    "query_nan.yaml": ["9:13: steps[0].query.n: expected a finite number, found .inf"],
    "foreach_nan.yaml": ["9:18: steps[0].foreach[1]: expected a finite number, found .nan"],
    "payload_huge_integer.yaml": [
        "9:15: steps[0].payload.n: a number of more than 4,000 digits; JSON readers cannot take it"
    ],
    "timeout_nan.yaml": ["9:5: steps[0].timeout: expected a finite number, found .nan"],
    "timeout_infinite.yaml": ["9:5: steps[0].timeout: expected a finite number, found .inf"],
    "timeout_over_a_day.yaml": ["9:5: steps[0].timeout: expected at most 86400, found 100000"],
    "backoff_over_a_day.yaml": [
        "9:23: steps[0].retry.backoff.max: expected at most 86400, found 1e+30"
    ],
    "max_wait_over_a_day.yaml": [
        "9:13: steps[0].retry.max_wait: expected at most 86400, found 1000000000000"
    ],
    "max_response_bytes_huge.yaml": [
        "9:5: steps[0].max_response_bytes: expected at most 1073741824, found 99999999999999999999"
    ],
    "rate_limit_zero.yaml": [
        "9:5: steps[0].rate_limit: expected at least one per day, found '0/s'"
    ],
    "rate_limit_under_one_a_day.yaml": [
        "9:5: steps[0].rate_limit: expected at least one per day, found '0.01/h'"
    ],
    "flow_port_out_of_range.yaml": [
        "8:5: steps[0].flow: invalid URL "
        "'https://acme.workflows.okta.com:99999/api/flo/ping/invoke': Port out of range 0-65535"
    ],
    "flow_port_zero.yaml": [
        "8:5: steps[0].flow: invalid URL "
        "'https://acme.workflows.okta.com:0/api/flo/ping/invoke': port 0"
    ],
    "flow_bad_host.yaml": [
        "8:5: steps[0].flow: invalid URL 'https://acme..okta.com/api/flo/ping/invoke': "
        "'acme..okta.com' is not a host name (ASCII letters, digits, -, _ and . only; "
        "an international name in its xn-- form)"
    ],
    "token_url_port_out_of_range.yaml": [
        "5:5: orgs.acme.token_url: invalid URL "
        "'https://login.acme.com:70000/oauth2/v1/token': Port out of range 0-65535"
    ],
    "domain_not_ascii.yaml": [
        "3:10: orgs.acme.domain: expected a host name like acme.okta.com, found 'ацме.okta.com'"
    ],
    "domain_with_space.yaml": [
        "3:10: orgs.acme.domain: expected a host name like acme.okta.com, found 'acme okta.com'"
    ],
    "header_name_cyrillic.yaml": [
        '9:15: steps[0].headers["X\\u044f-Team"]: not a valid HTTP header name: '
        "'Xя-Team' (ASCII letters, digits and !#$%&'*+-.^_`|~ only)"
    ],
    "header_name_space.yaml": [
        "9:15: steps[0].headers[\"X Team\"]: not a valid HTTP header name: 'X Team' "
        "(ASCII letters, digits and !#$%&'*+-.^_`|~ only)"
    ],
    "header_name_colon.yaml": [
        "9:15: steps[0].headers[\"X-Team:\"]: not a valid HTTP header name: 'X-Team:' "
        "(ASCII letters, digits and !#$%&'*+-.^_`|~ only)"
    ],
    "header_name_empty.yaml": [
        "9:15: steps[0].headers[\"\"]: not a valid HTTP header name: '' (ASCII letters, "
        "digits and !#$%&'*+-.^_`|~ only)"
    ],
    "header_value_newline.yaml": [
        "9:15: steps[0].headers.X-Team: a header value cannot hold control characters "
        "or line breaks: 'a\\nInjected: yes'"
    ],
    "header_value_not_ascii.yaml": [
        "9:15: steps[0].headers.X-Team: a header value must be ASCII: 'café'"
    ],
    "header_value_padded.yaml": [
        "9:15: steps[0].headers.X-Team: a header value cannot start or end with a space: ' padded'"
    ],
    "concurrency_too_high.yaml": ["10:5: steps[0].concurrency: expected at most 100, found 101"],
    "scopes_empty.yaml": ["10:5: credentials.acme_jwt.scopes: needs at least one entry"],
    "key_id_empty.yaml": ["8:5: credentials.acme_jwt.key_id: must not be empty"],
    "scope_with_space.yaml": [
        "10:14: credentials.acme_jwt.scopes[0]: expected a scope (printable ASCII "
        "without spaces or quotes), found 'okta.a okta.b'"
    ],
    "name_control_character.yaml": [
        "2:1: name: expected a name without control characters, found 'job\\x1b[2J'"
    ],
    "payload_over_1_mib.yaml": [
        "11:5: steps[0].payload: payload is 1114180 bytes as JSON; the limit is 1 MiB"
    ],
    "template_infinite_literal.yaml": [
        "9:15: steps[0].payload.n: template syntax error: a number too large for JSON "
        "(it would be infinite)"
    ],
    "template_lipsum.yaml": [
        "9:15: steps[0].payload.n: unknown name 'lipsum' in template (available: env, "
        "job, run, steps, vars)"
    ],
    "expect_status_out_of_range.yaml": [
        "9:28: steps[0].expect.status[1]: expected at most 599, found 600"
    ],
}


def expected_lines(name: str) -> list[str]:
    return [f"{INVALID / name}:{suffix}" for suffix in EXPECTED[name]]


def test_every_invalid_file_is_covered() -> None:
    assert {p.name for p in INVALID.iterdir()} == set(EXPECTED)
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_job_exits_3_with_exactly_its_problems_and_sends_nothing(
    name: str, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_TOKEN", "token-for-the-invalid-jobs")
    emulator.register_client_token("token-for-the-invalid-jobs")

    result = cli(str(INVALID / name), "--emulator", emulator.base_url)

    assert result.err.splitlines() == expected_lines(name)
    assert result.err.endswith("\n")
    assert (result.code, result.out, emulator.calls) == (3, "", [])


def test_validate_reports_every_file_at_once_in_argument_order(cli: RunCli) -> None:
    names = sorted(EXPECTED, reverse=True)

    result = cli("validate", *(str(INVALID / name) for name in names))

    assert result.code == 3
    assert result.err.splitlines() == [line for name in names for line in expected_lines(name)]
