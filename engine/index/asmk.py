"""Initial search: a visual vocabulary (faiss k-means on the project's float descriptors: RootSIFT,
XFeat or ALIKED) and an ASMK* inverted file.

ASMK* (Tolias et al., "To aggregate or not to aggregate", IJCV 2016): the features of an image
that fall in the same visual word are aggregated (sum of residuals to the centroid), and the
aggregate is binarized by sign into 128 bits. Two images match on a shared word with similarity
sigma(u) = u^3 for u > 0, u = 1 - 2 * hamming / 128, and the image score is the sum over shared
words normalized by both images' self-similarity. Aggregation tames burstiness, the binary
signature makes a small vocabulary discriminative, and only the query region's features are used.

The inverted file is CSR by word: `ptr[w]:ptr[w+1]` indexes `images` (catalog image ids) and
`sigs` (two uint64 per entry). Everything lives in one folder written atomically.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from engine.base.atomic import atomic_write_arrays
from engine.base.errors import PixretError
from engine.features.batch import store_at
from engine.features.extract import descriptor_vectors
from engine.features.store import word_dtype
from engine.index.embedding import HammingEmbedding

SIG_WORDS = 2  # 128-bit signatures as two uint64
# sigma(u) = u^3 for u = 1 - hamming / 64 > 0, by Hamming distance (0..128)
ASMK_KERNEL = np.where(np.arange(129) < 64, (1.0 - np.arange(129) / 64.0) ** 3, 0.0).astype(np.float32)
VOCABULARY_SEED = 1234  # k-means' seed (with a deterministic sample: the same vocabulary in any process)
QUANTIZER_SEED = 1234  # the IVF quantizer's own k-means over the centroids


LARGE_COLLECTION = 10_000_000  # features (~6,000 photos): from 4x this on, the vocabulary grows past 8,192 words
MAX_WORDS = 65_536  # word ids fit the store's uint16 column


def vocabulary_size(n_features: int) -> int:
    """About 100 features per word, a power of two between 256 and 8192 (k-means cost grows with k);
    for large collections twice the words for every 4x more features from LARGE_COLLECTION on: 16,384
    at 40M features (~23,000 photos), 32,768 at 160M (~93,000), 65,536 from 640M (~370,000). A word
    then stays in a small share of the photos, and the initial search reads that share of the
    collection's postings (BENCHMARKS.md: the initial search at 100k and 1M images)."""
    k = int(min(8192, max(256, 2 ** int(round(np.log2(max(n_features, 1) / 100.0))))))
    growth = n_features // LARGE_COLLECTION
    while growth >= 4 and k < MAX_WORDS:
        k, growth = k * 2, growth // 4
    return k


VOCABULARY_ITERATIONS = 10


def train_vocabulary(sample: np.ndarray, k: int, *, seed: int = VOCABULARY_SEED, niter: int = VOCABULARY_ITERATIONS,
                     init: np.ndarray | None = None) -> np.ndarray:
    """k-means centroids (k, d) float32 on float descriptors (RootSIFT, or a learned type's).

    init: centroids to continue from with niter more Lloyd iterations (3 iterations, then 7 from
    their result, give exactly the centroids of 10 in one go: how training resumes)."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    k = int(min(k, max(1, sample.shape[0] // 39)))  # faiss wants >= 39 points per centroid
    if init is not None:
        k = len(init)
        init = np.ascontiguousarray(init, dtype=np.float32)
    km = faiss.Kmeans(sample.shape[1], k, niter=niter, seed=seed, spherical=False,
                      max_points_per_centroid=64, verbose=False)
    km.train(sample, init_centroids=init)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


class Quantizer:
    """Nearest-centroid assignment.

    Small vocabularies are searched exactly; from 2048 words on, an IVF over the centroids
    (nprobe 16 of ~2*sqrt(k) cells) agrees with the exact assignment on ~99% of RootSIFT features
    at a third of the cost, and the same quantizer serves the collection and the queries.
    """

    EXACT_BELOW = 2048

    def __init__(self, centroids: np.ndarray):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        k, d = self.centroids.shape
        if k < self.EXACT_BELOW:
            self._index = faiss.IndexFlatL2(d)
        else:
            nlist = int(2 * np.sqrt(k))
            self._coarse = faiss.IndexFlatL2(d)  # kept referenced: the IVF does not own it
            self._index = faiss.IndexIVFFlat(self._coarse, d, nlist)
            self._index.cp.min_points_per_centroid = 1  # training on the centroids themselves
            self._index.cp.seed = QUANTIZER_SEED
            self._index.train(self.centroids)
            self._index.nprobe = 16
        self._index.add(self.centroids)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def assign(self, x: np.ndarray, multiple: int = 1) -> np.ndarray:
        """Word ids (N, multiple) of the nearest centroids."""
        if len(x) == 0:
            return np.zeros((0, multiple), np.int64)
        _, ids = self._index.search(np.ascontiguousarray(x, dtype=np.float32), multiple)
        return np.maximum(ids, 0)  # -1 (no neighbour found in the probed cells) is vanishingly rare


def aggregate(x: np.ndarray, words: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASMK aggregation of one image: (unique words (M,), signatures (M, 2) uint64).

    `words` is (N, m): with multiple assignment every feature contributes to each of its m words.
    """
    if len(x) == 0:
        return np.zeros(0, np.int32), np.zeros((0, SIG_WORDS), np.uint64)
    m = words.shape[1]
    w = words.reshape(-1)
    xr = np.repeat(np.asarray(x, np.float32), m, axis=0)
    resid = xr - centroids[w]
    order = np.argsort(w, kind="stable")
    sw = w[order]
    starts = np.flatnonzero(np.r_[True, sw[1:] != sw[:-1]])
    uniq = sw[starts]
    agg = np.add.reduceat(resid[order], starts, axis=0)
    signs = agg > 0
    if signs.shape[1] != 64 * SIG_WORDS:  # XFeat's 64-d: each sign twice, so Hamming distances double
        signs = np.ascontiguousarray(signs[:, np.arange(64 * SIG_WORDS) % signs.shape[1]])  # and the kernel's u = 1 - 2h/d holds
    bits = np.packbits(signs, axis=1)  # (M, 16) bytes
    sigs = bits.view(np.uint64).reshape(len(uniq), SIG_WORDS)
    return uniq.astype(np.int32), np.ascontiguousarray(sigs)


@dataclass
class InvertedFile:
    centroids: np.ndarray  # (k, 128) float32
    ptr: np.ndarray  # (k + 1,) int64
    images: np.ndarray  # (E,) int32 catalog image ids
    sigs: np.ndarray  # (E, 2) uint64
    n_words: dict[int, int]  # image id -> number of distinct words (self-similarity)
    trained_on: int  # number of features the vocabulary was trained on
    feature_sets: dict[int, int]  # image id -> catalog feature set id it was built from (staleness check)
    embedding: HammingEmbedding | None = None  # per-feature signatures (None in an index of PixRet 0.1)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def image_ids(self) -> np.ndarray:
        return np.fromiter(self.n_words.keys(), dtype=np.int64, count=len(self.n_words))

    @classmethod
    def build(cls, centroids: np.ndarray, entries: dict[int, tuple[np.ndarray, np.ndarray]], trained_on: int,
              feature_sets: dict[int, int], embedding: HammingEmbedding | None = None) -> "InvertedFile":
        """entries: image id -> (words, sigs) from `aggregate`."""
        k = centroids.shape[0]
        ids = list(entries.keys())
        words = [entries[i][0] for i in ids]
        lens = np.array([len(w) for w in words], np.int64)
        all_words = np.concatenate(words) if ids else np.zeros(0, np.int32)
        all_sigs = np.concatenate([entries[i][1] for i in ids]) if ids else np.zeros((0, SIG_WORDS), np.uint64)
        all_imgs = np.repeat(np.array(ids, np.int32), lens)
        order = np.argsort(all_words, kind="stable")
        ptr = np.zeros(k + 1, np.int64)
        np.cumsum(np.bincount(all_words, minlength=k), out=ptr[1:])
        return cls(np.ascontiguousarray(centroids, np.float32), ptr, all_imgs[order],
                   np.ascontiguousarray(all_sigs[order]), {int(i): int(n) for i, n in zip(ids, lens)}, trained_on,
                   {int(i): int(feature_sets[i]) for i in ids}, embedding)

    def document_frequency(self) -> np.ndarray:
        """Postings per word (k,): how many images hold each word."""
        return np.diff(np.asarray(self.ptr))

    def entries(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """The per-image (words, sigs) back from the CSR layout (for the graph and shards)."""
        words = np.repeat(np.arange(self.k, dtype=np.int32), np.diff(self.ptr))
        order = np.argsort(self.images, kind="stable")
        imgs, words, sigs = self.images[order], words[order], self.sigs[order]
        bounds = np.flatnonzero(np.diff(imgs)) + 1
        out = {}
        for w, s, i in zip(np.split(words, bounds), np.split(sigs, bounds), np.split(imgs, bounds)):
            if len(i):
                out[int(i[0])] = (w, s)
        for i in self.n_words:  # images with no words at all
            out.setdefault(i, (np.zeros(0, np.int32), np.zeros((0, SIG_WORDS), np.uint64)))
        return out

    def score(self, words: np.ndarray, sigs: np.ndarray, exclude: set[int] = frozenset()) -> dict[int, float]:
        """ASMK* similarity of a query (its aggregated words and signatures) to every image."""
        ids, S = self.score_many([(words, sigs)])
        out = dict(zip(ids.tolist(), S[0].tolist()))
        for i in exclude:
            out.pop(i, None)
        return out

    def score_many(self, queries: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """ASMK* similarities of several queries at once: (image ids (N,), scores (len(queries), N))."""
        ids = self.image_ids
        key = len(self.images)
        if getattr(self, "_columns", (None,))[0] != key:  # image id -> column, built once per index
            colmap = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, np.int64)
            colmap[ids] = np.arange(len(ids))
            nw = np.fromiter(self.n_words.values(), np.float64, len(ids))
            self._columns = (key, colmap, np.sqrt(np.maximum(nw, 1.0)))
        _, colmap, norm = self._columns
        S = np.zeros((len(queries), len(ids)), np.float32)
        for row, (words, sigs) in enumerate(queries):
            if len(words) == 0 or len(self.images) == 0:
                continue
            images, sel = self.matches(words, sigs)
            acc = np.bincount(colmap[images], weights=sel, minlength=len(ids))
            S[row] = acc / (np.sqrt(len(words)) * norm)
        return ids, S

    def matches(self, words: np.ndarray, sigs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every posting of the query's words with its ASMK* kernel value: (image ids, sigma(u)).

        Word by word over contiguous slices of the postings (memory-mapped ones are read in
        order, and nothing as large as all postings is ever gathered); each uint64 half of the
        signatures is counted on its own, which numpy does several times faster than both at once."""
        images, weights = [], []
        for w, q in zip(np.asarray(words).tolist(), np.asarray(sigs, np.uint64)):
            a, b = int(self.ptr[w]), int(self.ptr[w + 1])
            if a == b:
                continue
            block = self.sigs[a:b]
            ham = np.bitwise_count(block[:, 0] ^ q[0])
            for j in range(1, SIG_WORDS):
                ham += np.bitwise_count(block[:, j] ^ q[j])
            weights.append(ASMK_KERNEL[ham])
            images.append(self.images[a:b])
        if not images:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        return np.concatenate(images), np.concatenate(weights)

    # -- storage ------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write to `folder` atomically (a temporary sibling renamed into place)."""
        ids = np.fromiter(self.n_words.keys(), np.int64, len(self.n_words))
        nw = np.fromiter(self.n_words.values(), np.int64, len(self.n_words))
        fs = np.array([self.feature_sets[int(i)] for i in ids], np.int64)
        arrays = {"centroids": self.centroids, "ptr": self.ptr, "images": self.images, "sigs": self.sigs,
                  "image_ids": ids, "image_nwords": nw, "image_fsids": fs}
        meta = {"trained_on": self.trained_on, "k": self.k}
        if self.embedding is not None:
            arrays.update(self.embedding.arrays())
            meta.update(self.embedding.meta())
        atomic_write_arrays(folder, arrays, meta)

    @classmethod
    def load(cls, folder: Path) -> "InvertedFile":
        """The postings (image ids and signatures) memory-mapped: a query reads its words' only."""
        folder = Path(folder)
        names = ("centroids", "ptr", "images", "sigs", "image_ids", "image_nwords", "image_fsids")
        a = {n: np.load(folder / f"{n}.npy", mmap_mode="r" if n in ("images", "sigs") else None) for n in names}
        for n in ("images", "sigs"):  # plain arrays over the mapping: a np.memmap slice costs more than its work
            a[n] = a[n].view(np.ndarray)
        meta = json.loads((folder / "meta.json").read_text())
        ids = a["image_ids"].tolist()
        embedding = HammingEmbedding.in_index(folder, meta)
        return cls(a["centroids"], a["ptr"], a["images"], a["sigs"],
                   dict(zip(ids, a["image_nwords"].tolist())), int(meta["trained_on"]),
                   dict(zip(ids, a["image_fsids"].tolist())), embedding)

    def nbytes(self) -> int:
        return int(self.centroids.nbytes + self.ptr.nbytes + self.images.nbytes + self.sigs.nbytes
                   + (self.embedding.nbytes() if self.embedding is not None else 0))


_QUANTIZERS: dict[bytes, Quantizer] = {}  # one per vocabulary in each process that aggregates words


def _quantizer_of(centroids: np.ndarray) -> Quantizer:
    import hashlib

    key = hashlib.sha1(np.ascontiguousarray(centroids, np.float32).tobytes()).digest()
    q = _QUANTIZERS.get(key)
    if q is None:
        _QUANTIZERS.clear()  # a new vocabulary replaces the old one
        q = _QUANTIZERS[key] = Quantizer(centroids)
    return q


def stored_entries(store_folder, items: list[tuple[int, str, int, int]], centroids: np.ndarray, key: str,
                   kind: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The ASMK aggregation of each listed image (image id, pack, offset, count), read from the
    project's feature store: its descriptors and the words pack_words_batch stored under `key`
    (nothing is quantized again). engine.index.shards builds a shard from it."""
    store = store_at(store_folder)
    centroids = np.ascontiguousarray(centroids, np.float32)
    out = {}
    for image_id, pack, offset, count in items:
        columns = store.words(pack, key)
        if columns is None:
            raise PixretError(f"{store.folder / pack}: feature pack without the index's words")
        x = descriptor_vectors(store.read(pack, offset, count).desc, kind)
        word = np.asarray(columns["word"][offset:offset + count], np.int64)[:, None]
        out[int(image_id)] = aggregate(x, word, centroids)
    return out


def pack_words_batch(store_folder, pack: str, centroids: np.ndarray, embedding: HammingEmbedding, key: str,
                     kind: str) -> int:
    """Indexing's unit of word work (engine.parallel runs it here or on a cluster worker), one feature
    pack: its word columns (each row's nearest word and signature, under `key`), written into the
    pack once, whole: they are their own checkpoint. Returns the pack's rows."""
    store = store_at(store_folder)
    quantizer = _quantizer_of(centroids)
    x = descriptor_vectors(store.pack_descriptors(pack), kind)
    if store.words(pack, key) is None:
        word = quantizer.assign(x)[:, 0].astype(word_dtype(quantizer.k))
        store.write_words(pack, key, word, embedding.signatures(x, word, quantizer.centroids))
    return len(x)
