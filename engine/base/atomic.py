"""Atomic file writes: a temporary file in the same folder, fsynced, then os.replace'd.

A reader (or a crash) sees the old file or the new one, never half of one. Files get the usual
permissions (0666 less the umask), not mkstemp's private 0600, unless a mode is given (a file of
secrets: 0600). A failed write removes its temporary; running out of space raises DiskFullError
naming the folder.

Temporaries are named so that `remove_leftovers` can find those a killed process left behind:
files `.<name>.<random>.tmp`, folders `.tmp-<name>-<random>` (and `.old-<name>-<random>` while one
replaces another).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from engine.base.errors import DiskFullError, disk_full_named, is_disk_full


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[BinaryIO], None], mode: int | None = None) -> None:
    """Call write(f) on a binary temporary file, then put it at path (with permissions `mode`)."""
    path = Path(path)
    with disk_full_named(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_disk_full(exc, path.parent)  # before the cleanup frees the space again
        Path(tmp).unlink(missing_ok=True)
        if full and not isinstance(exc, DiskFullError):
            raise DiskFullError(path.parent) from exc
        raise


def atomic_write_bytes(path, data: bytes, mode: int | None = None) -> None:
    atomic_write(path, lambda f: f.write(data), mode)


def atomic_write_text(path, text: str, mode: int | None = None) -> None:
    # surrogateescape: a file name that is not UTF-8 is written back as the bytes it has on disk
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"), mode)


def atomic_copy(src, dst) -> None:
    def copy(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    atomic_write(dst, copy)


def atomic_write_arrays(folder, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """A folder of <name>.npy files (and meta.json), written under a temporary sibling and renamed
    into place, replacing the folder there: readers see the old folder or the new one, whole."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}")
    old = folder.with_name(f".old-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir(parents=True)
        for name, arr in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(arr))
                f.flush()
                os.fsync(f.fileno())
        if meta is not None:
            with open(tmp / "meta.json", "w") as f:
                f.write(json.dumps(meta))
                f.flush()
                os.fsync(f.fileno())
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException as exc:
        full = is_disk_full(exc, folder.parent)  # before the cleanup frees the space again
        if old.exists() and not folder.exists():
            os.replace(old, folder)  # put the previous version back
        shutil.rmtree(tmp, ignore_errors=True)
        if full and not isinstance(exc, DiskFullError):
            raise DiskFullError(folder.parent) from exc
        raise
    shutil.rmtree(old, ignore_errors=True)


# A temporary younger than this, in a folder several processes write (a team's annotators add
# reviewed graph chunks and query cache files while the indexer runs), may be one being written.
IN_FLIGHT_S = 3600.0


def remove_leftovers(folder, older_than_s: float = 0.0) -> int:
    """Remove the temporaries (see the module doc) that killed writers left directly in folder.
    Only for folders the engine owns, and only while no other writer can be at work in them, or
    with older_than_s (IN_FLIGHT_S) where others may be writing."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for e in entries:
        n = e.name
        if older_than_s and n.startswith(".") and _mtime(e) > now - older_than_s:
            continue
        if n.startswith((".tmp-", ".old-")) and e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        elif n.startswith(".") and n.endswith(".tmp") and e.is_file(follow_symlinks=False):
            Path(e.path).unlink(missing_ok=True)
        else:
            continue
        removed += 1
    return removed


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return time.time()
