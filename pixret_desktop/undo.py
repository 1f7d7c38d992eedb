"""Undo: the region being edited, and the QUndoCommands that change it.

A `RegionDocument` is one editable region on one image (the query's outline, or one hit's
correction) with its own QUndoStack; the main window's QUndoGroup makes the document on the canvas
the active one, so Ctrl+Z always undoes what the person sees.

Steps stay small (napari's paint "atoms"): a `RegionEdit` keeps only the box the edit touched and
the region's geometry inside that box before and after, never a copy of the whole region or a
mask. One brush stroke, one rectangle, one vertex drag, one new polygon is one step.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from shapely.geometry.base import BaseGeometry

from engine.base.regions import Region
from pixret_desktop import geometry as G


class RegionDocument(QObject):
    """One editable region (an engine.base.regions.Region) and its undo history."""

    changed = Signal()

    def __init__(self, image_id: int, region: Region | None = None, *, kind: str = "query",
                 predicted: Region | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.image_id = image_id
        self.kind = kind  # 'query' or 'hit'
        self.predicted = predicted  # a hit's predicted region: accepting an edited one is a correction
        self._geom: BaseGeometry = G.shape_of(region)
        self._region: Region | None = region
        self.stack = QUndoStack(self)

    @property
    def geometry(self) -> BaseGeometry:
        return self._geom

    @property
    def region(self) -> Region:
        if self._region is None:
            self._region = G.region_of(self._geom)
        return self._region

    @property
    def is_empty(self) -> bool:
        return self._geom.is_empty

    @property
    def is_edited(self) -> bool:
        """True when the region differs from the prediction it started from."""
        return not G.same_shape(self.region, self.predicted)

    def set_geometry(self, geom: BaseGeometry) -> None:
        self._geom, self._region = geom, None
        self.changed.emit()

    def edit(self, text: str, new: BaseGeometry, *touched: BaseGeometry) -> bool:
        """Push one undo step that turns the region into `new`; `touched` bounds what changed."""
        box = G.change_box(*touched)
        if box is None:
            return False
        before, after = G.clip(self._geom, box), G.clip(new, box)
        if (before.is_empty and after.is_empty) or before.equals_exact(after, 0.0):
            return False
        self.stack.push(RegionEdit(self, text, box, before, after, new))
        return True


class RegionEdit(QUndoCommand):
    """Replace the region inside `box`: `before` on undo, `after` on redo."""

    def __init__(self, doc: RegionDocument, text: str, box, before: BaseGeometry, after: BaseGeometry,
                 result: BaseGeometry | None = None):
        super().__init__(text)
        self.doc, self.box, self.before, self.after = doc, tuple(box), before, after
        self._first = result  # the exact result of the first redo (push), then forgotten

    def redo(self) -> None:
        if self._first is not None:
            geom, self._first = self._first, None
        else:
            geom = G.replace_in_box(self.doc.geometry, self.box, self.after)
        self.doc.set_geometry(geom)

    def undo(self) -> None:
        self.doc.set_geometry(G.replace_in_box(self.doc.geometry, self.box, self.before))


class DecisionCommand(QUndoCommand):
    """A review decision (accept, correct, reject) as an undoable step of the hit's document.

    `apply(state)` commits a decision to the catalog (through the review controller); undo commits
    the state before it, which for a first decision is 'unreviewed' (history is kept either way).
    """

    def __init__(self, text: str, apply, before: dict, after: dict):
        super().__init__(text)
        self.apply, self.before, self.after = apply, before, after

    def redo(self) -> None:
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)
