"""Review decisions: searches and the person's verdict on each hit, kept in the catalog.

Every call is one transaction, committed before it returns, so whatever the screen shows as saved
is on disk. A decision never overwrites: each call appends an AnnotationRow, the latest row for a
(query, image) pair is the current decision and the older ones are its history. Undoing a decision
appends a row of kind 'unreviewed'.

A draft is an outline edited in review and not yet accepted (one DraftRow per hit, replaced on each
edit): committed as it is made, so it survives a quit or a crash, and dropped in the same
transaction as the hit's next decision.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select

from engine.base.errors import ProjectError
from engine.base.regions import Region
from engine.base.types import DECIDED, DIFFICULTIES, KINDS, Hit, Query, SearchResult
from engine.catalog.tables import AnnotationRow, DraftRow, HitRow, ImageRow, QueryRow

_STAGE_KEY = "_stage"  # a hit's stage, kept inside its evidence JSON


@dataclass(frozen=True)
class Decision:
    image_id: int
    kind: str  # accepted | corrected | rejected
    region: Region | None
    difficulty: str
    author: str
    time: dt.datetime


@dataclass(frozen=True)
class Draft:
    query_id: int
    image_id: int
    region: Region  # the edited outline (may be empty: everything erased)
    time: dt.datetime


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
    with project.catalog.session() as s:
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


def set_decision(project, query_id: int, image_id: int, kind: str, region: Region | None = None,
                 difficulty: str = "easy", author: str = "") -> None:
    """Record the person's verdict on one hit (appended; the latest row is the current decision) and
    drop the hit's draft. A search's first decision makes it an object (engine.annotate.objects),
    remembered for later searches."""
    if kind not in KINDS:
        raise ValueError(f"decision kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, not {difficulty!r}")
    if kind in ("accepted", "corrected") and region is None:
        raise ValueError(f"an {kind} decision needs a region")
    with project.catalog.session() as s:
        _add_decision(s, _hit_query(project, s, query_id, image_id), image_id, kind, region, difficulty, author)


def _hit_query(project, s, query_id: int, image_id: int) -> QueryRow:
    query = s.get(QueryRow, query_id)
    if query is None:
        raise ProjectError(f"{project.folder}: no search with id {query_id}")
    if s.get(ImageRow, image_id) is None:
        raise ProjectError(f"{project.folder}: no image with id {image_id}")
    return query


def _add_decision(s, query: QueryRow, image_id: int, kind: str, region: Region | None, difficulty: str,
                  author: str) -> None:
    if kind in DECIDED:
        from engine.annotate.objects import attach_object

        attach_object(s, query)
    s.add(AnnotationRow(query_id=query.id, image_id=image_id, kind=kind,
                        region=_region_json(region) if kind != "rejected" else None,
                        difficulty=difficulty, author=author))
    s.execute(delete(DraftRow).where(DraftRow.query_id == query.id, DraftRow.image_id == image_id))


# -- drafts: edited outlines not yet accepted ---------------------------------------------------------


def save_draft(project, query_id: int, image_id: int, region: Region) -> None:
    """Keep a hit's edited outline (replacing its earlier draft), committed before returning."""
    if not isinstance(region, Region):
        raise ValueError(f"a draft needs a Region, not {type(region).__name__}")
    with project.catalog.session() as s:
        _hit_query(project, s, query_id, image_id)
        row = s.scalar(select(DraftRow).where(DraftRow.query_id == query_id, DraftRow.image_id == image_id))
        if row is None:
            s.add(DraftRow(query_id=query_id, image_id=image_id, region=region.to_json()))
        else:
            row.region = region.to_json()


def discard_draft(project, query_id: int, image_id: int) -> None:
    """Forget a hit's draft (nothing happens when it has none)."""
    with project.catalog.session() as s:
        s.execute(delete(DraftRow).where(DraftRow.query_id == query_id, DraftRow.image_id == image_id))


def drafts(project, query_id: int | None = None) -> list[Draft]:
    """The drafts of one search (or of the whole project), oldest first."""
    with project.catalog.session() as s:
        q = select(DraftRow).order_by(DraftRow.id)
        if query_id is not None:
            q = q.where(DraftRow.query_id == query_id)
        return [Draft(r.query_id, r.image_id, Region.from_json(r.region), r.updated_at) for r in s.scalars(q)]


def draft_count(project) -> int:
    with project.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(DraftRow)) or 0


def accept_drafts(project, author: str = "") -> int:
    """Accept every draft of the project as its hit's outline, in one transaction: 'corrected' (or
    'accepted' when it is the prediction again). Empty drafts (everything erased) stay drafts: there is
    no outline to accept. Returns how many were accepted."""
    with project.catalog.session() as s:
        n = 0
        for r in list(s.scalars(select(DraftRow).order_by(DraftRow.id))):
            region = Region.from_json(r.region)
            if region.is_empty:
                continue
            predicted = s.scalar(select(HitRow.region).where(HitRow.query_id == r.query_id,
                                                             HitRow.image_id == r.image_id))
            kind = "accepted" if predicted is not None and Region.from_json(predicted) == region else "corrected"
            _add_decision(s, s.get(QueryRow, r.query_id), r.image_id, kind, region, "easy", author)
            n += 1
        return n


def discard_drafts(project) -> int:
    """Forget every draft of the project; returns how many there were."""
    with project.catalog.session() as s:
        return s.execute(delete(DraftRow)).rowcount or 0


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
                out[r.image_id] = Decision(r.image_id, r.kind, _region(r.region), r.difficulty, r.author,
                                           r.created_at)
    return out


def history(project, query_id: int, image_id: int) -> list[Decision]:
    """Every decision ever recorded for one hit, oldest first (including 'unreviewed' undos)."""
    with project.catalog.session() as s:
        rows = s.scalars(select(AnnotationRow).where(AnnotationRow.query_id == query_id,
                                                     AnnotationRow.image_id == image_id,
                                                     AnnotationRow.kind.in_(KINDS))
                         .order_by(AnnotationRow.id))
        return [Decision(r.image_id, r.kind, _region(r.region), r.difficulty, r.author, r.created_at)
                for r in rows]


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
