"""Backup credentials from the OS keyring: the access key id in the config, its secret in the
keyring (the Backup window puts them there). Without a key id, boto3's own chain applies
(environment variables, profiles, instance role)."""

from __future__ import annotations

from typing import Any

from app.backup.errors import BackupAuthError
from app.backup.s3 import CredentialsProvider
from app.logsafety import register_secrets

SECRET = ("s3", "backup", "secret_access_key")


def keyring_provider(settings: Any) -> CredentialsProvider | None:
    key_id = settings.values.get("s3_access_key_id")
    if not key_id:
        return None
    allow_insecure = bool(settings.values.get("allow_insecure_secrets"))

    def provide() -> dict[str, str]:
        from app import secrets

        try:
            secret = secrets.get_secret(*SECRET, allow_insecure=allow_insecure)
        except secrets.SecretsError as exc:
            raise BackupAuthError(f"The backup secret could not be read from the keyring: {exc}"
                                  ) from None
        if not secret:
            raise BackupAuthError(
                f"An access key id ({key_id}) is set for backups but its secret is not in the "
                "keyring; enter it in the Backup window (or clear the key id to use the AWS "
                "credential chain).")
        register_secrets((key_id, secret))
        return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}

    return provide
