"""owf-runner: run Okta Workflows API-endpoint flows from YAML job files.

The small public API: ``load_plan(path)`` (load → check → resolve) and ``execute``
(run a plan over a client); ``owf_runner.commands`` shows how the stages fit.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "execute", "load_plan"]


def __getattr__(name: str) -> Any:
    # Imported on first use so `owf-run --version` stays fast.
    if name == "load_plan":
        from owf_runner.commands import load_plan

        return load_plan
    if name == "execute":
        from owf_runner.runner import execute

        return execute
    raise AttributeError(f"module 'owf_runner' has no attribute {name!r}")
