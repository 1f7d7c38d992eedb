"""The main controller: builds the models and controllers around a MainWindow and wires them.

Modes of the canvas: 'query' (an image picked in the collection, its outline is the query),
'hit' (a result picked in the ranked list, its outline is reviewed) and 'view' (a view of a
remembered object picked in the Objects dock, shown, not edited). Tools, undo and the header
follow whichever document is on the canvas.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence, QUndoGroup
from PySide6.QtWidgets import QMessageBox

import engine.annotate.review as review
import engine.pipeline as pipeline
from pixret_desktop import status as S
from pixret_desktop.controllers.canvas import CanvasController
from pixret_desktop.controllers.files import FileActions
from pixret_desktop.controllers.objects import ObjectsController
from pixret_desktop.controllers.outline import OutlineController
from pixret_desktop.controllers.preferences import PreferenceActions, method_choices
from pixret_desktop.controllers.project import ProjectController
from pixret_desktop.controllers.review import ReviewController
from pixret_desktop.controllers.search import SearchController, search_config
from pixret_desktop.geometry import region_to_path
from pixret_desktop.models import ImageIdRole
from pixret_desktop.models.images import ImageListModel
from pixret_desktop.models.objects import ObjectsModel
from pixret_desktop.models.results import ResultsModel, score_text
from pixret_desktop.models.thumbnails import ThumbnailCache
from pixret_desktop.settings import AppSettings
from pixret_desktop.views.dialogs import FailuresDialog, JobRow
from pixret_desktop.views.folder_dialog import FolderDialog
from pixret_desktop.views.main_window import MainWindow
from pixret_desktop.workers import JobManager, Worker


def no_match_text(method: str, n_candidates: int) -> str:
    """What to say when nothing was verified, and what to try next."""
    others = [pipeline.method_title(m) for m in ("topo", "full") if m != method and m in pipeline.METHODS]
    tries = []
    if others:
        tries.append(f"another method ({' or '.join(others)}, for things with depth or seen from far off)")
    tries.append("a larger outline: more of the object, with its print, texture or edges inside")
    said = ("No verified match: nothing in the collection could be confirmed to show the outlined object."
            + (f" The {n_candidates} photos below only look similar." if n_candidates else ""))
    return f"{said} Try {', or '.join(tries)}."


def _known(obj) -> str:
    """"poster — 12 reviewed images": what a remembered object brings to a search."""
    n = len(obj.reviewed)
    return f"{obj.name} — {n} reviewed image{'s' * (n != 1)}"


class MainController(FileActions, PreferenceActions, QObject):
    def __init__(self, window: MainWindow, settings: AppSettings | None = None, parent=None):
        super().__init__(parent)
        self.window = w = window
        self.settings = settings or AppSettings()
        self.jobs = JobManager(self)
        self.cache = ThumbnailCache(self.settings.get("thumbnail_size"), self, dpr=window.devicePixelRatioF())
        self.images = ImageListModel(self.cache, self)
        self.results = ResultsModel(self.cache, self)
        w.grid.setModel(self.images)
        w.results.setModel(self.results)
        self.undo_group = QUndoGroup(self)
        self.canvas_ctl = CanvasController(w.canvas, self.jobs, self.undo_group, self)
        self.tools = self.canvas_ctl.tools
        self.project_ctl = ProjectController(self.jobs, self)
        self.search_ctl = SearchController(self.jobs, self)
        self.review_ctl = ReviewController(self.jobs, self.canvas_ctl, self.results, w.results, self)
        self.review_ctl.author = self.settings.get("author")
        self.outline_ctl = OutlineController(self.jobs, self)
        self.objects = ObjectsModel(self)
        self.objects_ctl = ObjectsController(self.jobs, self.objects, w.objects_panel, self)
        self.mode: str | None = None  # 'query' | 'hit' | 'view'
        self.query_image: int | None = None
        self.shown_view = None  # (ObjectInfo, View) in 'view' mode
        self.object_note = ""  # what the running or last search knew of its object, for the status bar
        self.job_rows: dict[Worker, JobRow] = {}
        self.dialogs: list = []  # non-modal dialogs and message boxes kept alive (tests read them)
        self.last_report = None
        self.last_export = None
        self.last_import = None
        self._demo_query = None  # (collection path, Region) to show once the demo's photos are listed
        self.folder_dialog: FolderDialog | None = None  # the folder chooser last opened (tests type into it)
        self._wire()
        self._setup_methods()
        self._setup_export()
        self.review_ctl.advance = self.settings.get("advance_after_decision")
        self.apply_keys()
        self._update_enabled()
        w.close_handler = self.on_close
        w.canvas.clear("Open a project (File ▸ Open Project, or File ▸ Open Demo Project)")

    # -- wiring ---------------------------------------------------------------------------------------

    def _wire(self) -> None:
        w, t = self.window, self.tools
        # jobs in the status bar
        self.jobs.job_started.connect(self._job_started)
        self.jobs.job_ended.connect(self._job_ended)
        # project
        p = self.project_ctl
        w.act_new_project.triggered.connect(self.ask_new_project)
        w.act_open_project.triggered.connect(self.ask_open_project)
        w.act_open_team_project.triggered.connect(self.ask_open_team_project)
        w.act_open_demo.triggered.connect(lambda: self.open_demo())
        w.act_import_folder.triggered.connect(self.ask_import_folder)
        w.act_import_folder_cluster.triggered.connect(self.ask_import_folder_on_cluster)
        for fmt in ("labelme", "coco", "pixbench"):
            getattr(w, f"act_import_{fmt}").triggered.connect(lambda _c=False, f=fmt: self.ask_import_annotations(f))
        w.act_show_failures.triggered.connect(lambda: p.load_failures())
        w.act_close_project.triggered.connect(self.close_project)
        w.act_quit.triggered.connect(w.close)
        w.recent_menu.aboutToShow.connect(self._fill_recent)
        p.opened.connect(self._project_opened)
        p.closing.connect(self.review_ctl.stop_watching)
        p.closed.connect(self._project_closed)
        p.images_loaded.connect(self._images_loaded)
        p.import_finished.connect(self._import_finished)
        p.failures_loaded.connect(self.show_failures)
        p.error.connect(self.show_error)
        p.message.connect(self.show_message)
        # collection browser
        w.grid.selectionModel().currentChanged.connect(
            lambda idx, _prev: idx.isValid() and self.open_query_image(idx.data(ImageIdRole)))
        w.grid.clicked.connect(lambda idx: self.open_query_image(idx.data(ImageIdRole)))
        w.status_filter.currentIndexChanged.connect(
            lambda _i: (self.images.set_filter(status=w.status_filter.currentData()), self._save_view_state()))
        w.name_filter.textChanged.connect(lambda text: (self.images.set_filter(name=text), self._save_view_state()))
        self.images.modelReset.connect(self._update_count)
        w.act_focus_filter.triggered.connect(lambda: (w.name_filter.setFocus(), w.name_filter.selectAll()))
        # canvas, tools, undo
        for name in t.TOOLS:
            getattr(w, f"act_tool_{name}").triggered.connect(lambda _c=False, n=name: t.set_tool(n))
        t.tool_changed.connect(lambda n: getattr(w, f"act_tool_{n}").setChecked(True))
        w.act_brush_smaller.triggered.connect(t.shrink_brush)
        w.act_brush_larger.triggered.connect(t.grow_brush)
        w.brush_size.setValue(t.brush_radius * 2)
        w.brush_size.valueChanged.connect(lambda v: abs(v - t.brush_radius * 2) > 0.5 and t.set_brush_size(v))
        t.brush_size_changed.connect(lambda d: w.brush_size.setValue(round(d)))
        w.act_clear_region.triggered.connect(t.clear)
        w.act_undo.triggered.connect(self.undo)
        w.act_redo.triggered.connect(self.redo)
        self.undo_group.canUndoChanged.connect(lambda _b: self._update_enabled())
        self.undo_group.canRedoChanged.connect(lambda _b: self._update_enabled())
        self.undo_group.undoTextChanged.connect(lambda s: w.act_undo.setToolTip(f"Undo {s}" if s else "Undo"))
        self.undo_group.redoTextChanged.connect(lambda s: w.act_redo.setToolTip(f"Redo {s}" if s else "Redo"))
        w.act_fit.triggered.connect(w.canvas.fit)
        w.act_zoom_100.triggered.connect(w.canvas.zoom_actual)
        w.act_zoom_in.triggered.connect(lambda: w.canvas.zoom_by(1.25))
        w.act_zoom_out.triggered.connect(lambda: w.canvas.zoom_by(0.8))
        w.canvas.zoom_changed.connect(
            lambda s: w.zoom_label.setText(f" {s * w.canvas.devicePixelRatioF() * 100:.0f} %" if s else ""))
        w.canvas.cursor_moved.connect(lambda x, y: w.cursor_label.setText(f"x {x:.0f}  y {y:.0f}"))
        self.canvas_ctl.load_failed.connect(lambda _i, msg: self.show_message(f"Cannot show the image: {msg}"))
        t.document_changed.connect(lambda _d: self._update_header())
        t.edited.connect(self._update_header)
        # search
        s = self.search_ctl
        w.act_search.triggered.connect(self.run_search)
        w.search_button.clicked.connect(self.run_search)
        w.act_cancel_search.triggered.connect(s.cancel)
        s.partial.connect(self._search_partial)
        s.recalled.connect(self._recalled)
        s.finished.connect(self._search_finished)
        s.failed.connect(self._search_failed)
        s.cancelled.connect(lambda: (self._clear_object_note(), self.show_message("Search cancelled")))
        w.recall_banner.new_object_clicked.connect(self.search_as_new)
        s.started.connect(lambda _w: (self._clear_object_note(), self._update_enabled()))  # a note is per search
        # review
        r = self.review_ctl
        w.act_accept.triggered.connect(r.accept)
        w.act_reject.triggered.connect(r.reject)
        w.act_unreview.triggered.connect(r.unreview)
        w.act_next_hit.triggered.connect(r.next)
        w.act_prev_hit.triggered.connect(r.prev)
        w.act_sort_score.triggered.connect(lambda: self.set_sort("score"))
        w.act_sort_uncertainty.triggered.connect(lambda: self.set_sort("uncertainty"))
        w.sort.currentIndexChanged.connect(lambda _i: self.set_sort(w.sort.currentData()))
        w.history.activated.connect(self._history_chosen)
        r.current_changed.connect(self._current_hit_changed)
        r.result_shown.connect(self._result_shown)
        r.decision_changed.connect(lambda _i, _k: self._update_summary())
        r.saving_changed.connect(lambda: w.saved_label.setText(r.saving_text()))
        r.decision_saved.connect(self._decision_saved)
        r.queries_loaded.connect(self._queries_loaded)
        r.conflict.connect(self.ask_conflict)
        r.remote_changed.connect(self._decided_elsewhere)
        r.error.connect(self.show_error)
        r.message.connect(self.show_message)
        # outlines drawn after the search, and the refine tool
        self.outline_ctl.outlined.connect(self._hit_outlined)
        self.outline_ctl.failed.connect(self.show_message)
        t.refine_requested.connect(self._refine_requested)
        # remembered objects
        o = self.objects_ctl
        o.view_chosen.connect(self.open_view)
        o.search_requested.connect(self.search_again)
        o.error.connect(self.show_error)
        o.message.connect(self.show_message)
        # evidence, settings, help
        w.act_evidence.toggled.connect(self._toggle_evidence)
        w.act_settings.triggered.connect(self.ask_settings)
        w.act_shortcuts.triggered.connect(self.show_shortcuts)
        w.act_about.triggered.connect(self.show_about)

    def _setup_methods(self) -> None:
        combo = self.window.method
        combo.clear()
        for name, (title, tip) in method_choices().items():
            combo.addItem(title, name)
            combo.setItemData(combo.count() - 1, tip, Qt.ToolTipRole)
        i = combo.findData(self.settings.get("default_method"))
        combo.setCurrentIndex(max(0, i))
        self.window.top_k.setValue(self.settings.get("top_k"))
        budget = self.window.budget
        budget.setValue(self.settings.get("thorough_budget"))
        budget.setVisible(combo.currentData() == "thorough")
        combo.currentIndexChanged.connect(lambda _i: budget.setVisible(combo.currentData() == "thorough"))
        budget.valueChanged.connect(lambda v: self.settings.set("thorough_budget", v))

    # -- projects --------------------------------------------------------------------------------------

    @property
    def project(self):
        return self.project_ctl.project

    def _project_opened(self, project) -> None:
        if project.catalog.engine.dialect.name == "sqlite":  # (a team project is reopened with its URL)
            self.settings.add_recent(project.folder)
        self.window.setWindowTitle(f"PixRet — {project.folder.parent.name}/{project.folder.name}")
        self.cache.set_folder(project.folder)
        self.search_ctl.set_project(project)
        self.review_ctl.set_project(project)
        self.outline_ctl.set_project(project)
        self.objects_ctl.set_project(project)
        self._clear_object_note()
        self.query_image = None
        self.mode = None
        self.canvas_ctl.clear()
        self.window.canvas.empty_text = "Pick an image in the collection, outline the object, then Search"
        self.window.history.clear()
        self._restore_view_state(project)
        self.review_ctl.load_history()
        self._restore_latest = True
        self._pending_open = None
        self.show_message(f"Opened {project.folder}")
        self._update_enabled()
        self._update_header()

    def _restore_view_state(self, project) -> None:
        """This project's collection filters and results order as it was left (another project's never carry over)."""
        state = self.settings.view_state(project.folder)
        w = self.window
        w.name_filter.setText(str(state.get("name_filter") or ""))
        w.status_filter.setCurrentIndex(max(0, w.status_filter.findData(state.get("status_filter") or "all")))
        self.set_sort(state.get("sort") if state.get("sort") in ("score", "uncertainty") else "score")

    def _save_view_state(self) -> None:
        if self.project is not None:
            w = self.window
            self.settings.set_view_state(self.project.folder, name_filter=w.name_filter.text(),
                                         status_filter=w.status_filter.currentData(), sort=self.results.sort)

    def _project_closed(self) -> None:
        w = self.window
        w.name_filter.setText("")  # (the project is gone: nothing is saved by these)
        w.status_filter.setCurrentIndex(0)
        self.window.setWindowTitle("PixRet")
        self.images.clear()
        self.cache.set_folder(None)
        self.search_ctl.set_project(None)
        self.review_ctl.set_project(None)
        self.outline_ctl.set_project(None)
        self.objects_ctl.set_project(None)
        self._clear_object_note()
        self.canvas_ctl.clear()
        self.window.history.clear()
        self.query_image, self.mode = None, None
        self._update_enabled()
        self._update_header()
        self._update_summary()

    def _images_loaded(self, root, images, statuses) -> None:
        self.images.set_images(root, images, statuses)
        self.results.root = Path(root) if root else None
        self.results.sizes = self.images.sizes()
        self.window.results.viewport().update()  # results shown earlier can now ask for thumbnails
        self._update_count()
        self._try_restore()
        self.window.canvas.empty_text = ("Pick an image in the collection, outline the object, then Search"
                                         if images else "This project has no images yet: File ▸ Import Folder…")
        self.window.canvas.viewport().update()
        self._update_enabled()  # Search needs images
        self._show_demo_query()

    def _show_demo_query(self) -> None:
        """Once the demo's photos are listed: its query photo on the canvas, outlined, ready to search."""
        rel, region = getattr(self, "_demo_query", None) or (None, None)
        info = next((i for i in self.images._all if i.path == rel), None) if rel else None
        if info is None:
            return
        self._demo_query = None
        self.search_ctl.document(info.id, region)
        self.open_query_image(info.id)
        self.show_message("The demo: a can outlined on its first photo. Press Search (Ctrl+Enter) to find it "
                          "in the others")

    def _try_restore(self) -> None:
        """After reopening a project: show the last search's query image once it is known."""
        image_id = getattr(self, "_pending_open", None)
        if image_id is None or self.results.query_id is None or self.images.info(image_id) is None:
            return
        self._pending_open = None
        if self.mode is None:
            self.open_query_image(image_id)

    def _update_count(self) -> None:
        n, total = self.images.rowCount(), self.images.total
        self.window.grid_count.setText(f"{n} of {total} images" if n != total else f"{total} images")

    def _import_finished(self, report) -> None:
        self.last_report = report
        if report.failed:
            self.show_failures(report.failed)

    def show_failures(self, failures) -> FailuresDialog:
        dlg = FailuresDialog(list(failures), self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        self.dialogs.append(dlg)
        dlg.finished.connect(lambda _r, d=dlg: d in self.dialogs and self.dialogs.remove(d))
        dlg.show()
        return dlg

    def _fill_recent(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        recent = self.settings.recent_projects()
        for folder in recent:
            a = menu.addAction(folder)
            a.triggered.connect(lambda _c=False, f=folder: self.open_project(f))
        if not recent:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear the list").triggered.connect(self.settings.clear_recent)

    # -- canvas modes ------------------------------------------------------------------------------------

    def open_query_image(self, image_id) -> None:
        if image_id is None or self.project is None or self.images.root is None:
            return
        info = self.images.info(int(image_id))
        if info is None:
            return
        if info.status in ("error", "missing"):
            self.show_message(f"{info.path} cannot be read: {info.error or info.status}")
            return
        self._leave_results()
        self.mode, self.query_image = "query", info.id
        doc = self.search_ctl.document(info.id)
        self.canvas_ctl.show(info.id, self.images.root / info.path, doc)
        self._update_header()
        self._update_enabled()

    def open_view(self, obj, view) -> None:
        """A remembered object's view on the canvas: its image with the view's region, drawn as a
        hit's outline is, but not editable (a view changes by reviewing the hits of its searches)."""
        if self.project is None or self.images.root is None:
            return
        self._leave_results()
        self.mode, self.shown_view = "view", (obj, view)
        image_id = view.image if isinstance(view.image, int) else -1  # a query file outside the collection
        self.canvas_ctl.show(image_id, self.images.root / view.image_path, None)
        self.window.canvas.set_region_path(region_to_path(view.region))
        self._update_header()
        self._update_enabled()

    def _leave_results(self) -> None:
        """The canvas is about to show something other than a hit: no hit is current."""
        self.review_ctl.current = None
        self.window.canvas.set_points([])
        self.window.results.clearSelection()
        self.window.results.setCurrentIndex(self.results.index(-1))

    def _current_hit_changed(self, hit) -> None:
        if hit is not None:
            self.mode = "hit"
            if self.results.query_id is not None and self.results.status_of(hit.image_id) == "unreviewed":
                self.outline_ctl.outline_hit(self.results.query_id, self.results.result, hit)
        elif self.mode == "hit":  # the hit on the canvas went away (a new search, another one loaded)
            self.mode = None
            if self.query_image is not None and self.project is not None:
                self.open_query_image(self.query_image)
            else:
                self.canvas_ctl.clear()
        if self.window.act_evidence.isChecked():
            self._fill_evidence()
        self._update_header()
        self._update_enabled()

    def _update_header(self) -> None:
        w = self.window
        if self.project is None:
            w.set_canvas_header("No project", "")
            w.query_label.setText("Open a project to search it.")
            return
        if self.mode == "hit" and self.review_ctl.current is not None:
            hit = self.review_ctl.current
            st = self.results.status_of(hit.image_id)
            rank = self.results.rank_of(hit.image_id)
            keys = self.keys
            hint = f"edited: press {keys('accept')} to accept the correction" \
                if self.review_ctl.has_unsaved_edit() else \
                f"{keys('accept')} accept · {keys('reject')} reject · {keys('prev_hit')}/{keys('next_hit')} previous/next"
            w.set_canvas_header(f"Hit #{rank} of {self.results.rowCount()} — {hit.path} — {score_text(hit, ' ')}",
                                S.LABELS.get(st, st), S.color(st), hint, tip=self._abs(hit.path))
        elif self.mode == "query" and self.query_image is not None:
            info = self.images.info(self.query_image)
            name = info.path if info else str(self.query_image)
            st = self.images.review_status(info) if info else "unreviewed"
            w.set_canvas_header(f"Query image — {name}", S.LABELS.get(st, st) if st != "unreviewed" else "",
                                S.color(st), "outline it, then Ctrl+Enter to search", tip=self._abs(name))
        elif self.mode == "view" and self.shown_view is not None:
            obj, view = self.shown_view
            w.set_canvas_header(f"Object {obj.name} — {view.kind} view — {view.image_path}",
                                S.LABELS.get(view.kind, "Query outline"), S.color(view.kind),
                                "Objects ▸ Search again finds more of it")
        else:
            w.set_canvas_header("No image", "")
        doc = self.search_ctl.documents.get(self.query_image) if self.query_image is not None else None
        if self.query_image is None:
            w.query_label.setText("Pick an image and outline the object.")
        else:
            info = self.images.info(self.query_image)
            name = info.path if info else "?"
            if doc is None or doc.is_empty:
                w.query_label.setText(f"Query: {name} (no outline yet)")
            else:
                w.query_label.setText(f"Query: {name}, outline of {doc.region.area:.0f} px²")

    def _abs(self, rel: str) -> str:
        """A collection path as the full path on disk (for tooltips)."""
        return str(self.images.root / rel) if self.images.root is not None else rel

    def keys(self, action: str) -> str:
        """The first key of a window action, as the menus show it ("A", "→")."""
        a = getattr(self.window, f"act_{action}")
        key = a.shortcut().toString(QKeySequence.NativeText) or "—"
        return {"Left": "←", "Right": "→", "Up": "↑", "Down": "↓"}.get(key, key)

    def _update_enabled(self) -> None:
        w = self.window
        has_project = self.project is not None
        reviewing = self.mode == "hit" and self.review_ctl.current is not None and self.results.query_id is not None
        for a in (w.act_import_folder, w.act_import_folder_cluster, w.act_show_failures, w.act_close_project,
                  w.act_import_labelme, w.act_import_coco, w.act_import_pixbench):
            a.setEnabled(has_project)
        can_search = has_project and self.images.total > 0
        w.act_search.setEnabled(can_search)
        w.search_button.setEnabled(can_search)
        w.search_button.setToolTip("Search the collection for the outlined object (Ctrl+Enter)" if can_search else
                                   "Import photos first (File ▸ Import Folder)" if has_project else
                                   "Open a project first")
        w.act_cancel_search.setEnabled(self.search_ctl.running)
        for a in (w.act_accept, w.act_reject, w.act_unreview):
            a.setEnabled(reviewing)
        for a in self.export_actions.values():
            a.setEnabled(has_project)
        w.act_undo.setEnabled(self.undo_group.canUndo() or self.review_ctl.can_go_back())
        w.act_redo.setEnabled(self.undo_group.canRedo())

    def undo(self) -> None:
        self.tools.cancel_gesture()
        if self.mode == "hit" and self.review_ctl.can_go_back():
            self.review_ctl.go_back()  # a decision that moved on: undo it where it was made
        self.undo_group.undo()
        self._update_header()

    def redo(self) -> None:
        self.tools.cancel_gesture()
        self.undo_group.redo()
        self._update_header()

    # -- search ----------------------------------------------------------------------------------------

    def run_search(self) -> Worker | None:
        if self.project is None:
            return None
        if self.query_image is None:
            self.show_message("Pick the query image in the collection and outline the object first")
            return None
        worker = self.search_ctl.run(self.query_image, *self._search_options())
        self._update_enabled()
        return worker

    def _search_options(self) -> tuple[str, int, pipeline.SearchConfig]:
        """Method, top k, and the search's settings: the Thorough method's budget, the guessed outlines."""
        method = self.window.method.currentData() or "sv"
        budget = float(self.window.budget.value()) if method == "thorough" else None
        return method, self.window.top_k.value(), search_config(budget, self.settings.get("outline_guesses"))

    def search_again(self, object_id: int) -> Worker | None:
        """Search for a remembered object with all its views (the Objects dock's "Search again")."""
        info = next((o for o in self.objects.objects if o.id == object_id), None)
        worker = self.search_ctl.run_object(object_id, *self._search_options())
        if worker is not None and info is not None:
            self._set_object_note(f"Searching again: {_known(info)} first, then only what is new", offer_new=False)
        self._update_enabled()
        return worker

    def search_as_new(self) -> Worker | None:
        """The recalled region searched again as something new (the recall banner's button)."""
        worker = self.search_ctl.search_as_new()
        if worker is not None:
            self.show_message("Searching as a new object")
        self._update_enabled()
        return worker

    def _recalled(self, found) -> None:
        self._set_object_note(f"Seen before: {_known(found.object)}; searching only what is new", offer_new=True)

    def _set_object_note(self, text: str, *, offer_new: bool) -> None:
        self.object_note = text
        self.window.recall_banner.show_text(text, offer_new=offer_new)
        self.show_message(text)

    def _clear_object_note(self) -> None:
        self.object_note = ""
        self.window.recall_banner.setVisible(False)

    def _search_partial(self, result) -> None:
        self.review_ctl.show_partial(result)
        if result.object_id is None:  # (an object's search keeps its note in the status bar)
            found = sum(h.stage in ("verified", "propagated") for h in result.hits)
            self.show_message(f"{found} found; outlining…" if found else
                              f"Shortlist of {len(result.hits)} images; verifying…")

    def _search_finished(self, result, query_id: int) -> None:
        self.review_ctl.show_result(result, query_id, {})
        total = result.timings.get("total") if result.timings else None
        found = self.results.n_found
        counts = ((f"{found} found" if found else "No verified match")
                  + f", {self.results.n_unverified} unverified candidates"
                  + (f" in {total:.2f} s" if total is not None else ""))
        self.show_message(f"{self.object_note}. {counts}" if self.object_note else counts)
        self.review_ctl.load_history()
        self.objects_ctl.refresh()
        self._update_enabled()

    def _search_failed(self, message: str) -> None:
        self._clear_object_note()
        self._update_enabled()
        if self.search_ctl.worker is None and "Outline" in message:
            self.show_message(message)
            return
        self.show_error("Search failed", message)

    def _result_shown(self, query_id) -> None:
        result = self.results.result
        if query_id is not None and result is not None and isinstance(result.query.image, int) \
                and result.query.image not in self.search_ctl.documents:
            # a stored search: its outline becomes the query image's starting outline
            self.search_ctl.document(result.query.image, result.query.region)
        self._try_restore()
        self._update_summary()
        self._select_history(query_id)
        self._update_enabled()

    def _update_summary(self) -> None:
        r, w = self.results, self.window
        if r.result is None:
            w.results_summary.setText("No search yet")
            w.results_summary.setToolTip("")
            w.results_notice.clear()
            return
        n = r.rowCount()
        if r.partial:
            w.results_summary.setText(f"{n} look-alike candidates: verifying…")
            w.results_notice.clear()
            return
        counts = {k: 0 for k in S.STATUSES}
        for h in r.hits():
            counts[r.status_of(h.image_id)] += 1
        reviewed = n - counts["unreviewed"]
        w.results_summary.setText(f"{r.n_found} found · {reviewed} of {n} reviewed")
        tip = (f"{r.n_found} found (verified, or reached through verified photos), {r.n_unverified} unverified "
               f"candidates\n{counts['accepted']} accepted · {counts['corrected']} corrected · "
               f"{counts['rejected']} rejected · {counts['unreviewed']} unreviewed")
        if r.result.uncertainty is not None:
            tip += f"\nuncertainty {r.result.uncertainty:.2f}"
        w.results_summary.setToolTip(tip)
        if r.n_found == 0:
            w.results_notice.show_text(no_match_text(r.result.method, n))
        else:
            w.results_notice.clear()

    def set_sort(self, sort: str) -> None:
        w = self.window
        self.results.set_sort(sort)
        self._save_view_state()
        (w.act_sort_uncertainty if sort == "uncertainty" else w.act_sort_score).setChecked(True)
        i = w.sort.findData(sort)
        if w.sort.currentIndex() != i:
            w.sort.setCurrentIndex(i)
        cur = self.review_ctl.current
        if cur is not None and self.results.row_of(cur.image_id) is not None:
            idx = self.results.index(self.results.row_of(cur.image_id))
            w.results.selectionModel().blockSignals(True)
            w.results.setCurrentIndex(idx)
            w.results.selectionModel().blockSignals(False)
            w.results.scrollTo(idx)

    def _queries_loaded(self, queries) -> None:
        combo = self.window.history
        combo.blockSignals(True)
        combo.clear()
        for q in queries:
            how = f"imported {q.method[7:]}" if q.method.startswith("import:") else pipeline.method_title(q.method)
            combo.addItem(f"#{q.id} {q.image_path} · {how} · {q.n_decided}/{q.n_hits} reviewed", q.id)
            combo.setItemData(combo.count() - 1, f"Search #{q.id} on {q.image_path} ({q.method}): "
                              f"{q.n_decided} of {q.n_hits} results reviewed", Qt.ToolTipRole)
        combo.blockSignals(False)
        if getattr(self, "_restore_latest", False):
            self._restore_latest = False
            if queries and self.results.query_id is None:
                self.review_ctl.load_query(queries[0].id)  # reopen where the person left off
                self._pending_open = queries[0].image_id
        self._select_history(self.results.query_id)

    def _select_history(self, query_id) -> None:
        combo = self.window.history
        i = combo.findData(query_id) if query_id is not None else -1
        combo.blockSignals(True)
        combo.setCurrentIndex(i)
        combo.blockSignals(False)

    def _history_chosen(self, index: int) -> None:
        qid = self.window.history.itemData(index)
        if qid is not None and qid != self.results.query_id:
            self._clear_object_note()  # the note was about the search being replaced
            self.review_ctl.load_query(int(qid))

    def _decision_saved(self, image_id: int, kind: str) -> None:
        if kind == "unreviewed":
            self._reload_statuses()
        else:
            self.images.set_status(image_id, kind)
        self.objects_ctl.refresh()  # a first decision makes an object; every decision changes its counts
        self.review_ctl.load_history()  # the search list's "n/100 reviewed"
        self._update_header()
        self._update_summary()
        if self.window.evidence.isVisible():
            self._fill_evidence()  # who decided, and the history

    def _decided_elsewhere(self, changed: dict) -> None:
        """Decisions by other annotators arrived in the open search."""
        self._reload_statuses()
        self.objects_ctl.refresh()
        self._update_header()
        self._update_summary()
        if self.window.evidence.isVisible():
            self._fill_evidence()

    def ask_conflict(self, conflict, state: dict) -> QMessageBox:
        """Someone else decided the hit since it was shown: keep theirs (shown now) or use mine."""
        wanted = S.LABELS.get(state["kind"], state["kind"]).lower()
        box = QMessageBox(QMessageBox.Question, "Changed by someone else",
                          f"{conflict}.\n\nYou decided: {wanted}. Keep theirs, or replace it with yours?",
                          QMessageBox.NoButton, self.window)
        box.setObjectName("conflict_box")
        theirs = box.addButton("Keep theirs", QMessageBox.RejectRole)
        box.addButton("Use mine", QMessageBox.AcceptRole).setObjectName("use_mine")
        theirs.setObjectName("keep_theirs")
        box.setDefaultButton(theirs)
        box.setAttribute(Qt.WA_DeleteOnClose)
        self.dialogs.append(box)
        box.buttonClicked.connect(lambda b: b is not theirs and self.review_ctl.decide_again(conflict, state))
        box.finished.connect(lambda _r, b=box: b in self.dialogs and self.dialogs.remove(b))
        self.show_message(str(conflict))
        box.open()
        return box

    def _reload_statuses(self) -> None:
        if self.project is None:
            return
        project = self.project
        self.jobs.start(Worker(review.image_status, project, engine_call=False, name="Statuses"), pool="io",
                        on_finished=lambda st: project is self.project and self.images.set_statuses(st))

    # -- outlines after the search, the refine tool --------------------------------------------------------

    def _hit_outlined(self, query_id: int, hit) -> None:
        if query_id == self.results.query_id:
            self.review_ctl.hit_outlined(hit)

    def _refine_requested(self, request) -> None:
        """The refine tool on a hit (the search's colour model) or on the query being drawn (the photo's own)."""
        done = self.tools.refined
        if self.mode == "hit" and self.review_ctl.current is not None and self.results.query_id is not None:
            hit = self.review_ctl.current
            self.outline_ctl.refine(request, self.results.query_id, self.results.result, hit.image_id,
                                    self.results.root / hit.path, done)
        elif self.mode == "query" and self.query_image is not None and self.images.root is not None:
            info = self.images.info(self.query_image)
            self.outline_ctl.refine(request, None, None, info.id, self.images.root / info.path, done)
        else:
            self.show_message("The refine tool works on a hit of a finished search, or on a query outline")
            done(request, None)

    # -- evidence ----------------------------------------------------------------------------------------

    def _toggle_evidence(self, on: bool) -> None:
        self.window.act_evidence.setText("Hide &Evidence" if on else "Show &Evidence")
        self.window.evidence.setVisible(on)
        if on:
            self._fill_evidence()
        else:
            self.window.canvas.set_points([])

    def _fill_evidence(self, history=None) -> None:
        hit = self.review_ctl.current
        extra = {}
        if hit is not None:
            extra["rank"] = self.results.rank_of(hit.image_id)
            extra["uncertainty"] = round(self.results.uncertainty_of(hit.image_id) or 0.0, 3)
            extra["review"] = self.results.status_of(hit.image_id)
            decision = self.results.decisions.get(hit.image_id)
            if decision is not None and decision.time is not None:
                extra["decided"] = decision.describe()
            if history is None:
                self._load_history(hit)
            elif history:  # every decision on this hit, newest first, who and when
                extra["history"] = [d.describe() for d in reversed(history)]
        self.window.evidence.show_hit(hit, extra)
        matches = (hit.evidence or {}).get("matches") if hit is not None else None
        try:  # (query x, query y, image x, image y) per inlier: mark them on the image
            self.window.canvas.set_points([(m[2], m[3]) for m in matches or []])
        except (TypeError, IndexError):
            self.window.canvas.set_points([])

    def _load_history(self, hit) -> None:
        qid, project = self.results.query_id, self.project
        if project is None or qid is None:
            return
        self.jobs.start(Worker(review.history, project, qid, hit.image_id, engine_call=False, name="History"),
                        pool="io", on_finished=lambda h: (self.review_ctl.current is hit and self.results.query_id == qid
                                                          and self._fill_evidence(h)))

    # -- jobs --------------------------------------------------------------------------------------------

    def _job_started(self, worker: Worker) -> None:
        row = JobRow(worker.name, self.window.jobs)
        row.cancel_clicked.connect(lambda w=worker, r=row: (w.cancel(), r.set_cancelling()))
        worker.signals.progress.connect(row.set_progress)
        self.window.jobs_layout.addWidget(row)
        self.job_rows[worker] = row

    def _job_ended(self, worker: Worker) -> None:
        row = self.job_rows.pop(worker, None)
        if row is not None:
            self.window.jobs_layout.removeWidget(row)
            row.deleteLater()

    # -- messages and dialogs ------------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)

    def show_error(self, title: str, message: str) -> QMessageBox:
        """A message box that does not block: the window stays usable behind it."""
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self.window)
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        self.dialogs.append(box)
        box.finished.connect(lambda _r, b=box: b in self.dialogs and self.dialogs.remove(b))
        box.open()
        return box

    # -- closing -------------------------------------------------------------------------------------------

    def on_close(self) -> bool:
        if not self.settle_drafts():
            return False
        self.settings.set("window/geometry", self.window.saveGeometry())
        self.search_ctl.cancel()
        self.review_ctl.wait_saved(30000)  # every decision is on disk before the window goes
        self.project_ctl.close()
        self.cache.wait(5000)
        return True
