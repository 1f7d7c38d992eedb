"""Screenshots of the real window for the user's guide in README.md.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshots/make_screenshots.py

Drives the application the way a person would (clicks and keys on the real widgets) on the demo's
real photos (pixret_desktop/resources/demo) plus two unreadable files, and saves the whole screen at
each step of the guide into docs/screenshots/.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QApplication

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pixret_desktop.controllers.project import DEMO  # noqa: E402
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


def drag(canvas, points, button=Qt.LeftButton):
    mouse(canvas.viewport(), QEvent.MouseButtonPress, vp(canvas, *points[0]), button)
    for p in points[1:]:
        mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, *p), Qt.NoButton, button)
        QTest.qWait(10)
    mouse(canvas.viewport(), QEvent.MouseButtonRelease, vp(canvas, *points[-1]), button, Qt.NoButton)


def open_in_collection(window, ctl, rel):
    image_id = next(i.id for i in ctl.images._all if i.path == rel)
    idx = ctl.images.index(ctl.images.row_of(image_id))
    window.grid.scrollTo(idx)
    QTest.mouseClick(window.grid.viewport(), Qt.LeftButton, Qt.NoModifier, window.grid.visualRect(idx).center())
    wait_until(lambda: window.canvas.image_size is not None and ctl.canvas_ctl.image_id == image_id)
    settle()
    return image_id


def search_and_wait(window, ctl):
    done = []
    ctl.search_ctl.finished.connect(lambda r, q: done.append(q))
    QTest.mouseClick(window.search_button, Qt.LeftButton)
    wait_until(lambda: done)
    settle(1500)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pixret-shots-"))
    images = work / "Photos"
    shutil.copytree(DEMO / "photos", images)  # the demo's real photos
    (images / "scans").mkdir()
    (images / "scans" / "scan_0042.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (images / "scans" / "notes.png").write_bytes(b"")
    query = json.loads((DEMO / "demo_query.json").read_text())
    qrel, poly = query["imagePath"].removeprefix("photos/"), query["shapes"][0]["points"]
    outlines = json.loads((DEMO / "can_outlines.json").read_text())

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
    ctl.new_project(work / "Kitchen project")
    wait_until(lambda: ctl.project is not None)
    settle()
    ctl.import_folder(images)
    try:  # a stage that counts image by image, two seconds in: the time left shows
        wait_until(lambda: ctl.job_rows and "left" in next(iter(ctl.job_rows.values())).bar.format(), timeout=90)
    except TimeoutError:
        pass
    shot("02_import_progress")
    wait_until(lambda: ctl.last_report is not None and ctl.images.total > 0, timeout=600)
    wait_until(lambda: ctl.dialogs)
    settle(800)
    shot("03_unreadable_files")
    for d in list(ctl.dialogs):
        d.close()
    window.activateWindow()
    settle(2000)  # thumbnails
    shot("04_collection")

    # the query: the can on its first photo, outlined with polygon clicks
    open_in_collection(window, ctl, qrel)
    canvas = window.canvas
    for x, y in poly[:5]:
        QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, vp(canvas, x, y))
    mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, *poly[5]), Qt.NoButton, Qt.NoButton)
    shot("05_query_drawing")
    for x, y in poly[5:]:
        QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, vp(canvas, x, y))
    QTest.keyClick(canvas, Qt.Key_Return)
    shot("06_query_outlined")

    # search: the verified photos first, a divider before the unverified candidates
    search_and_wait(window, ctl)
    shot("07_results")

    # review: accept the first hit (the next opens), correct the second with the brush
    ctl.review_ctl.select_row(0)
    wait_until(lambda: canvas.image_size is not None and ctl.review_ctl.current is not None)
    settle()
    second = ctl.results.hit_at(1)
    QTest.keyClick(canvas, Qt.Key_A)
    wait_until(lambda: ctl.review_ctl.current is not None and ctl.review_ctl.current.image_id == second.image_id
               and canvas.image_size is not None)
    ctl.review_ctl.wait_saved()
    settle(800)
    shot("08_accepted")
    QTest.keyClick(canvas, Qt.Key_B)
    ctl.tools.set_brush_size(30)
    truth = outlines.get(second.path)
    x0, y0 = min(p[0] for p in truth), min(p[1] for p in truth)
    x1 = max(p[0] for p in truth)
    drag(canvas, [(x0 + (x1 - x0) * t, y0 + 10) for t in [k / 12 for k in range(1, 12)]])
    mouse(canvas.viewport(), QEvent.MouseMove, vp(canvas, x1 - 20, y0 + 60), Qt.NoButton, Qt.NoButton)
    shot("09_correcting")
    third = ctl.results.hit_at(2)
    QTest.keyClick(canvas, Qt.Key_A)
    wait_until(lambda: ctl.review_ctl.current.image_id == third.image_id and canvas.image_size is not None)
    ctl.review_ctl.wait_saved()
    settle()
    window.act_evidence.trigger()
    settle()
    shot("10_evidence")
    window.act_evidence.trigger()

    # statuses in the browser
    window.status_filter.setCurrentIndex(0)
    QTest.keyClicks(window.name_filter, "beer_can")
    settle(1200)
    shot("11_statuses")
    window.name_filter.clear()

    dlg = ctl.show_shortcuts()
    dlg.move(400, 60)
    review = next(r for r in range(dlg.table.rowCount()) if dlg.table.item(r, 0).text() == "Review")
    dlg.table.scrollToItem(dlg.table.item(review, 0), QAbstractItemView.PositionAtTop)
    settle()
    shot("12_shortcuts")
    dlg.close()

    # labels: the object gets the label "beer can"; the Labels dialog lists the project's labels
    wait_until(lambda: ctl.objects.objects)
    obj = ctl.objects.objects[0]
    tree = window.objects_panel.tree
    idx = ctl.objects.index_of(obj.id)
    QTest.mouseClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, tree.visualRect(idx).center())
    box = window.objects_panel.label_combo
    box.lineEdit().selectAll()
    QTest.keyClicks(box.lineEdit(), "beer can")
    QTest.keyClick(box.lineEdit(), Qt.Key_Return)
    wait_until(lambda: ctl.objects.objects and ctl.objects.objects[0].label == "beer can")
    settle()
    labels_dialog = ctl.objects_ctl.show_labels()
    labels_dialog.new_name.setText("alarm clock")
    QTest.keyClick(labels_dialog.new_name, Qt.Key_Return)
    wait_until(lambda: labels_dialog.list.count() == 2)
    labels_dialog.move(420, 300)
    settle()
    shot("13_labels")
    labels_dialog.close()

    # importing annotations: a LabelMe folder, one file of a photo that is not in the collection
    source = work / "labelme"
    for rel in ("alarm_clock/00.jpg", "alarm_clock/02.jpg"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel.replace(".jpg", ".json")).write_text(json.dumps({
            "version": "5.4.1", "flags": {}, "imagePath": rel.rsplit("/", 1)[1], "imageData": None,
            "imageWidth": 800, "imageHeight": 800, "shapes": [{
                "label": "alarm clock", "points": [[300, 250], [520, 250], [560, 500], [280, 520]],
                "group_id": None, "shape_type": "polygon", "flags": {}}]}))
    (source / "trip" / "IMG_0001.json").parent.mkdir(parents=True)
    (source / "trip" / "IMG_0001.json").write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "imagePath": "IMG_0001.jpg", "imageData": None, "imageWidth": 800,
        "imageHeight": 600, "shapes": [{"label": "suitcase", "points": [[10, 10], [200, 10], [200, 200]],
                                        "group_id": None, "shape_type": "polygon", "flags": {}}]}))
    ctl.import_annotations(source, "labelme")
    wait_until(lambda: ctl.last_import is not None)
    settle(1200)
    shot("14_import_summary")
    for d in list(ctl.dialogs):
        d.close()
    window.activateWindow()

    # a query nothing matches: "No verified match", and what to try
    open_in_collection(window, ctl, "beer_can/03.jpg")
    QTest.keyClick(canvas, Qt.Key_P)
    for x, y in [(40, 40), (260, 40), (260, 150), (40, 150)]:
        QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, vp(canvas, x, y))
    QTest.keyClick(canvas, Qt.Key_Return)
    search_and_wait(window, ctl)
    shot("15_no_match")
    window.close()
    print("screenshots in", OUT)


if __name__ == "__main__":
    main()
