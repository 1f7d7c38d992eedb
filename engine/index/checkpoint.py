"""Checkpoints of index work in progress, so that an interrupted run resumes instead of restarting.

Training the vocabulary (k-means, minutes on a large collection) and putting every image into the
inverted file (its words, then its shard) are the long steps after feature extraction. The
vocabulary and the signatures' embedding save their progress in `index-work/` as they go: the
centroids after every k-means iteration (Lloyd iterations from saved centroids are exactly the
iterations an uninterrupted run would have made), the embedding once trained. The store's
per-feature word columns and the index's shards (engine.index.shards) are their own checkpoints:
each pack's columns and each shard are written once, atomically. A cancel, a crash or a kill loses
at most one step of each. The folder is removed once the finished index is saved.

Every checkpoint says what it belongs to, and anything else is ignored: a vocabulary is resumed
only for the same training set (the same feature sets and vocabulary size).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write_arrays
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
            return HammingEmbedding.load(folder, meta["seed"])
        except (OSError, ValueError, KeyError):
            return None

    def save_embedding(self, vocabulary: str, embedding: HammingEmbedding) -> None:
        atomic_write_arrays(self.folder / f"embedding-{vocabulary}", embedding.arrays(), {"seed": embedding.seed})

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
