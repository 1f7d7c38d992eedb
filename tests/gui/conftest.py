"""GUI tests: the real main window, offscreen, driven with mouse and key events through qtbot."""
from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported anywhere

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import engine.annotate.review as review  # noqa: E402
from engine.base.regions import Region  # noqa: E402
from engine.base.types import Query
from engine.demo import make_collection  # noqa: E402
from engine.pipeline import search  # noqa: E402
from engine.project import Project  # noqa: E402

WAIT_MS = int(os.environ.get("PIXRET_TEST_WAIT_MS", "60000"))


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    """12 images: two textured planar objects, each pasted into 4 backgrounds under different
    homographies (the true outline of each view is known), 4 distractors, and one broken file."""
    root = tmp_path_factory.mktemp("collection") / "images"
    col = make_collection(root, n_objects=2, views=4, n_distractors=4, seed=3)
    (root / "other" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return col


@pytest.fixture
def settings(tmp_path):
    from pixret_desktop.settings import AppSettings

    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


@pytest.fixture
def make_window(qtbot, settings):
    """Build main windows (a test may close one and open another on the same settings)."""
    from pixret_desktop.startup import create_window

    made = []

    def make():
        window, controller = create_window(settings)
        qtbot.addWidget(window)
        window.resize(1300, 850)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()  # shortcuts (A, R, Ctrl+Z, ...) need the window active
        qtbot.waitUntil(window.isActiveWindow, timeout=5000)
        made.append(window)
        return window, controller

    yield make
    for w in made:
        try:
            answer_question("drafts_box", "Keep as drafts")  # a test that left a draft is not asked
            w.close()
        except RuntimeError:
            pass


def answer_question(name: str, button: str | None = None, seen: list | None = None, tries: int = 250) -> None:
    """Answer the next modal message box called `name` (the code under test waits in its exec()):
    click the button with that text, or press Enter (the default button) when `button` is None.
    The box's text and informative text go into `seen`. Gives up after `tries` x 20 ms."""
    def poll(left=tries):
        box = QApplication.activeModalWidget()
        if box is None or box.objectName() != name:
            if left > 0:
                QTimer.singleShot(20, lambda: poll(left - 1))
            return
        if seen is not None:
            seen.append(f"{box.text()}\n{box.informativeText()}")
        if button is None:
            QTest.keyClick(box, Qt.Key_Return)
        else:
            next(b for b in box.buttons() if b.text() == button).click()
    QTimer.singleShot(0, poll)


# -- driving the canvas ------------------------------------------------------------------------------


def view_point(canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def send_mouse(widget, kind, pos: QPoint, button=Qt.LeftButton, buttons=None, modifiers=Qt.NoModifier):
    buttons = button if buttons is None else buttons
    local = QPointF(pos)
    ev = QMouseEvent(kind, local, widget.mapToGlobal(local), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def click_image(qtbot, canvas, x, y, button=Qt.LeftButton):
    qtbot.mouseClick(canvas.viewport(), button, Qt.NoModifier, view_point(canvas, x, y))


def drag_image(canvas, points, button=Qt.LeftButton):
    """Press at the first point, move through the others with the button held, release at the last."""
    vp = canvas.viewport()
    pts = [view_point(canvas, x, y) for x, y in points]
    send_mouse(vp, QEvent.MouseButtonPress, pts[0], button)
    for p in pts[1:]:
        send_mouse(vp, QEvent.MouseMove, p, Qt.NoButton, buttons=button)
    send_mouse(vp, QEvent.MouseButtonRelease, pts[-1], button, buttons=Qt.NoButton)


def open_project_with_images(qtbot, ctl, project_dir: Path, images_root: Path | None = None):
    """Create (or open) a project through the controller and wait until its images are listed."""
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        if (project_dir / "pixret-project.json").exists():
            ctl.open_project(project_dir)
        else:
            ctl.new_project(project_dir)
    if images_root is not None:
        with qtbot.waitSignal(ctl.project_ctl.import_finished, timeout=WAIT_MS):
            ctl.import_folder(images_root)
        with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
            pass  # the list after the import (queued behind import_finished)


@pytest.fixture(scope="session")
def reviewed_template(collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviewed") / "project"
    p = Project.create(folder)
    p.index_folder(collection.root)
    rel, poly = collection.query("object1")
    result = search(p, Query(p.image_id(rel), Region.from_polygons([poly])), top_k=10)
    qid = review.save_search(p, result)
    review.set_decision(p, qid, result.hits[0].image_id, "accepted", result.hits[0].region)
    review.set_decision(p, qid, result.hits[1].image_id, "rejected")
    p.close()
    return folder, result


@pytest.fixture
def reviewed_project(reviewed_template, tmp_path):
    """A project with one search: its first hit accepted, its second rejected (a private copy of one
    made once per session: indexing is the slow part)."""
    template, result = reviewed_template
    shutil.copytree(template, tmp_path / "project")
    return tmp_path / "project", result
