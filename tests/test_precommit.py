"""The owf-validate pre-commit hook, tried as a user tries it: `pre-commit try-repo`.

try-repo installs the hook's environment afresh on every call (a pip install of this
repository and its dependencies, several seconds), so the module makes one call that covers
every case: a valid job, a broken one, a stub file under jobs/ and a YAML file elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pre_commit", reason="pre-commit is a dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "jobs" / "onboarding.yaml").read_text()
# The broken job: the sample with a typo in its first step's `flow:` key.
BROKEN = SAMPLE.replace("    flow:", "    flw:", 1)
STEP_LINE = next(n for n, line in enumerate(SAMPLE.splitlines(), 1) if line.startswith("  - id:"))
TYPO_LINE = next(n for n, line in enumerate(BROKEN.splitlines(), 1) if line.startswith("    flw:"))

GIT = shutil.which("git")

if GIT is None or not (ROOT / ".git").exists():
    pytest.skip("try-repo needs git and a git checkout of owf-runner", allow_module_level=True)


def _git(repo: Path, *args: str) -> None:
    subprocess.run([str(GIT), *args], cwd=repo, check=True, capture_output=True)


def _user_repository(repo: Path) -> Path:
    files = {
        "jobs/valid.yaml": SAMPLE,
        "jobs/broken.yaml": BROKEN,
        # a stub file is not a job file: the hook's default `exclude` leaves it out
        "jobs/stubs/valid.yaml": (ROOT / "jobs" / "stubs" / "onboarding.yaml").read_text(),
        "config/other.yaml": "not: a job\n",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    return repo


@pytest.fixture(scope="module")
def tried(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    repo = _user_repository(tmp_path_factory.mktemp("user-repo"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PRE_COMMIT_HOME"] = str(tmp_path_factory.mktemp("pre-commit-home"))
    # try-repo takes this checkout's HEAD, plus its uncommitted changes to tracked files.
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "owf-validate"]
    options = ["--all-files", "--verbose", "--color", "never"]
    return subprocess.run(
        [*command, *options], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_broken_job_fails_the_hook_with_file_and_line(
    tried: subprocess.CompletedProcess[str],
) -> None:
    lines = tried.stdout.splitlines()

    assert tried.returncode == 1, tried.stdout + tried.stderr
    assert "- hook id: owf-validate" in lines
    assert "- exit code: 3" in lines
    assert [line for line in lines if line.startswith("jobs/broken.yaml")] == [
        f"jobs/broken.yaml:{STEP_LINE}:5: steps[0].flow: required key is missing",
        f"jobs/broken.yaml:{TYPO_LINE}:5: steps[0].flw: unknown key 'flw'; did you mean 'flow'?",
    ]


def test_a_valid_job_passes_in_the_same_run(tried: subprocess.CompletedProcess[str]) -> None:
    assert "jobs/valid.yaml: ok" in tried.stdout.splitlines()


def test_only_job_files_are_validated(tried: subprocess.CompletedProcess[str]) -> None:
    assert "jobs/stubs/" not in tried.stdout
    assert "config/other.yaml" not in tried.stdout
