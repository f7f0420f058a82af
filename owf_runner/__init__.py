"""owf-runner: run Okta Workflows API-endpoint flows from YAML job files.

The stages, for use from Python: ``owf_runner.commands.load_plan(path)`` (load →
check → resolve) and ``owf_runner.runner.execute(plan, client, auths, reporter,
clock)``; ``owf_runner.runcmd.run`` shows how they fit together.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
