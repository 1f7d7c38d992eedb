"""Labels in the window: choose an object's label in the Objects dock, the dock groups objects by
label, the Labels dialog edits the list, and the exports write the label (COCO category, LabelMe label)."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt

import engine.annotate.labels as labels
import engine.annotate.objects as objects
from tests.gui.conftest import WAIT_MS
from tests.gui.test_objects_panel import open_and_show, tree_row


def export(qtbot, ctl, fmt: str, folder):
    worker = ctl.export_into(fmt, folder)
    qtbot.waitUntil(lambda: ctl.last_export is not None and ctl.last_export.out == folder, timeout=WAIT_MS)
    return worker


def test_a_label_chosen_in_the_dock_is_what_coco_and_labelme_write(qtbot, make_window, reviewed_project, tmp_path):
    folder, _result = reviewed_project
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    panel, model, tree = window.objects_panel, ctl.objects, window.objects_panel.tree
    obj = model.objects[0]
    assert obj.label == obj.name == "view01"  # the premise: labelled by its own name

    # select the object: the label box offers its name and the list; type a new label, Enter
    tree_row(qtbot, tree, model.index_of(obj.id))
    box = panel.label_combo
    assert box.isEnabled() and box.currentText() == "view01 (its name)"
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "poster")
    with qtbot.waitSignal(ctl.objects_ctl.labels_changed, timeout=WAIT_MS):
        qtbot.keyClick(box.lineEdit(), Qt.Key_Return)
    qtbot.waitUntil(lambda: model.objects and model.objects[0].label == "poster", timeout=WAIT_MS)
    assert [x.name for x in labels.list_labels(ctl.project)] == ["poster"]
    # the dock groups by label: a "poster" row with the object under it
    groups = model.group_indexes()
    assert [model.label_at(g) for g in groups] == ["poster"]
    assert model.object_at(model.index(0, 0, groups[0])).id == obj.id and tree.isExpanded(groups[0])

    # the exports write it
    export(qtbot, ctl, "coco", tmp_path / "coco")
    doc = json.loads(next((tmp_path / "coco").rglob("instances_*.json")).read_text())
    assert [c["name"] for c in doc["categories"]] == ["poster"]
    assert doc["annotations"] and all(a["category_id"] == doc["categories"][0]["id"] for a in doc["annotations"])
    export(qtbot, ctl, "labelme", tmp_path / "labelme")
    shapes = [s for f in (tmp_path / "labelme").rglob("*.json") if f.name != "pixret.json"
              for s in json.loads(f.read_text())["shapes"]]
    assert shapes and {s["label"] for s in shapes} == {"poster"}

    # picking "its name" again takes the label off the object (the list keeps it)
    tree_row(qtbot, tree, model.index_of(obj.id))
    with qtbot.waitSignal(ctl.objects_ctl.labels_changed, timeout=WAIT_MS):
        box.setCurrentIndex(0)
        box.activated.emit(0)
    qtbot.waitUntil(lambda: model.objects[0].label == "view01" and not model.group_indexes(), timeout=WAIT_MS)


def test_the_labels_dialog_adds_renames_and_removes(qtbot, make_window, reviewed_project):
    folder, _result = reviewed_project
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)
    obj = ctl.objects.objects[0]
    dlg = ctl.objects_ctl.show_labels()
    assert dlg.list.count() == 0
    qtbot.keyClicks(dlg.new_name, "statue")
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        qtbot.keyClick(dlg.new_name, Qt.Key_Return)
    assert [dlg.list.item(i).text() for i in range(dlg.list.count())] == ["statue"]
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        ctl.objects_ctl.set_label(obj.id, "statue")
    dlg.list.item(0).setText("sculpture")  # what editing the name in place does
    qtbot.waitUntil(lambda: ctl.objects.objects[0].label == "sculpture", timeout=WAIT_MS)
    assert objects.load_object(ctl.project, obj.id).label == "sculpture"
    dlg.list.setCurrentRow(0)
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        dlg.remove_requested.emit("sculpture")
    assert dlg.list.count() == 0 and ctl.objects.objects[0].label == "view01"
    dlg.close()
