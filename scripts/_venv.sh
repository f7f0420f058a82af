# Shared by scripts/demo and scripts/test: make .venv if missing and install into it.
# Usage: source scripts/_venv.sh; ensure_venv "<pip requirement, e.g. -e .[dev]>"
set -euo pipefail

ensure_venv() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "owf-runner needs Python 3.11 or newer (tried: $python; set PYTHON=...)" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$python" --version)"
    "$python" -m venv .venv
  fi
  local log=.venv/install.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "pip install failed (log above, also in $log)" >&2
    exit 1
  fi
}
