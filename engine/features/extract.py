"""Local features: RootSIFT through OpenCV, at a configurable longer side, with a per-image cap.

Keypoints are returned in the pixel coordinates of the oriented image as loaded by
`engine.ingest.imageio.load_image`, whatever size they were detected at, so every later stage (regions,
homographies, labels) speaks one coordinate system.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    long_side: int = 1024  # images are downscaled (never upscaled) to this longer side for detection
    max_features: int = 2000  # per-image cap: the strongest responses are kept
    contrast_threshold: float = 0.03  # a little below OpenCV's 0.04: more features on weak texture
    kind: str = "rootsift"

    def to_json(self) -> dict:
        return {"long_side": self.long_side, "max_features": self.max_features,
                "contrast_threshold": self.contrast_threshold, "kind": self.kind}

    @classmethod
    def from_json(cls, d: dict | None) -> "FeatureConfig":
        d = d or {}
        return cls(**{k: d[k] for k in ("long_side", "max_features", "contrast_threshold", "kind") if k in d})


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """N local features: positions (x, y), scale (pixels), orientation (degrees), raw SIFT (uint8)."""

    xy: np.ndarray  # float32 (N, 2)
    scale: np.ndarray  # float32 (N,)
    angle: np.ndarray  # float32 (N,)
    desc: np.ndarray  # uint8 (N, 128)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @classmethod
    def empty(cls) -> "FeatureSet":
        return cls(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 128), np.uint8))

    def subset(self, keep: np.ndarray) -> "FeatureSet":
        return FeatureSet(self.xy[keep], self.scale[keep], self.angle[keep], self.desc[keep])

    def rootsift(self) -> np.ndarray:
        return rootsift(self.desc)


def rootsift(desc: np.ndarray) -> np.ndarray:
    """Arandjelovic & Zisserman's RootSIFT: L1-normalize, then square root (unit L2 norm)."""
    d = np.asarray(desc, dtype=np.float32)
    d = d / np.maximum(d.sum(axis=1, keepdims=True), 1e-6)
    return np.sqrt(d, out=d)


def descriptor_vectors(desc: np.ndarray, kind: str = "rootsift") -> np.ndarray:
    """The float vectors a kind's stored descriptors stand for: what the vocabulary, the signatures
    and dense matching work on (RootSIFT from raw SIFT; a learned kind's float descriptors as they are)."""
    if kind == "rootsift":
        return rootsift(desc)
    return np.asarray(desc, np.float32)


def _sift(config: FeatureConfig):
    return cv2.SIFT_create(nfeatures=config.max_features, contrastThreshold=config.contrast_threshold)


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def extract(image: np.ndarray, config: FeatureConfig = FeatureConfig()) -> FeatureSet:
    """Detect and describe features of one image (uint8 gray or RGB)."""
    return _detect(image, config, _sift(config))


def extract_affine(image: np.ndarray, config: FeatureConfig = FeatureConfig(), max_tilt: int = 5) -> FeatureSet:
    """RootSIFT of simulated views of the image tilted away up to `max_tilt` (ASIFT, cv2.AffineFeature),
    positions mapped back to the image: features a camera far off to the side would see. About 15x
    the features (each view keeps up to the cap) and their extraction time; for one query, not a
    collection. Scale and orientation are those measured in each view."""
    detector = cv2.AffineFeature_create(_sift(config), maxTilt=max_tilt)
    return _detect(image, config, detector, cap=False)


def _detect(image: np.ndarray, config: FeatureConfig, detector, cap: bool = True) -> FeatureSet:
    gray = to_gray(image)
    h, w = gray.shape[:2]
    scale = min(1.0, config.long_side / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    kps, desc = detector.detectAndCompute(gray, None)
    if desc is None or not kps:
        return FeatureSet.empty()
    # OpenCV may return a few more than nfeatures when responses tie: enforce the cap.
    if cap and len(kps) > config.max_features:
        order = np.argsort([-k.response for k in kps])[: config.max_features]
        kps = [kps[i] for i in order]
        desc = desc[order]
    pts = cv2.KeyPoint_convert(kps).astype(np.float32)
    # Back to the original image's pixel grid (centre convention: x_orig = (x + 0.5) / s - 0.5).
    xy = (pts + 0.5) / scale - 0.5
    size = np.array([k.size for k in kps], np.float32) / scale
    angle = np.array([k.angle for k in kps], np.float32)
    return FeatureSet(xy.astype(np.float32), size, angle, np.clip(np.rint(desc), 0, 255).astype(np.uint8))
