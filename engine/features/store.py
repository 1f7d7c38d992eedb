"""The feature store: immutable packs of local features, written atomically, read memory-mapped.

A pack is a folder `features/<name>/` holding `xy.npy` (float32 N x 2), `scale.npy`, `angle.npy`
(float32 N) and `desc.npy` (uint8 N x 128) for a batch of images laid end to end; the catalog's
`feature_sets` rows say which (pack, offset, count) belongs to which image. A pack is written under
a temporary name and renamed into place (engine.base.atomic), then the catalog rows are committed:
a crash in between leaves only an unreferenced pack, which `collect_garbage` removes. Nothing is ever rewritten in place.
"""
from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write_arrays
from engine.features.extract import FeatureSet

_FIELDS = ("xy", "scale", "angle", "desc")


class FeatureStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def write_pack(self, feature_sets: list[FeatureSet]) -> tuple[str, list[tuple[int, int]]]:
        """Write a batch as one pack; returns its name and each set's (offset, count)."""
        name = f"p{uuid.uuid4().hex[:16]}"
        spans, offset = [], 0
        for fs in feature_sets:
            spans.append((offset, len(fs)))
            offset += len(fs)
        arrays = {}
        for field in _FIELDS:
            parts = [getattr(fs, field) for fs in feature_sets]
            arrays[field] = np.concatenate(parts) if parts else getattr(FeatureSet.empty(), field)
        atomic_write_arrays(self.folder / name, arrays)
        return name, spans

    def remove_pack(self, pack: str) -> None:
        """Forget a pack no catalog row points to (its catalog commit failed)."""
        with self._lock:
            self._open.pop(pack, None)
        shutil.rmtree(self.folder / pack, ignore_errors=True)

    def _arrays(self, pack: str) -> dict[str, np.ndarray]:
        arrays = self._open.get(pack)
        if arrays is None:
            with self._lock:
                arrays = self._open.get(pack)
                if arrays is None:
                    arrays = {f: np.load(self.folder / pack / f"{f}.npy", mmap_mode="r") for f in _FIELDS}
                    self._open[pack] = arrays
        return arrays

    def read(self, pack: str, offset: int, count: int) -> FeatureSet:
        """One image's features; the arrays are views of memory-mapped files (read-only)."""
        a = self._arrays(pack)
        sl = slice(offset, offset + count)
        return FeatureSet(a["xy"][sl], a["scale"][sl], a["angle"][sl], a["desc"][sl])

    def packs(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*.npy"))

    def collect_garbage(self, used: set[str]) -> int:
        """Remove packs no catalog row points to, and temporaries left by an interrupted write."""
        removed = 0
        for p in self.folder.iterdir():
            if p.is_dir() and (p.name.startswith(".tmp-") or p.name not in used):
                with self._lock:
                    self._open.pop(p.name, None)
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
        return removed
