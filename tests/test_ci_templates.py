"""The CI templates in docs/ci/ are valid for their CI service, and their commands work.

Each template is checked against the schema its service publishes, as check-jsonschema bundles
it (offline: a proxy that refuses every connection is set, so a download would fail the test),
and its validate and rehearse steps are run, as written, on a copy of this repository's jobs/,
with the owf-run of this checkout. Only the `pip install` step is left out: it needs the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "docs" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
BIN = Path(sys.executable).parent  # the venv that runs the tests has owf-run
JOBS = sorted(path.stem for path in (ROOT / "jobs").glob("*.yaml"))  # this repository's jobs
INSTALL = 'python -m pip install "$OWF_RUNNER_PACKAGE"'
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
REFUSING_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection fails

# As check-jsonschema's own pre-commit hooks (check-github-workflows, check-gitlab-ci) run it.
SCHEMA_ARGS = {
    GITHUB: ["--builtin-schema", "vendor.github-workflows"],
    GITLAB: [
        *("--builtin-schema", "vendor.gitlab-ci"),
        *("--data-transform", "gitlab-ci", "--regex-variant", "nonunicode"),
    ],
}
GITHUB_SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]  # `shell: bash`
GITLAB_SHELL = ["sh", "-e", "-c"]  # POSIX sh: stricter than the bash of the python image

# Valid YAML, not a valid job: its rehearsal exits 3 at once, and the next job must still run.
INVALID_JOB = "version: 1\nname: a_invalid\nstepz: []\n"


@dataclass(frozen=True)
class Pipeline:
    """What a template runs: its environment, then scripts in order."""

    env: dict[str, str]
    shell: list[str]
    scripts: list[str]
    one_shell: bool  # GitLab runs a job's script lines in one shell; GitHub each step in its own
    skipped: list[str]  # the commands the test does not run (the install)
    published: list[str]  # globs of the files the CI service keeps
    kept_on_failure: bool  # ... also when the check failed


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def github() -> Pipeline:
    workflow = load(GITHUB)
    (job,) = workflow["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    (upload,) = [step for step in job["steps"] if "upload-artifact" in step.get("uses", "")]
    env = {**workflow["env"], **job.get("env", {})}
    path = upload["with"]["path"].replace("${{ env.REPORTS }}", env["REPORTS"])
    return Pipeline(
        env=env,
        shell=GITHUB_SHELL,
        scripts=[run for run in runs if "owf-run" in run],
        one_shell=False,
        skipped=[run for run in runs if "owf-run" not in run],
        published=[path + "*"],
        kept_on_failure=upload["if"] == "always()",
    )


def gitlab() -> Pipeline:
    job = load(GITLAB)["owf-jobs"]
    artifacts = job["artifacts"]
    return Pipeline(
        env=job["variables"],
        shell=GITLAB_SHELL,
        scripts=job["script"],
        one_shell=True,
        skipped=job["before_script"],
        published=[*(path + "*" for path in artifacts["paths"]), artifacts["reports"]["junit"]],
        kept_on_failure=artifacts["when"] == "always",
    )


PIPELINES = {"github": github, "gitlab": gitlab}


def needs_check_jsonschema() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (a dev extra: pip install -e '.[dev]')")


def check_jsonschema(template: Path, instance: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", *SCHEMA_ARGS[template], str(instance)]
    env = {name: value for name, value in os.environ.items() if name.lower() not in PROXY_VARIABLES}
    env |= dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"), REFUSING_PROXY)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def workspace(tmp_path: Path, *extra_jobs: tuple[str, str]) -> Path:
    """A checkout of a user's repository: this repository's jobs/, and any extra job files."""
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    for name, text in extra_jobs:
        (tmp_path / "jobs" / name).write_text(text, encoding="utf-8")
    return tmp_path


def run_scripts(pipeline: Pipeline, cwd: Path, scripts: list[str]) -> tuple[int, str, str]:
    """Run the scripts in order, each in its own shell, up to the first that fails.

    The exit code of the last one run, and what they all printed.
    """
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(cwd), **pipeline.env}
    code, out, err = 0, "", ""
    for script in ["\n".join(scripts)] if pipeline.one_shell else scripts:
        command = [*pipeline.shell, script]
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        code, out, err = result.returncode, out + result.stdout, err + result.stderr
        if code != 0:
            break
    return code, out, err


def report_files(*jobs: str) -> set[str]:
    return {f"owf-reports/{job}.{suffix}" for job in jobs for suffix in ("xml", "html", "json")}


def published(pipeline: Pipeline, workspace: Path) -> set[str]:
    found = (path for pattern in pipeline.published for path in workspace.glob(pattern))
    return {path.relative_to(workspace).as_posix() for path in found}


# -- the templates are valid for their CI service ----------------------------------------


@pytest.mark.parametrize("template", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_template_is_valid_by_its_published_schema(template: Path) -> None:
    needs_check_jsonschema()
    result = check_jsonschema(template, template)
    assert (result.returncode, result.stdout.strip()) == (0, "ok -- validation done"), result


@pytest.mark.parametrize(
    ("template", "breakage", "error"),
    [
        (
            GITHUB,
            ("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"),
            "$.jobs['owf-jobs']: 'runs-on' is a required property",
        ),
        (
            GITLAB,
            ("when: always", "when: allways"),
            "$['owf-jobs'].artifacts.when: 'allways' is not one of",
        ),
    ],
    ids=["github", "gitlab"],
)
def test_the_schema_check_rejects_a_broken_copy(
    tmp_path: Path, template: Path, breakage: tuple[str, str], error: str
) -> None:
    needs_check_jsonschema()
    text = template.read_text(encoding="utf-8")
    assert breakage[0] in text
    broken = tmp_path / template.name
    broken.write_text(text.replace(*breakage), encoding="utf-8")
    result = check_jsonschema(template, broken)
    assert result.returncode == 1
    assert error in result.stdout


# -- their commands work --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    repo: Path
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    """Each template's steps on a plain copy of jobs/ ("passing"), and its rehearse step alone
    on a copy with an invalid job first ("failing"): run side by side, as owf-run's start-up
    is most of what they cost."""

    def run(key: tuple[str, str]) -> Outcome:
        name, scenario = key
        pipeline = PIPELINES[name]()
        extra = [("a_invalid.yaml", INVALID_JOB)] if scenario == "failing" else []
        repo = workspace(tmp_path_factory.mktemp(f"{name}-{scenario}"), *extra)
        scripts = pipeline.scripts if scenario == "passing" else pipeline.scripts[-1:]
        return Outcome(repo, *run_scripts(pipeline, repo, scripts))

    keys = [(name, scenario) for name in PIPELINES for scenario in ("passing", "failing")]
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return dict(zip(keys, pool.map(run, keys), strict=True))


@pytest.mark.parametrize("name", PIPELINES)
def test_validate_and_rehearse_steps_pass_and_publish_every_report(
    outcomes: dict[tuple[str, str], Outcome], name: str
) -> None:
    outcome = outcomes[name, "passing"]
    assert outcome.code == 0, outcome.err
    assert JOBS
    assert all(f"jobs/{job}.yaml: ok" in outcome.out for job in JOBS)
    expected = report_files(*JOBS)
    assert all((outcome.repo / path).stat().st_size > 0 for path in expected)
    assert published(PIPELINES[name](), outcome.repo) == expected
    assert (outcome.repo / ".owf-state" / "runs.sqlite3").is_file()  # the rehearsals' journal


@pytest.mark.parametrize("name", PIPELINES)
def test_a_failed_rehearsal_fails_the_step_after_every_job_is_rehearsed(
    outcomes: dict[tuple[str, str], Outcome], name: str
) -> None:
    outcome = outcomes[name, "failing"]
    assert outcome.code == 1
    assert "jobs/a_invalid.yaml:3:1: stepz: unknown key 'stepz'" in outcome.err
    assert "owf-run jobs/a_invalid.yaml --emulate exited 3" in outcome.out
    # the next job was still rehearsed and reported
    assert published(PIPELINES[name](), outcome.repo) == report_files(*JOBS)


@pytest.mark.parametrize("name", PIPELINES)
def test_the_reports_are_kept_also_when_the_check_fails(name: str) -> None:
    assert PIPELINES[name]().kept_on_failure


@pytest.mark.parametrize("name", PIPELINES)
def test_only_the_install_is_left_out_of_the_test(name: str) -> None:
    pipeline = PIPELINES[name]()
    assert pipeline.skipped == [INSTALL]
    assert pipeline.env["OWF_RUNNER_PACKAGE"] == "./owf-runner"


def test_no_github_expression_is_spliced_into_a_script() -> None:
    # `${{ ... }}` in a `run:` is pasted into the script before the shell sees it: a branch
    # name or a title could inject commands. Values reach scripts through the environment.
    assert not [script for script in github().scripts if "${{" in script]
