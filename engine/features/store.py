"""The feature store: immutable packs of local features, written atomically, read memory-mapped.

A pack is a folder `features/<name>/` for a batch of images laid end to end; the catalog's
`feature_sets` rows say which (pack, offset, count) belongs to which image. One .npy per column:

    hot: what a search reads, a query touching only its shortlist's rows
      xy        float32 x 2   keypoint position, image pixels                 8 B
      scale     float16       keypoint size, pixels                           2 B
      angle     float16       orientation, degrees                            2 B
      words-<vocabulary>/word  uint16 (uint32 past 65,536 words)  visual word 2 B
      words-<vocabulary>/sig   uint64 x 2  Hamming-embedding signature       16 B
                                                                    = 30 B per feature
    cold: `desc`, the full descriptors (uint8 x 128 for SIFT, 128 B per feature; a learned type's
          unit vectors as float16: XFeat 64 x 2 = 128 B, ALIKED 128 x 2 = 256 B)

The geometry and the descriptors are written when the features are extracted; a word column per
vocabulary when the index is built (engine.project: training a new vocabulary writes new ones, and
the old are removed once the new index is saved). `meta.json` records the feature kind and the
descriptor's size and type, so the store carries any descriptor. Packs of PixRet 0.1 have no
meta.json (raw SIFT) and float32 scale and angle (34 B per feature once their words are added);
they are read as they are, never rewritten.

Each folder is written under a temporary name and renamed into place (engine.base.atomic), then
the catalog rows are committed: a crash in between leaves only an unreferenced pack, which
`collect_garbage` removes.
"""
from __future__ import annotations

import json
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write_arrays, remove_leftovers
from engine.base.errors import PixretError
from engine.features.extract import FeatureSet

PACK_FORMAT = 2
GEOMETRY = ("xy", "scale", "angle")
WORDS_PREFIX = "words-"
SIFT_META = {"kind": "rootsift", "desc_dim": 128, "desc_dtype": "uint8"}  # what a 0.1 pack holds


@dataclass(frozen=True, eq=False)
class StoredFeatures:
    """One image's features as verification reads them: geometry, visual word and signature."""

    xy: np.ndarray  # float32 (N, 2)
    scale: np.ndarray  # float16 (N,) (float32 in 0.1 packs)
    angle: np.ndarray  # float16 (N,) degrees
    word: np.ndarray  # uint16/uint32 (N,)
    sig: np.ndarray  # uint64 (N, bits / 64)

    def __len__(self) -> int:
        return int(self.xy.shape[0])


class DescriptorsMissing(PixretError):
    """A stage that needs the full descriptors met a pack whose cold part was dropped."""


def word_dtype(k: int) -> np.dtype:
    return np.dtype(np.uint16) if k <= 1 << 16 else np.dtype(np.uint32)


class FeatureStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    # -- writing ----------------------------------------------------------------------------

    def write_pack(self, feature_sets: list[FeatureSet], kind: str = "rootsift") -> tuple[str, list[tuple[int, int]]]:
        """Write a batch as one pack; returns its name and each set's (offset, count)."""
        name = f"p{uuid.uuid4().hex[:16]}"
        spans, offset = [], 0
        for fs in feature_sets:
            spans.append((offset, len(fs)))
            offset += len(fs)
        empty = FeatureSet.empty()

        def column(field, dtype=None):
            parts = [getattr(fs, field) for fs in feature_sets] or [getattr(empty, field)]
            return np.concatenate(parts).astype(dtype or parts[0].dtype, copy=False)

        desc = column("desc")
        if desc.dtype.kind == "f":  # learned descriptors (unit vectors): float16 halves the cold part
            desc = desc.astype(np.float16)
        arrays = {"xy": column("xy", np.float32), "scale": column("scale", np.float16),
                  "angle": column("angle", np.float16), "desc": desc}
        meta = {"format": PACK_FORMAT, "kind": kind, "desc_dim": int(desc.shape[1]), "desc_dtype": str(desc.dtype)}
        atomic_write_arrays(self.folder / name, arrays, meta)
        return name, spans

    def write_words(self, pack: str, vocabulary: str, word: np.ndarray, sig: np.ndarray) -> None:
        """The pack's visual words and signatures under one vocabulary (all its rows, in order)."""
        atomic_write_arrays(self.folder / pack / f"{WORDS_PREFIX}{vocabulary}", {"word": word, "sig": sig})
        with self._lock:
            self._open.pop(f"{pack}/{vocabulary}", None)

    def remove_pack(self, pack: str) -> None:
        """Forget a pack no catalog row points to (its catalog commit failed)."""
        self._forget(pack)
        shutil.rmtree(self.folder / pack, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------

    def _columns(self, key: str, folder: Path, names) -> dict[str, np.ndarray] | None:
        arrays = self._open.get(key)
        if arrays is None:
            with self._lock:
                arrays = self._open.get(key)
                if arrays is None:
                    try:
                        # plain arrays over the mappings: slicing a np.memmap costs more than a
                        # small image's work (verification slices each shortlisted image's rows)
                        arrays = {f: np.load(folder / f"{f}.npy", mmap_mode="r").view(np.ndarray) for f in names}
                    except FileNotFoundError:
                        return None
                    self._open[key] = arrays
        return arrays

    def _geometry(self, pack: str) -> dict[str, np.ndarray]:
        arrays = self._columns(pack, self.folder / pack, GEOMETRY)
        if arrays is None:
            raise PixretError(f"{self.folder / pack}: feature pack missing or incomplete")
        return arrays

    def _desc(self, pack: str) -> np.ndarray:
        arrays = self._columns(f"{pack}/desc", self.folder / pack, ("desc",))
        if arrays is None:
            raise DescriptorsMissing(f"{self.folder / pack}: the full descriptors of this pack were dropped "
                                     "(the project keeps only what search needs)")
        return arrays["desc"]

    def read(self, pack: str, offset: int, count: int) -> FeatureSet:
        """One image's features with their full descriptors (views of memory-mapped files, read-only)."""
        a = self._geometry(pack)
        sl = slice(offset, offset + count)
        return FeatureSet(a["xy"][sl], a["scale"][sl], a["angle"][sl], self._desc(pack)[sl])

    def words(self, pack: str, vocabulary: str) -> dict[str, np.ndarray] | None:
        """A pack's word columns of one vocabulary ('word', 'sig', memory-mapped), or None."""
        return self._columns(f"{pack}/{vocabulary}", self.folder / pack / f"{WORDS_PREFIX}{vocabulary}", ("word", "sig"))

    def read_stored(self, pack: str, offset: int, count: int, vocabulary: str) -> StoredFeatures | None:
        """One image's hot record, or None when the pack has no words of this vocabulary yet."""
        w = self.words(pack, vocabulary)
        if w is None:
            return None
        a = self._geometry(pack)
        sl = slice(offset, offset + count)
        return StoredFeatures(a["xy"][sl], a["scale"][sl], a["angle"][sl], w["word"][sl], w["sig"][sl])

    def read_geometry(self, pack: str, offset: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self._geometry(pack)
        sl = slice(offset, offset + count)
        return a["xy"][sl], a["scale"][sl], a["angle"][sl]

    def pack_descriptors(self, pack: str) -> np.ndarray:
        """All rows' full descriptors of a pack (indexing computes a pack's words at once)."""
        return self._desc(pack)

    def has_words(self, pack: str, vocabulary: str) -> bool:
        return (self.folder / pack / f"{WORDS_PREFIX}{vocabulary}" / "sig.npy").exists()

    def has_descriptors(self, pack: str) -> bool:
        return (self.folder / pack / "desc.npy").exists()

    def meta(self, pack: str) -> dict:
        """Feature kind and descriptor size/type of a pack (a 0.1 pack: RootSIFT from raw SIFT)."""
        try:
            return {**SIFT_META, **json.loads((self.folder / pack / "meta.json").read_text())}
        except FileNotFoundError:
            return {**SIFT_META, "format": 1}

    def packs(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- sizes and cleaning -------------------------------------------------------------------

    def sizes(self, vocabulary: str | None = None) -> dict[str, int]:
        """Bytes on disk: 'hot' (geometry, and words of `vocabulary`), 'cold' (descriptors), 'rows'."""
        hot = cold = rows = 0
        for pack in self.packs():
            folder = self.folder / pack
            for f in GEOMETRY:
                hot += _size(folder / f"{f}.npy")
            if vocabulary is not None:
                for f in ("word", "sig"):
                    hot += _size(folder / f"{WORDS_PREFIX}{vocabulary}" / f"{f}.npy")
            cold += _size(folder / "desc.npy")
            try:
                rows += int(np.load(folder / "xy.npy", mmap_mode="r").shape[0])
            except (OSError, ValueError):
                pass
        return {"hot": hot, "cold": cold, "rows": rows}

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*.npy"))

    def _forget(self, pack: str) -> None:
        with self._lock:
            for key in [k for k in self._open if k == pack or k.startswith(f"{pack}/")]:
                self._open.pop(key, None)

    def collect_garbage(self, used: set[str], vocabulary: str | None = None) -> int:
        """Remove packs no catalog row points to, temporaries left by an interrupted write, and
        (given the current vocabulary) the words of any other vocabulary."""
        removed = 0
        for p in self.folder.iterdir():
            if p.is_dir() and (p.name.startswith(".tmp-") or p.name not in used):
                self._forget(p.name)
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
            elif p.is_dir():
                removed += remove_leftovers(p)  # a words column whose writer was killed
                for w in p.glob(f"{WORDS_PREFIX}*") if vocabulary is not None else ():
                    if w.name != f"{WORDS_PREFIX}{vocabulary}":
                        with self._lock:
                            self._open.pop(f"{p.name}/{w.name[len(WORDS_PREFIX):]}", None)
                        shutil.rmtree(w, ignore_errors=True)
                        removed += 1
        return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
