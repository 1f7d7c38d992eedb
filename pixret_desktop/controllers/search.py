"""Search: the query outline on the query image, and running engine.pipeline.search in a worker.

The query's RegionDocument (one per image, so going back to an image finds its outline and undo
history) is drawn with the tools. `run` starts a worker that searches and stores the search
(engine.review.save_search) before it reports; a newer search cancels the older one, whose late
signals are then ignored. The shortlist arrives early through `partial`.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

import engine.pipeline as pipeline
import engine.review as review
from pixret_desktop.undo import RegionDocument
from pixret_desktop.workers import JobManager, Worker


def run_search(project, query, method: str, top_k: int, *, progress, cancel, on_partial):
    """The worker's job: search, then save the result; returns (SearchResult, query id)."""
    result = pipeline.search(project, query, method=method, top_k=top_k, progress=progress, cancel=cancel,
                             on_partial=on_partial)
    cancel.raise_if_set()
    progress(0, 0, "saving")
    return result, review.save_search(project, result)


class SearchController(QObject):
    started = Signal(object)  # the Worker
    partial = Signal(object)  # SearchResult of the shortlist (no regions yet)
    finished = Signal(object, int)  # SearchResult, query id (already saved)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, jobs: JobManager, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.project = None
        self.documents: dict[int, RegionDocument] = {}  # image id -> the query outline drawn on it
        self.worker: Worker | None = None
        self.last_thread_ident: int | None = None

    def set_project(self, project) -> None:
        self.cancel()
        self.project = project
        for d in self.documents.values():
            d.deleteLater()
        self.documents.clear()

    def document(self, image_id: int, region=None) -> RegionDocument:
        doc = self.documents.get(image_id)
        if doc is None:
            doc = RegionDocument(image_id, region, kind="query", parent=self)
            self.documents[image_id] = doc
        return doc

    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self, image_id: int, method: str, top_k: int) -> Worker | None:
        doc = self.documents.get(image_id)
        if self.project is None or doc is None or doc.is_empty:
            self.failed.emit("Outline the object on the query image first.")
            return None
        self.cancel()  # a newer search supersedes the older one
        query = pipeline.Query(image=image_id, region=doc.region)
        w = Worker(run_search, self.project, query, method, top_k, partial=True,
                   name=f"Searching ({method})")
        self.worker = w
        self.jobs.start(w, pool="long", show=True,
                        on_partial=lambda r, w=w: self._partial(w, r),
                        on_finished=lambda r, w=w: self._finished(w, r),
                        on_failed=lambda e, w=w: self._failed(w, e),
                        on_cancelled=lambda w=w: self._cancelled(w))
        self.started.emit(w)
        return w

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None
            self.cancelled.emit()

    def _partial(self, w: Worker, result) -> None:
        if w is self.worker:
            self.partial.emit(result)

    def _finished(self, w: Worker, value) -> None:
        self.last_thread_ident = w.thread_ident
        if w is not self.worker:
            return
        self.worker = None
        result, query_id = value
        self.finished.emit(result, query_id)

    def _failed(self, w: Worker, exc) -> None:
        if w is not self.worker:
            return
        self.worker = None
        self.failed.emit(str(exc) or type(exc).__name__)

    def _cancelled(self, w: Worker) -> None:
        if w is self.worker:
            self.worker = None
            self.cancelled.emit()
