"""Static checks: literal URLs (owf_runner/urls.py) and template references (checks.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from owf_runner.errors import ExitCode, JobError
from owf_runner.loader import LoadedJob, load_job
from owf_runner.templating import render_value
from owf_runner.urls import is_loopback, url_problem

HOST_RULE = "ASCII letters, digits, -, _ and . only; an international name in its xn-- form"

# -- URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://acme.okta.com/x", None),
        ("http://127.0.0.1/x", None),
        ("http://acme.okta.com/x", "expected an https URL, found 'http://acme.okta.com/x'"),
        ("ftp://acme.okta.com/x", "expected an https URL, found 'ftp://acme.okta.com/x'"),
        ("https:///nohost", "expected an https URL, found 'https:///nohost'"),
        ("acme.okta.com/x", "expected an https URL, found 'acme.okta.com/x'"),
        (
            "https://user@acme.okta.com/x",
            "URLs with user info (user@host) are refused: credentials belong in `credentials`",
        ),
        (
            "http://u:p@127.0.0.1/x",
            "URLs with user info (user@host) are refused: credentials belong in `credentials`",
        ),
        ("https://acme.workflows.okta.com/api/flo/abc/invoke", None),
        ("https://acme.workflows.okta.com:443/api/flo/abc/invoke", None),
        ("https://a_b.example.com/x", None),
        ("https://xn--mnchen-3ya.example/api", None),
        ("https://192.0.2.1:8443/x", None),
        ("http://127.0.0.1:8080/x", None),
        ("http://[::1]:80/x", None),
        ("http://localhost:1/x", None),
        ("https://x:99999/a", "invalid URL 'https://x:99999/a': Port out of range 0-65535"),
        ("https://x:0/a", "invalid URL 'https://x:0/a': port 0"),
        (
            "https://x:abc/a",
            "invalid URL 'https://x:abc/a': Port could not be cast to integer value as 'abc'",
        ),
        ("https://a..b/", f"invalid URL 'https://a..b/': 'a..b' is not a host name ({HOST_RULE})"),
        (
            "https://münchen.example/",
            "invalid URL 'https://münchen.example/': "
            f"'münchen.example' is not a host name ({HOST_RULE})",
        ),
        (
            "https://exa mple.com/",
            f"invalid URL 'https://exa mple.com/': 'exa mple.com' is not a host name ({HOST_RULE})",
        ),
        (
            "https://-a.com/",
            f"invalid URL 'https://-a.com/': '-a.com' is not a host name ({HOST_RULE})",
        ),
        (
            "https://a\nb.com/",
            "invalid URL 'https://a\\nb.com/': Invalid non-printable ASCII character in URL, "
            "'\\n' at position 9.",
        ),
        ("https://[::1/", "invalid URL 'https://[::1/': Invalid IPv6 URL"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("localhost.evil.com", False),
        ("127.0.0.1.evil.com", False),
        ("acme.okta.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_http_to_a_host_that_looks_like_loopback_is_refused() -> None:
    url = "http://127.0.0.1.evil.com/x"

    assert url_problem(url) == f"expected an https URL, found {url!r}"


# -- template references -------------------------------------------------------------

# Two steps: the first one's payload holds the template under test, so a reference
# to `steps.later` names a later step. `vars` defines `known` only.
JOB = """\
version: 1
vars:
  known: 1
orgs:
  acme: {{domain: acme.okta.com, credential: public}}
credentials:
  public: {{type: none}}
steps:
  - id: first
    flow: https://acme.workflows.okta.com/api/flo/first/invoke
    payload: {{a: {template}}}
  - id: later
    flow: https://acme.workflows.okta.com/api/flo/later/invoke
"""
AT = "11:15: steps[0].payload.a"


def job_file(tmp_path: Path, template: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(template=json.dumps(template)), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(JobError) as info:
        load_job(path)
    assert info.value.exit_code == ExitCode.INVALID_JOB
    return [str(problem) for problem in info.value.problems]


@pytest.mark.parametrize(
    "template",
    [
        "{% if vars.x is defined %}{{ vars.x }}{% endif %}",
        "{{ vars.x if vars.x is defined else 1 }}",
        "{{ vars.a.b | default(1) }}",
        "{{ vars.x is defined and vars.known }}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
        "{{ range(3) | list }}",
        "{% set y = 1 %}{{ y }}",
        "{{ vars.known }} and {{ vars['known'] }}",
    ],
)
def test_guarded_or_locally_bound_references_are_accepted(tmp_path: Path, template: str) -> None:
    loaded = load_job(job_file(tmp_path, template))

    assert isinstance(loaded, LoadedJob)
    assert loaded.job.steps[0].payload == {"a": template}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{% if vars.x is defined %}{{ vars.x }}{% endif %}", ""),
        ("{{ vars.x if vars.x is defined else 1 }}", 1),
        ("{{ vars.a.b | default(1) }}", 1),
        ("{{ range(3) | list }}", [0, 1, 2]),
        ("{% set y = 1 %}{{ y }}", "1"),
    ],
)
def test_accepted_templates_also_render_without_the_variable(
    template: str, rendered: object
) -> None:
    assert render_value(template, {"vars": {}}) == rendered


UNKNOWN_X = "unknown variable 'x' (define it under `vars` or pass --var)"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ vars[steps.later.outputs.k] }}",
            "steps.later names a later step; templates can only use earlier steps",
        ),
        ("{% if vars.x is defined %}{% endif %}{{ vars.x }}", UNKNOWN_X),
        ("{% if vars.x is defined %}{% else %}{{ vars.x }}{% endif %}", UNKNOWN_X),
        ("{{ vars.x if vars.y is defined else 1 }}", UNKNOWN_X),
        ("{{ vars.x if vars.x is defined else vars.x }}", UNKNOWN_X),
        ("{{ vars['x'] }}", UNKNOWN_X),
        ("{{ vars.a.b }}", "unknown variable 'a' (define it under `vars` or pass --var)"),
        ("{{ y }}", "unknown name 'y' in template (available: env, job, run, steps, vars)"),
        (
            "{{ steps.first.outputs.id }}",
            "steps.first is this step; templates can only use earlier steps",
        ),
    ],
)
def test_unguarded_or_forward_references_are_refused(
    tmp_path: Path, template: str, message: str
) -> None:
    path = job_file(tmp_path, template)

    assert problems_of(path) == [f"{path}:{AT}: {message}"]


def test_loop_variable_used_outside_its_loop_is_refused(tmp_path: Path) -> None:
    path = job_file(tmp_path, "{% for i in range(3) %}{% endfor %}{{ i }}")

    assert problems_of(path) == [
        f"{path}:{AT}: unknown name 'i' in template (available: env, job, run, steps, vars)"
    ]


# -- headers ---------------------------------------------------------------------------


def test_templated_header_names_and_values_are_checked_when_they_render(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        JOB.format(template='"x"').replace(
            '    payload: {a: "x"}\n',
            '    headers: {"{{ vars.known }}-X": "{{ vars.known }}\\n"}\n',
        ),
        encoding="utf-8",
    )

    loaded = load_job(path)

    assert dict(loaded.job.steps[0].headers) == {"{{ vars.known }}-X": "{{ vars.known }}\n"}
