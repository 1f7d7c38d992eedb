"""One protocol for long work: a progress callback and a cancel token, shared by CLI and GUI."""
from __future__ import annotations

import threading
from typing import Protocol


class Cancelled(Exception):
    """Raised inside long work when its cancel token is set; nothing half-written is left behind."""


class Progress(Protocol):
    def __call__(self, done: int, total: int, stage: str) -> None: ...


def _no_progress(done: int, total: int, stage: str) -> None:
    return None


NO_PROGRESS: Progress = _no_progress


class CancelToken:
    """Thread-safe flag: the GUI (or Ctrl+C) sets it, the worker polls it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class _Never(CancelToken):
    def cancel(self) -> None:  # the shared default token must never be set
        raise RuntimeError("NEVER cannot be cancelled; pass your own CancelToken")


NEVER: CancelToken = _Never()
