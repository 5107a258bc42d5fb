#!/usr/bin/env bash
# Installs the .deb into this machine and checks the installed app as a user would meet it:
# self-check, index a folder, search it, serve the REST API (run), start the tray under Xvfb with a tray host (screenshot),
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

say "REST API of the installed app (run --plain --no-watch)"
# uvicorn loads its protocol classes by name: only a frozen app that really serves proves they
# were bundled. /health needs no token; the rest needs the one in api.json; /docs serves the
# bundled Swagger UI files.
API_JSON="$HOME/.local/share/lancedb-sync/state/api.json"
t0=$(now)
lancedb-sync run --plain --no-watch >"$OUT/api-run.txt" 2>&1 &
RUN_PID=$!
for _ in $(seq 600); do
    grep -q '"url"' "$API_JSON" 2>/dev/null && break
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.05
done
API_S=$(secs "$t0" "$(now)")
grep -q '"url"' "$API_JSON" || { echo "the API did not start" >&2; cat "$OUT/api-run.txt" >&2; exit 1; }
python3 - "$API_JSON" <<'PY'
import json, sys, urllib.error, urllib.request
api = json.load(open(sys.argv[1]))
def get(path, token=None):
    req = urllib.request.Request(api["url"] + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
status, body = get("/health")
assert status == 200, (status, body)
assert get("/api/v1/status")[0] == 401, "the API answered without its token"
status, body = get("/api/v1/status", api["token"])
assert status == 200 and "sources" in json.loads(body), (status, body[:300])
status, body = get("/api/v1/search?q=who+trims+the+wick&k=1", api["token"])
assert status == 200 and "lighthouse.md" in body.decode(), (status, body[:300])
status, body = get("/docs", api["token"])
assert status == 200 and b"/docs/assets/swagger-ui-bundle.js" in body, (status, body[:300])
for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
    status, body = get("/docs/assets/" + asset, api["token"])
    assert status == 200 and len(body) > 500, (asset, status, len(body))
PY
# The command line's search while the app runs: api.json names a live server, so it asks the
# app (a fraction of a second) instead of importing LanceDB and loading the model (seconds).
t0=$(now)
lancedb-sync search "who trims the wick" -k 1 --json | grep -q lighthouse.md
CLI_SEARCH_S=$(secs "$t0" "$(now)")
kill -TERM "$RUN_PID"
RUN_RC=0
wait "$RUN_PID" || RUN_RC=$?
[ "$RUN_RC" -eq 0 ] || { echo "run exited $RUN_RC after SIGTERM" >&2; cat "$OUT/api-run.txt" >&2; exit 1; }
# Stopped cleanly: api.json no longer names a URL.
if grep -q '"url"' "$API_JSON"; then echo "api.json still names a URL after stop" >&2; exit 1; fi

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
 "api_start_s": $API_S, "cli_search_with_app_s": $CLI_SEARCH_S,
 "tray_start_s": $TRAY_S, "screenshot": "$OUT/installed-tray.png"}
JSON
cat "$OUT/smoke.json"
say "passed"
