"""The remembered objects (engine.annotate.objects) as a tree grouped by label: a row per label of the
project's list that labels some object (engine.annotate.labels), its objects below it; objects still
labelled by their own name at the top level; under each object, its views.

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
ROOT = 0  # internalId of the invisible root; every row's internalId is its node's id (1, 2, ...)


class ObjectsModel(QAbstractItemModel):
    """Rows: a group per label of the project's list that labels some object (its objects below it),
    then the objects labelled by their own name; under each object, its views."""

    rename_requested = Signal(int, str)  # object id, the new name

    def __init__(self, parent=None):
        super().__init__(parent)
        self.objects: list = []  # engine.annotate.objects.ObjectInfo, most recently searched first
        self.labels: list = []  # engine.annotate.labels.Label: the project's list
        self._dots: dict[str, QPixmap] = {}
        self._nodes: dict[int, tuple] = {}  # node id -> (kind 'label'|'object'|'view', payload, parent id)
        self._children: dict[int, list[int]] = {ROOT: []}

    def set_objects(self, objects: list, labels: list | None = None) -> None:
        self.beginResetModel()
        self.objects = list(objects)
        if labels is not None:
            self.labels = list(labels)
        self._nodes, self._children = {}, {ROOT: []}

        def add(kind, payload, parent) -> int:
            node = len(self._nodes) + 1
            self._nodes[node] = (kind, payload, parent)
            self._children.setdefault(parent, []).append(node)
            self._children[node] = []
            return node

        def add_object(obj, parent) -> None:
            node = add("object", obj, parent)
            for view in obj.views:
                add("view", view, node)

        labelled = [o for o in self.objects if o.label_color is not None]
        for name in sorted({o.label for o in labelled}, key=str.lower):
            members = [o for o in labelled if o.label == name]
            group = add("label", (name, members[0].label_color, len(members)), ROOT)
            for obj in members:
                add_object(obj, group)
        for obj in self.objects:
            if obj.label_color is None:
                add_object(obj, ROOT)
        self.endResetModel()

    def clear(self) -> None:
        self.set_objects([], [])

    # -- reading -------------------------------------------------------------------------------------

    def _node(self, index: QModelIndex):
        return self._nodes.get(index.internalId()) if index.isValid() else None

    def object_at(self, index: QModelIndex):
        """The object of a row (a view row: the object it belongs to; a label row: None)."""
        node = self._node(index)
        if node is None or node[0] == "label":
            return None
        return node[1] if node[0] == "object" else self._nodes[node[2]][1]

    def view_at(self, index: QModelIndex):
        node = self._node(index)
        return node[1] if node is not None and node[0] == "view" else None

    def label_at(self, index: QModelIndex) -> str | None:
        node = self._node(index)
        return node[1][0] if node is not None and node[0] == "label" else None

    def index_of(self, object_id: int) -> QModelIndex:
        node = next((n for n, (kind, obj, _p) in self._nodes.items() if kind == "object" and obj.id == object_id),
                    None)
        return QModelIndex() if node is None else self._index_of_node(node)

    def _index_of_node(self, node: int) -> QModelIndex:
        parent = self._nodes[node][2]
        return self.createIndex(self._children[parent].index(node), 0, node)

    def group_indexes(self) -> list[QModelIndex]:
        return [self._index_of_node(n) for n in self._children[ROOT] if self._nodes[n][0] == "label"]

    # -- QAbstractItemModel ----------------------------------------------------------------------------

    def index(self, row: int, column: int = 0, parent=QModelIndex()) -> QModelIndex:
        children = self._children.get(parent.internalId() if parent.isValid() else ROOT, [])
        if column != 0 or not 0 <= row < len(children):
            return QModelIndex()
        return self.createIndex(row, 0, children[row])

    def parent(self, index=QModelIndex()) -> QModelIndex:  # noqa: D401 (Qt's name; shadows QObject.parent())
        node = self._node(index)
        if node is None or node[2] == ROOT:
            return QModelIndex()
        return self._index_of_node(node[2])

    def rowCount(self, parent=QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._children.get(parent.internalId() if parent.isValid() else ROOT, []))

    def columnCount(self, parent=QModelIndex()) -> int:
        return 1

    def flags(self, index):
        node = self._node(index)
        if node is None:
            return Qt.NoItemFlags
        f = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        if node[0] == "object":
            return f | Qt.ItemIsEditable
        return f | Qt.ItemNeverHasChildren if node[0] == "view" else f

    def data(self, index, role=Qt.DisplayRole):
        node = self._node(index)
        if node is None:
            return None
        kind, payload, _parent = node
        if kind == "view":
            return self._view_data(payload, role)
        if kind == "label":
            name, color, n = payload
            if role == Qt.DisplayRole:
                return name
            if role == StatusTextRole:
                return f"label · {n} object{'s' * (n != 1)}"
            if role == Qt.DecorationRole:
                return self._dot(color)
            if role == Qt.ToolTipRole:
                return f"Label {name}: what the exports write for the {n} object{'s' * (n != 1)} below"
            return None
        obj = payload
        if role in (Qt.DisplayRole, Qt.EditRole):
            return obj.name
        if role == StatusTextRole:
            return obj.status
        if role == Qt.DecorationRole and obj.label_color is not None:
            return self._dot(obj.label_color)
        if role == Qt.ToolTipRole:
            label = obj.label if obj.label_color is not None else f"{obj.label} (its name: choose one in Label)"
            return (f"{obj.name}: {obj.status}\nlabel: {label}\n{len(obj.queries)} searches, "
                    f"first reviewed {obj.created_at:%Y-%m-%d %H:%M}\nDouble-click or F2 to rename")
        return None

    def _view_data(self, view, role):
        if role == Qt.DisplayRole:
            return f"{view.kind} · {Path(view.image_path).name or view.image}"
        if role == Qt.ToolTipRole:
            return f"{view.image_path or view.image}\n{view.kind} view (search #{view.query_id}); click to show it"
        if role == Qt.DecorationRole:
            return self._dot(QUERY_COLOR.name() if view.kind == "query" else S.color(view.kind).name())
        return None

    def _dot(self, color: str) -> QPixmap:
        """A small square of a colour: a view's review status, a label's colour."""
        pm = self._dots.get(color)
        if pm is None:
            pm = QPixmap(10, 10)
            pm.fill(QColor(color))
            self._dots[color] = pm
        return pm

    def setData(self, index, value, role=Qt.EditRole) -> bool:
        node = self._node(index)
        if role != Qt.EditRole or node is None or node[0] != "object":
            return False
        obj = node[1]
        name = str(value)
        if name != obj.name:
            self.rename_requested.emit(obj.id, name)
        return False  # the name shown changes when the catalog has it
