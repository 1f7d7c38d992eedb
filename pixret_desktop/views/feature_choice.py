"""The feature type of a new project, chosen beside its folder (File ▸ New Project).

A type the installation cannot run (the controller says which, and why) is shown disabled, its
tooltip and the hint below the choice naming the pip commands."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget


class FeatureTypeChoice(QWidget):
    def __init__(self, choices: list[tuple[str, str, str | None]], parent=None):
        """choices: (kind, title, why it cannot run here or None), the default first."""
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        label = QLabel("&Features:", self)
        self.combo = QComboBox(self)
        self.combo.setObjectName("feature_type")
        self.combo.setToolTip("The local features the project is indexed with; kept for the project's life")
        label.setBuddy(self.combo)
        row.addWidget(label)
        row.addWidget(self.combo, 1)
        lay.addLayout(row)
        missing = None
        for kind, title, why in choices:
            self.combo.addItem(title, kind)
            if why is not None:
                item = self.combo.model().item(self.combo.count() - 1)
                item.setEnabled(False)
                item.setToolTip(why)
                missing = missing or why
        self.hint = QLabel(missing or "", self)
        self.hint.setObjectName("feature_type_hint")
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the pip commands can be copied
        self.hint.setVisible(missing is not None)
        lay.addWidget(self.hint)

    def kind(self) -> str:
        return self.combo.currentData()
