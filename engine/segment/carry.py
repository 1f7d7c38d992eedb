"""Carrying the query mask into a database image along the verified correspondences.

Everything works on a `Frame`: a crop of the database image (around where the object should be)
sampled on a small working grid. A carry is a backward map, for each grid pixel the query pixel it
shows, built from (1) one global model (the verifier's homography, else an affine of the
correspondences: engine.verify.topological.global_model), (2) a smooth residual field that bends
it through every correspondence (kernel regression of their residuals, fading to the global model
away from them), and (3) optionally dense optical flow (OpenCV's DIS) between the query warped
that way and the database crop, for what the sparse correspondences miss (parallax, small pose and
shape change), kept only where it explains the crop better.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.verify.topological import project


@dataclass(frozen=True)
class Frame:
    """A crop (x0, y0)-(x1, y1) of the database image, sampled at `scale` grid pixels per image pixel."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float

    @property
    def shape(self) -> tuple[int, int]:
        return (max(1, int(round((self.y1 - self.y0) * self.scale))),
                max(1, int(round((self.x1 - self.x0) * self.scale))))

    def grid_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Database image coordinates (float32) of every grid pixel centre."""
        h, w = self.shape
        xs = self.x0 + (np.arange(w, dtype=np.float32) + 0.5) / self.scale - 0.5
        ys = self.y0 + (np.arange(h, dtype=np.float32) + 0.5) / self.scale - 0.5
        return np.meshgrid(xs, ys)

    def to_grid(self, xy: np.ndarray) -> np.ndarray:
        """Database image points -> integer grid cells (col, row), clipped to the grid."""
        h, w = self.shape
        g = (np.asarray(xy, np.float64).reshape(-1, 2) - (self.x0, self.y0) + 0.5) * self.scale - 0.5
        g = np.rint(g).astype(int)
        return np.c_[np.clip(g[:, 0], 0, w - 1), np.clip(g[:, 1], 0, h - 1)]

    def sample(self, image: np.ndarray, interpolation=cv2.INTER_AREA) -> np.ndarray:
        """The crop of a full-size database image (or mask) resized onto the grid."""
        h, w = self.shape
        crop = image[self.y0:self.y1, self.x0:self.x1]
        return cv2.resize(crop, (w, h), interpolation=interpolation)

    def paste(self, grid_mask: np.ndarray, height: int, width: int) -> np.ndarray:
        """A grid labelling back to a full-size bool mask (bilinear, >= 0.5)."""
        out = np.zeros((height, width), bool)
        up = cv2.resize(grid_mask.astype(np.float32), (self.x1 - self.x0, self.y1 - self.y0),
                        interpolation=cv2.INTER_LINEAR)
        out[self.y0:self.y1, self.x0:self.x1] = up >= 0.5
        return out


def frame_around(box: tuple[float, float, float, float], width: int, height: int, margin: float,
                 work_px: int) -> Frame:
    """The crop around box (x1, y1, x2, y2) grown by `margin` times its size on every side, clipped
    to the image, on a grid whose longer side is at most work_px (never upsampled)."""
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 8.0), max(y2 - y1, 8.0)
    x0 = int(np.clip(np.floor(x1 - margin * bw), 0, width - 1))
    y0 = int(np.clip(np.floor(y1 - margin * bh), 0, height - 1))
    xe = int(np.clip(np.ceil(x2 + margin * bw) + 1, x0 + 1, width))
    ye = int(np.clip(np.ceil(y2 + margin * bh) + 1, y0 + 1, height))
    scale = min(1.0, work_px / max(xe - x0, ye - y0))
    return Frame(x0, y0, xe, ye, scale)


def backward_map(frame: Frame, M: np.ndarray, q_xy: np.ndarray, d_xy: np.ndarray, bandwidth: float,
                 coarse: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """For every grid pixel, the query point it shows: M^-1, bent through the correspondences by a
    Gaussian kernel regression of their residuals (bandwidth in database pixels) that fades to
    M^-1 where no correspondence is near (one pseudo-observation of zero residual). The residual
    field is smooth: it is computed on a coarse grid (coarse x coarse) and resized."""
    gx, gy = frame.grid_xy()
    h, w = frame.shape
    Minv = np.linalg.inv(M)
    base = project(Minv, np.c_[gx.ravel(), gy.ravel()])
    mx = base[:, 0].reshape(h, w).astype(np.float32)
    my = base[:, 1].reshape(h, w).astype(np.float32)
    if len(q_xy) >= 3 and bandwidth > 0:
        res = np.asarray(q_xy, np.float64) - project(Minv, np.asarray(d_xy, np.float64))
        ok = np.all(np.isfinite(res), axis=1)
        d, res = np.asarray(d_xy, np.float64)[ok], res[ok]
        if len(d):
            ch, cw = min(h, coarse), min(w, coarse)
            cx = cv2.resize(gx, (cw, ch), interpolation=cv2.INTER_AREA).ravel()
            cy = cv2.resize(gy, (cw, ch), interpolation=cv2.INTER_AREA).ravel()
            dd = (cx[:, None] - d[None, :, 0]) ** 2 + (cy[:, None] - d[None, :, 1]) ** 2
            wgt = np.exp(-dd / (2.0 * bandwidth ** 2))
            field = (wgt @ res) / (wgt.sum(1, keepdims=True) + 0.5)
            mx += cv2.resize(field[:, 0].reshape(ch, cw).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            my += cv2.resize(field[:, 1].reshape(ch, cw).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return mx, my


def remap(image: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """image sampled at (mx, my) (bilinear; 0 outside)."""
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flow_correct(db_gray: np.ndarray, q_warped_gray: np.ndarray, valid: np.ndarray, gain: float = 0.9
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """DIS optical flow from the database crop to the warped query: for each grid pixel, where its
    content sits in the warped query. None unless it lowers the photometric error over `valid`
    (the carried object) below `gain` times the error without it."""
    if not valid.any():
        return None
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(db_gray, q_warped_gray, None)
    h, w = db_gray.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx, fy = gx + flow[..., 0], gy + flow[..., 1]
    moved = cv2.remap(q_warped_gray, fx, fy, cv2.INTER_LINEAR)
    before = np.abs(q_warped_gray.astype(np.float32) - db_gray)[valid].mean()
    after = np.abs(moved.astype(np.float32) - db_gray)[valid].mean()
    return (fx, fy) if after < gain * before else None
