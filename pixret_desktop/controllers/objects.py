"""Objects: the remembered objects of the project (engine.annotate.objects) in their dock.

The list and the project's labels are read from the catalog in a worker (`refresh`, after every
decision and every finished search: the newest read wins). Renaming and forgetting are catalog writes, so they queue on the
writer pool behind the review decisions; a refused name (empty, taken) comes back as an error for
the person to see, and the list keeps the old name. Choosing a view asks the main controller to
show it; "Search again" asks it to search for the object (the search itself is SearchController's).
The label box labels the selected object (engine.annotate.labels); the Labels dialog edits the list.
Label writes queue on the writer pool too, then the list is read again.
"""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, Signal
from PySide6.QtWidgets import QMessageBox

import engine.annotate.labels as labels
import engine.annotate.objects as objects
from pixret_desktop.views.objects import LabelsDialog
from pixret_desktop.workers import JobManager, Worker


def _read(project) -> tuple[list, list]:
    """The objects and the label list, read together (one worker, one consistent picture)."""
    return objects.list_objects(project), labels.list_labels(project)


class ObjectsController(QObject):
    refreshed = Signal()  # the list now shows the catalog's objects
    view_chosen = Signal(object, object)  # ObjectInfo, View: show it on the canvas
    search_requested = Signal(int)  # object id
    renamed = Signal(int, str)  # object id, name: committed
    labels_changed = Signal()  # a label or an object's label: committed
    forgotten = Signal(int)  # object id: committed
    error = Signal(str, str)
    message = Signal(str)

    def __init__(self, jobs: JobManager, model, panel, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.model = model
        self.panel = panel
        self.project = None
        self.confirm: QMessageBox | None = None  # the open "Forget?" question
        self._reading: Worker | None = None
        self._restoring = False
        tree = panel.tree
        tree.setModel(model)
        tree.selectionModel().currentChanged.connect(self._current_changed)
        tree.clicked.connect(self._clicked)
        model.rename_requested.connect(self.rename)
        model.modelReset.connect(lambda: panel.set_empty(model.rowCount() == 0))
        panel.act_search_again.triggered.connect(self._search_selected)
        panel.act_rename.triggered.connect(self._edit_selected)
        panel.act_forget.triggered.connect(self.ask_forget)
        panel.label_combo.activated.connect(self._label_chosen)
        panel.label_combo.lineEdit().returnPressed.connect(self._label_chosen)
        panel.labels_button.clicked.connect(self.show_labels)
        self.labels_dialog: LabelsDialog | None = None
        self._update_enabled()

    def set_project(self, project) -> None:
        self.project = project
        self._reading = None
        self.model.clear()
        self._update_enabled()
        if project is not None:
            self.refresh()

    # -- reading ---------------------------------------------------------------------------------------

    def refresh(self) -> Worker | None:
        if self.project is None:
            return None
        project = self.project
        w = Worker(_read, project, engine_call=False, name="Listing objects")
        self._reading = w
        return self.jobs.start(w, pool="io", on_finished=lambda found, w=w: self._loaded(w, found),
                               on_failed=lambda e, w=w: w is self._reading and self.error.emit(
                                   "Could not list the objects", str(e)))

    def _loaded(self, worker: Worker, read: tuple) -> None:
        if worker is not self._reading:
            return  # an older read finishing late
        self._reading = None
        found, labels = read
        tree = self.tree
        current = self.selected()
        view = self.model.view_at(tree.currentIndex())
        expanded = {o.id for o in self.model.objects if tree.isExpanded(self.model.index_of(o.id))}
        folded = {self.model.label_at(i) for i in self.model.group_indexes() if not tree.isExpanded(i)}
        self._restoring = True  # putting the selection back is not choosing a view
        try:
            self.model.set_objects(found, labels)
            for group in self.model.group_indexes():  # label groups open, unless folded by the person
                if self.model.label_at(group) not in folded:
                    tree.expand(group)
            for object_id in expanded:
                tree.expand(self.model.index_of(object_id))
            if current is not None:
                idx = self.model.index_of(current.id)
                if idx.isValid() and view is not None:
                    row = next((r for r, v in enumerate(self.model.object_at(idx).views) if v.key == view.key), None)
                    idx = self.model.index(row, 0, idx) if row is not None else idx
                if idx.isValid():
                    tree.selectionModel().setCurrentIndex(idx, QItemSelectionModel.ClearAndSelect)
        finally:
            self._restoring = False
        self._update_enabled()
        if self.labels_dialog is not None:
            self.labels_dialog.set_labels(labels)
        self.refreshed.emit()

    @property
    def tree(self):
        return self.panel.tree

    def selected(self):
        """The object of the selected row (an object or one of its views), or None."""
        return self.model.object_at(self.tree.currentIndex())

    def select(self, object_id: int) -> QModelIndex:
        idx = self.model.index_of(object_id)
        if idx.isValid():
            self.tree.selectionModel().setCurrentIndex(idx, QItemSelectionModel.ClearAndSelect)
        return idx

    # -- choosing --------------------------------------------------------------------------------------

    def _current_changed(self, index, _previous) -> None:
        self._update_enabled()
        if not self._restoring:
            self._open(index)

    def _clicked(self, index) -> None:
        if index == self.tree.currentIndex():  # clicking the current view again shows it again
            self._open(index)

    def _open(self, index) -> None:
        view = self.model.view_at(index)
        if view is not None:
            self.view_chosen.emit(self.model.object_at(index), view)

    def _update_enabled(self) -> None:
        has = self.project is not None and self.selected() is not None
        for a in (self.panel.act_search_again, self.panel.act_rename, self.panel.act_forget):
            a.setEnabled(has)
        self.panel.show_label(self.selected() if has else None, self.model.labels)
        self.panel.labels_button.setEnabled(self.project is not None)

    def _search_selected(self) -> None:
        obj = self.selected()
        if obj is not None:
            self.search_requested.emit(obj.id)

    def _edit_selected(self) -> None:
        obj = self.selected()
        if obj is not None:
            idx = self.select(obj.id)
            self.tree.setFocus()
            self.tree.edit(idx)

    # -- writing ---------------------------------------------------------------------------------------

    def rename(self, object_id: int, name: str) -> Worker | None:
        if self.project is None:
            return None
        w = Worker(objects.rename_object, self.project, object_id, name, engine_call=False, name="Renaming an object")
        return self.jobs.start(w, pool="writer",
                               on_finished=lambda _r: self._renamed(object_id, name),
                               on_failed=lambda e: self.error.emit("The object was not renamed", str(e)))

    def _renamed(self, object_id: int, name: str) -> None:
        self.refresh()
        self.message.emit(f"Renamed to {name.strip()}")
        self.renamed.emit(object_id, name.strip())

    def ask_forget(self) -> QMessageBox | None:
        """Ask first (without blocking the window): forgetting cannot be undone."""
        obj = self.selected()
        if obj is None or self.project is None:
            return None
        box = QMessageBox(QMessageBox.Question, "Forget the object?",
                          f"Forget {obj.name!r}? Later searches will no longer recognize it or use its "
                          f"{len(obj.reviewed)} reviewed views. Its searches and decisions stay.",
                          QMessageBox.Cancel, self.panel.window())
        box.setObjectName("forget_box")
        forget = box.addButton("Forget", QMessageBox.DestructiveRole)
        box.buttonClicked.connect(lambda b, i=obj.id: b is forget and self.forget(i))
        box.finished.connect(lambda _r: setattr(self, "confirm", None))
        self.confirm = box
        box.open()
        return box

    def forget(self, object_id: int) -> Worker | None:
        if self.project is None:
            return None
        w = Worker(objects.forget_object, self.project, object_id, engine_call=False, name="Forgetting an object")
        return self.jobs.start(w, pool="writer", on_finished=lambda _r: self._forgotten(object_id),
                               on_failed=lambda e: self.error.emit("The object was not forgotten", str(e)))

    # -- labels ----------------------------------------------------------------------------------------

    def _label_chosen(self, _index: int = -1) -> None:
        """The label box: an item picked, or a name typed and Enter (a new name joins the list)."""
        obj = self.selected()
        box = self.panel.label_combo
        if obj is None or not box.isEnabled():
            return
        text = box.currentText().strip()
        item = box.findText(text)
        label = box.itemData(item) if item >= 0 else (text or None)
        if (label or None) == (obj.label if obj.label_color is not None else None):
            return
        self.set_label(obj.id, label)

    def set_label(self, object_id: int, label: str | None) -> Worker | None:
        """Label an object (None: by its own name again); a new name is added to the project's list."""
        return self._label_write(labels.set_object_label, object_id, label, done=f"Label: {label}" if label else
                                 "Labelled by its own name")

    def _label_write(self, fn, *args, done: str) -> Worker | None:
        if self.project is None:
            return None
        w = Worker(fn, self.project, *args, engine_call=False, name="Saving a label")
        return self.jobs.start(w, pool="writer", on_finished=lambda _r: (self.refresh(), self.message.emit(done),
                                                                          self.labels_changed.emit()),
                               on_failed=lambda e: (self.error.emit("The label was not changed", str(e)),
                                                    self.refresh()))

    def show_labels(self) -> LabelsDialog:
        """The project's label list, to add, rename, colour and remove labels."""
        dlg = self.labels_dialog
        if dlg is None:
            dlg = self.labels_dialog = LabelsDialog(self.panel.window())
            dlg.add_requested.connect(lambda n: self._label_write(labels.add_label, n, done=f"Label {n} added"))
            dlg.rename_requested.connect(lambda a, b: self._label_write(labels.rename_label, a, b,
                                                                        done=f"Label {a} renamed to {b}"))
            dlg.color_requested.connect(lambda n, c: self._label_write(labels.set_label_color, n, c,
                                                                       done=f"Label {n}: new colour"))
            dlg.remove_requested.connect(lambda n: self._label_write(labels.remove_label, n, done=f"Label {n} removed"))
        dlg.set_labels(self.model.labels)
        dlg.show()
        dlg.raise_()
        return dlg

    def _forgotten(self, object_id: int) -> None:
        self.refresh()
        self.message.emit("Object forgotten; its searches and decisions stay")
        self.forgotten.emit(object_id)
