#!/usr/bin/env bash
# Installs what the tests need into .venv (once) and runs the test suite.
# Usage: scripts/test.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check app tests bench
# The layers only point down and the faces reach the engine only through the Service
# ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
