#!/usr/bin/env bash
# Installs LanceDB Sync into .venv (once), adds FOLDER as a source and indexes it.
# Usage: scripts/index-folder.sh FOLDER   (then: .venv/bin/lancedb-sync search "your words")
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDER=${1:?usage: scripts/index-folder.sh FOLDER}
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/lancedb-sync ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check .
fi
FOLDER=$(cd "$FOLDER" && pwd)
.venv/bin/lancedb-sync sources list --json | grep -q "\"$FOLDER\"" \
    || .venv/bin/lancedb-sync sources add local "$FOLDER"
.venv/bin/lancedb-sync sync
.venv/bin/lancedb-sync status
