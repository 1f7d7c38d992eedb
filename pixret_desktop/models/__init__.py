"""Qt item models fed from the catalog: rows are plain data, thumbnails come from ThumbnailCache."""
from PySide6.QtCore import Qt

ImageIdRole = Qt.UserRole + 1
StatusRole = Qt.UserRole + 2  # review status (status.STATUSES) or 'unreadable'
RegionRole = Qt.UserRole + 3  # engine.base.regions.Region to outline on the thumbnail, or None
SizeRole = Qt.UserRole + 4  # (width, height) of the full image, or None
ScoreRole = Qt.UserRole + 5
CaptionRole = Qt.UserRole + 6  # second caption line (score, stage)
HitRole = Qt.UserRole + 7
PathRole = Qt.UserRole + 8
StatusTextRole = Qt.UserRole + 9  # an object's status line ("5 reviewed · 3 rejected · ..."), None for a view
DividerRole = Qt.UserRole + 10  # text of a divider drawn above the row (the unverified candidates start), or None
UnverifiedRole = Qt.UserRole + 11  # True for a candidate nothing verified (shortlist, initial ranking)
