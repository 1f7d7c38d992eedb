"""Search: the query outline on the query image, and running the search in a worker.

The query's RegionDocument (one per image, so going back to an image finds its outline and undo
history) is drawn with the tools. `run` starts a worker that first asks whether the region is a
remembered object (engine.annotate.objects.recall): when it is, the worker reports the recall and searches
for the object with all its views (engine.annotate.objects.search_object), else it searches plainly
(engine.pipeline.search); either way it stores the search (engine.annotate.review.save_search) before it
reports. `run_object` searches for a chosen object again. A newer search cancels the older one,
whose late signals are then ignored. The shortlist, or an object's reviewed images, arrive early
through `partial`.
"""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, Signal

import engine.annotate.objects as objects
import engine.annotate.review as review
import engine.pipeline as pipeline
from pixret_desktop.undo import RegionDocument
from pixret_desktop.workers import JobManager, Worker


def search_config(budget: float | None = None, guesses: bool = True) -> pipeline.SearchConfig:
    """The search settings: the Thorough method's time budget in seconds (None: the default), and
    whether the search guesses outlines for its first unverified hits (else they get one when opened)."""
    config = pipeline.SearchConfig()
    if budget is not None:
        config = replace(config, thorough=replace(config.thorough, budget_s=budget))
    if not guesses:
        config = replace(config, outline=replace(config.outline, guesses=0))
    return config


def run_search(project, query, method: str, top_k: int, config: pipeline.SearchConfig, *, recall: bool = True,
               progress, cancel, on_partial):
    """The worker's job: recall, search, save; returns (SearchResult, query id). A recall is passed
    to on_partial (an engine.annotate.objects.Recall) before the object's search starts."""
    progress(0, 0, "query features")
    ctx = pipeline.prepare(project, query, config)
    cancel.raise_if_set()
    known = objects.recall(project, query, ctx) if recall else None
    if known is None:
        result = pipeline.search(project, query, method=method, top_k=top_k, context=ctx, progress=progress,
                                 cancel=cancel, on_partial=on_partial)  # the context carries the config
    else:
        on_partial(known)
        result = objects.search_object(project, known.object.id, query=query, context=ctx, method=method,
                                       top_k=top_k, config=config, progress=progress, cancel=cancel,
                                       on_partial=on_partial)
    return _save(project, result, progress, cancel)


def run_object_search(project, object_id: int, method: str, top_k: int, config: pipeline.SearchConfig, *, progress,
                      cancel, on_partial):
    """The worker's job for "Search again": all the object's views at once, then save."""
    result = objects.search_object(project, object_id, method=method, top_k=top_k, config=config,
                                   progress=progress, cancel=cancel, on_partial=on_partial)
    return _save(project, result, progress, cancel)


def _save(project, result, progress, cancel):
    cancel.raise_if_set()
    progress(0, 0, "saving")
    # with its object, so later decisions join it (search_object has already added its reviewed
    # pairs to the graph)
    return result, review.save_search(project, result)


class SearchController(QObject):
    started = Signal(object)  # the Worker
    partial = Signal(object)  # SearchResult of the shortlist (no regions yet), or an object's reviewed hits
    recalled = Signal(object)  # engine.annotate.objects.Recall: the region is a remembered object, searched as such
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
        self._asked = None  # (query, method, top_k, config) of the running plain search
        self.recalled_search = None  # the same, once recall made it an object's search (for "Search as new")

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

    def run(self, image_id: int, method: str, top_k: int, config: pipeline.SearchConfig = pipeline.SearchConfig()
            ) -> Worker | None:
        doc = self.documents.get(image_id)
        if self.project is None or doc is None or doc.is_empty:
            self.failed.emit("Outline the object on the query image first.")
            return None
        return self.run_query(pipeline.Query(image=image_id, region=doc.region), method, top_k, config)

    def run_query(self, query, method: str, top_k: int, config: pipeline.SearchConfig = pipeline.SearchConfig(), *,
                  recall: bool = True) -> Worker | None:
        if self.project is None:
            return None
        return self._start(Worker(run_search, self.project, query, method, top_k, config, recall=recall, partial=True,
                                  name=f"Searching ({pipeline.method_title(method)})"),
                           asked=(query, method, top_k, config))

    def run_object(self, object_id: int, method: str, top_k: int,
                   config: pipeline.SearchConfig = pipeline.SearchConfig()) -> Worker | None:
        """Search again for a remembered object, with all its views."""
        if self.project is None:
            return None
        return self._start(Worker(run_object_search, self.project, object_id, method, top_k, config, partial=True,
                                  name=f"Searching again ({pipeline.method_title(method)})"))

    def search_as_new(self) -> Worker | None:
        """The recalled search's region again, searched plainly (its decisions will make a new object)."""
        if self.recalled_search is None:
            return None
        query, method, top_k, config = self.recalled_search
        return self.run_query(query, method, top_k, config, recall=False)

    def _start(self, w: Worker, asked=None) -> Worker:
        self.cancel()  # a newer search supersedes the older one
        self._asked, self.recalled_search = asked, None
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

    def _partial(self, w: Worker, value) -> None:
        if w is not self.worker:
            return
        if isinstance(value, objects.Recall):
            self.recalled_search = self._asked
            self.recalled.emit(value)
        else:
            self.partial.emit(value)

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
