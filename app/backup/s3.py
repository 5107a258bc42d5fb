"""Talking to S3 at all: the backup settings, the boto3 client, LanceDB's options for the same
bucket, and what S3's errors mean to the person.

Kept apart from the jobs because it is the one place that knows boto3 and botocore: their
configuration (S3-compatible stores, checksums, retries) and their error codes.

Credentials come from the standard AWS chain (environment variables, `AWS_PROFILE` and the shared
files, SSO, an instance or container role) unless a `credentials_provider` is given: a callable
returning `{"aws_access_key_id": …, "aws_secret_access_key": …, "aws_session_token": …}` or None
(the OS-keyring lookup of app/secrets.py plugs in here). No secret is ever logged or printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.backup.errors import (
    BackupAuthError,
    BackupConfigError,
    BackupConnectionError,
    BackupError,
    BackupPermissionError,
)
from app.logsafety import register_secrets

CredentialsProvider = Callable[[], Mapping[str, str] | None]

# The permission each of our S3 calls needs, for messages that name the missing one.
PERMISSIONS = {
    "list": "s3:ListBucket",
    "get": "s3:GetObject",
    "head": "s3:GetObject",
    "put": "s3:PutObject",
    "delete": "s3:DeleteObject",
}
_AUTH_CODES = {
    "SignatureDoesNotMatch": "S3 rejected the secret access key: it does not match the access "
                             "key id (SignatureDoesNotMatch). Check AWS_SECRET_ACCESS_KEY (or "
                             "the stored secret) for this access key.",
    "InvalidAccessKeyId": "S3 does not know this access key id (InvalidAccessKeyId). Check "
                          "AWS_ACCESS_KEY_ID (or the stored key), and the endpoint URL.",
    "ExpiredToken": "The AWS session token has expired (ExpiredToken). Refresh your "
                    "credentials (e.g. `aws sso login`) and try again.",
    "InvalidToken": "The AWS session token is invalid (InvalidToken). Refresh your credentials.",
    "TokenRefreshRequired": "The AWS session token must be refreshed. Refresh your credentials.",
}


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    prefix: str  # "" or ends with "/"
    region: str | None
    endpoint_url: str | None
    path_style: bool
    sse: str | None  # None | "AES256" | "aws:kms"
    kms_key_id: str | None
    retry_mode: str
    max_attempts: int
    chunk_size: int  # bytes
    concurrency: int
    max_bandwidth: int | None  # bytes per second for a whole backup

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if env is None else env
        bucket = settings.s3_bucket
        if not bucket:
            raise BackupConfigError(
                "No backup bucket is configured. Set S3_BUCKET (or s3_bucket in config.toml), "
                "and S3_ENDPOINT_URL for an S3-compatible store; see docs/backup.md.")
        endpoint = (settings.s3_endpoint_url or env.get("AWS_ENDPOINT_URL_S3")
                    or env.get("AWS_ENDPOINT_URL") or None)
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise BackupConfigError(f"The S3 endpoint URL {endpoint!r} must start with "
                                    "http:// or https://.")
        style = settings.s3_addressing_style
        path_style = style == "path" or (style == "auto" and bool(endpoint))
        prefix = (settings.s3_prefix or "").strip("/")
        sse = {"none": None, "aes256": "AES256", "aws:kms": "aws:kms"}[settings.s3_sse]
        bandwidth = settings.backup_max_bandwidth_mb
        return cls(
            bucket=bucket, prefix=prefix + "/" if prefix else "",
            region=settings.aws_region or env.get("AWS_DEFAULT_REGION") or None,
            endpoint_url=endpoint, path_style=path_style, sse=sse,
            kms_key_id=settings.s3_sse_kms_key_id if sse == "aws:kms" else None,
            retry_mode=settings.s3_retry_mode, max_attempts=max(1, settings.max_retries + 1),
            chunk_size=int(settings.chunk_size_mb) * 1024 * 1024,
            concurrency=int(settings.backup_concurrency),
            max_bandwidth=int(bandwidth * 1024 * 1024) if bandwidth else None,
        )

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put_args(self) -> dict[str, str]:
        """ExtraArgs for every object we write (server-side encryption)."""
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


def make_client(cfg: S3Settings, credentials_provider: CredentialsProvider | None = None):
    import boto3
    from botocore.config import Config

    creds = dict(credentials_provider() or {}) if credentials_provider else {}
    register_secrets(creds.values())
    session = boto3.session.Session(region_name=cfg.region, **{
        k: v for k, v in creds.items()
        if k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token") and v})
    # Third-party S3 stores reject the CRC checksums new botocore adds to every request.
    when = "when_required" if cfg.endpoint_url else "when_supported"
    config = Config(
        retries={"mode": cfg.retry_mode, "max_attempts": cfg.max_attempts},
        s3={"addressing_style": "path" if cfg.path_style else "auto"},
        request_checksum_calculation=when,
        response_checksum_validation=when,
        max_pool_connections=max(10, cfg.concurrency * 4),
        connect_timeout=10,
        read_timeout=60,
    )
    client = session.client("s3", endpoint_url=cfg.endpoint_url, config=config)
    return client, session


def storage_options(cfg: S3Settings, session: Any) -> dict[str, str]:
    """LanceDB object-store options for reading the bucket with the same credentials."""
    opts: dict[str, str] = {}
    creds = session.get_credentials()
    if creds is None:
        raise BackupAuthError(_NO_CREDENTIALS)
    frozen = creds.get_frozen_credentials()
    # From whatever link of the chain found them (a profile, SSO, a role), not only the env.
    register_secrets((frozen.access_key, frozen.secret_key, frozen.token))
    opts["aws_access_key_id"] = frozen.access_key
    opts["aws_secret_access_key"] = frozen.secret_key
    if frozen.token:
        opts["aws_session_token"] = frozen.token
    region = cfg.region or session.region_name or "us-east-1"
    opts["region"] = region
    if cfg.endpoint_url:
        opts["aws_endpoint"] = cfg.endpoint_url
        if cfg.endpoint_url.startswith("http://"):
            opts["allow_http"] = "true"
    opts["virtual_hosted_style_request"] = "false" if cfg.path_style else "true"
    return opts


_NO_CREDENTIALS = ("No AWS credentials were found. Set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile in ~/.aws, or store them "
                   "in the app's keyring; see docs/backup.md.")


def explain(exc: BaseException, action: str, cfg: S3Settings, key: str = "") -> BackupError:
    """Turn a boto3/botocore error into a BackupError a person can act on."""
    from botocore import exceptions as bx

    if isinstance(exc, BackupError):
        return exc
    # boto3's transfer manager wraps the real error; walk the chain to find it.
    seen = exc
    chain = [exc]
    while seen.__cause__ or seen.__context__:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
        chain.append(seen)
    where = f"s3://{cfg.bucket}/{key}" if key else cfg.where
    for e in chain:
        if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return BackupAuthError(_NO_CREDENTIALS)
        if isinstance(e, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                          bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionError)):
            endpoint = cfg.endpoint_url or "AWS S3"
            return BackupConnectionError(
                f"Cannot reach {endpoint} ({type(e).__name__}) while trying to {action} "
                f"{where}. Check the network and the endpoint URL; nothing that was already "
                "backed up is lost, and running the backup again uploads only what is missing.")
        if isinstance(e, bx.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _AUTH_CODES:
                return BackupAuthError(_AUTH_CODES[code])
            if code == "NoSuchBucket":
                return BackupConfigError(
                    f"The bucket {cfg.bucket!r} does not exist (or is in another region than "
                    f"{cfg.region or 'the default'}). Create it or fix S3_BUCKET.")
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
                permission = PERMISSIONS.get(action, "s3:*")
                if action == "put" and cfg.kms_key_id:
                    permission += " (and kms:GenerateDataKey on the KMS key)"
                return BackupPermissionError(
                    f"Access denied: the credentials lack {permission} on {where}. Grant it in "
                    "the bucket or IAM policy (docs/backup.md lists what backups need).",
                    permission)
            message = err.get("Message") or str(e)
            return BackupError(f"S3 refused to {action} {where}: {code} {message}".strip())
        if isinstance(e, bx.BotoCoreError):
            return BackupError(f"S3 {action} of {where} failed: {e}")
    return BackupError(f"S3 {action} of {where} failed: {exc}")


def is_missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")
