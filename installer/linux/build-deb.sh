#!/usr/bin/env bash
# Builds the Linux packages from a PyInstaller onedir:
#   dist/lancedb-sync_<version>_<arch>.deb   (installs to /opt/lancedb-sync, launcher on PATH,
#                                              menu entry with icon)
#   dist/lancedb-sync-<version>-linux-<arch>.tar.gz   (the portable onedir)
#
#   installer/linux/build-deb.sh [ONEDIR] [OUTDIR]
# ONEDIR defaults to dist/lancedb-sync (pyinstaller packaging/lancedb-sync.spec makes it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ONEDIR="${1:-$ROOT/dist/lancedb-sync}"
OUT="${2:-$ROOT/dist}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/app/__init__.py")"
ARCH="$(dpkg --print-architecture)"
[ -x "$ONEDIR/lancedb-sync" ] || { echo "no onedir build at $ONEDIR" >&2; exit 1; }

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/lancedb-sync_${VERSION}_${ARCH}"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications"
cp -a "$ONEDIR" "$PKG/opt/lancedb-sync"
ln -s /opt/lancedb-sync/lancedb-sync "$PKG/usr/bin/lancedb-sync"
install -m 644 "$ROOT/installer/linux/lancedb-sync.desktop" "$PKG/usr/share/applications/"
for png in "$ROOT"/resources/icons/app-*.png; do
    [ -e "$png" ] || continue
    size="$(basename "$png" .png)"; size="${size#app-}"
    dir="$PKG/usr/share/icons/hicolor/${size}x${size}/apps"
    mkdir -p "$dir"
    install -m 644 "$png" "$dir/lancedb-sync.png"
done

# What the bundled Qt (xcb platform plugin), D-Bus and fonts need from the system; everything
# else ships inside /opt/lancedb-sync.
DEPENDS="libc6 (>= 2.31), libglib2.0-0, libdbus-1-3, libfontconfig1, libfreetype6, libx11-6,
 libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1,
 libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-shm0, libxcb-sync1, libxcb-xfixes0,
 libxcb-xinerama0, libxcb-xkb1, libxkbcommon0, libxkbcommon-x11-0, libegl1, libgl1"
SIZE_KB="$(du -sk "$PKG" | cut -f1)"
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: lancedb-sync
Version: $VERSION
Section: utils
Priority: optional
Architecture: $ARCH
Installed-Size: $SIZE_KB
Depends: $(echo $DEPENDS)
Recommends: gnome-keyring | kwalletmanager, libnotify-bin
Maintainer: LanceDB Sync developers <lancedb-sync@example.org>
Homepage: https://github.com/lancedb-sync/lancedb-sync
Description: Keeps a searchable LanceDB index of your documents up to date
 A tray application that indexes local folders (and remote sources) into a
 per-user LanceDB index incrementally, keeps credentials in the OS keyring and
 backs the index up to S3. Also a command line: lancedb-sync --help.
CONTROL
cat > "$PKG/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
exit 0
SCRIPT
cat > "$PKG/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
# User data (~/.local/share/lancedb-sync, ~/.config/lancedb-sync) is deliberately kept: the
# index is the user's, and reinstalling must find it again.
set -e
command -v update-desktop-database >/dev/null && update-desktop-database -q /usr/share/applications || true
exit 0
SCRIPT
chmod 755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"

mkdir -p "$OUT"
DEB="$OUT/lancedb-sync_${VERSION}_${ARCH}.deb"
# xz at level 6: a good size for a one-time download without minutes of compression.
dpkg-deb --root-owner-group -Zxz -z6 --build "$PKG" "$DEB" >/dev/null
TAR="$OUT/lancedb-sync-${VERSION}-linux-${ARCH}.tar.gz"
tar -C "$(dirname "$ONEDIR")" -czf "$TAR" "$(basename "$ONEDIR")"
echo "$DEB"
echo "$TAR"
