"""The console script's entry: the CLI's exit code, and the objects frozen before the exit."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from owf_runner import __version__
from owf_runner.console import run


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize(("argv", "code"), [(["--version"], 0), (["validate"], 2)])
def test_run_exits_with_the_cli_code_and_freezes_the_heap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], code: int
) -> None:
    monkeypatch.setattr("sys.argv", ["owf-run", *argv])

    with pytest.raises(SystemExit) as exit_info:
        run()

    assert exit_info.value.code == code
    assert gc.get_freeze_count() > 0  # the interpreter's last sweep skips them
    if code == 0:
        assert capsys.readouterr().out == f"owf-run {__version__}\n"
