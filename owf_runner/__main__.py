"""``python -m owf_runner``: the same as the ``owf-run`` command."""

import sys

from owf_runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
