#!/usr/bin/env bash
# Builds "LanceDB Sync.app" and a .dmg on macOS; signs and notarizes when asked to.
#   installer/macos/build.sh
# Signing and notarization are driven by environment variables:
#   MACOS_SIGN_IDENTITY   "Developer ID Application: Name (TEAMID)"; unset = unsigned build
#   MACOS_NOTARY_PROFILE  a profile stored with `xcrun notarytool store-credentials`; unset = skip
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
python3 -m venv .venv-build
.venv-build/bin/pip install --upgrade pip
.venv-build/bin/pip install . pyinstaller dmgbuild
.venv-build/bin/python packaging/make_icons.py
.venv-build/bin/pyinstaller --noconfirm --clean packaging/lancedb-sync.spec
APP="dist/LanceDB Sync.app"
QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/lancedb-sync" self-check
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
    # Hardened runtime is required for notarization; sign inside-out via --deep on the bundle.
    codesign --force --deep --options runtime --timestamp \
        --sign "$MACOS_SIGN_IDENTITY" "$APP"
    codesign --verify --deep --strict --verbose=2 "$APP"
fi
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/__init__.py)"
DMG="dist/LanceDB-Sync-$VERSION.dmg"
.venv-build/bin/dmgbuild -s installer/macos/dmg_settings.py -D app="$APP" "LanceDB Sync" "$DMG"
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$DMG"
fi
if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
fi
echo "$DMG"
