"""Results that say what they know: verified hits first, a divider before the candidates nothing
verified, "no verified match" in words with what to try, scores in the method's units."""
from __future__ import annotations

from PySide6.QtCore import Qt

from pixret_desktop.models import CaptionRole, DividerRole, UnverifiedRole
from tests.gui.conftest import WAIT_MS, open_project_with_images
from tests.gui.test_drafts import open_reviewed
from tests.gui.test_review_flow import draw_polygon, open_in_grid


def test_verified_hits_first_then_a_divider_before_the_unverified(qtbot, make_window, reviewed_project):
    folder, result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    model = ctl.results
    hits = model.hits()
    verified = [h for h in hits if h.stage == "verified"]
    unverified = [h for h in hits if h.stage in ("shortlist", "initial")]
    assert verified and unverified  # the premise: both kinds are in this search
    assert hits[:len(verified)] == verified
    first_unverified = len(verified)
    dividers = [r for r in range(model.rowCount()) if model.index(r).data(DividerRole)]
    assert dividers == [first_unverified]
    assert "Not verified" in model.index(first_unverified).data(DividerRole)
    assert model.index(first_unverified).data(UnverifiedRole) and not model.index(0).data(UnverifiedRole)
    # scores in the units of the method: sv counts inliers; the unverified say so
    assert model.index(0).data(CaptionRole) == f"{verified[0].evidence['inliers']} inliers"
    assert model.index(first_unverified).data(CaptionRole).startswith("not verified")
    # the divider row is taller: it is drawn, not just a word in a tooltip
    rect = window.results.visualRect(model.index(first_unverified))
    assert rect.height() > window.results.visualRect(model.index(0)).height()
    assert "found" in window.results_summary.text() and not window.results_notice.isVisible()


def test_a_query_with_no_match_says_no_verified_match_and_what_to_try(qtbot, make_window, collection, tmp_path):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "project", collection.root)
    # a distractor: random texture that appears in no other photo
    rel = collection.distractors[0]
    image_id = open_in_grid(qtbot, window, ctl, rel)
    qtbot.keyClick(window.canvas, Qt.Key_P)
    draw_polygon(qtbot, window.canvas, [(100, 100), (500, 100), (500, 380), (100, 380)])
    assert ctl.search_ctl.documents[image_id].region.area > 100_000
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.search_button, Qt.LeftButton)
    result, _qid = blocker.args
    assert result.hits and not any(h.stage == "verified" for h in result.hits)  # the premise
    notice = window.results_notice
    assert notice.isVisible()
    text = notice.label.text()
    assert text.startswith("No verified match")
    assert "3D objects" in text and "larger outline" in text  # another method, a larger outline
    assert window.results_summary.text().startswith("0 found")
    assert ctl.results.index(0).data(DividerRole).startswith("No verified match")
    assert "No verified match" in window.statusBar().currentMessage()
