"""The image canvas: a QGraphicsView whose scene units are the image's pixels.

Layout and drawing only. Zoom (wheel around the cursor, fit, 100%) and pan (middle drag,
space + drag) are view matters and live here; everything a tool does with a click is behaviour and
goes to the active tool (controllers/tools.py) as scene coordinates. Overlays the tools draw:
the region (filled, outlined), the vertices of editable polygons, a preview path (a polygon being
drawn, a rectangle being dragged, a brush stroke), and the brush cursor.

Scene coordinates are engine.base.regions coordinates: x right, y down, integer points at pixel centres.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
)

MIN_SCALE, MAX_SCALE = 0.01, 64.0
HANDLE_PX = 7  # vertex handle size on screen, whatever the zoom


class _Handles(QGraphicsItem):
    """All vertex handles as one item (a polygon with 1,000 vertices is one paint call, not 1,000 items)."""

    def __init__(self):
        super().__init__()
        self.points: list[QPointF] = []
        self.highlight: int | None = None
        self.first: QPointF | None = None  # the first point of a polygon being drawn (closing target)
        self._rect = QRectF()
        self.setZValue(30)

    def set(self, points, highlight=None, first=None):
        self.prepareGeometryChange()
        self.points = [QPointF(x, y) for x, y in points]
        self.highlight = highlight
        self.first = QPointF(*first) if first is not None else None
        if self.points or self.first is not None:
            xs = [p.x() for p in self.points] + ([self.first.x()] if self.first is not None else [])
            ys = [p.y() for p in self.points] + ([self.first.y()] if self.first is not None else [])
            self._rect = QRectF(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        else:
            self._rect = QRectF()
        self.update()

    def boundingRect(self) -> QRectF:
        views = self.scene().views() if self.scene() else []
        s = views[0].transform().m11() if views else 1.0
        pad = (HANDLE_PX * 2) / max(s, 1e-6)
        return self._rect.adjusted(-pad, -pad, pad, pad)

    def paint(self, painter: QPainter, option, widget=None):
        s = painter.worldTransform().m11() or 1.0
        h = HANDLE_PX / s
        painter.setPen(QPen(QColor(20, 20, 20), 1.0 / s))
        for i, p in enumerate(self.points):
            painter.setBrush(QColor(255, 80, 80) if i == self.highlight else QColor(255, 255, 255))
            painter.drawRect(QRectF(p.x() - h / 2, p.y() - h / 2, h, h))
        if self.first is not None:
            painter.setBrush(QColor(80, 220, 120))
            painter.drawEllipse(self.first, h * 0.9, h * 0.9)


class ImageCanvas(QGraphicsView):
    """Shows one image and the region being edited; forwards tool input in scene coordinates."""

    zoom_changed = Signal(float)  # the scale: screen pixels per image pixel
    cursor_moved = Signal(float, float)  # scene coordinates under the mouse

    REGION_FILL = QColor(0, 170, 255, 70)
    REGION_PEN = QColor(0, 140, 255)
    PREVIEW_ADD = QColor(255, 200, 0, 110)
    PREVIEW_SUB = QColor(255, 60, 60, 110)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setFrameShape(QFrame.NoFrame)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setRenderHints(QPainter.Antialiasing | QPainter.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.NoAnchor)  # zoom_by anchors at the cursor itself
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setBackgroundBrush(QColor(45, 45, 48))
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # pan by dragging (middle, space)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

        self._pixmap = QGraphicsPixmapItem()
        self._pixmap.setShapeMode(QGraphicsPixmapItem.BoundingRectShape)
        self._pixmap.setTransformationMode(Qt.SmoothTransformation)
        # engine.base.regions puts pixel centres on integer coordinates: pixel (c, r) covers
        # [c - 0.5, c + 0.5) x [r - 0.5, r + 0.5), so the image is drawn half a pixel up-left.
        self._pixmap.setOffset(-0.5, -0.5)
        self._scene.addItem(self._pixmap)
        self._region = QGraphicsPathItem()
        self._region.setZValue(10)
        self._scene.addItem(self._region)
        self._overlay = QGraphicsPathItem()  # e.g. a hit's predicted outline while correcting it
        self._overlay.setZValue(9)
        self._overlay.setPen(QPen(QColor(255, 255, 255, 160), 0, Qt.DashLine))
        self._scene.addItem(self._overlay)
        self._preview = QGraphicsPathItem()
        self._preview.setZValue(20)
        self._scene.addItem(self._preview)
        self._handles = _Handles()
        self._scene.addItem(self._handles)
        self._points = QGraphicsPathItem()  # evidence: matched feature positions
        self._points.setZValue(25)
        self._scene.addItem(self._points)
        self._brush = QGraphicsEllipseItem()
        self._brush.setZValue(40)
        self._brush.setVisible(False)
        self._scene.addItem(self._brush)
        self.set_region_style(self.REGION_PEN, self.REGION_FILL)

        self.tool = None  # the active tool (controllers/tools.py); gets press/move/release/double_click
        self._panning = False
        self._pan_last = None
        self._space_down = False
        self._fit_pending = True
        self.image_size: tuple[int, int] | None = None
        self.empty_text = "Open a project and pick an image"

    # -- content ---------------------------------------------------------------------------

    def set_image(self, image: QImage | None, *, keep_view: bool = False) -> None:
        if image is None or image.isNull():
            self._pixmap.setPixmap(QPixmap())
            self.image_size = None
            self.zoom_changed.emit(0.0)
            self._scene.setSceneRect(QRectF(0, 0, 1, 1))
            self.viewport().update()
            return
        self._pixmap.setPixmap(QPixmap.fromImage(image))
        size = (image.width(), image.height())
        same = size == self.image_size
        self.image_size = size
        w, h = size
        # room around the image so it can be panned past its edges
        self._scene.setSceneRect(QRectF(-w * 0.5, -h * 0.5, w * 2.0, h * 2.0))
        if not (keep_view and same):
            self._fit_pending = True  # keep fitting while the window settles, until the user zooms
            self.fit()

    def clear(self, text: str | None = None) -> None:
        if text is not None:
            self.empty_text = text
        self.set_image(None)
        self.set_region_path(QPainterPath())
        self.set_overlay_path(QPainterPath())
        self.set_preview_path(QPainterPath())
        self.set_handles([])

    def set_region_style(self, pen: QColor, fill: QColor) -> None:
        p = QPen(pen, 2)
        p.setCosmetic(True)
        p.setJoinStyle(Qt.RoundJoin)
        self._region.setPen(p)
        self._region.setBrush(QBrush(fill))

    def set_region_path(self, path: QPainterPath) -> None:
        self._region.setPath(path)

    def region_path(self) -> QPainterPath:
        return self._region.path()

    def set_overlay_path(self, path: QPainterPath) -> None:
        pen = QPen(QColor(255, 255, 255, 190), 1.5, Qt.DashLine)
        pen.setCosmetic(True)
        self._overlay.setPen(pen)
        self._overlay.setPath(path)

    def set_preview_path(self, path: QPainterPath, *, subtract: bool = False, filled: bool = False,
                         width: float | None = None) -> None:
        """What a tool is making: an outline, a filled shape, or a stroke `width` image pixels wide."""
        fill = self.PREVIEW_SUB if subtract else self.PREVIEW_ADD
        line = QColor(255, 80, 80) if subtract else QColor(255, 200, 0)
        if width is not None:  # a brush stroke: a translucent band with round ends
            pen = QPen(fill, max(width, 0.5), Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
            self._preview.setBrush(Qt.NoBrush)
        else:
            pen = QPen(line, 2)
            pen.setCosmetic(True)
            self._preview.setBrush(QBrush(fill) if filled else Qt.NoBrush)
        self._preview.setPen(pen)
        self._preview.setPath(path)

    def set_points(self, points) -> None:
        """Small markers at image points (a hit's inlier matches), or none."""
        path = QPainterPath()
        r = 3.0 / max(self.scale_factor, 1e-6)
        for x, y in points:
            path.addEllipse(QPointF(x, y), r, r)
        pen = QPen(QColor(255, 60, 200), 1.5)
        pen.setCosmetic(True)
        self._points.setPen(pen)
        self._points.setPath(path)
        self._point_xy = list(points)

    def set_handles(self, points, highlight: int | None = None, first=None) -> None:
        self._handles.set(points, highlight, first)

    def set_brush_cursor(self, pos: QPointF | None, radius: float = 0.0, *, subtract: bool = False) -> None:
        if pos is None:
            self._brush.setVisible(False)
            return
        pen = QPen(QColor(255, 80, 80) if subtract else QColor(255, 220, 0), 1.5)
        pen.setCosmetic(True)
        self._brush.setPen(pen)
        self._brush.setRect(QRectF(pos.x() - radius, pos.y() - radius, 2 * radius, 2 * radius))
        self._brush.setVisible(True)

    # -- zoom --------------------------------------------------------------------------------

    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def pixels_per_screen_pixel(self) -> float:
        """Image pixels per logical screen pixel: tools size their hit tolerance with it."""
        return 1.0 / max(self.scale_factor, 1e-9)

    def fit(self) -> None:
        if self.image_size is None:
            return
        w, h = self.image_size
        self.fitInView(QRectF(-0.5, -0.5, w, h), Qt.KeepAspectRatio)
        self._clamp_and_emit()

    def zoom_actual(self) -> None:
        """100 %: one image pixel per physical screen pixel (high-DPI screens show every pixel)."""
        dpr = self.devicePixelRatioF() or 1.0
        self.set_scale(1.0 / dpr)

    def set_scale(self, s: float, anchor: QPointF | None = None) -> None:
        """Zoom to scale s, keeping the scene point `anchor` (default: the view's centre) centred."""
        self._fit_pending = False
        s = min(MAX_SCALE, max(MIN_SCALE, s))
        center = anchor if anchor is not None else self.mapToScene(self.viewport().rect().center())
        self.setTransform(QTransform.fromScale(s, s))
        self.centerOn(center)
        self._clamp_and_emit()

    def zoom_by(self, factor: float, at: QPoint | None = None) -> None:
        """Zoom by a factor, keeping the image point under viewport position `at` where it is."""
        self._fit_pending = False
        s = self.scale_factor
        target = min(MAX_SCALE, max(MIN_SCALE, s * factor))
        if target == s:
            return
        at = at if at is not None else self.viewport().rect().center()
        fixed = self.mapToScene(at)
        self.setTransform(QTransform.fromScale(target, target))
        moved = self.mapFromScene(fixed) - at
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._clamp_and_emit()

    def _clamp_and_emit(self) -> None:
        s = self.scale_factor
        self.setRenderHint(QPainter.SmoothPixmapTransform, s < 2.0)  # crisp pixels when zoomed in
        self.zoom_changed.emit(s)
        self._handles.prepareGeometryChange()
        if getattr(self, "_point_xy", None):
            self.set_points(self._point_xy)  # keep the markers a few screen pixels wide

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            return
        self.zoom_by(1.0015 ** delta, event.position().toPoint())  # one notch (120) = x1.2
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_pending and self.image_size is not None:
            self.fit()

    # -- input -------------------------------------------------------------------------------

    def _pan_to(self, pos) -> None:
        d = pos - self._pan_last
        self._pan_last = pos
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - d.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() - d.y())

    def _wants_pan(self, event) -> bool:
        if event.button() == Qt.MiddleButton:
            return True
        if event.button() == Qt.LeftButton and (self._space_down or getattr(self.tool, "pans", False)):
            return True
        return False

    def mousePressEvent(self, event) -> None:
        self._fit_pending = False
        self.setFocus(Qt.MouseFocusReason)
        if self._wants_pan(event):
            self._panning, self._pan_last = True, event.position().toPoint()
            self.viewport().setCursor(Qt.ClosedHandCursor)
            event.accept()
            return
        if self.tool is not None and self.image_size is not None:
            self.tool.press(self, self.mapToScene(event.position().toPoint()), event.button(), event.modifiers())
            event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(pos.x(), pos.y())
        if self._panning:
            self._pan_to(event.position().toPoint())
            event.accept()
            return
        if self.tool is not None and self.image_size is not None:
            self.tool.move(self, pos, event.buttons(), event.modifiers())
            event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._panning and event.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._panning = False
            self._update_cursor()
            event.accept()
            return
        if self.tool is not None and self.image_size is not None:
            self.tool.release(self, self.mapToScene(event.position().toPoint()), event.button(),
                              event.modifiers())
            event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        if self.tool is not None and self.image_size is not None and event.button() == Qt.LeftButton \
                and not self._space_down:
            self.tool.double_click(self, self.mapToScene(event.position().toPoint()), event.modifiers())
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def leaveEvent(self, event) -> None:
        if self.tool is not None:
            self.tool.leave(self)
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self._update_cursor()
            event.accept()
            return
        if event.key() == Qt.Key_Space:
            event.accept()
            return
        if self.tool is not None and self.tool.key(self, event.key(), event.modifiers()):
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._panning = False
            self._update_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        self._space_down = False
        self._update_cursor()
        super().focusOutEvent(event)

    def _update_cursor(self) -> None:
        if self._space_down or getattr(self.tool, "pans", False):
            self.viewport().setCursor(Qt.OpenHandCursor)
        else:
            self.viewport().setCursor(getattr(self.tool, "cursor", Qt.CrossCursor))

    def set_tool(self, tool) -> None:
        if self.tool is not None:
            self.tool.deactivate(self)
        self.tool = tool
        self._update_cursor()
        if tool is not None:
            tool.activate(self)

    def drawForeground(self, painter: QPainter, rect) -> None:
        if self.image_size is None and self.empty_text:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.viewport().rect(), Qt.AlignCenter | Qt.TextWordWrap, self.empty_text)
            painter.restore()

    def scene_to_viewport(self, x: float, y: float):
        """Viewport coordinates of an image point (tests click through it)."""
        return self.mapFromScene(QPointF(x, y))
