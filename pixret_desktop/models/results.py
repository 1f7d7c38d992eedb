"""The ranked hits of one search, with each hit's current review decision.

Rows are the hits in the chosen order: by score (the ranking), or by uncertainty (the doubtful
ones first, engine.annotate.review.hit_uncertainty). The outline drawn on a row's thumbnail is the current
one: the corrected region after a correction, the predicted region otherwise.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from engine.annotate.review import hit_uncertainty
from pixret_desktop import status as S
from pixret_desktop.models import (
    CaptionRole,
    HitRole,
    ImageIdRole,
    PathRole,
    RegionRole,
    ScoreRole,
    SizeRole,
    StatusRole,
)
from pixret_desktop.models.thumbnails import ThumbnailCache

SORTS = ("score", "uncertainty")
# an object search's images decided before (engine.annotate.objects): their score only ranks them, so say what they are
REMEMBERED = {"reviewed": "reviewed before", "rejected": "rejected before"}


def score_text(hit, sep: str = "  ") -> str:
    """The score and, unless verified, the stage of a hit: "score 0.0123  (shortlist)"."""
    if hit.stage in REMEMBERED:
        return REMEMBERED[hit.stage]
    return f"score {hit.score:.3g}" + ("" if hit.stage == "verified" else f"{sep}({hit.stage})")


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
        else:
            hits.sort(key=lambda h: self._rank[h.image_id])
        self._hits = hits
        self._row_of = {h.image_id: r for r, h in enumerate(hits)}

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
            return f"#{self._rank[hit.image_id]}  {hit.path.rsplit('/', 1)[-1]}"  # full path: tooltip
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
            lines = [hit.path, f"rank {self._rank[hit.image_id]}, score {hit.score:.4g}, {hit.stage}",
                     f"uncertainty {self._uncertainty[hit.image_id]:.2f}", S.LABELS.get(st, st) + who]
            if "inliers" in ev:
                lines.append(f"{ev['inliers']} inlier matches")
            if hit.image_id in self.drafts:
                lines.append("edited outline not accepted yet (a draft): open it and press A to accept")
            return "\n".join(lines)
        return None

    def _thumbnail_ready(self, image_id: int) -> None:
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [Qt.DecorationRole])
