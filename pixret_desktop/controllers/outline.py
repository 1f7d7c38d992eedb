"""The segment stage in the app: outlines drawn after the search, and the refine tool's requests.

A search outlines its top hits itself (engine.pipeline.outline_hits). A hit the reviewer opens that
has no outline of its own yet (further down, or unverified: then a guess, flagged so) gets
one here, in a worker (engine.pipeline.outline_one); it is stored with the search
(engine.annotate.review.set_hit_outline) and shown unless the reviewer has started editing.
The refine tool's clicks run engine.pipeline.refine_outline in a worker; its answer becomes one undo
step (ToolController.refined). Both need the search's query context: its features come from the
project's query cache and its colour model is learned once, so both are kept per search here and
a click never extracts features again.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

import engine.annotate.objects as objects
import engine.annotate.review as review
import engine.pipeline as pipeline
from engine.segment.outline import load_photo, needs_outline, outline_alone
from pixret_desktop import geometry as G
from pixret_desktop.workers import JobManager, Worker

KEEP_CONTEXTS = 4  # searches whose query context (features, colour model, last photos) stays in memory


class Contexts:
    """Query contexts by search (query id) and view (an object's search verifies against several),
    prepared in workers (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._contexts: dict[tuple, object] = {}

    def get(self, project, query_id: int, result, hit=None):
        """The context of `hit`'s evidence (engine.annotate.objects.hit_context), or the search's own."""
        view = (hit.evidence or {}).get(objects.VIEW_KEY) if hit is not None and result.object_id is not None else None
        key = (query_id, view)
        with self._lock:
            ctx = self._contexts.get(key)
        if ctx is None or ctx.project is not project:
            ctx = objects.hit_context(project, result, hit) if view is not None else \
                pipeline.prepare(project, result.query)
            with self._lock:
                self._contexts.pop(key, None)
                self._contexts[key] = ctx
                while len(self._contexts) > KEEP_CONTEXTS:
                    self._contexts.pop(next(iter(self._contexts)))
        return ctx

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()


def _outline_hit(contexts: Contexts, project, query_id: int, result, hit):
    method = pipeline.METHODS.get(result.method, pipeline.METHODS["sv"])  # a guess trusts its verifier
    return pipeline.outline_one(contexts.get(project, query_id, result, hit), hit, method.verifier)


def _refine(contexts: Contexts, project, query_id, result, image_id: int, path, current, inside, outside, box):
    if query_id is None:  # a query being drawn: the photo's own colours
        from engine.pipeline import SearchConfig

        cfg = SearchConfig().outline
        return outline_alone(load_photo(path, cfg.long_side), current, inside=inside, outside=outside, box=box,
                             config=cfg)
    return pipeline.refine_outline(contexts.get(project, query_id, result), image_id, current, inside=inside,
                                   outside=outside, box=box)


class OutlineController(QObject):
    outlined = Signal(int, object)  # query id, the Hit with its new outline (already being stored)
    failed = Signal(str)

    def __init__(self, jobs: JobManager, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.project = None
        self.contexts = Contexts()
        self._asked: set[tuple[int, int]] = set()  # (query id, image id) being outlined

    def set_project(self, project) -> None:
        self.project = project
        self.contexts.clear()
        self._asked.clear()

    def outline_hit(self, query_id: int, result, hit) -> Worker | None:
        """Outline an opened hit in a worker, unless the search did or it is under way."""
        if self.project is None or not needs_outline(hit, guess=True) or (query_id, hit.image_id) in self._asked:
            return None
        self._asked.add((query_id, hit.image_id))
        project = self.project
        w = Worker(_outline_hit, self.contexts, project, query_id, result, hit, engine_call=False,
                   name="Outlining a hit")
        return self.jobs.start(w, pool="io", on_finished=lambda h: self._outlined(project, query_id, hit, h),
                               on_failed=lambda e: self._failed(project, query_id, hit, e))

    def _outlined(self, project, query_id: int, before, hit) -> None:
        self._asked.discard((query_id, before.image_id))
        if project is not self.project:
            return
        if hit.evidence.get("outline") is not None:
            self.jobs.start(Worker(review.set_hit_outline, project, query_id, hit.image_id, hit.region, hit.evidence,
                                   engine_call=False, name="Saving an outline"), pool="writer",
                            on_failed=lambda e: self.failed.emit(f"The outline was not saved: {e}"))
        self.outlined.emit(query_id, hit)

    def _failed(self, project, query_id: int, hit, exc) -> None:
        self._asked.discard((query_id, hit.image_id))
        if project is self.project:
            self.failed.emit(f"Could not outline {hit.path}: {exc}")

    def refine(self, request, query_id: int | None, result, image_id: int, path, on_done) -> Worker | None:
        """Run the refine tool's request in a worker; on_done(request, geometry or None) on the GUI thread."""
        if self.project is None:
            on_done(request, None)
            return None
        current = G.region_of(request.geometry)
        w = Worker(_refine, self.contexts, self.project, query_id, result, image_id, path,
                   None if current.is_empty else current, request.inside, request.outside, request.box,
                   engine_call=False, name="Refining the outline")

        def done(out):
            if out.region is None:
                self.failed.emit("The refinement found no object there: click inside it, or drag a box around it")
                on_done(request, None)
            else:
                on_done(request, G.shape_of(out.region))

        def fail(exc):
            self.failed.emit(f"Could not refine the outline: {exc}")
            on_done(request, None)
        return self.jobs.start(w, pool="io", on_finished=done, on_failed=fail)
