"""Thumbnail grids: the collection browser and the ranked results, drawn by one delegate.

A cell: the thumbnail (or a placeholder while it loads), the region outline when the row has one,
a coloured status band and badge, and one or two caption lines.
"""
from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QTransform
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from pixret_desktop import status as S
from pixret_desktop.geometry import region_to_path
from pixret_desktop.models import CaptionRole, RegionRole, SizeRole, StatusRole

PAD = 6


class ThumbnailDelegate(QStyledItemDelegate):
    def __init__(self, thumb_size: int = 160, captions: int = 1, parent=None):
        super().__init__(parent)
        self.thumb_size = thumb_size
        self.captions = captions
        self._paths: dict[int, QPainterPath] = {}  # id(region) -> path (regions are immutable)

    @property
    def box_height(self) -> int:
        return self.thumb_size * 3 // 4  # a 4:3 box: most photos are landscape

    def sizeHint(self, option, index) -> QSize:
        line = option.fontMetrics.height()
        return QSize(self.thumb_size + 2 * PAD, self.box_height + 2 * PAD + self.captions * line + 2)

    def _outline(self, region) -> QPainterPath:
        key = id(region)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) > 2000:
                self._paths.clear()
            path = region_to_path(region)
            self._paths[key] = path
        return path

    def paint(self, painter: QPainter, option, index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        r = option.rect
        selected = bool(option.state & QStyle.State_Selected)
        status = index.data(StatusRole) or "unreviewed"
        color = S.color(status)
        bg = option.palette.highlight().color() if selected else option.palette.base().color()
        painter.fillRect(r.adjusted(1, 1, -1, -1), bg.lighter(110) if selected else bg)

        box = QRect(r.x() + PAD, r.y() + PAD, self.thumb_size, self.box_height)
        pm = index.data(Qt.DecorationRole)
        target = box
        if pm is not None and not pm.isNull():
            sz = pm.deviceIndependentSize().toSize().scaled(box.size(), Qt.KeepAspectRatio)
            target = QRect(box.x() + (box.width() - sz.width()) // 2,
                           box.y() + (box.height() - sz.height()) // 2, sz.width(), sz.height())
            painter.drawPixmap(target, pm)
            region = index.data(RegionRole)
            size = index.data(SizeRole)
            if region is not None and not region.is_empty and size:
                w, h = size
                t = QTransform()
                t.translate(target.x(), target.y())
                t.scale(target.width() / w, target.height() / h)
                t.translate(0.5, 0.5)  # pixel centres at integer region coordinates
                painter.setPen(QPen(QColor(255, 230, 0), 2))
                painter.setBrush(QColor(255, 230, 0, 50))
                painter.drawPath(t.map(self._outline(region)))
        else:
            painter.fillRect(box, QColor(70, 70, 74))
            painter.setPen(QColor(160, 160, 160))
            painter.drawText(box, Qt.AlignCenter, "unreadable" if status == "unreadable" else "…")

        # status: a band along the bottom of the thumbnail and a badge in its corner
        if status != "unreviewed":
            painter.fillRect(QRect(target.x(), target.bottom() - 4, target.width(), 5), color)
            badge = QRectF(target.right() - 22, target.y() + 3, 19, 19)
            painter.setPen(Qt.NoPen)
            painter.setBrush(color)
            painter.drawEllipse(badge)
            painter.setPen(QColor(255, 255, 255))
            f = QFont(option.font)
            f.setBold(True)
            painter.setFont(f)
            painter.drawText(badge, Qt.AlignCenter, S.BADGES.get(status, ""))
            painter.setFont(option.font)
        if selected:
            painter.setPen(QPen(option.palette.highlight().color().darker(120), 2))
            painter.setBrush(Qt.NoBrush)
            painter.drawRect(r.adjusted(1, 1, -2, -2))

        fm = option.fontMetrics
        y = box.bottom() + 3
        text_color = option.palette.highlightedText().color() if selected else option.palette.text().color()
        painter.setPen(text_color)
        name = fm.elidedText(index.data(Qt.DisplayRole) or "", Qt.ElideMiddle, r.width() - 2 * PAD)
        painter.drawText(QRect(r.x() + PAD, y, r.width() - 2 * PAD, fm.height()), Qt.AlignHCenter, name)
        if self.captions > 1:
            cap = index.data(CaptionRole) or ""
            painter.setPen(color if status != "unreviewed" else text_color)
            painter.drawText(QRect(r.x() + PAD, y + fm.height(), r.width() - 2 * PAD, fm.height()),
                             Qt.AlignHCenter, fm.elidedText(cap, Qt.ElideRight, r.width() - 2 * PAD))
        painter.restore()


class ThumbnailGrid(QListView):
    """A QListView in icon mode, tuned for many rows (uniform sizes, batched layout)."""

    def __init__(self, thumb_size: int = 160, captions: int = 1, parent=None):
        super().__init__(parent)
        self.delegate = ThumbnailDelegate(thumb_size, captions, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.IconMode)
        self.setResizeMode(QListView.Adjust)
        self.setMovement(QListView.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.Batched)
        self.setBatchSize(500)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setSpacing(2)
        self.setWordWrap(False)
        self.set_thumb_size(thumb_size)

    def set_thumb_size(self, size: int) -> None:
        self.delegate.thumb_size = size
        line = self.fontMetrics().height()
        self.setGridSize(QSize(size + 2 * PAD + 4,
                               self.delegate.box_height + 2 * PAD + self.delegate.captions * line + 6))
        self.scheduleDelayedItemsLayout()
