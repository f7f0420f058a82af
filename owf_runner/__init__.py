"""owf-runner: run Okta Workflows API-endpoint flows from YAML job files.

The small public API: ``load_job(path)`` and ``run_job(path, reporter)``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_job", "run_job"]


def __getattr__(name: str) -> Any:
    # Imported on first use so `owf-run --version` stays fast.
    if name == "load_job":
        from owf_runner.loader import load_job

        return load_job
    if name == "run_job":
        from owf_runner.runner import run_job

        return run_job
    raise AttributeError(f"module 'owf_runner' has no attribute {name!r}")
