"""The thorough verifier: learned features re-verify hard pairs within a time budget.

Learned features matched directly (mutual nearest neighbours) and checked as sv checks cost
milliseconds a pair once a photo's features are cached; LightGlue costs seconds per pair on a CPU
(milliseconds on a GPU). Both are second opinions for the pairs fast verification rejected, tried
best-first until the user's budget is spent (`within_budget`; engine.pipeline.thorough_stage).
A pair's outcome depends only on its two feature sets and the weights, never on the budget, the
order or the device: LightGlue is built without FlashAttention and half precision,
TF32 is off on CUDA, and point pruning starts at the same keypoint count on every device (kornia's
defaults differ per device), so CPU and CUDA differ by float rounding only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.features.extract import FeatureSet
from engine.features.learned import device_name, learned_kind, load_weights, require_torch
from engine.verify.correspond import EMPTY, Correspondences
from engine.verify.spatial import SVConfig, Verification, fit_homography, plausible_homography


@dataclass(frozen=True)
class ThoroughConfig:
    # wall-clock seconds for the whole slow stage (None: every candidate): on 2 CPU cores 90 s cover the
    # direct look, LightGlue's first turn and the tilted views of a 1,024 px query (BENCHMARKS.md)
    budget_s: float | None = 90.0
    kind: str | None = "xfeat"  # learned features + their LightGlue (engine.features.learned.KINDS); None: none
    long_side: int = 1024
    max_features: int = 2048  # per database image; the query gets up to QUERY_FEATURE_FACTOR x inside its region
    direct: bool = True  # first the learned features matched directly (mutual nearest neighbours, sv's check)
    mutual_similarity: float = 0.82  # learned features matched directly: mutual nearest neighbours this alike
    # learned matches (LightGlue's, mutual nearest neighbours) are denser than RootSIFT's ratio test's:
    # a little above sv's 8 (on dev, 8 lets other dogs and pasted composites through)
    min_inliers: int = 12
    filter_threshold: float = 0.1  # LightGlue's match confidence
    reach: int | None = None  # only images the initial ranking puts first (None: all, past the shortlist)
    lightglue_first: int = 30  # LightGlue's first turn, before the tilted views: the best this many unverified
    affine_views: str = "always"  # query-side tilted views: 'always', 'auto' (fast verification found nothing), 'off'
    max_tilt: int = 5  # ASIFT's tilt limit (cv2.AffineFeature): views up to ~78 degrees off the query's
    device: str | None = None  # None: CUDA when present, else the CPU


AFFINE_VIEWS = ("always", "auto", "off")

# LightGlue configurations of the shipped weights (as they were trained)
_LIGHTGLUE = {
    "xfeat": dict(input_dim=64, descriptor_dim=96, n_layers=6, num_heads=1, depth_confidence=-1,
                  width_confidence=0.95),
    "aliked": dict(input_dim=128, descriptor_dim=256, n_layers=9, num_heads=4, depth_confidence=0.95,
                   width_confidence=0.99),
}


def _renamed(state: dict, n_layers: int) -> dict:
    """The shipped checkpoints name layers self_attn.i / cross_attn.i, and xfeat's nest under
    'matcher.' next to an XFeat copy under 'extractor.'; kornia's LightGlue wants transformers.i.*."""
    out = {}
    for k, v in state.items():
        if k.startswith("extractor."):
            continue
        k = k[len("matcher."):] if k.startswith("matcher.") else k
        for i in range(n_layers):
            k = k.replace(f"self_attn.{i}.", f"transformers.{i}.self_attn.")
            k = k.replace(f"cross_attn.{i}.", f"transformers.{i}.cross_attn.")
        out[k] = v
    return out


class LightGlueMatcher:
    """matcher = LightGlueMatcher("xfeat"); m = matcher(q, q_size, d, d_size), sizes (w, h) in pixels."""

    PRUNE_MIN_KEYPOINTS = 1024  # one pruning threshold for every device (kornia: -1 on CPU, 1024 on CUDA)

    def __init__(self, kind: str, *, device: str | None = None, filter_threshold: float = 0.1):
        torch = require_torch()
        from kornia.feature.lightglue import LightGlue

        self.torch = torch
        self.device = torch.device(device_name(device))
        conf = _LIGHTGLUE[kind]
        self.model = LightGlue(features=None, flash=False, filter_threshold=filter_threshold, **conf)
        self.model.pruning_keypoint_thresholds = {k: self.PRUNE_MIN_KEYPOINTS for k in ("cpu", "cuda", "mps", "flash")}
        state = _renamed(load_weights(learned_kind(kind).matcher_weights), conf["n_layers"])
        result = self.model.load_state_dict(state, strict=False)
        params = dict(self.model.named_parameters())
        if [k for k in result.missing_keys if k in params] or result.unexpected_keys:
            raise RuntimeError(f"the {kind} LightGlue weights do not fit kornia's LightGlue: {result}")
        self.model.eval().to(self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

    def __call__(self, q: FeatureSet, q_size: tuple[int, int], d: FeatureSet, d_size: tuple[int, int]) -> Correspondences:
        torch = self.torch
        if len(q) < 2 or len(d) < 2:
            return EMPTY

        def side(f: FeatureSet, size):  # copies: a project's stored features are read-only memory maps
            return {"keypoints": torch.from_numpy(np.array(f.xy, np.float32))[None].to(self.device),
                    "descriptors": torch.from_numpy(np.array(f.desc, np.float32))[None].to(self.device),
                    "image_size": torch.tensor([size], dtype=torch.float32, device=self.device)}

        with torch.inference_mode():
            out = self.model({"image0": side(q, q_size), "image1": side(d, d_size)})
        m = out["matches"][0].cpu().numpy()
        s = out["scores"][0].float().cpu().numpy()
        # cost: 1 - LightGlue's confidence (lower is better, as every verifier's correspondences)
        return Correspondences(m[:, 0].astype(np.int32), m[:, 1].astype(np.int32), (1.0 - s).astype(np.float32))


def learned_verify(matcher: LightGlueMatcher, q: FeatureSet, q_size, q_bounds, d: FeatureSet, d_size,
                   config: ThoroughConfig = ThoroughConfig()) -> Verification:
    """One pair: LightGlue matches, a MAGSAC++ homography (sv's threshold), sv's plausibility check."""
    m = matcher(q, q_size, d, d_size)
    if len(m) < 4:
        return Verification(None, 0, m, np.zeros(len(m), bool))
    H, inl = fit_homography(q.xy[m.qi], np.asarray(d.xy)[m.di], SVConfig())
    if H is None or not plausible_homography(H, q_bounds):
        return Verification(None, 0, m, np.zeros(len(m), bool))
    return Verification(H, int(inl.sum()), m, inl)


def within_budget(candidates: Sequence[int], verify: Callable[[int], object], *, deadline: float | None,
                  cancel: CancelToken = NEVER, progress: Progress = NO_PROGRESS, stage: str = "thorough",
                  on_result: Callable[[int, object], None] | None = None) -> tuple[dict[int, object], list[int]]:
    """verify(i) for the candidates in order until done or the deadline (time.perf_counter) passes.

    The clock and the cancel token are checked between pairs (a pair takes at most seconds). Returns
    the results by id and the candidates not reached. Progress counts the candidates."""
    out: dict[int, object] = {}
    total = len(candidates)
    for k, image_id in enumerate(candidates):
        cancel.raise_if_set()
        if deadline is not None and time.perf_counter() >= deadline:
            return out, list(candidates[k:])
        progress(k, total, stage)
        out[image_id] = r = verify(image_id)
        if on_result is not None:
            on_result(image_id, r)
    progress(total, total, stage)
    return out, []
