#!/usr/bin/env bash
# Installs the .deb into this machine and checks the installed app as a user would meet it:
# self-check, index a folder, search it, start the tray under Xvfb with a tray host (screenshot),
# a second launch brings its window forward, then uninstall (program gone, user data kept).
#
#   sudo packaging/smoke-test.sh dist/lancedb-sync_<v>_<arch>.deb [OUTDIR]
#
# Needs root (apt-get), Xvfb, trayer, dbus-run-session, gnome-keyring and ImageMagick's `import`.
# Writes OUTDIR/smoke.json (timings) and OUTDIR/installed-tray.png.
set -euo pipefail
DEB="$(realpath "$1")"
OUT="$(realpath -m "${2:-$(dirname "$DEB")/smoke}")"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
XVFB_PID=""
cleanup() {
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(round($2 - $1, 2))"; }
say() { echo "smoke: $*" >&2; }

say "installing $(basename "$DEB")"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEB" >/dev/null
[ -x /opt/lancedb-sync/lancedb-sync ] && command -v lancedb-sync >/dev/null
grep -q "Exec=/opt/lancedb-sync/lancedb-sync" /usr/share/applications/lancedb-sync.desktop

# A fresh user's folders, as after a first login.
export HOME="$WORK/home"
mkdir -p "$HOME"
unset LANCEDB_SYNC_HOME XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME

say "self-check"
t0=$(now)
QT_QPA_PLATFORM=offscreen lancedb-sync self-check > "$OUT/self-check.json"
SELF_CHECK_S=$(secs "$t0" "$(now)")

say "index a folder and search it"
mkdir -p "$WORK/docs"
printf '# Lighthouse keeping\n\nThe keeper trims the wick at dusk and logs passing ships.\n' \
    > "$WORK/docs/lighthouse.md"
printf 'Sourdough needs a lively starter, flour, water and patience.\n' > "$WORK/docs/bread.txt"
lancedb-sync sources add local "$WORK/docs" --id notes >/dev/null
lancedb-sync sync >/dev/null
lancedb-sync search "who trims the wick" -k 1 --json | grep -q lighthouse.md

say "tray under Xvfb with trayer"
DISPLAY_NUM=":$(( 90 + RANDOM % 9 ))"
Xvfb "$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
export DISPLAY="$DISPLAY_NUM"
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
TRAY_S=$(dbus-run-session -- bash -s "$OUT" <<'SESSION'
set -euo pipefail
OUT="$1"
printf '' | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 || true
trayer --edge top --align right --widthtype request --height 28 --transparent false \
    --tint 0x303030 >/dev/null 2>&1 &
TRAYER=$!
sleep 1
t0=$(date +%s.%N)
lancedb-sync >/dev/null 2>"$OUT/tray-stderr.txt" &
TRAY=$!
ready=""
for _ in $(seq 300); do
    f=$(find "$HOME" -name lancedb-sync.log 2>/dev/null | head -1)
    if [ -n "$f" ] && grep -q "tray ready" "$f"; then ready=1; break; fi
    sleep 0.02
done
t1=$(date +%s.%N)
[ -n "$ready" ] || { echo "the tray did not start" >&2; cat "$OUT/tray-stderr.txt" >&2; exit 1; }
# A second launch hands over to the running tray, which brings its window forward.
lancedb-sync 2>>"$OUT/tray-stderr.txt"
sleep 4
import -window root "$OUT/installed-tray.png"
kill -TERM "$TRAY"
wait "$TRAY" || true
kill "$TRAYER" 2>/dev/null || true
python3 -c "print(round($t1 - $t0, 2))"
SESSION
)
grep -q "already running" "$OUT/tray-stderr.txt"

say "uninstall"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q lancedb-sync >/dev/null
[ ! -e /opt/lancedb-sync ] && [ ! -e /usr/bin/lancedb-sync ] \
    && [ ! -e /usr/share/applications/lancedb-sync.desktop ]
# The user's index and settings stay for a later reinstall.
[ -d "$HOME/.local/share/lancedb-sync" ] && [ -f "$HOME/.config/lancedb-sync/config.toml" ]

DEB_MB=$(python3 -c "import os; print(round(os.path.getsize('$DEB') / 1e6, 1))")
cat > "$OUT/smoke.json" <<JSON
{"deb": "$(basename "$DEB")", "deb_mb": $DEB_MB, "self_check_s": $SELF_CHECK_S,
 "tray_start_s": $TRAY_S, "screenshot": "$OUT/installed-tray.png"}
JSON
cat "$OUT/smoke.json"
say "passed"
