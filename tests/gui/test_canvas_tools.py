"""The canvas and its tools, on their own: polygon, rectangle, brush, eraser, vertex editing,
undo/redo in small steps, zoom around the cursor, fit, 100 %, pan."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine.base.regions import Region
from pixret_desktop.controllers.tools import ToolController
from pixret_desktop.undo import RegionDocument, RegionEdit
from pixret_desktop.views.canvas import ImageCanvas
from tests.gui.conftest import click_image, drag_image, send_mouse, view_point

W, H = 640, 480


@pytest.fixture
def canvas(qtbot):
    c = ImageCanvas()
    qtbot.addWidget(c)
    c.resize(900, 700)
    c.show()
    qtbot.waitExposed(c)
    img = QImage(W, H, QImage.Format_RGB888)
    img.fill(QColor(90, 120, 150))
    c.set_image(img)
    c.zoom_actual()  # one image pixel per screen pixel: clicks land on exact image coordinates
    return c


@pytest.fixture
def tools(canvas):
    t = ToolController(canvas)
    t.set_document(RegionDocument(1))
    return t


def square(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def test_polygon_closes_by_clicking_the_first_point(qtbot, canvas, tools):
    pts = square(100, 100, 300, 260)
    for x, y in pts + [pts[0]]:
        click_image(qtbot, canvas, x, y)
    doc = tools.document
    assert doc.region.iou(Region.from_polygons([pts]), H, W) > 0.98
    assert doc.stack.count() == 1


def test_polygon_closes_with_enter_or_double_click_and_esc_cancels(qtbot, canvas, tools):
    doc = tools.document
    for x, y in square(50, 50, 150, 150):
        click_image(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    assert doc.is_empty and doc.stack.count() == 0
    for x, y in square(50, 50, 150, 150):
        click_image(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key_Return)
    assert doc.region.area == pytest.approx(100 * 100, rel=0.05)
    for x, y in [(300, 300), (400, 300), (400, 400)]:
        click_image(qtbot, canvas, x, y)
    qtbot.mouseDClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, view_point(canvas, 300, 400))
    assert doc.stack.count() == 2
    assert doc.region.area > 100 * 100 + 0.4 * 100 * 100


def test_dragging_a_vertex_is_one_step_and_undo_restores_it(qtbot, canvas, tools):
    doc = tools.document
    pts = square(100, 100, 300, 300)
    for x, y in pts:
        click_image(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key_Return)
    before = doc.region
    drag_image(canvas, [(300, 300), (320, 330), (350, 360), (360, 380)])
    assert doc.stack.count() == 2
    assert doc.region.contains_points(np.array([[355.0, 370.0]]))[0]
    doc.stack.undo()
    assert doc.region.iou(before, H, W) > 0.999
    doc.stack.redo()
    assert doc.region.contains_points(np.array([[355.0, 370.0]]))[0]


def test_double_click_on_an_edge_inserts_a_vertex_and_right_click_deletes_one(qtbot, canvas, tools):
    doc = tools.document
    for x, y in square(100, 100, 300, 300):
        click_image(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key_Return)
    n_vertices = lambda: len(doc.region.polygons()[0])  # noqa: E731
    assert n_vertices() == 4
    drawn = doc.region
    qtbot.mouseDClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, view_point(canvas, 200, 100))
    assert n_vertices() == 5 and doc.stack.count() == 2
    drag_image(canvas, [(200, 100), (200, 60)])  # the new vertex can be dragged
    assert doc.region.contains_points(np.array([[200.0, 70.0]]))[0]
    click_image(qtbot, canvas, 100, 300, Qt.RightButton)
    assert n_vertices() == 4
    assert not doc.region.contains_points(np.array([[110.0, 290.0]]))[0]
    for _ in range(3):
        doc.stack.undo()
    assert n_vertices() == 4 and doc.region == drawn


def test_rectangle_adds_and_ctrl_rectangle_subtracts(qtbot, canvas, tools):
    tools.set_tool("rectangle")
    doc = tools.document
    drag_image(canvas, [(100, 100), (200, 150), (300, 300)])
    assert doc.region.area == pytest.approx(200 * 200, rel=1e-6)
    vp = canvas.viewport()
    send_mouse(vp, QEvent.MouseButtonPress, view_point(canvas, 150, 150), modifiers=Qt.ControlModifier)
    send_mouse(vp, QEvent.MouseMove, view_point(canvas, 250, 250), Qt.NoButton, buttons=Qt.LeftButton,
               modifiers=Qt.ControlModifier)
    send_mouse(vp, QEvent.MouseButtonRelease, view_point(canvas, 250, 250), buttons=Qt.NoButton,
               modifiers=Qt.ControlModifier)
    assert doc.region.area == pytest.approx(200 * 200 - 100 * 100, rel=0.01)
    assert doc.stack.count() == 2


def test_a_brush_stroke_is_one_step_that_stores_only_what_it_touched(qtbot, canvas, tools):
    doc = tools.document
    tools.set_tool("rectangle")
    drag_image(canvas, [(0, 0), (639, 479)])  # a big region
    big = doc.region.area
    tools.set_tool("brush")
    tools.set_brush_size(20)
    stroke = [(650, 20 + 10 * i) for i in range(20)]  # a 190 px band just right of the region
    drag_image(canvas, stroke)
    assert doc.stack.count() == 2
    step = doc.stack.command(1)
    assert isinstance(step, RegionEdit)
    x0, y0, x1, y1 = step.box
    assert x0 >= 650 - 10 - 2 and x1 <= 650 + 10 + 2 and y0 >= 20 - 12 and y1 <= 210 + 12
    assert step.before.area + step.after.area < 0.05 * big  # not a copy of the region
    added = doc.region.area - big
    assert added == pytest.approx(190 * 20 + math.pi * 10 ** 2, rel=0.02)
    doc.stack.undo()
    assert doc.region.area == pytest.approx(big, rel=1e-9)
    doc.stack.redo()
    assert doc.region.area - big == pytest.approx(added, rel=1e-9)


def test_eraser_and_the_right_button_of_the_brush_subtract(qtbot, canvas, tools):
    doc = tools.document
    tools.set_tool("rectangle")
    drag_image(canvas, [(100, 100), (400, 400)])
    area = doc.region.area
    tools.set_tool("eraser")
    tools.set_brush_size(30)
    drag_image(canvas, [(150, 250), (350, 250)])
    after_eraser = doc.region.area
    assert area - after_eraser == pytest.approx(200 * 30 + math.pi * 15 ** 2, rel=0.05)
    tools.set_tool("brush")
    drag_image(canvas, [(250, 150), (250, 350)], button=Qt.RightButton)
    assert doc.region.area < after_eraser - 100 * 30
    assert doc.stack.count() == 3


def test_clear_is_one_undoable_step(qtbot, canvas, tools):
    doc = tools.document
    tools.set_tool("rectangle")
    drag_image(canvas, [(10, 10), (100, 100)])
    tools.clear()
    assert doc.is_empty
    doc.stack.undo()
    assert doc.region.area == pytest.approx(90 * 90)


def test_wheel_zooms_around_the_cursor(qtbot, canvas):
    target = QPointF(500, 120)
    at = view_point(canvas, target.x(), target.y())
    s0 = canvas.scale_factor
    ev = QWheelEvent(QPointF(at), QPointF(canvas.viewport().mapToGlobal(at)), QPoint(0, 0), QPoint(0, 120),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    for _ in range(3):
        QApplication.sendEvent(canvas.viewport(), ev)
    assert canvas.scale_factor == pytest.approx(s0 * 1.0015 ** 360, rel=1e-3)
    still = canvas.mapToScene(at)
    assert abs(still.x() - target.x()) < 2 / canvas.scale_factor + 1 and abs(still.y() - target.y()) < 2


def test_fit_and_actual_size(qtbot, canvas):
    canvas.zoom_actual()
    assert canvas.scale_factor == pytest.approx(1 / canvas.devicePixelRatioF())
    canvas.fit()
    vr = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert vr.contains(QPointF(0, 0)) and vr.contains(QPointF(W - 1, H - 1))
    assert vr.width() < W * 1.6 and vr.height() < H * 1.6  # fills the view in one direction


def test_space_drag_and_middle_drag_pan_without_drawing(qtbot, canvas, tools):
    canvas.zoom_actual()
    canvas.zoom_by(3)
    doc = tools.document
    h0 = canvas.horizontalScrollBar().value()
    qtbot.keyPress(canvas, Qt.Key_Space)
    drag_image(canvas, [(300, 200), (280, 200), (250, 200)])
    qtbot.keyRelease(canvas, Qt.Key_Space)
    h1 = canvas.horizontalScrollBar().value()
    assert h1 != h0 and doc.is_empty and not tools.tools["polygon"].drawing
    vp = canvas.viewport()
    p0 = view_point(canvas, 300, 200)
    send_mouse(vp, QEvent.MouseButtonPress, p0, Qt.MiddleButton)
    send_mouse(vp, QEvent.MouseMove, p0 + QPoint(0, 40), Qt.NoButton, buttons=Qt.MiddleButton)
    send_mouse(vp, QEvent.MouseButtonRelease, p0 + QPoint(0, 40), Qt.MiddleButton, buttons=Qt.NoButton)
    assert doc.is_empty and not tools.tools["polygon"].drawing
    assert canvas.verticalScrollBar().value() != 0 or canvas.horizontalScrollBar().value() != h1


def test_a_long_traced_outline_gets_handles_where_it_turns_and_an_edit_keeps_the_rest_exact(qtbot, canvas):
    # a traced outline (as a brush stroke or a topo region has): 400 vertices on a wobbly circle
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = 120 + 6 * np.sin(5 * t)
    ring = np.c_[320 + r * np.cos(t), 240 + r * np.sin(t)].round(2)
    traced = Region.from_polygons([ring.tolist()])
    tools = ToolController(canvas)
    doc = RegionDocument(1, traced)
    tools.set_document(doc)
    shown = canvas._handles.points
    assert 8 <= len(shown) <= 80  # not 400 handles
    exact = {(round(p.x(), 2), round(p.y(), 2)) for p in shown} <= {tuple(p) for p in ring}
    assert exact  # the handles are vertices of the outline, not a redrawn one

    # drag one handle outwards: it moves there, the stretch to its neighbour handles follows smoothly,
    # every vertex beyond them stays exactly where it was; one undo step
    handle = (shown[0].x(), shown[0].y())
    target = (handle[0] + 30, handle[1])
    drag_image(canvas, [handle, (handle[0] + 15, handle[1]), target])
    assert doc.stack.count() == 1
    after = np.asarray(doc.region.polygons()[0])
    assert len(after) == len(ring)  # nothing simplified away by the edit
    assert np.isclose(after, target, atol=0.01).all(axis=1).any()
    unchanged = np.isclose(after[:, None, :], ring[None, :, :], atol=1e-6).all(axis=2).any(axis=1)
    assert 0.6 * len(ring) < unchanged.sum() < len(ring)
    doc.stack.undo()
    assert doc.region == traced  # untouched, the exact region is what is kept

    # a right-click on a handle removes the stretch it stood for
    click_image(qtbot, canvas, *handle, Qt.RightButton)
    assert 3 <= len(doc.region.polygons()[0]) < len(ring) - 2
