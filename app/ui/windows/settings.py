"""Settings: the few choices a person makes in the tray, written to `config.toml`.

A setting the service does not know yet (low-priority mode, pause on battery, the local API —
each added in a later version) is shown disabled with a tooltip instead of pretending. Changing
the embedding model shows what the re-embed costs first and runs it only after confirmation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.ui.windows.common import Banner, muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

log = logging.getLogger(__name__)

MODELS = ("wordllama", "wordllama:64", "wordllama:128", "wordllama:256",
          "ollama:nomic-embed-text", "openai:text-embedding-3-small")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Settings other issues add to the service; the first name found in FIELDS is used.
OPTIONAL = {
    "low_priority": ("low_priority", "low_priority_mode"),
    "pause_on_battery": ("pause_on_battery",),
    "api": ("api_enabled", "enable_api", "local_api"),
}
NEEDS_RESTART = {"max_concurrent_processing", "embedder", "log_level", "low_priority",
                 "low_priority_mode", "pause_on_battery"}


def optional_field(kind: str) -> str | None:
    from app.config import FIELDS

    names = {f.name for f in FIELDS}
    return next((n for n in OPTIONAL[kind] if n in names), None)


def reembed_cost(old: str, new: str, chunks: int) -> str:
    """What switching the model costs, in words (pure)."""
    from app.service import Service

    if not chunks or old == new:
        return ""
    return (f"Switching to {new} re-embeds all {chunks:,} chunks, "
            f"{Service.reembed_cost(new, chunks)}. "
            "Search keeps working with the old model until it is done.")


class SettingsWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Settings", 600, 520)
        v = controller.settings.values
        self.banner = Banner()

        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(MODELS)
        self.model.setCurrentText(v.get("embedder") or "wordllama")
        self.model.currentTextChanged.connect(self._model_changed)
        self.cost = QLabel()
        self.cost.setWordWrap(True)
        muted(self.cost)
        self.cost.hide()
        self.workers = QSpinBox()
        self.workers.setRange(1, 64)
        self.workers.setValue(int(v.get("max_concurrent_processing") or 1))
        self.workers.setMaximumWidth(90)
        self.workers.setToolTip("Parser worker processes; fewer leave more of the computer "
                                "to you")
        self.low_priority = self._optional_box("low_priority", "Run at low priority",
                                               "the service's low-priority mode")
        self.battery = self._optional_box("pause_on_battery", "Pause while on battery",
                                          "the service's battery awareness")
        self.api = self._optional_box("api", "Local REST API (loopback only)",
                                      "the REST API")
        self.api.setToolTip("Lets other programs on this computer (a desktop assistant, "
                            "scripts) search and manage the index over HTTP, with the token "
                            "in api.json. See docs/api.md.")
        self.api_info = QLabel()
        self.api_info.setWordWrap(True)
        self.api_info.setTextInteractionFlags(self.api_info.textInteractionFlags() |
                                              self.api_info.textInteractionFlags()
                                              .TextSelectableByMouse)
        muted(self.api_info)
        self.api_docs = QPushButton("Open API docs")
        self.api_docs.setToolTip("The routes, in your browser (served by the app, works "
                                 "offline)")
        self.api_docs.clicked.connect(self._open_api_docs)
        self.autostart = QCheckBox("Start LanceDB Sync when I log in")
        self.autostart.setChecked(controller.autostart_on)
        self.notifications = QCheckBox("Notify me of errors and finished first syncs")
        self.notifications.setChecked(bool(v.get("notifications", True)))
        self.insecure = QCheckBox("Allow storing credentials unencrypted when no secure "
                                  "keyring exists (not recommended)")
        self.insecure.setChecked(bool(v.get("allow_insecure_secrets")))
        self.log_level = QComboBox()
        self.log_level.addItems(LOG_LEVELS)
        self.log_level.setCurrentText(v.get("log_level") or "info")
        data = QHBoxLayout()
        folder = QLabel(str(controller.settings.paths.data_dir))
        folder.setTextInteractionFlags(folder.textInteractionFlags() |
                                       folder.textInteractionFlags().TextSelectableByMouse)
        open_data = QPushButton("Open")
        open_data.clicked.connect(controller.open_data_folder)
        data.addWidget(folder, 1)
        data.addWidget(open_data)
        logs = QHBoxLayout()
        open_logs = QPushButton("Open log folder")
        open_logs.clicked.connect(lambda: controller.open_path(controller.settings.paths.log_dir))
        logs.addWidget(self.log_level)
        logs.addWidget(open_logs)
        logs.addStretch(1)

        workers = QHBoxLayout()
        workers.addWidget(self.workers)
        workers.addStretch(1)
        form = QFormLayout()
        form.addRow("Embedding model:", self.model)
        form.addRow("", self.cost)
        form.addRow("Parser processes:", workers)
        form.addRow("", self.low_priority)
        form.addRow("", self.battery)
        form.addRow("", self.autostart)
        form.addRow("", self.notifications)
        form.addRow("", self.insecure)
        api_row = QHBoxLayout()
        api_row.addWidget(self.api)
        api_row.addStretch(1)
        api_row.addWidget(self.api_docs)
        form.addRow("", api_row)
        form.addRow("", self.api_info)
        form.addRow("Log level:", logs)
        form.addRow("Data folder:", data)

        self.apply_button = QPushButton("Apply")
        self.apply_button.setDefault(True)
        self.apply_button.clicked.connect(self.apply)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.apply_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addLayout(form)
        lay.addStretch(1)
        lay.addLayout(buttons)
        # The tray menu can change start-at-login too: follow it.
        controller.snapshot_changed.connect(
            lambda _s: self.autostart.setChecked(self.c.autostart_on))
        controller.service_changed.connect(self._show_api)
        self._show_api()

    def _show_api(self) -> None:
        from app.api.discovery import api_file

        api = self.c.api
        if api is not None:
            self.api_info.setText(f"Listening at {api.url} · its token is in "
                                  f"{api_file(self.c.settings.state_dir)}")
        elif self.c.settings.values.get("api_enabled"):
            self.api_info.setText("Starts with the sync service.")
        else:
            self.api_info.setText("Off: other programs cannot reach the index over HTTP.")
        self.api_docs.setEnabled(api is not None)

    def _open_api_docs(self) -> None:
        if self.c.api is not None:
            from PySide6.QtCore import QUrl
            from PySide6.QtGui import QDesktopServices

            QDesktopServices.openUrl(QUrl(f"{self.c.api.url}/docs"))

    def _optional_box(self, kind: str, text: str, arrives_with: str) -> QCheckBox:
        box = QCheckBox(text)
        name = optional_field(kind)
        box.setProperty("field", name)
        if name is None:
            box.setEnabled(False)
            box.setToolTip(f"Needs {arrives_with}, which this version does not have yet.")
        else:
            box.setChecked(bool(self.c.settings.values.get(name)))
        return box

    def _chunks(self) -> int:
        return sum(s.chunks for s in self.c.snapshot.sources)

    def _index_model(self) -> str:
        """The model the index is built with, as a spec to compare ("" if none): the
        configured one unless the index says it holds another."""
        return self.c.settings.values.get("embedder") or "wordllama"

    def _reembed_needed(self, spec: str) -> bool:
        """Choosing `spec` means re-embedding: the index holds chunks of another model (the
        index decides, not the settings: going back to its model costs nothing)."""
        from app.config import is_embedder_spec

        if not self._chunks() or not is_embedder_spec(spec):
            return False
        if self.c.service is not None:
            return self.c.service.reembed_needed(spec)  # one read of the sync state's meta
        return spec != self._index_model()

    def _model_changed(self, text: str) -> None:
        spec = text.strip()
        cost = ""
        if self._reembed_needed(spec):
            cost = reembed_cost(self._index_model(), spec, self._chunks())
        self.cost.setText(cost)
        self.cost.setVisible(bool(cost))

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "embedder": self.model.currentText().strip() or "wordllama",
            "max_concurrent_processing": self.workers.value(),
            "notifications": self.notifications.isChecked(),
            "allow_insecure_secrets": self.insecure.isChecked(),
            "log_level": self.log_level.currentText(),
        }
        for box in (self.low_priority, self.battery, self.api):
            name = box.property("field")
            if name:
                out[name] = box.isChecked()
        return out

    def apply(self) -> None:
        from app.config import ConfigError, check_setting

        values = self.values()
        try:  # check every value before anything is written or re-embedded
            for name, value in values.items():
                check_setting(name, value)
        except ConfigError as exc:
            self.banner.show_message(str(exc), "error")
            return
        old_model = self._index_model()
        if self._reembed_needed(values["embedder"]):
            box = QMessageBox(QMessageBox.Icon.Question, "Change the embedding model?",
                              reembed_cost(old_model, values["embedder"], self._chunks()),
                              QMessageBox.StandardButton.Cancel, self)
            go = box.addButton("Re-embed now", QMessageBox.ButtonRole.AcceptRole)
            box.finished.connect(lambda _r: box.clickedButton() is go and self.c.spawn(
                self.save(values, reembed=True)))
            self.confirm = box
            box.open()
            return
        self.c.spawn(self.save(values))

    async def save(self, values: dict[str, Any], *, reembed: bool = False) -> None:
        from app.config import ConfigError, save_values
        from app.logsetup import set_level

        self.apply_button.setEnabled(False)
        try:
            before = dict(self.c.settings.values)
            try:
                settings = await self.c.run_blocking(save_values, self.c.settings, values)
            except ConfigError as exc:
                self.banner.show_message(str(exc), "error")
                return
            if self.autostart.isChecked() != self.c.autostart_on:
                self.c.set_autostart(self.autostart.isChecked())
            set_level(settings.values["log_level"])  # keeps the library loggers capped
            changed = {k for k, v in settings.values.items() if before.get(k) != v}
            if reembed:
                self.banner.show_message("Re-embedding the index… search keeps working.", "info")
                await self.c.stop_service()
                from app.service import Service

                failed = ""
                try:
                    # With the service stopped, a Service on the new settings re-embeds in a
                    # worker thread, holding the writer lock itself.
                    await Service(settings).reembed()
                except Exception as exc:  # said in the banner, not left as "Re-embedding…"
                    from app.service.errors import one_line

                    log.exception("re-embedding failed")
                    failed = one_line(exc)
                finally:
                    await self.c.restart_service(settings.with_sources(
                        self.c.settings.sources))  # stop_service kept the live sources
                if failed:
                    self.banner.show_message(f"Re-embedding failed: {failed}", "error")
                else:
                    self.banner.show_message(
                        f"Done: the index now uses {values['embedder']}.", "info")
            elif changed & NEEDS_RESTART and self.c.service is not None:
                await self.c.restart_service(settings.with_sources(
                    self.c.service.settings.sources))
                self.banner.show_message("Saved; the sync service restarted with the new "
                                         "settings.", "info")
            else:
                self.c.settings = settings.with_sources(
                    self.c.service.settings.sources if self.c.service else settings.sources)
                self.banner.show_message("Saved.", "info")
            if "api_enabled" in changed:  # the API follows the box; the service keeps running
                await self.c.set_api(bool(settings.values["api_enabled"]))
        finally:
            self.apply_button.setEnabled(True)
