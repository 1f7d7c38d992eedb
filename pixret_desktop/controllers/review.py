"""Review: step through a search's hits, accept / reject / correct each, every decision saved at once.

Each hit opened on the canvas gets a RegionDocument that starts from its current region (the
correction if there is one, the prediction otherwise). Accept stores 'accepted' when the outline
is the predicted one and 'corrected' (with the new outline) when it was edited. A decision is an
undoable step of that hit's document (undo appends an 'unreviewed' or earlier-state row: the
catalog keeps the history). Writes run one at a time, in order, on the JobManager's writer pool;
the hit's badge changes when the row is committed.

Drafts: whenever a hit's outline differs from its current decision's (an edit not accepted yet),
it is saved as the hit's draft, after each edit, undo or redo, on the same writer pool; a decision
drops it (engine.annotate.review). Reopening the hit starts from its draft, one undo step away
from the saved outline. Rejecting puts the outline back to the prediction in the same undo step:
a rejected hit has no outline to keep. Searches are loaded on the writer pool too, so a load
sees every decision and draft asked for before it.

Team projects: each decision says which one the person saw (`seen`, the catalog id per hit); when
someone else decided the hit meanwhile, the write is refused (DecisionConflict) and `conflict` asks
the person to keep theirs or use their own. A DecisionWatcher (its own thread) reports decisions
made elsewhere; the open search's decisions are then read again (io pool) and shown.
"""
from __future__ import annotations


from PySide6.QtCore import QObject, Signal

import engine.annotate.review as review
from engine.annotate.live import DecisionWatcher
from engine.annotate.review import NOT_DECIDED, Decision, DecisionConflict
from engine.base.types import DECIDED
from engine.catalog.tables import utcnow
from pixret_desktop import status as S
from pixret_desktop.geometry import same_shape, shape_of
from pixret_desktop.undo import DecisionCommand, RegionDocument
from pixret_desktop.workers import JobManager, Worker


def remembered_decisions(result) -> dict[int, Decision]:
    """An object's search shows its reviewed and rejected images (stages 'reviewed', 'rejected') with
    the decision they carry (evidence 'decision'), until the person decides again in this search."""
    out = {}
    for h in result.hits if result is not None else ():
        kind = (h.evidence or {}).get("decision")
        if h.stage in ("reviewed", "rejected") and kind in DECIDED:
            out[h.image_id] = Decision(h.image_id, kind, h.region if kind != "rejected" else None, "easy", "", None)
    return out


def _load(project, query_id: int, author: str):
    drafts = {d.image_id: d.region for d in review.drafts(project, query_id, author)}  # this person's
    return review.load_search(project, query_id), review.decisions(project, query_id), drafts


def _then_count(write, project, author: str, *args) -> tuple[object, int]:
    """A catalog write, then the number of the author's drafts (what the status bar says after it)."""
    result = write(project, *args)
    return result, review.draft_count(project, author)


def draft_text(n: int) -> str:
    return f"{n} unaccepted correction{'s' * (n != 1)}"


def _save(project, query_id: int, image_id: int, kind: str, region, difficulty: str, author: str,
          seen: dict[int, int]) -> Decision:
    """One decision, stating the one the person saw; run on the writer pool, one at a time, so the
    next decision on the hit states this one."""
    d = review.set_decision(project, query_id, image_id, kind, region, difficulty, author,
                            expected=seen.get(image_id, NOT_DECIDED))
    seen[image_id] = d.id if kind in DECIDED else NOT_DECIDED
    return d


class ReviewController(QObject):
    result_shown = Signal(object)  # query id (None for a shortlist still being verified)
    current_changed = Signal(object)  # the Hit on the canvas, or None
    decision_saved = Signal(int, str)  # image id, kind: committed to the catalog
    decision_changed = Signal(int, str)  # image id, kind: shown (saving may still be under way)
    queries_loaded = Signal(object)  # [QueryInfo]
    saving_changed = Signal()  # writes pending or the number of drafts changed (saving_text)
    conflict = Signal(object, object)  # DecisionConflict, the state the person wanted (for "use mine")
    remote_changed = Signal(object)  # {image id: Decision or None}: decided elsewhere, now shown
    error = Signal(str, str)
    message = Signal(str)
    _watched = Signal(object)  # from the watcher's thread: searches with new decisions (None: any)

    LIVE_INTERVAL_S = 1.0

    def __init__(self, jobs: JobManager, canvas_ctl, model, view, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.canvas_ctl = canvas_ctl
        self.model = model
        self.view = view
        self.project = None
        self.documents: dict[int, RegionDocument] = {}
        self.current = None  # Hit
        self.author = ""
        self.unsaved = 0  # decisions and drafts not yet committed
        self.n_drafts = 0  # drafts in the whole project, as of the last committed write
        self.pending: dict[int, int] = {}  # image id -> its decisions not yet committed
        self.seen: dict[int, int] = {}  # image id -> the catalog id of the decision shown (this search)
        self.watcher: DecisionWatcher | None = None
        self._watched.connect(self._decided_elsewhere)
        self.advance = True  # accept and reject open the next unreviewed hit
        # after such a move: (the hit decided, the new hit's undo index on arrival), so Ctrl+Z on the
        # new hit, before anything is done there, goes back and takes the decision back
        self.advanced_from: tuple[int, int] | None = None
        self._advancing = False
        view.selectionModel().currentChanged.connect(self._current_row_changed)

    # -- project and searches ------------------------------------------------------------------------

    def set_project(self, project) -> None:
        if self.watcher is not None:
            self.watcher.stop(timeout=0)  # its thread ends on its own within a second; the GUI does not wait
            self.watcher = None
        self.project = project
        self.n_drafts = 0
        self.clear()
        if project is not None:
            self.jobs.start(Worker(review.draft_count, project, self.author, engine_call=False, name="Counting drafts"),
                            pool="writer", on_finished=lambda n: project is self.project and self._set_drafts(n))
            self.watcher = DecisionWatcher(project.catalog, self._watched.emit, interval=self.LIVE_INTERVAL_S).start()
        self.saving_changed.emit()

    def clear(self) -> None:
        self._drop_documents()
        self.current = None
        self.model.clear()
        self.current_changed.emit(None)

    def _drop_documents(self) -> None:
        if self.canvas_ctl.document in self.documents.values():
            self.canvas_ctl.document = None  # it is about to go: the canvas lets go first
            self.canvas_ctl.tools.set_document(None)
        for d in self.documents.values():
            self.canvas_ctl.forget(d)
            d.deleteLater()
        self.documents.clear()

    @property
    def query_id(self):
        return self.model.query_id

    def show_partial(self, result) -> None:
        self._drop_documents()
        self.current = None
        self.model.set_result(result, None, remembered_decisions(result), partial=True)
        self.current_changed.emit(None)
        self.result_shown.emit(None)

    def show_result(self, result, query_id: int, decisions: dict | None = None, drafts: dict | None = None) -> None:
        keep = self.current.image_id if self.current is not None and self.model.query_id == query_id else None
        self._drop_documents()
        self.current = None
        self.seen = {i: d.id for i, d in (decisions or {}).items() if d.id is not None}
        self.model.set_result(result, query_id, {**remembered_decisions(result), **(decisions or {})}, drafts=drafts)
        self.current_changed.emit(None)
        self.result_shown.emit(query_id)
        if keep is not None and self.model.row_of(keep) is not None:
            self.select_row(self.model.row_of(keep))

    def load_query(self, query_id: int) -> Worker | None:
        if self.project is None:
            return None
        project = self.project
        return self.jobs.start(Worker(_load, project, query_id, self.author, engine_call=False, name="Loading a search"),
                               pool="writer",  # after the writes asked for before it
                               on_finished=lambda r: project is self.project and self.show_result(r[0], query_id, *r[1:]),
                               on_failed=lambda e: self.error.emit("Could not load the search", str(e)))

    def load_history(self) -> Worker | None:
        if self.project is None:
            return None
        project = self.project
        return self.jobs.start(Worker(review.list_queries, project, engine_call=False, name="Listing searches"),
                               pool="io", on_finished=lambda q: project is self.project and self.queries_loaded.emit(q),
                               on_failed=lambda e: self.error.emit("Could not list the searches", str(e)))

    # -- moving through the hits -----------------------------------------------------------------------

    def _current_row_changed(self, index, _previous) -> None:
        if index.isValid():
            self.open_row(index.row())

    def select_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            idx = self.model.index(row)
            self.view.setCurrentIndex(idx)
            self.view.scrollTo(idx)
            if self.current is None or self.model.hit_at(row).image_id != self.current.image_id:
                self.open_row(row)

    def next(self) -> None:
        self._step(+1)

    def next_unreviewed(self) -> bool:
        """Open the next unreviewed hit after the current one (wrapping to the top); False when none is left."""
        n = self.model.rowCount()
        here = self.model.row_of(self.current.image_id) if self.current is not None else None
        start = 0 if here is None else here + 1
        for row in [*range(start, n), *range(0, min(start, n))]:
            hit = self.model.hit_at(row)
            if hit is not None and row != here and self.status(hit.image_id) == "unreviewed":
                self.select_row(row)
                return True
        self.message.emit(f"Every result of this search is reviewed ({n} of {n})")
        return False

    def prev(self) -> None:
        self._step(-1)

    def _step(self, d: int) -> None:
        n = self.model.rowCount()
        if n == 0:
            return
        row = self.model.row_of(self.current.image_id) if self.current is not None else None
        row = 0 if row is None else min(n - 1, max(0, row + d))
        self.select_row(row)

    def document_for(self, hit) -> RegionDocument:
        doc = self.documents.get(hit.image_id)
        if doc is None:
            saved = self.model.current_region(hit)
            doc = RegionDocument(hit.image_id, saved, kind="hit", predicted=hit.region, parent=self)
            draft = self.model.drafts.get(hit.image_id)
            if draft is not None:  # the edit left unaccepted last time: one undo step from the saved outline
                doc.edit("Unaccepted correction", shape_of(draft), shape_of(saved), shape_of(draft))
            doc.changed.connect(lambda i=hit.image_id: self._document_edited(i))
            self.documents[hit.image_id] = doc
        return doc

    def open_row(self, row: int) -> None:
        hit = self.model.hit_at(row)
        if hit is None or self.project is None or self.model.root is None:
            return  # (the root comes with the image list, read in a worker)
        if not self._advancing:
            self.advanced_from = None
        self.current = hit
        doc = self.document_for(hit)
        self.canvas_ctl.show(hit.image_id, self.model.root / hit.path, doc, overlay=hit.region)
        self.current_changed.emit(hit)

    def hit_outlined(self, hit) -> None:
        """A hit's outline drawn after its search: it becomes the hit's prediction, and the outline on
        its document too, unless the reviewer has edited or decided it already."""
        old = self.model.hit_of(hit.image_id)
        if old is None:
            return
        self.model.replace_hit(hit)
        doc = self.documents.get(hit.image_id)
        if doc is not None and hit.region is not None and doc.stack.count() == 0 \
                and self.model.decisions.get(hit.image_id) is None and same_shape(doc.region, old.region):
            doc.predicted = hit.region
            doc.set_geometry(shape_of(hit.region))
        if self.current is not None and self.current.image_id == hit.image_id:
            self.current = hit
            if self.model.root is not None:
                self.canvas_ctl.show(hit.image_id, self.model.root / hit.path, self.document_for(hit),
                                     overlay=hit.region)
            self.current_changed.emit(hit)

    def _document_edited(self, image_id: int) -> None:
        self._sync_draft(image_id)
        if self.current is not None and self.current.image_id == image_id:
            self.current_changed.emit(self.current)

    # -- drafts: edits not accepted yet, kept in the catalog -------------------------------------------

    def _sync_draft(self, image_id: int) -> None:
        """Write the hit's draft when its outline differs from the saved one, drop it when it no longer does."""
        doc, hit, query_id = self.documents.get(image_id), self.model.hit_of(image_id), self.model.query_id
        if doc is None or hit is None or query_id is None or self.project is None:
            return  # (a shortlist still being verified has no search to attach a draft to)
        want = None if same_shape(doc.region, self.model.current_region(hit)) else doc.region
        have = self.model.drafts.get(image_id)
        if (want is None and have is None) or (want is not None and have is not None and same_shape(want, have)):
            return
        self.model.set_draft(image_id, want)
        if want is None:
            self._write(review.discard_draft, query_id, image_id, self.author)
        else:  # edited from the decision shown: accepting it later is checked against that one
            self._write(review.save_draft, query_id, image_id, want, self.author,
                        self.seen.get(image_id, NOT_DECIDED))

    def _write(self, write, query_id: int, *args, on_saved=None, on_failed=None) -> None:
        """A catalog write on the writer pool (in order); the draft count comes back with it.
        on_saved(what write returned); on_failed(exception), instead of the plain error message."""
        self.unsaved += 1
        self.saving_changed.emit()
        project = self.project
        w = Worker(_then_count, write, project, self.author, query_id, *args, engine_call=False, name="Saving")
        self.jobs.start(w, pool="writer", on_finished=lambda r: self._written(project, r, on_saved),
                        on_failed=on_failed or (lambda e: self._save_failed(project, query_id, e)))

    def _written(self, project, result_and_count: tuple, on_saved) -> None:
        result, n_drafts = result_and_count
        self.unsaved -= 1
        if project is self.project:
            self.n_drafts = n_drafts
            if on_saved is not None:
                on_saved(result)
        self.saving_changed.emit()

    def _set_drafts(self, n: int) -> None:
        self.n_drafts = n
        self.saving_changed.emit()

    def saving_text(self) -> str:
        """The status bar's word on saving: every edit is either committed or said not to be."""
        if self.project is None:
            return ""
        if self.unsaved:
            return "Saving…"
        return draft_text(self.n_drafts) if self.n_drafts else "All changes saved"

    # -- decisions --------------------------------------------------------------------------------------

    def status(self, image_id: int) -> str:
        return self.model.status_of(image_id)

    def has_unsaved_edit(self) -> bool:
        """The outline on the canvas differs from the hit's current decision (press A to keep it)."""
        if self.current is None:
            return False
        doc = self.documents.get(self.current.image_id)
        if doc is None:
            return False
        return not same_shape(doc.region, self.model.current_region(self.current))

    def _state(self, image_id: int) -> dict:
        d = self.model.decisions.get(image_id)
        if d is None:
            return {"image_id": image_id, "kind": "unreviewed", "region": None}
        return {"image_id": image_id, "kind": d.kind, "region": d.region, "difficulty": d.difficulty}

    def _can_decide(self) -> bool:
        if self.current is None:
            self.message.emit("Open a hit first (click a result)")
            return False
        if self.model.query_id is None:
            self.message.emit("Wait for the search to finish verifying before reviewing")
            return False
        return True

    def accept(self) -> None:
        if not self._can_decide():
            return
        doc = self.document_for(self.current)
        if doc.is_empty:
            self.message.emit("There is no outline to accept: draw one, or reject (R)")
            return
        kind = "corrected" if doc.is_edited else "accepted"
        self._decide(doc, kind, doc.region, "Accept" if kind == "accepted" else "Accept correction")
        self._advance()

    def reject(self) -> None:
        if not self._can_decide():
            return
        if self.status(self.current.image_id) == "rejected":
            self.message.emit("Already rejected")
            self._advance()
            return
        doc = self.document_for(self.current)
        doc.stack.beginMacro(f"Reject {self.current.path}")
        doc.edit("Back to the prediction", shape_of(self.current.region), doc.geometry,
                 shape_of(self.current.region))  # a rejected hit keeps no edited outline (nor draft)
        self._decide(doc, "rejected", None, "Reject")
        doc.stack.endMacro()
        self._advance()

    def _advance(self) -> None:
        """At keyboard speed: after a decision, the next hit that needs one (the setting can turn it off)."""
        if not self.advance or self.current is None:
            return
        decided = self.current.image_id
        self._advancing = True
        try:
            moved = self.next_unreviewed()
        finally:
            self._advancing = False
        if moved and self.current is not None:
            self.advanced_from = (decided, self.document_for(self.current).stack.index())
            self.current_changed.emit(self.current)  # (Undo is enabled now: it goes back)

    def can_go_back(self) -> bool:
        """Nothing was done on the hit a decision moved on to: undo belongs to the decided hit."""
        if self.advanced_from is None or self.current is None:
            return False
        doc = self.documents.get(self.current.image_id)
        return doc is not None and doc.stack.index() == self.advanced_from[1] \
            and self.model.row_of(self.advanced_from[0]) is not None

    def go_back(self) -> bool:
        """Open the hit the last decision moved on from (Ctrl+Z then takes that decision back)."""
        if not self.can_go_back():
            return False
        image_id = self.advanced_from[0]
        self.advanced_from = None
        self.select_row(self.model.row_of(image_id))
        return True

    def unreview(self) -> None:
        if self._can_decide() and self.status(self.current.image_id) != "unreviewed":
            self._decide(self.document_for(self.current), "unreviewed", None, "Mark unreviewed")

    def _decide(self, doc: RegionDocument, kind: str, region, text: str) -> None:
        image_id = doc.image_id
        before = self._state(image_id)
        after = {"image_id": image_id, "kind": kind, "region": region}
        if before["kind"] == kind and (kind == "rejected" or before.get("region") == region):
            self.message.emit(f"Already {kind}")
            return
        query_id = self.model.query_id
        doc.stack.push(DecisionCommand(f"{text} {self.current.path}",
                                       lambda state, q=query_id: self._apply(q, state), before, after))

    def _apply(self, query_id: int, state: dict) -> None:
        """Show a decision and commit it (in order, off the GUI thread); the catalog drops the hit's
        draft with it, and a draft is written again if the outline still differs (e.g. after undo)."""
        project = self.project
        if project is None or query_id != self.model.query_id:
            return
        image_id, kind, region = state["image_id"], state["kind"], state.get("region")
        shown = None if kind == "unreviewed" else Decision(image_id, kind, region, state.get("difficulty", "easy"),
                                                           self.author, utcnow())
        self.model.set_decision(image_id, shown)
        self.decision_changed.emit(image_id, kind)
        self.model.set_draft(image_id, None)  # the decision drops it
        self.pending[image_id] = self.pending.get(image_id, 0) + 1
        self._write(_save, query_id, image_id, kind, region, state.get("difficulty", "easy"), self.author,
                    self.seen, on_saved=lambda d: self._saved(query_id, image_id, kind, d),
                    on_failed=lambda e: self._decision_failed(project, query_id, image_id, state, e))
        self._sync_draft(image_id)
        if self.current is not None and self.current.image_id == image_id:
            self.current_changed.emit(self.current)

    def _decided(self, image_id: int) -> None:
        left = self.pending.get(image_id, 1) - 1
        if left > 0:
            self.pending[image_id] = left
        else:
            self.pending.pop(image_id, None)

    def _saved(self, query_id: int, image_id: int, kind: str, stored: Decision) -> None:
        self._decided(image_id)
        if query_id == self.model.query_id and image_id not in self.pending and kind in DECIDED:
            self.model.set_decision(image_id, stored)  # with its id, author and time as the catalog has them
        self.decision_saved.emit(image_id, kind)
        self.message.emit(f"Saved: {S.LABELS.get(kind, kind).lower()}")

    def _save_failed(self, project, query_id: int, exc) -> None:
        self.unsaved -= 1
        self.saving_changed.emit()
        if project is self.project:
            self.error.emit("The change was not saved", str(exc))
            self.load_query(query_id)  # show what the catalog really holds

    def _decision_failed(self, project, query_id: int, image_id: int, state: dict, exc) -> None:
        self._decided(image_id)
        if not (isinstance(exc, DecisionConflict) and project is self.project and query_id == self.model.query_id):
            self._save_failed(project, query_id, exc)
            return
        self.unsaved -= 1
        self.saving_changed.emit()
        # show what the catalog holds, and ask: theirs stays unless the person says otherwise
        current = exc.current if exc.current is not None and exc.current.kind in DECIDED else None
        self.seen[image_id] = exc.current_id
        if image_id not in self.pending:
            self.model.set_decision(image_id, current)
            self._reset_document(image_id)
        self.decision_saved.emit(image_id, current.kind if current else "unreviewed")
        row = self.model.row_of(image_id)
        if row is not None and (self.current is None or self.current.image_id != image_id):
            self.advanced_from = None
            self.select_row(row)  # (a decision may have moved on to the next hit): the question is about this one
        self.conflict.emit(exc, state)

    def decide_again(self, conflict: DecisionConflict, state: dict) -> None:
        """"Use mine": the decision the person wanted, over the one they now know of."""
        if conflict.query_id == self.model.query_id:
            self._apply(conflict.query_id, state)

    def wait_saved(self, ms: int = 10000) -> bool:
        return self.jobs.writer.waitForDone(ms)

    # -- other annotators ---------------------------------------------------------------------------------

    def _decided_elsewhere(self, queries) -> None:
        """The watcher saw new decisions (by anyone): read the open search's again, if it is one of them."""
        qid, project = self.model.query_id, self.project
        if project is None or qid is None or self.model.partial or (queries is not None and qid not in queries):
            return
        self.jobs.start(Worker(review.decisions, project, qid, engine_call=False, name="Reading decisions"),
                        pool="io", on_finished=lambda d: project is self.project and self._merge(qid, d),
                        on_failed=lambda e: self.message.emit(f"Could not read others' decisions: {e}"))

    def _merge(self, query_id: int, stored: dict[int, Decision]) -> None:
        """Show the catalog's decisions where they are newer than what is shown (never over a decision
        of this window still being saved)."""
        if query_id != self.model.query_id:
            return
        changed: dict[int, Decision | None] = {}
        for image_id in set(stored) | set(self.seen):
            if image_id in self.pending or self.model.row_of(image_id) is None:
                continue
            new = stored.get(image_id)
            if (new.id if new else NOT_DECIDED) == self.seen.get(image_id, NOT_DECIDED):
                continue
            self.seen[image_id] = new.id if new else NOT_DECIDED
            self.model.set_decision(image_id, new)
            self._reset_document(image_id)
            changed[image_id] = new
        if not changed:
            return
        others = [(i, d) for i, d in changed.items() if d is not None and d.author != self.author]
        if len(changed) == 1 and others:
            i, d = others[0]
            hit = self.model.hit_at(self.model.row_of(i))
            self.message.emit(f"{d.author or 'Someone'} {d.kind} {hit.path.rsplit('/', 1)[-1]}")
        else:
            self.message.emit(f"{len(changed)} decision{'s' * (len(changed) != 1)} changed by others")
        self.remote_changed.emit(changed)
        if self.current is not None and self.current.image_id in changed:
            self.current_changed.emit(self.current)

    def _reset_document(self, image_id: int) -> None:
        """A hit whose decision changed elsewhere starts again from that decision's outline, unless the
        person has drawn on it here."""
        doc = self.documents.get(image_id)
        if doc is None or doc.stack.count() > 0:
            return
        hit = self.current if self.current is not None and self.current.image_id == image_id else None
        if hit is not None:
            self.canvas_ctl.document = None
            self.canvas_ctl.tools.set_document(None)
        self.canvas_ctl.forget(doc)
        del self.documents[image_id]
        doc.deleteLater()
        if hit is not None and self.model.row_of(image_id) is not None:
            self.open_row(self.model.row_of(image_id))

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop(timeout=0)
            self.watcher = None
