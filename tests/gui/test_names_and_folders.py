"""Names that tell and choosers that help: folder choosers start where the last one ended, take a
typed path and make a new folder; each project keeps its own collection filter; progress bars
count in units with the time left; long names never widen a dock."""
from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from pixret_desktop.views import dialogs
from pixret_desktop.views.dialogs import JobRow
from tests.gui.conftest import WAIT_MS, open_project_with_images


def choose(qtbot, dlg, typed: str) -> None:
    dlg.line_edit.clear()
    qtbot.keyClicks(dlg.line_edit, typed)
    assert dlg.line_edit.text() == typed and dlg.choose_button.isEnabled()  # no trailing slash needed
    qtbot.mouseClick(dlg.choose_button, Qt.LeftButton)


def test_the_folder_chooser_starts_at_home_makes_a_typed_new_folder_and_remembers(qtbot, make_window, tmp_path,
                                                                                  monkeypatch):
    home = tmp_path / "home"
    (home / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    window, ctl = make_window()

    window.act_new_project.trigger()
    dlg = ctl.folder_dialog
    assert dlg.isVisible() and dlg.shown == home  # not the working directory
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        choose(qtbot, dlg, "work/new project")  # does not exist yet
    made = home / "work" / "new project"
    assert made.is_dir() and ctl.project.folder == made

    # the next chooser opens on it: Choose with nothing typed takes it again
    window.act_open_project.trigger()
    dlg = ctl.folder_dialog
    assert dlg.shown == made and dlg.typed_path() == made
    # an existing folder typed without a trailing slash is taken as typed
    dlg.show_folder(home)
    assert dlg.shown == home
    ctl.close_project()
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        choose(qtbot, dlg, "~/work/new project")
    assert ctl.project.folder == made


def test_importing_photos_from_a_folder_that_does_not_exist_is_refused_in_words(qtbot, make_window, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "p")
    window.act_import_folder.trigger()
    dlg = ctl.folder_dialog
    choose(qtbot, dlg, "no such photos")
    assert dlg.isVisible() and not (tmp_path / "no such photos").exists()  # photos are never made up
    assert "There is no folder" in dlg.refusal.text()
    dlg.refusal.close()
    dlg.reject()


def test_each_project_keeps_its_own_collection_filter(qtbot, make_window, collection, tmp_path):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "a", collection.root)
    qtbot.keyClicks(window.name_filter, "object1")
    assert ctl.images.rowCount() == 4 and window.grid_count.text() == "4 of 13 images"
    assert window.search_button.isEnabled()
    open_project_with_images(qtbot, ctl, tmp_path / "b")  # a new, empty project
    assert window.name_filter.text() == "" and window.grid_count.text() == "0 images"
    assert not window.search_button.isEnabled() and "Import photos first" in window.search_button.toolTip()
    open_project_with_images(qtbot, ctl, tmp_path / "a")
    assert window.name_filter.text() == "object1" and ctl.images.rowCount() == 4


def test_long_names_do_not_widen_the_docks(qtbot, make_window, collection, tmp_path):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "p", collection.root)
    QApplication.processEvents()
    before = (window.collection_dock.width(), window.review_dock.width())
    long_name = "a very long folder name that goes on and on/" * 6 + "photo.jpg"
    assert window.fontMetrics().horizontalAdvance(long_name) > window.width()  # the premise: it cannot fit
    window.set_canvas_header(f"Hit #1 of 100 — {long_name} — 12 inliers", "Accepted", None, "A accept")
    window.query_label.setText(f"Query: {long_name}, outline of 1234 px²")
    window.results_summary.setText(long_name)
    QApplication.processEvents()
    assert (window.collection_dock.width(), window.review_dock.width()) == before
    assert window.canvas_title.toolTip().startswith("Hit #1 of 100 — a very long")  # the whole text
    assert window.canvas_title.toolTip().endswith("12 inliers")


def test_progress_counts_in_units_with_the_time_left(qtbot, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(dialogs.time, "monotonic", lambda: now[0])
    row = JobRow("Importing photos")
    qtbot.addWidget(row)
    row.set_progress(0, 1517, "graph")
    assert row.bar.format() == "0 of 1517 images" and "linking similar photos" in row.text
    now[0] += 10
    row.set_progress(136, 1517, "graph")
    # 136 images in 10 s: 1381 left take about 100 s
    assert row.bar.format() == "136 of 1517 images · about 2 min left"
    row.set_progress(3, 0, "features")
    assert row.bar.maximum() == 0  # unknown total: a busy bar
