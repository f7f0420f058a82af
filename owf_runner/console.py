"""The ``owf-run`` process: the CLI, then an exit that skips the interpreter's last sweep."""

from __future__ import annotations

import gc
import sys

from owf_runner.cli import main


def run() -> None:
    """The console script's entry (tests call ``cli.main`` in their own process instead)."""
    try:
        status = main()
    finally:
        # At exit the interpreter walks every object the job made, looking for cycles to
        # free (70 ms after a 1,000-step job), when the exit frees them all anyway. Frozen,
        # they are skipped; the journal, the client and every file are closed already.
        gc.freeze()
    sys.exit(status)
