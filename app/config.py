"""Settings: defaults < per-user TOML config file < environment variables.

Every setting has one row in `FIELDS`: its name in the config file, the environment variable that
overrides it (the seed's names where the seed has one), its type and accepted values. A bad value,
wherever it comes from, raises `ConfigError` naming where it came from and what is accepted; the CLI
turns that into exit status 2.

Sources live in the same file as `[[sources]]` tables, so they come back after a restart.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.models import SourceConfig, SourceType
from app.paths import STATE_DB_NAME, AppPaths, local_index_folder, resolve_paths


class ConfigError(Exception):
    """A setting has a value we cannot use. The message names the setting and what is accepted."""


def _cpu_default() -> int:
    # Leave a core for the embedder and the rest of the desktop.
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    env: str | None
    kind: str  # int | float | bool | str | choice | path | embedder
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("lancedb_uri", "LANCEDB_URI", "str", None,
              "Folder (or URI) of the LanceDB index; default: <data folder>/index"),
    FieldSpec("documents_table", "LANCEDB_TABLE_NAME", "str", "processed_documents",
              "Name of the documents table"),
    FieldSpec("chunks_table", "LANCEDB_CHUNKS_TABLE_NAME", "str", "document_chunks",
              "Name of the chunks table"),
    FieldSpec("sync_interval", "SYNC_INTERVAL", "int", 300,
              "Seconds between reconciliation scans", 5, 7 * 86400),
    FieldSpec("default_poll_interval", "DEFAULT_POLL_INTERVAL", "int", 300,
              "Default per-source poll interval in seconds", 5, 7 * 86400),
    FieldSpec("health_check_interval", "HEALTH_CHECK_INTERVAL", "int", 60,
              "Seconds between health checks", 5, 86400),
    FieldSpec("max_concurrent_processing", "MAX_CONCURRENT_PROCESSING", "int", _cpu_default(),
              "Parser worker processes", 1, 64),
    FieldSpec("low_priority", "LANCEDB_SYNC_LOW_PRIORITY", "bool", True,
              "Index at low CPU and disk priority so the desktop stays responsive"),
    FieldSpec("pause_on_battery", "LANCEDB_SYNC_PAUSE_ON_BATTERY", "bool", False,
              "Hold syncing while the computer runs on battery"),
    FieldSpec("min_free_disk_mb", "LANCEDB_SYNC_MIN_FREE_DISK_MB", "int", 500,
              "Hold syncing when the index's disk has less free space than this, in MB",
              0, 1 << 20),
    FieldSpec("chunk_size_mb", "CHUNK_SIZE_MB", "int", 8,
              "Multipart chunk size for S3 transfers, in MB", 5, 5000),
    FieldSpec("max_retries", "MAX_RETRIES", "int", 3, "Retries for transient failures", 0, 100),
    FieldSpec("enable_source_monitoring", "ENABLE_SOURCE_MONITORING", "bool", True,
              "Watch sources for changes"),
    FieldSpec("sync_state_dir", "SYNC_STATE_DIR", "path", None,
              "Folder of the sync state database; default: <data folder>/state"),
    FieldSpec("checksum_enabled", "CHECKSUM_ENABLED", "bool", True,
              "Hash file contents (BLAKE3) to tell real edits from touches and to detect renames"),
    FieldSpec("s3_bucket", "S3_BUCKET", "str", None, "S3 bucket for backups"),
    FieldSpec("s3_prefix", "S3_PREFIX", "str", "lancedb-sync", "Key prefix for backups"),
    FieldSpec("aws_region", "AWS_REGION", "str", None, "AWS region of the backup bucket"),
    FieldSpec("s3_endpoint_url", "S3_ENDPOINT_URL", "str", None,
              "Endpoint URL of an S3-compatible store (MinIO, R2, …); default: AWS, or "
              "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set"),
    FieldSpec("s3_addressing_style", "S3_ADDRESSING_STYLE", "choice", "auto",
              "auto (path-style when an endpoint URL is set), path or virtual",
              choices=("auto", "path", "virtual")),
    FieldSpec("s3_sse", "S3_SSE", "choice", "none",
              "Server-side encryption of backup objects: none, aes256 or aws:kms",
              choices=("none", "aes256", "aws:kms")),
    FieldSpec("s3_sse_kms_key_id", "S3_SSE_KMS_KEY_ID", "str", None,
              "KMS key id or ARN for s3_sse = aws:kms (default: the bucket's AWS managed key)"),
    FieldSpec("s3_retry_mode", "S3_RETRY_MODE", "choice", "standard",
              "botocore retry mode for S3 calls", choices=("standard", "adaptive")),
    FieldSpec("backup_interval", "S3_BACKUP_INTERVAL", "int", 3600,
              "At most one automatic backup per this many seconds (after a sync that changed "
              "something)", 60, 30 * 86400),
    FieldSpec("backup_keep_last", "BACKUP_KEEP_LAST", "int", 7,
              "Retention: always keep this many newest snapshots", 1, 10000),
    FieldSpec("backup_keep_days", "BACKUP_KEEP_DAYS", "int", 30,
              "Retention: also keep every snapshot of the last this many days", 0, 36500),
    FieldSpec("backup_concurrency", "BACKUP_CONCURRENCY", "int", 4,
              "Files transferred at the same time by backup and restore", 1, 64),
    FieldSpec("backup_max_bandwidth_mb", "BACKUP_MAX_BANDWIDTH_MB", "float", 0.0,
              "Upload bandwidth limit of a backup in MB/s (0 = no limit)", 0, 100000),
    FieldSpec("backup_device_name", "BACKUP_DEVICE_NAME", "str", None,
              "Name of this device in the backup bucket; default: the host name"),
    FieldSpec("backup_auto", "BACKUP_AUTO", "bool", True,
              "The service backs up automatically when a bucket is configured"),
    FieldSpec("chunk_chars", "LANCEDB_SYNC_CHUNK_CHARS", "int", 1000,
              "Target chunk size in characters", 100, 20000),
    FieldSpec("chunk_overlap", "LANCEDB_SYNC_CHUNK_OVERLAP", "int", 100,
              "Characters of overlap between neighbouring chunks", 0, 5000),
    FieldSpec("max_file_mb", "LANCEDB_SYNC_MAX_FILE_MB", "float", 100.0,
              "Files larger than this are skipped, in MB", 0.001, 100000),
    FieldSpec("max_text_mb", "LANCEDB_SYNC_MAX_TEXT_MB", "float", 20.0,
              "Files whose text is longer than this many million characters are skipped "
              "(bounds the memory one document takes)", 0.01, 100000),
    FieldSpec("skip_generated", "LANCEDB_SYNC_SKIP_GENERATED", "bool", True,
              "Skip generated files (minified code, search indexes, lock files, vendored "
              "libraries such as jquery.js or node_modules/), listed with the reason"),
    FieldSpec("parse_timeout", "LANCEDB_SYNC_PARSE_TIMEOUT", "float", 60.0,
              "Seconds one file may take to parse before it is marked failed", 0.5, 3600),
    FieldSpec("parse_memory_mb", "LANCEDB_SYNC_PARSE_MEMORY_MB", "int", 1536,
              "Memory limit of a parser worker, in MB (0 = none)", 0, 1 << 20),
    FieldSpec("embedder", "LANCEDB_SYNC_EMBEDDER", "embedder", "wordllama",
              "Embedding model: wordllama, wordllama:DIM, ollama:MODEL, openai:MODEL"),
    FieldSpec("embed_url", "LANCEDB_SYNC_EMBED_URL", "str", None,
              "Base URL of an HTTP embedding endpoint (Ollama or OpenAI-compatible)"),
    FieldSpec("log_level", "LANCEDB_SYNC_LOG_LEVEL", "choice", "info", "Log level",
              choices=("debug", "info", "warning", "error")),
    FieldSpec("follow_symlinks", "LANCEDB_SYNC_FOLLOW_SYMLINKS", "bool", False,
              "Follow symbolic links in watched folders"),
    FieldSpec("include_hidden", "LANCEDB_SYNC_INCLUDE_HIDDEN", "bool", False,
              "Index hidden files and folders"),
    # -- the tray application (issue 4) --
    FieldSpec("notifications", "LANCEDB_SYNC_NOTIFICATIONS", "bool", True,
              "Desktop notifications for errors and a finished first sync (rate-limited)"),
    FieldSpec("allow_insecure_secrets", "LANCEDB_SYNC_ALLOW_INSECURE_SECRETS", "bool", False,
              "Store credentials even when the only keyring available keeps them unencrypted"),
    # -- the local REST API (issue 14) --
    FieldSpec("api_enabled", "LANCEDB_SYNC_API", "bool", True,
              "Serve the local REST API from the tray and 'lancedb-sync run'"),
    FieldSpec("api_host", "LANCEDB_SYNC_API_HOST", "str", "127.0.0.1",
              "Address the REST API listens on; anything but 127.0.0.1 or ::1 exposes it to "
              "the network (the token is still required)"),
    FieldSpec("api_port", "LANCEDB_SYNC_API_PORT", "int", 8765,
              "Port of the REST API (0: any free port); if taken, another free port is used "
              "and written to api.json", 0, 65535),
    FieldSpec("api_cors_origins", "LANCEDB_SYNC_API_CORS_ORIGINS", "str", None,
              "Comma-separated web origins allowed to call the REST API from a browser "
              "(default: none)"),
    FieldSpec("s3_access_key_id", "LANCEDB_SYNC_S3_ACCESS_KEY_ID", "str", None,
              "Access key id for backups (its secret is kept in the OS keyring); empty: the "
              "standard AWS credential chain"),
)

_SPEC = {f.name: f for f in FIELDS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _accepted(spec: FieldSpec) -> str:
    if spec.kind == "bool":
        return "true/false (also 1/0, yes/no, on/off)"
    if spec.kind == "choice":
        return ", ".join(spec.choices)
    if spec.kind == "embedder":
        return ("wordllama, wordllama:DIM (DIM 64, 128 or 256), ollama:MODEL or openai:MODEL "
                "(for example ollama:nomic-embed-text)")
    if spec.kind in ("int", "float"):
        noun = "a whole number" if spec.kind == "int" else "a number"
        lo = "" if spec.minimum is None else f"{spec.minimum:g}"
        hi = "" if spec.maximum is None else f"{spec.maximum:g}"
        return f"{noun} from {lo} to {hi}"
    return "a non-empty text"


def _coerce(spec: FieldSpec, raw: Any, origin: str) -> Any:
    def bad() -> ConfigError:
        return ConfigError(f"{origin} has an invalid value {raw!r}: expected {_accepted(spec)}.")

    if raw is None:
        return None
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad()
    if spec.kind in ("int", "float"):
        if isinstance(raw, bool):
            raise bad()
        try:
            value: float = int(str(raw).strip()) if spec.kind == "int" else float(raw)
        except (TypeError, ValueError):
            raise bad() from None
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise bad()
        return value
    if spec.kind == "choice":
        text = str(raw).strip().lower()
        if text not in spec.choices:
            raise bad()
        return text
    text = str(raw).strip()
    if not text:
        raise bad()
    if spec.kind == "embedder" and not is_embedder_spec(text):
        raise bad()
    return text


def check_setting(name: str, raw: Any) -> Any:
    """The value `raw` would be saved as, or ConfigError saying what is accepted (a form
    checks a value with this before writing anything)."""
    spec = _SPEC.get(name)
    if spec is None:
        raise ConfigError(f"Unknown setting {name!r}.")
    return _coerce(spec, raw, f"Setting {name}")


WORDLLAMA_DIMS = ("64", "128", "256")


def is_embedder_spec(text: str) -> bool:
    """Whether `text` names an embedding model the app can use: wordllama, wordllama:DIM,
    ollama:MODEL, openai:MODEL (checked by form only: whether an endpoint serves MODEL is
    known when it is first asked)."""
    name, colon, arg = text.partition(":")
    if name == "wordllama":
        return not colon or arg in WORDLLAMA_DIMS
    return name in ("ollama", "openai") and bool(arg.strip())


@dataclass(frozen=True)
class Settings:
    paths: AppPaths
    values: Mapping[str, Any]
    sources: tuple[SourceConfig, ...] = ()
    extractor_plugins: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        raise AttributeError(name)

    @property
    def index_uri(self) -> str:
        return self.values["lancedb_uri"] or str(self.paths.default_index_dir)

    @property
    def state_dir(self) -> Path:
        raw = self.values["sync_state_dir"]
        return Path(raw).expanduser() if raw else self.paths.default_state_dir

    @property
    def state_db_path(self) -> Path:
        return self.state_dir / STATE_DB_NAME

    @property
    def index_dir(self) -> Path | None:
        """The index's folder on this machine; None when the index is remote (s3://…)."""
        return local_index_folder(self.index_uri)

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.source_id == source_id), None)

    def with_sources(self, sources: tuple[SourceConfig, ...]) -> Settings:
        return replace(self, sources=sources)


def load_settings(
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then the config file, then env vars, then explicit overrides (tests, CLI flags)."""
    env = os.environ if env is None else env
    paths = resolve_paths(home or env.get("LANCEDB_SYNC_HOME"))
    file_data = _read_config_file(paths.config_file)
    values: dict[str, Any] = {}
    for spec in FIELDS:
        value = spec.default
        if spec.name in file_data:
            value = _coerce(spec, file_data[spec.name], f"{spec.name} in {paths.config_file}")
        if spec.env and env.get(spec.env, "") != "":
            value = _coerce(spec, env[spec.env], f"Environment variable {spec.env}")
        values[spec.name] = value
    for name, raw in (overrides or {}).items():
        values[name] = _coerce(_SPEC[name], raw, f"Setting {name}")
    if values["chunk_overlap"] >= values["chunk_chars"]:
        raise ConfigError(
            f"chunk_overlap ({values['chunk_overlap']}) must be smaller than chunk_chars "
            f"({values['chunk_chars']})."
        )
    unknown = set(file_data) - set(_SPEC) - {"sources", "extractors"}
    if unknown:
        raise ConfigError(
            f"{paths.config_file} has unknown settings: {', '.join(sorted(unknown))}. "
            f"Known settings: {', '.join(sorted(_SPEC))}."
        )
    sources = tuple(parse_source(s, paths.config_file) for s in file_data.get("sources", []))
    plugins = file_data.get("extractors", {})
    if not isinstance(plugins, dict) or not all(
        isinstance(v, str) and ":" in v for v in plugins.values()
    ):
        raise ConfigError(
            f"[extractors] in {paths.config_file} must map extensions to 'module:function'."
        )
    plugins = {(k if k.startswith(".") else "." + k).lower(): v for k, v in plugins.items()}
    return Settings(paths, values, sources, plugins)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}") from None


def parse_source(raw: Any, path: Path | str) -> SourceConfig:
    """One [[sources]] entry (a dict) as a SourceConfig; `path` names where it came from in
    the error message."""
    if not isinstance(raw, dict) or "source_id" not in raw or "source_type" not in raw:
        raise ConfigError(f"A [[sources]] entry in {path} needs source_id and source_type.")
    try:
        stype = SourceType(raw["source_type"])
    except ValueError:
        accepted = ", ".join(t.value for t in SourceType)
        raise ConfigError(
            f"Source {raw['source_id']!r} in {path} has unknown source_type "
            f"{raw['source_type']!r}: expected one of {accepted}."
        ) from None
    poll = raw.get("poll_interval")
    if poll is not None and (not isinstance(poll, int) or poll < 5):
        raise ConfigError(f"Source {raw['source_id']!r}: poll_interval must be ≥ 5 seconds.")
    return SourceConfig(
        source_type=stype,
        source_id=str(raw["source_id"]),
        config=dict(raw.get("config", {})),
        poll_interval=poll,
        enabled=bool(raw.get("enabled", True)),
    )


def save_sources(settings: Settings, sources: tuple[SourceConfig, ...]) -> Settings:
    """Rewrite the config file's [[sources]], keeping every other setting in it as written."""
    import tomli_w

    path = settings.paths.config_file
    data = _read_config_file(path)
    data["sources"] = [
        {
            "source_id": s.source_id,
            "source_type": s.source_type.value,
            "enabled": s.enabled,
            **({"poll_interval": s.poll_interval} if s.poll_interval else {}),
            "config": dict(s.config),
        }
        for s in sources
    ]
    _atomic_write(path, tomli_w.dumps(data).encode())
    return settings.with_sources(sources)


def save_values(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """Write settings to the config file (validated like any other value; None removes a key),
    keeping sources and every other setting as written. Returns the updated Settings."""
    import tomli_w

    path = settings.paths.config_file
    data = _read_config_file(path)
    new = dict(settings.values)
    for name, raw in values.items():
        spec = _SPEC.get(name)
        if spec is None:
            raise ConfigError(f"Unknown setting {name!r}.")
        value = _coerce(spec, raw, f"Setting {name}") if raw not in (None, "") else None
        if value is None:
            data.pop(name, None)
            new[name] = spec.default
        else:
            data[name] = value
            new[name] = value
    # Sources stay last: TOML puts tables after plain keys.
    sources = data.pop("sources", None)
    if sources is not None:
        data["sources"] = sources
    _atomic_write(path, tomli_w.dumps(data).encode())
    return replace(settings, values=new)


def _atomic_write(path: Path, payload: bytes) -> None:
    from app.fsutil import write_atomic

    write_atomic(path, payload)
