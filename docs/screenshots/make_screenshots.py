"""Screenshots of the real window for the user's guide in README.md.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshots/make_screenshots.py

Drives the application the way a person would (clicks and keys on the real widgets) on a generated
collection, and saves the whole screen at each step of the guide into docs/screenshots/.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.demo import make_collection  # noqa: E402
from pixret_desktop.settings import AppSettings  # noqa: E402
from pixret_desktop.startup import create_window, make_application  # noqa: E402

OUT = Path(__file__).resolve().parent


def wait_until(cond, timeout=120.0, step_ms=20):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(cond)
        QTest.qWait(step_ms)


def settle(ms=300):
    QTest.qWait(ms)


def shot(name: str) -> None:
    settle(250)
    screen = QApplication.primaryScreen()
    screen.grabWindow(0).save(str(OUT / f"{name}.png"))
    print("saved", name)


def mouse(widget, kind, pos, button=Qt.LeftButton, buttons=None):
    buttons = button if buttons is None else buttons
    p = QPointF(pos)
    QApplication.sendEvent(widget, QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons, Qt.NoModifier))


def vp(canvas, x, y) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pixret-shots-"))
    images = work / "Photos"
    col = make_collection(images, n_objects=3, views=5, n_distractors=40, seed=11)
    (images / "other" / "scan_0042.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (images / "other" / "notes.png").write_bytes(b"")

    app = make_application()
    app.setStyle("Fusion")
    settings = AppSettings(QSettings(str(work / "settings.ini"), QSettings.IniFormat))
    window, ctl = create_window(settings)
    window.resize(1400, 900)
    window.move(0, 0)
    window.show()
    window.activateWindow()
    settle(500)
    shot("01_start")

    # a project, and an import with its progress bar
    ctl.new_project(work / "Statues project")
    wait_until(lambda: ctl.project is not None)
    settle()
    ctl.import_folder(images)
    wait_until(lambda: ctl.job_rows and "features" in next(iter(ctl.job_rows.values())).label.text()
               and next(iter(ctl.job_rows.values())).bar.value() >= 20)
    settle(600)
    shot("02_import_progress")
    wait_until(lambda: ctl.last_report is not None and ctl.images.total > 0)
    wait_until(lambda: ctl.dialogs)
    settle(800)
    shot("03_unreadable_files")
    for d in list(ctl.dialogs):
        d.close()
    window.activateWindow()
    settle(1500)  # thumbnails
    shot("04_collection")

    # the query: the first view of object1, outlined with polygon clicks
    rel, poly = col.query("object1")
    image_id = next(i.id for i in ctl.images._all if i.path == rel)
    row = ctl.images.row_of(image_id)
    idx = ctl.images.index(row)
    window.grid.scrollTo(idx)
    QTest.mouseClick(window.grid.viewport(), Qt.LeftButton, Qt.NoModifier, window.grid.visualRect(idx).center())
    wait_until(lambda: window.canvas.image_size is not None)
    settle()
    canvas = window.canvas
    for x, y in poly[:3]:
        QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, vp(canvas, x, y))
    mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, *poly[3]), Qt.NoButton, Qt.NoButton)
    shot("05_query_drawing")
    QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, vp(canvas, *poly[3]))
    QTest.keyClick(canvas, Qt.Key_Return)
    shot("06_query_outlined")

    # search
    done = []
    ctl.search_ctl.finished.connect(lambda r, q: done.append(q))
    QTest.mouseClick(window.search_button, Qt.LeftButton)
    wait_until(lambda: done)
    settle(1500)
    shot("07_results")

    # review: accept the first hit, correct the second with the brush
    ctl.review_ctl.select_row(0)
    wait_until(lambda: canvas.image_size is not None and ctl.review_ctl.current is not None)
    settle()
    QTest.keyClick(canvas, Qt.Key_A)
    ctl.review_ctl.wait_saved()
    settle()
    shot("08_accepted")
    QTest.keyClick(canvas, Qt.Key_Right)
    wait_until(lambda: canvas.image_size is not None and ctl.review_ctl.current.image_id
               == ctl.results.hit_at(1).image_id)
    settle()
    QTest.keyClick(canvas, Qt.Key_B)
    ctl.tools.set_brush_size(36)
    hit = ctl.results.hit_at(1)
    a, b = hit.region.polygons()[0][:2]  # paint along one edge, a little outside it
    pts = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t - 10) for t in [k / 14 for k in range(2, 13)]]
    mouse(canvas.viewport(), QEvent.MouseButtonPress, vp(canvas, *pts[0]))
    for p in pts[1:]:
        mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, *p), Qt.NoButton, Qt.LeftButton)
        QTest.qWait(10)
    mouse(canvas.viewport(), QEvent.MouseButtonRelease, vp(canvas, *pts[-1]), Qt.LeftButton, Qt.NoButton)
    mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, pts[-1][0] + 40, pts[-1][1] + 60), Qt.NoButton,
          Qt.NoButton)
    shot("09_correcting")
    QTest.keyClick(canvas, Qt.Key_A)
    ctl.review_ctl.wait_saved()
    QTest.keyClick(canvas, Qt.Key_Right)
    wait_until(lambda: ctl.review_ctl.current.image_id == ctl.results.hit_at(2).image_id)
    settle()
    window.act_evidence.trigger()
    settle()
    shot("10_evidence")
    window.act_evidence.trigger()

    # statuses in the browser
    window.status_filter.setCurrentIndex(0)
    QTest.keyClicks(window.name_filter, "object1")
    settle(1000)
    shot("11_statuses")

    dlg = ctl.show_shortcuts()
    dlg.move(400, 80)
    settle()
    shot("12_shortcuts")
    dlg.close()
    window.close()
    print("screenshots in", OUT)


if __name__ == "__main__":
    main()
