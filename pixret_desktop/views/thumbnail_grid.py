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
from pixret_desktop.models import CaptionRole, DividerRole, RegionRole, SizeRole, StatusRole, UnverifiedRole

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
        self.draw_thumbnail(painter, option, index, box, status)
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
            painter.setPen(color if status != "unreviewed" and not selected else text_color)
            painter.drawText(QRect(r.x() + PAD, y + fm.height(), r.width() - 2 * PAD, fm.height()),
                             Qt.AlignHCenter, fm.elidedText(cap, Qt.ElideRight, r.width() - 2 * PAD))
        painter.restore()

    def draw_thumbnail(self, painter: QPainter, option, index, box: QRect, status: str, dim: bool = False) -> None:
        """The thumbnail in its box with the row's outline, and the status band and badge."""
        color = S.color(status)
        pm = index.data(Qt.DecorationRole)
        target = box
        if pm is not None and not pm.isNull():
            sz = pm.deviceIndependentSize().toSize().scaled(box.size(), Qt.KeepAspectRatio)
            target = QRect(box.x() + (box.width() - sz.width()) // 2,
                           box.y() + (box.height() - sz.height()) // 2, sz.width(), sz.height())
            painter.setOpacity(0.55 if dim else 1.0)
            painter.drawPixmap(target, pm)
            painter.setOpacity(1.0)
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


class ResultDelegate(ThumbnailDelegate):
    """A ranked result as a list row: the thumbnail, then "#rank folder/file", the score in the
    method's units, and the review status as a coloured tag (readable on the selection colour too).
    A row can carry a divider above it (DividerRole: the unverified candidates start here)."""

    LINES = 3

    def divider_height(self, option) -> int:
        return 2 * option.fontMetrics.height() + 6

    def sizeHint(self, option, index) -> QSize:
        h = max(self.box_height, self.LINES * option.fontMetrics.height() + 6) + 2 * PAD
        if index.data(DividerRole):
            h += self.divider_height(option)
        return QSize(self.thumb_size + 2 * PAD + 160, h)

    def paint(self, painter: QPainter, option, index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        r = QRect(option.rect)
        fm = option.fontMetrics
        divider = index.data(DividerRole)
        if divider:
            dh = self.divider_height(option)
            band = QRect(r.x(), r.y(), r.width(), dh)
            painter.fillRect(band, option.palette.window().color().darker(108))
            painter.setPen(QPen(option.palette.mid().color(), 2))
            painter.drawLine(band.left() + PAD, band.top() + 2, band.right() - PAD, band.top() + 2)
            f = QFont(option.font)
            f.setBold(True)
            painter.setFont(f)
            painter.setPen(option.palette.text().color())
            painter.drawText(band.adjusted(PAD, 4, -PAD, 0), Qt.AlignLeft | Qt.AlignVCenter | Qt.TextWordWrap,
                             divider)
            painter.setFont(option.font)
            r.setTop(r.top() + dh)
        selected = bool(option.state & QStyle.State_Selected)
        status = index.data(StatusRole) or "unreviewed"
        unverified = bool(index.data(UnverifiedRole))
        bg = option.palette.highlight().color() if selected else option.palette.base().color()
        painter.fillRect(r.adjusted(0, 1, 0, -1), bg)
        box = QRect(r.x() + PAD, r.y() + PAD, self.thumb_size, self.box_height)
        self.draw_thumbnail(painter, option, index, box, status, dim=unverified and not selected)

        x = box.right() + PAD + 2
        w = r.right() - PAD - x
        line = fm.height()
        y = r.y() + PAD
        text = option.palette.highlightedText().color() if selected else option.palette.text().color()
        quiet = text if selected else option.palette.placeholderText().color()
        painter.setPen(text if not unverified else quiet)
        painter.drawText(QRect(x, y, w, line), Qt.AlignLeft | Qt.AlignVCenter,
                         fm.elidedText(index.data(Qt.DisplayRole) or "", Qt.ElideMiddle, w))
        painter.setPen(text if not unverified else quiet)
        painter.drawText(QRect(x, y + line + 2, w, line), Qt.AlignLeft | Qt.AlignVCenter,
                         fm.elidedText(index.data(CaptionRole) or "", Qt.ElideRight, w))
        if status != "unreviewed":  # a tag: white on the status colour, whatever the row's colour
            label = f"{S.BADGES.get(status, '')} {S.LABELS.get(status, status)}"
            tag = QRect(x, y + 2 * line + 6, fm.horizontalAdvance(label) + 12, line + 2)
            painter.setPen(Qt.NoPen)
            painter.setBrush(S.color(status))
            painter.drawRoundedRect(tag, 4, 4)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(tag, Qt.AlignCenter, label)
        if selected:
            painter.setPen(QPen(option.palette.highlight().color().darker(130), 2))
            painter.setBrush(Qt.NoBrush)
            painter.drawRect(r.adjusted(1, 1, -2, -2))
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


class ResultsList(QListView):
    """The ranked results, one row each (room for the whole path and the score's units)."""

    def __init__(self, thumb_size: int = 160, parent=None):
        super().__init__(parent)
        self.delegate = ResultDelegate(thumb_size, 1, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ListMode)
        self.setUniformItemSizes(False)  # a divider row is taller
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.verticalScrollBar().setSingleStep(24)
        self.setWordWrap(False)
        self.set_thumb_size(thumb_size)

    def set_thumb_size(self, size: int) -> None:
        self.delegate.thumb_size = min(size, 128)  # a list row: the text beside it needs the room
        self.scheduleDelayedItemsLayout()
