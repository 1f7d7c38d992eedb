"""Engine work runs in workers: off the GUI thread, with progress, Cancel, partial results, and
errors that leave the window usable."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

import engine.annotate.review as review
import engine.pipeline as pipeline
from engine.base.errors import PixretError
from engine.base.regions import Region
from engine.project import Project
from tests.gui.conftest import WAIT_MS, open_project_with_images


@pytest.fixture(scope="module")
def project_dir(collection, tmp_path_factory):
    """The test collection, indexed once for this module (each test opens a copy)."""
    folder = tmp_path_factory.mktemp("workers") / "project"
    p = Project.create(folder)
    p.index_folder(collection.root)
    p.close()
    return folder


@pytest.fixture
def opened(qtbot, make_window, project_dir, collection, tmp_path):
    """A window on a copy of the project (so a decision in one test makes no object for the next
    one's search to recall), the first view of object1 on the canvas with its true outline."""
    shutil.copytree(project_dir, tmp_path / "project")
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "project")
    rel, poly = collection.query("object1")
    image_id = next(i.id for i in ctl.images._all if i.path == rel)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        ctl.open_query_image(image_id)
    doc = ctl.search_ctl.document(image_id)
    doc.set_geometry(Region.from_polygons([poly]).geometry)
    return window, ctl


def test_engine_calls_run_off_the_gui_thread(qtbot, opened, monkeypatch, collection):
    window, ctl = opened
    gui = threading.get_ident()
    seen = {}
    real_search, real_index, real_decide = pipeline.search, Project.index_folder, review.set_decision

    def search(*a, **k):
        seen["search"] = threading.get_ident()
        return real_search(*a, **k)

    def index_folder(self, *a, **k):
        seen["index"] = threading.get_ident()
        return real_index(self, *a, **k)

    def set_decision(*a, **k):
        seen["decision"] = threading.get_ident()
        return real_decide(*a, **k)

    monkeypatch.setattr(pipeline, "search", search)
    monkeypatch.setattr(Project, "index_folder", index_folder)
    monkeypatch.setattr(review, "set_decision", set_decision)
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS):
        window.act_search.trigger()
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        ctl.review_ctl.select_row(0)
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        window.act_accept.trigger()
    with qtbot.waitSignal(ctl.project_ctl.import_finished, timeout=WAIT_MS):
        ctl.import_folder(collection.root)  # nothing new: a quick incremental pass
    assert set(seen) == {"search", "index", "decision"}
    assert gui not in seen.values()


def test_shortlist_shows_first_and_a_newer_search_cancels_the_older(qtbot, opened, monkeypatch):
    window, ctl = opened
    release = threading.Event()
    tokens = []

    def slow_search(project, query, *, method, top_k, progress, cancel, on_partial, context=None):
        tokens.append(cancel)
        hits = tuple(pipeline.Hit(i, project.image_path(i), 1.0 / (k + 1), None, {}, "shortlist")
                     for k, i in enumerate(project.indexed_images()[:5]))
        on_partial(pipeline.SearchResult(query, method, hits))
        k = 0
        while not release.is_set():  # only a cancel or the test's release ends it
            cancel.raise_if_set()
            progress(k % 400, 400, "verifying")
            k += 1
            time.sleep(0.005)
        return pipeline.SearchResult(query, method, hits[:3])

    monkeypatch.setattr(pipeline, "search", slow_search)
    with qtbot.waitSignal(ctl.search_ctl.partial, timeout=WAIT_MS):
        window.act_search.trigger()
    assert ctl.results.partial and ctl.results.rowCount() == 5
    assert "verifying" in window.results_summary.text()
    assert len(ctl.job_rows) == 1  # a progress bar with Cancel in the status bar
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as done:
        window.act_search.trigger()  # supersedes the first
        qtbot.waitUntil(lambda: len(tokens) == 2, timeout=WAIT_MS)
        assert tokens[0].is_set and not tokens[1].is_set
        release.set()
    result, query_id = done.args
    assert len(result.hits) == 3 and ctl.results.rowCount() == 3 and not ctl.results.partial
    qtbot.waitUntil(lambda: not ctl.job_rows, timeout=WAIT_MS)
    assert [q.id for q in review.list_queries(ctl.project)][0] == query_id  # only the newer was saved


def test_cancel_button_stops_a_search(qtbot, opened, monkeypatch):
    window, ctl = opened

    def endless(project, query, *, method, top_k, progress, cancel, on_partial, context=None):
        while True:
            cancel.raise_if_set()
            progress(1, 2, "verifying")
            time.sleep(0.005)

    monkeypatch.setattr(pipeline, "search", endless)
    window.act_search.trigger()
    qtbot.waitUntil(lambda: len(ctl.job_rows) == 1, timeout=WAIT_MS)
    row = next(iter(ctl.job_rows.values()))
    qtbot.waitUntil(lambda: row.bar.maximum() == 2, timeout=WAIT_MS)  # engine progress reached the bar
    with qtbot.waitSignal(ctl.search_ctl.cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(row.cancel, Qt.LeftButton)
    qtbot.waitUntil(lambda: not ctl.job_rows, timeout=WAIT_MS)
    assert not ctl.search_ctl.running


def test_an_engine_error_shows_a_message_and_the_window_stays_usable(qtbot, opened, monkeypatch):
    window, ctl = opened

    def broken(*a, **k):
        raise PixretError("the index is corrupt: index/meta.json")

    monkeypatch.setattr(pipeline, "search", broken)
    with qtbot.waitSignal(ctl.search_ctl.failed, timeout=WAIT_MS):
        window.act_search.trigger()
    box = next(d for d in ctl.dialogs if isinstance(d, QMessageBox))
    assert "index is corrupt" in box.text() and box.isVisible()
    assert not box.isModal() or box.windowModality() != Qt.ApplicationModal
    box.close()
    monkeypatch.undo()
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS):  # and searching works again
        window.act_search.trigger()


def test_import_shows_progress_can_be_cancelled_and_keeps_the_gui_responsive(qtbot, opened, monkeypatch,
                                                                          collection):
    window, ctl = opened
    started = threading.Event()

    def slow_index(self, root=None, *, progress, cancel, **k):
        started.set()
        for k in range(10_000_000):  # until cancelled, however fast this machine gets through it
            cancel.raise_if_set()
            sum(i * i for i in range(2000))  # pure-Python work holding the GIL in slices,
            time.sleep(0)  # then letting it go, as the real extraction does inside OpenCV (without
            # this, every GIL hand-over waits out the 5 ms switch interval: a convoy, not a stall)
            progress(k % 10_000, 10_000, "features")
        raise AssertionError("not cancelled")

    monkeypatch.setattr(Project, "index_folder", slow_index)
    late = []
    last = [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        late.append(now - last[0] - 0.01)
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(10)
    ctl.import_folder(collection.root)
    qtbot.waitUntil(lambda: len(ctl.job_rows) == 1 and started.is_set(), timeout=WAIT_MS)
    row = next(iter(ctl.job_rows.values()))
    qtbot.waitUntil(lambda: row.bar.value() > 0, timeout=WAIT_MS)
    qtbot.wait(300)
    with qtbot.waitSignal(ctl.project_ctl.import_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(row.cancel, Qt.LeftButton)
    timer.stop()
    assert row.bar.maximum() == 10_000
    assert max(late) < 0.5, f"the GUI thread stalled for {max(late) * 1000:.0f} ms"  # (shared CI cores)
    assert "cancelled" in window.statusBar().currentMessage().lower()


def test_a_new_search_while_reviewing_puts_the_query_back_on_the_canvas(qtbot, opened):
    window, ctl = opened
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS):
        window.act_search.trigger()
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        ctl.review_ctl.select_row(0)
    assert ctl.mode == "hit"
    hit_doc = ctl.canvas_ctl.document
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS):
        window.act_search.trigger()
    assert ctl.mode == "query" and ctl.canvas_ctl.document is ctl.search_ctl.documents[ctl.query_image]
    assert ctl.canvas_ctl.document is not hit_doc
    qtbot.keyClick(window.canvas, Qt.Key_Z, Qt.ControlModifier)  # the undo stack is the query's: no crash


def test_many_qt_calls_and_signals_do_not_wear_out_none_and_true(qtbot):
    """PySide6 6.12.0 on CPython 3.11 loses a reference to None per void call and to True per
    emit (pyproject.toml keeps that wheel out); 20,000 progress signals from a worker and 20,000
    void calls would abort the interpreter with it."""
    import sys

    before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)

    from PySide6.QtCore import QObject

    from pixret_desktop.workers import JobManager, Worker

    def chatty(*, progress, cancel):
        for i in range(20_000):
            progress(i, 20_000, "a" if i % 2 else "b")  # a stage change every call: no throttling
        return "done"

    jobs = JobManager()
    w = Worker(chatty)
    with qtbot.waitSignal(w.signals.finished, timeout=WAIT_MS):
        jobs.start(w)
    probe = QObject()
    for _ in range(20_000):
        probe.setObjectName("x")
    assert sys.getrefcount(None) > before_none - 1000 and sys.getrefcount(True) > before_true - 1000
