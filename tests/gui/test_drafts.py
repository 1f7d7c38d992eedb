"""Drafts are state, not screen: a correction painted on a hit and not accepted is in the catalog as
soon as it is made, the status bar says so, quitting asks about it, and it comes back on reopening,
also after the app was killed."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

import engine.annotate.review as review
from engine.project import Project
from pixret_desktop.models import CaptionRole
from tests.gui.conftest import WAIT_MS, answer_question, drag_image
from tests.gui.test_review_flow import click_row

REPO = Path(__file__).resolve().parents[2]


def open_reviewed(qtbot, make_window, folder):
    """The project in a new window, its search shown (the latest search reopens by itself)."""
    window, ctl = make_window()
    with qtbot.waitSignal(ctl.review_ctl.result_shown, timeout=WAIT_MS, check_params_cb=lambda q: q is not None):
        ctl.open_project(folder)
    qtbot.waitUntil(lambda: ctl.results.root is not None, timeout=WAIT_MS)  # the image list (hits need its root)
    return window, ctl


def open_hit(qtbot, window, ctl, row: int):
    hit = ctl.results.hit_at(row)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS, check_params_cb=lambda i: i == hit.image_id):
        click_row(qtbot, window.results, row)
    return hit


def paint_correction(qtbot, window, ctl, hit):
    """One brush stroke that adds a band above the predicted outline: the edited outline."""
    qtbot.keyClick(window.canvas, Qt.Key_B)
    x0, y0, _x1, _y1 = hit.region.bounds
    drag_image(window.canvas, [(x0 - 30, y0 - 30), (x0 + 10, y0 - 30), (x0 + 40, y0 - 20)])
    edited = ctl.review_ctl.documents[hit.image_id].region
    assert edited.area > hit.region.area + 100  # the premise: the outline really changed
    return edited


def caption(ctl, hit) -> str:
    return ctl.results.index(ctl.results.row_of(hit.image_id)).data(CaptionRole)


def saved_label(window) -> str:
    return window.saved_label.text()


def catalog_drafts(folder) -> dict:
    """What another connection finds committed: {image id: draft region}."""
    project = Project.open(folder)
    try:
        return {d.image_id: d.region for d in review.drafts(project)}
    finally:
        project.close()


def catalog_decision(folder, image_id: int):
    """The committed decision on an image in the project's (one) search: (kind, region)."""
    project = Project.open(folder)
    try:
        d = review.decisions(project, review.list_queries(project)[0].id)[image_id]
        return d.kind, d.region
    finally:
        project.close()


def first_unreviewed_outlined_row(ctl) -> int:
    return next(r for r in range(ctl.results.rowCount())
                if ctl.results.hit_at(r).region is not None and ctl.results.status_of(ctl.results.hit_at(r).image_id)
                == "unreviewed")


def test_an_unaccepted_correction_is_saved_asked_about_on_quit_and_back_on_reopening(qtbot, make_window,
                                                                                      reviewed_project):
    folder, _result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    qtbot.waitUntil(lambda: saved_label(window) == "All changes saved", timeout=WAIT_MS)
    row = first_unreviewed_outlined_row(ctl)
    hit = open_hit(qtbot, window, ctl, row)
    edited = paint_correction(qtbot, window, ctl, hit)

    # committed as it is made, and said so: not "All changes saved"
    qtbot.waitUntil(lambda: saved_label(window) == "1 unaccepted correction", timeout=WAIT_MS)
    assert catalog_drafts(folder)[hit.image_id] == edited
    assert ctl.results.status_of(hit.image_id) == "unreviewed"  # a draft is not a decision
    assert caption(ctl, hit).startswith("draft · ")  # and the results list marks it

    # move on: still one unaccepted correction
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_Right)
    assert ctl.review_ctl.current.image_id != hit.image_id
    assert saved_label(window) == "1 unaccepted correction"

    # quit (Ctrl+Q): asked; Enter takes the default answer, which keeps the draft
    seen = []
    answer_question("drafts_box", None, seen)
    qtbot.keyClick(window, Qt.Key_Q, Qt.ControlModifier)
    assert len(seen) == 1 and "1 corrected outline has not been accepted" in seen[0]
    assert not window.isVisible() and ctl.project is None
    assert catalog_drafts(folder)[hit.image_id] == edited

    # reopen: the edit is back on the hit, one undo step away from the prediction
    window2, ctl2 = open_reviewed(qtbot, make_window, folder)
    qtbot.waitUntil(lambda: saved_label(window2) == "1 unaccepted correction", timeout=WAIT_MS)
    open_hit(qtbot, window2, ctl2, ctl2.results.row_of(hit.image_id))
    doc = ctl2.review_ctl.documents[hit.image_id]
    assert doc.region == edited
    assert "press A to accept the correction" in window2.canvas_hint.text()
    qtbot.keyClick(window2.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert doc.region.iou(hit.region, 480, 640) > 0.999
    qtbot.waitUntil(lambda: saved_label(window2) == "All changes saved", timeout=WAIT_MS)  # undone: no draft
    qtbot.keyClick(window2.canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: saved_label(window2) == "1 unaccepted correction", timeout=WAIT_MS)

    # accepting it makes it the hit's correction and leaves no draft
    with qtbot.waitSignal(ctl2.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window2.canvas, Qt.Key_A)
    qtbot.waitUntil(lambda: saved_label(window2) == "All changes saved", timeout=WAIT_MS)
    assert "draft" not in caption(ctl2, hit)
    assert catalog_drafts(folder) == {}
    assert catalog_decision(folder, hit.image_id) == ("corrected", edited)


def test_quitting_with_drafts_cancel_stays_and_accept_all_makes_them_corrections(qtbot, make_window,
                                                                                 reviewed_project):
    folder, _result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    hit = open_hit(qtbot, window, ctl, first_unreviewed_outlined_row(ctl))
    edited = paint_correction(qtbot, window, ctl, hit)

    answer_question("drafts_box", "Cancel")
    window.close()
    assert window.isVisible() and ctl.project is not None  # still open, nothing changed
    assert catalog_drafts(folder) == {hit.image_id: edited}

    answer_question("drafts_box", "Accept all")
    window.close()
    assert not window.isVisible()
    assert catalog_drafts(folder) == {}
    assert catalog_decision(folder, hit.image_id) == ("corrected", edited)


def test_discard_throws_the_drafts_away_and_keeps_the_decisions(qtbot, make_window, reviewed_project):
    folder, result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    accepted = result.hits[0]
    open_hit(qtbot, window, ctl, ctl.results.row_of(accepted.image_id))
    paint_correction(qtbot, window, ctl, accepted)  # an edit on an accepted hit is a draft too
    qtbot.waitUntil(lambda: saved_label(window) == "1 unaccepted correction", timeout=WAIT_MS)
    answer_question("drafts_box", "Discard")
    window.close()
    assert not window.isVisible() and catalog_drafts(folder) == {}
    assert catalog_decision(folder, accepted.image_id) == ("accepted", accepted.region)


def test_rejecting_an_edited_hit_drops_its_draft_and_undo_brings_both_back(qtbot, make_window, reviewed_project):
    folder, _result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    hit = open_hit(qtbot, window, ctl, first_unreviewed_outlined_row(ctl))
    edited = paint_correction(qtbot, window, ctl, hit)
    doc = ctl.review_ctl.documents[hit.image_id]
    qtbot.waitUntil(lambda: saved_label(window) == "1 unaccepted correction", timeout=WAIT_MS)

    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_R)
    qtbot.waitUntil(lambda: saved_label(window) == "All changes saved", timeout=WAIT_MS)
    assert doc.region == hit.region  # a rejected hit shows its prediction, as it will when reopened
    assert catalog_drafts(folder) == {}

    qtbot.keyClick(window.canvas, Qt.Key_Z, Qt.ControlModifier)  # one step: the decision and the outline
    qtbot.waitUntil(lambda: saved_label(window) == "1 unaccepted correction", timeout=WAIT_MS)
    assert ctl.results.status_of(hit.image_id) == "unreviewed" and doc.region == edited
    assert catalog_drafts(folder) == {hit.image_id: edited}


# -- a crash: the app killed (SIGKILL) right after an edit was committed -------------------------------


def _edit_and_wait(folder: str) -> None:
    """Child process: open the project in the real window, paint a correction on a hit, print the
    hit's id and the edited outline once the status bar says it is saved, then wait to be killed."""
    import json
    import time

    from PySide6.QtCore import QSettings

    from pixret_desktop.settings import AppSettings
    from pixret_desktop.startup import create_window, make_application

    app = make_application()
    window, ctl = create_window(AppSettings(QSettings(str(Path(folder).parent / "child.ini"), QSettings.IniFormat)))
    window.resize(1300, 850)
    window.show()

    def until(cond):
        while not cond():
            app.processEvents()
            time.sleep(0.005)

    ctl.open_project(folder)
    until(lambda: ctl.results.query_id is not None and ctl.results.root is not None)
    row = next(r for r in range(ctl.results.rowCount()) if ctl.results.hit_at(r).region is not None
               and ctl.results.status_of(ctl.results.hit_at(r).image_id) == "unreviewed")
    hit = ctl.results.hit_at(row)
    ctl.review_ctl.select_row(row)
    until(lambda: window.canvas.image_size is not None)
    ctl.tools.set_tool("brush")
    x0, y0, _x1, _y1 = hit.region.bounds
    drag_image(window.canvas, [(x0 - 30, y0 - 30), (x0 + 10, y0 - 30), (x0 + 40, y0 - 20)])
    until(lambda: window.saved_label.text() == "1 unaccepted correction")
    region = ctl.review_ctl.documents[hit.image_id].region
    print(json.dumps({"image_id": hit.image_id, "region": region.to_json()}), flush=True)
    until(lambda: False)


def test_a_committed_draft_survives_a_kill(qtbot, make_window, reviewed_project):
    import json

    from engine.base.regions import Region

    folder, _result = reviewed_project
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "tests.gui.test_drafts", str(folder)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], WAIT_MS / 1000)
        line = child.stdout.readline() if ready else ""  # the edit is committed and shown as such
        assert line, "the child never said its edit was saved"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    said = json.loads(line)
    edited = Region.from_json(said["region"])

    window, ctl = open_reviewed(qtbot, make_window, folder)
    qtbot.waitUntil(lambda: saved_label(window) == "1 unaccepted correction", timeout=WAIT_MS)
    open_hit(qtbot, window, ctl, ctl.results.row_of(said["image_id"]))
    assert ctl.review_ctl.documents[said["image_id"]].region == edited


if __name__ == "__main__":
    _edit_and_wait(sys.argv[1])
