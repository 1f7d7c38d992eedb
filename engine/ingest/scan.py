"""Walk a collection folder and diff it against what the catalog knows: new, changed, removed, unchanged.

Paths are relative to the collection root with '/' separators (the catalog's `images.path`), so a
project moves between machines and systems unchanged. A file whose size and mtime match the
catalog is unchanged without reading it; otherwise its SHA-256 decides, so copying a folder (new
mtimes, same bytes) does not re-extract anything.

Rules of the walk: image suffixes only (engine.ingest.imageio.SUPPORTED_SUFFIXES, any case); names
starting with '.' (hidden files and folders: .git, .thumbnails, macOS ._ files) are skipped;
symlinked files are followed, symlinked folders are not (a link loop or a second path to the
same photos would otherwise list them twice). Nothing here raises for one bad file: unreadable
files are still listed, with sha256 None, for the extraction step to report.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.errors import ImageReadError, ProjectError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.ingest.imageio import SUPPORTED_SUFFIXES, file_sha256

__all__ = ["FileEntry", "ScanResult", "scan_folder"]

# mtimes go through the catalog as floats; allow for a rounding on the way, not for a real edit.
_MTIME_TOLERANCE_S = 1e-6
# Report progress at most this often: a million calls would flood a GUI's signal queue.
_PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class FileEntry:
    """A file as found on disk. sha256 is None when the file could not be read."""

    path: str  # relative to the collection root, '/' separators
    size: int
    mtime: float
    sha256: str | None


@dataclass(frozen=True)
class ScanResult:
    """The folder against the catalog; every list is sorted by path.

    new:       on disk, not in the catalog.
    changed:   in both, with other bytes (or bytes that could not be read to compare).
    removed:   in the catalog, no longer on disk.
    unchanged: in both with the same bytes; includes the paths of `touched`.
    touched:   same bytes but a new size/mtime (copied, re-saved metadata-only by a tool):
               the catalog should store the new size and mtime, nothing to re-extract.
    unreadable_dirs: folders that could not be listed; catalog files under them appear in no
               list (neither removed nor unchanged), so a permission glitch deletes nothing.
    """

    new: list[FileEntry]
    changed: list[FileEntry]
    removed: list[str]
    unchanged: list[str]
    touched: list[FileEntry] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        """True when the catalog needs any update (touched files included)."""
        return bool(self.new or self.changed or self.removed or self.touched)

    def summary(self) -> str:
        """One line for a status bar or the CLI, e.g. '3 new, 1 changed, 0 removed, 120 unchanged'."""
        text = (
            f"{len(self.new)} new, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged"
        )
        if self.touched:
            text += f" ({len(self.touched)} with new dates, same content)"
        if self.unreadable_dirs:
            n = len(self.unreadable_dirs)
            text += f"; {n} folder{'s' if n != 1 else ''} could not be read"
        return text


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _under(path: str, folders: list[str]) -> bool:
    return any(path.startswith(folder + "/") for folder in folders)


def _list_files(
    root: Path, cancel: CancelToken, unreadable_dirs: list[str]
) -> list[tuple[str, os.stat_result | None]]:
    """(relative path, stat or None when stat failed) of every image file under root, sorted."""
    found: list[tuple[str, os.stat_result | None]] = []
    pending = [(root, "")]  # explicit stack: deep trees must not hit the recursion limit
    while pending:
        cancel.raise_if_set()
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            unreadable_dirs.append(prefix)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = _join(prefix, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), rel))
                    continue
            except OSError:
                continue
            if os.path.splitext(entry.name)[1].lower() not in SUPPORTED_SUFFIXES:
                continue
            try:
                st = entry.stat()  # follows a symlinked file to its target
            except FileNotFoundError:
                continue  # a dangling link is no file (a catalogued one reads as removed)
            except OSError:
                found.append((rel, None))  # exists but cannot be inspected: let extraction report it
                continue
            if stat.S_ISREG(st.st_mode):  # a link to a folder, a FIFO or a device is no image
                found.append((rel, st))
    found.sort(key=lambda item: item[0])
    return found


def _hash_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except ImageReadError:
        return None


def scan_folder(
    root: str | os.PathLike,
    known: dict[str, tuple[int, float, str | None]],
    *,
    progress: Progress = NO_PROGRESS,
    cancel: CancelToken = NEVER,
) -> ScanResult:
    """Diff the image files under `root` against `known` (path -> (size, mtime, sha256) from the catalog).

    New files and files whose size or mtime changed are hashed (stage "scan" of progress counts
    every file found). Raises ProjectError when root is not a readable folder, rather than
    reporting every catalogued image as removed (an unplugged drive must not empty a project),
    and Cancelled when cancel is set.
    """
    root = Path(root)
    if not root.is_dir():
        raise ProjectError(f"collection folder {root} does not exist or is not a folder")
    unreadable_dirs: list[str] = []
    files = _list_files(root, cancel, unreadable_dirs)
    if "" in unreadable_dirs:
        raise ProjectError(f"collection folder {root} cannot be read (permission denied?)")

    new: list[FileEntry] = []
    changed: list[FileEntry] = []
    unchanged: list[str] = []
    touched: list[FileEntry] = []
    seen: set[str] = set()
    total = len(files)
    progress(0, total, "scan")
    last_report = time.monotonic()
    for done, (rel, st) in enumerate(files, 1):
        cancel.raise_if_set()
        seen.add(rel)
        size, mtime = (st.st_size, st.st_mtime) if st is not None else (0, 0.0)
        before = known.get(rel)
        if before is None:
            sha = _hash_or_none(root / rel) if st is not None else None
            new.append(FileEntry(rel, size, mtime, sha))
        elif st is not None and size == before[0] and abs(mtime - before[1]) <= _MTIME_TOLERANCE_S:
            unchanged.append(rel)
        else:
            sha = _hash_or_none(root / rel) if st is not None else None
            entry = FileEntry(rel, size, mtime, sha)
            if sha is not None and sha == before[2]:
                unchanged.append(rel)
                touched.append(entry)
            else:
                changed.append(entry)
        now = time.monotonic()
        if done == total or now - last_report >= _PROGRESS_INTERVAL_S:
            progress(done, total, "scan")
            last_report = now

    unreadable_dirs.sort()
    removed = sorted(p for p in known if p not in seen and not _under(p, unreadable_dirs))
    return ScanResult(
        new=new,
        changed=changed,
        removed=removed,
        unchanged=unchanged,
        touched=touched,
        unreadable_dirs=unreadable_dirs,
    )
