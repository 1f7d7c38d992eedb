"""Remembered objects in the window: the Objects dock (counts, views, rename, forget, search again)
and recall in the normal search flow, on the generated collection with the real engine."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QMessageBox, QToolButton

import engine.annotate.objects as objects
import engine.annotate.review as review
from engine.base.regions import Region
from engine.base.types import Query
from engine.pipeline import search
from engine.project import Project
from pixret_desktop.models import StatusTextRole
from tests.gui.conftest import WAIT_MS, click_image
from tests.gui.test_review_flow import click_row, draw_polygon, open_in_grid


def open_and_show(qtbot, ctl, folder: Path) -> None:
    """Open a project; wait for its last search, its images and its objects to be listed."""
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        ctl.open_project(folder)
    qtbot.waitUntil(lambda: ctl.images.total == 13 and ctl.results.query_id is not None, timeout=WAIT_MS)


def tree_row(qtbot, tree, index) -> None:
    tree.scrollTo(index)
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, tree.visualRect(index).center())


def button_for(panel, action) -> QToolButton:
    return next(b for b in panel.findChildren(QToolButton) if b.defaultAction() is action)


def object_named(ctl, name: str):
    return next(o for o in ctl.objects.objects if o.name == name)


@pytest.fixture
def searched_project(collection, tmp_path):
    """A project with one search for object1 from its first view, nothing decided yet."""
    p = Project.create(tmp_path / "project")
    p.index_folder(collection.root)
    rel, poly = collection.query("object1")
    result = search(p, Query(p.image_id(rel), Region.from_polygons([poly])), top_k=10)
    review.save_search(p, result)
    p.close()
    return tmp_path / "project", result


def test_accepting_a_hit_makes_an_object_listed_with_its_counts_and_views(qtbot, make_window, searched_project):
    folder, result = searched_project
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    panel, model = window.objects_panel, ctl.objects
    assert model.rowCount() == 0 and panel.empty_label.isVisible()

    # accept the first hit, reject the second: one object, named after the query image
    first, second = ctl.results.hit_at(0), ctl.results.hit_at(1)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        click_row(qtbot, window.results, 0)
    with qtbot.waitSignals([ctl.review_ctl.decision_saved, ctl.canvas_ctl.image_loaded], timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_A)  # (and the second hit opens)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=WAIT_MS)
    assert not panel.empty_label.isVisible()
    obj = model.objects[0]
    assert obj.name == "view01"
    assert [(v.image, v.kind) for v in obj.reviewed] == [(first.image_id, "accepted")]
    assert ctl.review_ctl.current.image_id == second.image_id
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_R)
    qtbot.waitUntil(lambda: model.objects[0].negatives == (second.image_id,), timeout=WAIT_MS)

    # the row shows the catalog's own counts
    row = model.index(0, 0)
    expected = objects.load_object(ctl.project, obj.id)
    assert row.data(Qt.DisplayRole) == "view01"
    assert row.data(StatusTextRole) == expected.status
    assert expected.status.startswith("1 reviewed · 1 rejected")

    # expanded: the query outline and the accepted view; clicking the accepted view shows it
    window.objects_panel.tree.expand(row)
    kinds = [model.index(r, 0, row).data(Qt.DisplayRole) for r in range(model.rowCount(row))]
    assert kinds == ["query · view01.jpg", f"accepted · {Path(first.path).name}"]
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS,
                          check_params_cb=lambda i: i == first.image_id):
        tree_row(qtbot, panel.tree, model.index(1, 0, row))
    assert ctl.mode == "view" and ctl.canvas_ctl.image_id == first.image_id
    assert window.canvas_title.text().startswith("Object view01 — accepted view")
    assert not window.canvas.region_path().isEmpty()  # the view's region, drawn

    # the list stays in step: undoing the rejection takes the image off the negatives
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        click_row(qtbot, window.results, 1)
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_U)
    qtbot.waitUntil(lambda: model.objects[0].negatives == (), timeout=WAIT_MS)


@pytest.fixture
def two_objects(collection, tmp_path):
    """Two searches (object1, object2), each with its first hit accepted: objects 'view01', 'view01 (2)'."""
    p = Project.create(tmp_path / "project")
    p.index_folder(collection.root)
    for name in ("object1", "object2"):
        rel, poly = collection.query(name)
        result = search(p, Query(p.image_id(rel), Region.from_polygons([poly])), top_k=10)
        qid = review.save_search(p, result)
        review.set_decision(p, qid, result.hits[0].image_id, "accepted", result.hits[0].region)
    p.close()
    return tmp_path / "project"


def test_rename_with_f2_and_a_taken_name_is_refused_with_an_error(qtbot, make_window, two_objects):
    window, ctl = make_window()
    open_and_show(qtbot, ctl, two_objects)
    tree, model = window.objects_panel.tree, ctl.objects
    assert sorted(o.name for o in model.objects) == ["view01", "view01 (2)"]

    # F2 on the row, type, Enter: renamed in the catalog and in the list
    target = object_named(ctl, "view01")
    tree_row(qtbot, tree, model.index_of(target.id))
    qtbot.keyClick(tree, Qt.Key_F2)
    editor = tree.viewport().findChild(QLineEdit)
    assert editor is not None and editor.text() == "view01"
    editor.selectAll()
    qtbot.keyClicks(editor, "poster")
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        qtbot.keyClick(editor, Qt.Key_Return)
    assert object_named(ctl, "poster").id == target.id
    assert objects.load_object(ctl.project, target.id).name == "poster"

    # double-click the other one and give it the same name: an error, both names kept
    other = object_named(ctl, "view01 (2)")
    index = model.index_of(other.id)
    tree_row(qtbot, tree, index)  # a double-click's first press selects it
    qtbot.mouseDClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, tree.visualRect(index).center())
    editor = tree.viewport().findChild(QLineEdit)
    assert editor is not None and editor.isVisible() and editor.text() == "view01 (2)"
    editor.selectAll()
    qtbot.keyClicks(editor, "poster")
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.waitUntil(lambda: any(isinstance(d, QMessageBox) for d in ctl.dialogs), timeout=WAIT_MS)
    box = next(d for d in ctl.dialogs if isinstance(d, QMessageBox))
    assert box.windowTitle() == "The object was not renamed" and "already exists" in box.text()
    box.close()
    assert objects.load_object(ctl.project, other.id).name == "view01 (2)"
    assert sorted(o.name for o in model.objects) == ["poster", "view01 (2)"]

    # Forget asks first; Cancel keeps the object, Forget removes it (its searches stay)
    tree_row(qtbot, tree, model.index_of(other.id))
    qtbot.mouseClick(button_for(window.objects_panel, window.objects_panel.act_forget), Qt.LeftButton)
    box = ctl.objects_ctl.confirm
    assert box is not None and box.isVisible() and "view01 (2)" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.Cancel), Qt.LeftButton)
    assert model.rowCount() == 2
    qtbot.mouseClick(button_for(window.objects_panel, window.objects_panel.act_forget), Qt.LeftButton)
    forget = next(b for b in ctl.objects_ctl.confirm.buttons() if b.text() == "Forget")
    with qtbot.waitSignal(ctl.objects_ctl.forgotten, timeout=WAIT_MS):
        qtbot.mouseClick(forget, Qt.LeftButton)
    qtbot.waitUntil(lambda: [o.name for o in model.objects] == ["poster"], timeout=WAIT_MS)
    assert len(review.list_queries(ctl.project)) == 2


def test_search_again_runs_in_a_worker_with_the_reviewed_views_first(qtbot, make_window, reviewed_project):
    folder, first_search = reviewed_project
    accepted, rejected = first_search.hits[0].image_id, first_search.hits[1].image_id
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    panel, model = window.objects_panel, ctl.objects
    obj = model.objects[0]
    tree_row(qtbot, panel.tree, model.index_of(obj.id))

    partials = []
    ctl.search_ctl.partial.connect(partials.append)
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(button_for(panel, panel.act_search_again), Qt.LeftButton)
        assert ctl.search_ctl.worker in ctl.job_rows  # a progress bar with Cancel while it runs
        assert window.act_cancel_search.isEnabled()
    result, query_id = blocker.args
    assert ctl.search_ctl.last_thread_ident not in (None, threading.get_ident())

    # the reviewed view came at once, then the whole ranking: reviewed first, the rejection last
    assert [(h.image_id, h.stage) for h in partials[0].hits] == [(accepted, "reviewed")]
    assert result.object_id == obj.id
    assert (result.hits[0].image_id, result.hits[0].stage) == (accepted, "reviewed")
    assert (result.hits[-1].image_id, result.hits[-1].stage) == (rejected, "rejected")
    assert ctl.results.query_id == query_id and ctl.results.hit_at(0).image_id == accepted
    assert ctl.results.status_of(accepted) == "accepted" and ctl.results.status_of(rejected) == "rejected"
    assert window.recall_banner.isVisible() and "Searching again: view01" in window.recall_banner.label.text()
    assert not window.recall_banner.new_button.isVisible()

    # its hits can be reviewed, and the decision joins the object
    row = next(r for r in range(ctl.results.rowCount()) if ctl.results.hit_at(r).stage == "verified")
    new = ctl.results.hit_at(row)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        click_row(qtbot, window.results, row)
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_A)
    qtbot.waitUntil(lambda: len(model.objects[0].reviewed) == 2, timeout=WAIT_MS)
    assert {int(v.image) for v in model.objects[0].reviewed} == {accepted, new.image_id}
    assert objects.object_of_query(ctl.project, query_id) == obj.id


def test_redrawing_an_annotated_view_recalls_the_object(qtbot, make_window, collection, reviewed_project):
    folder, first_search = reviewed_project
    accepted = first_search.hits[0]
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    obj = ctl.objects.objects[0]

    # outline the accepted region again on its own image, and search
    open_in_grid(qtbot, window, ctl, accepted.path)
    qtbot.keyClick(window.canvas, Qt.Key_P)
    outline = list(accepted.region.geometry.exterior.coords)[:-1]
    draw_polygon(qtbot, window.canvas, outline)
    recalls = []
    ctl.search_ctl.recalled.connect(recalls.append)
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.search_button, Qt.LeftButton)
    result, _query_id = blocker.args

    # seen before: said in the banner and the status bar, and the results are the object's
    assert [(r.object.id, r.how) for r in recalls] == [(obj.id, "same view")]
    banner = window.recall_banner
    assert banner.isVisible() and banner.new_button.isVisible()
    assert banner.label.text() == "Seen before: view01 — 1 reviewed image; searching only what is new"
    assert window.statusBar().currentMessage().startswith("Seen before: view01")
    assert result.object_id == obj.id
    assert (result.hits[0].image_id, result.hits[0].stage) == (accepted.image_id, "reviewed")
    assert result.hits[-1].stage == "rejected"
    assert ctl.results.status_of(accepted.image_id) == "accepted"

    # "Search as new object": the same region, searched plainly
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(banner.new_button, Qt.LeftButton)
    plain, _ = blocker.args
    assert plain.object_id is None and plain.query.region == result.query.region
    assert not any(h.stage in ("reviewed", "rejected") for h in plain.hits)
    assert not banner.isVisible() and len(recalls) == 1


def test_clicking_the_canvas_after_a_view_draws_nothing_on_it(qtbot, make_window, reviewed_project):
    """A view is shown, not edited: the polygon tool has no document there."""
    folder, first_search = reviewed_project
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    model, tree = ctl.objects, window.objects_panel.tree
    row = model.index(0, 0)
    tree.expand(row)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        tree_row(qtbot, tree, model.index(1, 0, row))
    qtbot.keyClick(window.canvas, Qt.Key_P)
    shown = window.canvas.region_path().boundingRect()
    click_image(qtbot, window.canvas, 100, 100)
    assert ctl.canvas_ctl.document is None and ctl.mode == "view"
    assert window.canvas.region_path().boundingRect() == shown
    assert not window.act_accept.isEnabled()
