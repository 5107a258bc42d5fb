"""The tray application (issue 4). All Qt lives in this package; nothing below it imports Qt.

Modules: `app` (entry point: Qt and the loop), `controller` (`TrayApp`), `activity` (activity
list, notification rate limit), `tray` (icon and menu), `bridge` (service events → Qt signals),
`status` (Qt-free status logic), `icons`, `autostart`, `single_instance`, `display` and one module
per window under `windows/`. The package reaches the index only through `app.service`.
"""
