"""Topological verification: many small patches verified one by one and grown along their overlaps.

Spatial verification (engine.verify.spatial) explains all matches with one homography, i.e. it assumes the
object is a plane. A statue, a building with two wings or a sneaker is not, so one homography keeps
only one of its faces, or fails. Topological RANSAC (An et al., NeurIPS 2023) instead verifies
small patches, each with its own local transform, and keeps the patches that stay connected across
both views. This module does that with array operations (numpy, scipy), in four steps:

1. Seeds. The tentative correspondences of the query region's features with the database image
   (engine.verify.correspond: words and signatures, as sv's; or ratio-test matches, where a looser
   `ratio` adds seeds that the patches re-check while sv's own homography is still fitted on the
   `strict` ones). That homography, where sv would accept it, is kept as one more, image-wide
   patch: whatever spatial verification accepts, topological verification accepts too.
2. Patches. Every match is the seed of a patch: its query window holds the matches whose query
   point lies within `R` of the seed (`R` = `window` x sqrt(query-region area)). The seed's SIFT
   scale ratio and orientation difference give a similarity that predicts where each neighbour
   must land in the database image; neighbours landing close enough (`seed_tol` of their distance)
   start a local affine fit (least squares, pulled gently towards that similarity), refitted
   twice on the matches within `tol_px`. A patch passes when its affine is orientation-preserving,
   not degenerate, and explains at least `min_patch` matches (duplicate keypoints count once).
3. Growth. A passing patch links its seed to every match it explains; matches linked through
   overlapping passing patches form connected verified components (union-find over the sparse
   link graph, `scipy.sparse.csgraph`); every seed is grown at once, and a seed inside a verified
   region simply lands in its component. Then a saccade (`grow_rounds`): each verified patch maps
   the unmatched query features of its window by its affine and takes the closest-looking database
   feature at the predicted place (a shared word and `guided_hamming` bits, or `guided_sim` with
   full descriptors; no ratio test: the geometry already speaks), and
   the patches are verified again with the new matches, so regions grow into their neighbourhood.
4. Score and region. The score is the size of the largest component, counted in distinct
   `cell_px` cells of the query rather than in matches: a tight cluster (one repeated stroke of
   text) agrees with any local transform and must not outweigh matches spread over an object;
   but never below sv's own score (its homography's inlier count), so topo verifies whatever sv
   verifies. The pair verifies at `min_inliers`; smaller components are dropped.
   When one homography explains at least `planar_frac` of the verified matches (sv's own, else
   one refitted on them) the object is a plane for this pair, and the region is the query region
   warped by one global model, as sv predicts it. Otherwise the region is piecewise: the query
   region is cut into the Voronoi cells of the verified patches (up to `reach` windows from each
   seed), each piece is mapped by its own patch's affine, the rest of the region (beyond every
   patch's reach) by the global model, and the pieces are unioned and closed.
5. The global model. The verified matches of a non-planar object often cover one part of it only
   (a cat's face, one side of a shoe); a homography fitted there bends to their parallax, and its
   two perspective parameters extrapolate that bend over the rest of the region. So the homography
   is kept only when its perspective is significant on its own inliers: the nested-model F-test
   against the least-squares affine of the same inliers, at level `perspective_alpha`, given at
   least MIN_TESTED of them (a real plane passes it easily: on dev every planar pair with that many
   inliers does, p <= 0.02 and mostly < 1e-8); else the affine warps the region. When it is kept,
   the homography is sv's own wherever sv's explains the verified matches, so the region is sv's.

The only Python loops are over the three affine fits and the growth rounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.special import fdtrc

from engine.base.regions import Region
from engine.base.types import PairResult
from engine.verify.localize import MIN_AREA_PX, warp_region
from engine.verify.correspond import Correspondences, guided
from engine.verify.spatial import SVConfig, evenly, fit_homography, plausible_homography

MAX_ANISOTROPY = 6.0  # a local affine stretching one axis more than this against the other is degenerate
MAX_SCALE = 8.0  # ... and so is one scaling areas by more than MAX_SCALE**2 (or less than its inverse)
PRIOR_WEIGHT = 0.1  # pull of the seed's similarity on the local affine, in (window radius)^2 units
CIRCLE_SEGMENTS = 8  # quarter-circle segments of the reach disks
MAX_EVIDENCE = 200  # verified matches listed in the evidence, as sv lists its inliers
GUIDED_CANDIDATES = 4  # database features looked at around each guided prediction
SUPPORT_CELL = 2.0  # px: matches this close in the query (duplicate keypoints) count once in a patch
MIN_TESTED = 16  # inliers the perspective test needs (twice the homography's 8 parameters); fewer: keep it


@dataclass(frozen=True)
class TopoConfig:
    ratio: float = 0.85  # Lowe's ratio for seed matches (sv's; a looser one adds seeds the patches re-check)
    window: float = 0.12  # patch radius in the query, as a fraction of sqrt(query-region area) ...
    min_window_px: float = 24.0  # ... and at least this many pixels
    max_neighbours: int = 24  # matches per patch: the nearest ones in the query window
    seed_tol: float = 0.35  # seed similarity's allowed miss, as a fraction of the predicted offset
    tol_px: float = 6.0  # local affine's inlier threshold, in database pixels
    min_patch: int = 5  # matches a patch must explain, seed included, to pass
    cell_px: float = 8.0  # the score counts verified matches in distinct cells of this size (query px)
    min_inliers: int = 8  # score a pair needs to verify (engine.pipeline passes sv's min_inliers)
    planar_frac: float = 0.8  # one homography explains this share of verified matches -> warp the region
    reach: float = 2.5  # a patch maps the query region up to this many windows around its seed
    max_patches: int = 200  # patches kept for the region and the evidence (the best per query cell)
    grow_rounds: int = 1  # saccades: rounds of guided matching inside verified patches, then re-verification
    guided_sim: float = 0.85  # RootSIFT similarity a guided correspondence needs (no ratio test there) ...
    guided_hamming: int = 28  # ... or, from the index, a shared word and signatures this close (bits)
    perspective_alpha: float = 0.05  # warp by the homography only if its perspective is significant at this level


@dataclass(frozen=True, eq=False)
class Patches:
    """The verified structure of one pair, over the M seed matches (all arrays have length M)."""

    q_xy: np.ndarray  # (M, 2) query points of the matches
    d_xy: np.ndarray  # (M, 2) database points
    affine: np.ndarray  # (M, 2, 3) each seed's local affine, query offset from the seed -> database
    passed: np.ndarray  # bool (M,): the seed's patch passed
    support: np.ndarray  # int (M,): matches the seed's patch explains (duplicate keypoints once)
    component: np.ndarray  # int (M,): component label of verified matches, -1 for the others
    radius: float  # the query window radius R, pixels

    @property
    def verified(self) -> np.ndarray:
        return self.component >= 0


def find_patches(q_xy: np.ndarray, q_scale: np.ndarray, q_angle: np.ndarray, d_xy: np.ndarray,
                 d_scale: np.ndarray, d_angle: np.ndarray, radius: float, config: TopoConfig,
                 plane: np.ndarray | None = None) -> Patches:
    """Steps 2-3 on M matches given by their two endpoints' positions, scales and angles.

    plane: optional bool (M,), the inliers of one global homography; they are linked as one more
    (image-wide) patch, so whatever spatial verification would accept, topology accepts too.
    """
    P = np.asarray(q_xy, np.float64)
    Q = np.asarray(d_xy, np.float64)
    M = len(P)
    empty = Patches(P, Q, np.zeros((M, 2, 3)), np.zeros(M, bool), np.zeros(M, np.int64),
                    np.full(M, -1, np.int64), float(radius))
    if M < config.min_patch:
        return empty
    k = min(config.max_neighbours, M)
    dist, nb = cKDTree(P).query(P, k=k, distance_upper_bound=radius)
    dist, nb = dist.reshape(M, k), nb.reshape(M, k)
    valid = nb < M
    nb = np.where(valid, nb, 0)
    dist = np.where(valid, dist, 0.0)
    dP = P[nb] - P[:, None]  # (M, k, 2) neighbour offsets from the seed, query
    dQ = Q[nb] - Q[:, None]  # ... and database

    # The seed's similarity (SIFT scale ratio, orientation difference; y down, angles as OpenCV's).
    s = np.asarray(d_scale, np.float64) / np.maximum(np.asarray(q_scale, np.float64), 1e-6)
    th = np.deg2rad(np.asarray(d_angle, np.float64) - np.asarray(q_angle, np.float64))
    S = np.empty((M, 2, 2))
    S[:, 0, 0] = S[:, 1, 1] = s * np.cos(th)
    S[:, 1, 0] = s * np.sin(th)
    S[:, 0, 1] = -S[:, 1, 0]
    pred = np.einsum("mab,mkb->mka", S, dP)
    err = np.linalg.norm(pred - dQ, axis=2)
    agree = valid & (err <= config.tol_px + config.seed_tol * s[:, None] * dist)

    # Local affine, least squares on the agreeing matches with a small ridge towards S.
    X = np.concatenate([dP, np.ones((M, k, 1))], axis=2)  # (M, k, 3)
    lam = PRIOR_WEIGHT * radius * radius
    prior = np.diag([lam, lam, 1e-6])  # (the tiny last term keeps an empty patch solvable)
    theta0 = np.zeros((M, 3, 2))
    theta0[:, :2, :] = np.transpose(S, (0, 2, 1))
    w = agree.astype(np.float64)
    for _ in range(3):
        G = np.einsum("mk,mka,mkb->mab", w, X, X) + prior
        B = np.einsum("mk,mka,mkb->mab", w, X, dQ) + prior @ theta0
        theta = np.linalg.solve(G, B)  # (M, 3, 2): rows A^T and t
        res = np.linalg.norm(np.einsum("mka,mab->mkb", X, theta) - dQ, axis=2)
        inl = valid & (res <= config.tol_px)
        w = inl.astype(np.float64)
    A = np.transpose(theta[:, :2, :], (0, 2, 1))  # (M, 2, 2)
    t = theta[:, 2, :]
    # support: explained matches, duplicate keypoints (same place, another orientation) once
    none = np.iinfo(np.int64).min
    keys = np.sort(np.where(inl, cell_keys(P, SUPPORT_CELL)[nb], none), axis=1)
    support = (keys[:, 0] != none) + ((np.diff(keys, axis=1) != 0) & (keys[:, 1:] != none)).sum(axis=1)
    passed = (support >= config.min_patch) & inl[:, 0] & plausible_affine(A)

    # Growth: union-find over links seed -> matches its passing patch explains.
    link = passed[:, None] & inl
    rows = np.repeat(np.arange(M), k)[link.ravel()]
    cols = nb[link]
    if plane is not None and plane.any():
        members = np.flatnonzero(plane)
        rows = np.r_[rows, np.full(len(members), members[0])]
        cols = np.r_[cols, members]
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(M, M))
    _, labels = connected_components(graph, directed=False)
    verified = np.zeros(M, bool)
    verified[rows] = True
    verified[cols] = True
    component = np.where(verified, labels, -1)
    affine = np.concatenate([A, t[:, :, None]], axis=2)
    return Patches(P, Q, affine, passed, support.astype(np.int64), component, float(radius))


def plausible_affine(A: np.ndarray) -> np.ndarray:
    """Orientation-preserving local affines (..., 2, 2) of bounded scale and anisotropy."""
    det = A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
    fro2 = np.einsum("...ab,...ab->...", A, A)
    # singular values s1 >= s2: s1^2 + s2^2 = fro2, s1 * s2 = det  =>  s1/s2 from the ratio fro2/det
    with np.errstate(divide="ignore", invalid="ignore"):
        r = fro2 / det  # = s1/s2 + s2/s1
        ok_aniso = r <= MAX_ANISOTROPY + 1.0 / MAX_ANISOTROPY
    return (det > MAX_SCALE ** -2) & (det < MAX_SCALE ** 2) & ok_aniso


def cell_keys(xy: np.ndarray, cell_px: float) -> np.ndarray:
    """One int64 key per point: its cell in a grid of cell_px pixels."""
    c = np.floor(np.asarray(xy, np.float64) / cell_px).astype(np.int64)
    return c[:, 0] * 1_000_003 + c[:, 1]


def component_sizes(patches: Patches, cell_px: float) -> np.ndarray:
    """Size of each verified component, indexed by label: the distinct cells of its query points."""
    v = np.flatnonzero(patches.verified)
    if len(v) == 0:
        return np.zeros(0, np.int64)
    pairs = np.unique(np.c_[patches.component[v], cell_keys(patches.q_xy[v], cell_px)], axis=0)
    return np.bincount(pairs[:, 0], minlength=len(patches.component))


def topo_verify(q, d, corr: Correspondences, query_region: Region, image_size: tuple[int, int],
                appearance, config: TopoConfig = TopoConfig(), strict: np.ndarray | None = None) -> PairResult:
    """Verify one query-region / database-image pair topologically; region in database pixels.

    q, d: the query's and the database image's features (xy, scale, angle: a FeatureSet or the
    compact store's record); corr: their tentative correspondences (engine.verify.correspond), the
    seeds (those with a query point outside query_region are ignored); appearance: the test guided
    matching applies (WordAppearance or DenseAppearance); strict: the seeds sv's own homography is
    fitted on (default all). image_size = (width, height) of the database image. The region is
    predicted whenever a component was found, even one too small to verify the pair.
    """
    width, height = image_size
    q_xy, d_xy = np.asarray(q.xy), np.asarray(d.xy)
    qi, di = corr.qi.astype(np.int64), corr.di.astype(np.int64)
    strict = np.ones(len(qi), bool) if strict is None else np.asarray(strict, bool)
    if len(qi):
        inside = query_region.contains_points(q_xy[qi])
        qi, di, strict = qi[inside], di[inside], strict[inside]
    radius = max(config.min_window_px, config.window * float(np.sqrt(max(query_region.area, 1.0))))
    sv = SVConfig(min_inliers=config.min_inliers)
    H, plane = global_plane(q_xy[qi], d_xy[di], strict, query_region.bounds, sv)
    seeds = len(qi)
    q_scale, q_angle = np.asarray(q.scale, np.float64), np.asarray(q.angle, np.float64)
    d_scale, d_angle = np.asarray(d.scale, np.float64), np.asarray(d.angle, np.float64)
    d_tree = None
    for round_ in range(config.grow_rounds + 1):
        patches = find_patches(q_xy[qi], q_scale[qi], q_angle[qi], d_xy[di], d_scale[di], d_angle[di],
                               radius, config, plane)
        sizes = component_sizes(patches, config.cell_px)
        top = int(sizes.max()) if len(sizes) else 0
        largest = max(top, int(plane.sum()))  # never below sv's own score
        if largest == 0:
            return PairResult(False, 0.0, None, {"inliers": 0, "seeds": seeds, "grown": int(len(qi) - seeds),
                                                 "model": None, "matches": [], "patches": [], "components": []})
        keep = sizes >= min(config.min_inliers, top)
        if plane.any():
            keep[patches.component[np.flatnonzero(plane)[0]]] = True  # sv's plane is one component
        keep_labels = np.flatnonzero(keep)
        kept = np.isin(patches.component, keep_labels)
        if round_ == config.grow_rounds:
            break
        # Saccade: every verified patch looks for more correspondences in its own window.
        if d_tree is None and len(d_xy):
            d_tree = cKDTree(d_xy)
        gq, gd = guided_matches(q_xy, q_scale, d_scale, d_xy, qi, di, patches, kept, query_region, config,
                                appearance, d_tree)
        if len(gq) == 0:
            break
        qi, di = np.r_[qi, gq], np.r_[di, gd]
        plane = np.r_[plane, on_plane(H, q_xy[gq], d_xy[gd], sv.threshold_px) & plane.any()]
    reps = representative_patches(patches, kept, config)
    region, model = predict_region(patches, kept, reps, H, query_region, width, height, config)
    shown = evenly(np.flatnonzero(kept), MAX_EVIDENCE)
    evidence = {
        "inliers": largest, "seeds": seeds, "grown": int(len(qi) - seeds), "model": model, "putative": seeds,
        "matches": np.hstack([patches.q_xy[shown], patches.d_xy[shown]]).round(1).tolist(),
        "components": sorted((int(x) for x in sizes[keep_labels]), reverse=True),
        "patches": [{"q": patches.q_xy[i].round(1).tolist(), "d": patches.d_xy[i].round(1).tolist(),
                     "r": round(patches.radius, 1),
                     "rd": round(patches.radius * float(np.sqrt(abs(np.linalg.det(patches.affine[i, :, :2])))), 1),
                     "n": int(patches.support[i])} for i in reps],
    }
    if H is not None and plane[:seeds].any():  # sv's own homography, for the outline's planarity test
        evidence["homography"] = np.asarray(H).round(6).tolist()
        evidence["homography_inliers"] = int(plane[:seeds].sum())
    return PairResult(largest >= config.min_inliers, float(largest), region, evidence)


def guided_matches(q_xy: np.ndarray, q_scale: np.ndarray, d_scale: np.ndarray, d_xy: np.ndarray, qi: np.ndarray,
                   di: np.ndarray, patches: Patches, kept: np.ndarray, query_region: Region, config: TopoConfig,
                   appearance, d_tree: cKDTree | None = None) -> tuple[np.ndarray, np.ndarray]:
    """New correspondences inside verified patches: each unmatched query feature within R of a
    verified seed is mapped by that seed's affine; the unmatched database feature within `tol_px`
    of the prediction whose appearance is closest is taken when it passes the appearance test
    (no ratio test: the geometry already speaks) and its scale agrees with the affine's (within 2x).
    One database feature, one query feature."""
    none = np.zeros(0, np.int64), np.zeros(0, np.int64)
    anchors = np.flatnonzero(patches.passed & kept)
    if len(anchors) == 0 or len(d_xy) == 0:
        return none
    free_q = np.ones(len(q_xy), bool)
    free_q[qi] = False
    cand = np.flatnonzero(free_q)
    dist, a = cKDTree(patches.q_xy[anchors]).query(q_xy[cand], k=1, distance_upper_bound=patches.radius)
    near = np.isfinite(dist)
    cand, a = cand[near], anchors[a[near]]
    if len(cand) == 0:
        return none
    inside = query_region.contains_points(q_xy[cand])
    cand, a = cand[inside], a[inside]
    aff = patches.affine[a]
    pred = np.einsum("nab,nb->na", aff[:, :, :2], q_xy[cand] - patches.q_xy[a]) + aff[:, :, 2] + patches.d_xy[a]
    taken = np.zeros(len(d_xy), bool)
    taken[di] = True
    det = np.abs(aff[:, 0, 0] * aff[:, 1, 1] - aff[:, 0, 1] * aff[:, 1, 0])
    row_of = np.full(len(q_xy), -1, np.int64)
    row_of[cand] = np.arange(len(cand))

    def allowed(c, nb):
        scale = d_scale[nb] / np.maximum(q_scale[c], 1e-6)[:, None]
        return ~taken[nb] & (np.abs(np.log(scale / np.sqrt(det[row_of[c]])[:, None])) <= np.log(2.0))

    gq, gd, _ = guided(pred, cand, d_xy, config.tol_px, appearance, allowed, d_tree, GUIDED_CANDIDATES)
    return gq, gd


def on_plane(H: np.ndarray | None, P: np.ndarray, Q: np.ndarray, threshold_px: float) -> np.ndarray:
    """Which correspondences P -> Q the homography H maps within threshold_px (none if H is None)."""
    if H is None or len(P) == 0:
        return np.zeros(len(P), bool)
    proj = np.c_[P, np.ones(len(P))] @ H.T
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(proj[:, :2] / proj[:, 2:3] - Q, axis=1)
    return (err <= threshold_px) & (proj[:, 2] > 0)


def representative_patches(patches: Patches, kept: np.ndarray, config: TopoConfig) -> np.ndarray:
    """Passing patches of the kept components, thinned to the best one per (R/2)-cell of the query."""
    idx = np.flatnonzero(patches.passed & kept)
    if len(idx) == 0:
        return idx
    key = cell_keys(patches.q_xy[idx], 0.5 * patches.radius)
    order = np.lexsort((-patches.support[idx], key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    best = idx[order[first]]
    best = best[np.argsort(-patches.support[best], kind="stable")][: config.max_patches]
    return np.sort(best)


def second_ratio(q_desc: np.ndarray, d_desc: np.ndarray, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
    """Lowe's ratio (best / second-best descriptor distance) of the matches qi -> di."""
    if len(qi) == 0:
        return np.zeros(0)
    sim = np.asarray(q_desc[qi], np.float32) @ np.asarray(d_desc, np.float32).T  # only the matched rows
    best = sim[np.arange(len(qi)), di]
    sim[np.arange(len(qi)), di] = -np.inf
    second = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * second, 1e-12))
    return d1 / d2


def global_plane(P: np.ndarray, Q: np.ndarray, strict: np.ndarray, bounds, sv: SVConfig
                 ) -> tuple[np.ndarray | None, np.ndarray]:
    """Spatial verification's homography, fitted (MAGSAC++) on the seeds that pass sv's own ratio
    test: (H, or None where implausible; its inliers among all seeds, within sv's threshold, or
    none where sv would not accept it for lack of inliers)."""
    H, inl = fit_homography(P[strict], Q[strict], sv)
    if H is None or not plausible_homography(H, bounds):
        return None, np.zeros(len(P), bool)
    if inl.sum() < sv.min_inliers:
        return H, np.zeros(len(P), bool)
    plane = on_plane(H, P, Q, sv.threshold_px)
    plane[np.flatnonzero(strict)[inl]] = True
    return H, plane


def predict_region(patches: Patches, kept: np.ndarray, reps: np.ndarray, H: np.ndarray | None,
                   query_region: Region, width: int, height: int, config: TopoConfig) -> tuple[Region | None, str]:
    """The query region warped by one global model when one homography explains the kept verified
    matches (a plane), else the piecewise region of the patches, its far parts warped by that model.

    The homography is sv's own (H) when it explains them, even one with too few inliers for sv to
    accept, so on a plane topo predicts what sv predicts; else one refitted (MAGSAC++) on the
    verified matches (growth may have found many more). `global_model` then keeps it only where its
    perspective is significant, else the affine fitted on the same inliers warps the region.
    """
    P, Q = patches.q_xy[kept], patches.d_xy[kept]
    need = config.planar_frac * len(P)
    sv = SVConfig()
    planar = H is not None and on_plane(H, P, Q, sv.threshold_px).sum() >= need
    if not planar:
        H2, inl = fit_homography(P, Q, sv)
        if H2 is not None and plausible_homography(H2, query_region.bounds):
            H, planar = H2, inl.sum() >= need
    M, model = global_model(P, Q, H, sv.threshold_px, config.perspective_alpha)
    if planar and M is not None:
        region = warp_region(query_region, M, width, height)
        if region is not None:
            return region, model
    return piecewise_region(patches, reps, query_region, width, height, config, M), "piecewise"


def global_model(P: np.ndarray, Q: np.ndarray, H: np.ndarray | None, threshold_px: float, alpha: float
                 ) -> tuple[np.ndarray | None, str]:
    """One 3x3 model for the whole query region: the homography H, or the affine when H's two
    perspective parameters are not needed to explain the matches P -> Q it maps within threshold_px.

    A homography fitted on a few matches in one part of a non-planar object (a cat's face) also bends
    to their parallax, and extrapolates that bend over the rest of the region; the affine does not.
    The test is the nested-model F-test on those inliers: residual sums of squares of the least-squares
    homography (8 parameters) and affine (6), F = ((RSS_A - RSS_H) / 2) / (RSS_H / (2n - 8)); the
    homography is kept when P(F(2, 2n - 8) >= F) < alpha, and whenever it has fewer than MIN_TESTED
    inliers (too few for the test to tell a flat perspective from an unmeasured one: sv's answer
    stands). Without H, the affine (RANSAC) of all matches, if plausible; else None.
    """
    if H is None:
        if len(P) < 3:
            return None, "affine"
        A, _ = cv2.estimateAffine2D(P.astype(np.float32), Q.astype(np.float32), method=cv2.RANSAC,
                                    ransacReprojThreshold=threshold_px)
        if A is None or not plausible_affine(A[:, :2]):
            return None, "affine"
        return np.vstack([A, [0.0, 0.0, 1.0]]), "affine"
    inl = on_plane(H, P, Q, threshold_px)
    Pi, Qi = P[inl], Q[inl]
    n = len(Pi)
    if n < MIN_TESTED:
        return H, "homography"
    X = np.c_[Pi, np.ones(n)]
    T, *_ = np.linalg.lstsq(X, Qi, rcond=None)  # (3, 2): the affine's rows A^T and t
    A = np.vstack([T.T, [0.0, 0.0, 1.0]])
    Hl, _ = cv2.findHomography(Pi.astype(np.float64), Qi.astype(np.float64), 0)  # least squares + LM
    if Hl is None or not plausible_affine(A[:2, :2]):
        return H, "homography"
    rss_h = float(((project(Hl, Pi) - Qi) ** 2).sum())
    rss_a = float(((X @ T - Qi) ** 2).sum())
    dof = 2 * n - 8
    F = 0.5 * (rss_a - rss_h) / max(rss_h / dof, 1e-12)
    if fdtrc(2, dof, max(F, 0.0)) < alpha:
        return H, "homography"
    return A, "affine"


def project(M: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Points P (n, 2) mapped by the 3x3 model M."""
    p = np.c_[P, np.ones(len(P))] @ np.asarray(M, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, :2] / p[:, 2:3]


def piecewise_region(patches: Patches, reps: np.ndarray, query_region: Region, width: int, height: int,
                     config: TopoConfig, M: np.ndarray | None = None) -> Region | None:
    """Union of the query region's Voronoi pieces around each patch (up to `reach` windows from its
    seed), each mapped by its own affine; the rest of the region, beyond every patch's reach, is
    mapped by the global model M when there is one (else left out)."""
    if len(reps) == 0:
        return None
    seeds = patches.q_xy[reps]
    geom = query_region.geometry
    reach = shapely.buffer(shapely.points(seeds), config.reach * patches.radius, quad_segs=CIRCLE_SEGMENTS)
    rest = shapely.difference(geom, shapely.union_all(reach)) if M is not None else None
    if len(reps) >= 2:
        env = shapely.box(*np.r_[np.minimum(seeds.min(0), geom.bounds[:2]) - 1,
                                 np.maximum(seeds.max(0), geom.bounds[2:]) + 1])
        cells = np.asarray(shapely.get_parts(shapely.voronoi_polygons(
            shapely.multipoints(seeds), extend_to=env, ordered=True)))
        reach = shapely.intersection(reach, cells)
    pieces = shapely.intersection(reach, geom)
    pieces = np.asarray(shapely.make_valid(pieces))
    xy, owner = shapely.get_coordinates(pieces, return_index=True)
    if len(xy) == 0:
        return None
    aff = patches.affine[reps][owner]  # (n, 2, 3)
    off = xy - seeds[owner]
    mapped = np.einsum("nab,nb->na", aff[:, :, :2], off) + aff[:, :, 2] + patches.d_xy[reps][owner]
    pieces = list(shapely.make_valid(shapely.set_coordinates(pieces.copy(), mapped)))
    if rest is not None and not rest.is_empty:
        far = Region.from_geometry(rest).transform(M)
        if not far.is_empty:
            pieces.append(far.geometry)
    union = shapely.union_all(pieces)
    # close the seams between pieces whose affines disagree slightly
    gap = 0.1 * patches.radius
    union = shapely.buffer(shapely.buffer(union, gap, quad_segs=2), -gap, quad_segs=2)
    region = Region.from_geometry(union).clip(width, height)
    return None if region.is_empty or region.area < MIN_AREA_PX else region
