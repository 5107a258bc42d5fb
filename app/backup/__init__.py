"""Backups of the index to S3: snapshots, restore, verify, prune and remote read-only access.

No Qt, no HTTP server, and nothing heavy at import: boto3 and LanceDB load inside the functions
that use them, so the CLI's `--help` stays instant.

One job per module, so a change to one job is read and reviewed without the others:

- `manager`     `BackupManager`: the façade the CLI, the tray, the service and the tests call
- `backup`      take a snapshot: pin, hold and hash the files, upload what is missing, publish
- `restore`     download a snapshot, check every file and table, swap it into place
- `verify`      is every file of a snapshot in the bucket, intact?
- `prune`       retention: drop old snapshots, then the files no kept snapshot lists
- `remote`      open a snapshot read-only on S3, for search
- `catalog`     the bucket's devices and snapshots, read and checked; resolve "DEVICE[/ID]"
- `snapshot`    no S3: the manifest and its checks, local table files and hashes, pure plans
- `bucket`      the S3 calls and key layout the jobs share, failures explained
- `transfer`    many files at once: progress, cancelling, the first real error
- `lease`       one writer per device prefix
- `s3`          S3 settings, the boto3 client, what S3's errors mean
- `connection`  Test connection: list, put, get, delete, naming a missing permission
- `identity`    this device's id and name, and the machine fingerprint used by the lease
- `credentials` the backup secret from the OS keyring
- `errors`      the error types (each message says what to do)
- `auto`        `AutoBackup`: what the service calls after a sync (thread-safe)

See docs/backup.md.
"""
