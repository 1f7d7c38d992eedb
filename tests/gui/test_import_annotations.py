"""File ▸ Import Annotations through the real window: a LabelMe folder as a labelme user leaves it,
and a COCO file; in a worker with progress; a summary of which photo each annotation matched and
what was skipped and why; the imported objects carry their labels."""
from __future__ import annotations

import json
import shutil

from PySide6.QtCore import Qt

import engine.annotate.labels as labels
from engine.formats.export import export_project
from engine.project import Project
from pixret_desktop.views.dialogs import ImportSummaryDialog
from tests.gui.conftest import WAIT_MS
from tests.gui.test_objects_panel import open_and_show


def labelme_file(path, image_path: str, label: str, polygon) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "imagePath": image_path, "imageData": None,
                                "imageWidth": 640, "imageHeight": 480,
                                "shapes": [{"label": label, "points": polygon, "group_id": None,
                                            "shape_type": "polygon", "flags": {}}]}))


def summary(ctl) -> ImportSummaryDialog:
    return next(d for d in ctl.dialogs if isinstance(d, ImportSummaryDialog))


def test_importing_a_labelme_folder_matches_photos_and_says_what_was_skipped(qtbot, make_window, collection,
                                                                             reviewed_project, tmp_path):
    folder, _result = reviewed_project
    source = tmp_path / "labelme"
    for rel, poly in collection.views["object2"]:  # labelme's way: a JSON beside each photo's name
        labelme_file(source / rel.replace(".jpg", ".json"), rel.rsplit("/", 1)[-1], "painting", poly)
    labelme_file(source / "elsewhere" / "beach.json", "beach.jpg", "shell", [[1, 1], [50, 1], [50, 50]])
    window, ctl = make_window()
    open_and_show(qtbot, ctl, folder)

    window.act_import_labelme.trigger()
    dlg = ctl.folder_dialog
    dlg.line_edit.setText(str(source))
    jobs = []
    ctl.jobs.job_started.connect(jobs.append)
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        qtbot.mouseClick(dlg.choose_button, Qt.LeftButton)
        qtbot.waitUntil(lambda: ctl.last_import is not None, timeout=WAIT_MS)
    assert [w.name for w in jobs] == ["Importing LabelMe annotations"]  # a progress bar with Cancel
    report = ctl.last_import
    assert report.n_objects == 1 and report.n_annotations == len(collection.views["object2"]) - 1

    box = summary(ctl)
    photos = {box.matched.item(r, 2).text() for r in range(box.matched.rowCount())}
    assert photos == {rel for rel, _ in collection.views["object2"]}  # every photo it matched, by its path
    skipped = {box.skipped.item(r, 0).text(): box.skipped.item(r, 1).text() for r in range(box.skipped.rowCount())}
    assert any("beach.jpg" in what for what in skipped)
    assert all(why for why in skipped.values())  # and why
    box.close()

    # the object is known now, under its label, and its search is shown with the outlines accepted
    painting = next(o for o in ctl.objects.objects if o.label == "painting")
    assert [ctl.objects.label_at(g) for g in ctl.objects.group_indexes()] == ["painting"]
    qtbot.waitUntil(lambda: ctl.results.query_id == report.query_ids[0], timeout=WAIT_MS)
    assert {ctl.results.status_of(h.image_id) for h in ctl.results.hits()} == {"accepted"}
    assert len(painting.reviewed) == len(collection.views["object2"]) - 1


def test_importing_a_coco_file_brings_back_its_categories(qtbot, make_window, collection, reviewed_template,
                                                          tmp_path):
    template, _result = reviewed_template
    # a COCO file from a labelled project: its object labelled "poster"
    source_project = tmp_path / "source"
    shutil.copytree(template, source_project)
    with Project.open(source_project) as p:
        labels.set_object_label(p, 1, "poster")
        export_project(p, tmp_path / "coco", "coco")
    coco_file = next((tmp_path / "coco").rglob("instances_*.json"))
    # into a project of the same photos with no searches
    target = tmp_path / "target"
    shutil.copytree(template, target)
    window, ctl = make_window()
    open_and_show(qtbot, ctl, target)
    n_before = len(ctl.objects.objects)

    window.act_import_coco.trigger()
    dlg = ctl.folder_dialog
    dlg.selectFile(str(coco_file))
    with qtbot.waitSignal(ctl.objects_ctl.refreshed, timeout=WAIT_MS):
        dlg.accept()
        qtbot.waitUntil(lambda: ctl.last_import is not None, timeout=WAIT_MS)
    report = ctl.last_import
    assert report.format == "coco" and report.n_objects == 1 and not report.unmatched
    qtbot.waitUntil(lambda: len(ctl.objects.objects) == n_before + 1, timeout=WAIT_MS)
    imported = next(o for o in ctl.objects.objects if o.label == "poster")
    assert imported.label_color is not None  # a label of the project's list now
    assert [x.name for x in labels.list_labels(ctl.project)] == ["poster"]
    box = summary(ctl)
    assert box.matched.rowCount() >= 2 and box.skipped.rowCount() == 0
