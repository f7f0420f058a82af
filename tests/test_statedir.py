"""The state directory: which setting chooses it, how it is made, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from owf_runner.errors import ExitCode, UsageError
from owf_runner.statedir import (
    StateDir,
    ensure_state_dir,
    locate_state_dir,
    prepare_state_dir,
    state_dir,
)

ALL = {
    "OWF_STATE_DIR": "/from/env",
    "XDG_STATE_HOME": "/xdg",
    "HOME": "/home/ann",
}


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def refusal(chosen: StateDir) -> str:
    with pytest.raises(UsageError) as raised:
        ensure_state_dir(chosen)
    assert raised.value.exit_code == ExitCode.USAGE
    return str(raised.value)


# -- which setting chooses it ----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        (Path("/opt"), ALL, StateDir(Path("/opt"), "--state-dir")),
        (None, ALL, StateDir(Path("/from/env"), "OWF_STATE_DIR")),
        (None, {**ALL, "OWF_STATE_DIR": ""}, StateDir(Path("/xdg/owf-runner"), "XDG_STATE_HOME")),
        (
            None,
            {"XDG_STATE_HOME": "relative/state", "HOME": "/home/ann"},
            StateDir(Path("/home/ann/.local/state/owf-runner"), "default"),
        ),
        (
            None,
            {"XDG_STATE_HOME": "", "HOME": "/home/ann"},
            StateDir(Path("/home/ann/.local/state/owf-runner"), "default"),
        ),
    ],
    ids=["option", "env", "empty-env-is-unset", "relative-xdg-ignored", "empty-xdg-is-unset"],
)
def test_the_setting_that_chooses_it(
    option: Path | None, environ: dict[str, str], expected: StateDir
) -> None:
    assert locate_state_dir(option, environ) == expected
    assert state_dir(option, environ) == expected.path


def test_without_home_in_the_environment_the_users_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: Path("/passwd/home")))
    chosen = locate_state_dir(None, {"HOME": ""})
    assert chosen == StateDir(Path("/passwd/home/.local/state/owf-runner"), "default")


def test_no_home_at_all_asks_for_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_home(cls: type[Path]) -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", classmethod(no_home))
    with pytest.raises(UsageError) as raised:
        locate_state_dir(None, {})
    assert str(raised.value) == (
        "no home directory to keep run state in: set --state-dir or OWF_STATE_DIR"
    )


# -- how it is made --------------------------------------------------------------------


def test_made_private_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "state"
    assert ensure_state_dir(StateDir(target, "--state-dir")) == target
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3


def test_an_existing_private_directory_is_used_as_it_is(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.mkdir(mode=0o750)
    (target / "runs.sqlite3").write_bytes(b"kept")
    assert prepare_state_dir(target, {}) == target
    assert mode(target) == 0o750
    assert (target / "runs.sqlite3").read_bytes() == b"kept"


def test_a_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert prepare_state_dir(Path("state"), {}) == tmp_path / "state"


def test_made_from_the_environment(tmp_path: Path) -> None:
    assert prepare_state_dir(None, {"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "owf-runner"
    assert mode(tmp_path / "owf-runner") == 0o700


# -- what is refused, naming the setting that chose it -----------------------------------


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert refusal(StateDir(file, "--state-dir")) == f"--state-dir {file}: not a directory"
    assert refusal(StateDir(file, "OWF_STATE_DIR")) == f"OWF_STATE_DIR={file}: not a directory"


def test_a_path_through_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert refusal(StateDir(file / "state", "XDG_STATE_HOME")) == (
        f"state directory {file}/state (from XDG_STATE_HOME): a part of the path is not a directory"
    )


@pytest.mark.parametrize("permissions", [0o777, 0o770, 0o1777, 0o702])
def test_writable_by_other_users_is_refused(tmp_path: Path, permissions: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(permissions)
    assert refusal(StateDir(shared, "OWF_STATE_DIR")) == (
        f"OWF_STATE_DIR={shared}: other users can write to it (mode {permissions:04o}), so they "
        "could plant a lock or a journal there; make it private (chmod go-w) or choose another"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert refusal(StateDir(locked, "--state-dir")) == (
        f"--state-dir {locked}: not writable by this user"
    )


def test_control_characters_are_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / "evil\n\x1b[31mred"
    hostile.write_text("x")
    message = refusal(StateDir(hostile, "--state-dir"))
    assert message == f"--state-dir {tmp_path}/evil\\n\\x1b[31mred: not a directory"
    assert message.isprintable()


def test_a_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert refusal(StateDir(loop, "--state-dir")) == (
        f"--state-dir {loop}: cannot create or open it: Too many levels of symbolic links"
    )


def test_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    assert refusal(StateDir(link, "--state-dir")) == (
        f"--state-dir {link}: a symbolic link to something that does not exist"
    )


def test_a_symlink_to_a_private_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert ensure_state_dir(StateDir(link, "--state-dir")) == link


def test_a_name_too_long(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300)
    assert refusal(StateDir(long, "default")) == (
        f"state directory {long} (the default): cannot create or open it: File name too long"
    )


def test_a_path_too_long_made_of_many_short_names(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d"] * 2100)  # more names than Python's recursion limit
    message = refusal(StateDir(deep, "--state-dir"))
    assert message.endswith(": cannot create or open it: File name too long")
    assert list(tmp_path.iterdir()) == []  # not 2,000 directories made before the kernel said so


def test_many_short_names_are_made_without_recursion(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d"] * 1200)  # more names than Python's recursion limit
    try:
        assert ensure_state_dir(StateDir(deep, "--state-dir")) == deep
    finally:
        for directory in [deep, *deep.parents][:1200]:  # rmtree itself recurses too deep
            directory.rmdir()


def test_an_embedded_nul_byte(tmp_path: Path) -> None:
    assert refusal(StateDir(tmp_path / "a\0b", "--state-dir")) == (
        f"--state-dir {tmp_path}/a\\x00b: not a usable path"
    )
