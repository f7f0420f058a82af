"""The cookbook (docs/cookbook/) works as its pages say.

Each recipe page is run as a reader would: every ``sh`` block, command by command, in a copy of
docs/cookbook with the state directory in tmp_path (``owf-run`` in this process, as the console
script would run it). The ``text`` block that follows a ``sh`` block is its output: each line it
quotes must be a line of the real output, once times, run ids, UUIDs and durations are masked
(``…`` stands for text left out). A command exits 0 unless the block goes on with
``echo "exit code $?"``, whose line in the output block says what it exited with. So a page
cannot drift from what owf-run does.

The other tests look behind the pages, at what the built-in emulator received.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from owf_runner import emulation, secrets
from owf_runner.emulator import Emulator
from tests.conftest import Cli, assert_not_leaked, ec_key, encodings, pem

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "docs" / "cookbook"
RECIPES = sorted(page.parent.name for page in COOKBOOK.glob("*/README.md"))
RunCli = Callable[..., Cli]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
EXIT_ECHO = 'echo "exit code $?"'
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b")
MASKS = (
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ"), "<time>"),
    (RUN_ID, "<run>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d+\.\d+s\b"), "<seconds>"),
)


# -- reading a page ---------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A ``sh`` block, and the ``text`` block right after it (its output), if any."""

    commands: str
    output: str | None


def examples(page: str) -> list[Example]:
    blocks = list(FENCE.finditer(page))
    found = []
    for block, after in zip(blocks, [*blocks[1:], None], strict=True):
        if block.group(1) != "sh":
            continue
        follows = after is not None and not page[block.end() : after.start()].strip()
        output = (
            after.group(2) if follows and after is not None and after.group(1) == "text" else None
        )
        found.append(Example(block.group(2), output))
    return found


def normalized(line: str) -> str:
    for pattern, mask in MASKS:
        line = pattern.sub(mask, line)
    return " ".join(line.split())


def missing_lines(quoted: str, real: str) -> list[str]:
    """The quoted lines that are not in the real output (each real line matches once)."""
    unused = [normalized(line) for line in real.splitlines()]
    missing = []
    for line in quoted.splitlines():
        parts = [part.strip() for part in normalized(line).split("…")]
        if not "".join(parts):
            continue
        pattern = re.compile(".*?".join(map(re.escape, parts)))
        found = next((seen for seen in unused if pattern.fullmatch(seen)), None)
        if found is None:
            missing.append(line)
        else:
            unused.remove(found)
    return missing


def test_the_line_matcher_itself() -> None:
    real = "2026-11-29T16:32:38Z step: failed (8 attempts, 0.72s)\nrun 20261129T163238Z-cc6082 of x"
    assert missing_lines("2025-01-01T00:00:00Z step: failed (8 attempts, 1.50s)", real) == []
    assert missing_lines("run 20250101T000000Z-abcdef …", real) == []
    assert missing_lines("…\nsuspend: failed", real) == ["suspend: failed"]
    assert missing_lines("run … of x\nrun … of x", real) == ["run … of x"]


# -- running a page ---------------------------------------------------------------------


class Reader:
    """Runs a page's commands as a reader would, in one shell session."""

    def __init__(self, cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cli = cli
        self.monkeypatch = monkeypatch
        self.last_run_id: str | None = None

    def run(self, commands: str) -> str:
        """The block's output; a command exits 0 unless an `exit code` echo follows it."""
        output: list[str] = []
        lines = [line.strip() for line in commands.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        for line, after in zip(lines, [*lines[1:], None], strict=True):
            if line == EXIT_ECHO:
                continue
            result = self.command(line)
            output.append(result.out + result.err)
            if after == EXIT_ECHO:
                output.append(f"exit code {result.code}\n")
            else:
                assert result.code == 0, f"{line}\n{result.out}{result.err}"
        return "".join(output)

    def command(self, line: str) -> Cli:
        words = shlex.split(line)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.monkeypatch.setenv(name, os.path.expandvars(value))
            return Cli(0, "", "")
        assignments = []
        while ASSIGNMENT.match(words[0]):
            assignments.append(words.pop(0).partition("="))
        assert words[0] == "owf-run", f"the test cannot run this command: {line}"
        with self.monkeypatch.context() as patch:
            for name, _, value in assignments:
                patch.setenv(name, os.path.expandvars(value))
            result = self.cli(*(self.with_real_run_id(word) for word in words[1:]))
        self.last_run_id = next(iter(RUN_ID.findall(result.out + result.err)), self.last_run_id)
        return result

    def with_real_run_id(self, word: str) -> str:
        if RUN_ID.fullmatch(word):
            assert self.last_run_id, f"no run yet for {word}"
            return self.last_run_id
        return word


@pytest.fixture
def reader(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, only_openssl_on_path: None
) -> Reader:
    """In a copy of docs/cookbook (paths as the pages write them), at a fresh state dir."""
    shutil.copytree(COOKBOOK, tmp_path / "docs" / "cookbook")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    for name in [name for name in os.environ if name.startswith(("ACME_", "OFFBOARD_"))]:
        monkeypatch.delenv(name)
    return Reader(cli, monkeypatch)


@pytest.fixture
def only_openssl_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real op, vault or aws answers: PATH holds openssl alone (the op stand-in's)."""
    bin_dir = tmp_path / "system-bin"
    bin_dir.mkdir()
    openssl = shutil.which("openssl")
    if openssl:
        (bin_dir / "openssl").symlink_to(openssl)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch) -> list[Emulator]:
    """Every emulator an `--emulate` run starts, in order, to read what it received."""
    made: list[Emulator] = []
    original = emulation.new_emulator

    def new_emulator() -> Emulator:
        made.append(original())
        return made[-1]

    monkeypatch.setattr(emulation, "new_emulator", new_emulator)
    return made


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_page_runs_as_it_says(recipe: str, reader: Reader, emulators: list[Emulator]) -> None:
    page = (COOKBOOK / recipe / "README.md").read_text(encoding="utf-8")
    if "stand-ins" in page and not (Path(os.environ["PATH"]) / "openssl").exists():
        pytest.skip("the op stand-in makes its key with openssl, which is not installed")
    shown = examples(page)
    assert shown, f"{recipe}: no sh block"
    transcript = []
    for example in shown:
        real = reader.run(example.commands)
        transcript.append(real)
        if example.output is not None:
            missing = missing_lines(example.output, real)
            assert not missing, f"{recipe}: {example.commands}\nnot in:\n{real}\nmissing: {missing}"
    WHAT_WAS_SENT[recipe](emulators, "".join(transcript))


# -- the index and the job files ----------------------------------------------------------


def test_the_index_runs_as_it_says(reader: Reader, emulators: list[Emulator]) -> None:
    index = (COOKBOOK / "README.md").read_text(encoding="utf-8")
    (example,) = examples(index)

    reader.run(example.commands)

    assert [len(each.invocations()) for each in emulators] == [1 + len(ACTIVE) + 1]


def test_the_index_links_every_recipe() -> None:
    index = (COOKBOOK / "README.md").read_text(encoding="utf-8")
    linked = sorted(set(re.findall(r"\]\(([a-z0-9-]+)/README\.md\)", index)))
    assert linked == RECIPES
    assert len(RECIPES) == 5


def job_files() -> list[Path]:
    found = COOKBOOK.glob("*/*.yaml")
    return sorted(path for path in found if path.parent.name in RECIPES)


def test_every_recipe_job_validates_and_has_its_stubs(cli: RunCli) -> None:
    jobs = [str(path) for path in job_files()]

    result = cli("validate", *jobs, "--var", "email=leaver@example.com")

    assert result.code == 0, result.out + result.err
    assert result.out.count(": ok\n") == len(jobs) == len(RECIPES)
    for job in job_files():
        assert emulation.default_stubs_path(job).is_file(), job


# -- behind the pages: what the emulator received -------------------------------------------


def sent(emulator: Emulator, flow: str, key: str) -> list[object]:
    return [json.loads(call.body)[key] for call in emulator.invocations(flow)]


def job(recipe: str, name: str) -> str:
    return str(COOKBOOK / recipe / name)


def busy(emulators: list[Emulator]) -> list[Emulator]:
    """The emulators of the runs that sent something, in order."""
    return [emulator for emulator in emulators if emulator.calls]


def logins(emulator: Emulator) -> list[str]:
    profiles = sent(emulator, "create_user", "profile")
    return sorted(str(profile["login"]) for profile in profiles)  # type: ignore[index]


def onboarding_sent(emulators: list[Emulator], transcript: str) -> None:
    """The trial sends the first two active rows; the resume the two others, and nothing else."""
    trial, rest = busy(emulators)
    assert [logins(trial), logins(rest)] == [ACTIVE[:2], ACTIVE[2:]]
    group_ids = sent(trial, "create_user", "groupIds") + sent(rest, "create_user", "groupIds")
    assert group_ids == [["00g1new2hires3grp4"]] * 4  # restored from the journal on resume
    assert sent(trial, "post_summary", "created") == [["00u-ada", "00u-grace"]]
    assert [call.flow_id for call in rest.invocations()] == ["create_user"] * 2


def offboarding_sent(emulators: list[Emulator], transcript: str) -> None:
    """The client token goes in its header, nowhere else, and is never printed."""
    (emulator,) = busy(emulators)
    calls = emulator.invocations()
    assert [call.flow_id for call in calls] == ["offboard_user", "transfer_files"]
    assert {call.headers["x-api-client-token"] for call in calls} == {REHEARSAL_TOKEN}
    assert not [call for call in calls if "authorization" in call.headers or call.query]
    assert emulator.token_requests() == []
    assert REHEARSAL_TOKEN not in transcript


def two_orgs_sent(emulators: list[Emulator], transcript: str) -> None:
    """Each org is called with its own token, got from its own token URL."""
    both, eu_only = busy(emulators)
    assert orgs_called(both) == [US, EU]
    assert orgs_called(eu_only) == [EU]


US = ("0oa2781yr7ajUaJfd0h8", "acme.okta.com", "acme.workflows.okta.com")
EU = ("0oa9eu3k1Xyz7Qw2p0h8", "acme-eu.okta-emea.com", "acme-eu.workflows.okta-emea.com")


def orgs_called(emulator: Emulator) -> list[tuple[str | None, str, str]]:
    """(client id, token URL host, invoked host) for each token and invocation, in order."""
    tokens = emulator.token_requests()
    token_hosts = [str((call.claims or {})["aud"]).split("/")[2] for call in tokens]
    invoked = [call.host.partition(":")[0] for call in emulator.invocations("create_group")]
    return list(zip([call.client_id for call in tokens], token_hosts, invoked, strict=True))


def secrets_sent(emulators: list[Emulator], transcript: str) -> None:
    """The stand-ins' key signs the assertion; their tokens, newline dropped, go in headers."""
    (emulator,) = busy(emulators)
    assert [call.status for call in emulator.token_requests()] == [200]
    tokens = [call.headers.get("x-api-client-token") for call in emulator.invocations()]
    assert tokens == [None, *STAND_IN_TOKENS]
    assert not [token for token in STAND_IN_TOKENS if token in transcript]


def resume_sent(emulators: list[Emulator], transcript: str) -> None:
    """The bad night sends every row; each resume only what it must; the last, nothing."""
    suspended = [sent(each, "suspend_contractor", "email") for each in busy(emulators)]
    emails = [[str(email)[:3] for email in each] for each in suspended]
    assert emails == [["lin", "sam", "sam", "sam", "sam", "kim", "joe", "eve"], ["sam"], ["joe"]]
    assert [len(each.invocations("post_report")) for each in busy(emulators)] == [0, 0, 1]


ACTIVE = ["ada@example.com", "grace@example.com", "katherine@example.com", "margaret@example.com"]
REHEARSAL_TOKEN = "ct-rehearsal-0123456789abcdef"
STAND_IN_TOKENS = [
    "stand-in-client-token-from-vault",
    "stand-in-client-token-from-aws-secrets-manager",
]
WHAT_WAS_SENT: dict[str, Callable[[list[Emulator], str], None]] = {
    "onboarding-from-csv": onboarding_sent,
    "offboarding-client-token": offboarding_sent,
    "two-orgs": two_orgs_sent,
    "secrets-from-clis": secrets_sent,
    "resume-after-failure": resume_sent,
}
SYNC = job("two-orgs", "sync-groups.yaml")


# -- secrets from the CLIs of secret stores ---------------------------------------------------

SECRETS_JOB = job("secrets-from-clis", "secrets.yaml")
OP_ARGV = ["op", "read", "op://IT/Okta Workflows invoker/private key"]
VAULT_ARGV = ["vault", "kv", "get", "-field=token", "secret/okta/workflows/hook"]
AWS_ARGV = [
    *("aws", "secretsmanager", "get-secret-value", "--secret-id", "okta/workflows/report-token"),
    *("--query", "SecretString", "--output", "text"),
]


@dataclass(frozen=True)
class Canaries:
    key: str
    hook_token: str
    report_token: str
    argv_log: Path


def fake_cli(bin_dir: Path, name: str, stdout: str, log: Path, status: int = 0) -> None:
    """A stand-in `name` that logs its argv, prints `stdout` (and to stderr too), exits `status`."""
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv) + '\\n')\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.stderr.write({stdout!r})\n"
        f"sys.exit({status})\n"
    )
    script.chmod(0o755)


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Canaries:
    """Fake op, vault and aws first on PATH, printing canaries as the real ones print secrets."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.jsonl"
    found = Canaries(pem(ec_key()), "hook-canary-4e2b9f1c", "report-canary-7d3a0b6e", log)
    fake_cli(bin_dir, "op", found.key + "\n", found.argv_log)  # op read ends with a newline
    fake_cli(bin_dir, "vault", found.hook_token, found.argv_log)  # vault -field= does not
    fake_cli(bin_dir, "aws", found.report_token + "\r\n", found.argv_log)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return found


def test_secrets_come_from_the_commands_as_written_and_never_show(
    cli: RunCli, emulators: list[Emulator], canaries: Canaries, tmp_path: Path
) -> None:
    reports = [tmp_path / "run.json", tmp_path / "junit.xml", tmp_path / "run.html"]
    options = [
        f"--{kind}={path}" for kind, path in zip(["report", "junit", "html"], reports, strict=True)
    ]

    result = cli(SECRETS_JOB, "--emulate", "--verbose", *options)

    assert result.code == 0, result.out + result.err
    argvs = [json.loads(line) for line in canaries.argv_log.read_text().splitlines()]
    assert sorted(argv[1:] for argv in argvs) == sorted([OP_ARGV[1:], VAULT_ARGV[1:], AWS_ARGV[1:]])
    (emulator,) = emulators
    assert [call.status for call in emulator.token_requests()] == [200]  # the op key signed it
    tokens = {
        call.flow_id: call.headers.get("x-api-client-token") for call in emulator.invocations()
    }
    assert tokens == {
        "create_user": None,
        "notify_hook": canaries.hook_token,
        "daily_report": canaries.report_token,
    }
    secrets_ = (canaries.key, canaries.hook_token, canaries.report_token)
    assert_not_leaked(result, *secrets_)
    state = Path(os.environ["OWF_STATE_DIR"])
    written = [*reports, *state.rglob("*")]
    for path in [path for path in written if path.is_file()]:
        data = path.read_bytes().decode("utf-8", "replace")
        assert not [form for secret in secrets_ for form in encodings(secret) if form in data], path


def test_a_failing_secret_command_shows_neither_its_output_nor_its_errors(
    cli: RunCli, canaries: Canaries, tmp_path: Path
) -> None:
    fake_cli(tmp_path / "fake-bin", "op", canaries.key, canaries.argv_log, status=1)

    result = cli(SECRETS_JOB, "--emulate")

    assert result.code == 3
    assert result.err.endswith(
        "secrets.yaml:27:5: credentials.acme_invoker.private_key: command op exited with status 1\n"
    )
    assert_not_leaked(result, canaries.key)


def test_the_secrets_page_states_the_runners_limits() -> None:
    page = (COOKBOOK / "secrets-from-clis" / "README.md").read_text(encoding="utf-8")
    assert secrets.COMMAND_TIMEOUT == 30
    assert secrets.MAX_COMMAND_OUTPUT == 1024 * 1024
    assert secrets.MIN_LENGTH == 8
    for fact in ("30 seconds", "1 MiB", "8 characters"):
        assert fact in " ".join(page.split()), fact


# -- resuming after a failed run ----------------------------------------------------------------

RESUMABLE = """\
version: 1
orgs: {acme: {domain: acme.okta.com, credential: none}}
credentials: {none: {type: none}}
steps:
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/flaky/invoke
    foreach: [a]
    retry: {attempts: 2}
"""
FLAKY = "flows:\n  flaky:\n    faults: [{times: 2, status: 503, headers: {Retry-After: '0'}}]\n"


def test_attempts_count_the_requests_of_every_session(cli: RunCli, tmp_path: Path) -> None:
    job_file, report = tmp_path / "flaky.yaml", tmp_path / "run.json"
    job_file.write_text(RESUMABLE)
    (tmp_path / "stubs").mkdir()
    (tmp_path / "stubs" / "flaky.yaml").write_text(FLAKY)
    assert cli(str(job_file), "--emulate", "--quiet").code == 1

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("flows: {}\n")
    resumed = cli(str(job_file), "--emulate", f"--stubs={fixed}", "--resume", f"--report={report}")

    assert resumed.code == 0, resumed.out + resumed.err
    steps = json.loads(report.read_text())["steps"]
    assert [steps[0]["attempts"], steps[0]["items"][0]["attempts"]] == [3, 3]


def test_a_resume_with_other_vars_does_not_pass_a_failed_step_off_as_done(
    cli: RunCli, tmp_path: Path
) -> None:
    stubs = tmp_path / "failing.yaml"
    stubs.write_text("flows:\n  create_group:\n    faults: [{status: 400}]\n")
    assert cli(SYNC, "--emulate", f"--stubs={stubs}", "--var", "only=us", "--quiet").code == 1

    resumed = cli(SYNC, "--emulate", "--resume", "--var", "only=eu", "--quiet")

    assert resumed.code == 3
    assert "had other variables (--var, --vars-file) than these" in resumed.err


def test_a_var_that_skips_an_org_still_needs_its_secret(
    cli: RunCli, emulators: list[Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_US_OKTA_PRIVATE_KEY", raising=False)
    monkeypatch.setenv("ACME_EU_OKTA_PRIVATE_KEY", pem(ec_key()))

    result = cli(SYNC, "--var", "only=eu")

    assert result.code == 3
    assert result.err.endswith(
        "sync-groups.yaml:27:5: credentials.us_invoker.private_key: environment variable "
        "ACME_US_OKTA_PRIVATE_KEY is not set (to rehearse: --emulate)\n"
    )
    assert emulators == []
