"""The scheduler files in docs/deploy/ are valid for their scheduler, and do what they say.

Each validator users would run is run here, with a broken copy to prove it can fail:
kubernetes-validate (Kubernetes 1.30, strict, offline) for the manifests, `systemd-analyze
verify` for the units, a cron field check for the crontab. Every `owf-run` command line in
docs/deploy parses with owf-run's own parser, and each scheduler's command runs the example
job of the ConfigMap against the built-in emulator, with the secrets wired as the files say.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.exceptions import TyperException

from owf_runner.cli import COMMANDS, app

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"
K8S = DEPLOY / "kubernetes"
CRONTAB = DEPLOY / "crontab"
SERVICE = DEPLOY / "owf-run@.service"
TIMER = DEPLOY / "owf-run@.timer"
README = DEPLOY / "README.md"
BIN = Path(sys.executable).parent  # the venv that runs the tests has owf-run
KUBERNETES_VERSION = "1.30"  # bundled by every kubernetes-validate the dev extra allows
MANIFESTS = sorted(K8S.glob("*.yaml"))
INSTANCE = "nightly"  # owf-run@nightly.service
HOOK_TOKEN = "hook-client-token-0123456789abcdefghijklmnop"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load(K8S / name)
    return document


CRONJOB = manifest("cronjob.yaml")
POD = CRONJOB["spec"]["jobTemplate"]["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
ENV = {variable["name"]: variable for variable in CONTAINER["env"]}
MOUNTS = {mount["name"]: mount for mount in CONTAINER["volumeMounts"]}
VOLUMES = {volume["name"]: volume for volume in POD["volumes"]}


# -- owf-run's own parser ------------------------------------------------------------------

COMMAND_GROUP = typer.main.get_command(app)


def parse(argv: list[str]) -> dict[str, Any]:
    """owf-run's parameters for argv (after `owf-run`), as its CLI reads them; raises on error."""
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["run", *argv]  # `owf-run JOB` is `owf-run run JOB`, as cli.main has it
    name, *rest = argv
    command = COMMAND_GROUP.commands[name]
    with command.make_context(f"owf-run {name}", rest) as context:
        return dict(context.params)


def owf_run_argv(tokens: list[str]) -> Iterator[list[str]]:
    """The arguments of each owf-run in a tokenised shell command, up to its end."""
    for index, token in enumerate(tokens):
        if Path(token).name == "owf-run":
            rest = tokens[index + 1 :]
            ends = [i for i, t in enumerate(rest) if t in {"&&", "||", "|", ";"}]
            yield rest[: ends[0]] if ends else rest


# -- where the command lines are -------------------------------------------------------------


@dataclass(frozen=True)
class CronEntry:
    fields: list[str]
    command: str


CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("dow", 0, 7)]
CRON_ITEM = re.compile(r"^(?:\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$")
ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def cron_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def cron_env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in cron_lines(text) if ENV_LINE.match(line))
    return dict(pairs)


def cron_entries(text: str) -> list[CronEntry]:
    lines = [line for line in cron_lines(text) if not ENV_LINE.match(line)]
    return [parse_cron_entry(line) for line in lines]


def parse_cron_entry(line: str) -> CronEntry:
    """Five time fields, each valid, then the command; ValueError naming the first problem."""
    parts = line.split(None, 5)
    if len(parts) < 6:
        raise ValueError(f"expected 5 time fields and a command: {line!r}")
    for (name, low, high), field in zip(CRON_FIELDS, parts[:5], strict=True):
        check_cron_field(name, field, low, high)
    return CronEntry(parts[:5], parts[5])


def check_cron_field(name: str, field: str, low: int, high: int) -> None:
    for item in field.split(","):
        match = CRON_ITEM.match(item)
        bounds = [int(n) for n in match.groups()[:2] if n] if match else []
        step = int(match[3]) if match and match[3] else 1
        if not match or not all(low <= n <= high for n in bounds) or step == 0:
            raise ValueError(f"{name} field {field!r} is not valid ({low}-{high})")


def unit(path: Path) -> list[tuple[str, str, str]]:
    """A systemd unit file as (section, key, value) lines: keys may repeat."""
    entries, section = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and line[0] not in "#;":
            key, _, value = line.partition("=")
            entries.append((section, key, value))
    return entries


def setting(path: Path, key: str) -> str:
    values = [value for _, name, value in unit(path) if name == key]
    assert len(values) == 1, f"{path.name}: {key}= {values}"
    return values[0]


def seconds(value: str) -> int:
    """A systemd time span such as 60, 90s or 2min, in seconds."""
    match = re.fullmatch(r"(\d+)\s*(s|min|h)?", value)
    assert match, f"not a time span this test reads: {value!r}"
    return int(match[1]) * {None: 1, "s": 1, "min": 60, "h": 3600}[match[2]]


def exec_start_argv() -> list[str]:
    return shlex.split(setting(SERVICE, "ExecStart").replace("%i", INSTANCE))


def readme_commands() -> Iterator[list[str]]:
    """The owf-run command lines of the README's shell blocks, and its `args: [...]`."""
    text = README.read_text(encoding="utf-8")
    for span in re.findall(r"`(args: \[[^`]*\])`", text):
        yield yaml.safe_load(span)["args"]
    for block in re.findall(r"^```(?:sh|crontab)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            yield from owf_run_argv(shlex.split(line, comments=True))


def all_command_lines() -> dict[str, list[str]]:
    """Every owf-run command line of docs/deploy, by where it is."""
    found = {
        "crontab": next(owf_run_argv(shlex.split(cron_entries(CRONTAB.read_text())[0].command))),
        "owf-run@.service": exec_start_argv()[1:],
        "cronjob.yaml": CONTAINER["args"],
        "resume-job.yaml": resume_container()["args"],
    }
    found.update({f"README.md:{i}": argv for i, argv in enumerate(readme_commands(), 1)})
    return found


def resume_container() -> dict[str, Any]:
    (container,) = manifest("resume-job.yaml")["spec"]["template"]["spec"]["containers"]
    return dict(container)


COMMAND_LINES = all_command_lines()
SCHEDULED = ["crontab", "owf-run@.service", "cronjob.yaml"]


# -- Kubernetes ------------------------------------------------------------------------------


def kubernetes_validate() -> Any:
    return pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (a dev extra)"
    )


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_is_valid_for_kubernetes(path: Path) -> None:
    validator = kubernetes_validate()
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents
    for document in documents:
        assert validator.validate(document, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        (("restartPolicy:", "restartpolicy:"), "('restartpolicy' was unexpected)"),
        (("backoffLimit: 0", "backoffLimit: none"), "'none' is not of type 'integer'"),
    ],
)
def test_kubernetes_validate_rejects_a_broken_cronjob(
    breakage: tuple[str, str], error: str
) -> None:
    validator = kubernetes_validate()
    text = (K8S / "cronjob.yaml").read_text(encoding="utf-8")
    assert breakage[0] in text
    broken = yaml.safe_load(text.replace(*breakage))
    with pytest.raises(validator.ValidationError, match=re.escape(error)):
        validator.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_cronjob_never_overlaps_nor_retries_a_run() -> None:
    assert CRONJOB["spec"]["concurrencyPolicy"] == "Forbid"
    assert CRONJOB["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    assert POD["restartPolicy"] == "Never"


def test_the_pod_has_longer_than_grace_to_stop() -> None:
    assert POD["terminationGracePeriodSeconds"] > parse(CONTAINER["args"])["grace"]


def test_the_pod_runs_as_non_root_and_writes_only_its_volumes() -> None:
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] != 0
    context = CONTAINER["securityContext"]
    assert (context["readOnlyRootFilesystem"], context["allowPrivilegeEscalation"]) == (True, False)
    writable = {
        name: volume_type(name) for name, mount in MOUNTS.items() if not mount.get("readOnly")
    }
    assert writable == {"state": "persistentVolumeClaim", "tmp": "emptyDir"}


def volume_type(name: str) -> str:
    (kind,) = VOLUMES[name].keys() - {"name"}
    return str(kind)


def test_the_state_dir_is_a_directory_inside_the_claim() -> None:
    claim = VOLUMES["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == manifest("pvc.yaml")["metadata"]["name"]
    state_dir = Path(ENV["OWF_STATE_DIR"]["value"])
    # not the mount's root: fsGroup leaves that group-writable, which owf-run refuses
    assert state_dir.parent == Path(MOUNTS["state"]["mountPath"])


def test_the_job_file_is_the_configmaps_at_a_path_that_never_changes() -> None:
    mount, configmap = MOUNTS["job"], manifest("configmap.yaml")
    assert VOLUMES["job"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert mount["subPath"] in configmap["data"]  # a file, not a timestamped directory's link
    assert parse(CONTAINER["args"])["job"] == Path(mount["mountPath"])


def test_the_secret_reaches_the_job_as_an_environment_variable_and_as_a_file() -> None:
    secret = manifest("secret.yaml")
    job = yaml.safe_load(manifest("configmap.yaml")["data"]["nightly.yaml"])
    credentials = job["credentials"]
    from_env = ENV[credentials["acme_hooks"]["token"]["env"]]["valueFrom"]["secretKeyRef"]
    key_file = Path(credentials["acme_invoker"]["private_key"]["file"])
    volume = VOLUMES["secrets"]["secret"]
    (item,) = volume["items"]
    assert from_env["name"] == volume["secretName"] == secret["metadata"]["name"]
    assert {from_env["key"], item["key"]} <= secret["stringData"].keys()
    assert key_file == Path(MOUNTS["secrets"]["mountPath"]) / item["path"]


def test_the_resume_job_is_the_cronjobs_pod_with_resume() -> None:
    resume = manifest("resume-job.yaml")
    pod = resume["spec"]["template"]
    cron_pod = CRONJOB["spec"]["jobTemplate"]["spec"]["template"]
    assert without_args(pod) == without_args(cron_pod)
    assert resume["spec"]["backoffLimit"] == 0
    assert resume_container()["args"][: len(CONTAINER["args"])] == CONTAINER["args"]
    assert parse(resume_container()["args"])["resume"] is True
    # what its comment says to add, for a given run or unknown outcomes
    parse([*resume_container()["args"], "--run", "20261129T021500Z-3fa2c1", "--retry-unknown"])


def without_args(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["containers"]
    others = {key: value for key, value in container.items() if key != "args"}
    return {**pod, "spec": {**pod["spec"], "containers": [others]}}


# -- systemd ---------------------------------------------------------------------------------


def systemd_analyze(units: Path, *names: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (no systemd here): units not verified")
    command = ["systemd-analyze", "verify", "--man=no", *(f"./{name}" for name in names)]
    return subprocess.run(command, cwd=units, capture_output=True, text=True, timeout=30)


def unit_copies(tmp_path: Path, *breakage: tuple[str, str]) -> Path:
    """The units, their owf-run this checkout's (verify checks that ExecStart's file exists)."""
    service = SERVICE.read_text(encoding="utf-8")
    service = service.replace(exec_start_argv()[0], str(BIN / "owf-run"))
    for old, new in breakage:
        assert old in service
        service = service.replace(old, new)
    (tmp_path / SERVICE.name).write_text(service, encoding="utf-8")
    shutil.copy(TIMER, tmp_path / TIMER.name)
    return tmp_path


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    result = systemd_analyze(
        unit_copies(tmp_path), f"owf-run@{INSTANCE}.service", f"owf-run@{INSTANCE}.timer"
    )
    # verify exits 0 on settings it ignores: anything it says is a problem
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize(
    ("breakage", "code", "error"),
    [
        (
            ("TimeoutStopSec=", "TimeoutStopSecs="),
            0,
            "Unknown key 'TimeoutStopSecs' in section [Service]",
        ),
        (("Type=oneshot", "Type=oneshoot"), 0, "Failed to parse service type, ignoring: oneshoot"),
        (
            (str(BIN / "owf-run"), "/nonexistent/owf-run"),
            1,
            "Command /nonexistent/owf-run is not executable",
        ),
    ],
    ids=["unknown-key", "bad-value", "no-binary"],
)
def test_systemd_analyze_reports_a_broken_unit(
    tmp_path: Path, breakage: tuple[str, str], code: int, error: str
) -> None:
    units = unit_copies(tmp_path)
    service = units / SERVICE.name
    service.write_text(service.read_text(encoding="utf-8").replace(*breakage), encoding="utf-8")
    result = systemd_analyze(units, f"owf-run@{INSTANCE}.service")
    assert result.returncode == code
    assert error in result.stderr


def test_the_service_runs_once_stops_gently_and_keeps_state_in_its_state_dir() -> None:
    assert setting(SERVICE, "Type") == "oneshot"
    assert setting(SERVICE, "KillSignal") == "SIGTERM"
    assert seconds(setting(SERVICE, "TimeoutStopSec")) > parse(exec_start_argv()[1:])["grace"]
    state = setting(SERVICE, "StateDirectory")
    assert setting(SERVICE, "Environment") == f"OWF_STATE_DIR=%S/{state}"
    assert setting(SERVICE, "EnvironmentFile") == "/etc/owf-runner/%i.env"
    assert not [key for _, key, _ in unit(SERVICE) if key == "SuccessExitStatus"]
    assert setting(TIMER, "WantedBy") == "timers.target"
    assert setting(TIMER, "Persistent") == "true"


# -- cron ------------------------------------------------------------------------------------


def test_the_crontab_has_one_entry_with_five_valid_time_fields() -> None:
    (entry,) = cron_entries(CRONTAB.read_text(encoding="utf-8"))
    assert entry.fields == ["15", "2", "*", "*", "*"]
    assert "%" not in entry.command  # cron would turn it into a newline


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("15 2 * * cd /srv/owf", "dow field 'cd' is not valid (0-7)"),
        ("15 2 * *", "expected 5 time fields and a command"),
        ("61 2 * * * owf-run job.yaml", "minute field '61' is not valid (0-59)"),
        ("*/0 2 * * * owf-run job.yaml", "minute field '*/0' is not valid (0-59)"),
        ("15 2 1-32 * * owf-run job.yaml", "day field '1-32' is not valid (1-31)"),
    ],
)
def test_the_cron_check_rejects_a_broken_entry(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_cron_entry(line)


def test_the_crontab_names_the_state_dir_and_the_readme_shows_it_as_it_is() -> None:
    text = CRONTAB.read_text(encoding="utf-8")
    assert cron_env(text)["OWF_STATE_DIR"] == "/var/lib/owf-runner"
    (block,) = re.findall(r"^```crontab\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert cron_lines(block) == cron_lines(text)


# -- every owf-run command line parses, and none in a schedule resumes -----------------------


@pytest.mark.parametrize("where", COMMAND_LINES)
def test_every_owf_run_command_line_parses(where: str) -> None:
    parse(COMMAND_LINES[where])


def test_the_parser_rejects_what_owf_run_would() -> None:
    with pytest.raises(TyperException, match="No such option: --gracee"):
        parse(["jobs/nightly.yaml", "--gracee", "20"])
    with pytest.raises(TyperException, match="Input should be greater than or equal to 0"):
        parse(["jobs/nightly.yaml", "--grace", "-1"])


@pytest.mark.parametrize("where", SCHEDULED)
def test_no_schedule_resumes(where: str) -> None:
    # once a run succeeded, --resume does nothing: a scheduled --resume would never run again
    assert parse(COMMAND_LINES[where])["resume"] is False


# -- each scheduler's command runs the example job -------------------------------------------


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def host(root: Path) -> dict[str, str]:
    """The example job, its secrets and a state dir under root, for the paths the files name."""
    job = manifest("configmap.yaml")["data"]["nightly.yaml"].replace(
        "/etc/owf/", f"{root}/etc/owf/"
    )
    for directory in ("srv/owf/jobs", "etc/owf/jobs", "etc/owf/secrets"):
        (root / directory).mkdir(parents=True)
    for path in ("srv/owf/jobs/nightly.yaml", "etc/owf/jobs/nightly.yaml"):
        (root / path).write_text(job, encoding="utf-8")
    key = root / "etc/owf/secrets/acme-private-key.pem"
    key.write_bytes(private_key_pem())
    key.chmod(0o600)
    return {"PATH": os.environ["PATH"], "HOME": str(root), "ACME_HOOK_CLIENT_TOKEN": HOOK_TOKEN}


def private_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rooted(text: str, root: Path) -> str:
    """A path or command line of the files, moved under root; owf-run is this checkout's."""
    text = re.sub(r"(?<![\w.])/(srv|var|etc)/", lambda m: f"{root}/{m.group(1)}/", text)
    return text.replace("/opt/owf-runner/bin/owf-run", str(BIN / "owf-run"))


def run_from_cron(root: Path) -> Ran:
    text = CRONTAB.read_text(encoding="utf-8")
    env = {**host(root), **{k: rooted(v, root) for k, v in cron_env(text).items()}}
    (entry,) = cron_entries(text)
    command = [env["SHELL"], "-c", rooted(entry.command, root) + " --emulate"]
    return completed(subprocess.run(command, env=env, capture_output=True, text=True, timeout=60))


def run_from_systemd(root: Path) -> Ran:
    env = host(root)
    name, _, value = setting(SERVICE, "Environment").partition("=")
    env[name] = rooted(value.replace("%S", "/var/lib"), root)
    argv = [rooted(arg, root) for arg in exec_start_argv()] + ["--emulate"]
    cwd = rooted(setting(SERVICE, "WorkingDirectory"), root)
    return completed(
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    )


def run_from_kubernetes(root: Path) -> Ran:
    env = host(root)
    env["OWF_STATE_DIR"] = rooted(ENV["OWF_STATE_DIR"]["value"], root)
    (root / "var/lib/owf-runner").mkdir(parents=True)  # the claim, mounted
    argv = [str(BIN / CONTAINER["command"][0]), *(rooted(a, root) for a in CONTAINER["args"])]
    result = subprocess.run(
        [*argv, "--emulate"], env=env, capture_output=True, text=True, timeout=60
    )
    return completed(result)


def completed(result: subprocess.CompletedProcess[str]) -> Ran:
    return Ran(result.returncode, result.stdout, result.stderr)


SCHEDULERS = {"cron": run_from_cron, "systemd": run_from_systemd, "kubernetes": run_from_kubernetes}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Each scheduler's command on its own host, side by side: owf-run's start-up is the cost."""

    def run(name: str) -> Ran:
        return SCHEDULERS[name](tmp_path_factory.mktemp(name))

    with ThreadPoolExecutor(max_workers=len(SCHEDULERS)) as pool:
        return dict(zip(SCHEDULERS, pool.map(run, SCHEDULERS), strict=True))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_the_schedulers_command_runs_the_example_job(runs: dict[str, Ran], scheduler: str) -> None:
    if scheduler == "cron" and shutil.which("timeout") is None:
        pytest.skip("timeout (GNU coreutils) is not installed: the crontab line runs it")
    ran = runs[scheduler]
    assert (ran.code, ran.err) == (0, "")
    if scheduler == "cron":
        assert ran.out == ""  # --quiet: cron mails nothing when the run succeeds
    else:
        assert " of nightly: succeeded\n" in ran.out
