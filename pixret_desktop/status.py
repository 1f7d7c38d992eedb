"""Review statuses: their names, colours and badges, the same in every view."""
from __future__ import annotations

from PySide6.QtGui import QColor

STATUSES = ("unreviewed", "accepted", "corrected", "rejected")

COLORS = {
    "unreviewed": QColor(150, 150, 150),
    "accepted": QColor(46, 170, 80),
    "corrected": QColor(40, 130, 230),
    "rejected": QColor(220, 60, 60),
    "unreadable": QColor(230, 150, 20),
    "pending": QColor(200, 200, 80),
}

LABELS = {
    "unreviewed": "Unreviewed",
    "accepted": "Accepted",
    "corrected": "Corrected",
    "rejected": "Rejected",
    "unreadable": "Unreadable",
}

BADGES = {"unreviewed": "", "accepted": "✓", "corrected": "✎", "rejected": "✕", "unreadable": "!"}


def color(status: str) -> QColor:
    return COLORS.get(status, COLORS["unreviewed"])
