#!/usr/bin/env bash
# Installs with apt the system packages the tests need (Debian or Ubuntu, as root) and nothing
# else: no build, no package of this app. Without them the GUI tests are skipped with a reason.
#   sudo scripts/install-test-deps.sh            # the test packages
#   sudo scripts/install-test-deps.sh EXTRA…     # and these too (.ci/run adds imagemagick)
# Idempotent: installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Tests drop root's DAC capabilities with setpriv to get a genuinely unreadable file (util-linux).
# GUI tests (tests/gui) start their own X server with a tray host, a D-Bus session and
# gnome-keyring; Qt's xcb platform plugin needs the libxcb/xkbcommon/EGL libraries below.
packages=(
    util-linux
    xvfb trayer x11-utils
    dbus dbus-x11 gnome-keyring libsecret-tools
    libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
    libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0
    libegl1 libgl1 libfontconfig1 libdbus-1-3 fonts-dejavu-core
    "$@"
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-test-deps: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
