"""Dialogs and small panels: unreadable files, settings, keyboard shortcuts, evidence, jobs, and the
questions asked before leaving drafts or replacing an export (the safe answer is the default)."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


class FailuresDialog(QDialog):
    """The files that could not be read, with the reason for each."""

    def __init__(self, failures: list[tuple[str, str]], parent=None, *, title="Files that could not be read"):
        super().__init__(parent)
        self.setObjectName("failures_dialog")
        self.setWindowTitle(title)
        self.resize(760, 420)
        lay = QVBoxLayout(self)
        n = len(failures)
        lay.addWidget(QLabel(f"{n} file{'s' if n != 1 else ''} could not be read and "
                             f"{'were' if n != 1 else 'was'} left out of the index:" if n else
                             "Every file of the collection could be read."))
        self.table = QTableWidget(n, 2, self)
        self.table.setHorizontalHeaderLabels(["File", "Reason"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        for r, (path, reason) in enumerate(failures):
            self.table.setItem(r, 0, QTableWidgetItem(str(path)))
            item = QTableWidgetItem(str(reason))
            item.setToolTip(str(reason))
            self.table.setItem(r, 1, item)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay.addWidget(buttons)


class ImportSummaryDialog(QDialog):
    """After importing annotations: what was imported, which source image matched which photo of the
    collection, and what was skipped and why."""

    def __init__(self, summary: str, matched: list[tuple[str, str, str]], skipped: list[tuple[str, str]],
                 parent=None):
        super().__init__(parent)
        self.setObjectName("import_summary")
        self.setWindowTitle("Annotations imported")
        self.resize(820, 520)
        lay = QVBoxLayout(self)
        text = QLabel(summary, self)
        text.setWordWrap(True)
        lay.addWidget(text)
        lay.addWidget(QLabel(f"Matched to photos of the collection ({len(matched)}):", self))
        self.matched = QTableWidget(len(matched), 3, self)
        self.matched.setHorizontalHeaderLabels(["Object", "In the annotations", "Photo of the collection"])
        for r, row in enumerate(matched):
            for c, value in enumerate(row):
                self.matched.setItem(r, c, QTableWidgetItem(str(value)))
        lay.addWidget(self.matched, 2)
        lay.addWidget(QLabel(f"Skipped ({len(skipped)}):" if skipped else "Nothing was skipped.", self))
        self.skipped = QTableWidget(len(skipped), 2, self)
        self.skipped.setHorizontalHeaderLabels(["Skipped", "Why"])
        for r, (what, why) in enumerate(skipped):
            self.skipped.setItem(r, 0, QTableWidgetItem(what))
            item = QTableWidgetItem(why)
            item.setToolTip(why)
            self.skipped.setItem(r, 1, item)
        self.skipped.setVisible(bool(skipped))
        lay.addWidget(self.skipped, 1)
        for table in (self.matched, self.skipped):
            table.verticalHeader().hide()
            table.setEditTriggers(QTableWidget.NoEditTriggers)
            table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
            table.horizontalHeader().setStretchLastSection(True)
            table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)


class SettingsDialog(QDialog):
    """Default search method, feature long side (new projects), thumbnail size, the author's name,
    review keys and pace, the search's guessed outlines."""

    def __init__(self, methods: dict[str, tuple[str, str]], values: dict, parent=None,
                 keymaps: dict[str, str] | None = None):
        super().__init__(parent)
        self.setObjectName("settings_dialog")
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self.method = QComboBox(self)
        for name, (title, tip) in methods.items():  # name -> (plain name, tooltip)
            self.method.addItem(title, name)
            self.method.setItemData(self.method.count() - 1, tip, Qt.ToolTipRole)
        i = self.method.findData(values.get("default_method"))
        self.method.setCurrentIndex(max(i, 0))
        form.addRow("Default search &method:", self.method)
        self.long_side = QSpinBox(self)
        self.long_side.setRange(256, 4096)
        self.long_side.setSingleStep(128)
        self.long_side.setSuffix(" px")
        self.long_side.setValue(int(values.get("feature_long_side", 1024)))
        self.long_side.setToolTip("Images are scaled to this longer side for feature extraction "
                                  "(applies to projects created from now on).")
        form.addRow("&Feature long side:", self.long_side)
        self.thumb = QSpinBox(self)
        self.thumb.setRange(64, 384)
        self.thumb.setSingleStep(16)
        self.thumb.setSuffix(" px")
        self.thumb.setValue(int(values.get("thumbnail_size", 160)))
        form.addRow("&Thumbnail size:", self.thumb)
        self.author = QLineEdit(str(values.get("author", "")), self)
        self.author.setObjectName("author")
        self.author.setMaxLength(100)
        self.author.setToolTip("Recorded with each of your review decisions; in a team project the others see it.")
        form.addRow("&Your name:", self.author)
        self.keymap = QComboBox(self)
        self.keymap.setObjectName("keymap")
        for key, title in (keymaps or {}).items():
            self.keymap.addItem(title, key)
        self.keymap.setCurrentIndex(max(0, self.keymap.findData(values.get("keymap"))))
        self.keymap.setToolTip("PixRet: A accepts, R rejects, ←/→ step through the results.\n"
                               "labelme / X-AnyLabeling: A/D step back and forth, S accepts, X rejects.")
        form.addRow("Review &keys:", self.keymap)
        self.advance = QCheckBox("After Accept or Reject, open the next unreviewed result", self)
        self.advance.setObjectName("advance")
        self.advance.setChecked(bool(values.get("advance_after_decision", True)))
        form.addRow("", self.advance)
        self.guesses = QCheckBox("Guess outlines for the first unverified results while searching", self)
        self.guesses.setObjectName("outline_guesses")
        self.guesses.setChecked(bool(values.get("outline_guesses", True)))
        self.guesses.setToolTip("After the verified results are shown, the search draws a guessed outline on the "
                                "first unverified ones (about a second more).\nOff: a search ends sooner, and an "
                                "unverified result gets its guess when you open it.")
        form.addRow("", self.guesses)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict:
        values = {"default_method": self.method.currentData(), "feature_long_side": self.long_side.value(),
                  "thumbnail_size": self.thumb.value(), "advance_after_decision": self.advance.isChecked(),
                  "outline_guesses": self.guesses.isChecked(), "author": self.author.text().strip()}
        if self.keymap.count():
            values["keymap"] = self.keymap.currentData()
        return values


class TeamProjectDialog(QDialog):
    """File ▸ Open Team Project: the catalog's database URL, its password, and the shared folder.

    The password is not kept in the settings (pixret_desktop/credentials.py); "remember" stores it in
    PixRet's own password file, readable by the user alone."""

    def __init__(self, recent: list[tuple[str, str]], parent=None):
        super().__init__(parent)
        self.setObjectName("team_project_dialog")
        self.setWindowTitle("Open Team Project")
        self.setMinimumWidth(560)
        form = QFormLayout(self)
        form.addRow(QLabel("A team project keeps its catalog on a PostgreSQL server and its index in a folder "
                           "every annotator can read (a network share).", wordWrap=True))
        self.recent = QComboBox(self)
        self.recent.addItem("(new)", None)
        for url, folder in recent:
            self.recent.addItem(f"{folder} — {url}", (url, folder))
        self.recent.currentIndexChanged.connect(self._recent_chosen)
        if recent:
            form.addRow("&Recent:", self.recent)
        self.url = QLineEdit(self)
        self.url.setObjectName("team_url")
        self.url.setPlaceholderText("postgresql://ana@db.example.org:5432/pixret")
        form.addRow("&Database URL:", self.url)
        self.password = QLineEdit(self)
        self.password.setObjectName("team_password")
        self.password.setEchoMode(QLineEdit.Password)
        self.password.setPlaceholderText("asked each time unless remembered; empty: ~/.pgpass or none")
        form.addRow("&Password:", self.password)
        self.remember = QCheckBox("Remember the password (in a file only you can read, not in the settings)", self)
        self.remember.setObjectName("team_remember")
        form.addRow("", self.remember)
        row = QHBoxLayout()
        self.folder = QLineEdit(self)
        self.folder.setObjectName("team_folder")
        self.folder.setPlaceholderText("/mnt/share/pixret/project")
        self.browse = QPushButton("Browse…", self)
        self.browse.clicked.connect(self._browse)
        row.addWidget(self.folder, 1)
        row.addWidget(self.browse)
        form.addRow("Shared &folder:", row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.url.textChanged.connect(self._update_ok)
        self.folder.textChanged.connect(self._update_ok)
        if recent:
            self.recent.setCurrentIndex(1)
        self._update_ok()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The team project's shared folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _recent_chosen(self, _i: int) -> None:
        item = self.recent.currentData()
        if item:
            self.url.setText(item[0])
            self.folder.setText(item[1])
            self.password.clear()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.Open).setEnabled(bool(self.url.text().strip() and
                                                                   self.folder.text().strip()))

    def values(self) -> dict:
        return {"url": self.url.text().strip(), "password": self.password.text(),
                "remember": self.remember.isChecked(), "folder": self.folder.text().strip()}


class _KeyDelegate(QStyledItemDelegate):
    """Edits a key cell with a key recorder: press the new key (Esc keeps the old one)."""

    def createEditor(self, parent, option, index):  # noqa: N802 (Qt's name)
        editor = QKeySequenceEdit(parent)
        editor.setMaximumSequenceLength(1)
        return editor

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        first = (index.data() or "").split(" or ")[0]
        editor.setKeySequence(QKeySequence.fromString(first, QKeySequence.NativeText))

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        seq = editor.keySequence()
        if not seq.isEmpty():
            model.setData(index, seq.toString(QKeySequence.NativeText))


class ClusterDialog(QDialog):
    """File ▸ Import Folder on a Cluster: where the indexing batches run, N worker processes on this
    machine or the Dask cluster of a scheduler (engine.parallel.cluster). Without Dask installed it
    says which pip command adds it, and cannot be accepted."""

    def __init__(self, values: dict, dask_installed: bool, install_hint: str, parent=None):
        super().__init__(parent)
        self.setObjectName("cluster_dialog")
        self.setWindowTitle("Import Folder on a Cluster")
        self.setMinimumWidth(520)
        form = QFormLayout(self)
        form.addRow(QLabel("Features, words and the graph's pairs are computed in batches by the cluster's "
                           "workers; this window writes the project. On a cluster of several machines the "
                           "photos and the project must be on a shared folder with the same path on each.",
                           wordWrap=True))
        self.local = QRadioButton("&Worker processes on this computer:", self)
        self.local.setObjectName("cluster_local")
        self.workers = QSpinBox(self)
        self.workers.setObjectName("cluster_workers")
        self.workers.setRange(1, 256)
        self.workers.setValue(int(values.get("cluster_workers", 2)))
        form.addRow(self.local, self.workers)
        self.remote = QRadioButton("A Dask &scheduler:", self)
        self.remote.setObjectName("cluster_remote")
        self.scheduler = QLineEdit(str(values.get("cluster_scheduler", "")), self)
        self.scheduler.setObjectName("cluster_scheduler")
        self.scheduler.setPlaceholderText("tcp://scheduler.example.org:8786")
        form.addRow(self.remote, self.scheduler)
        (self.remote if values.get("cluster_mode") == "scheduler" else self.local).setChecked(True)
        self.missing = QLabel(f"Dask is not installed here, so PixRet cannot use a cluster. Install it with:\n"
                              f"{install_hint}", self)
        self.missing.setObjectName("cluster_missing")
        self.missing.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.missing.setVisible(not dask_installed)
        form.addRow(self.missing)
        self.dask_installed = dask_installed
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Choose the Folder…")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        for signal in (self.local.toggled, self.scheduler.textChanged):
            signal.connect(self._update_ok)
        self._update_ok()

    def _update_ok(self, *_) -> None:
        self.workers.setEnabled(self.local.isChecked())
        self.scheduler.setEnabled(self.remote.isChecked())
        ok = self.dask_installed and (self.local.isChecked() or bool(self.scheduler.text().strip()))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)

    def values(self) -> dict:
        return {"cluster_mode": "local" if self.local.isChecked() else "scheduler",
                "cluster_workers": self.workers.value(), "cluster_scheduler": self.scheduler.text().strip()}

    def cluster(self) -> dict:
        """open_cluster's arguments."""
        if self.local.isChecked():
            return {"workers": self.workers.value()}
        return {"scheduler": self.scheduler.text().strip()}


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the window, grouped, read from the actions themselves. The preset
    (PixRet, or labelme / X-AnyLabeling) and any action's key can be changed here: double-click a
    key and press the new one. Changes are asked for through signals; the controller applies them
    and refills the table."""

    preset_chosen = Signal(str)  # preset key
    key_chosen = Signal(str, str)  # action name, the key (portable text, "Ctrl+S")
    reset_requested = Signal()

    def __init__(self, rows: list[tuple[str, str, str, str]], presets: dict[str, str], preset: str, parent=None):
        super().__init__(parent)
        self.setObjectName("shortcuts_dialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(600, 680)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Keys:", self))
        self.preset = QComboBox(self)
        self.preset.setObjectName("keymap_preset")
        for key, title in presets.items():
            self.preset.addItem(title, key)
        self.preset.setCurrentIndex(max(0, self.preset.findData(preset)))
        self.preset.activated.connect(lambda _i: self.preset_chosen.emit(self.preset.currentData()))
        top.addWidget(self.preset, 1)
        self.reset = QPushButton("Reset my keys", self)
        self.reset.setToolTip("Forget the keys you changed; the preset's keys apply again")
        self.reset.clicked.connect(self.reset_requested)
        top.addWidget(self.reset)
        lay.addLayout(top)
        hint = QLabel("Double-click a key to change it, then press the new key.", self)
        hint.setStyleSheet("color: palette(mid);")
        lay.addWidget(hint)
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Group", "Action", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.DoubleClicked | QTableWidget.EditKeyPressed)
        self.table.setItemDelegateForColumn(2, _KeyDelegate(self.table))
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.itemChanged.connect(self._edited)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.set_rows(rows)

    def set_rows(self, rows: list[tuple[str, str, str, str]]) -> None:
        self._filling = True
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, (group, what, keys, action) in enumerate(rows):
            for c, text in enumerate((group, what, keys)):
                item = QTableWidgetItem(text)
                if c < 2 or not action:
                    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                item.setData(Qt.UserRole, action)
                self.table.setItem(r, c, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(2)
        self._filling = False

    def _edited(self, item) -> None:
        action = item.data(Qt.UserRole)
        if not self._filling and item.column() == 2 and action:
            seq = QKeySequence.fromString(item.text(), QKeySequence.NativeText)
            self.key_chosen.emit(action, seq.toString(QKeySequence.PortableText))


class EvidenceView(QTreeWidget):
    """A hit's evidence (whatever hit.evidence holds) as a tree; long lists are summarized."""

    MAX_ITEMS = 50

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("evidence")
        self.setHeaderLabels(["Evidence", "Value"])
        self.setColumnCount(2)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.setRootIsDecorated(True)

    def show_hit(self, hit, extra: dict | None = None) -> None:
        self.clear()
        if hit is None:
            return
        top = {"image": hit.path, "score": round(float(hit.score), 5), "stage": hit.stage, **(extra or {})}
        for k, v in top.items():
            self._add(self.invisibleRootItem(), k, v)
        for k, v in (hit.evidence or {}).items():
            self._add(self.invisibleRootItem(), k, v)
        self.expandToDepth(0)

    def _add(self, parent, key, value) -> None:
        item = QTreeWidgetItem(parent, [str(key), ""])
        if isinstance(value, dict):
            item.setText(1, f"{len(value)} entries")
            for k, v in list(value.items())[: self.MAX_ITEMS]:
                self._add(item, k, v)
        elif isinstance(value, (list, tuple)):
            flat = all(not isinstance(v, (list, tuple, dict)) for v in value)
            if flat and len(value) <= 8:
                item.setText(1, ", ".join(_fmt(v) for v in value))
            else:
                item.setText(1, f"{len(value)} items")
                for i, v in enumerate(value[: self.MAX_ITEMS]):
                    self._add(item, i, v)
                if len(value) > self.MAX_ITEMS:
                    QTreeWidgetItem(item, ["…", f"{len(value) - self.MAX_ITEMS} more"])
        else:
            item.setText(1, _fmt(value))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# What each engine progress stage counts, in words: (what is being done, the unit). A stage not
# listed shows its own name and counts "steps".
STAGES = {
    "scan": ("scanning the folder", "files"),
    "features": ("extracting features", "images"),
    "training vocabulary": ("training the vocabulary", "steps"),
    "indexing words": ("indexing", "images"),
    "indexing shards": ("writing the index", "shards"),
    "graph: neighbours": ("finding similar photos", "images"),
    "graph": ("linking similar photos", "images"),
    "query features": ("reading the query", "steps"),
    "verifying": ("verifying", "photos"),
    "saving": ("saving the search", "steps"),
    "generating demo images": ("making the demo collection", "images"),
    "collecting reviews": ("collecting the reviews", "steps"),
    "export labels": ("writing labels", "items"),
    "export images": ("copying images", "images"),
    "export annotations": ("writing annotations", "objects"),
    "export labelme": ("writing LabelMe files", "images"),
    "export masks": ("writing masks", "masks"),
    "reading": ("reading the annotations", "files"),
    "matching": ("matching photos", "objects"),
    "writing": ("saving", "objects"),
}
ETA_AFTER_S = 2.0  # no time estimate before this much of a stage has run (the first steps are noisy)


def stage_words(stage: str) -> tuple[str, str]:
    return STAGES.get(stage, (stage, "steps"))


def duration_text(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 20 min'."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


class JobRow(QWidget):
    """One running job in the status bar: what it does, a progress bar counting in the stage's unit
    with the time left, Cancel. Fixed width: a changing text never moves the window's layout."""

    cancel_clicked = Signal()

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.title = title
        self.label = QLabel(title, self)
        self.label.setObjectName("job_label")
        self.label.setFixedWidth(290)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(240)
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(True)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.setObjectName("cancel_job")
        self.cancel.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.cancel.clicked.connect(self.cancel_clicked)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel)
        self._stage = None
        self._started = (0.0, 0)  # (time, done) when the current stage began
        self.text = title  # the label's whole text (the label may elide it)

    def set_progress(self, done: int, total: int, stage: str) -> None:
        what, unit = stage_words(stage)
        now = time.monotonic()
        if stage != self._stage or done < self._started[1]:
            self._stage, self._started = stage, (now, done)
        self._set_label(f"{self.title}: {what}" if what else self.title)
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            left = ""
            t0, d0 = self._started
            if now - t0 >= ETA_AFTER_S and done > d0 and done < total:
                left = " · " + duration_text((now - t0) / (done - d0) * (total - done)) + " left"
            self.bar.setFormat(f"{done} of {total} {unit}{left}")
        else:
            self.bar.setRange(0, 0)

    def _set_label(self, text: str) -> None:
        self.text = text
        self.label.setText(self.label.fontMetrics().elidedText(text, Qt.ElideRight, self.label.width()))
        self.label.setToolTip(text)

    def set_cancelling(self) -> None:
        self.cancel.setEnabled(False)
        self._set_label(f"{self.title}: cancelling…")


def ask_about_drafts(parent, n: int) -> str:
    """Leaving with unaccepted corrections: 'accept', 'keep' (the default), 'discard' or 'cancel' (Esc)."""
    these = "it" if n == 1 else "them"
    box = QMessageBox(QMessageBox.Question, "Unaccepted corrections",
                      f"{n} corrected outline{'s' * (n != 1)} {'has' if n == 1 else 'have'} not been accepted yet.",
                      QMessageBox.NoButton, parent)
    box.setObjectName("drafts_box")
    box.setInformativeText(f"Keep as drafts: {these} stay{'s' * (n == 1)} saved and come{'s' * (n == 1)} back "
                           f"when you open the project again.\nAccept all: each becomes the hit's corrected "
                           f"outline.\nDiscard: the edit{'s' * (n != 1)} {'is' if n == 1 else 'are'} thrown away.")
    buttons = {box.addButton("Accept all", QMessageBox.YesRole): "accept",
               box.addButton("Keep as drafts", QMessageBox.AcceptRole): "keep",
               box.addButton("Discard", QMessageBox.DestructiveRole): "discard",
               box.addButton(QMessageBox.Cancel): "cancel"}
    keep = next(b for b, a in buttons.items() if a == "keep")
    box.setDefaultButton(keep)
    box.setEscapeButton(next(b for b, a in buttons.items() if a == "cancel"))
    box.exec()
    return buttons.get(box.clickedButton(), "cancel")


def ask_replace_export(parent, what: str) -> bool:
    """The chosen folder holds an earlier PixRet export (`what` says so): replace it? No is the default."""
    box = QMessageBox(QMessageBox.Question, "Replace the earlier export?", f"{what}.",
                      QMessageBox.Yes | QMessageBox.No, parent)
    box.setObjectName("replace_export_box")
    box.setInformativeText("Replace it with this export? Only the files that export wrote are replaced.")
    box.setDefaultButton(QMessageBox.No)
    box.setEscapeButton(QMessageBox.No)
    return box.exec() == QMessageBox.Yes
