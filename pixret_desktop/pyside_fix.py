"""A guard against PySide6 6.12.0 losing references to None, True and False on CPython < 3.12.

PySide6-Essentials 6.12.0 is built for the stable ABI of CPython 3.10+ but returns `None` from
every void method (`widget.update()`, `app.processEvents()`, `label.setText()`, ...), `True` from
`Signal.emit()`, and `None` for an invalid QVariant (`index.data(role)`) without taking a
reference for the caller. From CPython 3.12 on these objects are immortal and nothing happens; on
3.11 every such call lowers their reference count by one, and a few thousand calls later the
interpreter aborts ("Fatal Python error: none_dealloc" / "bool_dealloc") in whatever thread
happens to release the last reference. PySide6 6.11.x does not have the defect.

`apply()` detects the defect (a few void calls, then compare reference counts) and, only then,
gives None, True and False a very large number of extra references: what CPython 3.12 does
("immortal objects", PEP 683). Nothing changes on an unaffected PySide6 or a newer Python.
"""
from __future__ import annotations

import ctypes
import sys

EXTRA_REFERENCES = 1 << 40  # ~10^12 lost references before these objects could be freed
applied = False


def _loses_references() -> bool:
    from PySide6.QtCore import QObject

    probe = QObject()
    n = 64
    before = sys.getrefcount(None)
    for _ in range(n):
        probe.setObjectName("probe")  # a void method: returns None
    lost = before - sys.getrefcount(None)
    if lost > 0:
        _add_references(None, lost)  # give back what the probe itself took
    return lost >= n // 2


def _add_references(obj, n: int) -> None:
    refcnt = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt, the first field of a PyObject
    refcnt.value += n


def apply() -> bool:
    """Make None, True and False immortal if this PySide6 loses references to them."""
    global applied
    if applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # immortal already
    if not _loses_references():
        return False
    for obj in (None, True, False):
        _add_references(obj, EXTRA_REFERENCES)
    applied = True
    return True
