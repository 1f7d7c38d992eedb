"""What the canvas shows: one image (loaded through engine.ingest.imageio in a worker) and the
RegionDocument the tools edit on it. The newest request wins; a slower older load is dropped."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPainterPath, QUndoGroup

from engine.ingest.imageio import load_image
from pixret_desktop.controllers.tools import ToolController
from pixret_desktop.geometry import region_to_path
from pixret_desktop.undo import RegionDocument
from pixret_desktop.workers import JobManager, Worker


def load_qimage(path: Path) -> QImage:
    """Decode with the engine's loader (same EXIF orientation as the features) into a QImage."""
    rgb = np.ascontiguousarray(load_image(path))
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class CanvasController(QObject):
    image_loaded = Signal(int)  # image id, once its pixels are on the canvas
    load_failed = Signal(int, str)

    def __init__(self, canvas, jobs: JobManager, undo_group: QUndoGroup, parent=None):
        super().__init__(parent)
        self.canvas = canvas
        self.jobs = jobs
        self.undo_group = undo_group
        self.tools = ToolController(canvas, self)
        self.image_id: int | None = None
        self.document: RegionDocument | None = None
        self._loading: Worker | None = None

    def show(self, image_id: int, path: Path, document: RegionDocument | None, *,
             overlay=None) -> None:
        """Put an image and its editable region on the canvas."""
        same = image_id == self.image_id and self.canvas.image_size is not None
        if document is not None and self.undo_group.stacks().count(document.stack) == 0:
            self.undo_group.addStack(document.stack)
        self.undo_group.setActiveStack(document.stack if document is not None else None)
        self.document = document
        self.tools.set_document(document)
        self.canvas.set_overlay_path(region_to_path(overlay) if overlay is not None else QPainterPath())
        if same:
            return
        self.image_id = image_id
        self.canvas.set_image(None)
        self.canvas.empty_text = "Loading…"
        if self._loading is not None:
            self._loading.cancel()
        w = Worker(load_qimage, Path(path), engine_call=False, name="Loading image")
        self._loading = w
        self.jobs.start(w, pool="io", on_finished=lambda img, w=w, i=image_id: self._loaded(w, i, img),
                        on_failed=lambda e, w=w, i=image_id: self._failed(w, i, e))

    def _loaded(self, worker: Worker, image_id: int, image: QImage) -> None:
        if worker is not self._loading:
            return
        self._loading = None
        self.canvas.set_image(image)
        self.image_loaded.emit(image_id)

    def _failed(self, worker: Worker, image_id: int, exc) -> None:
        if worker is not self._loading:
            return
        self._loading = None
        self.canvas.empty_text = f"Cannot show this image:\n{exc}"
        self.canvas.viewport().update()
        self.load_failed.emit(image_id, str(exc))

    def clear(self) -> None:
        self.image_id = None
        self.document = None
        self.undo_group.setActiveStack(None)
        self.tools.set_document(None)
        self.canvas.clear("Open a project and pick an image")

    def forget(self, document: RegionDocument) -> None:
        if self.undo_group.stacks().count(document.stack):
            self.undo_group.removeStack(document.stack)
