"""Checkpoints of index work in progress, so that an interrupted run resumes instead of restarting.

Training the vocabulary (k-means, minutes on a large collection) and putting every image into the
inverted file (aggregating its words) are the two long steps after feature extraction. Both save
their progress in `index-work/` as they go: the centroids after every k-means iteration (Lloyd
iterations from saved centroids are exactly the iterations an uninterrupted run would have made),
the signatures' embedding once trained, and the words of each few hundred images (the store's
per-feature word columns are their own checkpoint: each pack's are written once, atomically). A
cancel, a crash or a kill loses at most one step of each. The folder is removed once the finished
index is saved.

Every checkpoint says what it belongs to, and anything else is ignored: a vocabulary is resumed
only for the same training set (the same feature sets and vocabulary size); words are used only
for the same vocabulary and the same feature set of the image.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write_arrays
from engine.index.asmk import SIG_WORDS
from engine.index.embedding import HammingEmbedding

Entries = dict[int, tuple[np.ndarray, np.ndarray]]  # image id -> (words, signatures), as asmk.aggregate


def training_key(k: int, feature_sets: list[int]) -> str:
    """What a vocabulary is trained on: its size and the feature sets its sample is drawn from."""
    return hashlib.sha1(json.dumps([int(k), sorted(int(f) for f in feature_sets)]).encode()).hexdigest()[:16]


def vocabulary_key(centroids: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(centroids, np.float32).tobytes()).hexdigest()[:16]


def words_key(centroids: np.ndarray, embedding: HammingEmbedding) -> str:
    """What the store's word columns depend on: the vocabulary and the signatures' embedding."""
    h = hashlib.sha1(np.ascontiguousarray(centroids, np.float32).tobytes())
    h.update(np.ascontiguousarray(embedding.rotation, np.float32).tobytes())
    h.update(np.ascontiguousarray(embedding.medians, np.float32).tobytes())
    return h.hexdigest()[:16]


class IndexWork:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    # -- vocabulary ---------------------------------------------------------------------------

    def vocabulary(self, key: str) -> tuple[np.ndarray, int] | None:
        """(centroids, iterations done) of an unfinished training with this key, if one was saved."""
        folder = self.folder / "vocabulary"
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("key") != key:
                return None
            return np.load(folder / "centroids.npy"), int(meta["iterations"])
        except (OSError, ValueError, KeyError):
            return None

    def save_vocabulary(self, key: str, centroids: np.ndarray, iterations: int) -> None:
        atomic_write_arrays(self.folder / "vocabulary", {"centroids": centroids},
                            {"key": key, "iterations": int(iterations)})

    # -- the embedding (signatures' medians) ------------------------------------------------------

    def embedding(self, vocabulary: str) -> HammingEmbedding | None:
        folder = self.folder / f"embedding-{vocabulary}"
        try:
            meta = json.loads((folder / "meta.json").read_text())
            return HammingEmbedding.from_arrays({n: np.load(folder / f"{n}.npy") for n in ("he_rotation", "he_medians")},
                                                meta["seed"])
        except (OSError, ValueError, KeyError):
            return None

    def save_embedding(self, vocabulary: str, embedding: HammingEmbedding) -> None:
        atomic_write_arrays(self.folder / f"embedding-{vocabulary}", embedding.arrays(), {"seed": embedding.seed})

    # -- words --------------------------------------------------------------------------------

    def words(self, vocabulary: str, feature_sets: dict[int, int]) -> Entries:
        """Saved words of this vocabulary for images whose feature set is still the one in feature_sets."""
        out: Entries = {}
        for folder in sorted(self.folder.glob(f"words-{vocabulary}-*")):
            try:
                a = {n: np.load(folder / f"{n}.npy") for n in ("image_ids", "fsids", "lens", "words", "sigs")}
            except (OSError, ValueError):
                continue  # unreadable: those images are aggregated again
            ends = np.cumsum(a["lens"])
            for i, fs, end, n in zip(a["image_ids"].tolist(), a["fsids"].tolist(), ends.tolist(), a["lens"].tolist()):
                if feature_sets.get(i) == fs:
                    out[i] = (a["words"][end - n:end], a["sigs"][end - n:end])
        return out

    def save_words(self, vocabulary: str, entries: Entries, feature_sets: dict[int, int]) -> None:
        ids = sorted(entries)
        words = [entries[i][0] for i in ids]
        arrays = {"image_ids": np.array(ids, np.int64), "fsids": np.array([feature_sets[i] for i in ids], np.int64),
                  "lens": np.array([len(w) for w in words], np.int64),
                  "words": np.concatenate(words) if ids else np.zeros(0, np.int32),
                  "sigs": np.concatenate([entries[i][1] for i in ids]) if ids else np.zeros((0, SIG_WORDS), np.uint64)}
        atomic_write_arrays(self.folder / f"words-{vocabulary}-{time.time_ns():020d}", arrays)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
