"""Choosing a folder: a small dialog of our own that does what people expect.

Qt's folder dialog opened in the process's working directory, refused a typed folder that did not
exist yet ("Directory not found") and kept Choose disabled for a typed path its file-system model
had not listed yet; its line edit also rewrites typed text into quoted selections. This one:

- opens where the person last chose a folder for the same purpose (else their home);
- chooses the folder selected in its tree, or the path typed in its field: absolute, starting with
  ~, or relative to the selected folder; no trailing slash needed; Choose is always enabled (what
  it chooses is checked when pressed);
- where a new folder makes sense (a new project, an export), makes a typed folder that does not
  exist (with its parents) when Choose is pressed, and has a New Folder button; elsewhere (the
  photos to import) a missing folder is said so and the dialog stays open.

It is opened window-modal with open(), not exec(): the window keeps drawing and tests can type into it.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QDir, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFileSystemModel,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from pixret_desktop.views.widgets import ElidedLabel


class FolderDialog(QDialog):
    chosen = Signal(str)  # the folder (absolute), made first when it did not exist

    def __init__(self, parent, title: str, start: Path, *, create: bool, extra: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("folder_dialog")
        self.setWindowTitle(title)
        self.setWindowModality(Qt.WindowModal)
        self.resize(640, 460)
        self.may_create = create
        self.folder: Path | None = None
        self.refusal: QMessageBox | None = None
        self.shown = Path(start)  # the folder the tree shows selected: a relative path is relative to it

        lay = QVBoxLayout(self)
        self.model = QFileSystemModel(self)
        self.model.setFilter(QDir.AllDirs | QDir.NoDotAndDotDot | QDir.Drives)
        self.model.setRootPath(QDir.rootPath())
        self.tree = QTreeView(self)
        self.tree.setObjectName("folder_tree")
        self.tree.setModel(self.model)
        for column in (1, 2, 3):
            self.tree.hideColumn(column)  # size, type, date: nothing to choose a folder by
        self.tree.setHeaderHidden(True)
        self.tree.selectionModel().currentChanged.connect(self._tree_moved)
        lay.addWidget(self.tree, 1)

        self.where = ElidedLabel("", self)
        self.where.setObjectName("folder_shown")
        lay.addWidget(self.where)
        row = QHBoxLayout()
        row.addWidget(QLabel("Folder:", self))
        self.line_edit = QLineEdit(self)
        self.line_edit.setObjectName("folder_path")
        self.line_edit.setPlaceholderText("empty: the folder selected above; or a name in it, or a path"
                                          + (" (a new folder is made)" if create else ""))
        completer = QCompleter(self)
        dirs = QFileSystemModel(completer)
        dirs.setFilter(QDir.AllDirs | QDir.NoDotAndDotDot)
        dirs.setRootPath(QDir.rootPath())
        completer.setModel(dirs)
        self.line_edit.setCompleter(completer)
        row.addWidget(self.line_edit, 1)
        lay.addLayout(row)

        if extra is not None:  # a choice that goes with the folder (a new project's feature type)
            extra.setParent(self)
            lay.addWidget(extra)
        buttons = QDialogButtonBox(QDialogButtonBox.Cancel, self)
        self.choose_button = buttons.addButton("Choose", QDialogButtonBox.AcceptRole)
        self.choose_button.setObjectName("choose")
        self.choose_button.setDefault(True)
        self.new_folder_button = QPushButton("New Folder…", self)
        self.new_folder_button.setObjectName("new_folder")
        self.new_folder_button.setVisible(create)
        self.new_folder_button.clicked.connect(self.ask_new_folder)
        buttons.addButton(self.new_folder_button, QDialogButtonBox.ActionRole)
        home = buttons.addButton("Home", QDialogButtonBox.ActionRole)
        home.clicked.connect(lambda: self.show_folder(Path.home()))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.show_folder(self.shown)
        self.where.setText(f"Selected: {self.shown}")
        self.line_edit.setFocus()

    # -- the tree and the field follow each other ----------------------------------------------------

    def show_folder(self, folder: Path) -> None:
        index = self.model.index(str(folder))
        if index.isValid():
            self.tree.setCurrentIndex(index)
            self.tree.scrollTo(index)
            self.tree.expand(index)

    def _tree_moved(self, index: QModelIndex, _previous) -> None:
        """A folder picked in the tree is the one chosen (the field, relative to it, starts empty)."""
        if index.isValid():
            self.shown = Path(self.model.filePath(index))
            self.where.setText(f"Selected: {self.shown}")
            self.line_edit.clear()

    def typed_path(self) -> Path:
        text = self.line_edit.text().strip()
        if not text:
            return self.shown
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else self.shown / path

    # -- new folders ----------------------------------------------------------------------------------

    def ask_new_folder(self) -> None:
        name, ok = QInputDialog.getText(self, "New folder", f"A new folder in {self.shown}:")
        if ok and name.strip():
            self.make_folder(self.shown / name.strip())

    def make_folder(self, path: Path) -> bool:
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            pass
        except OSError as e:
            self._refuse(f"Cannot create the folder {path}: {e.strerror or e}")
            return False
        self.show_folder(path)
        return True

    # -- choosing -------------------------------------------------------------------------------------

    def accept(self) -> None:  # noqa: D401 (Qt's name)
        path = self.typed_path()
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as e:
            self._refuse(f"{path}: {e.strerror or e}")
            return
        if exists and not is_dir:
            self._refuse(f"{path} is a file, not a folder.")
            return
        if not exists:
            if not self.may_create:
                self._refuse(f"There is no folder {path}.")
                return
            if not self.make_folder(path):
                return
        self.folder = path.resolve()
        super().accept()
        self.chosen.emit(str(self.folder))

    def _refuse(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Warning, self.windowTitle(), message, QMessageBox.Ok, self)
        box.setObjectName("folder_refused")
        box.open()
        self.refusal = box
