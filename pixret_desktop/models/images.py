"""The collection as a list model: one row per image, filtered by review status and file name.

All rows are held as small tuples (10,000 images are 10,000 tuples, not widgets); filtering is a
list comprehension on the GUI thread (a few ms for 10,000), the catalog query that fills the model
runs in a worker.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from pixret_desktop import status as S
from pixret_desktop.models import ImageIdRole, PathRole, RegionRole, SizeRole, StatusRole
from pixret_desktop.models.thumbnails import ThumbnailCache

FILTERS = ("all", "unreviewed", "accepted", "corrected", "rejected", "unreadable")


class ImageListModel(QAbstractListModel):
    def __init__(self, cache: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.cache = cache
        self.root: Path | None = None
        self._all: list = []  # ImageInfo
        self._status: dict[int, str] = {}  # image id -> review status (absent: unreviewed)
        self._rows: list = []  # the visible ImageInfo
        self._row_of: dict[int, int] = {}
        self.status_filter = "all"
        self.name_filter = ""
        cache.ready.connect(self._thumbnail_ready)

    # -- feeding -----------------------------------------------------------------------------------

    def set_images(self, root: Path | None, images: list, statuses: dict[int, str]) -> None:
        self.root = Path(root) if root else None
        self._all = list(images)
        self._status = dict(statuses)
        self._refilter()

    def clear(self) -> None:
        self.set_images(None, [], {})

    def set_filter(self, status: str | None = None, name: str | None = None) -> None:
        if status is not None:
            self.status_filter = status
        if name is not None:
            self.name_filter = name
        self._refilter()

    def review_status(self, info) -> str:
        if info.status in ("error", "missing"):
            return "unreadable"
        return self._status.get(info.id, "unreviewed")

    def _refilter(self) -> None:
        self.beginResetModel()
        rows = self._all
        f, text = self.status_filter, self.name_filter.strip().lower()
        if f != "all":
            rows = [i for i in rows if self.review_status(i) == f]
        if text:
            rows = [i for i in rows if text in i.path.lower()]
        self._rows = rows
        self._row_of = {info.id: r for r, info in enumerate(rows)}
        self.endResetModel()

    def set_status(self, image_id: int, status: str | None) -> None:
        """An image's review status changed (a decision was saved)."""
        if status in (None, "unreviewed"):
            self._status.pop(image_id, None)
        else:
            self._status[image_id] = status
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [StatusRole, Qt.ToolTipRole])

    def set_statuses(self, statuses: dict[int, str]) -> None:
        self._status = dict(statuses)
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1), [StatusRole])

    # -- reading -----------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._all)

    def info(self, image_id: int):
        r = self._row_of.get(image_id)
        if r is not None:
            return self._rows[r]
        return next((i for i in self._all if i.id == image_id), None)

    def info_at(self, row: int):
        return self._rows[row]

    def row_of(self, image_id: int) -> int | None:
        return self._row_of.get(image_id)

    def image_ids(self) -> list[int]:
        return [i.id for i in self._rows]

    def sizes(self) -> dict[int, tuple[int, int]]:
        return {i.id: (i.width, i.height) for i in self._all if i.width and i.height}

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        info = self._rows[index.row()]
        if role == Qt.DisplayRole:
            return info.path  # the delegate elides the middle: folder start and file name stay
        if role == Qt.DecorationRole:
            pm = self.cache.pixmap(info.id)
            if pm is None and self.root is not None and info.status not in ("error", "missing"):
                self.cache.request(info.id, self.root / info.path)
            return pm
        if role == ImageIdRole:
            return info.id
        if role == StatusRole:
            return self.review_status(info)
        if role == SizeRole:
            return (info.width, info.height) if info.width and info.height else None
        if role == PathRole:
            return info.path
        if role == RegionRole:
            return None
        if role == Qt.ToolTipRole:
            st = self.review_status(info)
            size = f"{info.width} × {info.height}" if info.width else "size unknown"
            where = str(self.root / info.path) if self.root is not None else info.path
            tip = f"{where}\n{size}\n{S.LABELS.get(st, st)}"
            if info.error:
                tip += f"\n{info.error}"
            return tip
        return None

    def _thumbnail_ready(self, image_id: int) -> None:
        r = self._row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [Qt.DecorationRole])
