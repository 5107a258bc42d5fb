#!/usr/bin/env bash
# Builds the Linux onedir, the .deb and the portable tar.gz from this checkout.
#   packaging/build-linux.sh            → dist/lancedb-sync_<v>_<arch>.deb, dist/*.tar.gz
# Uses its own virtualenv (.venv-build) so the bundle holds only the app's runtime packages.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
[ -x .venv-build/bin/python ] || "$PY" -m venv .venv-build
.venv-build/bin/pip install -q --upgrade pip
.venv-build/bin/pip install -q . pyinstaller
QT_QPA_PLATFORM=offscreen .venv-build/bin/python packaging/make_icons.py >/dev/null
t0=$(date +%s)
.venv-build/bin/pyinstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/lancedb-sync.spec
echo "pyinstaller: $(( $(date +%s) - t0 )) s" >&2
dangling="$(find dist/lancedb-sync -xtype l)"
[ -z "$dangling" ] || { echo "links to trimmed files left in the bundle:" >&2; echo "$dangling" >&2; exit 1; }
installer/linux/build-deb.sh dist/lancedb-sync dist
