"""Query and correction tools: polygon, rectangle, brush, eraser, pan.

The canvas hands each mouse and key event to the active tool in image coordinates; a tool draws
its preview on the canvas and, when the gesture ends, turns it into exactly one undo step on the
current RegionDocument (undo.py). Hit tolerances are in screen pixels, whatever the zoom.

Polygon: click to add points, close by clicking the first point, double-clicking or Enter; Esc
cancels, Backspace drops the last point. On an existing outline: drag a vertex to move it,
double-click an edge to insert one, right-click (or hover + Delete) to delete one.
Rectangle: drag (Ctrl subtracts). Brush / eraser: drag to add / subtract a band of the brush's
size ([ and ] change it); with the brush, the right button erases.
Refine: click inside the object (left) or on the background (right), or drag a box around it; the
segment stage redraws the outline from the current one (in a worker: `refine_requested`), and its
answer is one undo step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QPainterPath

from pixret_desktop import geometry as G
from pixret_desktop.undo import RegionDocument

HIT_PX = 8.0  # how close (screen pixels) a click must be to a vertex or an edge
MAX_HANDLES = 3000  # beyond this many vertices (a big brushed region) handles are not drawn
THIN_ABOVE = 24  # a ring with more vertices gets handles only where its shape turns (G.key_vertices)
HANDLE_TOL_PX = 3.0  # ... within this many screen pixels: zoomed in, more of them
BRUSH_MIN, BRUSH_MAX = 1.0, 2000.0


def _xy(p: QPointF) -> tuple[float, float]:
    return (p.x(), p.y())


class Tool:
    name = ""
    cursor = Qt.CrossCursor
    pans = False

    def __init__(self, ctl: "ToolController"):
        self.ctl = ctl

    @property
    def doc(self) -> RegionDocument | None:
        return self.ctl.document

    def activate(self, canvas) -> None:
        self.refresh(canvas)

    def deactivate(self, canvas) -> None:
        self.reset(canvas)
        canvas.set_handles([])
        canvas.set_brush_cursor(None)

    def reset(self, canvas) -> None:
        canvas.set_preview_path(QPainterPath())

    def refresh(self, canvas) -> None:
        pass

    def press(self, canvas, pos, button, mods) -> None:
        pass

    def move(self, canvas, pos, buttons, mods) -> None:
        pass

    def release(self, canvas, pos, button, mods) -> None:
        pass

    def double_click(self, canvas, pos, mods) -> None:
        pass

    def leave(self, canvas) -> None:
        pass

    def key(self, canvas, key, mods) -> bool:
        return False


class PanTool(Tool):
    name = "pan"
    pans = True
    cursor = Qt.OpenHandCursor


class PolygonTool(Tool):
    name = "polygon"

    def __init__(self, ctl):
        super().__init__(ctl)
        self.points: list[tuple[float, float]] = []  # the polygon being drawn
        self.drag = None  # (pi, ri, vi, ring vertices now, ring vertices before, weights) while dragging
        self.drag_moved = False
        self.pinned: set[tuple[float, float]] = set()  # vertices inserted or moved by hand: always a handle
        self._keys_for = None  # (geometry, scale, pinned count) the handles below were found for
        self._keys: dict[tuple[int, int], np.ndarray] = {}
        self.hover: tuple[int, int, int] | None = None
        self.mouse: tuple[float, float] | None = None

    @property
    def drawing(self) -> bool:
        return bool(self.points)

    def reset(self, canvas) -> None:
        self.points, self.drag, self.hover = [], None, None
        self.pinned = set()
        super().reset(canvas)
        self.refresh(canvas)

    # -- finding things under the mouse --------------------------------------------------------

    def _tol(self, canvas) -> float:
        return HIT_PX * canvas.pixels_per_screen_pixel()

    def _rings(self):
        return G.rings(self.doc.geometry) if self.doc is not None else []

    def handles(self, canvas) -> dict[tuple[int, int], np.ndarray]:
        """Each ring's vertices that get a handle: all of a short ring's; of a long traced one (a brush
        stroke, a topo outline), those where its shape turns at this zoom, and any placed by hand. The
        other vertices stay as they are: a region nobody edits is saved exactly."""
        geom = self.doc.geometry if self.doc is not None else None
        scale = canvas.pixels_per_screen_pixel()
        seen = self._keys_for
        if seen is None or seen[0] is not geom or seen[1] != scale or seen[2] != len(self.pinned):
            keys = {}
            for pi, ri, v in self._rings():
                if len(v) <= THIN_ABOVE:
                    keys[(pi, ri)] = np.arange(len(v))
                    continue
                own = [i for i, p in enumerate(v) if (round(p[0], 3), round(p[1], 3)) in self.pinned]
                keys[(pi, ri)] = np.union1d(G.key_vertices(v, HANDLE_TOL_PX * scale), own).astype(int)
            self._keys_for, self._keys = (geom, scale, len(self.pinned)), keys
        return self._keys

    def vertex_at(self, canvas, pos):
        tol, best = self._tol(canvas), None
        x, y = _xy(pos)
        keys = self.handles(canvas)
        for pi, ri, v in self._rings():
            idx = keys.get((pi, ri), np.arange(len(v)))
            if len(idx) == 0:
                continue
            d = np.hypot(v[idx, 0] - x, v[idx, 1] - y)
            k = int(np.argmin(d))
            if d[k] <= tol and (best is None or d[k] < best[0]):
                best = (float(d[k]), pi, ri, int(idx[k]))
        return None if best is None else best[1:]

    def _neighbours(self, canvas, pi, ri, vi) -> tuple[int, int]:
        """The handles before and after vertex vi on its ring (the stretch an edit of vi may change)."""
        idx = [int(i) for i in self.handles(canvas).get((pi, ri), [])]
        if vi not in idx or len(idx) < 3:
            n = next(len(v) for p, r, v in self._rings() if (p, r) == (pi, ri))
            return (vi - 1) % n, (vi + 1) % n
        k = idx.index(vi)
        return idx[k - 1], idx[(k + 1) % len(idx)]

    def edge_at(self, canvas, pos):
        """(pi, ri, index of the edge's first vertex, the nearest point on it) within tolerance."""
        tol, best = self._tol(canvas), None
        p = np.array(_xy(pos))
        for pi, ri, v in self._rings():
            a, b = v, np.roll(v, -1, axis=0)
            ab = b - a
            t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
            q = a + t[:, None] * ab
            d = np.hypot(*(q - p).T)
            i = int(np.argmin(d))
            if d[i] <= tol and (best is None or d[i] < best[0]):
                best = (float(d[i]), pi, ri, i, tuple(q[i]))
        return None if best is None else best[1:]

    # -- drawing ---------------------------------------------------------------------------------

    def refresh(self, canvas) -> None:
        if self.drawing:
            pts = self.points + ([self.mouse] if self.mouse else [])
            canvas.set_preview_path(G.polyline_path(pts))
            canvas.set_handles(self.points, first=self.points[0])
            return
        if self.drag is not None:
            pi, ri, vi, ring, _before, _weights = self.drag
            idx = [int(i) for i in self.handles(canvas).get((pi, ri), range(len(ring)))]
            canvas.set_preview_path(G.polyline_path([tuple(p) for p in ring], closed=True))
            canvas.set_handles([tuple(ring[i]) for i in idx], highlight=idx.index(vi) if vi in idx else None)
            return
        canvas.set_preview_path(QPainterPath())
        keys = self.handles(canvas) if self.doc is not None else {}
        pts, highlight, n = [], None, 0
        for pi, ri, v in self._rings():
            idx = keys.get((pi, ri), np.arange(len(v)))
            if self.hover is not None and self.hover[:2] == (pi, ri) and self.hover[2] in idx:
                highlight = n + int(np.flatnonzero(idx == self.hover[2])[0])
            pts.extend(map(tuple, v[idx]))
            n += len(idx)
        canvas.set_handles(pts if n <= MAX_HANDLES else [], highlight=highlight)

    def close(self, canvas) -> bool:
        if len(self.points) < 3 or self.doc is None:
            return False
        poly = G.polygon(self.points)
        self.points = []
        self.mouse = None
        if not poly.is_empty:
            self.doc.edit("Add polygon", shapely.union(self.doc.geometry, poly), poly)
        self.refresh(canvas)
        return True

    def press(self, canvas, pos, button, mods) -> None:
        if self.doc is None:
            return
        if button == Qt.RightButton:
            if self.drawing:
                self.points.pop()
            else:
                hit = self.vertex_at(canvas, pos)
                if hit is not None:
                    self.delete_vertex(*hit, canvas=canvas)
            self.refresh(canvas)
            return
        if button != Qt.LeftButton:
            return
        if self.drawing:
            first = self.points[0]
            if len(self.points) >= 3 and math.dist(first, _xy(pos)) <= self._tol(canvas):
                self.close(canvas)
                return
            self.points.append(_xy(pos))
            self.refresh(canvas)
            return
        hit = self.vertex_at(canvas, pos)
        if hit is not None:
            pi, ri, vi = hit
            ring = next(v for p, r, v in self._rings() if (p, r) == (pi, ri)).copy()
            weights = _falloff(ring, vi, *self._neighbours(canvas, pi, ri, vi))
            self.drag, self.drag_moved = (pi, ri, vi, ring.copy(), ring, weights), False
            self.refresh(canvas)
            return
        if self.edge_at(canvas, pos) is not None:
            return  # a double-click inserts a vertex here; a single click does nothing
        self.points = [_xy(pos)]
        self.mouse = _xy(pos)
        self.refresh(canvas)

    def move(self, canvas, pos, buttons, mods) -> None:
        self.mouse = _xy(pos)
        if self.drag is not None:
            self._drag_to(pos)
            self.drag_moved = True
            self.refresh(canvas)
        elif self.drawing:
            self.refresh(canvas)
        else:
            hover = self.vertex_at(canvas, pos) if self.doc is not None else None
            if hover != self.hover:
                self.hover = hover
                self.refresh(canvas)

    def release(self, canvas, pos, button, mods) -> None:
        if button == Qt.LeftButton and self.drag is not None:
            if self.drag_moved:
                self._drag_to(pos)
            pi, ri, vi, ring, _before, _weights = self.drag
            self.drag = None
            if self.drag_moved:
                self.pinned.add((round(float(ring[vi][0]), 3), round(float(ring[vi][1]), 3)))
                new, old, newpoly = G.with_ring(self.doc.geometry, pi, ri, ring)
                self.doc.edit("Move vertex", new, old, newpoly)
            self.refresh(canvas)

    def _drag_to(self, pos) -> None:
        """The dragged handle goes to pos; the vertices between it and the handles beside it follow,
        less the farther along the outline they are (a traced outline bends, it does not spike)."""
        pi, ri, vi, ring, before, weights = self.drag
        ring[:] = before + weights[:, None] * (np.array(_xy(pos)) - before[vi])

    def double_click(self, canvas, pos, mods) -> None:
        if self.doc is None:
            return
        if self.drawing:
            self.close(canvas)
            return
        hit = self.edge_at(canvas, pos)
        if hit is None or self.vertex_at(canvas, pos) is not None:
            return
        pi, ri, i, q = hit
        ring = next(v for p, r, v in self._rings() if (p, r) == (pi, ri))
        ring = np.insert(ring, i + 1, q, axis=0)
        self.pinned.add((round(float(q[0]), 3), round(float(q[1]), 3)))  # a handle, on a long outline too
        new, old, newpoly = G.with_ring(self.doc.geometry, pi, ri, ring)
        self.doc.edit("Insert vertex", new, old, newpoly)
        self.refresh(canvas)

    def delete_vertex(self, pi, ri, vi, canvas=None) -> None:
        """Remove a vertex; on a long outline, the whole stretch between the handles beside it (that
        stretch becomes straight: what the handle stood for goes)."""
        ring = next(v for p, r, v in self._rings() if (p, r) == (pi, ri))
        n = len(ring)
        a, b = self._neighbours(canvas, pi, ri, vi) if canvas is not None else ((vi - 1) % n, (vi + 1) % n)
        gone = [(a + k) % n for k in range(1, (b - a) % n)]  # strictly between a and b, vi among them
        ring = np.delete(ring, gone, axis=0)
        new, old, newpoly = G.with_ring(self.doc.geometry, pi, ri, ring)
        self.doc.edit("Delete vertex", new, old, newpoly)
        self.hover = None

    def leave(self, canvas) -> None:
        self.mouse = None
        if self.drawing:
            self.refresh(canvas)

    def key(self, canvas, key, mods) -> bool:
        if key in (Qt.Key_Return, Qt.Key_Enter) and self.drawing:
            self.close(canvas)
            return True
        if key == Qt.Key_Escape and (self.drawing or self.drag is not None):
            self.reset(canvas)
            return True
        if key == Qt.Key_Backspace and self.drawing:
            self.points.pop()
            self.refresh(canvas)
            return True
        if key == Qt.Key_Delete:
            if self.drawing:
                self.points.pop()
            elif self.hover is not None:
                self.delete_vertex(*self.hover, canvas=canvas)
            else:
                return False
            self.refresh(canvas)
            return True
        return False


def _falloff(ring: np.ndarray, vi: int, a: int, b: int) -> np.ndarray:
    """How much each vertex follows a drag of vertex vi: 1 at vi, falling along the outline to 0 at
    the handles a (before) and b (after), 0 beyond them."""
    n = len(ring)
    w = np.zeros(n)
    w[vi] = 1.0
    for start, end, rising in ((a, vi, True), (vi, b, False)):
        stretch = [(start + k) % n for k in range((end - start) % n + 1)]
        if len(stretch) < 3:
            continue
        steps = np.hypot(*np.diff(ring[stretch], axis=0).T)
        along = np.cumsum(steps)[:-1] / max(float(steps.sum()), 1e-12)
        w[stretch[1:-1]] = along if rising else 1.0 - along
    return w


class RectangleTool(Tool):
    name = "rectangle"

    def __init__(self, ctl):
        super().__init__(ctl)
        self.start = None
        self.subtract = False

    def reset(self, canvas) -> None:
        self.start = None
        super().reset(canvas)

    def press(self, canvas, pos, button, mods) -> None:
        if button == Qt.LeftButton and self.doc is not None:
            self.start = _xy(pos)
            self.subtract = bool(mods & Qt.ControlModifier)

    def move(self, canvas, pos, buttons, mods) -> None:
        if self.start is not None:
            path = G.geometry_to_path(G.rectangle(*self.start, *_xy(pos)))
            canvas.set_preview_path(path, subtract=self.subtract, filled=True)

    def release(self, canvas, pos, button, mods) -> None:
        if button != Qt.LeftButton or self.start is None:
            return
        rect = G.rectangle(*self.start, *_xy(pos))
        self.start = None
        canvas.set_preview_path(QPainterPath())
        x0, y0, x1, y1 = rect.bounds
        if x1 - x0 < 1 or y1 - y0 < 1:
            return
        if self.subtract:
            self.doc.edit("Subtract rectangle", self.doc.geometry.difference(rect), rect)
        else:
            self.doc.edit("Add rectangle", shapely.union(self.doc.geometry, rect), rect)

    def key(self, canvas, key, mods) -> bool:
        if key == Qt.Key_Escape and self.start is not None:
            self.reset(canvas)
            return True
        return False


class BrushTool(Tool):
    name = "brush"
    subtract = False
    cursor = Qt.BlankCursor

    def __init__(self, ctl):
        super().__init__(ctl)
        self.points: list[tuple[float, float]] | None = None
        self.stroke_subtract = self.subtract

    def reset(self, canvas) -> None:
        self.points = None
        super().reset(canvas)

    def _preview(self, canvas) -> None:
        path = G.polyline_path(self.points)
        if len(self.points) == 1:  # a dab: a zero-length line still draws a round cap
            path.lineTo(QPointF(self.points[0][0] + 1e-3, self.points[0][1]))
        canvas.set_preview_path(path, subtract=self.stroke_subtract, width=2 * self.ctl.brush_radius)

    def press(self, canvas, pos, button, mods) -> None:
        if self.doc is None or button not in (Qt.LeftButton, Qt.RightButton):
            return
        self.stroke_subtract = self.subtract != (button == Qt.RightButton)
        self.points = [_xy(pos)]
        self._preview(canvas)

    def move(self, canvas, pos, buttons, mods) -> None:
        canvas.set_brush_cursor(pos, self.ctl.brush_radius, subtract=self.subtract)
        if self.points is None:
            return
        p = _xy(pos)
        if math.dist(p, self.points[-1]) >= max(0.5, self.ctl.brush_radius * 0.15):
            self.points.append(p)
            self._preview(canvas)

    def release(self, canvas, pos, button, mods) -> None:
        if self.points is None:
            return
        p = _xy(pos)
        if math.dist(p, self.points[-1]) > 0:
            self.points.append(p)
        band = G.stroke(self.points, self.ctl.brush_radius)
        self.points = None
        canvas.set_preview_path(QPainterPath())
        if self.stroke_subtract:
            self.doc.edit("Erase stroke", self.doc.geometry.difference(band), band)
        else:
            self.doc.edit("Brush stroke", shapely.union(self.doc.geometry, band), band)

    def leave(self, canvas) -> None:
        canvas.set_brush_cursor(None)

    def refresh(self, canvas) -> None:
        pass


class EraserTool(BrushTool):
    name = "eraser"
    subtract = True


@dataclass(frozen=True, eq=False)
class RefineRequest:
    """What the refine tool asks for: the outline of `document` redrawn from `geometry` (its outline
    when asked) with every click of the session (x, y) and the box, if one was dragged."""

    document: RegionDocument
    geometry: object  # shapely geometry
    inside: tuple
    outside: tuple
    box: tuple | None


class RefineTool(Tool):
    """Clicks (left: on the object, right: on the background) and boxes for the segment stage.

    The clicks of a session all count: each request carries them all, until the outline is changed
    by anything else than a refinement (another tool, undo), which starts a new session. One
    request at a time: clicks made while one runs go with the next."""

    name = "refine"
    DOT_PX = 5.0  # click markers' size on screen

    def __init__(self, ctl):
        super().__init__(ctl)
        self.start = None  # (x, y, button) of a press
        self.inside: list[tuple[float, float]] = []
        self.outside: list[tuple[float, float]] = []
        self.box: tuple | None = None
        self.clicks_doc: RegionDocument | None = None  # the document the clicks were made on ...
        self.after = None  # ... and its outline after the last refinement (the session holds while it stays)
        self.pending: RefineRequest | None = None
        self.unsent = False  # clicks made while a request runs

    def _in_session(self) -> bool:
        doc = self.doc
        return (doc is not None and doc is self.clicks_doc
                and (self.pending is not None or doc.geometry.equals(self.after)))

    def reset(self, canvas) -> None:
        self.start = None
        super().reset(canvas)
        self.refresh(canvas)

    def refresh(self, canvas) -> None:
        path = QPainterPath()
        if self._in_session():
            r = self.DOT_PX * canvas.pixels_per_screen_pixel()
            for x, y in self.inside:
                path.addEllipse(QPointF(x, y), r, r)
            for x, y in self.outside:  # a cross: background
                path.moveTo(x - r, y - r)
                path.lineTo(x + r, y + r)
                path.moveTo(x - r, y + r)
                path.lineTo(x + r, y - r)
            if self.box is not None:
                path.addPath(G.geometry_to_path(G.rectangle(*self.box)))
        canvas.set_preview_path(path)

    def _dragged(self, canvas, pos) -> bool:
        return math.dist(self.start[:2], _xy(pos)) > HIT_PX * canvas.pixels_per_screen_pixel()

    def press(self, canvas, pos, button, mods) -> None:
        if self.doc is not None and button in (Qt.LeftButton, Qt.RightButton):
            self.start = (*_xy(pos), button)

    def move(self, canvas, pos, buttons, mods) -> None:
        if self.start is not None and self.start[2] == Qt.LeftButton and self._dragged(canvas, pos):
            canvas.set_preview_path(G.geometry_to_path(G.rectangle(*self.start[:2], *_xy(pos))), filled=True)

    def release(self, canvas, pos, button, mods) -> None:
        if self.start is None or button != self.start[2] or self.doc is None:
            return
        x0, y0 = self.start[:2]
        dragged = self._dragged(canvas, pos)
        self.start = None
        if not self._in_session():
            self.inside, self.outside, self.box = [], [], None
            self.clicks_doc, self.after = self.doc, self.doc.geometry
        if button == Qt.LeftButton and dragged:
            x1, y1 = _xy(pos)
            self.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        elif button == Qt.LeftButton:
            self.inside.append((x0, y0))
        else:
            self.outside.append((x0, y0))
        self.refresh(canvas)
        self.send()

    def send(self) -> None:
        if self.pending is not None:
            self.unsent = True
            return
        self.unsent = False
        self.pending = RefineRequest(self.doc, self.doc.geometry, tuple(self.inside), tuple(self.outside), self.box)
        self.ctl.refine_requested.emit(self.pending)

    def answered(self, request: RefineRequest, geometry) -> None:
        """The request's outline, or None (it failed or was dropped); clicks that waited go next."""
        if request is not self.pending:
            return
        self.pending = None
        self.after = geometry if geometry is not None else request.geometry
        if self.unsent and self._in_session():
            self.send()
        self.refresh(self.ctl.canvas)

    def key(self, canvas, key, mods) -> bool:
        if key == Qt.Key_Escape and self._in_session() and (self.inside or self.outside or self.box):
            self.clicks_doc = None  # forget the clicks: the next one starts from the outline as it is
            self.refresh(canvas)
            return True
        return False


class ToolController(QObject):
    """The active tool, the brush size, and the RegionDocument the tools edit."""

    tool_changed = Signal(str)
    brush_size_changed = Signal(float)  # diameter in image pixels
    document_changed = Signal(object)
    edited = Signal()  # the document on the canvas changed (an edit, undo or redo)
    refine_requested = Signal(object)  # RefineRequest: answer it with refined()

    TOOLS = ("polygon", "rectangle", "brush", "eraser", "refine", "pan")

    def __init__(self, canvas, parent=None):
        super().__init__(parent)
        self.canvas = canvas
        self.document: RegionDocument | None = None
        self.brush_radius = 12.0
        self.tools = {t.name: t(self) for t in (PolygonTool, RectangleTool, BrushTool, EraserTool, RefineTool,
                                                PanTool)}
        self.tool = self.tools["polygon"]
        canvas.set_tool(self.tool)

    # -- document --------------------------------------------------------------------------------

    def set_document(self, doc: RegionDocument | None) -> None:
        if self.document is not None:
            try:
                self.document.changed.disconnect(self._document_edited)
            except (RuntimeError, TypeError):
                pass
        self.tool.reset(self.canvas)
        self.document = doc
        if doc is not None:
            doc.changed.connect(self._document_edited)
        self._document_edited()
        self.document_changed.emit(doc)

    def _document_edited(self) -> None:
        doc = self.document
        self.canvas.set_region_path(G.geometry_to_path(doc.geometry) if doc is not None else QPainterPath())
        self.tool.refresh(self.canvas)
        self.edited.emit()

    # -- tools -------------------------------------------------------------------------------------

    def set_tool(self, name: str) -> None:
        if name not in self.tools or self.tools[name] is self.tool:
            return
        self.tool = self.tools[name]
        self.canvas.set_tool(self.tool)
        self.tool_changed.emit(name)

    @property
    def tool_name(self) -> str:
        return self.tool.name

    def set_brush_size(self, diameter: float) -> None:
        self.brush_radius = min(BRUSH_MAX, max(BRUSH_MIN, float(diameter))) / 2.0
        self.brush_size_changed.emit(self.brush_radius * 2)

    def grow_brush(self) -> None:
        self.set_brush_size(self.brush_radius * 2 * 1.25)

    def shrink_brush(self) -> None:
        self.set_brush_size(self.brush_radius * 2 / 1.25)

    def refined(self, request: RefineRequest, geometry, text: str = "Refine outline") -> bool:
        """The answer to a refine request: one undo step turning the outline into `geometry`, unless
        the outline changed since it was asked (the answer is then dropped). None: it failed."""
        applied = False
        doc = request.document
        if geometry is not None and doc.geometry.equals(request.geometry):
            applied = doc.edit(text, geometry, doc.geometry, geometry)
        self.tools["refine"].answered(request, geometry if applied else None)
        return applied

    def clear(self) -> None:
        if self.document is not None and not self.document.is_empty:
            self.tool.reset(self.canvas)
            self.document.edit("Clear region", shapely.Polygon(), self.document.geometry)

    def cancel_gesture(self) -> None:
        self.tool.reset(self.canvas)
