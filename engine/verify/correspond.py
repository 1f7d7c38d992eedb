"""Tentative correspondences between a query and a database image: where verification starts.

Two sources, one result type (`Correspondences`: query feature, database feature, cost; in a
deterministic order, so MAGSAC's fixed seed gives the same model in any process):

- `match_words`: from the index. The query's features have their `assign` nearest visual words
  (multiple assignment) and a Hamming-embedding signature in each (engine.index.embedding); a
  database feature has its one word and signature in the compact store. Candidates are the pairs
  sharing a word whose signatures differ in at most `max_hamming` bits: a join of the query's
  (word -> entries) table with the image's features, so the cost grows with the shared words, not
  with the product of the two feature counts, and no full descriptor is read. A ratio-like filter
  (a query feature's best candidate clearly closer than its second best) and a one-to-one filter
  (each feature used once, the closest pairs first) keep repeated patterns from voting twice.
  The verifiers (spatial, topological) and the offline graph all start here.
- `match_ratio`: dense nearest neighbours with Lowe's ratio test, one descriptor product per pair.
  The reference (`brute-sv`) and the few pairs that need full descriptors use it; `match_mutual`
  (mutual nearest neighbours) the thorough method's learned features.

Guided matching (after a model is found, more correspondences near where it predicts them) needs
an appearance test for a (query feature, database feature) pair: `WordAppearance` (a shared word
and close signatures) or `DenseAppearance` (descriptor similarity); `guided` takes either.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

FAR = 1 << 20  # the cost of candidates that cannot match


@dataclass(frozen=True, eq=False)
class Correspondences:
    """Putative correspondences: indices into the query's and the database image's features."""

    qi: np.ndarray  # int32 (M,)
    di: np.ndarray  # int32 (M,)
    cost: np.ndarray  # float32 (M,): signature distance in bits, or descriptor distance; lower is closer

    def __len__(self) -> int:
        return int(self.qi.shape[0])


EMPTY = Correspondences(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))


def _result(qi, di, cost) -> Correspondences:
    return Correspondences(np.asarray(qi, np.int32), np.asarray(di, np.int32), np.asarray(cost, np.float32))


# ------------------------------------------------------------------------------------------------
# dense: the reference


def match_ratio(q: np.ndarray, d: np.ndarray, ratio: float = 0.8) -> Correspondences:
    """Ratio-test nearest neighbours of each query descriptor among the database descriptors.

    q, d: unit-norm float32 descriptors (RootSIFT); squared distance = 2 - 2 * similarity. Each
    database feature keeps only its best query match, so a repeated pattern cannot vote twice.
    """
    if len(q) == 0 or len(d) < 2:
        return EMPTY
    sim = q @ d.T  # (Nq, Nd), a fresh array: modified in place below
    rows = np.arange(len(q))
    # two max passes are ~3x faster than argpartition for the top 2
    best = np.argmax(sim, axis=1)
    s_best = sim[rows, best]
    sim[rows, best] = -np.inf
    s_second = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s_best, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s_second, 0.0))
    keep = d1 < ratio * d2
    qi, di, dist = rows[keep], best[keep], d1[keep]
    # one-to-one on the database side: keep the most similar query feature per database feature
    order = np.lexsort((dist, di))
    first_of = np.ones(len(order), bool)
    first_of[1:] = di[order][1:] != di[order][:-1]
    sel = order[first_of]
    return _result(qi[sel], di[sel], dist[sel])


def match_mutual(q: np.ndarray, d: np.ndarray, min_similarity: float) -> Correspondences:
    """Mutual nearest neighbours at least `min_similarity` alike (unit-norm descriptors): how learned
    descriptors are matched without a learned matcher (XFeat's authors match theirs so, at 0.82).
    Lowe's ratio test, made for SIFT, verified a third as many of dev's image-kind positives with
    XFeat (9 against 30 at 8 inliers)."""
    if len(q) == 0 or len(d) == 0:
        return EMPTY
    sim = q @ d.T
    best = np.argmax(sim, axis=1)
    rows = np.arange(len(q))
    s = sim[rows, best]
    keep = (np.argmax(sim, axis=0)[best] == rows) & (s >= min_similarity)
    return _result(rows[keep], best[keep], 1.0 - s[keep])


# ------------------------------------------------------------------------------------------------
# from the index


@dataclass(frozen=True, eq=False)
class QueryWords:
    """The query side of `match_words`, made once per search: every (feature, word) entry, by word.

    ptr (k + 1,): the entries of word w are ptr[w]:ptr[w+1] of feat (query feature) and sig (its
    signature relative to that word, one row per uint64 of it: (S, E)); words (n, m) and
    feature_sig (n, m, S) are the same per feature (guided matching looks there)."""

    ptr: np.ndarray
    feat: np.ndarray
    sig: np.ndarray
    words: np.ndarray
    feature_sig: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.words.shape[0])

    @classmethod
    def make(cls, words: np.ndarray, signatures: np.ndarray, k: int) -> "QueryWords":
        """words (n, m): each feature's m nearest words; signatures (n, m, S) uint64 in each of them."""
        words = np.asarray(words, np.int64)
        n, m = words.shape
        signatures = np.asarray(signatures, np.uint64)
        w = words.reshape(-1)
        order = np.argsort(w, kind="stable")  # entries by word, then feature: deterministic
        ptr = np.zeros(k + 1, np.int64)
        np.cumsum(np.bincount(w, minlength=k), out=ptr[1:])
        feat = np.repeat(np.arange(n, dtype=np.int32), m)[order]
        sig = np.ascontiguousarray(signatures.reshape(n * m, signatures.shape[-1])[order].T)
        return cls(ptr, feat, sig, words, signatures)

    @classmethod
    def single(cls, words: np.ndarray, signatures: np.ndarray, k: int) -> "QueryWords":
        """A stored image as the query side (its one word per feature): image-to-image matching."""
        signatures = np.asarray(signatures, np.uint64)
        return cls.make(np.asarray(words, np.int64).reshape(-1, 1), signatures.reshape(len(signatures), 1, signatures.shape[-1]), k)


@dataclass(frozen=True)
class WordMatchConfig:
    max_hamming: int = 44  # signatures this close (bits of 128) are candidates
    margin: int = 2  # ratio-like: a query feature's best candidate must beat its second best by more
    #                  than this many bits (over all its candidates in the image); < 0 turns it off
    one_to_one: bool = True  # each database and query feature used once, the closest pairs first
    guided_hamming: int = 56  # guided matching (near a model's prediction) accepts signatures this close
    max_candidates: int = 4000  # MAGSAC's input is capped (the closest first)


def candidates(q: QueryWords, d_word: np.ndarray, d_sig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query feature, database feature) pair sharing a word: (qi, di, Hamming distance)."""
    dw = np.asarray(d_word, np.intp)
    lo = q.ptr[dw]
    cnt = q.ptr[dw + 1] - lo
    shared = np.flatnonzero(cnt)
    lo, cnt = lo[shared], cnt[shared]
    total = int(cnt.sum())
    di = np.repeat(shared.astype(np.int32), cnt)
    ends = np.cumsum(cnt)
    entry = np.arange(total) + np.repeat(lo - (ends - cnt), cnt)
    d_sig = np.asarray(d_sig)
    ham = np.bitwise_count(d_sig[:, 0][di] ^ q.sig[0][entry])  # one uint64 at a time: numpy counts it
    for j in range(1, len(q.sig)):  # several times faster than a (n, 2) array at once
        ham += np.bitwise_count(d_sig[:, j][di] ^ q.sig[j][entry])
    return q.feat[entry], di, ham


def match_words(q: QueryWords, d_word: np.ndarray, d_sig: np.ndarray,
                config: WordMatchConfig = WordMatchConfig()) -> Correspondences:
    """Filtered correspondences between the query and one database image (deterministic order)."""
    return match_words_many(q, [d_word], [d_sig], config)[0]


def match_words_many(q: QueryWords, d_words: list[np.ndarray], d_sigs: list[np.ndarray],
                     config: WordMatchConfig = WordMatchConfig()) -> list[Correspondences]:
    """`match_words` of the query with each of several database images, in one pass over all of
    them: a shortlist's hundred images cost a few large array operations instead of a hundred
    rounds of small ones. Each image's result is exactly what it would get alone."""
    lens = np.array([len(w) for w in d_words], np.int64)
    n_img = len(lens)
    if n_img == 0:
        return []
    first_row = np.r_[0, np.cumsum(lens)[:-1]]
    dw = d_words[0] if n_img == 1 else np.concatenate([np.asarray(w) for w in d_words])
    ds = d_sigs[0] if n_img == 1 else np.concatenate([np.asarray(x) for x in d_sigs])
    qi, gi, ham = candidates(q, dw, ds)
    # A candidate beyond max_hamming + margin can neither be kept nor make a kept one ambiguous
    # (second - best > margin holds against it): dropping it first changes nothing and sorts far less.
    near = ham <= config.max_hamming + max(config.margin, 0)
    qi, gi, ham = qi[near].astype(np.int64), gi[near].astype(np.int64), ham[near].astype(np.int64)
    img = np.repeat(np.arange(n_img, dtype=np.int64), lens)[gi]
    di = gi - first_row[img]
    keep = ham <= config.max_hamming
    if config.margin >= 0 and len(qi):
        group = img * q.n_features + qi  # (image, query feature)
        key = np.sort(group << 8 | ham)  # per group, closest first (distances < 256)
        gs, hs = key >> 8, key & 255
        first = np.ones(len(gs), bool)
        first[1:] = gs[1:] != gs[:-1]
        starts = np.flatnonzero(first)
        has2 = np.r_[starts[1:], len(gs)] - starts >= 2
        second = np.where(has2, hs[np.minimum(starts + 1, len(hs) - 1)], FAR)
        distinct = np.zeros(n_img * q.n_features, bool)
        distinct[gs[starts]] = second - hs[starts] > config.margin
        keep &= distinct[group]
    qi, di, ham, img = qi[keep], di[keep], ham[keep], img[keep]
    # by image, then closest first, ties by index: deterministic (one int64 key sorts faster than four)
    if n_img < 1 << 13 and max(qi.max(initial=0), di.max(initial=0)) < 1 << 21:
        order = np.argsort(img << 50 | ham << 42 | di << 21 | qi)
    else:
        order = np.lexsort((qi, di, ham, img))
    qi, di, ham, img = qi[order], di[order], ham[order], img[order]
    if config.one_to_one:  # within each image (its rows stay together and in order)
        a = _first_of(img * q.n_features + qi)
        qi, di, ham, img = qi[a], di[a], ham[a], img[a]
        b = _first_of(img * (int(lens.max()) + 1) + di)
        qi, di, ham, img = qi[b], di[b], ham[b], img[b]
    bounds = np.searchsorted(img, np.arange(n_img + 1))
    rank = np.arange(len(img)) - bounds[img]
    cap = rank < config.max_candidates
    qi, di, ham = qi[cap], di[cap], ham[cap]
    bounds = np.searchsorted(img[cap], np.arange(n_img + 1))
    return [_result(qi[a:b], di[a:b], ham[a:b]) if b > a else EMPTY for a, b in zip(bounds[:-1], bounds[1:])]


def _first_of(key: np.ndarray) -> np.ndarray:
    """Positions of each key's first occurrence, in their order."""
    _, a = np.unique(key, return_index=True)
    a.sort()
    return a


def one_to_one(qi: np.ndarray, di: np.ndarray, cost: np.ndarray):
    """Each query feature keeps its first (closest) pair, then each database feature the first of
    those (as the ratio-test matcher does). Input sorted closest first; the order is kept."""
    a = _first_of(qi)
    qi, di, cost = qi[a], di[a], cost[a]
    b = _first_of(di)
    return qi[b], di[b], cost[b]


# ------------------------------------------------------------------------------------------------
# guided matching: more correspondences where a verified model predicts them


@dataclass(frozen=True, eq=False)
class WordAppearance:
    """Appearance of (query feature, database feature) pairs from words and signatures: the best
    Hamming distance over the query feature's words that the database feature shares, FAR if none."""

    query: QueryWords
    d_word: np.ndarray
    d_sig: np.ndarray
    max_cost: float  # bits

    def cost(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        """qi (n,), di (n, c) -> (n, c)."""
        dw = np.asarray(self.d_word, np.int64)[di]  # (n, c)
        same = dw[:, :, None] == self.query.words[qi][:, None, :]  # (n, c, m)
        x = np.bitwise_xor(np.asarray(self.d_sig)[di][:, :, None, :], self.query.feature_sig[qi][:, None, :, :])
        ham = np.bitwise_count(x).sum(axis=3, dtype=np.int32)
        return np.where(same, ham, FAR).min(axis=2).astype(np.float32)


@dataclass(frozen=True, eq=False)
class DenseAppearance:
    """Appearance from full descriptors: minus the similarity of unit-norm descriptors (RootSIFT)."""

    q_desc: np.ndarray
    d_desc: np.ndarray
    max_cost: float  # minus the least similarity accepted

    def cost(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        return -np.einsum("nf,ncf->nc", self.q_desc[qi], self.d_desc[di]).astype(np.float32)


def guided(pred: np.ndarray, cand: np.ndarray, d_xy: np.ndarray, radius: float, appearance,
           allowed=None, d_tree: cKDTree | None = None, per_prediction: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query features `cand` (n,) predicted at `pred` (n, 2) in the database image: each takes the
    database feature within `radius` px of its prediction (among the `per_prediction` nearest) whose
    appearance cost is lowest and at most appearance.max_cost. allowed(cand, nb (n, c)) -> bool
    (n, c) may exclude some (geometry, features already used). One database feature per query
    feature and per database feature, the closest first. Returns (qi, di, cost)."""
    none = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(cand) == 0 or len(d_xy) == 0:
        return none
    c = min(per_prediction, len(d_xy))
    tree = d_tree if d_tree is not None else cKDTree(np.asarray(d_xy))
    finite = np.isfinite(pred).all(axis=1)
    _, nb = tree.query(np.where(finite[:, None], pred, -1e9), k=c, distance_upper_bound=radius)
    nb = nb.reshape(len(cand), c)
    ok = (nb < len(d_xy)) & finite[:, None]
    nb = np.where(ok, nb, 0)
    if allowed is not None:
        ok &= allowed(cand, nb)
    cost = np.where(ok, appearance.cost(cand, nb), FAR)
    best = np.argmin(cost, axis=1)
    rows = np.arange(len(cand))
    c_best = cost[rows, best]
    good = c_best <= appearance.max_cost
    qi, di, cb = np.asarray(cand)[good], nb[rows, best][good], c_best[good]
    order = np.lexsort((qi, di, cb))
    qi, di, cb = one_to_one(qi[order], di[order], cb[order])
    return qi.astype(np.int64), di.astype(np.int64), cb.astype(np.float32)
