"""Atomic file writes: a temporary file in the same folder, fsynced, then os.replace'd.

A reader (or a crash) sees the old file or the new one, never half of one. Files get the usual
permissions (0666 less the umask), not mkstemp's private 0600.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a binary temporary file, then put it at path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    # surrogateescape: a file name that is not UTF-8 is written back as the bytes it has on disk
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_copy(src, dst) -> None:
    def copy(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    atomic_write(dst, copy)
