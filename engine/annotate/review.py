"""Review decisions: searches and the person's verdict on each hit, kept in the catalog.

Every call is one transaction, committed before it returns, so whatever the screen shows as saved
is on disk. A decision never overwrites: each call appends an AnnotationRow (who, when), the latest
row for a (query, image) pair is the current decision and the older ones are its history. Undoing a
decision appends a row of kind 'unreviewed'.

Several annotators may review one search at once (docs/adr/team-catalog-concurrency.md): decisions
on one search are written one at a time (its row lock), and a decision made on a stale view (someone
else decided the hit since the person saw it: `expected`) raises DecisionConflict instead of silently
replacing theirs.

A draft is an outline edited in review and not yet accepted (one DraftRow per hit and author,
replaced on each edit): committed as it is made, so it survives a quit or a crash, and dropped in
the same transaction as its author's next decision on the hit. Each annotator sees and settles
their own drafts (drafts made before drafts had authors are anybody's); a draft remembers the
decision it was edited from, so accepting it later is checked like any decision.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, true

from engine.annotate.live import notify_decision
from engine.base.errors import PixretError, ProjectError
from engine.base.regions import Region
from engine.base.types import DECIDED, DIFFICULTIES, KINDS, Hit, Query, SearchResult
from engine.catalog.tables import AnnotationRow, DraftRow, HitRow, ImageRow, QueryRow, utcnow

_STAGE_KEY = "_stage"  # a hit's stage, kept inside its evidence JSON
NOT_DECIDED = 0  # set_decision(expected=...): the person saw no decision on the hit


@dataclass(frozen=True)
class Decision:
    image_id: int
    kind: str  # accepted | corrected | rejected (history: also unreviewed)
    region: Region | None
    difficulty: str
    author: str
    time: dt.datetime | None  # UTC, naive
    id: int | None = None  # the catalog row (None: not stored, e.g. shown from an object's memory)

    def describe(self, now: dt.datetime | None = None) -> str:
        """"accepted by ana 2 min ago"."""
        who = f" by {self.author}" if self.author else ""
        return f"{self.kind}{who}" + (f" {ago(self.time, now)}" if self.time is not None else "")


def ago(time: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long ago a catalog time (naive UTC) was: "just now", "2 min ago", "3 h ago", "2026-11-20"."""
    seconds = ((now or utcnow()) - time).total_seconds()
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    return f"on {time:%Y-%m-%d}"


class DecisionConflict(PixretError):
    """Someone else decided the hit after the person last saw it; nothing was written.

    seen: the decision the person saw (None: none); current: the one in the catalog now (None or
    kind 'unreviewed': none). Call set_decision again with expected=conflict.current_id to replace it.
    """

    def __init__(self, path: str, query_id: int, image_id: int, seen: Decision | None, current: Decision | None,
                 attempted: str):
        self.path, self.query_id, self.image_id = path, query_id, image_id
        self.seen, self.current, self.attempted = seen, current, attempted
        before = seen.kind if seen is not None else "unreviewed"
        if current is None:
            change = f"changed: {before} -> unreviewed"
        else:
            who = current.author or "someone else"
            change = f"changed by {who} {ago(current.time)}: {before} -> {current.kind}"
        super().__init__(f"{path}: {change}")

    @property
    def current_id(self) -> int:
        c = self.current
        return c.id if c is not None and c.kind in DECIDED else NOT_DECIDED


def _decision(r: AnnotationRow) -> Decision:
    return Decision(r.image_id, r.kind, _region(r.region), r.difficulty, r.author, r.created_at, r.id)


@dataclass(frozen=True)
class Draft:
    query_id: int
    image_id: int
    region: Region  # the edited outline (may be empty: everything erased)
    time: dt.datetime
    author: str = ""
    base: int | None = None  # the decision it was edited from (NOT_DECIDED: none; None: not recorded)


@dataclass(frozen=True)
class QueryInfo:
    id: int
    image_id: int | None
    image_path: str
    method: str
    created_at: dt.datetime
    uncertainty: float | None
    n_hits: int
    n_decided: int


def _jsonable(value):
    """Evidence as plain JSON (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _region_json(region: Region | None):
    return None if region is None else region.to_json()


def _region(data) -> Region | None:
    return None if data is None else Region.from_json(data)


def save_search(project, result: SearchResult) -> int:
    """Store a search (its query and ranked hits); returns the query id."""
    q = result.query
    if isinstance(q.image, (int, np.integer)):
        image_id = int(q.image)
        image_path = project.image_info(image_id).path
    else:
        image_path = str(q.image)
        image_id = project.image_id(Path(q.image))
    params = {"timings": _jsonable(dict(result.timings or {})), "top_k": len(result.hits)}

    def write(s) -> int:
        row = QueryRow(image_id=image_id, image_path=image_path, region=q.region.to_json(),
                       method=result.method, params=params, uncertainty=result.uncertainty,
                       object_id=result.object_id)
        s.add(row)
        s.flush()
        for rank, hit in enumerate(result.hits):
            evidence = _jsonable(dict(hit.evidence or {}))
            evidence[_STAGE_KEY] = hit.stage
            s.add(HitRow(query_id=row.id, image_id=int(hit.image_id), rank=rank, score=float(hit.score),
                         region=_region_json(hit.region), evidence=evidence))
        return row.id

    return project.catalog.write(write)  # waits out another process's long write (an import)


def load_search(project, query_id: int) -> SearchResult:
    """A stored search, hits in their original rank order."""
    with project.catalog.session() as s:
        row = s.get(QueryRow, query_id)
        if row is None:
            raise ProjectError(f"{project.folder}: no search with id {query_id}")
        hits = []
        for h, path in s.execute(select(HitRow, ImageRow.path).join(ImageRow, ImageRow.id == HitRow.image_id)
                                 .where(HitRow.query_id == query_id).order_by(HitRow.rank)):
            evidence = dict(h.evidence or {})
            stage = evidence.pop(_STAGE_KEY, "verified" if h.region is not None else "initial")
            hits.append(Hit(h.image_id, path, h.score, _region(h.region), evidence, stage))
        query = Query(row.image_id if row.image_id is not None else row.image_path, Region.from_json(row.region))
        timings = dict((row.params or {}).get("timings") or {})
        return SearchResult(query, row.method, tuple(hits), row.uncertainty, timings, row.object_id)


def set_hit_outline(project, query_id: int, image_id: int, region: Region | None, evidence: dict) -> None:
    """Store a hit's outline drawn after its search (engine.pipeline.outline_one, when the reviewer
    opened it): its predicted region and evidence become these; its stage and rank stay."""
    with project.catalog.session() as s:
        row = s.scalar(select(HitRow).where(HitRow.query_id == query_id, HitRow.image_id == image_id))
        if row is None:
            raise ProjectError(f"{project.folder}: search {query_id} has no hit on image {image_id}")
        stage = (row.evidence or {}).get(_STAGE_KEY)
        row.evidence = {**_jsonable(dict(evidence)), **({_STAGE_KEY: stage} if stage is not None else {})}
        row.region = _region_json(region)


def set_decision(project, query_id: int, image_id: int, kind: str, region: Region | None = None,
                 difficulty: str = "easy", author: str = "", *, expected: int | None = None) -> Decision:
    """Record the person's verdict on one hit (appended; the latest row is the current decision) and
    return it as stored (its id is the `expected` of the next decision on the hit); the hit's draft
    goes with it.

    expected: the id of the decision the person saw as current (Decision.id), or NOT_DECIDED when they
    saw none. If the hit's current decision is another one by now, DecisionConflict is raised and
    nothing is written, unless that decision already says the same as this one. None: no check.
    A search's first decision makes it an object (engine.annotate.objects), remembered for later searches.
    """
    if kind not in KINDS:
        raise ValueError(f"decision kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, not {difficulty!r}")
    if kind in ("accepted", "corrected") and region is None:
        raise ValueError(f"an {kind} decision needs a region")

    def write(s) -> Decision:
        query = _hit_query(project, s, query_id, image_id, lock=True)
        if expected is not None:
            conflict = _conflict(s, s.get(ImageRow, image_id).path, query_id, image_id, expected, kind, region)
            if conflict is not None:
                raise conflict
        return _add_decision(s, query, image_id, kind, region, difficulty, author)

    return project.catalog.write(write)


def _hit_query(project, s, query_id: int, image_id: int, lock: bool = False) -> QueryRow:
    """lock: the search's row lock (PostgreSQL; SQLite: the write transaction's database lock), so
    decisions on one search, and the object it becomes, are written one after the other, each
    seeing the last."""
    query = s.get(QueryRow, query_id, with_for_update=lock, populate_existing=lock)
    if query is None:
        raise ProjectError(f"{project.folder}: no search with id {query_id}")
    if s.get(ImageRow, image_id) is None:
        raise ProjectError(f"{project.folder}: no image with id {image_id}")
    return query


def _add_decision(s, query: QueryRow, image_id: int, kind: str, region: Region | None, difficulty: str,
                  author: str) -> Decision:
    if kind in DECIDED:
        from engine.annotate.objects import attach_object

        attach_object(s, query)
    row = AnnotationRow(query_id=query.id, image_id=image_id, kind=kind,
                        region=_region_json(region) if kind != "rejected" else None,
                        difficulty=difficulty, author=author)
    s.add(row)
    s.execute(delete(DraftRow).where(DraftRow.query_id == query.id, DraftRow.image_id == image_id, _of(author)))
    s.flush()
    notify_decision(s, query.id)
    return _decision(row)


def _latest_row(s, query_id: int, image_id: int) -> AnnotationRow | None:
    return s.scalars(select(AnnotationRow).where(AnnotationRow.query_id == query_id,
                                                 AnnotationRow.image_id == image_id,
                                                 AnnotationRow.kind.in_(KINDS))
                     .order_by(AnnotationRow.id.desc()).limit(1)).first()


def _conflict(s, path: str, query_id: int, image_id: int, expected: int, kind: str,
              region: Region | None) -> DecisionConflict | None:
    """A DecisionConflict when the hit's current decision is not the one the person saw, and says
    neither what they saw nor what they decide now (then nothing of anyone's would be lost)."""
    current = _latest_row(s, query_id, image_id)
    current_id = current.id if current is not None and current.kind in DECIDED else NOT_DECIDED
    if current_id == expected:
        return None
    seen = s.get(AnnotationRow, expected) if expected != NOT_DECIDED else None
    now = _outcome(current)
    if now == _outcome(seen) or now == _outcome_of(kind, region):
        return None
    return DecisionConflict(path, query_id, image_id, _decision(seen) if seen is not None else None,
                            _decision(current) if current is not None else None, kind)


def _outcome_of(kind: str, region: Region | None) -> tuple:
    """What a decision says, for comparing two: undecided, rejected, or kept with which region."""
    if kind not in DECIDED:
        return ("unreviewed",)
    return (kind,) if kind == "rejected" else (kind, region)


def _outcome(row: AnnotationRow | None) -> tuple:
    return _outcome_of("unreviewed", None) if row is None else _outcome_of(row.kind, _region(row.region))


# -- drafts: edited outlines not yet accepted ---------------------------------------------------------


def _of(author: str | None):
    """The drafts that are `author`'s: theirs and the authorless ones (None: everybody's)."""
    return true() if author is None else DraftRow.author.in_(sorted({author, ""}))


def save_draft(project, query_id: int, image_id: int, region: Region, author: str = "",
               base: int | None = None) -> None:
    """Keep a hit's edited outline (replacing the author's earlier draft), committed before returning.
    base: the id of the decision the outline was edited from (NOT_DECIDED: none)."""
    if not isinstance(region, Region):
        raise ValueError(f"a draft needs a Region, not {type(region).__name__}")
    def write(s) -> None:
        _hit_query(project, s, query_id, image_id)
        row = s.scalar(select(DraftRow).where(DraftRow.query_id == query_id, DraftRow.image_id == image_id,
                                              DraftRow.author == author))
        if row is None:
            s.add(DraftRow(query_id=query_id, image_id=image_id, region=region.to_json(), author=author,
                           base_id=base))
        else:
            row.region, row.base_id = region.to_json(), base
        # an authorless draft of the hit (made before drafts had authors) is replaced by this one
        s.execute(delete(DraftRow).where(DraftRow.query_id == query_id, DraftRow.image_id == image_id,
                                         DraftRow.author == "", DraftRow.author != author))

    project.catalog.write(write)


def discard_draft(project, query_id: int, image_id: int, author: str = "") -> None:
    """Forget the author's draft of a hit (nothing happens when there is none)."""
    project.catalog.write(lambda s: s.execute(delete(DraftRow).where(
        DraftRow.query_id == query_id, DraftRow.image_id == image_id, _of(author))))


def drafts(project, query_id: int | None = None, author: str | None = None) -> list[Draft]:
    """The drafts of one search (or of the whole project) of one author (None: everybody's), oldest first."""
    with project.catalog.session() as s:
        q = select(DraftRow).where(_of(author)).order_by(DraftRow.id)
        if query_id is not None:
            q = q.where(DraftRow.query_id == query_id)
        return [Draft(r.query_id, r.image_id, Region.from_json(r.region), r.updated_at, r.author, r.base_id)
                for r in s.scalars(q)]


def draft_count(project, author: str | None = None) -> int:
    with project.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(DraftRow).where(_of(author))) or 0


def accept_drafts(project, author: str = "") -> int:
    """Accept the author's drafts as their hits' outlines, in one transaction: 'corrected' (or
    'accepted' when it is the prediction again). Empty drafts (everything erased) stay drafts: there
    is no outline to accept; so does a draft whose hit someone else decided since it was edited from
    its decision (a conflict, as for set_decision). Returns how many were accepted."""
    def write(s) -> int:
        n = 0
        for r in list(s.scalars(select(DraftRow).where(_of(author)).order_by(DraftRow.id))):
            region = Region.from_json(r.region)
            if region.is_empty:
                continue
            query = _hit_query(project, s, r.query_id, r.image_id, lock=True)
            predicted = s.scalar(select(HitRow.region).where(HitRow.query_id == r.query_id,
                                                             HitRow.image_id == r.image_id))
            kind = "accepted" if predicted is not None and Region.from_json(predicted) == region else "corrected"
            if r.base_id is not None and _conflict(s, "", r.query_id, r.image_id, r.base_id, kind, region):
                continue
            _add_decision(s, query, r.image_id, kind, region, "easy", author)
            n += 1
        return n

    return project.catalog.write(write)


def discard_drafts(project, author: str | None = None) -> int:
    """Forget the author's drafts (None: everybody's); returns how many there were."""
    with project.catalog.session() as s:
        return s.execute(delete(DraftRow).where(_of(author))).rowcount or 0


def _current_rows(s, query_id: int | None = None):
    """The latest annotation row of each (query, image) pair (optionally of one query)."""
    latest = select(func.max(AnnotationRow.id)).where(AnnotationRow.kind.in_(KINDS))
    if query_id is not None:
        latest = latest.where(AnnotationRow.query_id == query_id)
    latest = latest.group_by(AnnotationRow.query_id, AnnotationRow.image_id)
    return s.scalars(select(AnnotationRow).where(AnnotationRow.id.in_(latest)).order_by(AnnotationRow.id))


def decisions(project, query_id: int) -> dict[int, Decision]:
    """The current decision of each decided image of a search (undecided images are left out)."""
    out: dict[int, Decision] = {}
    with project.catalog.session() as s:
        for r in _current_rows(s, query_id):
            if r.kind in DECIDED:
                out[r.image_id] = _decision(r)
    return out


def history(project, query_id: int, image_id: int) -> list[Decision]:
    """Every decision ever recorded for one hit, oldest first (including 'unreviewed' undos)."""
    with project.catalog.session() as s:
        rows = s.scalars(select(AnnotationRow).where(AnnotationRow.query_id == query_id,
                                                     AnnotationRow.image_id == image_id,
                                                     AnnotationRow.kind.in_(KINDS))
                         .order_by(AnnotationRow.id))
        return [_decision(r) for r in rows]


def image_status(project) -> dict[int, str]:
    """Each reviewed image's status for the browser: its most recent current decision over all
    searches. Images never decided (or whose decisions were all undone) are absent: unreviewed."""
    out: dict[int, str] = {}
    with project.catalog.session() as s:
        for r in _current_rows(s):  # id order: a later decision overrides an earlier one
            if r.kind in DECIDED:
                out[r.image_id] = r.kind
    return out


def list_queries(project) -> list[QueryInfo]:
    """Every stored search, newest first, with its hit and decision counts."""
    with project.catalog.session() as s:
        n_hits = dict(s.execute(select(HitRow.query_id, func.count()).group_by(HitRow.query_id)).all())
        n_decided: dict[int, int] = {}
        for r in _current_rows(s):
            if r.kind in DECIDED and r.query_id is not None:
                n_decided[r.query_id] = n_decided.get(r.query_id, 0) + 1
        return [QueryInfo(r.id, r.image_id, r.image_path, r.method, r.created_at, r.uncertainty,
                          n_hits.get(r.id, 0), n_decided.get(r.id, 0))
                for r in s.scalars(select(QueryRow).order_by(QueryRow.id.desc()))]


def hit_uncertainty(hit: Hit, min_inliers: int = 10) -> float:
    """How unsure a hit is, in [0, 1], to review the doubtful ones first.

    The method's own per-hit value (evidence 'uncertainty') when it gives one; otherwise from the
    verification: a verified hit just above the inlier threshold is as unsure as it gets (1) and
    grows surer with more inliers; an unverified one that almost made it (inliers just below the
    threshold) is unsure, one with no geometric support at all is a likely negative.
    """
    ev = hit.evidence or {}
    if isinstance(ev.get("uncertainty"), (int, float)):
        return float(min(1.0, max(0.0, ev["uncertainty"])))
    inliers = ev.get("inliers")
    if hit.stage == "verified":
        if isinstance(inliers, (int, float)) and inliers > 0:
            return float(min(1.0, min_inliers / inliers))
        return 0.5
    if isinstance(inliers, (int, float)):
        return float(min(1.0, max(0.0, inliers / min_inliers)))
    return 0.25
