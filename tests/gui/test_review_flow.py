"""End to end, through the real window: project, import, query outline, search, review, undo,
close, reopen, and everything is still there."""
from __future__ import annotations

from PySide6.QtCore import Qt

import engine.annotate.review as review
from engine.base.regions import Region
from engine.project import Project
from pixret_desktop.views.dialogs import FailuresDialog
from tests.gui.conftest import WAIT_MS, click_image, drag_image, open_project_with_images


def click_row(qtbot, view, row: int) -> None:
    index = view.model().index(row)
    view.scrollTo(index)
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, view.visualRect(index).center())


def grid_row(ctl, rel: str) -> int:
    return next(r for r in range(ctl.images.rowCount()) if ctl.images.info_at(r).path == rel)


def open_in_grid(qtbot, window, ctl, rel: str) -> int:
    image_id = ctl.images.info_at(grid_row(ctl, rel)).id
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS,
                          check_params_cb=lambda i: i == image_id):
        click_row(qtbot, window.grid, grid_row(ctl, rel))
    return image_id


def draw_polygon(qtbot, canvas, points) -> None:
    for x, y in points:
        click_image(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key_Return)


def test_outline_search_review_undo_and_reopen(qtbot, make_window, collection, tmp_path):
    window, ctl = make_window()
    project_dir = tmp_path / "project"
    open_project_with_images(qtbot, ctl, project_dir, collection.root)

    # the unreadable file is listed with its reason
    assert [p for p, _ in ctl.last_report.failed] == ["other/broken.jpg"]
    dialog = next(d for d in ctl.dialogs if isinstance(d, FailuresDialog))
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 0).text() == "other/broken.jpg"
    dialog.close()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    assert ctl.images.total == 13

    # outline the object on its first view with clicks on the canvas
    rel, truth = collection.query("object1")
    query_id = open_in_grid(qtbot, window, ctl, rel)
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key_P)
    draw_polygon(qtbot, canvas, truth)
    drawn = ctl.search_ctl.documents[query_id].region
    assert drawn.iou(Region.from_polygons([truth]), 480, 640) > 0.97

    # search; the other views of the object come first
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.search_button, Qt.LeftButton)
    result, search_id = blocker.args
    positives = {r for r, _ in collection.views["object1"][1:]}
    assert {h.path for h in result.hits[:3]} == positives
    assert all(h.region is not None for h in result.hits[:3])
    assert ctl.results.rowCount() == len(result.hits)

    # accept the first hit with A: the next hit opens by itself
    first, second = ctl.results.hit_at(0), ctl.results.hit_at(1)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        click_row(qtbot, window.results, 0)
    with qtbot.waitSignals([ctl.review_ctl.decision_saved, ctl.canvas_ctl.image_loaded], timeout=WAIT_MS):
        qtbot.keyClick(canvas, Qt.Key_A)
    assert ctl.results.status_of(first.image_id) == "accepted"
    assert ctl.review_ctl.current.image_id == second.image_id

    # back (Left) and forth (Right), then paint a correction with the brush, undo it, redo it, accept it
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        qtbot.keyClick(canvas, Qt.Key_Left)
    assert ctl.review_ctl.current.image_id == first.image_id
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        qtbot.keyClick(canvas, Qt.Key_Right)
    assert ctl.review_ctl.current.image_id == second.image_id
    qtbot.keyClick(canvas, Qt.Key_B)
    x0, y0, x1, y1 = second.region.bounds
    stroke = [(x0 - 30, y0 - 30), (x0 + 10, y0 - 30), (x0 + 40, y0 - 20)]
    predicted_area = second.region.area
    doc = ctl.review_ctl.documents[second.image_id]
    drag_image(canvas, stroke)
    corrected = doc.region
    assert corrected.area > predicted_area + 100
    assert doc.stack.count() == 1  # one stroke, one step
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    assert doc.region.iou(second.region, 480, 640) > 0.999
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert doc.region.iou(corrected, 480, 640) > 0.999
    third = ctl.results.hit_at(2)
    with qtbot.waitSignals([ctl.review_ctl.decision_saved, ctl.canvas_ctl.image_loaded], timeout=WAIT_MS):
        qtbot.keyClick(canvas, Qt.Key_A)
    assert ctl.results.status_of(second.image_id) == "corrected"

    # reject the third, which the correction's accept opened
    assert ctl.review_ctl.current.image_id == third.image_id
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(canvas, Qt.Key_R)

    # the browser shows the statuses too
    assert ctl.images.review_status(ctl.images.info(first.image_id)) == "accepted"
    assert ctl.images.review_status(ctl.images.info(second.image_id)) == "corrected"
    window.close()

    # reopen: same search, same decisions, same corrected outline
    window2, ctl2 = make_window()
    with qtbot.waitSignal(ctl2.review_ctl.result_shown, timeout=WAIT_MS,
                          check_params_cb=lambda q: q == search_id):
        ctl2.open_project(project_dir)
    assert [h.image_id for h in ctl2.results.hits()] == [h.image_id for h in result.hits]
    assert ctl2.results.status_of(first.image_id) == "accepted"
    assert ctl2.results.status_of(second.image_id) == "corrected"
    assert ctl2.results.status_of(third.image_id) == "rejected"
    assert ctl2.results.decisions[second.image_id].region.iou(corrected, 480, 640) > 0.999
    qtbot.waitUntil(lambda: ctl2.images.total == 13, timeout=WAIT_MS)
    assert ctl2.images.review_status(ctl2.images.info(second.image_id)) == "corrected"
    # and the catalog itself says so
    project = Project.open(project_dir)
    try:
        d = review.decisions(project, search_id)
        assert {i: x.kind for i, x in d.items()} == {first.image_id: "accepted", second.image_id: "corrected",
                                                    third.image_id: "rejected"}
        assert d[second.image_id].region.iou(corrected, 480, 640) > 0.999
    finally:
        project.close()
