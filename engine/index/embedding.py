"""Hamming embedding: a short binary signature of where each local feature lies inside its visual word.

Jegou, Douze & Schmid, "Hamming embedding and weak geometric consistency" (ECCV 2008). A feature's
residual to its word's centroid is projected by a fixed random rotation, and each projected
component is compared with that word's median of it: `bits` bits, stored with the feature (the
compact store). Two features correspond when they share a word and their signatures differ in few
bits (engine.verify.correspond), so verification needs neither the full descriptors nor a dense
descriptor product.

Nothing here is SIFT-specific: it works on any float descriptor (RootSIFT 128-d, XFeat 64-d,
ALIKED 128-d); beyond d bits, further independent rotations are stacked. The rotation comes from
`seed` (EMBEDDING_SEED unless told), the medians from a deterministic sample, so the same project
gives the same signatures in any process (issue 19's cluster included).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBEDDING_BITS = 128  # 2 x uint64 per feature: 5x fewer candidates than 64 bits at the same recall
EMBEDDING_SEED = 20  # the rotation's seed
MIN_PER_WORD = 8  # a word with fewer sample features keeps median 0 (residuals are centred on it)
_BLOCK = 65536  # features projected at once (bounded temporaries)


@dataclass(eq=False)
class HammingEmbedding:
    rotation: np.ndarray  # (bits, d) float32: orthonormal rows (per block of d)
    medians: np.ndarray  # (k, bits) float32: per-word thresholds
    seed: int = EMBEDDING_SEED

    @property
    def bits(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def words_per_signature(self) -> int:
        return self.bits // 64

    @staticmethod
    def random_rotation(d: int, bits: int, seed: int = EMBEDDING_SEED) -> np.ndarray:
        if bits % 64 or bits <= 0:
            raise ValueError(f"signature bits must be a positive multiple of 64, not {bits}")
        rng = np.random.default_rng(seed)
        blocks, have = [], 0
        while have < bits:
            q, r = np.linalg.qr(rng.standard_normal((d, d)))
            blocks.append((q * np.sign(np.diag(r))).T)  # sign fix: a unique, seed-determined basis
            have += d
        return np.ascontiguousarray(np.concatenate(blocks)[:bits], np.float32)

    @classmethod
    def train(cls, centroids: np.ndarray, sample: np.ndarray, sample_words: np.ndarray, *,
              bits: int = EMBEDDING_BITS, seed: int = EMBEDDING_SEED) -> "HammingEmbedding":
        """Medians of each word's projected residuals over `sample` (n, d) with its words (n,)."""
        centroids = np.ascontiguousarray(centroids, np.float32)
        k, d = centroids.shape
        rotation = cls.random_rotation(d, bits, seed)
        medians = np.zeros((k, bits), np.float32)
        words = np.asarray(sample_words, np.int64).ravel()
        proj = _project(centroids, rotation, sample, words)
        order = np.argsort(words, kind="stable")
        bounds = np.searchsorted(words[order], np.arange(k + 1))
        for w in np.flatnonzero(np.diff(bounds) >= MIN_PER_WORD):
            medians[w] = np.median(proj[order[bounds[w]:bounds[w + 1]]], axis=0)
        return cls(rotation, medians, seed)

    def signatures(self, x: np.ndarray, words: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Signatures (uint64) of float descriptors x (n, d) in their words: words (n,) gives
        (n, bits // 64), words (n, m) (multiple assignment) gives (n, m, bits // 64).

        The residual's projection is the descriptor's minus the centroid's: each descriptor and
        each centroid is rotated once, however many words a descriptor is signed in."""
        words = np.asarray(words, np.int64)
        n = len(words)
        m = 1 if words.ndim == 1 else words.shape[1]
        cr = self._rotated_centroids(centroids)
        out = np.zeros((n, m, self.words_per_signature), np.uint64)
        step = max(1, _BLOCK // m)
        for s in range(0, n, step):
            xr = np.asarray(x[s:s + step], np.float32) @ self.rotation.T  # (b, bits)
            w = words[s:s + step].reshape(len(xr), m)
            above = xr[:, None, :] - cr[w] > self.medians[w]  # (b, m, bits)
            out[s:s + step] = np.packbits(above, axis=2).view(np.uint64)
        return out[:, 0] if words.ndim == 1 else out

    def _rotated_centroids(self, centroids: np.ndarray) -> np.ndarray:
        cached = getattr(self, "_rotated", None)
        if cached is None or cached[0] is not centroids:
            cached = (centroids, np.asarray(centroids, np.float32) @ self.rotation.T)
            self._rotated = cached
        return cached[1]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"he_rotation": self.rotation, "he_medians": self.medians}

    @classmethod
    def from_arrays(cls, a: dict, seed: int) -> "HammingEmbedding":
        return cls(np.ascontiguousarray(a["he_rotation"], np.float32), np.ascontiguousarray(a["he_medians"], np.float32),
                   int(seed))

    @classmethod
    def load(cls, folder, seed: int) -> "HammingEmbedding":
        """The arrays `arrays()` wrote into a folder."""
        return cls.from_arrays({n: np.load(Path(folder) / f"{n}.npy") for n in ("he_rotation", "he_medians")}, seed)

    def meta(self) -> dict:
        """What an index's meta.json records of its embedding (`in_index` reads it back)."""
        return {"embedding_bits": self.bits, "embedding_seed": self.seed}

    @classmethod
    def in_index(cls, folder, meta: dict) -> "HammingEmbedding | None":
        """The embedding saved beside an index (its arrays and `meta()`), None in an index without one."""
        return cls.load(folder, meta["embedding_seed"]) if "embedding_bits" in meta else None

    def nbytes(self) -> int:
        return int(self.rotation.nbytes + self.medians.nbytes)


def _project(centroids: np.ndarray, rotation: np.ndarray, x: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Rotated residuals, as `signatures` computes them (rotated descriptor minus rotated centroid)."""
    cr = np.asarray(centroids, np.float32) @ rotation.T
    out = np.empty((len(words), rotation.shape[0]), np.float32)
    for s in range(0, len(words), _BLOCK):
        sl = slice(s, s + _BLOCK)
        out[sl] = np.asarray(x[sl], np.float32) @ rotation.T - cr[words[sl]]
    return out
