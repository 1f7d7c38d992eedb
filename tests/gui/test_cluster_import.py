"""File ▸ Import Folder on a Cluster: the batches run on a Dask cluster, the job row says on how
many workers, and without Dask the dialog names the pip command and cannot be accepted."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from pixret_desktop.views.dialogs import ClusterDialog
from tests.gui.conftest import WAIT_MS, open_project_with_images
from tests.gui.test_names_and_folders import choose


def test_import_on_a_cluster_shows_the_workers_and_indexes(qtbot, make_window, tmp_path, collection, dask_cluster):
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, tmp_path / "project")
    address = dask_cluster.client.scheduler.address
    dlg = ctl.ask_import_folder_on_cluster()
    assert dlg.isVisible() and not dlg.missing.isVisibleTo(dlg)  # Dask is installed here
    dlg.remote.setChecked(True)
    dlg.scheduler.setText(address)
    qtbot.mouseClick(dlg.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    choose(qtbot, ctl.folder_dialog, str(collection.root))  # then the folder, as for a plain import
    worker = ctl.project_ctl.import_worker
    assert worker is not None and "on a cluster" in worker.name
    stages = []
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
    window.act_import_folder_cluster.trigger()
    dlg = window.findChild(ClusterDialog, "cluster_dialog")
    assert dlg is not None and dlg.isVisible()
    assert not dlg.buttons.button(QDialogButtonBox.Ok).isEnabled()
    assert dlg.missing.isVisibleTo(dlg) and "pip install 'pixret-desktop[dask]'" in dlg.missing.text()
    dlg.reject()
    assert ctl.project_ctl.import_worker is None  # nothing started
