"""Thumbnails: decoded lazily on a small thread pool, cached in memory (LRU) and on disk.

The disk cache lives in the project folder, `thumbs/<size>/<image id>_<path hash>.jpg`, written
atomically and redone when the image file is newer. Requests are served newest first (a stack), so
the rows the person is looking at now load before those scrolled past; pixmaps are made on the
GUI thread from QImages decoded in the workers.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

MEMORY_BUDGET = 128 * 1024 * 1024  # bytes of pixmaps kept in memory
MAX_PENDING = 2000  # requests beyond this (scrolled far past) are dropped, oldest first


def decode_thumbnail(path: Path, size: int) -> QImage:
    """The image, upright per its EXIF orientation (as engine.ingest.imageio shows it), longer side = size.

    JPEGs are decoded at a reduced scale (Pillow's draft mode): ~10x faster than a full decode.
    """
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size * 2, size * 2))
            im = ImageOps.exif_transpose(im)
            if im.mode != "RGB":
                im = im.convert("RGBA").convert("RGB") if "A" in im.mode else im.convert("RGB")
            im.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            arr = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    except Exception:  # anything Pillow's fast path cannot do: the engine's loader decides
        from engine.ingest.imageio import load_image  # raises ImageReadError with the reason

        full = load_image(path)
        h, w = full.shape[:2]
        s = size / max(h, w)
        import cv2

        arr = np.ascontiguousarray(cv2.resize(full, (max(1, round(w * s)), max(1, round(h * s))),
                                              interpolation=cv2.INTER_AREA) if s < 1 else full)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def _atomic_save(image: QImage, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    if image.save(str(tmp), "JPG", 85):
        os.replace(tmp, path)
    else:
        tmp.unlink(missing_ok=True)


class _Runner(QRunnable):
    def __init__(self, cache: "ThumbnailCache"):
        super().__init__()
        self.cache = cache

    def run(self) -> None:
        cache = self.cache
        while True:
            job = cache._next_job()
            if job is None:
                return
            generation, image_id, path, disk = job
            image = None
            try:
                if disk is not None and disk.exists() and disk.stat().st_mtime >= path.stat().st_mtime:
                    image = QImage(str(disk))
                    if image.isNull():
                        image = None
                if image is None:
                    image = decode_thumbnail(path, cache.pixel_size)
                    if disk is not None:
                        _atomic_save(image, disk)
            except Exception:  # unreadable: the row shows a broken-image badge
                image = QImage()
            cache._loaded.emit(generation, image_id, image)


class ThumbnailCache(QObject):
    """Shared by the collection grid and the results list; emits `ready(image_id)`."""

    ready = Signal(int)
    _loaded = Signal(int, int, QImage)  # generation, image id, image (from the worker threads)

    def __init__(self, size: int = 160, parent=None, *, dpr: float = 1.0):
        super().__init__(parent)
        self.size = int(size)  # logical pixels
        self.dpr = max(1.0, float(dpr))  # high-DPI screens get thumbnails with more pixels
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, min(4, QThreadPool.globalInstance().maxThreadCount() - 1)))
        self._lock = threading.Lock()
        self._stack: OrderedDict[int, Path] = OrderedDict()  # newest request last
        self._inflight: set[int] = set()
        self._runners = 0
        self._generation = 0
        self._folder: Path | None = None
        self._mem: OrderedDict[int, QPixmap] = OrderedDict()
        self._bytes = 0
        self.failed: set[int] = set()
        self._loaded.connect(self._on_loaded)

    # -- configuration --------------------------------------------------------------------------

    def set_folder(self, project_folder: Path | None) -> None:
        """The project's folder (for the disk cache), or None; forgets everything in memory."""
        self._folder = Path(project_folder) if project_folder else None
        self.reset()

    def set_size(self, size: int) -> None:
        if int(size) != self.size:
            self.size = int(size)
            self.reset()

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._stack.clear()
            self._inflight.clear()
        self._mem.clear()
        self._bytes = 0
        self.failed.clear()

    @property
    def pixel_size(self) -> int:
        return round(self.size * self.dpr)

    def disk_path(self, image_id: int, path: Path) -> Path | None:
        if self._folder is None:
            return None
        tag = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        return self._folder / "thumbs" / str(self.pixel_size) / f"{image_id}_{tag}.jpg"

    # -- use ---------------------------------------------------------------------------------------

    def pixmap(self, image_id: int) -> QPixmap | None:
        pm = self._mem.get(image_id)
        if pm is not None:
            self._mem.move_to_end(image_id)
        return pm

    def request(self, image_id: int, path: Path) -> None:
        """Ask for a thumbnail (cheap to call on every paint: duplicates just move to the top)."""
        if image_id in self._mem or image_id in self.failed:
            return
        with self._lock:
            if image_id in self._inflight:
                return
            self._stack[image_id] = Path(path)
            self._stack.move_to_end(image_id)
            while len(self._stack) > MAX_PENDING:
                self._stack.popitem(last=False)
            start = self._runners < self._pool.maxThreadCount()
            if start:
                self._runners += 1
        if start:
            self._pool.start(_Runner(self))

    def _next_job(self):
        with self._lock:
            if not self._stack:
                self._runners -= 1
                return None
            image_id, path = self._stack.popitem(last=True)
            self._inflight.add(image_id)
            return self._generation, image_id, path, self.disk_path(image_id, path)

    @Slot(int, int, QImage)
    def _on_loaded(self, generation: int, image_id: int, image: QImage) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._inflight.discard(image_id)
        if image.isNull():
            self.failed.add(image_id)
        else:
            pm = QPixmap.fromImage(image)
            pm.setDevicePixelRatio(self.dpr)
            self._mem[image_id] = pm
            self._bytes += pm.width() * pm.height() * 4
            while self._bytes > MEMORY_BUDGET and len(self._mem) > 1:
                _, old = self._mem.popitem(last=False)
                self._bytes -= old.width() * old.height() * 4
        self.ready.emit(image_id)

    def wait(self, ms: int = 5000) -> bool:
        return self._pool.waitForDone(ms)

    def pending(self) -> int:
        with self._lock:
            return len(self._stack) + len(self._inflight)
