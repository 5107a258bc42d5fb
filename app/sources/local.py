"""Local folders: listing with include/exclude globs and .gitignore-style ignore files.

The walk uses `os.scandir` and one `stat` per candidate file, and nothing else: no file is opened
here. Hidden entries and symbolic links are skipped unless asked for; when links are followed, each
directory is entered once by (device, inode), so a link loop cannot make the walk run forever.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat as stat_mod
from collections.abc import Iterable, Sequence

from app.models import Listing, SourceConfig, SourceItem
from app.sources.base import SourceError

IGNORE_FILE = ".lancedbsyncignore"

# Editors' lock, swap and temp files: never documents, and they come and go during saves.
EDITOR_JUNK = ("~$*", ".~lock.*#", "*.swp", "*.swo", "*.swx", "*.tmp", "*~", ".#*", "*.crdownload",
               "*.part", ".DS_Store", "Thumbs.db", "desktop.ini")

_HIDDEN_ATTR = getattr(stat_mod, "FILE_ATTRIBUTE_HIDDEN", 0)


def _compile_names(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p.lower()) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def local_token(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_id(path: str) -> str:
    """A path as text that can be stored anywhere (UTF-8): itself, unless the file system gave
    it bytes that are not UTF-8 (Python keeps those as lone surrogates); those become `\\xNN`.
    Used as the document's id and title; the file is still opened by its real path."""
    if _encodable(path):
        return path
    out = []
    for ch in path:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _kind(mode: int) -> str:
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISFIFO(mode):
        return "fifo"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        return "device"
    return "other"


def _item(path: str, name: str, st: os.stat_result, safe: bool) -> SourceItem:
    if safe:
        return SourceItem(path, "", name, st.st_size, st.st_mtime_ns, local_token(st), path)
    return SourceItem(text_id(path), "", text_id(name), st.st_size, st.st_mtime_ns,
                      local_token(st), path)


class LocalFolderSource:
    def __init__(
        self,
        config: SourceConfig,
        *,
        default_patterns: Sequence[str],
        include_hidden: bool = False,
        follow_symlinks: bool = False,
        respect_gitignore: bool = True,
        skip_dirs: Iterable[str] = (),
    ) -> None:
        self.config = config
        cfg = config.config
        roots = cfg.get("watch_paths") or []
        if isinstance(roots, str):
            roots = [roots]
        if not roots:
            raise SourceError(f"Source {config.source_id!r} has no watch_paths.")
        self.roots = [os.path.abspath(os.path.expanduser(str(r))) for r in roots]
        self.patterns = list(cfg.get("file_patterns") or default_patterns)
        # "*": every file is listed, so files of types the app does not read are counted and
        # listed as unsupported instead of vanishing (the default for a folder).
        self._all = "*" in self.patterns
        # Folder names never walked (node_modules: other people's code, by the thousand).
        self.skip_dirs = frozenset(skip_dirs)
        self.excludes = list(cfg.get("exclude_patterns") or [])
        self.include_hidden = bool(cfg.get("include_hidden", include_hidden))
        self.follow_symlinks = bool(cfg.get("follow_symlinks", follow_symlinks))
        self.respect_gitignore = bool(cfg.get("respect_gitignore", respect_gitignore))
        name_patterns = [p for p in self.patterns if "/" not in p]
        # Plain "*.ext" patterns (the default) are a set lookup; anything else a regex.
        simple = [p for p in name_patterns if _is_plain_extension(p)]
        self._include_exts = frozenset(p[1:].lower() for p in simple)
        self._include_names = _compile_names([p for p in name_patterns if p not in simple])
        path_patterns = [p for p in self.patterns if "/" in p]
        self._include_paths = _gitignore(path_patterns) if path_patterns else None
        self._junk = _compile_names(EDITOR_JUNK)
        self._exclude = _gitignore(self.excludes) if self.excludes else None

    def describe(self) -> str:
        return ", ".join(self.roots)

    def refresh(self, item: SourceItem) -> SourceItem:
        """The item as it is on disk now (size, time, token); raises OSError if it cannot be
        looked at. Checked before and after a file is read, so the text stored belongs to the
        version whose hash and token are stored with it."""
        path = item.path or item.native_id
        st = os.stat(path) if self.follow_symlinks else os.lstat(path)
        return item._replace(size=st.st_size, mtime_ns=st.st_mtime_ns,
                             version_token=local_token(st), kind=_kind(st.st_mode))

    # -- matching -------------------------------------------------------------------------------

    def wants_name(self, name: str) -> bool:
        lower = name.lower()
        dot = lower.rfind(".")
        if not (self._all or (dot > 0 and lower[dot:] in self._include_exts)
                or (self._include_names is not None and self._include_names.match(lower))):
            return False
        return not (self._junk is not None and self._junk.match(lower))

    # -- listing --------------------------------------------------------------------------------

    def list(self) -> Listing:
        items: list[SourceItem] = []
        complete: list[str] = []
        problems: list[tuple[str, str]] = []
        for root in self.roots:
            try:
                st = os.stat(root)
            except FileNotFoundError:
                problems.append((root, "Folder not found (unmounted drive or moved?). Nothing "
                                       "under it was deleted from the index."))
                continue
            except OSError as exc:
                problems.append((root, f"Cannot open folder: {exc.strerror}. Nothing under it "
                                       "was deleted from the index."))
                continue
            if not stat_mod.S_ISDIR(st.st_mode):
                problems.append((root, "Not a folder."))
                continue
            if not os.access(root, os.R_OK | os.X_OK):
                problems.append((root, "Permission denied. Nothing under it was deleted from the "
                                       "index."))
                continue
            self._walk_root(root, items, problems)
            complete.append(root)
        return _listing(items, complete, problems)

    def list_paths(self, paths: Iterable[str]) -> Listing:
        """A listing of just these paths (watch hints): files are checked, folders walked.

        The paths given become the listing's complete roots, so a path that no longer exists
        deletes what the index holds under it, but only while the watched folder holding it
        is reachable: a vanished drive still deletes nothing. Paths outside every watched
        folder, hidden ones and excluded ones list nothing (a hidden or excluded path that the
        index still holds is thereby removed, as a full scan would).
        """
        items: list[SourceItem] = []
        complete: list[str] = []
        problems: list[tuple[str, str]] = []
        for raw in _outermost(os.path.abspath(p) for p in paths):
            root = next((r for r in self.roots
                         if raw == r or raw.startswith(r.rstrip(os.sep) + os.sep)), None)
            if root is None:
                continue
            if not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
                problems.append((root, "Folder not found or not readable (unmounted drive?). "
                                       "Nothing under it was deleted from the index."))
                continue
            if raw == root:
                self._walk_root(root, items, problems)
                complete.append(root)
                continue
            rel = os.path.relpath(raw, root).replace(os.sep, "/")
            parts = rel.split("/")
            complete.append(raw)
            if not self.include_hidden and any(p.startswith(".") for p in parts):
                continue
            if self.skip_dirs.intersection(parts[:-1]):
                continue
            ignores = self._ancestor_ignores(root, parts[:-1])
            try:
                st = os.stat(raw) if self.follow_symlinks else os.lstat(raw)
            except FileNotFoundError:
                continue  # gone: the index drops what it held at or under this path
            except OSError as exc:
                complete.pop()
                problems.append((raw, f"Cannot read: {exc.strerror}. Nothing under it was "
                                      "deleted from the index."))
                continue
            if stat_mod.S_ISLNK(st.st_mode):
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                if self._excluded(rel + "/", ignores):
                    continue
                self._walk_root(root, items, problems, start=(raw, rel + "/", ignores))
            elif stat_mod.S_ISREG(st.st_mode):
                name = parts[-1]
                if not self.wants_name(name) or self._excluded(rel, ignores):
                    continue
                if self._include_paths is not None and not self._include_paths.match_file(rel):
                    continue
                items.append(_item(raw, name, st, _encodable(raw)))
            elif stat_mod.S_ISFIFO(st.st_mode) or stat_mod.S_ISSOCK(st.st_mode) or \
                    stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode):
                name = parts[-1]
                if self.wants_name(name) and not self._excluded(rel, ignores):
                    items.append(_item(raw, name, st, _encodable(raw))._replace(
                        kind=_kind(st.st_mode)))
        return _listing(items, complete, problems)

    def _ancestor_ignores(self, root: str, dirs: list[str]) -> tuple:
        """Ignore files in force for an entry of root/dirs…: those of root and each folder on
        the way down, as the full walk would have collected them."""
        ignores: tuple = ()
        names = (IGNORE_FILE, ".gitignore") if self.respect_gitignore else (IGNORE_FILE,)
        directory, rel_dir = root, ""
        for step in [None, *dirs]:
            if step is not None:
                directory = os.path.join(directory, step)
                rel_dir = f"{rel_dir}{step}/"
            for name in names:
                spec = _read_ignore_file(os.path.join(directory, name))
                if spec is not None:
                    ignores = (*ignores, (rel_dir, spec))
        return ignores

    def _walk_root(
        self, root: str, items: list[SourceItem], problems: list[tuple[str, str]],
        start: tuple[str, str, tuple] | None = None,
    ) -> None:
        seen_dirs: set[tuple[int, int]] = set()
        follow = self.follow_symlinks
        skip_hidden = not self.include_hidden
        check_hidden_attr = skip_hidden and bool(_HIDDEN_ATTR)
        exts, names_re, junk = self._include_exts, self._include_names, self._junk
        all_files, skip_dirs = self._all, self.skip_dirs
        include_paths = self._include_paths
        append = items.append
        S_ISREG = stat_mod.S_ISREG
        # Stack of (directory, relative path prefix, ignore specs in force as (base_rel, spec)).
        stack: list[tuple[str, str, tuple]] = [start or (root, "", ())]
        while stack:
            directory, rel_dir, ignores = stack.pop()
            if self.follow_symlinks:
                try:
                    dst = os.stat(directory)
                except OSError:
                    continue
                key = (dst.st_dev, dst.st_ino)
                if key in seen_dirs:
                    continue
                seen_dirs.add(key)
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except FileNotFoundError:
                continue  # vanished during the walk: the next pass sees it gone
            except OSError as exc:
                problems.append((directory, f"Cannot read folder: {exc.strerror}. Nothing under "
                                            "it was deleted from the index."))
                continue
            names = {e.name for e in entries}
            local_ignores = ignores
            dir_safe = _encodable(directory)
            unreadable: list[str] = []
            for ignore_name in (IGNORE_FILE, ".gitignore") if self.respect_gitignore else (
                    IGNORE_FILE,):
                if ignore_name in names:
                    spec = _read_ignore_file(os.path.join(directory, ignore_name))
                    if spec is not None:
                        local_ignores = (*local_ignores, (rel_dir, spec))
            # The per-file loop is the whole cost of a no-change scan: keep it to C calls.
            filtering = self._exclude is not None or bool(local_ignores)
            for entry in entries:
                name = entry.name
                if skip_hidden and name[0] == ".":
                    continue
                try:
                    if entry.is_symlink() and not follow:
                        continue
                    is_dir = entry.is_dir(follow_symlinks=follow)
                except FileNotFoundError:
                    continue  # vanished during the walk
                except OSError as exc:
                    unreadable.append(exc.strerror or str(exc))
                    continue
                if is_dir:
                    if name in skip_dirs:
                        continue
                    rel = f"{rel_dir}{name}/"
                    if filtering and self._excluded(rel, local_ignores):
                        continue
                    stack.append((entry.path, rel, local_ignores))
                    continue
                lower = name.lower()
                dot = lower.rfind(".")
                if not (all_files or (dot > 0 and lower[dot:] in exts)
                        or (names_re is not None and names_re.match(lower))):
                    continue
                if junk is not None and junk.match(lower):
                    continue
                if include_paths is not None or filtering:
                    rel = f"{rel_dir}{name}"
                    if include_paths is not None and not include_paths.match_file(rel):
                        continue
                    if filtering and self._excluded(rel, local_ignores):
                        continue
                try:
                    st = entry.stat(follow_symlinks=follow)
                except FileNotFoundError:
                    continue  # vanished between scandir and stat
                except OSError as exc:
                    # Not "gone": a folder without the x bit, an I/O error on a network drive.
                    # Its path is reported, so the index keeps what it holds there.
                    unreadable.append(exc.strerror or str(exc))
                    continue
                if check_hidden_attr and getattr(st, "st_file_attributes", 0) & _HIDDEN_ATTR:
                    continue
                path = entry.path
                if not S_ISREG(st.st_mode):
                    # A pipe, socket or device named like a document: listed so it is recorded
                    # as skipped with the reason, and never opened (a FIFO would block).
                    append(_item(path, name, st, dir_safe and _encodable(name))._replace(
                        kind=_kind(st.st_mode)))
                    continue
                if dir_safe and name.isascii():
                    append(SourceItem(path, "", name, st.st_size, st.st_mtime_ns,
                                      local_token(st), path))
                else:
                    append(_item(path, name, st, dir_safe and _encodable(name)))
            if unreadable:
                problems.append((directory, f"Cannot read {len(unreadable)} entries in this "
                                            f"folder ({unreadable[0]}). Nothing under it was "
                                            "deleted from the index."))

    def _excluded(self, rel: str, ignores: tuple) -> bool:
        if self._exclude is not None and self._exclude.match_file(rel):
            return True
        for base, spec in ignores:
            sub = rel[len(base):] if base and rel.startswith(base) else rel
            if spec.match_file(sub):
                return True
        return False



def _listing(items: list[SourceItem], complete: list[str],
             problems: list[tuple[str, str]]) -> Listing:
    # Roots and problem paths are compared with document ids, so they take the same text form.
    return Listing(tuple(items), tuple(text_id(p) for p in complete),
                   tuple((text_id(p), why) for p, why in problems))


def _is_plain_extension(pattern: str) -> bool:
    return pattern.startswith("*.") and not any(c in pattern[2:] for c in "*?[]/")


def _gitignore(lines: Sequence[str]):
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _read_ignore_file(path: str):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    return _gitignore(lines)


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths without those inside another one of them: a burst of hints names a new folder
    and the files in it, and the folder's walk already lists the files."""
    given = set(paths)
    kept = []
    for path in sorted(given):
        parent = os.path.dirname(path)
        while parent and parent not in given:
            up = os.path.dirname(parent)
            parent = "" if up == parent else up
        if not parent:
            kept.append(path)
    return kept
