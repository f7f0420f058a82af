"""`owf-run plan`: known values rendered as the run renders them, run-time ones by expression."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from owf_runner.redaction import MASK
from tests.conftest import DATA, Cli

RunCli = Callable[..., Cli]
PLANS = DATA / "plan"
RETRY = (
    "   retry: 4 attempts on connect, throttled, unavailable; backoff 1-30s; max wait 300s; "
    "rate limit 10/s"
)


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan needs no secret: the job's client token is deliberately not set.
    monkeypatch.delenv("PLAN_HOOK_TOKEN", raising=False)


def test_plan_renders_known_values_and_names_run_time_ones(cli: RunCli) -> None:
    job = PLANS / "lookup.yaml"

    result = cli("plan", str(job))

    assert (result.code, result.err) == (0, "")
    assert result.out == EXPECTED_LOOKUP_PLAN.format(job=job, retry=RETRY)


def test_plan_never_reports_a_failure_that_depends_on_run_time_data(cli: RunCli) -> None:
    # `steps.lookup.outputs.id | length` failed on a placeholder before; the run succeeds.
    result = cli("plan", str(PLANS / "lookup.yaml"))

    assert "fails" not in result.out
    assert "Placeholder" not in result.out


ONE_STEP = """\
version: 1
vars: {{host: evil.example}}
orgs: {{acme: {{domain: acme.okta.com, credential: open}}}}
credentials: {{open: {{type: none}}}}
steps:
  - id: s
{step}"""
FLOW = "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            FLOW + '    payload: {region: "{{ env.PLAN_REGION_THAT_IS_NOT_SET }}"}\n',
            "8:15: steps[0].payload.region: undefined: "
            "'dict object' has no attribute 'PLAN_REGION_THAT_IS_NOT_SET'",
        ),
        (
            FLOW + '    payload: {r: "{{ range(3) }}"}\n',
            "8:15: steps[0].payload.r: not a JSON value: a range (add `| list`)",
        ),
        (
            '    flow: "http://{{ vars.host }}/api/flo/f/invoke"\n',
            "7:5: steps[0].flow: expected an https URL, "
            "found 'http://evil.example/api/flo/f/invoke'",
        ),
        (
            FLOW + """    headers: {X-Host: "{{ vars.host ~ ' ' }}"}\n""",
            "8:15: steps[0].headers.X-Host: a header value cannot start or end with a space: "
            "'evil.example '",
        ),
    ],
    ids=["undefined env", "not JSON", "templated http URL", "rendered header"],
)
def test_plan_reports_the_failure_the_run_has_in_the_same_words(
    tmp_path: Path, cli: RunCli, step: str, message: str
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(ONE_STEP.format(step=step))

    planned = cli("plan", str(job))
    ran = cli(str(job), "--emulate")

    assert planned.code == 0
    assert f"   fails before sending: {job}:{message}\n" in planned.out
    assert (ran.code, ran.err) == (1, "")
    assert "s: failed (0 attempts, " in ran.out
    assert ran.out.count(f"{job}:{message}") == 1


def test_a_failed_step_in_the_plan_does_not_hide_the_next(cli: RunCli) -> None:
    result = cli("plan", str(PLANS / "env_missing.yaml"))

    assert "   fails before sending: " in result.out
    assert "   POST https://acme.workflows.okta.com/api/flo/second/invoke\n" in result.out


def test_plan_shows_the_first_ten_rows_of_a_csv_and_counts_the_rest(cli: RunCli) -> None:
    result = cli("plan", str(PLANS / "csv.yaml"))

    shown = [line for line in result.out.splitlines() if line.startswith("   [item ")]
    assert len(shown) == 10
    assert '       "email": "u10@example.com",' in result.out.splitlines()
    assert "u11@example.com" not in result.out
    assert result.out.endswith("   ... and 2 more items\n\n")


def test_plan_of_a_missing_csv_says_what_the_run_would_say(tmp_path: Path, cli: RunCli) -> None:
    # Named by a template: the checks leave it to the plan (a literal name: test_invalid_jobs).
    job = tmp_path / "job.yaml"
    named = "\"{{ 'gone' }}.csv\""
    job.write_text((PLANS / "csv.yaml").read_text().replace("users.csv", named))

    result = cli("plan", str(job))

    assert result.code == 0
    assert (
        f"   fails before sending: {job}:9:15: steps[0].foreach.csv: "
        f"cannot read {tmp_path / 'gone.csv'}: No such file or directory\n"
    ) in result.out


def test_plan_of_an_invalid_job_exits_3(cli: RunCli) -> None:
    result = cli("plan", str(DATA / "invalid" / "unknown_var.yaml"))

    assert result.code == 3
    assert result.out == ""
    assert result.err.startswith(f"{DATA / 'invalid' / 'unknown_var.yaml'}:")


EXPECTED_LOOKUP_PLAN = """\
plan for lookup ({job}): no request is sent

1. lookup: POST via org acme (client token header)
{retry}
   POST https://acme.workflows.okta.com/api/flo/lookup/invoke
     payload: {{
       "name": "Ada",
       "apps": [
         "slack",
         "github"
       ],
       "count": 2
     }}

2. assign: POST via org acme (client token header)
{retry}
   [item 0] POST https://acme.workflows.okta.com/api/flo/assign/invoke
     payload: {{
       "app": "slack",
       "position": 0,
       "length": "<steps.lookup.outputs.id | length>",
       "greeting": "Hi Ada (<steps.lookup.outputs.id>) on slack",
       "run": "<run.id>"
     }}
   [item 1] POST https://acme.workflows.okta.com/api/flo/assign/invoke
     payload: {{
       "app": "github",
       "position": 1,
       "length": "<steps.lookup.outputs.id | length>",
       "greeting": "Hi Ada (<steps.lookup.outputs.id>) on github",
       "run": "<run.id>"
     }}

3. per_user: POST via org acme (client token header)
{retry}
   runs only if: {{{{ steps.lookup.status == 'succeeded' }}}}
   [for each item of <steps.lookup.outputs.users>] POST https://acme.workflows.okta.com/api/flo/notify/invoke
     payload: {{
       "email": "<item.email>",
       "app": "slack"
     }}

4. never: POST via org acme (client token header)
{retry}
   skipped: `when` is false ({{{{ vars.name == 'Grace' }}}})

"""


SECRET_REFS_JOB = """\
version: 1
orgs:
  acme: {domain: acme.okta.com, credential: hook}
  spare: {domain: acme.okta.com, credential: jwt}
credentials:
  hook: {type: client_token, token: {env: PLAN_CANARY_TOKEN}}
  jwt: {type: private_key_jwt, client_id: 0oaX, key_id: k, private_key: {env: PLAN_CANARY_KEY}}
  made: {type: client_token, token: {command: [touch, ran-a-command]}}
steps:
  - id: s
    org: acme
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    headers: {X-Echo: "{{ env.PLAN_CANARY_TOKEN }}"}
    payload: {token: "{{ env.PLAN_CANARY_TOKEN }}", key: "{{ env.PLAN_CANARY_KEY }}"}
"""


def test_plan_masks_env_values_that_credentials_name_and_runs_no_command(
    tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, key = f"plan-token-{tmp_path.name}", f"plan-key-{tmp_path.name}"
    monkeypatch.setenv("PLAN_CANARY_TOKEN", token)
    monkeypatch.setenv("PLAN_CANARY_KEY", key)  # an unused credential's secret, still masked
    monkeypatch.chdir(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(SECRET_REFS_JOB)

    result = cli("plan", str(job))

    assert (result.code, result.err) == (0, "")
    assert f'     headers: {{\n       "X-Echo": "{MASK}"\n     }}\n' in result.out
    assert f'       "token": "{MASK}",\n       "key": "{MASK}"\n' in result.out
    assert token not in result.out
    assert key not in result.out
    assert not (tmp_path / "ran-a-command").exists()
    assert not (tmp_path / "job.yaml").with_name("ran-a-command").exists()


def test_plan_escapes_control_characters_in_what_it_prints(tmp_path: Path, cli: RunCli) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(ONE_STEP.format(step=FLOW + '    payload: {note: "a\\u202eb\\u0007"}\n'))

    result = cli("plan", str(job))

    assert (result.code, result.err) == (0, "")
    # JSON escapes BEL itself; the sink escapes the bidi override, which JSON leaves as is.
    assert '       "note": "a\\u202eb\\u0007"\n' in result.out


def test_plan_shows_a_csv_row_the_run_fails_unsent(tmp_path: Path, cli: RunCli) -> None:
    (tmp_path / "rows.csv").write_text("login,name\nada,Ada\nbob\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        ONE_STEP.format(
            step=FLOW + "    foreach: {csv: rows.csv}\n    payload: {login: '{{ item.login }}'}\n"
        )
    )

    result = cli("plan", str(job))

    assert result.code == 0
    assert f"   [item 1] fails before sending: {tmp_path / 'rows.csv'}:3: 1 field, " in result.out
    assert "but the header names 2\n" in result.out


def test_plan_names_items_by_label_and_leaves_out_what_where_filters(
    tmp_path: Path, cli: RunCli
) -> None:
    (tmp_path / "rows.csv").write_text("login,on\nada,yes\nbob,no\ncy\ndee,yes\n")
    step = (
        FLOW
        + "    foreach: {csv: rows.csv, where: \"{{ item.on == 'yes' }}\"}\n"
        + '    label: "{{ item.login }}"\n'
        + "    payload: {login: '{{ item.login }}'}\n"
    )
    job = tmp_path / "job.yaml"
    job.write_text(ONE_STEP.format(step=step))

    result = cli("plan", str(job))

    assert result.code == 0
    shown = [line for line in result.out.splitlines() if line.startswith("   [") or "..." in line]
    assert shown == [
        "   [item 0: ada] POST https://acme.workflows.okta.com/api/flo/f/invoke",
        f"   [item 2] fails before sending: {tmp_path / 'rows.csv'}:4: 1 field, "
        "but the header names 2",
        "   [item 3: dee] POST https://acme.workflows.okta.com/api/flo/f/invoke",
        "   ... 1 left out by where",
    ]


def test_plan_says_a_where_that_needs_the_run_and_shows_every_item(
    tmp_path: Path, cli: RunCli
) -> None:
    (tmp_path / "rows.csv").write_text("login\nada\nbob\n")
    step = (
        FLOW
        + '    foreach: {csv: rows.csv, where: "{{ item.login != run.id }}"}\n'
        + "    payload: {login: '{{ item.login }}'}\n"
    )
    job = tmp_path / "job.yaml"
    job.write_text(ONE_STEP.format(step=step))

    result = cli("plan", str(job))

    assert result.code == 0
    assert "   ... only the items for which the run finds {{ item.login != run.id }} true\n" in (
        result.out
    )
    assert "fails before sending" not in result.out
    assert "   [item 1] POST " in result.out
