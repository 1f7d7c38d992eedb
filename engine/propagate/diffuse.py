"""After verification: diffusion on the kNN graph, hypergraph propagation, and uncertainty.

The collection's graph (engine.propagate.graph, built offline) carries a query to the views that direct
verification misses: other viewpoints, night, occlusion, reached through easier views.

- Diffusion (Iscen et al., CVPR 2017). The query's initial ASMK similarities to its top `seeds`
  images (raised to gamma; verified images count as the strongest seed) form y; the ranking is
  f = (I - alpha S)^-1 y on the kNN graph truncated to the top `truncate` images of the initial
  search, with S = D^-1/2 W D^-1/2 and W the reciprocal-kNN similarities^gamma. f comes from
  conjugate gradient (scipy.sparse.linalg.cg); nothing dense N x N is ever formed.
- Hypergraph propagation (An et al., NeurIPS 2021). From the images that verify directly against
  the query, the query region spreads along hyperedges (the correspondences of offline-verified
  pairs): in image A the correspondences inside A's region are kept; when there are enough, the
  region moves to B by a homography (the pair's, or one refit on exactly those correspondences when
  the pair's does not hold there), clipped to where those correspondences say the object can be;
  regions reaching B from several images are unioned; then again from B, for `hops` hops. Reached
  images rank after the direct ones, by hop then by how many correspondences carried them, each
  with its region and the path of images it came through.
- Uncertainty (community selection, same paper): the entropy of how the weight of the top results
  splits over the connected components of the verified graph restricted to them, in [0, 1]. High
  means the top results do not agree on one object; the `full` method then verifies deeper before
  propagating, and the desktop app sorts review queues by it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.linalg import cg

from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import Region
from engine.base.types import Hit
from engine.verify.localize import MIN_AREA_PX
from engine.verify.spatial import evenly, plausible_homography


@dataclass(frozen=True)
class DiffusionConfig:
    alpha: float = 0.99
    k: int = 50  # reciprocal nearest neighbours in W (at most the graph's stored k)
    gamma: float = 3.0
    seeds: int = 10  # the query's top initial images that seed y
    truncate: int = 1000  # the graph is restricted to the top images of the initial search
    verified_seed: float = 1.0  # y of a directly verified image, relative to the strongest seed
    maxiter: int = 20  # CG iterations (Iscen et al. use about 20)
    tol: float = 1e-6
    blend: float = 0.0  # final tail score = (1 - blend) f / max f + blend s / max s (s: initial similarity)


@dataclass(frozen=True)
class PropagationConfig:
    hops: int = 3
    min_corr: int = 8  # correspondences inside the region needed to pass it on
    min_seed_inliers: int = 10  # direct verifications that start a propagation
    edge_min_inliers: int = 10  # hyperedges used
    reproj_px: float = 8.0  # the pair's homography holds when the kept correspondences fit within this
    holds_frac: float = 0.8  # ... for at least this fraction of them
    reach: float = 0.5  # the region in B stays within the correspondences' hull grown by this x its size
    # only correspondences near where the object was actually matched carry it on: inside the
    # region, and within this x the region's size of the hull of the matched points (a warped
    # query region can overhang the object onto a background that other images share; on dev,
    # 0.15 let 37 negatives into the top 100, 0.05 lets 8, for 7 of the 8 positives gained)
    support: float = 0.05
    max_reached: int = 100  # images reached at most (ranked after the direct hits, the top 100 matter)


@dataclass(frozen=True)
class UncertaintyConfig:
    top: int = 10  # results looked at
    min_inliers: int = 8  # verified pairs that join two results in one community
    deepen_above: float = 0.5  # `full`: verify deeper when the uncertainty exceeds this
    deepen_by: int = 100  # ... that many more images of the initial ranking


# ------------------------------------------------------------------------------------------------
# diffusion


def normalized_adjacency(W: sparse.spmatrix) -> sparse.csr_matrix:
    """S = D^-1/2 W D^-1/2 (isolated nodes keep zero rows)."""
    W = sparse.csr_matrix(W)
    d = np.asarray(W.sum(axis=1)).ravel()
    inv = np.zeros_like(d)
    np.divide(1.0, np.sqrt(d), out=inv, where=d > 0)
    D = sparse.diags(inv)
    return sparse.csr_matrix(D @ W @ D)


def diffuse(W: sparse.spmatrix, y: np.ndarray, alpha: float = 0.99, *, maxiter: int = 20,
            tol: float = 1e-6) -> np.ndarray:
    """Solve (I - alpha S) f = y by conjugate gradient, S the normalized W (symmetric)."""
    S = normalized_adjacency(W)
    A = sparse.identity(S.shape[0], format="csr") - alpha * S
    y = np.asarray(y, np.float64)
    if not y.any():
        return np.zeros_like(y)
    f, _ = cg(A, y, rtol=tol, atol=0.0, maxiter=maxiter)
    return f


def diffusion_scores(graph, scores: dict[int, float], verified: set[int],
                     config: DiffusionConfig = DiffusionConfig()) -> dict[int, float]:
    """Diffusion score of every image in the truncated graph (image id -> f)."""
    order = sorted((i for i in scores if i in graph.row_of), key=lambda i: (-scores[i], i))
    keep = order[: config.truncate]
    keep_set = set(keep)
    keep += [i for i in sorted(verified) if i in graph.row_of and i not in keep_set]
    if not keep:
        return {}
    rows = np.array([graph.row_of[i] for i in keep], np.int64)
    W = graph.knn_matrix(config.k, config.gamma)[rows][:, rows]
    y = np.zeros(len(keep))
    top = {i: n for n, i in enumerate(keep)}
    for i in order[: config.seeds]:
        y[top[i]] = max(scores[i], 0.0) ** config.gamma
    ymax = y.max() if y.any() else 1.0
    for i in verified:
        if i in top:
            y[top[i]] = max(y[top[i]], config.verified_seed * ymax)
    f = diffuse(W, y, config.alpha, maxiter=config.maxiter, tol=config.tol)
    return {i: float(v) for i, v in zip(keep, f)}


# ------------------------------------------------------------------------------------------------
# hypergraph propagation


@dataclass
class Reached:
    region: Region
    hop: int
    strength: float  # correspondences that carried the region here (summed over the ways in)
    path: list[int]  # image ids from the directly verified image to this one
    sources: list[int] = field(default_factory=list)
    support: np.ndarray | None = None  # (n, 2) points where the object was matched in this image

    def carrier(self, config: PropagationConfig) -> Region:
        """The part of the region that passes the object on: near its matched points."""
        if self.support is None or len(self.support) < 3:
            return self.region
        hull = shapely.convex_hull(shapely.multipoints(np.asarray(self.support, np.float64)))
        grow = config.support * math.sqrt(max(self.region.area, 1.0))
        return self.region.intersection(Region.from_geometry(hull.buffer(grow, quad_segs=4)))


def transfer_region(region: Region, src_xy: np.ndarray, dst_xy: np.ndarray, H: np.ndarray | None,
                    width: int, height: int, config: PropagationConfig = PropagationConfig()) -> Region | None:
    """The region in the destination image, given the correspondences inside the source region.

    The pair's homography when it holds on these correspondences, else one fitted to them; the
    warped region is kept where the correspondences say the object can be (their hull grown by
    `reach` x the region's size), so an extrapolated warp cannot run away. Without a usable
    homography: the hull of the destination points.
    """
    n = len(src_xy)
    if n < 3:
        return None
    Hs = None
    if H is not None and _fits(H, src_xy, dst_xy, config):
        Hs = H
    elif n >= 6:  # the stored correspondences are inliers already: a least-squares fit, no RANSAC
        Hl = fit_dlt(src_xy, dst_xy)
        if Hl is not None and plausible_homography(Hl, region.bounds) and _fits(Hl, src_xy, dst_xy, config):
            Hs = Hl
    hull = shapely.convex_hull(shapely.multipoints(np.asarray(dst_xy, np.float64)))
    if Hs is None:
        out = Region.from_geometry(hull).clip(width, height)
        return out if not out.is_empty and out.area >= MIN_AREA_PX else None
    warped = region.transform(Hs).clip(width, height)
    if warped.is_empty or warped.area < MIN_AREA_PX:
        return None
    grow = config.reach * math.sqrt(warped.area)
    limit = Region.from_geometry(hull.buffer(grow, quad_segs=4))
    out = warped.intersection(limit)
    return out if not out.is_empty and out.area >= MIN_AREA_PX else None


def fit_dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares homography src -> dst (normalized DLT, >= 4 points), None when degenerate."""
    def norm(p):
        c = p.mean(axis=0)
        s = np.sqrt(2.0) / max(np.sqrt(((p - c) ** 2).sum(axis=1)).mean(), 1e-9)
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    Ts, Td = norm(src), norm(dst)
    a = src @ Ts[:2, :2].T + Ts[:2, 2]
    b = dst @ Td[:2, :2].T + Td[:2, 2]
    n = len(a)
    A = np.zeros((2 * n, 9))
    A[0::2, 0:2], A[0::2, 2] = a, 1
    A[0::2, 6:8], A[0::2, 8] = -b[:, :1] * a, -b[:, 0]
    A[1::2, 3:5], A[1::2, 5] = a, 1
    A[1::2, 6:8], A[1::2, 8] = -b[:, 1:] * a, -b[:, 1]
    _, sv, vt = np.linalg.svd(A, full_matrices=False)
    if sv[-2] < 1e-9 * sv[0]:
        return None
    H = np.linalg.inv(Td) @ vt[-1].reshape(3, 3) @ Ts
    return H / H[2, 2] if abs(H[2, 2]) > 1e-12 else None


def _fits(H: np.ndarray, src: np.ndarray, dst: np.ndarray, config: PropagationConfig) -> bool:
    p = src @ H[:, :2].T + H[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = p[:, :2] / p[:, 2:3]
    err = np.linalg.norm(proj - dst, axis=1)
    return bool(np.mean(np.nan_to_num(err, nan=np.inf) <= config.reproj_px) >= config.holds_frac)


def propagate(graph, seeds: dict[int, tuple[Region, np.ndarray | None]], sizes, exclude: set[int] = frozenset(),
              config: PropagationConfig = PropagationConfig(), cancel: CancelToken = NEVER) -> dict[int, Reached]:
    """Spread the seed regions along the hyperedges; returns the images reached (seeds excluded).

    seeds: directly verified image id -> (its predicted region, the points (n, 2) where the query
    matched it, or None). sizes(image_id) -> (width, height).
    """
    state: dict[int, Reached] = {i: Reached(r, 0, 0.0, [i], support=pts)
                                 for i, (r, pts) in seeds.items() if r is not None and not r.is_empty}
    frontier = list(state)
    reached: dict[int, Reached] = {}
    for hop in range(1, config.hops + 1):
        cancel.raise_if_set()
        incoming: dict[int, list[tuple[Region, int, int, np.ndarray]]] = {}
        for a in frontier:
            ra = state[a]
            carrier = ra.carrier(config)
            for b, p in graph.neighbours(a, config.edge_min_inliers):
                if b in state or b in exclude:
                    continue
                src, dst, H = graph.hyperedge(p, a)
                inside = carrier.contains_points(src)
                n_in = int(inside.sum())
                if n_in < config.min_corr:
                    continue
                w, h = sizes(b)
                region = transfer_region(ra.region, src[inside], dst[inside], H, w, h, config)
                if region is not None:
                    incoming.setdefault(b, []).append((region, n_in, a, dst[inside]))
        if not incoming:
            break
        frontier = []
        for b, ways in sorted(incoming.items(), key=lambda kv: -sum(w[1] for w in kv[1])):
            region = ways[0][0]
            for w in ways[1:]:
                region = region.union(w[0])
            best = max(ways, key=lambda w: w[1])
            state[b] = reached[b] = Reached(region, hop, float(sum(w[1] for w in ways)),
                                            state[best[2]].path + [b], [w[2] for w in ways],
                                            np.concatenate([w[3] for w in ways]))
            frontier.append(b)
            if len(reached) >= config.max_reached:
                return reached
    return reached


# ------------------------------------------------------------------------------------------------
# uncertainty


def community_uncertainty(graph, ranked: list[tuple[int, float]], config: UncertaintyConfig = UncertaintyConfig()) -> float | None:
    """Normalized entropy of the score mass of the top results over their verified-graph components.

    ranked: (image id, non-negative weight) best first. 0: one community holds everything; 1: every
    result is alone with an equal share.
    """
    top = [(i, max(float(w), 0.0)) for i, w in ranked[: config.top]]
    if len(top) < 2:
        return 0.0 if top else None
    if graph is None:
        return None
    label = graph.components([i for i, _ in top], config.min_inliers)
    mass: dict[int, float] = {}
    for i, w in top:
        mass[label[i]] = mass.get(label[i], 0.0) + w
    total = sum(mass.values())
    if total <= 0:
        return 1.0
    p = np.array([m / total for m in mass.values() if m > 0])
    return float(min(1.0, max(0.0, -(p * np.log(p)).sum() / math.log(len(top)))))


def hit_weight(hit) -> float:
    """How much a result counts in the uncertainty: verified and propagated hits count by their score
    (inliers; >= 1), the others by their initial similarity (< 1)."""
    return float(hit.score)


# ------------------------------------------------------------------------------------------------
# the post-stages of the search methods (engine.pipeline registers them)


def _rest_by_diffusion(graph, rest: list, scores: dict[int, float], verified: set[int],
                       config: DiffusionConfig) -> list:
    """The unverified tail, reordered by diffusion; scores stay below 1 and decrease down the list."""
    f = diffusion_scores(graph, scores, verified, config)
    if config.blend > 0 and f:  # mix in the initial similarity (both scaled to a maximum of 1)
        fmax = max(max(f.values()), 1e-30)
        smax = max(max(scores.get(i, 0.0) for i in f), 1e-30)
        f = {i: (1 - config.blend) * v / fmax + config.blend * max(scores.get(i, 0.0), 0.0) / smax
             for i, v in f.items()}
    top = max([v for v in f.values() if v > 0], default=0.0)
    # images the diffusion does not reach (f = 0) keep their initial order
    inside = sorted((h for h in rest if h.image_id in f),
                    key=lambda h: (-f[h.image_id], -scores.get(h.image_id, 0.0), h.image_id))
    outside = [h for h in rest if h.image_id not in f]
    out = []
    for h in inside:
        s = 0.999 * max(f[h.image_id], 0.0) / top if top > 0 else 0.0
        out.append(Hit(h.image_id, h.path, s, h.region, {**h.evidence, "diffusion": f[h.image_id]}, h.stage))
    for h in outside:
        out.append(Hit(h.image_id, h.path, h.score * 1e-3, h.region, h.evidence, h.stage))
    return out


def _propagated_hits(ctx, graph, direct: list, config: PropagationConfig, cancel: CancelToken) -> list:
    project = ctx.project
    seeds = {h.image_id: (h.region, _matched_points(h)) for h in direct
             if h.region is not None and h.evidence.get("inliers", h.score) >= config.min_seed_inliers}
    # every direct hit stays direct, seed or not (a weak one is not passed on, nor reached)
    exclude = set(ctx.exclude) | {h.image_id for h in direct}
    reached = propagate(graph, seeds, project.image_size, exclude, config, cancel)
    top = min([h.score for h in direct] + [10.0])
    span = max(top - 1.0, 1e-6)
    step = span / (config.hops + 1)
    hits = []
    for b, r in sorted(reached.items(), key=lambda kv: (kv[1].hop, -kv[1].strength, kv[0])):
        score = 1.0 + span - r.hop * step + 0.99 * step * r.strength / (r.strength + 20.0)
        hits.append(Hit(b, project.image_path(b), score, r.region,
                        {"hop": r.hop, "path": [project.image_path(i) for i in r.path],
                         "correspondences": int(r.strength),
                         "via": [project.image_path(i) for i in r.sources],
                         "points": evenly(np.zeros((0, 2)) if r.support is None else r.support,
                                           MAX_POINTS).round(1).tolist()}, "propagated"))
    return hits


MAX_POINTS = 200  # where a propagated hit's correspondences landed, kept in its evidence (the outline's anchors)


def _matched_points(hit) -> np.ndarray | None:
    """The database-side points of a verified hit's matches (sv evidence: [xq, yq, xd, yd] rows)."""
    m = hit.evidence.get("matches")
    if not m:
        return None
    a = np.asarray(m, np.float64)
    return a[:, 2:4] if a.ndim == 2 and a.shape[1] >= 4 else None


def _finish(graph, hits: list, uncertainty_config: UncertaintyConfig) -> tuple[list, float | None]:
    return hits, community_uncertainty(graph, [(h.image_id, hit_weight(h)) for h in hits], uncertainty_config)


def diffusion_post(ctx, hits, scores, *, progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER,
                   config: DiffusionConfig = DiffusionConfig(), uncertainty: UncertaintyConfig = UncertaintyConfig()):
    """`diffusion`: verified images first, then the rest ranked by diffusion from the query's seeds."""
    graph = ctx.project.graph
    if graph is None:
        return hits, None
    direct = [h for h in hits if h.stage == "verified"]
    rest = [h for h in hits if h.stage != "verified"]
    rest = _rest_by_diffusion(graph, rest, scores, {h.image_id for h in direct}, config)
    return _finish(graph, direct + rest, uncertainty)


def hypergraph_post(ctx, hits, scores, *, progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER,
                    config: PropagationConfig = PropagationConfig(), diffusion: DiffusionConfig | None = None,
                    uncertainty: UncertaintyConfig = UncertaintyConfig()):
    """`hypergraph`: verified images, then those the query region reached along hyperedges (with
    their regions and paths), then the rest (by initial similarity, or by diffusion)."""
    graph = ctx.project.graph
    if graph is None:
        return hits, None
    direct = [h for h in hits if h.stage == "verified"]
    propagated = _propagated_hits(ctx, graph, direct, config, cancel)
    got = {h.image_id for h in direct} | {h.image_id for h in propagated}
    rest = [h for h in hits if h.image_id not in got]
    if diffusion is not None:
        rest = _rest_by_diffusion(graph, rest, scores, {h.image_id for h in direct}, diffusion)
    return _finish(graph, direct + propagated + rest, uncertainty)


# `full` orders the unverified tail by a milder diffusion than the paper's: on the dev set (few
# relatives per object) alpha 0.99 / k 50 let graph hubs outrank the query's own similarities
# (image mAP 58.5 -> 55.9); alpha 0.8, k 10, blended half-and-half with the initial similarity,
# gives 60.8 -> 61.7 on top of propagation (medium protocol).
FULL_DIFFUSION = DiffusionConfig(alpha=0.8, k=10, blend=0.5)


def full_post(ctx, hits, scores, **kw):
    """`full` (topological verification, see engine.pipeline): hypergraph propagation, then the
    unverified rest ranked by FULL_DIFFUSION."""
    return hypergraph_post(ctx, hits, scores, diffusion=FULL_DIFFUSION, **kw)


def deepen_when_uncertain(ctx, hits, order, verified, config: UncertaintyConfig = UncertaintyConfig()) -> list[int]:
    """`full`: when the top results split over communities, verify `deepen_by` more images."""
    graph = ctx.project.graph
    if graph is None:
        return []
    u = community_uncertainty(graph, [(h.image_id, hit_weight(h)) for h in hits], config)
    if u is None or u <= config.deepen_above:
        return []
    return [i for i in order if i not in verified][: config.deepen_by]
