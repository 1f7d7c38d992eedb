"""Spatial verification: tentative correspondences, a MAGSAC++ homography, its inliers.

The correspondences come from engine.verify.correspond (visual words and signatures, or the dense
ratio test for the reference). The homography comes from OpenCV's USAC (MAGSAC++), which is
deterministic: it seeds its own random generator (UsacParams.randomGeneratorState, 0 with the flag
API), whatever the thread or cv2.setRNGSeed, so the same correspondences in the same order give the
same model in any process. With an appearance test (`guide`), a model with `min_inliers` then
gathers every correspondence it predicts (within `guided_px`) and is refitted on them: word
correspondences miss features whose words differ, and the model finds them again. The score is the inlier count; a pair
with fewer than `min_inliers` inliers is not verified.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.verify.correspond import Correspondences, guided, match_ratio, one_to_one  # noqa: F401 (match_ratio)


@dataclass(frozen=True)
class SVConfig:
    ratio: float = 0.85  # Lowe's ratio on descriptor distances (MAGSAC and the plausibility check clean up)
    threshold_px: float = 5.0  # MAGSAC++ reprojection threshold, in database image pixels
    min_inliers: int = 8  # fewer inliers than this and the pair is not verified
    max_iters: int = 2000
    confidence: float = 0.999
    guided_px: float = 5.0  # guided matching: a correspondence lies this close to the model's prediction
    # similarity hypotheses from single correspondences (spatial_verify's `seeded`)
    max_seeds: int = 128  # the closest correspondences are the seeds
    seed_tol_px: float = 8.0  # a seed's similarity explains a correspondence within this ...
    seed_tol: float = 0.35  # ... plus this fraction of the predicted offset
    min_consensus: int = 5  # fewer correspondences than this agreeing with any seed: rejected before MAGSAC
    hypotheses: int = 8  # distinct consensus sets refined into homographies


@dataclass(frozen=True, eq=False)
class Verification:
    H: np.ndarray | None  # 3x3 query -> database, None when no model was found
    inliers: int
    matches: Correspondences  # what the model was fitted on (after guided matching, those)
    inlier_mask: np.ndarray  # bool (M,) over matches
    consensus: int = 0  # the most correspondences one seed's similarity explained (seeded verification)

    @property
    def verified_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.matches.qi[self.inlier_mask], self.matches.di[self.inlier_mask]


def fit_homography(src: np.ndarray, dst: np.ndarray, config: SVConfig = SVConfig()) -> tuple[np.ndarray | None, np.ndarray]:
    """MAGSAC++ homography src -> dst; returns (H or None, inlier mask)."""
    n = len(src)
    if n < 4:
        return None, np.zeros(n, bool)
    H, mask = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), cv2.USAC_MAGSAC,
                                 config.threshold_px, maxIters=config.max_iters, confidence=config.confidence)
    if H is None or mask is None:
        return None, np.zeros(n, bool)
    if np.r_[src.mean(axis=0), 1.0] @ H[2] < 0:
        H = -H  # the same map, written with w > 0 over the points (as reprojection tests expect)
    return H, mask.ravel().astype(bool)


def spatial_verify(q, d, corr: Correspondences, config: SVConfig = SVConfig(),
                   q_bounds: tuple[float, float, float, float] | None = None, guide=None,
                   seeded: bool = True) -> Verification:
    """Verify one pair from its tentative correspondences; q, d: the two images' features (xy, and
    for `seeded` scale and angle: a FeatureSet or the compact store's record).

    q_bounds: the query region's box, on which the homography's plausibility is judged (default:
    the box of the query features). seeded: similarity hypotheses first (`similarity_consensus`):
    a pair where no feature's similarity is shared by `min_consensus` correspondences is rejected
    without MAGSAC, and the best consensus sets are refined into homographies besides the one
    MAGSAC finds on all correspondences (the model with more inliers is kept). guide: an appearance
    test (engine.verify.correspond) for guided matching along a verified model, or None."""
    q_xy, d_xy = np.asarray(q.xy, np.float64), np.asarray(d.xy, np.float64)
    none = Verification(None, 0, corr, np.zeros(len(corr), bool))
    if len(corr) < 4:
        return none
    consensus = 0
    if q_bounds is None:
        q_bounds = (*q_xy.min(axis=0), *q_xy.max(axis=0))
    P, Q = q_xy[corr.qi], d_xy[corr.di]
    H, inl = fit_homography(P, Q, config) if not seeded else (None, np.zeros(len(corr), bool))
    if seeded and len(corr) < config.min_consensus:
        return Verification(None, 0, corr, np.zeros(len(corr), bool), len(corr))  # consensus <= len(corr)
    if seeded:
        seeds, agree = similarity_consensus(P, Q, np.asarray(q.scale)[corr.qi], np.asarray(q.angle)[corr.qi],
                                            np.asarray(d.scale)[corr.di], np.asarray(d.angle)[corr.di], corr.cost,
                                            config)
        consensus = int(agree.sum(axis=1).max(initial=0))
        none = Verification(None, 0, corr, np.zeros(len(corr), bool), consensus)
        if consensus < config.min_consensus:
            return none  # no local similarity shared by enough correspondences: not worth a MAGSAC run
        H, inl = fit_homography(P, Q, config)
        if H is None or not plausible_homography(H, q_bounds):
            H, inl = None, np.zeros(len(corr), bool)
        H2, inl2 = seeded_homography(P, Q, seeds, agree, config, q_bounds)
        if inl2.sum() > inl.sum():
            H, inl = H2, inl2
    if H is None or not plausible_homography(H, q_bounds):
        return none
    n = int(inl.sum())
    if guide is None or n < config.min_inliers:  # guided matching refines a model, it does not make one:
        return Verification(H, n, corr, inl, consensus)  # around a chance model: a few chance matches
    more = along_model(H, q_xy, d_xy, corr.qi[inl], corr.di[inl], guide, config.guided_px)
    if len(more) > n:  # more correspondences than MAGSAC saw: refit the model on them
        H2, inl2 = fit_homography(q_xy[more.qi], d_xy[more.di], config)
        if H2 is not None and inl2.sum() >= n and plausible_homography(H2, q_bounds):
            return Verification(H2, int(inl2.sum()), more, inl2, consensus)
    return Verification(H, len(more), more, np.ones(len(more), bool), consensus)


def similarity_consensus(P: np.ndarray, Q: np.ndarray, q_scale, q_angle, d_scale, d_angle, cost: np.ndarray,
                         config: SVConfig) -> tuple[np.ndarray, np.ndarray]:
    """One-correspondence hypotheses (Philbin et al., CVPR 2007): a correspondence's keypoint scale
    ratio and orientation difference make a similarity, which predicts where every other query
    point lands. Returns (seeds (h,): the `max_seeds` closest correspondences; agree (h, M): which
    correspondences each seed's similarity explains, within `seed_tol_px` plus `seed_tol` of the
    predicted offset, with a scale within 2x and an orientation within 30 degrees of the seed's)."""
    seeds = np.argsort(cost, kind="stable")[: config.max_seeds]
    s = np.asarray(d_scale, np.float64) / np.maximum(np.asarray(q_scale, np.float64), 1e-6)
    th = np.deg2rad(np.asarray(d_angle, np.float64) - np.asarray(q_angle, np.float64))
    sj, c, sn = s[seeds][:, None], np.cos(th[seeds])[:, None], np.sin(th[seeds])[:, None]
    dx = P[None, :, 0] - P[seeds, 0][:, None]
    dy = P[None, :, 1] - P[seeds, 1][:, None]
    ex = sj * (c * dx - sn * dy) + Q[seeds, 0][:, None] - Q[None, :, 0]  # y down, OpenCV's angles
    ey = sj * (sn * dx + c * dy) + Q[seeds, 1][:, None] - Q[None, :, 1]
    tol = config.seed_tol_px + config.seed_tol * sj * np.sqrt(dx * dx + dy * dy)
    agree = ex * ex + ey * ey <= tol * tol
    agree &= np.abs(np.log(s[None, :] / sj)) <= np.log(2.0)
    agree &= np.abs((th[None, :] - th[seeds][:, None] + np.pi) % (2 * np.pi) - np.pi) <= np.deg2rad(30.0)
    return seeds, agree


def seeded_homography(P: np.ndarray, Q: np.ndarray, seeds: np.ndarray, agree: np.ndarray, config: SVConfig,
                      bounds) -> tuple[np.ndarray | None, np.ndarray]:
    """The best homography grown from the largest distinct consensus sets: each set's affine (least
    median of squares), the correspondences within 3 thresholds of it, MAGSAC++ on those (mostly
    inliers now, so it converges where the inlier ratio of all correspondences is too low), its
    inliers among all correspondences. Returns (H or None, inlier mask)."""
    best, best_inl = None, np.zeros(len(P), bool)
    counts = agree.sum(axis=1)
    tried = np.zeros(len(P), bool)
    n = 0
    for j in np.lexsort((np.arange(len(seeds)), -counts)):
        if counts[j] < config.min_consensus or n >= config.hypotheses:
            break
        if tried[seeds[j]]:
            continue  # inside a consensus set already refined
        n += 1
        members = np.flatnonzero(agree[j])
        tried[members] = True
        A, _ = cv2.estimateAffine2D(P[members].astype(np.float32), Q[members].astype(np.float32), method=cv2.LMEDS)
        if A is None:
            continue
        near = np.flatnonzero(np.linalg.norm(P @ A[:, :2].T + A[:, 2] - Q, axis=1) <= 3 * config.threshold_px)
        H, _ = fit_homography(P[near], Q[near], config)
        if H is None or not plausible_homography(H, bounds):
            continue
        inl = reprojected_within(H, P, Q, config.threshold_px)
        if inl.sum() > best_inl.sum():
            best, best_inl = H, inl
    return best, best_inl


def reprojected_within(H: np.ndarray, P: np.ndarray, Q: np.ndarray, threshold_px: float) -> np.ndarray:
    """Which correspondences P -> Q the homography H maps within threshold_px."""
    p = np.c_[P, np.ones(len(P))] @ np.asarray(H, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(p[:, :2] / p[:, 2:3] - Q, axis=1)
    return (err <= threshold_px) & (p[:, 2] > 0)


def along_model(H: np.ndarray, q_xy: np.ndarray, d_xy: np.ndarray, qi0: np.ndarray, di0: np.ndarray, guide,
                radius: float) -> Correspondences:
    """The model's inliers (qi0, di0) and every query feature mapped by H that finds a database
    feature within `radius` px of its prediction passing `guide` (one-to-one, inliers first)."""
    p = np.c_[q_xy, np.ones(len(q_xy))] @ np.asarray(H, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.where(p[:, 2:3] > 0, p[:, :2] / p[:, 2:3], np.nan)
    gq, gd, gc = guided(pred, np.arange(len(q_xy)), d_xy, radius, guide)
    qi = np.r_[qi0, gq].astype(np.int64)
    di = np.r_[di0, gd].astype(np.int64)
    cost = np.r_[np.full(len(qi0), -np.inf), gc]  # the inliers first
    order = np.lexsort((qi, di, cost))
    qi, di, cost = one_to_one(qi[order], di[order], cost[order])
    return Correspondences(qi.astype(np.int32), di.astype(np.int32), np.maximum(cost, 0).astype(np.float32))


def plausible_homography(H: np.ndarray, bounds: tuple[float, float, float, float] | None = None) -> bool:
    """Reject degenerate models: the query box must map to a convex, unmirrored quadrilateral
    entirely in front of the horizon, neither collapsed nor exploded (area ratio within 1e-4..1e4)."""
    if H is None or not np.all(np.isfinite(H)):
        return False
    if bounds is None:
        bounds = (0.0, 0.0, 1000.0, 1000.0)
    x1, y1, x2, y2 = bounds
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], np.float64)
    p = corners @ np.asarray(H, np.float64).T
    w = p[:, 2]
    if not (np.all(w > 1e-9) or np.all(w < -1e-9)):
        return False  # the horizon crosses the query box
    quad = p[:, :2] / w[:, None]
    edges = np.roll(quad, -1, axis=0) - quad
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not np.all(cross > 0):  # image axes point the same way (y down): convex and not mirrored
        return False
    area_q = max((x2 - x1) * (y2 - y1), 1e-9)
    area_d = 0.5 * abs(np.dot(quad[:, 0], np.roll(quad[:, 1], -1)) - np.dot(quad[:, 1], np.roll(quad[:, 0], -1)))
    return bool(1e-4 < area_d / area_q < 1e4)


def evenly(rows: np.ndarray, n: int) -> np.ndarray:
    """At most n of the rows, spread evenly over them (evidence lists: not just the first ones)."""
    rows = np.asarray(rows)
    return rows if len(rows) <= n else rows[np.linspace(0, len(rows) - 1, n).astype(int)]
