"""The ranked hits of one search, with each hit's current review decision.

Rows are the hits in the chosen order: by score (the ranking), or by uncertainty (the doubtful
ones first, engine.annotate.review.hit_uncertainty). The outline drawn on a row's thumbnail is the current
one: the corrected region after a correction, the predicted region otherwise.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from engine.annotate.review import hit_uncertainty
from engine.segment.outline import FEW, GUESSES
from pixret_desktop import status as S
from pixret_desktop.models import (
    CaptionRole,
    DividerRole,
    HitRole,
    ImageIdRole,
    PathRole,
    RegionRole,
    ScoreRole,
    SizeRole,
    StatusRole,
    UnverifiedRole,
)
from pixret_desktop.models.thumbnails import ThumbnailCache

SORTS = ("score", "uncertainty")
# which stage of engine.segment drew a hit's outline, in words
OUTLINE_TEXT = {"warp": "outline: the query's outline warped (a flat object)",
                "cut": "outline: refined to the object in this photo",
                "few": "outline: a guess carried by matches too few to verify the photo",
                "colour": "outline: a guess from colour alone (not verified)",
                "hints": "outline: refined with clicks"}
# an object search's images decided before (engine.annotate.objects): their score only ranks them, so say what they are
REMEMBERED = {"reviewed": "reviewed before", "rejected": "rejected before"}
# stages of a hit nothing has verified: the initial ranking's similarity is all there is
UNVERIFIED = ("shortlist", "initial")
INLIERS_TIP = ("inliers: matched points of the query and this photo that agree with one geometric "
               "transformation; the more, the surer")


def is_unverified(hit) -> bool:
    return hit.stage in UNVERIFIED


def score_text(hit, sep: str = "  ") -> str:
    """The hit's score in the units of what found it: "24 inliers" (verified), "via 2 photos · 31 matches"
    (propagated along the collection graph), "not verified" (the initial ranking's candidates); a
    guessed outline says so: "not verified · colour guess", "not verified · guess from 7 matches"."""
    if hit.stage in REMEMBERED:
        return REMEMBERED[hit.stage]
    ev = hit.evidence or {}
    if hit.stage == "verified":
        return f"{int(ev.get('inliers', hit.score))} inliers"
    if hit.stage == "propagated":
        via = len(ev.get("via") or []) or 1
        return f"via {via} photo{'s' * (via != 1)}{sep}· {int(ev.get('correspondences', 0))} matches"
    if hit.stage in UNVERIFIED:
        n = int(ev.get("inliers", 0) or 0)
        guess = ""
        if ev.get("outline") in GUESSES and hit.region is not None:
            guess = f"{sep}· guess from {int(ev.get('outline_inliers', 0))} matches" if ev["outline"] == FEW \
                else f"{sep}· colour guess"
        return "not verified" + (f"{sep}({n} inliers: too few)" if n else "") + guess
    return hit.stage


class ResultsModel(QAbstractListModel):
    def __init__(self, cache: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.cache = cache
        self.root: Path | None = None
        self.sizes: dict[int, tuple[int, int]] = {}
        self.result = None  # engine.pipeline.SearchResult
        self.query_id: int | None = None
        self.partial = False  # True while only the shortlist has arrived
        self.decisions: dict[int, object] = {}  # image id -> engine.annotate.review.Decision
        self.drafts: dict[int, object] = {}  # image id -> Region: an edited outline not accepted yet
        self.sort = "score"
        self._hits: list = []  # in display order
        self._rank: dict[int, int] = {}  # image id -> rank in the search (1-based)
        self._uncertainty: dict[int, float] = {}
        self._row_of: dict[int, int] = {}
        self._divider_row: int | None = None  # the first unverified candidate, in score order
        cache.ready.connect(self._thumbnail_ready)

    def set_result(self, result, query_id: int | None, decisions: dict | None = None, *,
                   partial: bool = False, drafts: dict | None = None) -> None:
        self.beginResetModel()
        self.result, self.query_id, self.partial = result, query_id, partial
        self.decisions = dict(decisions or {})
        self.drafts = dict(drafts or {})
        hits = list(result.hits) if result is not None else []
        self._rank = {h.image_id: k for k, h in enumerate(hits, 1)}
        self._uncertainty = {h.image_id: hit_uncertainty(h) for h in hits}
        self._order(hits)
        self.endResetModel()

    def clear(self) -> None:
        self.set_result(None, None)

    def set_sort(self, sort: str) -> None:
        if sort == self.sort:
            return
        self.sort = sort
        self.beginResetModel()
        self._order(list(self._hits))
        self.endResetModel()

    def _order(self, hits: list) -> None:
        if self.sort == "uncertainty":
            hits.sort(key=lambda h: (-self._uncertainty[h.image_id], self._rank[h.image_id]))
        else:  # what something verified first, then the unverified candidates, then known negatives
            hits.sort(key=lambda h: (2 if h.stage == "rejected" else 1 if is_unverified(h) else 0,
                                     self._rank[h.image_id]))
        self._hits = hits
        self._row_of = {h.image_id: r for r, h in enumerate(hits)}
        self._divider_row = None
        if self.sort == "score" and not self.partial:
            self._divider_row = next((r for r, h in enumerate(hits) if is_unverified(h)), None)

    @property
    def n_found(self) -> int:
        """Hits something confirmed: verified, propagated, reviewed or imported."""
        return sum(not is_unverified(h) and h.stage != "rejected" for h in self._hits)

    @property
    def n_unverified(self) -> int:
        return sum(is_unverified(h) for h in self._hits)

    def divider_text(self) -> str:
        n = self.n_unverified
        if self.n_found == 0:
            return f"No verified match. The {n} candidate{'s' * (n != 1)} below only look similar"
        return f"Not verified: the {n} candidate{'s' * (n != 1)} below only look similar"

    # -- decisions --------------------------------------------------------------------------------

    def set_decision(self, image_id: int, decision) -> None:
        if decision is None:
            self.decisions.pop(image_id, None)
        else:
            self.decisions[image_id] = decision
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [StatusRole, RegionRole, Qt.ToolTipRole])

    def set_draft(self, image_id: int, region) -> None:
        """A hit's draft as written to the catalog (None: it has none)."""
        if region is None:
            self.drafts.pop(image_id, None)
        else:
            self.drafts[image_id] = region
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [CaptionRole, Qt.ToolTipRole])

    def replace_hit(self, hit) -> None:
        """The same image's hit with a new outline (drawn after the search: engine.pipeline.outline_one)."""
        r = self._row_of.get(hit.image_id)
        if r is None:
            return
        self._hits[r] = hit
        idx = self.index(r)
        self.dataChanged.emit(idx, idx, [RegionRole, CaptionRole, HitRole, Qt.ToolTipRole])

    def status_of(self, image_id: int) -> str:
        d = self.decisions.get(image_id)
        return d.kind if d is not None else "unreviewed"

    def current_region(self, hit):
        d = self.decisions.get(hit.image_id)
        if d is not None and d.kind == "corrected":
            return d.region
        return hit.region

    # -- reading -------------------------------------------------------------------------------------

    def hit_at(self, row: int):
        return self._hits[row] if 0 <= row < len(self._hits) else None

    def row_of(self, image_id: int) -> int | None:
        return self._row_of.get(image_id)

    def hit_of(self, image_id: int):
        return self.hit_at(self._row_of.get(image_id, -1))

    def rank_of(self, image_id: int) -> int | None:
        return self._rank.get(image_id)

    def uncertainty_of(self, image_id: int) -> float | None:
        return self._uncertainty.get(image_id)

    def hits(self) -> list:
        return list(self._hits)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._hits)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self._hits):
            return None
        hit = self._hits[index.row()]
        if role == Qt.DisplayRole:
            return f"#{self._rank[hit.image_id]}  {hit.path}"  # collection-relative; the absolute one: tooltip
        if role == DividerRole:
            return self.divider_text() if index.row() == self._divider_row else None
        if role == UnverifiedRole:
            return is_unverified(hit)
        if role == CaptionRole:
            return ("draft · " if hit.image_id in self.drafts else "") + score_text(hit)  # first: never elided
        if role == Qt.DecorationRole:
            pm = self.cache.pixmap(hit.image_id)
            if pm is None and self.root is not None:
                self.cache.request(hit.image_id, self.root / hit.path)
            return pm
        if role == ImageIdRole:
            return hit.image_id
        if role == StatusRole:
            return self.status_of(hit.image_id)
        if role == RegionRole:
            # a guessed outline (engine.segment) shows when its hit is opened, not on the list:
            # most unverified candidates are not the object
            if (hit.evidence or {}).get("outline") in GUESSES and hit.image_id not in self.decisions:
                return None
            return self.current_region(hit)
        if role == SizeRole:
            return self.sizes.get(hit.image_id)
        if role == ScoreRole:
            return hit.score
        if role == HitRole:
            return hit
        if role == PathRole:
            return hit.path
        if role == Qt.ToolTipRole:
            st = self.status_of(hit.image_id)
            ev = hit.evidence or {}
            d = self.decisions.get(hit.image_id)
            who = d.describe().removeprefix(d.kind) if d is not None and d.time is not None else ""
            lines = [str(self.root / hit.path) if self.root is not None else hit.path,
                     f"rank {self._rank[hit.image_id]}: {score_text(hit, ' ')} ({hit.stage}; ranking score "
                     f"{hit.score:.4g})", f"uncertainty {self._uncertainty[hit.image_id]:.2f}",
                     S.LABELS.get(st, st) + who]
            if hit.stage == "verified":
                lines.append(INLIERS_TIP)
            elif is_unverified(hit):
                lines.append(f"not verified: ranked by visual similarity ({ev.get('initial_score', 0.0):.3g}) only")
            if ev.get("outline"):
                lines.append(OUTLINE_TEXT.get(ev["outline"], f"outline: {ev['outline']}"))
            if hit.image_id in self.drafts:
                lines.append("edited outline not accepted yet (a draft): open it and press A to accept")
            return "\n".join(lines)
        return None

    def _thumbnail_ready(self, image_id: int) -> None:
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [Qt.DecorationRole])
