"""The collection's graph, built offline: a kNN graph of global similarities and verified hyperedges.

Two layers, both kept under `<project>/graph/`:

1. kNN. Every image's `k` nearest images by ASMK* image-to-image similarity (the initial search's
   own kernel, `engine.index.asmk`), scored exactly from the inverted file, one image against all.
   Cheaper global descriptors searched with faiss were tried on the dev set and dropped: an
   idf-weighted BoW (exact sparse, or feature-hashed to 2048-8192 dims) ranks the partner of a
   pair that verifies at p95 40-90 of 299 images, exact ASMK at p95 7 (max 14); the binary
   signatures are what find the neighbours of small objects in clutter. One row costs one pass
   over the inverted file (O(N) per image). Diffusion (engine.propagate.diffuse) builds its reciprocal kNN
   matrix from these lists.
2. Hyperedges. Each image is spatially verified against its `verify_k` nearest neighbours:
   correspondences from the stored words and signatures of both images (engine.verify.correspond;
   no descriptor is read) and a MAGSAC++ homography (engine.verify.spatial). `dense_verify_pair`
   is the reference the benchmarks compare with (ratio-test matches of the full descriptors). A verified
   pair keeps its inlier correspondences (feature indices and coordinates in both images) and its
   homography: the links along which hypergraph propagation carries a query region on.

Incremental: only images that are new or changed (another feature set) get their kNN rows scored
in full; ASMK is symmetric, so those rows also merge the newcomers into everyone else's list. Pairs already tried are never verified
again while both images keep their features (a vocabulary retrain changes the kNN, not the pairs).
Verification runs in threads (matching and MAGSAC release the GIL) and is checkpointed: every
`CHECKPOINT` pairs a small immutable chunk is written to `pending/`, so a cancel (or a crash) keeps
what is done; the end of a run folds everything into `edges/`. Every file is written under a
temporary name and renamed into place; arrays are .npy files read memory-mapped.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.errors import PixretError
from engine.base.atomic import IN_FLIGHT_S, atomic_write_arrays, atomic_write_text, remove_leftovers
from engine.features.batch import store_at
from engine.features.extract import descriptor_vectors
from engine.parallel.runner import Runner
from engine.verify.correspond import QueryWords, WordMatchConfig, match_ratio, match_words
from engine.verify.spatial import SVConfig, spatial_verify

GRAPH_VERSION = 1
CHECKPOINT = 256  # pairs per pending chunk
PAIRS_PER_BATCH = 32  # pairs per batch of verification work (engine.parallel)
_EDGE_FIELDS = ("pairs", "fs", "inliers", "H", "ptr", "idx", "xy")


@dataclass(frozen=True)
class GraphConfig:
    enabled: bool = True  # build the graph during indexing
    k: int = 50  # neighbours kept per image (diffusion's kNN)
    verify_k: int = 8  # each image is verified against this many of its nearest neighbours
    max_corr: int = 1024  # correspondences stored per verified pair (the most similar matches)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | None) -> "GraphConfig":
        d = d or {}
        return cls(**{k: type(getattr(cls(), k))(d[k]) for k in cls.__dataclass_fields__ if k in d})


@dataclass
class GraphReport:
    images: int = 0
    knn_rows: int = 0  # rows searched in full (new, changed, or after a vocabulary change)
    pairs_wanted: int = 0  # pairs the current kNN asks for (each image with its verify_k nearest)
    pairs_checked: int = 0  # pairs spatially verified in this run (the others were done before)
    hyperedges: int = 0  # stored pairs that verified
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_pair(self) -> float | None:
        """Wall-clock verification time per pair checked in this run (all workers together)."""
        n = self.pairs_checked
        return self.seconds.get("verify", 0.0) / n if n else None


# ------------------------------------------------------------------------------------------------
# global similarities


class AsmkRows:
    """Exact ASMK* image-to-image similarities, one image against the whole collection at a time,
    straight from the inverted file (as `InvertedFile.score`, without its per-image dicts)."""

    def __init__(self, index, nodes: np.ndarray):
        self.index = index
        self.rowmap = np.full(int(max(int(nodes.max()) + 1 if len(nodes) else 1, 1)), -1, np.int64)
        self.rowmap[nodes] = np.arange(len(nodes))
        self.nw = np.array([index.n_words[int(i)] for i in nodes], np.float64)
        self.n = len(nodes)

    def scores(self, words: np.ndarray, sigs: np.ndarray) -> np.ndarray:
        """Similarity (N,) of one image's aggregated words to every node, in node order."""
        out = np.zeros(self.n, np.float32)
        if len(words) == 0 or self.n == 0:
            return out
        images, sel = self.index.matches(words, sigs)
        acc = np.bincount(self.rowmap[images], weights=sel, minlength=self.n)
        out[:] = acc / np.sqrt(len(words) * np.maximum(self.nw, 1.0))
        return out


# ------------------------------------------------------------------------------------------------
# storage


def _load_arrays(folder: Path, names, mmap: bool = True) -> dict[str, np.ndarray]:
    return {n: np.load(folder / f"{n}.npy", mmap_mode="r" if mmap else None) for n in names}


@dataclass(eq=False)
class Edges:
    """Tried pairs (a < b, image ids) and, for the verified ones, their hyperedge.

    pairs (P, 2) int64; fs (P, 2) int64 feature set ids the pair was verified on; inliers (P,) int32
    (0: tried, not verified); H (P, 3, 3) float32 homography a -> b (NaN when not verified);
    ptr (P + 1,) int64 into idx (C, 2) int32 feature indices (in a, in b) and xy (C, 4) float32
    (xa, ya, xb, yb).
    """

    pairs: np.ndarray
    fs: np.ndarray
    inliers: np.ndarray
    H: np.ndarray
    ptr: np.ndarray
    idx: np.ndarray
    xy: np.ndarray

    @classmethod
    def empty(cls) -> "Edges":
        return cls(np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), np.zeros(0, np.int32),
                   np.zeros((0, 3, 3), np.float32), np.zeros(1, np.int64), np.zeros((0, 2), np.int32),
                   np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in _EDGE_FIELDS}

    @classmethod
    def load(cls, folder: Path) -> "Edges":
        return cls(**_load_arrays(folder, _EDGE_FIELDS))

    @classmethod
    def concat(cls, parts: list["Edges"]) -> "Edges":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [int(p.ptr[-1]) for p in parts])
        ptr = np.concatenate([[0]] + [np.asarray(p.ptr[1:]) + o for p, o in zip(parts, offsets)])
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in ("pairs", "fs", "inliers", "H")),
                   ptr.astype(np.int64), np.concatenate([p.idx for p in parts]), np.concatenate([p.xy for p in parts]))

    def select(self, keep: np.ndarray) -> "Edges":
        """The pairs where keep is true (bool (P,)), correspondences renumbered."""
        keep = np.asarray(keep, bool)
        if keep.all():
            return self
        spans = np.diff(self.ptr)
        starts = np.asarray(self.ptr[:-1])[keep]
        lens = spans[keep]
        flat = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(int(lens.sum()))
        ptr = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        return Edges(self.pairs[keep], self.fs[keep], self.inliers[keep], self.H[keep], ptr,
                     np.asarray(self.idx)[flat], np.asarray(self.xy)[flat])

    @classmethod
    def from_results(cls, results: list[tuple]) -> "Edges":
        """results: (a, b, fs_a, fs_b, inliers, H or None, idx (n,2), xy (n,4)) per pair."""
        if not results:
            return cls.empty()
        lens = [len(r[6]) for r in results]
        H = np.stack([np.asarray(r[5], np.float32) if r[5] is not None else np.full((3, 3), np.nan, np.float32)
                      for r in results])
        return cls(np.array([(r[0], r[1]) for r in results], np.int64),
                   np.array([(r[2], r[3]) for r in results], np.int64),
                   np.array([r[4] for r in results], np.int32), H,
                   np.concatenate(([0], np.cumsum(lens))).astype(np.int64),
                   np.concatenate([r[6] for r in results]).astype(np.int32).reshape(-1, 2),
                   np.concatenate([r[7] for r in results]).astype(np.float32).reshape(-1, 4))


# ------------------------------------------------------------------------------------------------
# the loaded graph


class Graph:
    """The graph as the search reads it; arrays memory-mapped, derived matrices built on first use."""

    def __init__(self, folder: Path, nodes: np.ndarray, fsids: np.ndarray, knn_ids: np.ndarray,
                 knn_sims: np.ndarray, edges: Edges, meta: dict):
        self.folder = Path(folder)
        self.nodes = np.asarray(nodes, np.int64)
        self.fsids = np.asarray(fsids, np.int64)
        self.knn_ids = knn_ids  # (N, K) image ids, -1 padded, most similar first
        self.knn_sims = knn_sims  # (N, K) ASMK similarities
        self.meta = meta
        self.row_of = {int(i): r for r, i in enumerate(self.nodes.tolist())}
        self._rowmap = np.full(int(self.nodes.max()) + 2 if len(self.nodes) else 1, -1, np.int64)
        self._rowmap[self.nodes] = np.arange(len(self.nodes))
        # only pairs whose two images still have the features they were verified on
        if len(edges):
            ra, rb = self.rows(edges.pairs[:, 0]), self.rows(edges.pairs[:, 1])
            ok = (ra >= 0) & (rb >= 0)
            ok[ok] &= (self.fsids[ra[ok]] == edges.fs[ok, 0]) & (self.fsids[rb[ok]] == edges.fs[ok, 1])
            edges = edges.select(ok)
        self.edges = edges
        self._cache: dict = {}
        self._lock = threading.Lock()

    @property
    def n(self) -> int:
        return int(len(self.nodes))

    def rows(self, image_ids: np.ndarray) -> np.ndarray:
        """Node rows of image ids (-1 for images not in the graph, -1 ids included)."""
        ids = np.asarray(image_ids, np.int64)
        ok = (ids >= 0) & (ids < len(self._rowmap))
        out = np.full(ids.shape, -1, np.int64)
        out[ok] = self._rowmap[ids[ok]]
        return out

    @classmethod
    def load(cls, folder) -> "Graph | None":
        folder = Path(folder)
        if not (folder / "knn" / "meta.json").exists():
            return None
        meta = json.loads((folder / "knn" / "meta.json").read_text())
        if meta.get("version") != GRAPH_VERSION:
            return None
        knn = _load_arrays(folder / "knn", ("nodes", "fsids", "knn_ids", "knn_sims"))
        return cls(folder, knn["nodes"], knn["fsids"], knn["knn_ids"], knn["knn_sims"], load_edges(folder), meta)

    # -- kNN ------------------------------------------------------------------------------------

    def knn_matrix(self, k: int, gamma: float, reciprocal: bool = True) -> sparse.csr_matrix:
        """W (N x N, rows/cols in node order): sim^gamma between reciprocal k-nearest neighbours."""
        key = ("W", int(k), float(gamma), bool(reciprocal))
        with self._lock:
            W = self._cache.get(key)
            if W is not None:
                return W
            k = int(min(k, self.knn_ids.shape[1])) if self.knn_ids.ndim == 2 else 0
            ids = np.asarray(self.knn_ids[:, :k])
            sims = np.asarray(self.knn_sims[:, :k], np.float64)
            rows = np.repeat(np.arange(self.n), k)
            cols = self.rows(ids.reshape(-1))
            ok = (cols >= 0) & (sims.reshape(-1) > 0)
            W = sparse.csr_matrix((np.maximum(sims.reshape(-1)[ok], 0) ** gamma, (rows[ok], cols[ok])),
                                  shape=(self.n, self.n))
            W.setdiag(0)
            W.eliminate_zeros()
            W = W.minimum(W.T) if reciprocal else W.maximum(W.T)
            W = sparse.csr_matrix(W)
            self._cache[key] = W
            return W

    # -- hyperedges -----------------------------------------------------------------------------

    def adjacency(self, min_inliers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR over node rows of verified pairs: (ptr (N+1,), neighbour rows, pair indices)."""
        key = ("adj", int(min_inliers))
        with self._lock:
            adj = self._cache.get(key)
            if adj is not None:
                return adj
            inl = np.asarray(self.edges.inliers)
            sel = np.flatnonzero(inl >= max(1, min_inliers))
            a = self.rows(np.asarray(self.edges.pairs)[sel, 0])
            b = self.rows(np.asarray(self.edges.pairs)[sel, 1])
            src = np.concatenate([a, b])
            dst = np.concatenate([b, a])
            pid = np.concatenate([sel, sel])
            order = np.lexsort((dst, src))
            ptr = np.zeros(self.n + 1, np.int64)
            np.cumsum(np.bincount(src, minlength=self.n), out=ptr[1:])
            adj = (ptr, dst[order], pid[order])
            self._cache[key] = adj
            return adj

    def neighbours(self, image_id: int, min_inliers: int = 1) -> list[tuple[int, int]]:
        """Verified neighbours of an image: (neighbour image id, pair index)."""
        r = self.row_of.get(int(image_id))
        if r is None:
            return []
        ptr, dst, pid = self.adjacency(min_inliers)
        return [(int(self.nodes[d]), int(p)) for d, p in zip(dst[ptr[r]:ptr[r + 1]], pid[ptr[r]:ptr[r + 1]])]

    def hyperedge(self, p: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Pair p seen from image src: (src xy (n,2), dst xy (n,2), homography src -> dst or None)."""
        e = self.edges
        s, t = int(e.ptr[p]), int(e.ptr[p + 1])
        xy = np.asarray(e.xy[s:t], np.float64)
        H = np.asarray(e.H[p], np.float64)
        if not np.all(np.isfinite(H)):
            H = None
        if int(e.pairs[p, 0]) == int(src):
            return xy[:, :2], xy[:, 2:], H
        Hinv = None
        if H is not None:
            try:
                Hinv = np.linalg.inv(H)
            except np.linalg.LinAlgError:
                Hinv = None
        return xy[:, 2:], xy[:, :2], Hinv

    def verified_pairs(self) -> set[tuple[int, int]]:
        """The image pairs (a < b) with a verified hyperedge."""
        pairs = np.asarray(self.edges.pairs)[np.asarray(self.edges.inliers) > 0]
        return {(int(a), int(b)) for a, b in pairs.tolist()}

    def components(self, image_ids, min_inliers: int = 1) -> dict[int, int]:
        """Connected components of the verified graph restricted to `image_ids`: image id -> label."""
        ids = [int(i) for i in image_ids]
        local = {i: n for n, i in enumerate(ids)}
        parent = list(range(len(ids)))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for i in ids:
            for j, _ in self.neighbours(i, min_inliers):
                if j in local:
                    ra, rb = find(local[i]), find(local[j])
                    if ra != rb:
                        parent[ra] = rb
        return {i: find(local[i]) for i in ids}


def load_edges(folder: Path) -> Edges:
    """The consolidated edges plus every complete pending chunk."""
    parts = []
    if (folder / "edges" / "ptr.npy").exists():
        parts.append(Edges.load(folder / "edges"))
    pending = folder / "pending"
    if pending.is_dir():
        for chunk in sorted(pending.iterdir()):
            if chunk.is_dir() and not chunk.name.startswith(".") and (chunk / "ptr.npy").exists():
                parts.append(Edges.load(chunk))
    edges = Edges.concat(parts)
    if len(parts) > 1:  # a pair twice (a crash between a consolidation and its cleanup): keep the last
        pairs = np.asarray(edges.pairs)
        key = pairs[:, 0] * (int(pairs.max()) + 1) + pairs[:, 1]
        _, last = np.unique(key[::-1], return_index=True)
        keep = np.zeros(len(key), bool)
        keep[len(key) - 1 - last] = True
        edges = edges.select(keep)
    return edges


# ------------------------------------------------------------------------------------------------
# building


def build_graph(project, config: GraphConfig | None = None, *, progress: Progress = NO_PROGRESS,
                cancel: CancelToken = NEVER, workers: int = 2, sv: SVConfig = SVConfig(),
                runner: Runner | None = None) -> GraphReport:
    """Bring `<project>/graph/` up to date with the project's index (incremental, resumable).
    runner: where the pairs are verified (engine.parallel); by default here, in `workers` threads."""
    runner = runner or Runner(workers)
    if config is None:
        config = GraphConfig.from_json(project.settings().get("graph"))
    folder = project.folder / "graph"
    folder.mkdir(exist_ok=True)
    report = GraphReport()
    t0 = time.perf_counter()
    index = project.index
    entries = index.entries()
    nodes = np.array(sorted(entries), np.int64)
    fsids = np.array([index.feature_sets[int(i)] for i in nodes], np.int64)
    report.images = len(nodes)
    knn_ids, knn_sims, report.knn_rows = _update_knn(folder, index, entries, nodes, fsids, config, progress, cancel)
    report.seconds["knn"] = time.perf_counter() - t0
    cancel.raise_if_set()

    # pairs wanted: each image with its verify_k nearest neighbours
    vk = min(config.verify_k, knn_ids.shape[1])
    a = np.repeat(nodes, vk)
    b = knn_ids[:, :vk].reshape(-1)
    ok = b >= 0
    want = np.unique(np.sort(np.stack([a[ok], b[ok]], 1), axis=1), axis=0) if ok.any() else np.zeros((0, 2), np.int64)
    report.pairs_wanted = len(want)
    fs_of = dict(zip(nodes.tolist(), fsids.tolist()))
    edges = load_edges(folder)
    done = set()
    if len(edges):
        for (x, y), (fx, fy) in zip(np.asarray(edges.pairs).tolist(), np.asarray(edges.fs).tolist()):
            if fs_of.get(x) == fx and fs_of.get(y) == fy:
                done.add((x, y))
    todo = [(int(x), int(y)) for x, y in want.tolist() if (x, y) not in done]

    t1 = time.perf_counter()
    try:
        _verify_pairs(project, folder, todo, fs_of, sv, config, progress, cancel, runner, report)
    finally:
        report.seconds["verify"] = time.perf_counter() - t1
        _consolidate(folder, fs_of)
        report.seconds["total"] = time.perf_counter() - t0
        _add_cost(folder, report)
    report.hyperedges = int((np.asarray(load_edges(folder).inliers) > 0).sum())
    return report


def _add_cost(folder: Path, report: GraphReport) -> None:
    """Cumulative offline cost in graph/cost.json (benchmarks/propagation.py reads it)."""
    path = folder / "cost.json"
    try:
        cost = json.loads(path.read_text())
    except (OSError, ValueError):
        cost = {}
    for key, value in (("pairs_checked", report.pairs_checked), ("knn_rows", report.knn_rows),
                       ("verify_s", report.seconds.get("verify", 0.0)), ("knn_s", report.seconds.get("knn", 0.0))):
        cost[key] = cost.get(key, 0) + value
    atomic_write_text(path, json.dumps(cost))


def _update_knn(folder: Path, index, entries: dict, nodes: np.ndarray, fsids: np.ndarray, config: GraphConfig,
                progress: Progress, cancel: CancelToken) -> tuple[np.ndarray, np.ndarray, int]:
    """kNN lists for every node. Rows of new or changed images (all rows after a vocabulary change)
    are scored against the whole collection; ASMK is symmetric, so those same rows give every other
    image its similarity to the newcomers, which are merged into its list: exact, and incremental."""
    K = int(config.k)
    vocab = (int(index.k), int(index.trained_on))
    n = len(nodes)
    knn_ids = np.full((n, K), -1, np.int64)
    knn_sims = np.zeros((n, K), np.float32)
    fresh = np.ones(n, bool)  # rows scored in full
    meta_path = folder / "knn" / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == GRAPH_VERSION and tuple(meta.get("vocab", ())) == vocab and meta.get("k") == K:
            old = _load_arrays(folder / "knn", ("nodes", "fsids", "knn_ids", "knn_sims"), mmap=False)
            before = {i: (f, r) for r, (i, f) in enumerate(zip(old["nodes"].tolist(), old["fsids"].tolist()))}
            alive = dict(zip(nodes.tolist(), fsids.tolist()))
            for r, (i, f) in enumerate(zip(nodes.tolist(), fsids.tolist())):
                prev = before.get(i)
                if prev is None or prev[0] != f:
                    continue
                ids = old["knn_ids"][prev[1]]
                # a row that lost a neighbour (removed, or its features changed) is scored again
                if all(j < 0 or (j in alive and before.get(j, (None,))[0] == alive[j]) for j in ids.tolist()):
                    knn_ids[r], knn_sims[r] = ids, old["knn_sims"][prev[1]]
                    fresh[r] = False
    rows = np.flatnonzero(fresh)
    old_rows = np.flatnonzero(~fresh)
    scorer = AsmkRows(index, nodes)
    block = 64
    progress(0, len(rows), "graph: neighbours")
    for start in range(0, len(rows), block):
        cancel.raise_if_set()
        part = rows[start:start + block]
        S = np.stack([scorer.scores(*entries[int(nodes[r])]) for r in part])  # (b, N)
        S[np.arange(len(part)), part] = 0.0  # not its own neighbour
        for r, s in zip(part, S):
            _top_k(r, np.arange(n), s, nodes, knn_ids, knn_sims)
        if len(old_rows):  # the newcomers enter the lists of the others
            cols = S[:, old_rows].T  # (|old|, b)
            for o, s in zip(old_rows, cols):
                _top_k(o, part, s, nodes, knn_ids, knn_sims, keep=knn_ids[o] >= 0)
        progress(min(start + block, len(rows)), len(rows), "graph: neighbours")
    atomic_write_arrays(folder / "knn", {"nodes": nodes, "fsids": fsids, "knn_ids": knn_ids, "knn_sims": knn_sims},
                        {"version": GRAPH_VERSION, "vocab": list(vocab), "k": K})
    return knn_ids, knn_sims, int(fresh.sum())


def _top_k(r: int, cand_rows: np.ndarray, sims: np.ndarray, nodes: np.ndarray, knn_ids: np.ndarray,
           knn_sims: np.ndarray, keep: np.ndarray | None = None) -> None:
    """Row r's list := the K most similar of the candidates (and of its current entries where keep)."""
    K = knn_ids.shape[1]
    ids, s = nodes[cand_rows], np.asarray(sims, np.float32)
    if keep is not None:
        ids = np.concatenate([knn_ids[r][keep], ids])
        s = np.concatenate([knn_sims[r][keep], s])
        ids, first = np.unique(ids, return_index=True)
        s = s[first]
    ok = s > 0
    ids, s = ids[ok], s[ok]
    if len(s) > K:
        part = np.argpartition(-s, K - 1)[:K]
        ids, s = ids[part], s[part]
    order = np.lexsort((ids, -s))
    knn_ids[r] = -1
    knn_sims[r] = 0
    knn_ids[r, :len(order)] = ids[order]
    knn_sims[r, :len(order)] = s[order]


def verify_pair(fa, fb, sv: SVConfig, max_corr: int, k: int, words: WordMatchConfig = WordMatchConfig()):
    """Spatial verification of two stored images on their word correspondences (each side's one
    word per feature and its signature: the store's searched part, no descriptor read) and a
    MAGSAC++ homography. fa, fb: StoredFeatures; k: the vocabulary's size. Returns (inliers, H a->b
    or None, idx (n,2), xy (n,4)). A search's similarity hypotheses and guided matching are left out
    here: on dev5k's graph pairs they made a pair cost 6x as much and changed neither which pairs
    verify nor how many inliers they keep (benchmarks/graph_pairs.py)."""
    corr = match_words(QueryWords.single(fa.word, fa.sig, k), fb.word, fb.sig, words)
    return _edge(fa, fb, spatial_verify(fa, fb, corr, sv, seeded=False), sv, max_corr)


def dense_verify_pair(fa, fb, sv: SVConfig, max_corr: int, kind: str = "rootsift"):
    """The reference (PixRet 0.1's graph): dense ratio-test matches of the full descriptors (FeatureSets)."""
    m = match_ratio(descriptor_vectors(fa.desc, kind), descriptor_vectors(fb.desc, kind), sv.ratio)
    return _edge(fa, fb, spatial_verify(fa, fb, m, sv, seeded=False), sv, max_corr)


def _edge(fa, fb, v, sv: SVConfig, max_corr: int):
    if v.H is None or v.inliers < sv.min_inliers:
        return 0, None, np.zeros((0, 2), np.int32), np.zeros((0, 4), np.float32)
    qi, di = v.verified_pairs
    keep = np.argsort(v.matches.cost[v.inlier_mask], kind="stable")[:max_corr]  # the most similar
    qi, di = qi[keep], di[keep]
    idx = np.stack([qi, di], 1).astype(np.int32)
    xy = np.hstack([np.asarray(fa.xy)[qi], np.asarray(fb.xy)[di]]).astype(np.float32)
    return v.inliers, np.asarray(v.H, np.float32), idx, xy


def add_reviewed_edges(project, pairs: list[tuple[int, int, np.ndarray, np.ndarray | None]]) -> int:
    """Add pairs a person confirmed as hyperedges: (a, b, matches (n, 4) [xa, ya, xb, yb], H a -> b or
    None). One pending chunk (folded into edges/ by the next build); the project reloads the graph."""
    table = {i: project.feature_set_id(i) for p in pairs for i in p[:2]}
    results = []
    for a, b, m, H in pairs:
        if table.get(a) is None or table.get(b) is None:
            continue
        m = np.asarray(m, np.float64)
        if a > b:
            a, b, m = b, a, m[:, [2, 3, 0, 1]]
            H = None if H is None else np.linalg.inv(H)
        idx = np.full((len(m), 2), -1, np.int32)  # coordinates only: the evidence lists no feature indices
        results.append((a, b, table[a], table[b], len(m), H, idx, m.astype(np.float32)))
    if not results:
        return 0
    pending = project.folder / "graph" / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    atomic_write_arrays(pending / f"c{time.time_ns():020d}-{uuid.uuid4().hex[:6]}", Edges.from_results(results).arrays())
    project.reload_graph()
    return len(results)


def verify_batch(store_folder, pairs: list[tuple[int, int]], spans: dict[int, tuple[str, int, int]],
                 fs_of: dict[int, int], sv: SVConfig, max_corr: int, words_key: str, k: int,
                 threads: int = 1) -> list[tuple]:
    """The graph's unit of verification work (engine.parallel runs it here or on a cluster worker):
    each pair verified on the word columns (`words_key`, a vocabulary of k words) in the project's
    store. spans: image id -> (pack, offset, count). Returns Edges.from_results rows, in the order of
    `pairs`."""
    store = store_at(store_folder)

    def stored(image_id):
        d = store.read_stored(*spans[image_id], words_key)
        if d is None:  # indexing gives every pack its words before the graph is built
            raise PixretError(f"{store.folder / spans[image_id][0]}: feature pack without the index's words")
        return d

    def work(pair):
        a, b = pair
        inl, H, idx, xy = verify_pair(stored(a), stored(b), sv, max_corr, k)
        return a, b, fs_of[a], fs_of[b], inl, H, idx, xy

    if threads > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(pairs))) as pool:
            return list(pool.map(work, pairs))
    return [work(p) for p in pairs]


def _verify_pairs(project, folder: Path, todo: list[tuple[int, int]], fs_of: dict, sv: SVConfig,
                  config: GraphConfig, progress: Progress, cancel: CancelToken, runner: Runner,
                  report: GraphReport) -> None:
    pending = folder / "pending"
    pending.mkdir(exist_ok=True)
    progress(0, len(todo), "graph")
    spans = project.feature_spans()
    results: list[tuple] = []
    done = 0

    def save() -> None:
        if results:
            atomic_write_arrays(pending / f"c{time.time_ns():020d}-{uuid.uuid4().hex[:6]}",
                                Edges.from_results(results).arrays())
            report.pairs_checked += len(results)
            results.clear()

    def collect(part: list[tuple]) -> None:
        nonlocal done
        results.extend(part)
        done += len(part)
        if len(results) >= CHECKPOINT:
            save()
        progress(done, len(todo), "graph")

    size = max(PAIRS_PER_BATCH, 4 * runner.task_threads)
    tasks = ((project.store.folder, part, {i: spans[i] for p in part for i in p}, {i: fs_of[i] for p in part for i in p},
              sv, config.max_corr, project.words_key, project.quantizer.k, runner.task_threads)
             for part in (todo[s:s + size] for s in range(0, len(todo), size)))
    try:
        runner.run(verify_batch, tasks, collect, cancel=cancel)
    finally:  # a cancel keeps the pairs verified so far
        save()


def _consolidate(folder: Path, fs_of: dict) -> None:
    """Fold pending chunks into edges/, dropping pairs whose images changed or left the collection."""
    pending = folder / "pending"
    chunks = [c for c in sorted(pending.iterdir()) if c.is_dir() and not c.name.startswith(".")] \
        if pending.is_dir() else []
    edges = load_edges(folder)
    n_before = len(edges)
    if len(edges):
        pairs, fs = np.asarray(edges.pairs), np.asarray(edges.fs)
        ok = np.array([fs_of.get(int(x)) == int(fx) and fs_of.get(int(y)) == int(fy)
                       for (x, y), (fx, fy) in zip(pairs, fs)], bool)
        edges = edges.select(ok)
        edges = Edges(*(np.array(getattr(edges, n)) for n in _EDGE_FIELDS))
    if chunks or not (folder / "edges" / "ptr.npy").exists() or len(edges) != n_before:
        atomic_write_arrays(folder / "edges", edges.arrays())
    for c in chunks:
        shutil.rmtree(c, ignore_errors=True)
    # temporaries of interrupted writes; a young one may be an annotator's chunk being written right now
    # (engine.annotate.objects.adapt_graph runs while the indexer does)
    remove_leftovers(pending, older_than_s=IN_FLIGHT_S)
