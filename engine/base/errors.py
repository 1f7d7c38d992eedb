"""Errors the engine raises on bad input. Each names the file (and field or line) at fault."""
from __future__ import annotations

import errno


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
