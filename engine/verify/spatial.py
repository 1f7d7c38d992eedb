"""Spatial verification: putative matches by RootSIFT ratio test, a MAGSAC++ homography, inliers.

Matching is one matrix product per pair (no per-match Python loops); the homography comes from
OpenCV's USAC (MAGSAC++). The score is the inlier count; a pair with fewer than `min_inliers`
inliers is not verified.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SVConfig:
    ratio: float = 0.85  # Lowe's ratio on descriptor distances (MAGSAC and the plausibility check clean up)
    threshold_px: float = 5.0  # MAGSAC++ reprojection threshold, in database image pixels
    min_inliers: int = 8  # fewer inliers than this and the pair is not verified
    max_iters: int = 2000
    confidence: float = 0.999


@dataclass(frozen=True, eq=False)
class Matches:
    """Putative correspondences: indices into the query's and the database image's features."""

    qi: np.ndarray  # int32 (M,)
    di: np.ndarray  # int32 (M,)
    sim: np.ndarray  # float32 (M,) descriptor similarity

    def __len__(self) -> int:
        return int(self.qi.shape[0])


@dataclass(frozen=True, eq=False)
class Verification:
    H: np.ndarray | None  # 3x3 query -> database, None when no model was found
    inliers: int
    matches: Matches
    inlier_mask: np.ndarray  # bool (M,) over matches

    @property
    def verified_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.matches.qi[self.inlier_mask], self.matches.di[self.inlier_mask]


EMPTY_MATCHES = Matches(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))


def match_ratio(q: np.ndarray, d: np.ndarray, ratio: float = 0.8) -> Matches:
    """Ratio-test nearest neighbours of each query descriptor among the database descriptors.

    q, d: unit-norm float32 descriptors (RootSIFT); squared distance = 2 - 2 * similarity. Each
    database feature keeps only its best query match, so a repeated pattern cannot vote twice.
    """
    if len(q) == 0 or len(d) < 2:
        return EMPTY_MATCHES
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
    qi, di, s = rows[keep], best[keep], s_best[keep]
    # one-to-one on the database side: keep the most similar query feature per database feature
    order = np.lexsort((-s, di))
    first_of = np.ones(len(order), bool)
    first_of[1:] = di[order][1:] != di[order][:-1]
    sel = order[first_of]
    return Matches(qi[sel].astype(np.int32), di[sel].astype(np.int32), s[sel].astype(np.float32))


def fit_homography(src: np.ndarray, dst: np.ndarray, config: SVConfig = SVConfig()) -> tuple[np.ndarray | None, np.ndarray]:
    """MAGSAC++ homography src -> dst; returns (H or None, inlier mask)."""
    n = len(src)
    if n < 4:
        return None, np.zeros(n, bool)
    H, mask = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), cv2.USAC_MAGSAC,
                                 config.threshold_px, maxIters=config.max_iters, confidence=config.confidence)
    if H is None or mask is None:
        return None, np.zeros(n, bool)
    return H, mask.ravel().astype(bool)


def spatial_verify(q_xy: np.ndarray, q_desc: np.ndarray, d_xy: np.ndarray, d_desc: np.ndarray,
                   config: SVConfig = SVConfig(), q_bounds: tuple[float, float, float, float] | None = None
                   ) -> Verification:
    """Verify one pair: q_desc/d_desc are RootSIFT float32, q_xy/d_xy their positions.

    q_bounds: the query region's box, on which the homography's plausibility is judged
    (default: the box of the query features)."""
    m = match_ratio(q_desc, d_desc, config.ratio)
    if len(m) < 4:
        return Verification(None, 0, m, np.zeros(len(m), bool))
    H, inl = fit_homography(q_xy[m.qi], d_xy[m.di], config)
    n = int(inl.sum())
    if q_bounds is None:
        q_bounds = (*q_xy.min(axis=0), *q_xy.max(axis=0))
    if H is None or not plausible_homography(H, q_bounds):
        return Verification(None, 0, m, np.zeros(len(m), bool))
    return Verification(H, n, m, inl)


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
