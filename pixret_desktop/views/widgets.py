"""Small widgets whose size does not follow their text, so a long file name never moves a dock.

A plain QLabel or QComboBox asks for the width of its whole text: one long path in a header made
the central area wider and squeezed the collection to one column. These elide instead (the whole
text is in the tooltip) and ask only for a small minimum width.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QStyle, QStyleOptionComboBox, QStylePainter


class ElidedLabel(QLabel):
    """One line of text, elided to the width it is given (ElideMiddle keeps a path's folder and
    file name); the whole text is its tooltip when it does not fit."""

    def __init__(self, text: str = "", parent=None, mode=Qt.ElideMiddle, min_chars: int = 8):
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self._min_chars = min_chars
        self._own_tip = ""
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._full = text or ""
        self._elide()

    def text(self) -> str:  # the whole text, not what fits
        return self._full

    def setToolTip(self, tip: str) -> None:  # noqa: N802
        self._own_tip = tip or ""
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, self._mode, max(self.width(), 1))
        super().setText(shown)
        # the tooltip: the whole text when it does not fit, then whatever the caller adds (a full path)
        super().setToolTip("\n".join(t for t in (self._full if shown != self._full else "", self._own_tip) if t))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.fontMetrics().averageCharWidth() * self._min_chars, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(min(self.fontMetrics().horizontalAdvance(self._full) + 4, 400), super().sizeHint().height())


class ElidingComboBox(QComboBox):
    """A combo box that shows its current item elided in the middle (both ends of "#3 object1/view01.jpg
    · Fast · 12/100 reviewed" stay readable) and never widens for a long item; its list pops up as
    wide as the longest item."""

    def __init__(self, parent=None, min_chars: int = 12):
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(min_chars)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QStylePainter(self)
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        p.drawComplexControl(QStyle.CC_ComboBox, opt)
        field = self.style().subControlRect(QStyle.CC_ComboBox, opt, QStyle.SC_ComboBoxEditField, self)
        opt.currentText = self.fontMetrics().elidedText(opt.currentText, Qt.ElideMiddle, field.width())
        p.drawControl(QStyle.CE_ComboBoxLabel, opt)

    def showPopup(self) -> None:  # noqa: N802
        fm = self.view().fontMetrics()
        widest = max((fm.horizontalAdvance(self.itemText(i)) for i in range(self.count())), default=0)
        self.view().setMinimumWidth(min(widest + 40, 900))
        super().showPopup()
