"""File ▸ New Project: the project's feature type is chosen beside its folder; a learned type the
installation cannot run is disabled, the hint naming the pip commands."""
from __future__ import annotations

import os

import pytest
from PySide6.QtWidgets import QComboBox, QLabel

from engine.features import learned
from tests.gui.conftest import WAIT_MS
from tests.gui.test_names_and_folders import choose


def _new_project(qtbot, window, ctl, folder, kind: str):
    window.act_new_project.trigger()
    dlg = ctl.folder_dialog
    combo = dlg.findChild(QComboBox, "feature_type")
    assert combo.currentData() == "rootsift"  # the default
    assert combo.model().item(combo.findData(kind)).isEnabled()
    combo.setCurrentIndex(combo.findData(kind))
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        choose(qtbot, dlg, str(folder))


def test_without_the_learned_extra_only_rootsift_can_be_chosen(qtbot, make_window, tmp_path, monkeypatch):
    for name in ("xfeat", "aliked-n16"):
        monkeypatch.setitem(learned.WEIGHTS, name, learned.WeightFile("pixret_no_such_package", "w.pt", 1))
    window, ctl = make_window()
    window.act_new_project.trigger()
    dlg = ctl.folder_dialog
    combo = dlg.findChild(QComboBox, "feature_type")
    items = {combo.itemData(i): combo.model().item(i) for i in range(combo.count())}
    assert set(items) == {"rootsift", "xfeat", "aliked"}
    assert items["rootsift"].isEnabled() and not items["xfeat"].isEnabled() and not items["aliked"].isEnabled()
    hint = dlg.findChild(QLabel, "feature_type_hint")
    assert hint.isVisible() and all(command in hint.text() for command in learned.PIP_COMMANDS)
    assert "pip install" in items["xfeat"].toolTip()
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        choose(qtbot, dlg, str(tmp_path / "p"))
    assert ctl.project.feature_config.kind == "rootsift"


@pytest.mark.skipif(learned.extractor_missing("xfeat") is not None and not os.environ.get("PIXRET_REQUIRE_LEARNED"),
                    reason=learned.extractor_missing("xfeat") or "")
def test_a_new_project_takes_the_chosen_feature_type(qtbot, make_window, tmp_path):
    window, ctl = make_window()
    _new_project(qtbot, window, ctl, tmp_path / "p", "xfeat")
    assert ctl.project.feature_config.kind == "xfeat"
