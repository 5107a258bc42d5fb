"""Backup: where the index is backed up (S3 or an S3-compatible store) and how often.

Bucket, prefix, region, endpoint, access key id and schedule go to `config.toml`; the secret
access key goes to the OS keyring only (`app.secrets`, key `s3:backup:secret_access_key`).
Back up now and Restore stay disabled, with a tooltip, until the service offers backups
(`backup_now` / `restore`); Test connection needs boto3, which arrives with the backup issue.
"""

from __future__ import annotations

import importlib.util
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
    from app.ui.app import TrayApp

SECRET = ("s3", "backup", "secret_access_key")
SCHEDULES = (("Off", "off"), ("Every hour", "hourly"), ("Every day", "daily"),
             ("Every week", "weekly"))
NOT_YET = ("Backups arrive with the S3 backup update; this button is wired to it once the "
           "service can back up.")


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
        self.schedule.setCurrentIndex(max(0, self.schedule.findData(
            v.get("backup_schedule") or "off")))
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
        has_boto = importlib.util.find_spec("boto3") is not None
        self.test_button.setEnabled(has_boto)
        self.test_button.setToolTip("Lists the bucket with these credentials" if has_boto else
                                    "Needs the S3 support (boto3) that arrives with the backup "
                                    "update.")
        self.test_button.clicked.connect(lambda: self.c.spawn(self.test_connection()))
        self.backup_button = QPushButton("Back up now")
        self.restore_button = QPushButton("Restore…")
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
        for button, name in ((self.backup_button, "backup_now"), (self.restore_button, "restore")):
            available = service is not None and callable(getattr(service, name, None))
            button.setEnabled(available)
            button.setToolTip("" if available else NOT_YET)

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
                "backup_schedule": self.schedule.currentData()}

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
            return True
        finally:
            self.save_button.setEnabled(True)

    async def test_connection(self) -> None:  # pragma: no cover - needs boto3 (backup issue)
        self.banner.show_message("Testing…", "info")
        values = self.values()
        try:
            secret = self.secret.text() or await self.c.run_blocking(
                lambda: secrets.get_secret(*SECRET, allow_insecure=self._allow_insecure()))
        except secrets.SecretsError as exc:
            self._keyring_problem(exc)
            return

        def probe() -> str:
            import boto3

            client = boto3.client("s3", region_name=values["aws_region"],
                                  endpoint_url=values["s3_endpoint_url"],
                                  aws_access_key_id=values["s3_access_key_id"],
                                  aws_secret_access_key=secret)
            client.list_objects_v2(Bucket=values["s3_bucket"], MaxKeys=1,
                                   Prefix=values["s3_prefix"] or "")
            return "Connected: the bucket can be listed with these credentials."

        try:
            self.banner.show_message(await self.c.run_blocking(probe), "info")
        except Exception as exc:
            self.banner.show_message(f"Connection failed: {exc}", "error")


def _short(exc: Exception) -> str:
    return {secrets.KeyringTimeoutError: "it did not answer; is it locked?",
            secrets.KeyringLockedError: "it is locked",
            secrets.NoSecureBackendError: "no secure keyring"}.get(type(exc), str(exc))
