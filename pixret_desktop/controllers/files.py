"""The File and Export menus' actions, a part of MainController: new, open and team projects,
importing photos (here or on a cluster) and annotations, exports into a folder the engine has
checked first, and closing (a person's unaccepted corrections settled before the project goes). Every folder is asked for without blocking the window, and the work runs in workers.
"""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from sqlalchemy.exc import ArgumentError

import engine.annotate.review as review
from engine.base.regions import Region
from engine.formats.destination import check_export_destination
from engine.formats.export import export_project
from engine.features.learned import extractor_missing
from engine.formats.importers import import_annotations
from pixret_desktop import credentials
from pixret_desktop.controllers.project import DEMO
from pixret_desktop.views.dialogs import (
    ClusterDialog,
    ImportSummaryDialog,
    TeamProjectDialog,
    ask_about_drafts,
    ask_replace_export,
)
from pixret_desktop.views.feature_choice import FeatureTypeChoice
from pixret_desktop.views.folder_dialog import FolderDialog
from pixret_desktop.workers import Worker

# a new project's feature types (engine.features.learned.FEATURE_KINDS), the default first; whether a
# learned one can run is found without importing torch (seconds): the window does not stall
FEATURE_TITLES = {"rootsift": "RootSIFT: fast, for textured things (the default)",
                  "xfeat": "XFeat (learned): also little texture, deformable things",
                  "aliked": "ALIKED (learned): slower to index than XFeat"}

EXPORT_FORMATS = (
    ("pixbench", "PixBench / PROxford set (gnd.json + LabelMe)…"),
    ("coco", "COCO instances JSON…"),
    ("labelme", "LabelMe JSON per image…"),
    ("masks", "PNG masks…"),
)


def demo_query() -> tuple[str, object] | None:
    """The shipped demo's query: (collection path, Region) from its LabelMe file, or None."""
    try:
        doc = json.loads((DEMO / "demo_query.json").read_text())
        shape = doc["shapes"][0]
        return doc["imagePath"].removeprefix("photos/"), Region.from_polygons([shape["points"]])
    except (OSError, ValueError, KeyError, IndexError):
        return None


class FileActions:
    """Mixed into MainController (uses its window, settings, jobs, project and sub-controllers)."""

    def _setup_export(self) -> None:
        menu = self.window.export_menu
        menu.clear()
        self.export_actions = {}
        for fmt, label in EXPORT_FORMATS:
            a = menu.addAction(label)
            a.setObjectName(f"export_{fmt}")
            a.setToolTip("the accepted and corrected outlines (rejections as negatives) of every search")
            a.triggered.connect(lambda _c=False, f=fmt: self.ask_export(f))
            self.export_actions[fmt] = a

    def choose_folder(self, title: str, purpose: str, then, *, create: bool, reselect: bool = False,
                      extra=None) -> FolderDialog:
        """Ask for a folder without blocking the window; `then(folder)` once chosen. The dialog opens on
        the folder last chosen for this purpose (`reselect`: choosing it again is one click) or on its
        parent (a new one goes beside it), else at home."""
        last = self.settings.last_folder(purpose)
        start = last.parent if last != Path.home() else last
        dlg = FolderDialog(self.window, title, last if reselect else start, create=create, extra=extra)
        dlg.chosen.connect(lambda f: (self.settings.set_last_folder(purpose, f), then(f)))
        dlg.finished.connect(lambda _r, d=dlg: d.deleteLater())
        self.folder_dialog = dlg
        dlg.open()
        return dlg

    def ask_new_project(self) -> FolderDialog:
        """The new project's folder and, below it, its feature type (RootSIFT unless another is chosen)."""
        choice = FeatureTypeChoice([(kind, title, None if kind == "rootsift" else extractor_missing(kind))
                                    for kind, title in FEATURE_TITLES.items()])
        return self.choose_folder("New project: choose an empty folder, or type a new one", "project",
                                  lambda folder: self.new_project(folder, choice.kind()), create=True, extra=choice)

    def ask_open_team_project(self) -> TeamProjectDialog:
        """File ▸ Open Team Project: database URL, password (not kept in the settings), shared folder."""
        dlg = TeamProjectDialog(self.settings.recent_team_projects(), self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self.open_team_project(**dlg.values()))
        dlg.open()
        return dlg

    def open_team_project(self, url: str, folder, password: str = "", remember: bool = False) -> Worker | None:
        passfile = self.settings.password_file()
        try:
            if remember and password:
                credentials.remember(passfile, url, password)
            elif not remember and password:
                credentials.forget(passfile, url)
            password = password or credentials.lookup(passfile, url) or ""
            full_url = credentials.with_password(url, password)
        except (OSError, ValueError, ArgumentError) as e:
            self.show_error("Could not open the team project", str(e))
            return None
        self.settings.add_recent_team(url, folder)
        self.show_message(f"Opening the team project {folder}…")
        return self.project_ctl.open_team_project(folder, full_url)

    def ask_open_project(self) -> FolderDialog:
        return self.choose_folder("Open a project folder", "project", self.open_project, create=False,
                                  reselect=True)

    def _project_or_say(self) -> bool:
        """True when a project is open; else says how to make one."""
        if self.project is None:
            self.show_error("No project", "Create or open a project first (File ▸ New Project).")
        return self.project is not None

    def ask_import_folder(self) -> FolderDialog | None:
        if not self._project_or_say():
            return None
        return self.choose_folder("Import a folder of images", "photos", self.import_folder, create=False,
                                  reselect=True)

    def ask_import_folder_on_cluster(self) -> ClusterDialog | None:
        """Where the batches run (N local worker processes or a Dask scheduler), then the folder."""
        import sys

        from engine.parallel.cluster import DASK_EXTRA, dask_available

        if not self._project_or_say():
            return None
        hint = DASK_EXTRA if not getattr(sys, "frozen", False) else \
            f"{DASK_EXTRA} (the packaged app leaves Dask out: install PixRet with pip for this)"
        dlg = ClusterDialog(self.settings.values(), dask_available(), hint, self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)

        def accepted() -> None:
            self.settings.update(dlg.values())
            cluster = dlg.cluster()
            self.choose_folder("Import a folder of images on a cluster", "photos",
                               lambda folder: self.project_ctl.import_folder(folder, cluster=cluster),
                               create=False, reselect=True)

        dlg.accepted.connect(accepted)
        dlg.open()
        return dlg

    def ask_import_annotations(self, fmt: str):
        """File ▸ Import Annotations: a LabelMe folder, a COCO file or a PixBench set, chosen without
        blocking the window, then imported in a worker."""
        if self.project is None:
            self.show_error("No project", "Open the project of the annotated photos first.")
            return None
        then = lambda path: self.import_annotations(path, fmt)  # noqa: E731
        if fmt != "coco":
            what = "a folder of LabelMe files" if fmt == "labelme" else "a PixBench set (the folder of gnd.json)"
            return self.choose_folder(f"Import annotations: {what}", "annotations", then, create=False,
                                      reselect=True)
        dlg = QFileDialog(self.window, "Import annotations: a COCO file", str(self.settings.last_folder("annotations")),
                          "COCO JSON (*.json);;All files (*)")
        dlg.setObjectName("coco_file_dialog")
        dlg.setOption(QFileDialog.DontUseNativeDialog, True)
        dlg.setFileMode(QFileDialog.ExistingFile)
        dlg.fileSelected.connect(lambda f: (self.settings.set_last_folder("annotations", Path(f).parent), then(f)))
        dlg.finished.connect(lambda _r, d=dlg: d.deleteLater())
        self.folder_dialog = dlg
        dlg.open()
        return dlg

    def import_annotations(self, path, fmt: str) -> Worker | None:
        """Existing annotations as reviewed searches and labelled objects (engine.formats.importers), in a
        worker with progress; a summary says what matched which photo and what was skipped."""
        if self.project is None:
            return None
        project = self.project
        self.review_ctl.wait_saved()
        titles = {"labelme": "LabelMe", "coco": "COCO", "pixbench": "PixBench"}
        return self.jobs.start(Worker(import_annotations, project, Path(path), fmt,
                                      name=f"Importing {titles.get(fmt, fmt)} annotations"),
                               pool="long", show=True,
                               on_finished=lambda r: project is self.project and self._annotations_imported(r),
                               on_failed=lambda e: self.show_error("The annotations were not imported", str(e)),
                               on_cancelled=lambda: self.show_message("Import cancelled: nothing was imported"))

    def _annotations_imported(self, report) -> ImportSummaryDialog:
        self.last_import = report
        skipped = [(u, "no photo of the collection matches it") for u in report.unmatched]
        skipped += [tuple(w.split(": ", 1)) if ": " in w else ("", w) for w in report.warnings]
        dlg = ImportSummaryDialog(report.summary(), report.matched, skipped, self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        self.dialogs.append(dlg)
        dlg.finished.connect(lambda _r, d=dlg: d in self.dialogs and self.dialogs.remove(d))
        dlg.show()
        self.show_message(f"Imported {report.n_objects} objects with {report.n_annotations} outlines"
                          + (f"; {len(report.unmatched)} skipped" if report.unmatched else ""))
        self.objects_ctl.refresh()
        self._reload_statuses()
        self.review_ctl.load_history()
        if report.query_ids:
            self.review_ctl.load_query(report.query_ids[0])
        return dlg

    def new_project(self, folder, features: str | None = None) -> Worker:
        return self.project_ctl.new_project(folder, long_side=self.settings.get("feature_long_side"),
                                            features=features)

    def open_project(self, folder) -> Worker:
        return self.project_ctl.open_project(folder)

    def open_demo(self, folder=None, photos=None) -> Worker:
        """The demo: real photos (copied and indexed on first use, about a minute), opened on the can's
        photo with its outline drawn, so the first Search shows what PixRet does."""
        self.show_message("Preparing the demo collection (copied and indexed on first use, about a minute)…")
        self._demo_query = demo_query()
        return self.project_ctl.open_demo(folder, photos)

    def import_folder(self, folder) -> Worker | None:
        return self.project_ctl.import_folder(folder)

    def ask_export(self, fmt: str) -> FolderDialog | None:
        if self.project is None:
            return None
        return self.choose_folder("Export into a folder: a new or empty one (type a name to make it)", "export",
                                  lambda folder: self.export_into(fmt, folder), create=True)

    def export_into(self, fmt: str, folder) -> Worker | None:
        """Export into a folder the person chose: the engine first says what is there (in a worker: it
        reads the folder); a new or empty folder is used, an earlier PixRet export is replaced only if
        the person says so (No is the default), any other folder is refused and left untouched."""
        if self.project is None:
            return None
        project = self.project
        return self.jobs.start(Worker(check_export_destination, project, Path(folder), engine_call=False,
                                      name="Checking the export folder"), pool="io",
                               on_finished=lambda dest: project is self.project and self._export_to(fmt, dest),
                               on_failed=lambda e: self.show_error("Cannot export there", str(e)))

    def _export_to(self, fmt: str, dest) -> None:
        if not dest.allowed:
            self.show_error("Cannot export into this folder",
                            f"{dest.message}.\n\nPixRet exports only into a new or empty folder, or over an "
                            "export it made earlier; nothing in this folder was touched.")
            return
        if dest.replaces and not ask_replace_export(self.window, dest.message):
            self.show_message("Export cancelled: the earlier export is left as it was")
            return
        self.export(fmt, dest.path, overwrite=dest.replaces)

    def export(self, fmt: str, folder, *, overwrite: bool = False) -> Worker | None:
        """Write the reviewed annotations in one of the engine's formats (in a worker)."""
        if self.project is None:
            return None
        self.review_ctl.wait_saved()  # the decision just made is part of the export
        return self.jobs.start(Worker(export_project, self.project, Path(folder), fmt, overwrite=overwrite,
                                      name=f"Exporting {fmt}"),
                               pool="long", show=True, on_finished=self._exported,
                               on_failed=lambda e: self.show_error("Export failed", str(e)),
                               on_cancelled=lambda: self.show_message("Export cancelled: nothing was written"))

    def _exported(self, report) -> None:
        self.last_export = report
        self.show_message(f"Exported {report.summary()}" if hasattr(report, "summary") else "Exported")
        warnings = list(getattr(report, "warnings", []) or [])
        if warnings:
            box = self.show_error("Export finished with warnings", "\n".join(warnings[:20]))
            box.setIcon(QMessageBox.Information)

    # -- closing a project: its unaccepted corrections settled first --------------------------------------

    def close_project(self) -> None:
        if not self.settle_drafts():
            return
        self.search_ctl.cancel()
        self.review_ctl.wait_saved()
        self.project_ctl.close()

    def settle_drafts(self) -> bool:
        """Before the project goes: every write committed, then, if corrections were left unaccepted,
        ask what to do with them (Keep as drafts is the default). False: stay (Cancel, or a failed write)."""
        project = self.project
        if project is None:
            return True
        author = self.review_ctl.author  # this person's drafts (a team's others keep theirs)
        count = self.jobs.start(Worker(review.draft_count, project, author, engine_call=False, name="Counting drafts"),
                                pool="writer")
        self.review_ctl.wait_saved(30000)  # the writes asked for before it, then the count
        if not count.result:
            return True  # none (or the catalog cannot be read: what was committed stays as it is)
        answer = ask_about_drafts(self.window, count.result)
        if answer in ("keep", "cancel"):
            return answer == "keep"
        settle = (Worker(review.accept_drafts, project, author, engine_call=False,
                         name="Accepting the corrections") if answer == "accept" else
                  Worker(review.discard_drafts, project, author, engine_call=False, name="Discarding the corrections"))
        self.jobs.start(settle, pool="writer")
        self.review_ctl.wait_saved(30000)
        if settle.error is not None:
            self.show_error("The corrections were left as drafts", str(settle.error))
            return False
        return True
