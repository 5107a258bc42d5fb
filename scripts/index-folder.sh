#!/usr/bin/env bash
# Installs LanceDB Sync into .venv (once), adds FOLDER as a source and indexes it.
# Usage: scripts/index-folder.sh FOLDER   (then: .venv/bin/lancedb-sync search "your words")
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDER=${1:?usage: scripts/index-folder.sh FOLDER}
[ -d "$FOLDER" ] || { echo "index-folder: no such folder: $FOLDER" >&2; exit 2; }
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/lancedb-sync ]; then
    # Measured on a fresh venv (README.md, "Install"): ~310 MB of wheels, 920 MB installed.
    echo "Installing LanceDB Sync and its libraries into .venv: about 310 MB to download" \
         "(LanceDB, Arrow, Qt, …), 920 MB on disk. This takes about a minute on a fast" \
         "connection, several on a slow one." >&2
    start=$SECONDS
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on .
    echo "Installed in $(( SECONDS - start )) s." >&2
fi
FOLDER=$(cd "$FOLDER" && pwd)
.venv/bin/lancedb-sync sources list --json | grep -q "\"$FOLDER\"" \
    || .venv/bin/lancedb-sync sources add local "$FOLDER"
.venv/bin/lancedb-sync sync
.venv/bin/lancedb-sync status
