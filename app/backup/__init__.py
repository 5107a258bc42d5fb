"""Backups of the index to S3: snapshots, restore, verify, prune and remote read-only access.

No Qt, no HTTP server, and nothing heavy at import: boto3 and LanceDB load inside the functions
that use them, so the CLI's `--help` stays instant.

- `identity`    this device's id and name, and the machine fingerprint used by the lease
- `errors`      the error types (each message says what to do)
- `s3`          S3 settings, the boto3 client, error translation, the lease, Test connection
- `snapshot`    the local side: pin table versions, list and hash files, the manifest, pure plans
- `manager`     `BackupManager`: backup, snapshots, restore, verify, prune, remote search
- `auto`        `AutoBackup`: what the service calls after a sync (thread-safe)

See docs/backup.md.
"""
