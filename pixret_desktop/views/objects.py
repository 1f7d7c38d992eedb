"""The Objects dock and the recall banner: layout only (pixret_desktop.controllers.objects wires them).

  Objects dock                          recall banner (above the results)
  +-------------------------------+     +---------------------------------------------------+
  | poster                        |     | Seen before: poster — 12 reviewed images;        |
  |   5 reviewed · 1 rejected     |     | searching only what is new  [Search as new object]|
  |   ■ accepted · view2.jpg      |     +---------------------------------------------------+
  | [Search again] [Rename] [Forget…]
  +-------------------------------+
"""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
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
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.CE_ItemViewItem, opt, painter, widget)  # background and selection
        selected = bool(opt.state & QStyle.State_Selected)
        line = opt.fontMetrics.height()
        r = opt.rect.adjusted(PAD, PAD, -PAD, -PAD)
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
