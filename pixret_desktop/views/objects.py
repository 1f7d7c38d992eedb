"""The Objects dock and the recall banner: layout only (pixret_desktop.controllers.objects wires them).

  Objects dock                          recall banner (above the results)
  +-------------------------------+     +---------------------------------------------------+
  | ■ poster   (a label)          |     | Seen before: poster — 12 reviewed images;        |
  |   ■ poster 1                  |     | searching only what is new  [Search as new object]|
  |     5 reviewed · 1 rejected   |     +---------------------------------------------------+
  |     ■ accepted · view2.jpg    |
  | view01 (labelled by its name) |     the labels dialog (the project's list)
  | Label: [poster    ▾] [Labels…]|
  | [Search again] [Rename] [Forget…]
  +-------------------------------+
"""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from pixret_desktop.models import StatusTextRole

PAD = 4


class ObjectDelegate(QStyledItemDelegate):
    """Object rows in two lines: the name in bold, then its status, quieter. View rows as usual."""

    def sizeHint(self, option, index):
        size = super().sizeHint(option, index)
        if index.data(StatusTextRole):
            size.setHeight(2 * option.fontMetrics.height() + 2 * PAD)
        return size

    def paint(self, painter, option, index) -> None:
        status = index.data(StatusTextRole)
        if not status:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        name, opt.text = opt.text, ""
        opt.icon, opt.features = QIcon(), opt.features & ~QStyleOptionViewItem.HasDecoration  # drawn below
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.CE_ItemViewItem, opt, painter, widget)  # background and selection
        selected = bool(opt.state & QStyle.State_Selected)
        line = opt.fontMetrics.height()
        r = opt.rect.adjusted(PAD, PAD, -PAD, -PAD)
        icon = index.data(Qt.DecorationRole)  # a label's colour: a square before the name
        if isinstance(icon, QPixmap) and not icon.isNull():
            painter.drawPixmap(r.x(), r.y() + (line - icon.height()) // 2, icon)
            r.setLeft(r.left() + icon.width() + PAD)
        painter.save()
        bold = QFont(opt.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(opt.palette.highlightedText().color() if selected else opt.palette.text().color())
        painter.drawText(QRect(r.x(), r.y(), r.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                         painter.fontMetrics().elidedText(name, Qt.ElideRight, r.width()))
        painter.setFont(opt.font)
        if not selected:
            painter.setPen(opt.palette.placeholderText().color())
        painter.drawText(QRect(r.x(), r.y() + line, r.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                         opt.fontMetrics.elidedText(status, Qt.ElideRight, r.width()))
        painter.restore()

    def updateEditorGeometry(self, editor, option, index) -> None:
        # the name line only, where the name is drawn
        r = option.rect
        editor.setGeometry(QRect(r.x(), r.y(), r.width(), option.fontMetrics.height() + 2 * PAD))


class ObjectsPanel(QWidget):
    """The tree of remembered objects and their views, and the actions on the selected object."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.empty_label = QLabel("No objects yet: accept a hit and its search becomes an object, "
                                  "remembered by later searches.", self)
        self.empty_label.setObjectName("objects_empty")
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color: palette(mid);")
        lay.addWidget(self.empty_label)
        self.tree = QTreeView(self)
        self.tree.setObjectName("objects_tree")
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setExpandsOnDoubleClick(False)  # double-click renames
        self.tree.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.setItemDelegate(ObjectDelegate(self.tree))
        self.tree.setContextMenuPolicy(Qt.ActionsContextMenu)
        lay.addWidget(self.tree, 1)

        self.act_search_again = self._action("search_again", "Search again",
                                             "Search for the object with all its reviewed views at once: "
                                             "the reviewed images first, then only what is new")
        self.act_rename = self._action("rename_object", "Rename", "Rename the object (F2, or double-click it)")
        self.act_forget = self._action("forget_object", "Forget…",
                                       "Forget the object; its searches and decisions stay")
        row = QHBoxLayout()
        row.addWidget(QLabel("Label:", self))
        self.label_combo = QComboBox(self)
        self.label_combo.setObjectName("object_label")
        self.label_combo.setEditable(True)
        self.label_combo.setInsertPolicy(QComboBox.NoInsert)
        self.label_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.label_combo.setMinimumContentsLength(8)
        self.label_combo.lineEdit().setPlaceholderText("choose or type a label")
        self.label_combo.setToolTip("The selected object's label (class): what the exports write for it. Choose one "
                                    "of the project's labels, or type a new one and press Enter")
        row.addWidget(self.label_combo, 1)
        self.labels_button = QToolButton(self)
        self.labels_button.setObjectName("edit_labels")
        self.labels_button.setText("Labels…")
        self.labels_button.setToolTip("The project's labels: add, rename, colour, remove")
        row.addWidget(self.labels_button)
        lay.addLayout(row)

        row = QHBoxLayout()
        for a in (self.act_search_again, self.act_rename, self.act_forget):
            b = QToolButton(self)
            b.setDefaultAction(a)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            row.addWidget(b)
            self.tree.addAction(a)
        lay.addLayout(row)

    def _action(self, name: str, text: str, tip: str) -> QAction:
        a = QAction(text, self)
        a.setObjectName(name)
        a.setToolTip(tip)
        a.setStatusTip(tip)
        return a

    def set_empty(self, empty: bool) -> None:
        self.empty_label.setVisible(empty)

    def show_label(self, obj, labels: list) -> None:
        """The label box for the selected object (None: disabled): its own name first, then the list."""
        box = self.label_combo
        box.blockSignals(True)
        box.clear()
        if obj is not None:
            box.addItem(f"{obj.name} (its name)", None)
            for label in labels:
                box.addItem(_swatch(label.color), label.name, label.name)
            i = box.findData(obj.label) if obj.label_color is not None else 0
            box.setCurrentIndex(max(0, i))
        box.setEnabled(obj is not None)
        box.blockSignals(False)


def _swatch(color: str) -> QIcon:
    pm = QPixmap(12, 12)
    pm.fill(QColor(color))
    return QIcon(pm)


class LabelsDialog(QDialog):
    """The project's labels: double-click a name to rename it; Add, Colour…, Remove. Changes are asked
    for through signals (the controller writes them and calls set_labels with the list read back)."""

    add_requested = Signal(str)
    rename_requested = Signal(str, str)  # old name, new name
    color_requested = Signal(str, str)  # name, "#rrggbb"
    remove_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("labels_dialog")
        self.setWindowTitle("Labels")
        self.resize(380, 420)
        lay = QVBoxLayout(self)
        note = QLabel("The project's labels (classes). An object without one is labelled by its own name; "
                      "exports write each object's label (COCO categories, LabelMe labels).", self)
        note.setWordWrap(True)
        lay.addWidget(note)
        self.list = QListWidget(self)
        self.list.setObjectName("labels_list")
        self.list.itemChanged.connect(self._edited)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.new_name = QLineEdit(self)
        self.new_name.setPlaceholderText("a new label")
        self.new_name.returnPressed.connect(self._add)
        add = QPushButton("Add", self)
        add.clicked.connect(self._add)
        row.addWidget(self.new_name, 1)
        row.addWidget(add)
        lay.addLayout(row)
        row = QHBoxLayout()
        color = QPushButton("Colour…", self)
        color.clicked.connect(self._color)
        remove = QPushButton("Remove", self)
        remove.setToolTip("Take the label off the list; its objects are labelled by their own names again")
        remove.clicked.connect(self._remove)
        row.addWidget(color)
        row.addWidget(remove)
        row.addStretch(1)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        row.addWidget(close)
        lay.addLayout(row)
        self._filling = False

    def set_labels(self, labels: list) -> None:
        self._filling = True
        current = self.list.currentItem().data(Qt.UserRole) if self.list.currentItem() else None
        self.list.clear()
        for label in labels:
            item = QListWidgetItem(_swatch(label.color), label.name)
            item.setData(Qt.UserRole, label.name)
            item.setToolTip(f"{label.name}: {label.n_objects} object{'s' * (label.n_objects != 1)}, {label.color}")
            item.setFlags(item.flags() | Qt.ItemIsEditable)
            self.list.addItem(item)
            if label.name == current:
                self.list.setCurrentItem(item)
        self._filling = False

    def _selected(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    def _add(self) -> None:
        name = self.new_name.text().strip()
        if name:
            self.new_name.clear()
            self.add_requested.emit(name)

    def _edited(self, item) -> None:
        if not self._filling and item.text().strip() and item.text() != item.data(Qt.UserRole):
            self.rename_requested.emit(item.data(Qt.UserRole), item.text().strip())

    def _color(self) -> None:
        name = self._selected()
        if name is not None:
            color = QColorDialog.getColor(self.list.currentItem().icon().pixmap(12, 12).toImage().pixelColor(6, 6),
                                          self, f"Colour of {name}")
            if color.isValid():
                self.color_requested.emit(name, color.name())

    def _remove(self) -> None:
        name = self._selected()
        if name is not None:
            self.remove_requested.emit(name)


class RecallBanner(QFrame):
    """Above the results: the search is a remembered object's (recalled, or searched again)."""

    new_object_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("recall_banner")
        self.setFrameShape(QFrame.StyledPanel)
        self.setStyleSheet("#recall_banner { background: #fff4cc; border: 1px solid #e0c060; border-radius: 4px; }"
                           "#recall_banner QLabel { color: #3a3000; }")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel("", self)
        self.label.setObjectName("recall_text")
        self.label.setWordWrap(True)
        self.new_button = QPushButton("Search as new object", self)
        self.new_button.setObjectName("search_as_new")
        self.new_button.setToolTip("Search the same region again as something new, without what the "
                                   "remembered object knows")
        self.new_button.clicked.connect(self.new_object_clicked)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.new_button, 0, Qt.AlignVCenter)
        self.setVisible(False)

    def show_text(self, text: str, *, offer_new: bool) -> None:
        self.label.setText(text)
        self.new_button.setVisible(offer_new)
        self.setVisible(True)


class NoticeBanner(QFrame):
    """A plain-spoken notice above the results ("No verified match", with what to try), wrapped."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.setStyleSheet("NoticeBanner { background: #fde8e4; border: 1px solid #e0a090; border-radius: 4px; }"
                           "NoticeBanner QLabel { color: #4a1a10; }")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel("", self)
        self.label.setObjectName("notice_text")
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        lay.addWidget(self.label, 1)
        self.setVisible(False)

    def show_text(self, text: str) -> None:
        self.label.setText(text)
        self.setVisible(True)

    def clear(self) -> None:
        self.label.setText("")
        self.setVisible(False)
