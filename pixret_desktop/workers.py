"""One generic worker: runs an engine call on a thread pool and bridges its progress, partial
results and cancel token to Qt signals.

The engine's long calls take ``progress(done, total, stage)`` and ``cancel: CancelToken``
(engine.base.progress); a `Worker` passes its own, emits `progress` (throttled, so a fast loop cannot
flood the GUI's event queue), `partial_result`, and exactly one of `finished`, `failed` or
`cancelled`. Signals are emitted from the pool thread and delivered queued on the GUI thread,
because the signal object is created (lives) there. Workers never touch widgets.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.base.progress import Cancelled, CancelToken

PROGRESS_INTERVAL_S = 0.03  # at most ~33 progress signals a second per worker


class WorkerSignals(QObject):
    progress = Signal(int, int, str)  # done, total, stage
    partial_result = Signal(object)
    finished = Signal(object)  # the call's return value
    failed = Signal(object)  # the exception (its traceback text in .__pixret_traceback__)
    cancelled = Signal()


class Worker(QRunnable):
    """``Worker(fn, *args, **kwargs)`` calls ``fn(*args, progress=..., cancel=..., **kwargs)``.

    ``engine_call=False`` for plain functions that take neither progress nor cancel;
    ``partial=True`` also passes ``on_partial=`` (engine.pipeline.search's shortlist callback).
    """

    def __init__(self, fn: Callable[..., Any], *args, name: str = "", engine_call: bool = True,
                 partial: bool = False, **kwargs):
        super().__init__()
        self.setAutoDelete(False)  # Python owns it: the JobManager keeps it until it ends
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.engine_call, self.partial = engine_call, partial
        self.token = CancelToken()
        self.signals = WorkerSignals()
        self.thread_ident: int | None = None  # the thread it ran on (tests check it is not the GUI's)
        self.done = threading.Event()
        self.result = self.error = None  # set before `done`: read them after waiting for the pool
        self._last_progress = 0.0
        self._last_stage = ""

    # -- the GUI side ------------------------------------------------------------------------

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        return self.token.is_set

    # -- the pool side -----------------------------------------------------------------------

    def _progress(self, done: int, total: int, stage: str) -> None:
        now = time.monotonic()
        if (now - self._last_progress >= PROGRESS_INTERVAL_S or stage != self._last_stage
                or (total and done >= total)):
            self._last_progress, self._last_stage = now, stage
            self.signals.progress.emit(int(done), int(total), str(stage))

    def _partial(self, value) -> None:
        if not self.token.is_set:
            self.signals.partial_result.emit(value)

    def run(self) -> None:  # noqa: D401 (Qt's name)
        self.thread_ident = threading.get_ident()
        kwargs = dict(self.kwargs)
        if self.engine_call:
            kwargs.update(progress=self._progress, cancel=self.token)
        if self.partial:
            kwargs["on_partial"] = self._partial
        try:
            result = self.fn(*self.args, **kwargs)
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as e:  # noqa: BLE001 - every failure must reach the GUI
            self.error = e
            if self.token.is_set:
                self.signals.cancelled.emit()
            else:
                e.__pixret_traceback__ = traceback.format_exc()
                self.signals.failed.emit(e)
        else:
            self.result = result
            if self.token.is_set:
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(result)
        finally:
            self.done.set()


class JobManager(QObject):
    """Starts workers on its pools and keeps them alive until they end.

    ``long`` runs engine jobs (index, search, export: a few at a time), ``io`` runs short reads
    (image lists, loading an image for the canvas), ``writer`` runs catalog writes one at a time in
    the order they were asked for (review decisions must land in order).
    """

    job_started = Signal(object)  # Worker (only those started with show=True)
    job_ended = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.long = QThreadPool(self)
        self.long.setMaxThreadCount(2)
        self.io = QThreadPool(self)
        self.io.setMaxThreadCount(2)
        self.writer = QThreadPool(self)
        self.writer.setMaxThreadCount(1)
        self._running: set[Worker] = set()

    def start(self, worker: Worker, *, pool: str = "long", show: bool = False, on_finished=None,
              on_failed=None, on_cancelled=None, on_progress=None, on_partial=None) -> Worker:
        s = worker.signals
        if on_progress:
            s.progress.connect(on_progress)
        if on_partial:
            s.partial_result.connect(on_partial)
        if on_finished:
            s.finished.connect(on_finished)
        if on_failed:
            s.failed.connect(on_failed)
        if on_cancelled:
            s.cancelled.connect(on_cancelled)
        for sig in (s.finished, s.failed, s.cancelled):
            sig.connect(lambda *_, w=worker: self._ended(w))
        worker.show = show
        self._running.add(worker)
        if show:
            self.job_started.emit(worker)
        getattr(self, pool).start(worker)
        return worker

    def _ended(self, worker: Worker) -> None:
        if worker in self._running:
            self._running.discard(worker)
            if worker.show:
                self.job_ended.emit(worker)

    @property
    def running(self) -> list[Worker]:
        return list(self._running)

    def cancel_all(self) -> None:
        for w in list(self._running):
            w.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until every pool is idle (closing a project): cancel first if it should be quick."""
        ok = True
        for pool in (self.long, self.io, self.writer):
            ok = pool.waitForDone(timeout_ms) and ok
        return ok
