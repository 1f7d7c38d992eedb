"""The remembered objects (engine.annotate.objects) as a two-level tree: one row per object, its views below.

Rows are the ObjectInfo values of engine.annotate.objects.list_objects (read in a worker by the
ObjectsController). Editing a name writes nothing here: the model asks (`rename_requested`), the
controller writes, and the list read back from the catalog shows the new name, or the old one with
the error when the catalog refused it.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QPixmap

from pixret_desktop import status as S
from pixret_desktop.models import StatusTextRole

QUERY_COLOR = QColor(150, 110, 210)  # a view drawn by the person, not decided on a hit
TOP = 0  # internalId of an object row; a view row's is its object's row + 1


class ObjectsModel(QAbstractItemModel):
    rename_requested = Signal(int, str)  # object id, the new name

    def __init__(self, parent=None):
        super().__init__(parent)
        self.objects: list = []  # engine.annotate.objects.ObjectInfo, most recently searched first
        self._dots: dict[str, QPixmap] = {}

    def set_objects(self, objects: list) -> None:
        self.beginResetModel()
        self.objects = list(objects)
        self.endResetModel()

    def clear(self) -> None:
        self.set_objects([])

    # -- reading -------------------------------------------------------------------------------------

    def object_at(self, index: QModelIndex):
        """The object of a row (a view row: the object it belongs to)."""
        if not index.isValid():
            return None
        row = index.row() if index.internalId() == TOP else index.internalId() - 1
        return self.objects[row] if 0 <= row < len(self.objects) else None

    def view_at(self, index: QModelIndex):
        if not index.isValid() or index.internalId() == TOP:
            return None
        obj = self.object_at(index)
        return obj.views[index.row()] if obj is not None and index.row() < len(obj.views) else None

    def index_of(self, object_id: int) -> QModelIndex:
        row = next((r for r, o in enumerate(self.objects) if o.id == object_id), None)
        return QModelIndex() if row is None else self.index(row, 0)

    # -- QAbstractItemModel ----------------------------------------------------------------------------

    def index(self, row: int, column: int = 0, parent=QModelIndex()) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        return self.createIndex(row, column, TOP if not parent.isValid() else parent.row() + 1)

    def parent(self, index=QModelIndex()) -> QModelIndex:  # noqa: D401 (Qt's name; shadows QObject.parent())
        if not index.isValid() or index.internalId() == TOP:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, TOP)

    def rowCount(self, parent=QModelIndex()) -> int:
        if not parent.isValid():
            return len(self.objects)
        if parent.internalId() == TOP:
            return len(self.objects[parent.row()].views)
        return 0

    def columnCount(self, parent=QModelIndex()) -> int:
        return 1

    def flags(self, index):
        if not index.isValid():
            return Qt.NoItemFlags
        f = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        return f | Qt.ItemIsEditable if index.internalId() == TOP else f | Qt.ItemNeverHasChildren

    def data(self, index, role=Qt.DisplayRole):
        view = self.view_at(index)
        if view is not None:
            return self._view_data(view, role)
        obj = self.object_at(index)
        if obj is None:
            return None
        if role in (Qt.DisplayRole, Qt.EditRole):
            return obj.name
        if role == StatusTextRole:
            return obj.status
        if role == Qt.ToolTipRole:
            return (f"{obj.name}: {obj.status}\n{len(obj.queries)} searches, "
                    f"first reviewed {obj.created_at:%Y-%m-%d %H:%M}\nDouble-click or F2 to rename")
        return None

    def _view_data(self, view, role):
        if role == Qt.DisplayRole:
            return f"{view.kind} · {Path(view.image_path).name or view.image}"
        if role == Qt.ToolTipRole:
            return f"{view.image_path or view.image}\n{view.kind} view (search #{view.query_id}); click to show it"
        if role == Qt.DecorationRole:
            return self._dot(view.kind)
        return None

    def _dot(self, kind: str) -> QPixmap:
        """A small square in the kind's review colour (the query outline has its own)."""
        pm = self._dots.get(kind)
        if pm is None:
            pm = QPixmap(10, 10)
            pm.fill(QUERY_COLOR if kind == "query" else S.color(kind))
            self._dots[kind] = pm
        return pm

    def setData(self, index, value, role=Qt.EditRole) -> bool:
        obj = self.object_at(index)
        if role != Qt.EditRole or obj is None or index.internalId() != TOP:
            return False
        name = str(value)
        if name != obj.name:
            self.rename_requested.emit(obj.id, name)
        return False  # the name shown changes when the catalog has it
