"""``python -m owf_runner``: the same process as the ``owf-run`` command."""

from owf_runner.console import run

if __name__ == "__main__":
    run()
