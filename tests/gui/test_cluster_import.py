"""File ▸ Import Folder on a Cluster: the batches run on a Dask cluster, the job row says on how
many workers, and without Dask the dialog names the pip command and cannot be accepted."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

import pixret_desktop.controllers.main as main_controller
from tests.gui.conftest import WAIT_MS, open_project_with_images


def fill_cluster_dialog(fill, seen: dict, tries: int = 250) -> None:
    """When the cluster dialog is up, let `fill(dialog)` set it (and accept or reject it)."""
    def poll(left=tries):
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != "cluster_dialog":
            if left > 0:
                QTimer.singleShot(20, lambda: poll(left - 1))
            return
        seen["dialog"] = dialog
        fill(dialog)
    QTimer.singleShot(0, poll)


def test_import_on_a_cluster_shows_the_workers_and_indexes(qtbot, make_window, tmp_path, collection, dask_cluster,
                                                           monkeypatch):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "project")
    address = dask_cluster.client.scheduler.address
    monkeypatch.setattr(main_controller.QFileDialog, "getExistingDirectory", lambda *a, **k: str(collection.root))
    seen = {}

    def fill(dialog):
        assert not dialog.missing.isVisibleTo(dialog)  # Dask is installed here
        dialog.remote.setChecked(True)
        dialog.scheduler.setText(address)
        dialog.buttons.button(QDialogButtonBox.Ok).click()

    fill_cluster_dialog(fill, seen)
    stages = []
    window.act_import_folder_cluster.trigger()  # returns once the dialog is answered and the job started
    worker = ctl.project_ctl.import_worker
    assert worker is not None and "on a cluster" in worker.name
    worker.signals.progress.connect(lambda done, total, stage: stages.append(stage))
    with qtbot.waitSignal(ctl.project_ctl.import_finished, timeout=WAIT_MS) as done:
        pass
    report = done.args[0]
    assert report.extracted == 12 and address in report.ran_on
    assert any(s.startswith("features on the cluster at") and "(2 workers)" in s for s in stages), stages
    assert ctl.settings.get("cluster_scheduler") == address and ctl.settings.get("cluster_mode") == "scheduler"
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        pass
    assert len(ctl.project_ctl.project.indexed_images()) == 12


def test_without_dask_the_cluster_dialog_names_the_pip_command(qtbot, make_window, tmp_path, monkeypatch):
    import engine.parallel.cluster as cluster

    monkeypatch.setattr(cluster, "dask_available", lambda: False)
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "project")
    seen = {}

    def fill(dialog):
        seen["ok"] = dialog.buttons.button(QDialogButtonBox.Ok).isEnabled()
        seen["text"] = dialog.missing.text() if dialog.missing.isVisibleTo(dialog) else ""
        dialog.reject()

    fill_cluster_dialog(fill, seen)
    window.act_import_folder_cluster.trigger()
    assert "dialog" in seen and seen["ok"] is False
    assert "pip install 'pixret-desktop[dask]'" in seen["text"]
    assert ctl.project_ctl.import_worker is None  # nothing started
