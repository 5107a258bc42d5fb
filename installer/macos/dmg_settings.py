# dmgbuild settings:  dmgbuild -s installer/macos/dmg_settings.py -D app="dist/LanceDB Sync.app" \
#                         "LanceDB Sync" "dist/LanceDB-Sync.dmg"
import os.path

application = defines.get("app", "dist/LanceDB Sync.app")  # noqa: F821 (dmgbuild's globals)
appname = os.path.basename(application)

format = "UDZO"  # compressed, read-only
size = None
files = [application]
symlinks = {"Applications": "/Applications"}
badge_icon = None
icon_locations = {appname: (140, 120), "Applications": (500, 120)}
window_rect = ((100, 100), (640, 280))
default_view = "icon-view"
show_icon_preview = False
icon_size = 96
text_size = 12
