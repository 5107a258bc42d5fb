"""Every kind of source the app knows, in one table: how to build one, describe it, check it and
which folders to watch. The service hands this registry to the indexer, so the engine never
imports a source module itself (it sits below them); a new source type is one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.models import SourceConfig, SourceType
from app.sources.base import Source, SourceError


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """A health check of one source: ok, or what is wrong in words."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class SourceKind:
    source_type: SourceType
    label: str
    make: Callable[[SourceConfig, Any], Source]  # (config, settings) -> Source
    describe: Callable[[SourceConfig], str]
    check: Callable[[SourceConfig], SourceCheck]
    watch_roots: Callable[[SourceConfig], list[str]]


# -- local folders ----------------------------------------------------------------------------

def _local_roots(config: SourceConfig) -> list[str]:
    roots = config.config.get("watch_paths") or []
    if isinstance(roots, str):
        roots = [roots]
    return [str(Path(r).expanduser()) for r in roots]


def _make_local(config: SourceConfig, settings: Any) -> Source:
    from app.core.extract.triage import VENDOR_DIRS
    from app.sources.local import LocalFolderSource

    # Without file_patterns every file is listed: the pass reads what it can and records the
    # rest as unsupported or generated, with the reason, so nothing vanishes without a trace.
    skip_generated = getattr(settings, "skip_generated", True)
    return LocalFolderSource(config, default_patterns=("*",),
                             include_hidden=settings.include_hidden,
                             follow_symlinks=settings.follow_symlinks,
                             skip_dirs=VENDOR_DIRS if skip_generated else ())


def _check_local(config: SourceConfig) -> SourceCheck:
    roots = _local_roots(config)
    if not roots:
        return SourceCheck(False, "No folders configured.")
    missing = []
    for root in roots:
        try:
            with os.scandir(root) as it:
                next(it, None)
        except FileNotFoundError:
            missing.append(f"{root} is missing (a removed drive or a moved folder?)")
        except PermissionError:
            missing.append(f"{root} cannot be read (permissions)")
        except OSError as exc:
            missing.append(f"{root}: {exc.strerror or exc}")
    if missing:
        return SourceCheck(False, "; ".join(missing) + ". Nothing under it is removed from the "
                                                       "index meanwhile.")
    return SourceCheck(True, f"{len(roots)} folder{'s' * (len(roots) != 1)} reachable")


LOCAL = SourceKind(SourceType.LOCAL_FILESYSTEM, "Local folders", _make_local,
                   lambda c: ", ".join(_local_roots(c)), _check_local, _local_roots)

REGISTRY: dict[SourceType, SourceKind] = {LOCAL.source_type: LOCAL}


def kind_of(config: SourceConfig) -> SourceKind | None:
    return REGISTRY.get(config.source_type)


def make_source(config: SourceConfig, settings: Any) -> Source:
    """A source object for one configured source; SourceError for a type not built yet."""
    kind = kind_of(config)
    if kind is None:
        raise SourceError(f"Source type {config.source_type.value!r} is not supported yet.")
    return kind.make(config, settings)


def check_source(config: SourceConfig) -> SourceCheck:
    kind = kind_of(config)
    if kind is None:
        return SourceCheck(True, "checked when it syncs")
    return kind.check(config)


def watch_roots(config: SourceConfig) -> list[str]:
    kind = kind_of(config)
    return kind.watch_roots(config) if kind is not None else []


def describe(config: SourceConfig) -> str:
    kind = kind_of(config)
    return kind.describe(config) if kind is not None else config.source_type.value
