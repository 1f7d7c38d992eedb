"""The main window: layout only. Actions are created here (text, shortcut, icon-less), the
controllers connect them to behaviour.

  +-------------+-------------------------------------+------------------------+
  | Collection  |  header: what is on the canvas       | Search                 |
  | filter/name |                                      | method, top k, Search  |
  | thumbnail   |  ImageCanvas                         | Results: history, sort |
  | grid        |                                      | recall banner          |
  +-------------+                                      | ranked thumbnails      |
  | Objects     |                                      | Accept Reject < >      |
  | tree        |                                      | Evidence (on demand)   |
  +-------------+-------------------------------------+------------------------+
  | status message                         jobs: label [progress] Cancel | saved |
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from pixret_desktop.models.images import FILTERS
from pixret_desktop.status import LABELS
from pixret_desktop.views.canvas import ImageCanvas
from pixret_desktop.views.dialogs import EvidenceView
from pixret_desktop.views.objects import NoticeBanner, ObjectsPanel, RecallBanner
from pixret_desktop.views.thumbnail_grid import ResultsList, ThumbnailGrid
from pixret_desktop.views.widgets import ElidedLabel, ElidingComboBox

NAVIGATION_KEYS = {Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down, Qt.Key_Home, Qt.Key_End,
                   Qt.Key_PageUp, Qt.Key_PageDown}


class _KeepNavigationKeys(QObject):
    """Lets a grid or tree keep its arrow keys (the window's Left/Right shortcuts step through hits)."""

    def eventFilter(self, obj, event):
        if event.type() == QEvent.ShortcutOverride and event.key() in NAVIGATION_KEYS \
                and not event.modifiers() & (Qt.ControlModifier | Qt.AltModifier):
            event.accept()
            return True
        return False


class MainWindow(QMainWindow):
    def __init__(self, thumb_size: int = 160, parent=None):
        super().__init__(parent)
        self.setObjectName("main_window")
        self.setWindowTitle("PixRet")
        self.resize(1400, 860)
        self.setDockNestingEnabled(True)
        self.shortcut_groups: list[tuple[str, list[QAction]]] = []
        self.default_shortcuts: dict[str, list[QKeySequence]] = {}  # action name -> its keys as built here
        self.base_tips: dict[str, str] = {}  # action name -> its tooltip without the key
        self._named_actions: dict[str, QAction] = {}
        self._make_actions()
        self._make_central()
        self._make_docks(thumb_size)
        self._make_toolbar()
        self._make_menus()
        self._make_statusbar()
        self._nav_filter = _KeepNavigationKeys(self)
        self.grid.installEventFilter(self._nav_filter)
        self.objects_panel.tree.installEventFilter(self._nav_filter)  # Left/Right fold and unfold there
        self.close_handler = None  # set by the controller: returns False to refuse closing

    # -- actions ------------------------------------------------------------------------------------

    def _action(self, name: str, text: str, shortcut=None, *, tip: str = "", checkable: bool = False,
                context=Qt.WindowShortcut) -> QAction:
        a = QAction(text, self)
        a.setObjectName(name)
        if shortcut:
            keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            seqs = []
            for k in keys:  # a standard key (QKeySequence.StandardKey) may stand for several, or none
                seqs += QKeySequence.keyBindings(k) if isinstance(k, QKeySequence.StandardKey) else [QKeySequence(k)]
            a.setShortcuts([s for s in seqs if not s.isEmpty()])
            a.setShortcutContext(context)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.setCheckable(checkable)
        self.addAction(a)  # shortcuts work wherever focus is in the window
        setattr(self, f"act_{name}", a)
        self._named_actions[name] = a
        self.default_shortcuts[name] = list(a.shortcuts())
        self.base_tips[name] = tip
        return a

    def keyed_actions(self) -> dict[str, QAction]:
        """Every action of the window by name (keymap.apply gives them their keys)."""
        return dict(self._named_actions)

    def _make_actions(self) -> None:
        A = self._action
        file_ = [
            A("new_project", "&New Project…", "Ctrl+N", tip="Create a project folder"),
            A("open_project", "&Open Project…", "Ctrl+O", tip="Open a project folder"),
            A("open_team_project", "Open &Team Project…", tip="A project several annotators share: its catalog on "
                                                                "a PostgreSQL server, its index in a shared folder"),
            A("open_demo", "Open &Demo Project", tip="The built-in demo collection (created on first use)"),
            A("import_folder", "&Import Folder…", "Ctrl+I", tip="Add a folder of images to the project and index it"),
            A("import_folder_cluster", "Import Folder on a C&luster…",
              tip="Index a large folder with several worker processes, or on a Dask cluster"),
            A("show_failures", "&Unreadable Files…", tip="Files that could not be read, with the reasons"),
            A("import_labelme", "&LabelMe Folder…", tip="LabelMe JSON files (a folder, subfolders included): each "
                                                     "label becomes an object of that label, reviewed"),
            A("import_coco", "&COCO File…", tip="A COCO instances JSON: each category's objects, reviewed"),
            A("import_pixbench", "&PixBench Set…", tip="A PixBench / PROxford set (gnd.json): each query an object"),
            A("close_project", "&Close Project", "Ctrl+Shift+W"),
            A("quit", "&Quit", "Ctrl+Q"),
        ]
        edit = [
            A("undo", "&Undo", "Ctrl+Z"),
            A("redo", "&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"]),
            A("clear_region", "C&lear Region", "Ctrl+Delete", tip="Remove the whole region on the canvas"),
            A("settings", "&Settings…", "Ctrl+,"),
        ]
        view = [
            A("fit", "&Fit to Window", ["F", "Ctrl+0"]),
            A("zoom_100", "&Actual Size", ["1", "Ctrl+1"], tip="100 %: one image pixel per screen pixel"),
            A("zoom_in", "Zoom &In", ["Ctrl++", "Ctrl+=", "="]),
            A("zoom_out", "Zoom &Out", ["Ctrl+-", "-"]),
            A("evidence", "Show &Evidence", "Ctrl+E", checkable=True, tip="The selected hit's evidence"),
        ]
        self.tool_group = QActionGroup(self)
        tools = []
        for name, text, key, tip in (
                ("polygon", "&Polygon", "P", "Click points; close on the first point, double-click or Enter. "
                                             "Drag a vertex to move it, double-click an edge to insert one, "
                                             "right-click or Delete to remove one"),
                ("rectangle", "&Rectangle", "Ctrl+R", "Drag a rectangle (Ctrl subtracts)"),
                ("brush", "&Brush", "B", "Paint to add to the region (right button erases)"),
                ("eraser", "&Eraser", "E", "Paint to remove from the region"),
                ("refine", "Re&fine", "G", "Click inside the object (left) or on the background (right), or drag "
                                          "a box around it: the outline is redrawn to follow the object"),
                ("pan", "P&an", "H", "Drag to move the image (or hold Space, or drag with the middle button)")):
            a = A(f"tool_{name}", text, key, tip=tip, checkable=True)
            self.tool_group.addAction(a)
            tools.append(a)
        self.act_tool_polygon.setChecked(True)
        tools += [A("brush_smaller", "Brush S&maller", "["), A("brush_larger", "Brush &Larger", "]")]
        search = [
            A("search", "&Search", ["Ctrl+Return", "Ctrl+Enter"], tip="Search the collection for the outlined object"),
            A("cancel_search", "&Cancel Search", "Ctrl+."),
        ]
        self.sort_group = QActionGroup(self)
        review = [
            A("accept", "&Accept", "A", tip="Accept the outline (a correction if you edited it)"),
            A("reject", "&Reject", "R", tip="The object is not in this image"),
            A("unreview", "Mark &Unreviewed", "U", tip="Take back the decision"),
            A("next_hit", "&Next Hit", [Qt.Key_Right, Qt.Key_PageDown]),
            A("prev_hit", "&Previous Hit", [Qt.Key_Left, Qt.Key_PageUp]),
            A("sort_score", "Sort by &Score", checkable=True),
            A("sort_uncertainty", "Sort by &Uncertainty", checkable=True),
            A("focus_filter", "Find by &Name", "Ctrl+F", tip="Filter the collection by file name"),
        ]
        self.sort_group.addAction(self.act_sort_score)
        self.sort_group.addAction(self.act_sort_uncertainty)
        self.act_sort_score.setChecked(True)
        help_ = [A("shortcuts", "&Keyboard Shortcuts", "F1"), A("about", "&About PixRet")]
        self.shortcut_groups = [("File", file_), ("Edit", edit), ("View", view), ("Tools", tools),
                                ("Search", search), ("Review", review), ("Help", help_)]

    def shortcut_rows(self) -> list[tuple[str, str, str, str]]:
        """(group, what, keys, action name or "" for keys that belong to the canvas, not an action)."""
        rows = []
        for group, actions in self.shortcut_groups:
            for a in actions:
                keys = " or ".join(k.toString(QKeySequence.NativeText) for k in a.shortcuts() if not k.isEmpty())
                rows.append((group, a.text().replace("&", "").rstrip("…"), keys, a.objectName()))
        rows += [row + ("",) for row in [
            ("Canvas", "Zoom around the cursor", "Mouse wheel"),
            ("Canvas", "Pan", "Middle drag, or Space + drag"),
            ("Polygon", "Close the polygon", "Click the first point, double-click, or Enter"),
            ("Polygon", "Drop the last point / cancel", "Backspace / Esc"),
            ("Polygon", "Insert a vertex", "Double-click an edge"),
            ("Polygon", "Delete a vertex", "Right-click it, or hover + Delete"),
            ("Brush", "Erase with the brush", "Right drag"),
            ("Rectangle", "Subtract a rectangle", "Ctrl + drag"),
        ]]
        return rows

    # -- layout -------------------------------------------------------------------------------------

    def _make_central(self) -> None:
        w = QWidget(self)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        header = QFrame(w)
        header.setObjectName("canvas_header")
        header.setFrameShape(QFrame.StyledPanel)
        hl = QHBoxLayout(header)
        hl.setContentsMargins(8, 4, 8, 4)
        self.canvas_title = ElidedLabel("No image", header, min_chars=20)
        self.canvas_title.setObjectName("canvas_title")
        self.canvas_status = QLabel("", header)
        self.canvas_status.setObjectName("canvas_status")
        self.canvas_status.setAlignment(Qt.AlignCenter)
        self.canvas_status.setFixedWidth(110)  # the same width for every status: nothing beside it moves
        self.canvas_hint = ElidedLabel("", header, mode=Qt.ElideRight)
        self.canvas_hint.setObjectName("canvas_hint")
        self.canvas_hint.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.canvas_hint.setStyleSheet("color: palette(mid);")
        self.canvas_hint.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)  # the keys first, in full
        hl.addWidget(self.canvas_title, 1)
        hl.addWidget(self.canvas_hint)
        hl.addWidget(self.canvas_status)
        self.canvas = ImageCanvas(w)
        lay.addWidget(header)
        lay.addWidget(self.canvas, 1)
        self.setCentralWidget(w)

    def _make_docks(self, thumb_size: int) -> None:
        # the collection
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.status_filter = QComboBox(left)
        self.status_filter.setObjectName("status_filter")
        for f in FILTERS:
            self.status_filter.addItem("All images" if f == "all" else LABELS.get(f, f), f)
        self.name_filter = QLineEdit(left)
        self.name_filter.setObjectName("name_filter")
        self.name_filter.setPlaceholderText("Search file names…")
        self.name_filter.setClearButtonEnabled(True)
        row.addWidget(self.status_filter)
        row.addWidget(self.name_filter, 1)
        ll.addLayout(row)
        self.grid_count = ElidedLabel("", left, mode=Qt.ElideRight)
        self.grid_count.setObjectName("grid_count")
        ll.addWidget(self.grid_count)
        self.grid = ThumbnailGrid(thumb_size, captions=1, parent=left)
        self.grid.setObjectName("collection_grid")
        ll.addWidget(self.grid, 1)
        self.collection_dock = QDockWidget("Collection", self)
        self.collection_dock.setObjectName("collection_dock")
        self.collection_dock.setWidget(left)
        self.collection_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.collection_dock)

        # search and review
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 4, 4, 4)
        box = QGroupBox("Search", right)
        bl = QVBoxLayout(box)
        r1 = QHBoxLayout()
        self.method = QComboBox(box)
        self.method.setObjectName("method")
        self.top_k = QSpinBox(box)
        self.top_k.setObjectName("top_k")
        self.top_k.setRange(1, 10000)
        self.top_k.setValue(100)
        self.top_k.setPrefix("top ")
        # the Thorough method's time budget, shown when it is chosen
        self.budget = QSpinBox(box)
        self.budget.setObjectName("budget")
        self.budget.setRange(5, 3600)
        self.budget.setSuffix(" s")
        self.budget.setToolTip("Thorough: how long its second, slower look at the photos Fast did not verify may "
                               "take; what it finds by then is shown as it comes")
        r1.addWidget(QLabel("Method:", box))
        r1.addWidget(self.method, 1)
        r1.addWidget(self.budget)
        r1.addWidget(self.top_k)
        bl.addLayout(r1)
        self.search_button = QPushButton("Search", box)
        self.search_button.setObjectName("search_button")
        self.search_button.setToolTip("Search the collection for the outlined object (Ctrl+Enter)")
        bl.addWidget(self.search_button)
        self.query_label = ElidedLabel("Pick an image and outline the object.", box)
        self.query_label.setObjectName("query_label")
        bl.addWidget(self.query_label)
        rl.addWidget(box)

        self.history = ElidingComboBox(right)
        self.history.setObjectName("history")
        self.history.setToolTip("Searches of this project (newest first)")
        rl.addWidget(self.history)
        r2 = QHBoxLayout()
        self.results_summary = ElidedLabel("No search yet", right, mode=Qt.ElideRight)
        self.results_summary.setObjectName("results_summary")
        self.sort = QComboBox(right)
        self.sort.setObjectName("sort")
        self.sort.addItem("By score", "score")
        self.sort.addItem("By uncertainty", "uncertainty")
        r2.addWidget(self.results_summary, 1)
        r2.addWidget(self.sort)
        rl.addLayout(r2)
        self.recall_banner = RecallBanner(right)
        rl.addWidget(self.recall_banner)
        self.results_notice = NoticeBanner(right)
        self.results_notice.setObjectName("results_notice")
        rl.addWidget(self.results_notice)
        self.results = ResultsList(thumb_size, parent=right)
        self.results.setObjectName("results_grid")
        self.results.installEventFilter(_KeepNavigationKeys(self.results))
        rl.addWidget(self.results, 3)
        r3 = QHBoxLayout()
        for act in (self.act_prev_hit, self.act_accept, self.act_reject, self.act_next_hit):
            b = QToolButton(right)
            b.setDefaultAction(act)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            r3.addWidget(b)
        rl.addLayout(r3)
        self.evidence_button = QToolButton(right)
        self.evidence_button.setDefaultAction(self.act_evidence)
        self.evidence_button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        rl.addWidget(self.evidence_button)
        self.evidence = EvidenceView(right)
        self.evidence.setVisible(False)
        rl.addWidget(self.evidence, 2)
        self.review_dock = QDockWidget("Search and review", self)
        self.review_dock.setObjectName("review_dock")
        self.review_dock.setWidget(right)
        self.review_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.RightDockWidgetArea, self.review_dock)
        self.resizeDocks([self.collection_dock, self.review_dock], [330, 330], Qt.Horizontal)

        # the remembered objects, below the collection
        self.objects_panel = ObjectsPanel(self)
        self.objects_dock = QDockWidget("Objects", self)
        self.objects_dock.setObjectName("objects_dock")
        self.objects_dock.setWidget(self.objects_panel)
        self.objects_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                                      | QDockWidget.DockWidgetClosable)
        self.splitDockWidget(self.collection_dock, self.objects_dock, Qt.Vertical)
        self.resizeDocks([self.collection_dock, self.objects_dock], [560, 260], Qt.Vertical)

    def _make_toolbar(self) -> None:
        tb = QToolBar("Tools", self)
        tb.setObjectName("tools_toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for a in self.tool_group.actions():
            tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(QLabel(" Brush ", tb))
        self.brush_size = QDoubleSpinBox(tb)
        self.brush_size.setObjectName("brush_size")
        self.brush_size.setRange(1, 2000)
        self.brush_size.setDecimals(0)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush diameter in image pixels ([ and ])")
        tb.addWidget(self.brush_size)
        tb.addSeparator()
        for a in (self.act_undo, self.act_redo, self.act_clear_region):
            tb.addAction(a)
        tb.addSeparator()
        for a in (self.act_fit, self.act_zoom_100):
            tb.addAction(a)
        self.zoom_label = QLabel("", tb)
        self.zoom_label.setMinimumWidth(60)
        tb.addWidget(self.zoom_label)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb

    def _make_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_new_project)
        m.addAction(self.act_open_project)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setObjectName("recent_menu")
        m.addMenu(self.recent_menu)
        m.addAction(self.act_open_team_project)
        m.addAction(self.act_open_demo)
        m.addSeparator()
        m.addAction(self.act_import_folder)
        m.addAction(self.act_import_folder_cluster)
        self.import_annotations_menu = m.addMenu("Import &Annotations")
        self.import_annotations_menu.setObjectName("import_annotations_menu")
        self.import_annotations_menu.setToolTipsVisible(True)
        for a in (self.act_import_labelme, self.act_import_coco, self.act_import_pixbench):
            self.import_annotations_menu.addAction(a)
        m.addAction(self.act_show_failures)
        m.addSeparator()
        m.addAction(self.act_close_project)
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, self.act_clear_region):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_settings)
        m = mb.addMenu("&View")
        for a in (self.act_fit, self.act_zoom_100, self.act_zoom_in, self.act_zoom_out):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_evidence)
        m.addAction(self.collection_dock.toggleViewAction())
        m.addAction(self.review_dock.toggleViewAction())
        m.addAction(self.objects_dock.toggleViewAction())
        m = mb.addMenu("&Tools")
        for a in self.tool_group.actions():
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_brush_smaller)
        m.addAction(self.act_brush_larger)
        m = mb.addMenu("&Search")
        m.addAction(self.act_search)
        m.addAction(self.act_cancel_search)
        m = mb.addMenu("&Review")
        for a in (self.act_accept, self.act_reject, self.act_unreview):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_next_hit)
        m.addAction(self.act_prev_hit)
        m.addSeparator()
        m.addAction(self.act_sort_score)
        m.addAction(self.act_sort_uncertainty)
        m.addSeparator()
        m.addAction(self.act_focus_filter)
        self.export_menu = mb.addMenu("E&xport")
        self.export_menu.setObjectName("export_menu")
        self.export_menu.setToolTipsVisible(True)
        m = mb.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

    def _make_statusbar(self) -> None:
        sb = self.statusBar()
        self.jobs = QWidget(sb)
        self.jobs_layout = QHBoxLayout(self.jobs)
        self.jobs_layout.setContentsMargins(0, 0, 0, 0)
        sb.addPermanentWidget(self.jobs)
        self.saved_label = QLabel("", sb)
        self.saved_label.setObjectName("saved_label")
        sb.addPermanentWidget(self.saved_label)
        self.cursor_label = QLabel("", sb)
        self.cursor_label.setMinimumWidth(110)
        sb.addPermanentWidget(self.cursor_label)

    # -- small view helpers ------------------------------------------------------------------------

    def set_canvas_header(self, title: str, status: str = "", color=None, hint: str = "", tip: str = "") -> None:
        self.canvas_title.setText(title)
        self.canvas_title.setToolTip(tip)
        self.canvas_hint.setText(hint)
        self.canvas_status.setText(status)
        if color is not None and status:
            self.canvas_status.setStyleSheet(
                f"background: {color.name()}; color: white; border-radius: 4px; padding: 2px 8px;")
        else:
            self.canvas_status.setStyleSheet("")

    def closeEvent(self, event) -> None:
        if self.close_handler is not None and not self.close_handler():
            event.ignore()
            return
        super().closeEvent(event)
