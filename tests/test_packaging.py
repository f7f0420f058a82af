"""`python -m build` makes a wheel and an sdist that install into a clean venv and run there.

One wheel, one venv for the module: the venv gets the wheel and its declared dependencies
from the package index (pip's cache makes that a few seconds), nothing from this checkout,
and every command runs in a folder that holds only a copy of the sample job. The sdist is
installed, without dependencies, into a second venv that borrows the first one's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from owf_runner import __version__

pytest.importorskip("build", reason="`python -m build` is a dev extra: pip install -e '.[dev]'")
pytest.importorskip("hatchling", reason="the offline build needs hatchling, a dev extra")

ROOT = Path(__file__).resolve().parent.parent
SITE_PACKAGES = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
JOB = "jobs/onboarding.yaml"
STUBS = "jobs/stubs/onboarding.yaml"


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Install:
    """A venv with owf-runner installed, and a folder to run it in."""

    venv: Path
    work: Path

    def run(self, *args: str, program: str = "owf-run") -> subprocess.CompletedProcess[str]:
        return _run([str(self.venv / "bin" / program), *args], self.work)

    def package_files(self) -> set[str]:
        (record,) = (self.venv / SITE_PACKAGES).glob("owf_runner-*.dist-info/RECORD")
        return _package_files(line.split(",")[0] for line in record.read_text().splitlines())


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["OWF_STATE_DIR"] = str(cwd / "state")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _pip(venv: Path, *args: str) -> None:
    # This venv has no pip of its own (faster to make): the test's pip installs into it.
    command = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    done = _run([*command, "install", "--disable-pip-version-check", "-q", *args], venv)
    assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{done.stderr[-3000:]}"


def _package_files(names: Iterable[str]) -> set[str]:
    return {name for name in names if name.startswith("owf_runner/") and "__pycache__" not in name}


def _new_install(root: Path) -> Install:
    venv, work = root / "venv", root / "work"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    for name in (JOB, STUBS):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, work / name)
    return Install(venv, work)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="module")
def from_wheel(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Install:
    install = _new_install(tmp_path_factory.mktemp("wheel"))
    _pip(install.venv, "--no-compile", str(dist.wheel))
    return install


@pytest.fixture(scope="module")
def from_sdist(
    dist: Dist, from_wheel: Install, tmp_path_factory: pytest.TempPathFactory
) -> Install:
    install = _new_install(tmp_path_factory.mktemp("sdist"))
    # The dependencies the wheel's venv resolved; its own owf_runner comes later on sys.path
    # than this venv's, which the sdist provides.
    (install.venv / SITE_PACKAGES / "dependencies.pth").write_text(
        f"{from_wheel.venv / SITE_PACKAGES}\n"
    )
    _pip(install.venv, "--no-compile", "--no-deps", str(dist.sdist))
    return install


def test_the_version_lives_in_one_place(dist: Dist) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "owf_runner/__init__.py"
    assert dist.wheel.name == f"owf_runner-{__version__}-py3-none-any.whl"
    assert dist.sdist.name == f"owf_runner-{__version__}.tar.gz"


def test_the_wheel_ships_every_file_of_the_package(dist: Dist) -> None:
    in_checkout = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "owf_runner").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }

    with zipfile.ZipFile(dist.wheel) as wheel:
        assert _package_files(wheel.namelist()) == in_checkout


def test_the_sdist_holds_what_a_build_needs(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}

    assert {"pyproject.toml", "README.md", "owf_runner/__init__.py", "owf_runner/cli.py"} <= names


# Each command a user could run first; all start at once (they are independent), except
# history, which reads the journal the emulated run writes.
CHECKS: dict[str, tuple[str, ...]] = {
    "version": ("owf-run", "--version"),
    "help": ("owf-run", "--help"),
    "validate": ("owf-run", "validate", JOB),
    "plan": ("owf-run", "plan", JOB),
    "schema": ("owf-run", "schema"),
    "schema --report": ("owf-run", "schema", "--report"),
    "run --emulate": ("owf-run", JOB, "--emulate", "--quiet"),
    "emulate --help": ("owf-run", "emulate", "--help"),
    "token --help": ("owf-run", "token", "--help"),
    "python -m": ("python", "-m", "owf_runner", "--version"),
}


@pytest.fixture(scope="module")
def ran(from_wheel: Install) -> dict[str, subprocess.CompletedProcess[str]]:
    def check(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return from_wheel.run(*argv[1:], program=argv[0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(CHECKS, pool.map(check, CHECKS.values()), strict=True))
    return {**done, "history": from_wheel.run("history", JOB)}


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("version", f"owf-run {__version__}"),
        ("python -m", f"owf-run {__version__}"),
        ("validate", f"{JOB}: ok"),
        ("plan", f"plan for onboarding ({JOB}): no request is sent"),
    ],
    ids=["version", "python -m", "validate", "plan"],
)
def test_the_installed_command_runs(
    ran: dict[str, subprocess.CompletedProcess[str]], name: str, first_line: str
) -> None:
    assert (ran[name].returncode, ran[name].stderr) == (0, "")
    assert ran[name].stdout.splitlines()[0] == first_line


@pytest.mark.parametrize("name", ["help", "emulate --help", "token --help"])
def test_the_installed_help_ends_with_an_example(
    ran: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    assert (ran[name].returncode, ran[name].stderr) == (0, "")
    assert ran[name].stdout.rstrip().splitlines()[-1].strip().startswith("Example: owf-run ")


@pytest.mark.parametrize(
    ("name", "published"),
    [("schema", "schemas/job.schema.json"), ("schema --report", "schemas/report.schema.json")],
)
def test_the_installed_schema_is_the_published_one(
    ran: dict[str, subprocess.CompletedProcess[str]], name: str, published: str
) -> None:
    assert ran[name].returncode == 0
    assert json.loads(ran[name].stdout) == json.loads((ROOT / published).read_text())


def test_an_emulated_run_then_its_history(
    ran: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    run, history = ran["run --emulate"], ran["history"]

    assert (run.returncode, run.stdout) == (0, "")
    assert history.returncode == 0
    assert "succeeded (emulated)" in history.stdout.splitlines()[1]


def test_the_sdist_installs_the_same_package(from_wheel: Install, from_sdist: Install) -> None:
    where = from_sdist.run("-c", "import owf_runner; print(owf_runner.__file__)", program="python")
    ran = from_sdist.run(JOB, "--emulate", "--quiet")

    assert where.stdout.startswith(str(from_sdist.venv / SITE_PACKAGES / "owf_runner"))
    assert from_sdist.package_files() == from_wheel.package_files()
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
