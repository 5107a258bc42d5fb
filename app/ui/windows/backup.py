"""Backup: where the index is backed up (S3 or an S3-compatible store) and how often.

Bucket, prefix, region, endpoint, access key id and schedule go to `config.toml`; the secret
access key goes to the OS keyring only (`app.secrets`, key `s3:backup:secret_access_key`), where
the service's backups find it. Back up now calls the service's `backup_now()`; Test connection
(the Service's `backup_manager().test_connection()`, with the form's values) checks
list/put/get/delete and names a missing permission.
Restoring replaces the index the running service holds open, so it is done from the command line
with the app closed (`lancedb-sync restore`); the Restore button says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import secrets
from app.ui.windows.common import Banner, muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

SECRET = ("s3", "backup", "secret_access_key")
# Automatic backups: after a sync that changed something, at most once per interval.
SCHEDULES = (("Off", 0), ("At most every hour", 3600), ("At most every day", 86400),
             ("At most every week", 7 * 86400))
NO_SERVICE = "The sync service is not running."
NO_BUCKET = "Enter a bucket and press Save first."
RESTORE_HOW = ("Restoring replaces the index this app has open: quit LanceDB Sync, then run "
               "'lancedb-sync restore' (it lists the snapshots and verifies every file).")


class BackupWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Backup", 560, 470)
        v = controller.settings.values
        self.banner = Banner()
        self.bucket = QLineEdit(v.get("s3_bucket") or "")
        self.bucket.setPlaceholderText("my-backups")
        self.prefix = QLineEdit(v.get("s3_prefix") or "")
        self.region = QLineEdit(v.get("aws_region") or "")
        self.region.setPlaceholderText("e.g. eu-west-1")
        self.endpoint = QLineEdit(v.get("s3_endpoint_url") or "")
        self.endpoint.setPlaceholderText("empty for AWS; e.g. https://s3.example.com")
        self.key_id = QLineEdit(v.get("s3_access_key_id") or "")
        self.secret = QLineEdit()
        self.secret.setObjectName("secret")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("checking the keyring…")
        self.schedule = QComboBox()
        for label, value in SCHEDULES:
            self.schedule.addItem(label, value)
        interval = int(v.get("backup_interval") or 3600) if v.get("backup_auto", True) else 0
        if self.schedule.findData(interval) < 0:
            self.schedule.addItem(f"At most every {interval // 60} min", interval)
        self.schedule.setCurrentIndex(self.schedule.findData(interval))
        self.schedule.setToolTip("Backs up after a sync that changed something, at most this "
                                 "often")
        self.keyring_label = QLabel("Keyring: checking…")
        self.keyring_label.setWordWrap(True)
        muted(self.keyring_label)

        form = QFormLayout()
        form.addRow("Bucket:", self.bucket)
        form.addRow("Prefix:", self.prefix)
        form.addRow("Region:", self.region)
        form.addRow("Endpoint URL:", self.endpoint)
        form.addRow("Access key id:", self.key_id)
        form.addRow("Secret access key:", self.secret)
        form.addRow("", self.keyring_label)
        form.addRow("Schedule:", self.schedule)

        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(lambda: self.c.spawn(self.save()))
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip("Checks that these credentials can list, write, read and "
                                    "delete in the bucket")
        self.test_button.clicked.connect(lambda: self.c.spawn(self.test_connection()))
        self.backup_button = QPushButton("Back up now")
        self.backup_button.clicked.connect(lambda: self.c.spawn(self.backup_now()))
        self.restore_button = QPushButton("Restore…")
        self.restore_button.setEnabled(False)
        self.restore_button.setToolTip(RESTORE_HOW)
        self._wire_backup_actions()
        top = QHBoxLayout()
        top.addWidget(self.test_button)
        top.addStretch(1)
        top.addWidget(self.save_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.backup_button)
        bottom.addWidget(self.restore_button)
        bottom.addStretch(1)
        note = QLabel("The secret access key is stored only in your system keyring, never in "
                      "LanceDB Sync's files.")
        note.setWordWrap(True)
        muted(note)

        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addLayout(top)
        lay.addStretch(1)
        lay.addLayout(bottom)
        controller.service_changed.connect(self._wire_backup_actions)
        self.c.spawn(self.load_secret_state())

    def _wire_backup_actions(self) -> None:
        service = self.c.service
        why = NO_SERVICE if service is None else (
            "" if self.c.settings.values.get("s3_bucket") else NO_BUCKET)
        self.backup_button.setEnabled(not why)
        self.backup_button.setToolTip(why or "Back up the index to the bucket now")

    async def backup_now(self) -> None:
        service = self.c.service
        if service is None:
            return
        self.backup_button.setEnabled(False)
        self.banner.show_message("Backing up… (only files the bucket lacks are uploaded)", "info")
        try:
            result = await service.backup_now()
        except Exception as exc:  # BackupError messages are written for the person
            self.banner.show_message(f"Backup failed: {exc}", "error")
        else:
            mb = result["uploaded_bytes"] / 1e6
            self.banner.show_message(
                f"Backed up as snapshot {result['snapshot_id']}: {result['uploaded_files']} "
                f"new files ({mb:,.1f} MB), {result['reused_files']} already in the bucket, "
                f"{result['seconds']:.1f} s.", "info")
        finally:
            self._wire_backup_actions()

    def _allow_insecure(self) -> bool:
        return bool(self.c.settings.values.get("allow_insecure_secrets"))

    async def load_secret_state(self) -> None:
        try:
            info = await self.c.run_blocking(secrets.backend_info)
            self.keyring_label.setText(f"Keyring: {info.description}")
            stored = await self.c.run_blocking(
                lambda: secrets.get_secret(*SECRET, allow_insecure=self._allow_insecure()))
        except secrets.SecretsError as exc:
            self._keyring_problem(exc)
            return
        self.c.clear_attention("keyring")
        self.secret.setPlaceholderText("stored in the keyring — type to replace" if stored
                                       else "not set")

    def _keyring_problem(self, exc: Exception) -> None:
        self.banner.show_message(str(exc), "warning")
        self.secret.setPlaceholderText("the keyring is not available")
        self.c.set_attention("keyring", f"the keyring is unavailable ({_short(exc)})")

    def values(self) -> dict[str, Any]:
        return {"s3_bucket": self.bucket.text().strip() or None,
                "s3_prefix": self.prefix.text().strip() or None,
                "aws_region": self.region.text().strip() or None,
                "s3_endpoint_url": self.endpoint.text().strip() or None,
                "s3_access_key_id": self.key_id.text().strip() or None,
                "backup_auto": bool(self.schedule.currentData()),
                **({"backup_interval": self.schedule.currentData()}
                   if self.schedule.currentData() else {})}

    async def save(self) -> bool:
        """Settings to the config file, the secret (if typed) to the keyring. True on success."""
        from app.config import ConfigError, save_values

        self.save_button.setEnabled(False)
        try:
            try:
                self.c.settings = await self.c.run_blocking(save_values, self.c.settings,
                                                            self.values())
            except ConfigError as exc:
                self.banner.show_message(str(exc), "error")
                return False
            secret = self.secret.text()
            if secret:
                try:
                    await self.c.run_blocking(lambda: secrets.set_secret(
                        *SECRET, secret, allow_insecure=self._allow_insecure()))
                except secrets.SecretsError as exc:
                    self._keyring_problem(exc)
                    return False
                self.secret.clear()
                self.secret.setPlaceholderText("stored in the keyring — type to replace")
                self.c.clear_attention("keyring")
            self.banner.show_message("Saved." + (" The secret is in the keyring." if secret
                                                 else ""), "info")
            self._wire_backup_actions()
            if self.c.service is not None:
                # The running service backs up with the settings it was started with.
                await self.c.restart_service(self.c.settings)
            return True
        finally:
            self.save_button.setEnabled(True)

    async def test_connection(self) -> None:
        """List, put, read back and delete a probe object with the form's values (saved or
        not), and say which permission is missing."""
        import dataclasses

        self.banner.show_message("Testing…", "info")
        values = {k: v for k, v in self.values().items() if v is not None}
        if not values.get("s3_bucket"):
            self.banner.show_message("Enter a bucket first.", "error")
            return
        try:
            secret = self.secret.text() or await self.c.run_blocking(
                lambda: secrets.get_secret(*SECRET, allow_insecure=self._allow_insecure()))
        except secrets.SecretsError as exc:
            self._keyring_problem(exc)
            return
        settings = dataclasses.replace(self.c.settings,
                                       values={**self.c.settings.values, **values})
        key_id = values.get("s3_access_key_id")
        provider = (lambda: {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
                    ) if key_id and secret else None

        def probe() -> list[Any]:
            from app.service import Service

            # A Service on the form's values, never started: only its bucket is used.
            return Service(settings, credentials_provider=provider).backup_manager(
                ).test_connection()

        try:
            checks = await self.c.run_blocking(probe)
        except Exception as exc:  # BackupError: no network, bad credentials, no bucket
            self.banner.show_message(f"Connection failed: {exc}", "error")
            return
        missing = [c for c in checks if not c.ok]
        if missing:
            self.banner.show_message("Connected, but: " + " ".join(c.message for c in missing),
                                     "warning")
        else:
            self.banner.show_message("Connected: the bucket can be listed, written, read and "
                                     "cleaned up with these credentials.", "info")


def _short(exc: Exception) -> str:
    return {secrets.KeyringTimeoutError: "it did not answer; is it locked?",
            secrets.KeyringLockedError: "it is locked",
            secrets.NoSecureBackendError: "no secure keyring"}.get(type(exc), str(exc))
