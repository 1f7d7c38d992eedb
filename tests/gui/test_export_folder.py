"""Export from the GUI never deletes a user's folder: a folder PixRet did not make is refused and left
as it was; an earlier PixRet export is replaced only after a question whose default answer is No."""
from __future__ import annotations

import json

from tests.gui.conftest import WAIT_MS, answer_question, open_project_with_images


def snapshot(folder):
    """Every file under a folder with its bytes (what 'left as it was' means)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def export_into(qtbot, ctl, fmt, folder):
    """Choose `folder` as the chooser would; returns once the folder was checked (and any question answered)."""
    worker = ctl.export_into(fmt, folder)
    qtbot.waitUntil(worker.done.is_set, timeout=WAIT_MS)
    qtbot.wait(50)  # its result, queued to the GUI thread


def test_a_users_folder_is_refused_and_every_file_in_it_survives(qtbot, make_window, reviewed_project, tmp_path):
    folder, _result = reviewed_project
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, folder)
    documents = tmp_path / "Documents"
    (documents / "photos").mkdir(parents=True)
    (documents / "notes.txt").write_text("my notes")
    (documents / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8 not to be lost")
    (documents / "annotations.json").write_text("{}")  # even a name an export would write
    before = snapshot(documents)

    export_into(qtbot, ctl, "coco", documents)
    qtbot.waitUntil(lambda: any(d.objectName() == "error_box" for d in ctl.dialogs), timeout=WAIT_MS)
    box = next(d for d in ctl.dialogs if d.objectName() == "error_box")
    assert box.windowTitle() == "Cannot export into this folder"
    assert str(documents) in box.text() and "nothing in this folder was touched" in box.text()
    qtbot.wait(200)  # (an export, had one started, would be writing now)
    assert ctl.last_export is None and not ctl.job_rows  # no export started
    assert snapshot(documents) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_an_earlier_export_is_replaced_only_when_the_person_says_yes(qtbot, make_window, reviewed_project,
                                                                     tmp_path):
    folder, _result = reviewed_project
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, folder)
    out = tmp_path / "export"
    export_into(qtbot, ctl, "coco", out)  # a new folder: no question
    qtbot.waitUntil(lambda: ctl.last_export is not None, timeout=WAIT_MS)
    first = snapshot(out)
    assert "annotations/instances_default.json" in first and "pixret.json" in first

    seen = []
    answer_question("replace_export_box", None, seen)  # Enter: the default answer
    export_into(qtbot, ctl, "labelme", out)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=WAIT_MS)
    assert "earlier PixRet export" in seen[0]
    qtbot.wait(200)
    assert snapshot(out) == first and "left as it was" in window.statusBar().currentMessage()

    answer_question("replace_export_box", "&Yes")
    export_into(qtbot, ctl, "labelme", out)
    qtbot.waitUntil(lambda: ctl.last_export.format == "labelme", timeout=WAIT_MS)
    marker = json.loads((out / "pixret.json").read_text())
    assert marker["format"] == "labelme" and "annotations/instances_default.json" not in snapshot(out)
