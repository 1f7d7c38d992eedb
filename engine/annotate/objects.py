"""Object memory: what reviews teach the next search (self-adaptation).

- An object is the reviewed searches of one thing (QueryRow.object_id): a search gets its object on
  its first decision (engine.annotate.review.set_decision), named after the query image until the user
  renames it. Its views are each search's query region and every accepted or corrected region (the
  latest decision per image over all its searches); its negatives the images whose latest decision
  is 'rejected'.
- Multi-view search (`search_object`): every view is a query at once. The initial ASMK ranking is
  the best similarity to any view; each view verifies its own top `ObjectSearchConfig.per_view`
  images, except pairs some earlier search of the object already tried (hit evidence 'view' names
  the view a pair was verified against), so a second search does only new work. Verified results of
  earlier searches are remembered, not recomputed. Reviewed views rank first with their reviewed
  regions, known negatives last. With a graph-using method, every view seeds one propagation (a
  corrected region, not the predicted one, is what spreads from that image) and one diffusion.
- Recall (`recall`): a region drawn again on an annotated view, or a query that verifies against a
  remembered view, is recognized as a known object before any search runs.
- Database adaptation (`adapt_graph`): an accepted or corrected hit whose query image is in the
  collection becomes a hyperedge of the graph (its verified matches), so any later propagation that
  reaches one image of the pair crosses to the other; written as one small chunk, no re-indexing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.annotate.labels import ensure_label
from engine.base.errors import PixretError, ProjectError, shown
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import Region
from engine.base.types import DECIDED, KINDS, Hit, PairResult, Query, SearchResult
from engine.catalog.tables import AnnotationRow, HitRow, ImageRow, LabelRow, ObjectRow, QueryRow
from engine.pipeline import (
    METHODS,
    QueryContext,
    SearchConfig,
    context_of,
    initial_scores,
    outline_hits,
    prepare,
    query_words,
    rank_hits,
    sv_pair,
    verify_many,
)
from engine.segment.outline import GUESSES

log = logging.getLogger(__name__)
REVIEWED_SCORE = 1e6  # reviewed views rank above anything a verifier scores
VIEW_KEY = "view"  # hit evidence: the view a pair was verified against


@dataclass(frozen=True)
class View:
    image: int | str  # an image id of the collection, or the query file's path when it is outside
    region: Region
    kind: str  # 'query' | 'accepted' | 'corrected'
    query_id: int
    image_path: str = ""

    @cached_property
    def key(self) -> str:
        """Identifies the view by image and region (a corrected region is a new view)."""
        text = json.dumps([str(self.image), self.region.to_json()], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ObjectInfo:
    id: int
    name: str
    created_at: dt.datetime
    queries: tuple[int, ...]  # its searches, oldest first
    views: tuple[View, ...]
    negatives: tuple[int, ...]  # rejected image ids
    to_review: int  # images its searches outlined that nobody has decided on yet
    new_images: int  # images indexed since its last search
    label: str = ""  # its label (engine.annotate.labels): one of the project's list, else its own name
    label_color: str | None = None  # the label's colour; None when the label is the object's name

    @property
    def reviewed(self) -> tuple[View, ...]:
        """The accepted and corrected views (collection images)."""
        return tuple(v for v in self.views if v.kind != "query")

    @property
    def status(self) -> str:
        parts = [f"{len(self.reviewed)} reviewed", f"{len(self.negatives)} rejected"]
        if self.to_review:
            parts.append(f"{self.to_review} to review")
        if self.new_images:
            parts.append(f"{self.new_images} new images")
        return " · ".join(parts)


@dataclass(frozen=True)
class Recall:
    object: ObjectInfo
    view: View  # the remembered view the query matched
    how: str  # 'same view' (drawn again on an annotated view) | 'verified' (matched a remembered view)
    strength: float  # IoU with the view's region, or verified inliers


@dataclass(frozen=True)
class ObjectSearchConfig:
    # each reviewed view verifies at most this many of its own top images, new pairs only (the
    # query views' own searches already verified their shortlists)
    per_view: int = 4
    new_images: int = 100  # images indexed since the last search: verified when in the combined top this many
    recall_iou: float = 0.5  # a region this close to an annotated view's is that view again
    recall_views: int = 3  # remembered views a query is verified against to recognize an object


# -- memory -------------------------------------------------------------------------------------


def attach_object(s, query: QueryRow) -> int:
    """The object of a search, created (named after its query image) if it has none yet.

    The caller holds the search's row lock (a write session that read it FOR UPDATE), so two
    annotators' first decisions on one search make one object; two searches of images with the same
    name may still race for the name, and the loser takes the next free one.
    """
    if query.object_id is not None:
        return query.object_id
    row = new_object(s, _name_from(query.image_path))
    query.object_id = row.id
    return row.id


def _name_from(image_path: str) -> str:
    """An object's first name: its query photo's, with the folder when the file name alone says
    nothing ("beer_can 00" for beer_can/00.jpg, "view01" for object1/view01.jpg)."""
    path = Path(image_path)
    stem = shown(path.stem) or "object"
    if not any(c.isalpha() for c in stem) and path.parent.name:
        return f"{shown(path.parent.name)} {stem}"
    return stem


def new_object(s, name: str, label: str | None = None) -> ObjectRow:
    """A new object called `name` ("name (2)" when taken), labelled `label` (added to the project's
    list, engine.annotate.labels) or, without one, by its own name."""
    stem = " ".join(str(name or "").split())[:190] or "object"
    label = " ".join(str(label or "").split())[:200]
    while True:
        taken = set(s.scalars(select(ObjectRow.name).where(ObjectRow.name.like(f"{stem}%"))))
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem} ({n})"
        row = _insert_object(s, name)
        if row is not None:
            if label:
                row.label_id = ensure_label(s, label).id
            return row


def _insert_object(s, name: str) -> ObjectRow | None:
    """A new object row, or None when another transaction took the name first (uq_objects_name).
    A savepoint keeps the rest of the transaction; on PostgreSQL the insert waits for the other
    transaction to end, so the next read sees the name taken."""
    try:
        with s.begin_nested():
            row = ObjectRow(name=name)
            s.add(row)
            s.flush()
        return row
    except IntegrityError:
        return None


def name_object(project, query_id: int, name: str | None = None) -> int:
    """Make a search (and every later decision on it) part of an object; returns the object id.
    With a name: that object (created when new)."""
    if name is not None:
        name = _valid_name(name)

    def write(s) -> int:
        q = s.get(QueryRow, query_id, with_for_update=True, populate_existing=True)
        if q is None:
            raise ProjectError(f"{project.folder}: no search with id {query_id}")
        if name is None:
            return attach_object(s, q)
        while True:
            row = s.scalars(select(ObjectRow).where(ObjectRow.name == name)).first() or _insert_object(s, name)
            if row is not None:
                q.object_id = row.id
                return row.id

    return project.catalog.write(write)


def _valid_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise PixretError("an object name cannot be empty")
    if len(name) > 200:
        raise PixretError(f"object name {name[:40]!r}...: longer than 200 characters")
    return name


def rename_object(project, key: int | str, name: str) -> None:
    """Rename an object (two renames of one object at once: the later one wins)."""
    name = _valid_name(name)

    def write(s) -> None:
        row = _object_row(s, project, key, lock=True)
        other = s.scalars(select(ObjectRow).where(ObjectRow.name == name)).first()
        if other is not None and other.id != row.id:
            raise PixretError(f"an object named {name!r} already exists")
        try:
            with s.begin_nested():
                row.name = name
                s.flush()
        except IntegrityError:  # another annotator gave that name to another object meanwhile
            raise PixretError(f"an object named {name!r} already exists") from None

    project.catalog.write(write)


def forget_object(project, key: int | str) -> None:
    """Delete an object; its searches and decisions stay (as searches of no object)."""
    def write(s) -> None:
        row = _object_row(s, project, key, lock=True)
        for q in s.scalars(select(QueryRow).where(QueryRow.object_id == row.id).with_for_update()):
            q.object_id = None
        s.delete(row)

    project.catalog.write(write)


def _object_row(s, project, key: int | str, lock: bool = False) -> ObjectRow:
    """lock: FOR UPDATE, read again after any other writer of the row has committed (it may be gone)."""
    opts = {"with_for_update": True, "populate_existing": True} if lock else {}
    if isinstance(key, (int, np.integer)):
        row = s.get(ObjectRow, int(key), **opts)
    else:
        by_name = select(ObjectRow).where(ObjectRow.name == str(key))
        if lock:
            by_name = by_name.with_for_update().execution_options(populate_existing=True)
        row = s.scalars(by_name).first()
        if row is None and str(key).isdigit():
            row = s.get(ObjectRow, int(key), **opts)
    if row is None:
        raise PixretError(f"{project.folder}: no object {key!r} (`pixret objects` lists them)")
    return row


def load_object(project, key: int | str) -> ObjectInfo:
    """One object by id or name, with its views and negatives as the catalog has them now."""
    with project.catalog.session() as s:
        return _object_info(s, _object_row(s, project, key))


def list_objects(project) -> list[ObjectInfo]:
    """Every object, most recently searched first."""
    with project.catalog.session() as s:
        rows = list(s.scalars(select(ObjectRow)))
        infos = [_object_info(s, r) for r in rows]
    return sorted(infos, key=lambda o: (-(max(o.queries) if o.queries else 0), o.id))


def object_of_query(project, query_id: int) -> int | None:
    with project.catalog.session() as s:
        q = s.get(QueryRow, query_id)
        return None if q is None else q.object_id


def _object_info(s, row: ObjectRow) -> ObjectInfo:
    queries = list(s.scalars(select(QueryRow).where(QueryRow.object_id == row.id).order_by(QueryRow.id)))
    qids = [q.id for q in queries]
    views: list[View] = []
    for q in queries:
        views.append(View(q.image_id if q.image_id is not None else q.image_path, Region.from_json(q.region),
                          "query", q.id, q.image_path))
    negatives: list[int] = []
    decided: set[int] = set()
    if qids:
        latest = (select(func.max(AnnotationRow.id)).where(AnnotationRow.query_id.in_(qids),
                                                          AnnotationRow.kind.in_(KINDS))
                  .group_by(AnnotationRow.image_id))
        for a, path in s.execute(select(AnnotationRow, ImageRow.path).join(ImageRow, ImageRow.id == AnnotationRow.image_id)
                                 .where(AnnotationRow.id.in_(latest)).order_by(AnnotationRow.id)):
            if a.kind not in DECIDED:
                continue
            decided.add(a.image_id)
            if a.kind == "rejected":
                negatives.append(a.image_id)
            elif a.region is not None:
                views.append(View(a.image_id, Region.from_json(a.region), a.kind, a.query_id, path))
    # the same image and region twice (a search repeated from a view) is one view
    unique: dict[str, View] = {}
    for v in views:
        unique.setdefault(v.key, v)
    to_review = 0
    new_images = 0
    if qids:
        # a JSON column keeps None as JSON null, not SQL NULL: test the value here; a guessed outline
        # (engine.segment's GUESSES) found nothing: it only outlines what was ranked or opened
        rows = s.execute(select(HitRow.image_id, HitRow.region, HitRow.evidence).where(HitRow.query_id.in_(qids)))
        outlined = {i for i, r, ev in rows
                    if r is not None and (ev or {}).get("outline") not in GUESSES}
        to_review = len(outlined - decided)
        last = queries[-1].created_at
        new_images = int(s.scalar(select(func.count()).select_from(ImageRow)
                                  .where(ImageRow.status == "ok", ImageRow.added_at > last)) or 0)
    label = s.get(LabelRow, row.label_id) if row.label_id is not None else None
    return ObjectInfo(row.id, row.name, row.created_at, tuple(qids), tuple(unique.values()), tuple(negatives),
                      to_review, new_images, label.name if label is not None else row.name,
                      label.color if label is not None else None)


def remembered(project, obj: ObjectInfo) -> tuple[dict[int, Hit], dict[str, set[int]]]:
    """What the object's searches already know: the latest verified hit per image (with its region),
    and for each view, the images tried against it."""
    verified: dict[int, Hit] = {}
    tried: dict[str, set[int]] = {}
    if not obj.queries:
        return verified, tried
    with project.catalog.session() as s:
        query_views = {q.id: View(q.image_id if q.image_id is not None else q.image_path, Region.from_json(q.region),
                                  "query", q.id).key
                       for q in s.scalars(select(QueryRow).where(QueryRow.id.in_(obj.queries)))}
        rows = s.execute(select(HitRow, ImageRow.path).join(ImageRow, ImageRow.id == HitRow.image_id)
                         .where(HitRow.query_id.in_(obj.queries)).order_by(HitRow.query_id, HitRow.rank)).all()
    for h, path in rows:
        ev = dict(h.evidence or {})
        stage = ev.pop("_stage", "verified" if h.region is not None else "initial")
        view = ev.get(VIEW_KEY) or query_views.get(h.query_id)
        if view is not None and ("inliers" in ev or stage == "verified"):
            tried.setdefault(view, set()).add(h.image_id)
        if stage == "verified" and h.region is not None:
            verified[h.image_id] = Hit(h.image_id, path, h.score, Region.from_json(h.region), ev, "verified")
    return verified, tried


# -- multi-view search --------------------------------------------------------------------------


def view_context(project, view: View, config: SearchConfig) -> QueryContext:
    """A view as a query: the stored features inside its region (a collection image), else the
    query file's features (extracted once, then cached by engine.pipeline)."""
    if isinstance(view.image, int) and project.is_indexed(view.image):
        fs = project.features(view.image)
        inside = view.region.contains_points(np.asarray(fs.xy))
        if int(inside.sum()) >= 8:
            return context_of(project, Query(view.image, view.region), fs.subset(inside), {view.image}, config)
    return prepare(project, Query(view.image, view.region), config)


def hit_context(project, result: SearchResult, hit: Hit, config: SearchConfig = SearchConfig()) -> QueryContext:
    """The query context a hit's evidence speaks of (to outline it after the search): in an object's
    search, the view it was verified against, whose pixels its matches' query side is in; else
    the search's own query."""
    key = (hit.evidence or {}).get(VIEW_KEY)
    if result.object_id is not None and key is not None:
        for view in load_object(project, result.object_id).views:
            if view.key == key:
                return view_context(project, view, config)
    return prepare(project, result.query, config)


def _post_stage(method: str):
    """The graph stages of a method, for many views at once: (propagate?, diffusion config or None)."""
    from engine.propagate.diffuse import FULL_DIFFUSION, DiffusionConfig

    return {"diffusion": (False, DiffusionConfig()), "hypergraph": (True, None),
            "full": (True, FULL_DIFFUSION)}.get(method, (False, None))


def search_object(project, key: int | str, *, query: Query | None = None, context: QueryContext | None = None,
                  method: str = "sv", top_k: int = 100, config: SearchConfig = SearchConfig(),
                  object_config: ObjectSearchConfig = ObjectSearchConfig(), progress: Progress = NO_PROGRESS,
                  cancel: CancelToken = NEVER, on_partial: Callable[[SearchResult], None] | None = None
                  ) -> SearchResult:
    """Search for a known object with all its views at once (see the module docstring).

    query: a region just drawn that recall tied to this object (it joins the views); the result's
    query is that, else the object's first query. on_partial gets the reviewed results at once.
    """
    if method not in METHODS:
        raise PixretError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    obj = load_object(project, key)
    views = list(obj.views)
    if query is not None:
        views.insert(0, View(query.image, query.region, "query", -1, str(query.image)))
    if not views:
        raise PixretError(f"object {obj.name!r} has no views to search with")
    result_query = query or Query(views[0].image, views[0].region)
    positives = {int(v.image): v for v in obj.reviewed if project.is_indexed(int(v.image))}
    negatives = set(obj.negatives) - set(positives)
    known, tried = remembered(project, obj)

    reviewed_hits = _reviewed_hits(project, positives, known)
    if on_partial is not None:
        on_partial(SearchResult(result_query, method, tuple(reviewed_hits), None, {}, obj.id))

    contexts = []
    for v in views:
        cancel.raise_if_set()
        ctx = context if (context is not None and v.query_id == -1) else view_context(project, v, config)
        contexts.append((v, ctx))
    query_images = {int(v.image) for v in views if isinstance(v.image, int)}
    exclude = set().union(*(c.exclude for _, c in contexts)) | query_images
    timings["views"] = time.perf_counter() - t0

    # initial ranking: the best similarity to any view (all views scored in one pass)
    t = time.perf_counter()
    ids, S = project.index.score_many([query_words(project, ctx.desc, config.query_assign) if len(ctx.desc)
                                       else (np.zeros(0, np.int32), np.zeros((0, 2), np.uint64))
                                       for _, ctx in contexts])
    settled = set(positives) | negatives | exclude
    keep = ~np.isin(ids, np.fromiter(settled, np.int64, len(settled)))
    ids, S = ids[keep], S[:, keep]
    best = S.max(axis=0) if len(ids) else np.zeros(0, np.float32)
    combined = dict(zip(ids.tolist(), best.astype(np.float64).tolist()))
    order = ids[np.lexsort((ids, -best))].tolist()
    per_view = [ids[np.lexsort((ids, -row))][: max(object_config.per_view, 1)].tolist() for row in S]
    timings["initial"] = time.perf_counter() - t

    # new pairs only: each view's own top images it has not been tried against, and new images
    t = time.perf_counter()
    todo: dict[str, list[int]] = {}
    for (v, _), ranked in zip(contexts, per_view):
        seen = tried.get(v.key, set())
        budget = object_config.per_view if (v.kind != "query" or v.key not in tried) else 0
        top = [i for i in ranked if i not in settled][:budget]
        todo[v.key] = [i for i in top if i not in seen and i not in known]
    if obj.queries:
        with project.catalog.session() as s:
            last = s.get(QueryRow, obj.queries[-1]).created_at
            new_ids = set(s.scalars(select(ImageRow.id).where(ImageRow.added_at > last)))
        column = {i: c for c, i in enumerate(ids.tolist())} if new_ids else {}
        for i in order[: object_config.new_images]:
            if i in new_ids and i not in known:
                vk = contexts[int(S[:, column[i]].argmax())][0].key  # its most similar view
                if i not in todo[vk] and i not in tried.get(vk, set()):
                    todo[vk].append(i)
    verifier = METHODS[method].verifier
    pairs = [(n, i) for n, (v, ctx) in enumerate(contexts) if len(ctx.features) >= 4 for i in todo[v.key]]
    verified: dict[int, PairResult] = {}
    # every view's new pairs in one pool: a pair k is (view n, image i)
    done = verify_many(contexts[pairs[0][0]][1] if pairs else None, list(range(len(pairs))),
                       lambda _, k: verifier(contexts[pairs[k][0]][1], pairs[k][1]), progress, cancel) if pairs else {}
    for k, r in sorted(done.items()):
        n, i = pairs[k]
        r = replace(r, evidence={**r.evidence, VIEW_KEY: contexts[n][0].key})
        if i not in verified or (r.verified and (not verified[i].verified or r.score > verified[i].score)):
            verified[i] = r
    for i, h in known.items():  # remembered results stand unless a view now verifies better
        if i not in settled and not (i in verified and verified[i].verified and verified[i].score > h.score):
            verified[i] = PairResult(True, h.score, h.region, {**h.evidence, "remembered": True})
    timings["verify"] = time.perf_counter() - t

    propagate, diffusion = _post_stage(method)
    adapt_graph(project, obj.id)  # what was reviewed since the last search joins the graph (before it is followed)
    # a failed pair keeps the view it was tried against, so the object's next search skips it
    hits = [replace(h, evidence={**h.evidence, VIEW_KEY: verified[h.image_id].evidence[VIEW_KEY]})
            if h.stage == "shortlist" and VIEW_KEY in verified[h.image_id].evidence else h
            for h in rank_hits(project, order, combined, verified)]
    graph = project.graph if (propagate or diffusion is not None) else None
    uncertainty = None
    if graph is not None:
        t = time.perf_counter()
        hits, uncertainty = _graph_stage(contexts[0][1], graph, reviewed_hits, hits, combined, exclude | negatives,
                                         propagate, diffusion, cancel)
        timings["post"] = time.perf_counter() - t
    # the segment stage: a hit's outline refers to the view it was verified against
    by_view = {v.key: ctx for v, ctx in contexts}
    t = time.perf_counter()
    hits = outline_hits(lambda h: by_view.get(h.evidence.get(VIEW_KEY), contexts[0][1]), hits, config.outline,
                        progress, cancel, verifier)
    timings["outline"] = time.perf_counter() - t
    hits = reviewed_hits + hits + _negative_hits(project, negatives, combined)
    timings["total"] = time.perf_counter() - t0
    return SearchResult(result_query, method, tuple(hits[:top_k]) if top_k else tuple(hits), uncertainty, timings,
                        obj.id)


def _reviewed_hits(project, positives: dict[int, View], known: dict[int, Hit]) -> list[Hit]:
    """The reviewed views first: their reviewed regions, the best verified first."""
    def strength(i):
        return known[i].score if i in known else 0.0

    ordered = sorted(positives, key=lambda i: (-strength(i), i))
    n = len(ordered)
    return [Hit(i, project.image_path(i), REVIEWED_SCORE + (n - r), positives[i].region,
                {"decision": positives[i].kind, "verified_inliers": int(strength(i)), VIEW_KEY: positives[i].key},
                "reviewed") for r, i in enumerate(ordered)]


def _negative_hits(project, negatives: set[int], scores: dict[int, float]) -> list[Hit]:
    """Known negatives, below everything else."""
    ordered = sorted(negatives, key=lambda i: (-scores.get(i, 0.0), i))
    return [Hit(i, project.image_path(i), -1.0 - r * 1e-6, None, {"decision": "rejected"}, "rejected")
            for r, i in enumerate(ordered)]


def _graph_stage(ctx, graph, reviewed: list[Hit], hits: list[Hit], scores: dict[int, float], exclude: set[int],
                 propagate: bool, diffusion, cancel: CancelToken):
    """Propagation from every view and verified hit at once, then diffusion seeded by all of them."""
    from engine.propagate.diffuse import (
        PropagationConfig,
        UncertaintyConfig,
        _finish,
        _propagated_hits,
        _rest_by_diffusion,
    )

    ctx = replace(ctx, exclude=set(exclude))
    direct = [h for h in hits if h.stage == "verified"]
    seeds = reviewed + direct
    propagated = _propagated_hits(ctx, graph, seeds, PropagationConfig(), cancel) if propagate else []
    got = {h.image_id for h in seeds} | {h.image_id for h in propagated}
    rest = [h for h in hits if h.image_id not in got]
    if diffusion is not None:
        rest = _rest_by_diffusion(graph, rest, scores, {h.image_id for h in seeds}, diffusion)
    out, uncertainty = _finish(graph, reviewed + direct + propagated + rest, UncertaintyConfig())
    return out[len(reviewed):], uncertainty


# -- recall -------------------------------------------------------------------------------------


def recall(project, query: Query, context: QueryContext | None = None,
           config: ObjectSearchConfig = ObjectSearchConfig()) -> Recall | None:
    """Is the drawn region a remembered object? Checked before searching.

    1. Drawn again on an annotated view (same image, IoU >= recall_iou): no features needed.
    2. Else (with the query's prepared context): verified against the remembered views whose images
       the query ranks highest; the first that verifies names the object.
    """
    objects = list_objects(project)
    if not objects:
        return None
    image_id = int(query.image) if isinstance(query.image, (int, np.integer)) else project.image_id(Path(query.image))
    same = []
    for obj in objects:
        for v in obj.views:
            same_image = (image_id is not None and isinstance(v.image, int) and v.image == image_id) or \
                         (image_id is None and isinstance(v.image, str) and Path(v.image) == Path(query.image))
            if same_image:
                iou = _region_iou(query.region, v.region)
                if iou >= config.recall_iou:
                    same.append((iou, obj, v))
    if same:
        iou, obj, v = max(same, key=lambda x: (x[0], -x[1].id))
        return Recall(obj, v, "same view", iou)
    if context is None:
        return None
    views = {int(v.image): (obj, v) for obj in objects for v in obj.views
             if isinstance(v.image, int) and v.kind != "query" and v.image != image_id}
    views.update({int(v.image): (obj, v) for obj in objects for v in obj.views
                  if isinstance(v.image, int) and v.kind == "query" and v.image != image_id and int(v.image) not in views})
    if not views or len(context.desc) < 4:
        return None
    scores = initial_scores(project, context.desc, context.config.query_assign, set(context.exclude))
    ranked = sorted((i for i in views if i in scores), key=lambda i: (-scores[i], i))[: config.recall_views]

    for i in ranked:
        obj, v = views[i]
        r = sv_pair(context, i)
        # the match must fall on the remembered region, not elsewhere in that image
        if r.verified and r.region is not None and _overlap(r.region, v.region) >= 0.5:
            return Recall(obj, v, "verified", float(r.score))
    return None


def _region_iou(a: Region, b: Region) -> float:
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


def _overlap(a: Region, b: Region) -> float:
    """Intersection over the smaller region."""
    small = min(a.area, b.area)
    return float(a.intersection(b).area / small) if small > 0 else 0.0


# -- database adaptation ------------------------------------------------------------------------


def adapt_graph(project, key: int | str | None = None) -> int:
    """Reviewed pairs become hyperedges of the collection graph; returns how many were added.

    A pair qualifies when the search's query image is in the collection, the hit was accepted or
    corrected, and its verification listed matches (evidence 'matches': [xq, yq, xd, yd]). Pairs the
    graph already verified are left alone. Without a graph nothing is written.
    """
    from engine.propagate.graph import add_reviewed_edges

    graph = project.graph
    if graph is None:
        return 0
    objects = [load_object(project, key)] if key is not None else list_objects(project)
    accepted = {(v.query_id, int(v.image)) for o in objects for v in o.reviewed}
    if not accepted:
        return 0
    qids = sorted({q for q, _ in accepted})
    with project.catalog.session() as s:
        qimage = dict(s.execute(select(QueryRow.id, QueryRow.image_id).where(QueryRow.id.in_(qids))).all())
        hits = s.execute(select(HitRow.query_id, HitRow.image_id, HitRow.evidence).where(HitRow.query_id.in_(qids))).all()
    have = graph.verified_pairs()
    pairs = []
    for qid, b, ev in hits:
        a = qimage.get(qid)
        if a is None or (qid, b) not in accepted or a == b:
            continue
        if (min(a, b), max(a, b)) in have:
            continue
        m = np.asarray((ev or {}).get("matches") or [], np.float64)
        if m.ndim != 2 or m.shape[0] < 4 or m.shape[1] < 4:
            continue
        H = (ev or {}).get("homography")
        pairs.append((int(a), int(b), m[:, :4], None if H is None else np.asarray(H, np.float64)))
        have.add((min(a, b), max(a, b)))
    try:
        return add_reviewed_edges(project, pairs)
    except OSError as e:  # a shared folder this annotator may only read: a later search by a writer adds them
        log.info("graph adaptation skipped: %s", e)
        return 0
