"""Projects: create, open (also the demo), import a folder, the list of images and their statuses.

Everything that touches the catalog or the disk runs in a worker; this controller only starts
workers and turns their results into signals.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

import engine.annotate.review as review
import engine.demo as demo
from engine.features.extract import FeatureConfig
from engine.features.learned import check_feature_kind
from engine.base.errors import ProjectError
from engine.project import MARKER, Project
from pixret_desktop.workers import JobManager, Worker


# the shipped demo: photos of real objects, with their credits (resources/demo/CREDITS.md)
DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"
DEMO_PHOTOS = DEMO / "photos"


def _open(folder, *, create: bool, long_side: int | None = None, features: str | None = None, progress=None,
          cancel=None) -> Project:
    cancel.raise_if_set()
    if create:
        if features is not None:
            check_feature_kind(features)  # a missing learned extra: said before the folder is made
        settings = {"features": FeatureConfig(long_side=long_side).to_json()} if long_side else None
        project = Project.create(folder, settings=settings)
        if features is not None:
            project.choose_features(features)
        return project
    return Project.open(folder)


def _open_team(folder, url: str, *, progress=None, cancel=None) -> Project:
    """A team project: opened when the shared folder is one, else made there (a new or empty folder)."""
    cancel.raise_if_set()
    folder = Path(folder)
    if (folder / MARKER).exists():
        return Project.open(folder, db_url=url)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ProjectError(f"{folder}: not a PixRet project, and not empty: choose the team project's folder, "
                           "or an empty one to start a new team project")
    return Project.create(folder, db_url=url)


def _load_images(project: Project):
    """(collection root, images, review status per image) in one worker call."""
    return project.root, project.images(), review.image_status(project)


def _index_on_cluster(project: Project, root: Path, cluster: dict, *, progress, cancel):
    """Project.index_folder with its batches on a Dask cluster; each stage says on how many workers."""
    from engine.parallel.cluster import open_cluster

    progress(0, 0, "starting the cluster")
    with open_cluster(**cluster) as runner:
        def on_workers(done: int, total: int, stage: str) -> None:
            progress(done, total, f"{stage} on {runner.describe()}")

        cancel.raise_if_set()
        return project.index_folder(root, runner=runner, progress=on_workers, cancel=cancel)


class ProjectController(QObject):
    opened = Signal(object)  # Project
    closing = Signal()  # before the catalog closes: stop what watches it
    closed = Signal()
    images_loaded = Signal(object, object, object)  # root, [ImageInfo], {image id: review status}
    import_finished = Signal(object)  # IndexReport
    import_cancelled = Signal()
    failures_loaded = Signal(object)  # [(path, reason)]
    error = Signal(str, str)  # title, message
    message = Signal(str)

    def __init__(self, jobs: JobManager, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.project: Project | None = None
        self.import_worker: Worker | None = None
        self._opening: Worker | None = None

    # -- opening ---------------------------------------------------------------------------------

    def new_project(self, folder, long_side: int | None = None, features: str | None = None) -> Worker:
        """features: the project's feature type (engine.features.learned.FEATURE_KINDS; None: RootSIFT)."""
        return self._start_open(Worker(_open, folder, create=True, long_side=long_side, features=features,
                                       name=f"Creating project {Path(folder).name}"))

    def open_project(self, folder) -> Worker:
        return self._start_open(Worker(_open, folder, create=False, name=f"Opening {Path(folder).name}"))

    def open_team_project(self, folder, url: str) -> Worker:
        """url: the catalog's database URL (with its password, which goes no further than the engine)."""
        return self._start_open(Worker(_open_team, folder, url, name=f"Opening team project {Path(folder).name}"))

    def open_demo(self, folder=None, photos=None) -> Worker:
        """The demo collection: real photos (resources/demo), copied and indexed on first use (a minute),
        then just opened."""
        return self._start_open(Worker(demo.ensure_demo_project, folder, photos=photos or DEMO_PHOTOS,
                                       name="Preparing the demo collection"), show=True)

    def _start_open(self, worker: Worker, show: bool = False) -> Worker:
        self._opening = worker
        return self.jobs.start(worker, pool="long" if show else "io", show=show,
                               on_finished=self._opened, on_failed=self._open_failed,
                               on_cancelled=lambda: self.message.emit("Cancelled"))

    def _opened(self, project: Project) -> None:
        self.close()
        self.project = project
        self.opened.emit(project)
        self.refresh()

    def _open_failed(self, exc: Exception) -> None:
        self.error.emit("Could not open the project", str(exc))

    def close(self) -> None:
        """Cancel this project's jobs, wait for them, close the catalog."""
        if self.project is None:
            return
        self.closing.emit()
        self.jobs.cancel_all()
        self.jobs.wait(30000)
        self.project.close()
        self.project = None
        self.closed.emit()

    # -- images ----------------------------------------------------------------------------------

    def refresh(self) -> Worker | None:
        if self.project is None:
            return None
        project = self.project
        return self.jobs.start(Worker(_load_images, project, engine_call=False, name="Listing images"),
                               pool="io", on_finished=lambda r: self._images(project, r),
                               on_failed=lambda e: self.error.emit("Could not list the images", str(e)))

    def _images(self, project, r) -> None:
        if project is self.project:
            self.images_loaded.emit(*r)

    def import_folder(self, root, cluster: dict | None = None) -> Worker | None:
        """Index `root` into the project; cluster: open_cluster's arguments (workers=N or
        scheduler=ADDR) to run the batches on a Dask cluster (engine.parallel.cluster)."""
        if self.project is None:
            self.error.emit("No project", "Create or open a project first.")
            return None
        if self.import_worker is not None:
            self.error.emit("Import running", "An import is already running; cancel it first.")
            return None
        if cluster is None:
            w = Worker(self.project.index_folder, Path(root), name=f"Importing {Path(root).name}")
        else:
            where = f"{cluster['workers']} local workers" if "workers" in cluster else cluster["scheduler"]
            w = Worker(_index_on_cluster, self.project, Path(root), cluster,
                       name=f"Importing {Path(root).name} on a cluster ({where})")
        self.import_worker = w
        self._listed_during_import = False
        return self.jobs.start(w, pool="long", show=True, on_finished=self._imported,
                               on_failed=self._import_failed, on_cancelled=self._import_cancelled,
                               on_progress=self._import_progress)

    def _import_progress(self, done: int, total: int, stage: str) -> None:
        # once the folder is scanned the new images are in the catalog: show them while their
        # features are extracted (thumbnails load meanwhile)
        if stage.startswith("features") and not self._listed_during_import:
            self._listed_during_import = True
            self.refresh()

    def _imported(self, report) -> None:
        self.import_worker = None
        self.import_finished.emit(report)
        self.message.emit(f"Import done: {report.summary()}")
        self.refresh()

    def _import_failed(self, exc) -> None:
        self.import_worker = None
        self.error.emit("Import failed", str(exc))
        self.refresh()

    def _import_cancelled(self) -> None:
        self.import_worker = None
        self.import_cancelled.emit()
        self.message.emit("Import cancelled: the images indexed so far are kept; import again to continue")
        self.refresh()

    def load_failures(self) -> Worker | None:
        if self.project is None:
            return None
        return self.jobs.start(Worker(lambda p: [(i.path, i.error or i.status) for i in p.failed_images()],
                                      self.project, engine_call=False, name="Listing unreadable files"),
                               pool="io", on_finished=lambda r: self.failures_loaded.emit(r),
                               on_failed=lambda e: self.error.emit("Could not list the files", str(e)))

