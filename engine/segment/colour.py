"""Colour models: smoothed joint histograms over quantized Lab colour.

A model is learned from the pixels of a mask (the query's inside, its outside, or a database image's
current labels) and gives each pixel its log-likelihood. Histograms rather than GrabCut's Gaussian
mixtures: learning and look-up are a bincount and a take, ~1 ms on a working crop.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

BINS = 16  # per Lab channel: 4,096 cells
SMOOTH = 0.8  # Gaussian blur of the histogram, in cells: neighbouring colours share evidence
PRIOR = 1.0  # pseudo-count spread evenly over the cells (an unseen colour is unlikely, not impossible)


def colour_codes(image_rgb: np.ndarray) -> np.ndarray:
    """int (h, w) histogram cell of each pixel: Lab quantized to BINS levels per channel."""
    lab = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2LAB)
    q = (lab.astype(np.int32) * BINS) >> 8
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def histogram(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """log-probability of each cell, from the pixels' codes weighted by `weights` (same shape)."""
    # resampled masks overshoot 1 by rounding (1 - mask < 0); a NaN weight counts nothing
    w = np.clip(np.nan_to_num(np.asarray(weights, np.float64).ravel()), 0.0, None)
    h = np.bincount(codes.ravel(), weights=w, minlength=BINS ** 3)
    total = h.sum()
    h = gaussian_filter(h.reshape(BINS, BINS, BINS), SMOOTH, mode="nearest").ravel()
    h = h + PRIOR * max(total, 1.0) / (BINS ** 3) / 100.0
    return np.log(h / h.sum())


def log_ratio(codes: np.ndarray, log_fg: np.ndarray, log_bg: np.ndarray, clip: float = 6.0) -> np.ndarray:
    """log p(colour | object) - log p(colour | background) per pixel, clipped to +-clip."""
    r = (log_fg - log_bg)[codes]
    return np.clip(r, -clip, clip)
