"""Every command's help ends with an example; typer's shell completion is switched on."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from owf_runner.cli import COMMANDS
from tests.conftest import Cli

# The last line of each `--help`, as a user reads it (None: `owf-run --help` itself).
EXAMPLES = {
    None: "Example: owf-run jobs/onboarding.yaml --emulate",
    "run": "Example: owf-run jobs/onboarding.yaml --emulate",
    "validate": "Example: owf-run validate jobs/*.yaml",
    "plan": "Example: owf-run plan jobs/onboarding.yaml --var first_name=Grace",
    "history": "Example: owf-run history jobs/onboarding.yaml --limit 5",
    "show": "Example: owf-run show RUN_ID --html run.html",
    "token": "Example: owf-run token acme --job jobs/onboarding.yaml --header",
    "schema": "Example: owf-run schema --report > report.schema.json",
    "emulate": "Example: owf-run emulate --port 8080 --job jobs/onboarding.yaml",
}

# FORCE_COLOR or GITHUB_ACTIONS in a CI's environment makes rich colour the help.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# typer's switch (its own tests use it) that makes --show/--install-completion take the shell
# as a value instead of detecting it from the parent processes, which differ between a
# developer's terminal and CI.
NAMED_SHELL = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def _last_line(text: str) -> str:
    return ANSI_ESCAPE.sub("", text).rstrip().splitlines()[-1].strip()


def test_every_command_has_an_example() -> None:
    assert set(EXAMPLES) - {None} == COMMANDS


@pytest.mark.parametrize("command", EXAMPLES, ids=str)
def test_help_ends_with_the_example(cli: Callable[..., Cli], command: str | None) -> None:
    done = cli(*([command] if command else []), "--help")

    assert (done.code, done.err) == (0, "")
    assert _last_line(done.out) == EXAMPLES[command]


def test_help_offers_completion(cli: Callable[..., Cli]) -> None:
    help_text = ANSI_ESCAPE.sub("", cli("--help").out)

    assert "--install-completion" in help_text
    assert "--show-completion" in help_text


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("bash", "complete -o default -F _owf_run_completion owf-run"),
        ("zsh", "#compdef owf-run"),
        ("fish", "complete --command owf-run --no-files"),
    ],
)
def test_show_completion_prints_the_shell_script(
    cli: Callable[..., Cli], monkeypatch: pytest.MonkeyPatch, shell: str, line: str
) -> None:
    monkeypatch.setenv(NAMED_SHELL, "1")

    done = cli("--show-completion", shell)

    assert done.code == 0
    assert line in done.out


def test_install_completion_writes_the_bash_script_and_sources_it(
    cli: Callable[..., Cli], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(NAMED_SHELL, "1")
    monkeypatch.setenv("HOME", str(tmp_path))

    done = cli("--install-completion", "bash")

    script = tmp_path / ".bash_completions" / "owf-run.sh"
    assert done.code == 0
    assert f"bash completion installed in {script}" in done.out
    assert "complete -o default -F _owf_run_completion owf-run" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text().splitlines()


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("owf-run val", "1", ["validate"]),
        ("owf-run history --st", "2", ["--state-dir"]),
    ],
)
def test_the_completion_script_asks_owf_run_for_candidates(
    cli: Callable[..., Cli],
    monkeypatch: pytest.MonkeyPatch,
    words: str,
    cword: str,
    expected: list[str],
) -> None:
    # What the bash script above does on TAB: it runs owf-run with these variables set.
    monkeypatch.setenv("_OWF_RUN_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", cword)

    done = cli()

    assert done.code == 0
    assert done.out.split() == expected
