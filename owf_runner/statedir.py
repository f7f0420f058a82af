"""Where owf-run keeps what outlives a run: the journal, the run locks, crash logs (DESIGN §6).

Chosen by ``--state-dir``, else ``OWF_STATE_DIR``, else ``$XDG_STATE_HOME/owf-runner``, else
``~/.local/state/owf-runner``. The directory holds the locks that keep two runs of a job apart
and the journal that decides what a resume sends, so one that other users can write to is
refused: they could plant a lock (blocking every run) or a doctored journal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from owf_runner.errors import UsageError
from owf_runner.redaction import escape_controls

APP = "owf-runner"
PRIVATE = 0o700
PATH_MAX = 4096  # Linux's; macOS allows 1024, and its own error comes first there

Setting = Literal["--state-dir", "OWF_STATE_DIR", "XDG_STATE_HOME", "default"]


@dataclass(frozen=True)
class StateDir:
    path: Path
    chosen_by: Setting

    def __str__(self) -> str:
        """How messages name it: by the setting that chose it, control characters escaped."""
        shown = escape_controls(str(self.path))
        if self.chosen_by == "--state-dir":
            return f"--state-dir {shown}"
        if self.chosen_by == "OWF_STATE_DIR":
            return f"OWF_STATE_DIR={shown}"
        if self.chosen_by == "XDG_STATE_HOME":
            return f"state directory {shown} (from XDG_STATE_HOME)"
        return f"state directory {shown} (the default)"


def locate_state_dir(option: Path | None, environ: Mapping[str, str]) -> StateDir:
    """The state directory and the setting that chose it; empty variables count as unset."""
    if option is not None:
        return StateDir(option, "--state-dir")
    if configured := environ.get("OWF_STATE_DIR"):
        return StateDir(Path(configured), "OWF_STATE_DIR")
    xdg = environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return StateDir(Path(xdg) / APP, "XDG_STATE_HOME")
    return StateDir(_home(environ) / ".local" / "state" / APP, "default")


def _home(environ: Mapping[str, str]) -> Path:
    if home := environ.get("HOME"):
        return Path(home)
    try:
        return Path.home()
    except (RuntimeError, KeyError):  # no HOME, and no passwd entry (a container's random uid)
        raise UsageError(
            "no home directory to keep run state in: set --state-dir or OWF_STATE_DIR"
        ) from None


def state_dir(option: Path | None, environ: Mapping[str, str]) -> Path:
    return locate_state_dir(option, environ).path


def ensure_state_dir(chosen: StateDir) -> Path:
    """The directory, made (0700, with any missing parents) if need be, checked fit for use.

    UsageError, naming it and the setting that chose it, when it cannot be made, is not a
    directory, is not writable, or other users can write to it.
    """
    try:
        _make_dirs(chosen.path)
        status = os.stat(chosen.path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{chosen}: {_reason(exc)}") from None
    _check(chosen, status)
    return chosen.path.absolute()


def prepare_state_dir(option: Path | None, environ: Mapping[str, str]) -> Path:
    """``locate_state_dir`` then ``ensure_state_dir``: what a command that writes state calls."""
    return ensure_state_dir(locate_state_dir(option, environ))


def _make_dirs(path: Path) -> None:
    """Like ``mkdir -p -m 0700``, but every directory it makes is 0700, parents included.

    A loop, not recursion: a path can have 2,000 components before it is too long. One that
    is too long makes nothing: not 2,000 directories before the kernel says so.
    """
    if len(os.fsencode(os.path.abspath(path))) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
    missing = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it first
            os.mkdir(directory, PRIVATE)


def _check(chosen: StateDir, status: os.stat_result) -> None:
    if not stat.S_ISDIR(status.st_mode):
        raise UsageError(f"{chosen}: not a directory")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(status.st_mode)
        raise UsageError(
            f"{chosen}: other users can write to it (mode {mode:04o}), so they could plant a "
            f"lock or a journal there; make it private (chmod go-w) or choose another"
        )
    if not os.access(chosen.path, os.W_OK | os.X_OK):
        raise UsageError(f"{chosen}: not writable by this user")


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):  # an embedded NUL byte
        return "not a usable path"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a directory"
    if isinstance(exc, FileNotFoundError):  # made a moment ago, so: a dangling symbolic link
        return "a symbolic link to something that does not exist"
    return f"cannot create or open it: {exc.strerror or exc}"
