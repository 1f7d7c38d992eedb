"""Review at keyboard speed, through the real window: a decision opens the next unreviewed hit,
Ctrl+Z takes it back where it was made, the labelme / X-AnyLabeling keys, keys of one's own, and a
reviewed count that follows every decision."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from tests.gui.conftest import WAIT_MS
from tests.gui.test_drafts import open_hit, open_reviewed


def history_text(window) -> str:
    return window.history.currentText()


def test_accept_and_reject_open_the_next_unreviewed_hit(qtbot, make_window, reviewed_project):
    folder, result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    hits = ctl.results.hits()
    # the premise: the first hit is accepted and the second rejected (the fixture), the rest unreviewed
    assert [ctl.results.status_of(h.image_id) for h in hits[:3]] == ["accepted", "rejected", "unreviewed"]
    n = len(hits)
    qtbot.waitUntil(lambda: f"2/{n} reviewed" in history_text(window), timeout=WAIT_MS)

    open_hit(qtbot, window, ctl, 0)
    assert window.act_accept.shortcut().toString() == "A"
    # A on the accepted first hit moves on past the rejected second one, to the third
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS,
                          check_params_cb=lambda i: i == hits[2].image_id):
        qtbot.keyClick(window.canvas, Qt.Key_A)
    assert ctl.review_ctl.current.image_id == hits[2].image_id
    # accept it: decided, saved, and the fourth opens
    with qtbot.waitSignals([ctl.review_ctl.decision_saved, ctl.canvas_ctl.image_loaded], timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_A)
    assert ctl.results.status_of(hits[2].image_id) == "accepted"
    assert ctl.review_ctl.current.image_id == hits[3].image_id
    # the search list's count follows at once, not at the next start
    qtbot.waitUntil(lambda: f"3/{n} reviewed" in history_text(window), timeout=WAIT_MS)
    assert "3 of" in window.results_summary.text()

    # Ctrl+Z on the hit it moved to (nothing done there yet) goes back and takes the accept back
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert ctl.review_ctl.current.image_id == hits[2].image_id
    assert ctl.results.status_of(hits[2].image_id) == "unreviewed"

    # with the setting off, a decision stays on its hit
    ctl.apply_settings({"advance_after_decision": False})
    with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_R)
    assert ctl.review_ctl.current.image_id == hits[2].image_id
    assert ctl.results.status_of(hits[2].image_id) == "rejected"


def test_labelme_keys_a_d_step_s_accepts_and_menus_show_them(qtbot, make_window, reviewed_project):
    folder, _result = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    ctl.apply_settings({"keymap": "labelme"})
    hits = ctl.results.hits()
    assert [k.toString() for k in window.act_prev_hit.shortcuts()][:1] == ["A"]
    assert [k.toString() for k in window.act_next_hit.shortcuts()][:1] == ["D"]
    assert window.act_accept.shortcut().toString() == "S" and window.act_reject.shortcut().toString() == "X"
    assert "(S)" in window.act_accept.toolTip()
    # the review menu shows the keys (menus draw an action's shortcut beside its text)
    review_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Review")
    assert window.act_accept in review_menu.actions()

    open_hit(qtbot, window, ctl, 2)
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_D)
    assert ctl.review_ctl.current.image_id == hits[3].image_id
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_A)  # previous, not accept, in this preset
    assert ctl.review_ctl.current.image_id == hits[2].image_id
    assert ctl.results.status_of(hits[2].image_id) == "unreviewed"
    with qtbot.waitSignals([ctl.review_ctl.decision_saved, ctl.canvas_ctl.image_loaded], timeout=WAIT_MS):
        qtbot.keyClick(window.canvas, Qt.Key_S)
    assert ctl.results.status_of(hits[2].image_id) == "accepted"
    assert "S accept" in window.canvas_hint.text() and "X reject" in window.canvas_hint.text()

    # the preset is kept for the next start
    window2, ctl2 = make_window()
    assert window2.act_accept.shortcut().toString() == "S"


def test_a_key_of_ones_own_replaces_the_presets_and_a_taken_key_is_refused(qtbot, make_window):
    window, ctl = make_window()
    dlg = ctl.show_shortcuts()
    row = next(r for r in range(dlg.table.rowCount()) if dlg.table.item(r, 2).data(Qt.UserRole) == "reject")
    dlg.table.item(row, 2).setText("N")  # what the key editor writes
    assert window.act_reject.shortcut().toString() == "N"
    assert dlg.table.item(row, 2).text() == "N"
    assert not ctl.set_key("reject", "A")  # Accept's key
    assert window.act_reject.shortcut().toString() == "N"
    assert any(b.objectName() == "error_box" and "already the key of Accept" in b.text() for b in ctl.dialogs)
    dlg.reset_requested.emit()
    assert window.act_reject.shortcut() == QKeySequence("R")
    dlg.close()
