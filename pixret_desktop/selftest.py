"""`pixret-desktop --self-test`: prove that this installation works, offscreen, in about 15 s.

Meant for a freshly installed or frozen (PyInstaller) app, where a missing module, shared library,
data file or Qt plugin shows up only when something uses it. The self-test uses the real engine on
the built-in demo collection, nothing mocked:

    imports       numpy, OpenCV, faiss, shapely, scipy, SQLAlchemy, Alembic, PySide6 (versions); psycopg
                  and its libpq (team projects), required in a bundle
    demo images   engine.demo.make_collection into a temporary folder (known true outlines)
    index         Project.create (catalog migrated by Alembic from engine/catalog/migrations) + index_folder
                  (RootSIFT features, feature store, faiss vocabulary, inverted file, graph)
    search        engine.pipeline.search with the first object's first view, its true outline as
                  the region: the object's other views must be the top verified hits, each with a
                  predicted region of IoU > 0.5 against the truth
    catalog       the search saved, a decision recorded and read back (engine.annotate.review)
    main window   the real MainWindow, offscreen, opening the test project (proves the Qt platform
                  plugins load and the workers run)
    team catalog  with $PIXRET_SELF_TEST_DB set (the URL of an empty PostgreSQL database): index and
                  search again with the catalog on that server

Each step prints one line with its time; the exit code is 0 when all pass, 1 otherwise (the
failing step says what went wrong). Nothing outside the temporary folder is touched: the window
uses a throw-away settings file.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

MIN_IOU = 0.5
GUI_TIMEOUT_MS = 120_000
REPORT_FILE = "pixret-self-test.txt"  # where the report goes when there is no console (Windows GUI build)
TEAM_DB_VAR = "PIXRET_SELF_TEST_DB"  # an empty PostgreSQL database: the self-test checks a team catalog there too


class CheckFailed(Exception):
    """A step ran but its result is wrong; the message says how."""


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str


class SelfTest:
    def __init__(self, out: TextIO, workdir: Path, demo_options: dict | None, gui: bool, method: str,
                 team_db: str | None = None):
        self.out = out
        self.team_db = team_db
        self.workdir = workdir
        self.demo_options = dict(demo_options or {})
        self.gui = gui
        self.method = method
        self.results: list[StepResult] = []
        self.collection = None
        self.project_folder = workdir / "project"
        self.n_images = 0
        self.indexed = False  # the index step passed: the window may open the project

    # -- running and reporting ----------------------------------------------------------------

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def step(self, name: str, fn: Callable[[], str]) -> bool:
        t = time.perf_counter()
        try:
            detail, ok = fn(), True
        except CheckFailed as exc:
            detail, ok = str(exc), False
        except BaseException as exc:  # noqa: BLE001 - any error is the finding; KeyboardInterrupt too
            if isinstance(exc, KeyboardInterrupt):
                raise
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            detail, ok = f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:]).rstrip(), False
        seconds = time.perf_counter() - t
        self.results.append(StepResult(name, ok, seconds, detail))
        mark = " ok " if ok else "FAIL"
        first, _, rest = detail.partition("\n")
        self.say(f"  [{mark}] {name:<12} {seconds:6.2f} s  {first}")
        for line in rest.splitlines():
            self.say(f"  {'':<6} {'':<12} {'':>8}  {line}")
        return ok

    # -- the steps -------------------------------------------------------------------------------

    def imports(self) -> str:
        import alembic
        import cv2
        import faiss
        import numpy
        import PySide6
        import scipy
        import shapely
        import sqlalchemy

        import engine
        import engine.pipeline  # noqa: F401 - the engine's whole import graph
        import engine.project  # noqa: F401

        return (f"engine from {Path(engine.__file__).parent}; numpy {numpy.__version__}, OpenCV {cv2.__version__}, "
                f"faiss {faiss.__version__}, shapely {shapely.__version__}, scipy {scipy.__version__}, "
                f"SQLAlchemy {sqlalchemy.__version__}, Alembic {alembic.__version__}, PySide6 {PySide6.__version__}"
                f"{self.postgres_client()}")

    @staticmethod
    def postgres_client() -> str:
        """psycopg and the libpq it loads (team projects' catalogs): the bundle must carry them; a pip
        install has them with the postgres extra."""
        try:
            import psycopg

            return f", psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}, {psycopg.pq.__impl__})"
        except ImportError as e:
            if getattr(sys, "frozen", False):
                raise CheckFailed(f"the bundle lacks the PostgreSQL client ({e}): team projects cannot open") from e
            return "; no psycopg (team projects need pip install 'pixret-desktop[postgres]')"

    def demo_images(self) -> str:
        from engine.demo import make_collection

        self.collection = col = make_collection(self.workdir / "images", **self.demo_options)
        n_views = sum(len(v) for v in col.views.values())
        self.n_images = n_views + len(col.distractors)
        return (f"{self.n_images} images ({len(col.views)} objects x {n_views // max(1, len(col.views))} views, "
                f"{len(col.distractors)} distractors) in {col.root}")

    def index(self, folder: Path | None = None, db_url: str | None = None) -> str:
        from engine.catalog.migrations import current_revision, head_revision
        from engine.project import Project

        project = Project.create(folder or self.project_folder, root=self.collection.root, db_url=db_url)
        try:
            report = project.index_folder(self.collection.root)
            if report.failed:
                raise CheckFailed(f"{len(report.failed)} demo images could not be read: {report.failed[:3]}")
            indexed = len(project.indexed_images())
            if indexed != self.n_images:
                raise CheckFailed(f"{indexed} of {self.n_images} images indexed ({report.summary()})")
            revision, head = current_revision(project.catalog.engine), head_revision()
            if revision != head:
                raise CheckFailed(f"catalog at schema {revision}, expected {head}")
        finally:
            project.close()
        self.indexed = self.indexed or folder is None  # the window opens the local project
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
        return f"{indexed} images indexed ({stages}); catalog schema {revision} (head)"

    def search(self, folder: Path | None = None, db_url: str | None = None) -> str:
        import engine.annotate.review as review
        import engine.pipeline as pipeline
        from engine.base.regions import Region
        from engine.project import Project

        name = next(iter(self.collection.views))
        (query_rel, query_poly), *others = self.collection.views[name]
        project = Project.open(folder or self.project_folder, db_url=db_url)
        try:
            query_id = project.image_id(query_rel)
            if query_id is None:
                raise CheckFailed(f"the query image {query_rel} is not in the catalog")
            result = pipeline.search(project, pipeline.Query(query_id, Region.from_polygons([query_poly])),
                                     method=self.method)
            if not result.hits:
                raise CheckFailed(f"the search ({self.method}) returned no hits")
            verified = [h for h in result.hits if h.stage == "verified" and h.region is not None]
            top = verified[:len(others)]
            expected = {rel for rel, _ in others}
            got = [h.path for h in top]
            if set(got) != expected:
                raise CheckFailed(f"the top verified hits should be {sorted(expected)}, got {got} "
                                  f"(of {len(result.hits)} hits, {len(verified)} verified with a region)")
            truth = dict(others)
            ious = []
            for hit in top:
                w, h = project.image_size(hit.image_id)
                ious.append(hit.region.iou(Region.from_polygons([truth[hit.path]]), h, w))
            if min(ious) <= MIN_IOU:
                bad = [f"{hit.path} {iou:.2f}" for hit, iou in zip(top, ious) if iou <= MIN_IOU]
                raise CheckFailed(f"predicted regions too far from the truth (IoU <= {MIN_IOU}): {', '.join(bad)}")
            # The catalog side of a search: saved, a decision recorded, read back.
            qid = review.save_search(project, result)
            review.set_decision(project, qid, top[0].image_id, "accepted", top[0].region)
            decided = review.decisions(project, qid)
            if decided.get(top[0].image_id) is None or decided[top[0].image_id].kind != "accepted":
                raise CheckFailed(f"the decision on {top[0].path} was not read back from the catalog")
            stored = review.load_search(project, qid)
            if len(stored.hits) != len(result.hits):
                raise CheckFailed(f"the stored search has {len(stored.hits)} hits, the search {len(result.hits)}")
        finally:
            project.close()
        return (f"{self.method}: {len(result.hits)} hits, {len(verified)} verified; {name}'s other views "
                f"are the top {len(top)} (IoU {' '.join(f'{x:.2f}' for x in ious)}); "
                f"search {result.timings.get('total', 0.0):.2f} s; saved and reviewed in the catalog")

    def team_catalog(self) -> str:
        """The index and search steps again with the catalog on the PostgreSQL server at `team_db`
        (an empty database): the bundle's psycopg and libpq, Alembic's PostgreSQL migrations."""
        from sqlalchemy.engine import make_url

        folder = self.workdir / "team-project"
        indexed = self.index(folder, self.team_db)
        searched = self.search(folder, self.team_db)
        url = make_url(self.team_db)
        return f"on {url.drivername} database {url.database!r}: {indexed.split(';')[0]}; {searched.split(';')[0]}"

    def main_window(self) -> str:
        from PySide6.QtCore import QCoreApplication, QEventLoop, QLibraryInfo, QSettings, QTimer
        from PySide6.QtWidgets import QApplication

        if QApplication.instance() is None:
            # Read by QGuiApplication's constructor: offscreen, whatever display there is.
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from pixret_desktop.settings import AppSettings
        from pixret_desktop.startup import create_window, make_application

        app = make_application()
        # Where Qt looks for plugins (the bundle's own folder when frozen), and what it finds there.
        dirs = [Path(d) / "platforms" for d in QCoreApplication.libraryPaths()]
        dirs.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
        found = sorted({p.name for d in dirs for p in d.glob("*") if "offscreen" in p.name or "xcb" in p.name})
        if sys.platform.startswith("linux"):
            missing = [n for n in ("offscreen", "xcb") if not any(n in f for f in found)]
            if missing:
                raise CheckFailed(f"Qt platform plugin(s) {', '.join(missing)} missing from "
                                  f"{', '.join(map(str, dict.fromkeys(dirs)))}")
        settings = AppSettings(QSettings(str(self.workdir / "settings.ini"), QSettings.Format.IniFormat))
        window, controller = create_window(settings)
        listed = None
        try:
            window.resize(1200, 800)
            window.show()
            QCoreApplication.processEvents()
            if self.indexed:
                loop = QEventLoop()
                seen: list[int] = []

                def loaded(*_args) -> None:
                    seen.append(controller.images.total)
                    loop.quit()

                controller.project_ctl.images_loaded.connect(loaded)
                errors: list[str] = []
                controller.project_ctl.error.connect(lambda title, msg: (errors.append(f"{title}: {msg}"), loop.quit()))
                QTimer.singleShot(GUI_TIMEOUT_MS, loop.quit)
                controller.open_project(self.project_folder)
                loop.exec()
                if errors:
                    raise CheckFailed(f"opening the project in the window failed: {errors[0]}")
                if not seen:
                    raise CheckFailed(f"the window did not list the project's images in {GUI_TIMEOUT_MS // 1000} s")
                listed = controller.images.total
                if listed != self.n_images:
                    raise CheckFailed(f"the window lists {listed} images, the project has {self.n_images}")
        finally:
            window.close()  # the controller closes the project, waits for its workers
            QCoreApplication.processEvents()
            window.deleteLater()
            QCoreApplication.processEvents()
        what = f"{listed} images listed" if listed is not None else "no project opened"
        return f"platform {app.platformName()}; plugins {', '.join(found) or '(none found)'}; {what}"


def _version() -> str:
    from pixret_desktop import __version__

    return __version__


def run_self_test(out: TextIO | None = None, *, workdir: Path | None = None, keep: bool = False,
                  demo_options: dict | None = None, gui: bool = True, method: str = "sv",
                  team_db: str | None = None) -> int:
    """Run every step, print the report to `out` (default: stdout); 0 when all pass, else 1.

    workdir: where the temporary collection and project go (default: a fresh temporary folder,
    removed afterwards unless keep). demo_options: passed to engine.demo.make_collection (tests
    use a smaller collection). gui: also open the main window offscreen. team_db: an empty
    PostgreSQL database's URL (default: $PIXRET_SELF_TEST_DB): also index and search with the
    catalog there.
    """
    team_db = team_db or os.environ.get(TEAM_DB_VAR) or None
    out = out if out is not None else sys.stdout
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="pixret-self-test-")) if own_dir else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    test = SelfTest(out, workdir, demo_options, gui, method, team_db)
    frozen = "frozen" if getattr(sys, "frozen", False) else "from source"
    test.say(f"PixRet Desktop {_version()} self-test ({frozen}; Python {platform.python_version()}, "
             f"{platform.system()} {platform.machine()}; work folder {workdir})")
    try:
        ok = test.step("imports", test.imports)
        ok = ok and test.step("demo images", test.demo_images)
        ok = ok and test.step("index", test.index)
        ok = ok and test.step("search", test.search)
        if test.team_db:
            ok = ok and test.step("team catalog", test.team_catalog)
        if gui:  # runs even when an engine step failed: a second finding is worth the seconds
            ok = test.step("main window", test.main_window) and ok
    finally:
        if own_dir and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - t0
    failed = [r.name for r in test.results if not r.ok]
    if ok and not failed:
        test.say(f"self-test passed in {total:.1f} s")
        return 0
    test.say(f"self-test FAILED ({', '.join(failed) or 'incomplete'}) after {total:.1f} s")
    return 1


def main() -> int:
    """Entry of `pixret-desktop --self-test`. Without a console (a windowed Windows or macOS build
    has sys.stdout None) the report is written to REPORT_FILE in the temporary folder instead."""
    if sys.stdout is None:
        path = Path(tempfile.gettempdir()) / REPORT_FILE
        with open(path, "w", encoding="utf-8") as fh:
            return run_self_test(fh)
    return run_self_test()
