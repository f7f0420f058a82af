"""Hostile templates through the real CLI: the step fails with a located message, never exit 70.

Each expression is tried in every field that carries a value (payload, query, headers,
outputs): `plan` reports what the run reports, in the same words, and the run fails
the step (exit 1) without sending it — never a crash, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cli

RunCli = Callable[..., Cli]
JOB = """\
version: 1
vars: {{text: "café", name: "X я"}}
orgs: {{acme: {{domain: acme.okta.com, credential: open}}}}
credentials: {{open: {{type: none}}}}
steps:
  - id: s
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    {field}:
      "{key}": "{template}"
"""
OVER = "template exceeded its budget: "
CASES = [
    ("{{ range(3) }}", "not a JSON value: a range (add `| list`)"),
    ("{{ (10**1024) ** 5 }}", OVER + "a number of more than 4,000 digits"),
    ("{{ 'nan' | float }}", "not a JSON value: nan (JSON has no NaN or infinity)"),
    ("{{ {1: 2} }}", "not a JSON value: a mapping with a key that is not a string (1)"),
    ("{{ dict(a=1).keys() }}", "not a JSON value: a dict_keys (add `| list`)"),
    ("{{ 'a'.ljust(10**10) }}", OVER + "a string over 1 MiB"),
    ("{{ '%*s' % (10**10, 'x') }}", OVER + "a string over 1 MiB"),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        OVER + "more than 1,000,000 loop iterations",
    ),
]
FIELDS = [("payload", "a"), ("query", "a"), ("headers", "X-A")]


def write_job(tmp_path: Path, field: str, key: str, template: str) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(field=field, key=key, template=template))
    return job


@pytest.mark.parametrize(("field", "key"), FIELDS)
@pytest.mark.parametrize(("template", "message"), CASES)
def test_a_request_value_plan_and_run_refuse_alike(
    tmp_path: Path, cli: RunCli, field: str, key: str, template: str, message: str
) -> None:
    job = write_job(tmp_path, field, key, template)
    located = f"{job}:9:7: steps[0].{field}.{key}: {message}"

    validated, planned, ran = (
        cli("validate", str(job)),
        cli("plan", str(job)),
        cli(str(job), "--emulate"),
    )

    assert validated.code == 0  # the value is only known when the template renders
    assert (planned.code, f"   fails before sending: {located}\n" in planned.out) == (0, True)
    assert (ran.code, ran.err, ran.out.count(located)) == (1, "", 1)
    assert "s: failed (0 attempts, " in ran.out


@pytest.mark.parametrize(("template", "message"), CASES)
def test_an_output_that_is_not_json_fails_its_step(
    tmp_path: Path, cli: RunCli, template: str, message: str
) -> None:
    job = write_job(tmp_path, "outputs", "a", template)

    ran = cli(str(job), "--emulate")

    assert (ran.code, ran.err) == (1, "")
    assert ran.out.count(f"{job}:9:7: steps[0].outputs.a: {message}") == 1
    assert "s: failed (1 attempt, " in ran.out


@pytest.mark.parametrize(
    ("key", "template", "message"),
    [
        (
            "X-A",
            "{{ vars.text }}",
            "9:7: steps[0].headers.X-A: a header value must be ASCII: 'café'",
        ),
        (
            "X-A",
            "{{ 'a' ~ '\\\\n' ~ 'Injected: yes' }}",
            "9:7: steps[0].headers.X-A: a header value cannot hold control characters or line "
            "breaks: 'a\\nInjected: yes'",
        ),
        (
            "{{ vars.name }}",
            "1",
            "8:5: steps[0].headers[\"X \\u044f\"]: not a valid HTTP header name: 'X я' "
            "(ASCII letters, digits and !#$%&'*+-.^_`|~ only)",
        ),
    ],
    ids=["value not ASCII", "value with a line break", "name not a token"],
)
def test_a_rendered_header_http_cannot_carry_fails_its_step_located(
    tmp_path: Path, cli: RunCli, key: str, template: str, message: str
) -> None:
    job = write_job(tmp_path, "headers", key, template)

    ran = cli(str(job), "--emulate")

    assert (ran.code, ran.err) == (1, "")
    assert "s: failed (0 attempts, " in ran.out
    assert ran.out.count(f"{job}:{message}") == 1
