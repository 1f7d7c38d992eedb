"""Errors the engine raises on bad input. Each names the file (and field or line) at fault."""
from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path


def shown(path) -> str:
    """A path as text fit for a message or a name: bytes of a file name that are not UTF-8 (held by
    Python as surrogate escapes) are written as \\xNN instead of breaking whatever prints them."""
    text = str(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decoding made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class PixretError(Exception):
    """Base class: a user-facing problem with a clear message (the CLI prints it and exits 2)."""


class ImageReadError(PixretError):
    """An image could not be read: missing, empty, truncated, corrupt, unsupported or too large."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class FormatError(PixretError):
    """A malformed input file (annotation, ground truth, region); names the file and the field/line."""

    def __init__(self, path, where: str, problem: str):
        self.path = str(path)
        self.where = where
        self.problem = problem
        super().__init__(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}")


class ProjectError(PixretError):
    """A project folder or catalog problem (missing, not a project, schema too new, ...)."""


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SQLITE_FULL, _SQLITE_IOERR = 13, 10


class DiskFullError(PixretError, OSError):
    """No space left in a folder the engine writes to. Whatever was saved before is kept; the
    half-written file or folder is removed. An OSError too, so `except OSError` still catches it."""

    def __init__(self, folder):
        self.folder = str(folder)
        OSError.__init__(self, errno.ENOSPC, f"disk full: no space left to write in {shown(folder)}; free some "
                         "space and run the command again (everything saved before is kept)", self.folder)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # raised on a cluster worker, it travels back to the coordinator pickled
        return DiskFullError, (self.folder,)


def is_disk_full(exc: BaseException, folder=None) -> bool:
    """ENOSPC/EDQUOT, or SQLite's 'database or disk is full' (also inside a SQLAlchemy error); an
    SQLite I/O error counts when the folder has (almost) no space left, as when its shared-memory
    file cannot grow."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return True
    orig = getattr(exc, "orig", exc)  # SQLAlchemy's DBAPIError wraps the driver's error
    code = getattr(orig, "sqlite_errorcode", None)
    if (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in str(orig):
        return True
    # Some writers lose the errno (numpy's tofile: "N requested and M written"), and SQLite says
    # "I/O error" when its shared-memory file cannot grow: then the free space decides.
    vague = (isinstance(exc, OSError) and exc.errno in (None, errno.EIO)) or (
        code is not None and code & 0xFF == _SQLITE_IOERR)
    if vague and folder is not None:
        try:
            return shutil.disk_usage(folder).free < 256 * 1024
        except OSError:
            return False
    return False


@contextmanager
def disk_full_named(folder):
    """Turn running out of space inside the block into a DiskFullError naming `folder`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc, folder):
            raise DiskFullError(Path(folder)) from exc
        raise


class CatalogBusy(ProjectError):
    """The catalog stayed locked by another writer (an import, another annotator) past every retry."""
