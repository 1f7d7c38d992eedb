"""The application shell: command line, demo, settings, recent projects, shortcuts, export menu."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction

import pixret_desktop.controllers.project as project_controller
from pixret_desktop.app import build_parser, start
from pixret_desktop.controllers.project import DEMO_PHOTOS
from pixret_desktop.settings import AppSettings
from pixret_desktop.views.dialogs import SettingsDialog, ShortcutsDialog
from tests.gui.conftest import WAIT_MS, open_project_with_images


def test_command_line():
    p = build_parser()
    assert p.parse_args(["--demo"]).demo
    assert p.parse_args(["--project", "/x"]).project == "/x"
    with pytest.raises(SystemExit):
        p.parse_args(["--demo", "--project", "/x"])


def test_demo_opens_on_real_photos_with_the_can_outlined_and_search_finds_it(qtbot, settings, tmp_path,
                                                                           monkeypatch):
    # the shipped demo's photos, fewer of them (indexing all 29 takes a minute): the can's six, two others
    photos = tmp_path / "photos"
    for rel in [f"beer_can/0{k}.jpg" for k in range(6)] + ["alarm_clock/00.jpg", "backpack/00.jpg"]:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_PHOTOS / rel, photos / rel)
    monkeypatch.setattr(project_controller, "DEMO_PHOTOS", photos)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    window, ctl = start(build_parser().parse_args(["--demo"]), settings)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: len(ctl.job_rows) == 1, timeout=WAIT_MS)  # a progress bar while it is made
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=120_000):
        pass
    assert ctl.project.folder == tmp_path / "data" / "pixret" / "demo-photos" / "project"
    assert ctl.images.total == 8 and ctl.project.indexed_images()
    assert "demo" in window.windowTitle()
    # it opens on the can's first photo with the can outlined: Search is the next thing to press
    assert ctl.mode == "query" and ctl.images.info(ctl.query_image).path == "beer_can/00.jpg"
    assert ctl.search_ctl.documents[ctl.query_image].region.area > 100_000
    assert window.search_button.isEnabled()
    with qtbot.waitSignal(ctl.search_ctl.finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.search_button, Qt.LeftButton)
    result, _qid = blocker.args
    found = {h.path for h in result.hits if h.stage == "verified"}
    assert found == {f"beer_can/0{k}.jpg" for k in range(1, 6)}
    window.close()


def test_settings_persist(qtbot, make_window, settings, tmp_path):
    window, ctl = make_window()
    methods = {"sv": ("Fast", ""), "brute-sv": ("Every photo", "")}
    dlg = SettingsDialog(methods, settings.values(), window)
    dlg.method.setCurrentIndex(dlg.method.findData("brute-sv"))
    dlg.long_side.setValue(1536)
    dlg.thumb.setValue(128)
    ctl.apply_settings(dlg.values())
    assert ctl.cache.size == 128 and window.method.currentData() == "brute-sv"
    again = AppSettings(QSettings(settings.q.fileName(), QSettings.IniFormat))
    assert again.get("default_method") == "brute-sv"
    assert again.get("feature_long_side") == 1536 and again.get("thumbnail_size") == 128
    window2, ctl2 = make_window()
    assert window2.method.currentData() == "brute-sv"


def test_new_projects_use_the_feature_long_side_setting(qtbot, make_window, settings, tmp_path):
    settings.update({"feature_long_side": 800})
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "p")
    assert ctl.project.feature_config.long_side == 800


def test_recent_projects(qtbot, make_window, settings, tmp_path):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "a")
    open_project_with_images(qtbot, ctl, tmp_path / "b")
    assert settings.recent_projects()[:2] == [str(tmp_path / "b"), str(tmp_path / "a")]
    window.recent_menu.aboutToShow.emit()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert str(tmp_path / "a") in texts
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        next(a for a in window.recent_menu.actions() if a.text() == str(tmp_path / "a")).trigger()
    assert ctl.project.folder == tmp_path / "a"


def test_keyboard_shortcuts_lists_every_shortcut(qtbot, make_window):
    window, ctl = make_window()
    dlg = ctl.show_shortcuts()
    assert isinstance(dlg, ShortcutsDialog)
    listed = {dlg.table.item(r, 2).text() for r in range(dlg.table.rowCount())}
    listed = {k.strip() for keys in listed for k in keys.split(" or ")}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            assert key.toString() in listed, f"{action.text()} ({key.toString()}) is not listed"
    for key in ("A", "R", "Ctrl+Z", "Ctrl+Shift+Z", "[", "]", "Right", "Left", "B", "E", "P"):
        assert key in listed
    dlg.close()


def test_brush_size_keys(qtbot, make_window):
    window, ctl = make_window()
    size = ctl.tools.brush_radius * 2
    qtbot.keyClick(window.canvas, Qt.Key_BracketRight)
    assert ctl.tools.brush_radius * 2 == pytest.approx(size * 1.25)
    assert window.brush_size.value() == round(size * 1.25)
    qtbot.keyClick(window.canvas, Qt.Key_BracketLeft)
    qtbot.keyClick(window.canvas, Qt.Key_BracketLeft)
    assert ctl.tools.brush_radius * 2 == pytest.approx(size / 1.25)


def test_export_menu_entries(qtbot, make_window, tmp_path):
    window, ctl = make_window()
    actions = window.export_menu.actions()
    assert len(actions) == 4
    assert not any(a.isEnabled() for a in actions)  # nothing to export without a project
    open_project_with_images(qtbot, ctl, tmp_path / "p")
    assert all(a.isEnabled() for a in actions)


def test_export_writes_the_reviewed_outlines(qtbot, make_window, reviewed_project, tmp_path):
    folder, result = reviewed_project
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, folder)
    out = tmp_path / "export"
    worker = ctl.export("coco", out)
    with qtbot.waitSignal(worker.signals.finished, timeout=WAIT_MS):
        pass
    report = ctl.last_export
    assert report.n_regions >= 1 and report.files >= 1
    assert any(out.rglob("*.json"))
    assert "Exported" in window.statusBar().currentMessage()


def test_views_never_import_the_engine():
    import ast
    from pathlib import Path

    import pixret_desktop.views as views

    offenders = []
    for path in Path(views.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "engine"]
    assert offenders == []


# -- no display: the app's own words, exit 2 (not Qt's abort, 134) ------------------------------------


def _run_desktop(tmp_path, **display):
    """`pixret-desktop` as a user starts it, with only the given display variables set."""
    script = Path(sys.executable).with_name("pixret-desktop")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pixret_desktop"]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run(command, env={**env, **display}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="Windows and macOS always have a screen")
def test_without_a_display_the_app_says_so_and_exits_2(tmp_path):
    run = _run_desktop(tmp_path)
    assert run.returncode == 2, run.stderr
    assert "there is no display to open the window on" in run.stderr
    assert "xvfb-run" in run.stderr and "--self-test" in run.stderr  # what to do instead
    assert "platform plugin" not in run.stderr  # Qt never got to abort


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11 displays only")
def test_a_display_qt_cannot_open_is_said_in_words_not_an_abort(tmp_path):
    assert not Path("/tmp/.X11-unix/X97").exists()  # the premise: nothing serves display :97
    run = _run_desktop(tmp_path, DISPLAY=":97")
    assert run.returncode == 2, run.stderr
    assert "pixret-desktop: cannot open a window (DISPLAY=:97)" in run.stderr
    assert "Qt: " in run.stderr and "xvfb-run" in run.stderr


def test_opening_a_missing_project_folder_says_no_such_folder(qtbot, make_window, tmp_path):
    window, ctl = make_window()
    missing = tmp_path / "gone"
    assert not missing.exists()
    with qtbot.waitSignal(ctl.project_ctl.error, timeout=WAIT_MS):
        ctl.open_project(missing)
    box = next(d for d in ctl.dialogs if d.objectName() == "error_box")
    assert box.text() == f"{missing}: no such folder"
    assert ctl.project is None and not missing.exists()  # nothing made there
