"""The search: query region -> features inside it -> shortlist -> verification -> ranked hits.

A method is a recipe over those stages (`METHODS`): how many images the initial search passes on
(all of them for the brute-force reference), which verifier checks each pair, and an optional
post-stage (diffusion, propagation) that reorders and adds hits. Every method returns hits in the
same shape, so the CLI, the bench and the desktop app treat them alike.
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from engine.base.atomic import atomic_write_bytes
from engine.base.errors import PixretError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import Region
from engine.base.types import Hit, PairResult, Query, SearchResult
from engine.features.extract import FeatureConfig, FeatureSet, descriptor_vectors, extract_affine, rootsift
from engine.features.learned import MissingExtra, config_key, extract_kind, learned_missing
from engine.index.asmk import aggregate
from engine.ingest import imageio
from engine.propagate import diffuse
from engine.segment.outline import (FEW, OutlineConfig, Outlined, Photo, QueryOutline, is_planar, learn,
                                    load_photo, needs_outline, outline, outline_hit)
from engine.verify.correspond import (DenseAppearance, QueryWords, WordAppearance, WordMatchConfig, match_mutual,
                                      match_ratio, match_words, match_words_many)
from engine.verify.localize import predicted_region
from engine.verify.spatial import SVConfig, evenly, spatial_verify
from engine.verify.thorough import AFFINE_VIEWS, LightGlueMatcher, ThoroughConfig, learned_verify, within_budget
from engine.verify.topological import TopoConfig, second_ratio, topo_verify

QUERY_FEATURE_FACTOR = 3  # at most 3x the per-image cap for the query: about the cap inside the region
LEARNED_QUERY_FACTOR = 2  # LightGlue's cost grows with the product of both sides' keypoints
MAX_EVIDENCE_MATCHES = 200


@dataclass(frozen=True)
class SearchConfig:
    shortlist: int = 100  # images verified after the initial search
    query_assign: int = 1  # visual words per query feature (multiple assignment) in the initial search
    match_assign: int = 5  # ... and for correspondences (a feature near a cell border is not lost)
    words: WordMatchConfig = WordMatchConfig()
    dense_top: int = 30  # safety net: a pair among the query's `dense_top` best by the initial search
    #   that does not verify on word correspondences is verified again on full descriptors (sv: if
    #   it passes the similarity pre-filter, SVConfig.min_consensus): half of a weak pair's true
    #   matches may share no visual word (2-3 such pairs per query on dev)
    sv: SVConfig = SVConfig()
    topo: TopoConfig = TopoConfig()
    pair_min_inliers: int = 5  # one-shot localization of a known positive may trust fewer inliers
    workers: int = 2  # verification threads (matching and MAGSAC release the GIL)
    outline: OutlineConfig = OutlineConfig()  # the segment stage: which hits get their object's own outline
    thorough: ThoroughConfig = ThoroughConfig()  # the thorough method's slow stage


@dataclass
class QueryContext:
    """Everything a verifier needs about the query, computed once per search."""

    project: object
    query: Query
    features: FeatureSet  # the query's features inside its region
    desc: np.ndarray  # their float descriptors (RootSIFT)
    exclude: set[int]  # the query image itself when it is in the collection
    config: SearchConfig
    words: QueryWords | None = None  # the features' words and signatures (correspondences from the index)
    dense: frozenset | bool = frozenset()  # image ids (or all: True) the safety net verifies densely
    kind: str = "rootsift"  # the project's feature type (engine.features.learned.FEATURE_KINDS)
    # image id -> (its stored features, its word correspondences), made for a batch of images at once
    # (`with_word_matches`) before their verification
    word_matches: dict = field(default_factory=dict, repr=False)
    # learned on first use, then kept for the search (and the refine tool's clicks on its hits)
    _outline: QueryOutline | None = field(default=None, repr=False)
    _photos: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def outline_query(self) -> QueryOutline:
        """The query's model for the segment stage (the query photo is decoded once per search)."""
        with self._lock:
            if self._outline is None:
                photo = load_photo(query_path(self.project, self.query)[0], self.config.outline.long_side)
                self._outline = learn(photo, self.query.region)
            return self._outline

    def photo(self, image_id: int) -> Photo:
        """A collection photo decoded for the segment stage; the last two are kept (refine clicks)."""
        with self._lock:
            photo = self._photos.get(image_id)
        if photo is None:
            photo = load_photo(self.project.abs_path(image_id), self.config.outline.long_side)
            with self._lock:
                self._photos = {**{k: v for k, v in list(self._photos.items())[-1:]}, image_id: photo}
        return photo


Verifier = Callable[[QueryContext, int], PairResult]


def sv_pair(ctx: QueryContext, image_id: int) -> PairResult:
    """Spatial verification of one database image on word correspondences; region = the warped
    query region. A pair the safety net covers (`ctx.dense`) that they do not verify is verified
    again on full descriptors."""
    d, corr = ctx.word_matches.get(image_id) or word_matches(ctx, [image_id])[image_id]
    guide = WordAppearance(ctx.words, d.word, d.sig, ctx.config.words.guided_hamming)
    v = spatial_verify(ctx.features, d, corr, ctx.config.sv, ctx.query.region.bounds, guide)
    if (v.H is None or v.inliers < ctx.config.sv.min_inliers) and safety_net(ctx, image_id, v.consensus):
        return dense_sv_pair(ctx, image_id)
    return sv_result(ctx, image_id, v, d.xy)


def word_matches(ctx: QueryContext, image_ids: list[int]) -> dict:
    """Each image's stored features and word correspondences with the query, all in one pass."""
    stored = [ctx.project.stored(i) for i in image_ids]
    corrs = match_words_many(ctx.words, [d.word for d in stored], [d.sig for d in stored], ctx.config.words)
    return dict(zip(image_ids, zip(stored, corrs)))


def with_word_matches(ctx: QueryContext, image_ids: list[int]) -> QueryContext:
    """The context with the word correspondences of these images made ahead (sv_pair reads them)."""
    return replace(ctx, word_matches=word_matches(ctx, image_ids))


def safety_net(ctx: QueryContext, image_id: int, consensus: int | None = None) -> bool:
    """Whether a pair the word correspondences did not verify is verified again on full descriptors:
    every one-shot pair (ctx.dense True), else the net's pairs that passed sv's pre-filter (given its
    `consensus`; topo has none)."""
    return ctx.dense is True or (image_id in ctx.dense
                                 and (consensus is None or consensus >= ctx.config.sv.min_consensus))


def dense_sv_pair(ctx: QueryContext, image_id: int) -> PairResult:
    """Spatial verification on dense ratio-test matches of the full descriptors: the reference."""
    d = ctx.project.features(image_id)
    corr = match_ratio(ctx.desc, descriptor_vectors(d.desc, ctx.kind), ctx.config.sv.ratio)
    v = spatial_verify(ctx.features, d, corr, ctx.config.sv, ctx.query.region.bounds, seeded=False)
    return sv_result(ctx, image_id, v, d.xy)


def sv_result(ctx: QueryContext, image_id: int, v, d_xy: np.ndarray, *, q_xy: np.ndarray | None = None,
              min_inliers: int | None = None, verifier: str | None = None) -> PairResult:
    """A verification's pair result: the warped query region and the evidence the segment stage
    reads. q_xy: the query features the verification matched (default: the context's);
    min_inliers: the floor (default: sv's); verifier: who verified it, for a thorough stage's look
    (ranked after fast verification's)."""
    floor = ctx.config.sv.min_inliers if min_inliers is None else min_inliers
    who = {} if verifier is None else {"verifier": verifier}
    if v.H is None or v.inliers < floor:
        return PairResult(False, float(v.inliers), None, {"inliers": int(v.inliers), **who})
    qi, di = v.verified_pairs
    d_xy = np.asarray(d_xy)[di]
    w, h = ctx.project.image_size(image_id)
    region = predicted_region(ctx.query.region, v.H, d_xy, w, h)
    pts = evenly(np.hstack([(ctx.features.xy if q_xy is None else q_xy)[qi], d_xy]), MAX_EVIDENCE_MATCHES)
    return PairResult(True, float(v.inliers), region,
                      {"inliers": int(v.inliers), **who, "homography": np.asarray(v.H).round(6).tolist(),
                       "homography_inliers": int(v.inliers), "putative": len(v.matches),
                       "matches": pts.round(1).tolist()})


def topo_pair(ctx: QueryContext, image_id: int) -> PairResult:
    """Topological verification of one database image (engine.verify.topological) seeded by the
    word correspondences sv uses, guided by words and signatures; a pair of the safety net they do
    not verify is verified again on dense seeds (`dense_topo_pair`). Against dense seeds everywhere:
    the same image mAP on dev and dev3d, better outlines on dev3d, 1.7x faster at 5k photos
    (BENCHMARKS.md, issue 20). It verifies at sv's `min_inliers`, so one-shot pair localization,
    which lowers that, trusts topo as far as sv."""
    d, corr = ctx.word_matches.get(image_id) or word_matches(ctx, [image_id])[image_id]
    config = replace(ctx.config.topo, min_inliers=ctx.config.sv.min_inliers)
    # sv's own verdict on these correspondences (its similarity pre-filter included) is topo's
    # image-wide patch: MAGSAC on every word correspondence would find chance planes in random texture
    v = spatial_verify(ctx.features, d, corr, ctx.config.sv, ctx.query.region.bounds)
    sv_accepts = v.H is not None and v.inliers >= ctx.config.sv.min_inliers
    strict = v.inlier_mask if sv_accepts else np.zeros(len(corr), bool)
    guide = WordAppearance(ctx.words, d.word, d.sig, config.guided_hamming)
    r = topo_verify(ctx.features, d, corr, ctx.query.region, ctx.project.image_size(image_id), guide, config, strict)
    if not r.verified and safety_net(ctx, image_id):
        return dense_topo_pair(ctx, image_id)
    return r


def dense_topo_pair(ctx: QueryContext, image_id: int) -> PairResult:
    """Topological verification on dense ratio-test seeds and descriptor-guided growth."""
    d = ctx.project.features(image_id)
    d_desc = descriptor_vectors(d.desc, ctx.kind)
    config = replace(ctx.config.topo, min_inliers=ctx.config.sv.min_inliers)
    corr = match_ratio(ctx.desc, d_desc, config.ratio)
    strict = second_ratio(ctx.desc, d_desc, corr.qi, corr.di) < ctx.config.sv.ratio \
        if config.ratio > ctx.config.sv.ratio else None
    guide = DenseAppearance(ctx.desc, d_desc, -config.guided_sim)
    return topo_verify(ctx.features, d, corr, ctx.query.region, ctx.project.image_size(image_id), guide, config,
                       strict)


def thorough_stage(ctx: QueryContext, order: list[int], verified: dict[int, PairResult], *,
                   progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER,
                   report: Callable[[dict[int, PairResult]], None] | None = None
                   ) -> tuple[dict[int, PairResult], dict[str, float]]:
    """The thorough method's slow stage, after fast verification: the images it did not verify are
    verified again, best first (the initial ranking's order), until the budget
    (`ctx.config.thorough`) is spent, cheapest look first: the shortlist by learned features
    matched directly (XFeat or ALIKED, the database's extracted on demand and cached; milliseconds a
    pair once cached); the best `lightglue_first` still unverified by a learned matcher (LightGlue;
    seconds a pair on a CPU); the shortlist by RootSIFT of tilted views of the query (extreme
    viewpoints; always, or only when fast verification found nothing, as asked); then LightGlue on
    the rest, beyond the shortlist too. Returns the newly verified pairs and the stage's figures;
    `report` gets the verified pairs so far each time one is added."""
    cfg = ctx.config.thorough
    t0 = time.perf_counter()
    deadline = None if cfg.budget_s is None else t0 + cfg.budget_s
    found: dict[int, PairResult] = {}
    stats = {"thorough_direct_pairs": 0.0, "thorough_affine_pairs": 0.0, "thorough_learned_pairs": 0.0,
             "thorough_extract_s": 0.0}
    if cfg.affine_views not in AFFINE_VIEWS:
        raise PixretError(f"affine views {cfg.affine_views!r}: choose one of {', '.join(AFFINE_VIEWS)}")

    def note(image_id: int, r: PairResult) -> None:
        if r.verified:
            found[image_id] = r
            if report is not None:
                report(found)

    def unverified(ids: list[int]) -> list[int]:
        return [i for i in ids if not (i in verified and verified[i].verified) and i not in found]

    def in_time() -> bool:
        return deadline is None or time.perf_counter() < deadline

    reach = order if cfg.reach is None else order[: cfg.reach]
    shortlist = reach[: ctx.config.shortlist]
    # (the query's learned features are the first cost: not paid with no time left)
    learned = LearnedPairs(ctx, cfg) if cfg.kind is not None and in_time() else None

    def run(stat: str, candidates: list[int], verify, stage: str) -> None:
        if candidates and in_time():
            tried, _ = within_budget(candidates, verify, deadline=deadline, cancel=cancel, progress=progress,
                                     stage=f"thorough: {stage}", on_result=note)
            stats[stat] += len(tried)

    if learned is not None and cfg.direct:
        run("thorough_direct_pairs", unverified(shortlist), learned.direct, f"{cfg.kind} features")
    first_turn = unverified(reach)[: cfg.lightglue_first] if learned is not None else []
    if learned is not None:
        run("thorough_learned_pairs", first_turn, learned.verify, f"{cfg.kind} + LightGlue")
    # tilted views are RootSIFT: they need a RootSIFT project's vocabulary
    if ctx.kind == "rootsift" and in_time() and (cfg.affine_views == "always" or (
            cfg.affine_views == "auto" and not any(r.verified for r in verified.values()))):
        actx = affine_context(ctx, cfg)
        run("thorough_affine_pairs", unverified(shortlist), lambda i: _marked(sv_pair(actx, i), "tilted views"),
            "tilted views")
    if learned is not None:
        tried = set(first_turn)
        run("thorough_learned_pairs", [i for i in unverified(reach) if i not in tried], learned.verify,
            f"{cfg.kind} + LightGlue")
        stats["thorough_extract_s"] = learned.extract_s
    stats["thorough"] = time.perf_counter() - t0
    return found, stats


def _marked(r: PairResult, verifier: str) -> PairResult:
    """A thorough stage's pair result says which verifier found it (ranked after fast verification's)."""
    return replace(r, evidence={**r.evidence, "verifier": verifier}) if r.verified else r


def affine_context(ctx: QueryContext, cfg: ThoroughConfig) -> QueryContext:
    """The query described by RootSIFT of simulated tilted views (ASIFT), for the fast verifier."""
    fs, _ = query_features(ctx.project, ctx.query, affine_tilt=cfg.max_tilt)
    desc = rootsift(fs.desc)
    # their own words; every pair the words miss is verified again on full descriptors (dense=True), as before
    return replace(ctx, features=fs, desc=desc, words=correspondence_words(ctx.project, desc, ctx.config.match_assign),
                   dense=True)


class LearnedPairs:
    """Verifies pairs on learned features: the query's extracted once, each database image's on
    demand (engine.pipeline.image_features, cached in the project). Two ways: `direct`, the features'
    nearest neighbours verified as sv verifies (milliseconds a pair once the photo's features are
    cached), and `verify`, LightGlue's matches (seconds a pair on a CPU)."""

    def __init__(self, ctx: QueryContext, cfg: ThoroughConfig):
        self.ctx, self.cfg = ctx, cfg
        own = ctx.project.feature_config
        # a project indexed with these learned features stores every photo's: read, never extracted again
        self.stored = own.kind == cfg.kind
        self.features = own if self.stored else \
            FeatureConfig(long_side=cfg.long_side, max_features=cfg.max_features, kind=cfg.kind)
        t = time.perf_counter()
        self.query, _ = query_features(ctx.project, ctx.query, self.features, factor=LEARNED_QUERY_FACTOR,
                                       device=cfg.device)
        self.query_desc = descriptor_vectors(self.query.desc, cfg.kind)
        self.query_size = imageio.image_size(query_path(ctx.project, ctx.query)[0])
        self.extract_s = time.perf_counter() - t

    def _image(self, image_id: int) -> FeatureSet:
        t = time.perf_counter()
        d = self.ctx.project.features(image_id) if self.stored else \
            image_features(self.ctx.project, image_id, self.features, self.cfg.device)
        self.extract_s += time.perf_counter() - t
        return d

    def direct(self, image_id: int) -> PairResult:
        """Mutual nearest neighbours of the learned descriptors, then sv's verification (its
        one-correspondence hypotheses and MAGSAC++), at the learned matches' floor."""
        ctx, d = self.ctx, self._image(image_id)
        corr = match_mutual(self.query_desc, descriptor_vectors(d.desc, self.cfg.kind), self.cfg.mutual_similarity)
        v = spatial_verify(self.query, d, corr, ctx.config.sv, ctx.query.region.bounds)
        return self._result(image_id, v, d, f"{self.cfg.kind}, matched directly")

    def verify(self, image_id: int) -> PairResult:
        """LightGlue's matches, a MAGSAC++ homography (engine.verify.thorough.learned_verify)."""
        d = self._image(image_id)
        matcher = _matcher(self.cfg.kind, self.cfg.device, self.cfg.filter_threshold)
        v = learned_verify(matcher, self.query, self.query_size, self.ctx.query.region.bounds, d,
                           self.ctx.project.image_size(image_id), self.cfg)
        return self._result(image_id, v, d, f"{self.cfg.kind} + LightGlue")

    def _result(self, image_id: int, v, d: FeatureSet, verifier: str) -> PairResult:
        return sv_result(self.ctx, image_id, v, d.xy, q_xy=self.query.xy, min_inliers=self.cfg.min_inliers,
                         verifier=verifier)


@lru_cache(maxsize=2)
def _matcher(kind: str, device: str | None, filter_threshold: float) -> LightGlueMatcher:
    return LightGlueMatcher(kind, device=device, filter_threshold=filter_threshold)


@dataclass(frozen=True)
class Method:
    verifier: Verifier
    shortlist: bool = True  # False: verify every image (brute force)
    post: Callable | None = None  # (ctx, ranked hits, initial scores) -> (hits, uncertainty)
    description: str = ""
    # (ctx, ranked hits, initial order, verified so far) -> more image ids to verify before `post`
    deepen: Callable | None = None
    thorough: bool = False  # then the slow stage (thorough_stage) within the budget
    # (ctx, image ids) -> ctx with what the verifier reads of those images made at once (cheaper
    # than one by one)
    prefetch: Callable | None = None


METHODS: dict[str, Method] = {
    "sv": Method(sv_pair, prefetch=with_word_matches,
                 description="ASMK shortlist + spatial verification (MAGSAC homography)"),
    "brute-sv": Method(dense_sv_pair, shortlist=False,
                       description="spatial verification of every database image (the SIFT+SP reference)"),
    "diffusion": Method(sv_pair, prefetch=with_word_matches, post=diffuse.diffusion_post,
                        description="sv, then the unverified rest ranked by diffusion on the kNN graph"),
    "hypergraph": Method(sv_pair, prefetch=with_word_matches, post=diffuse.hypergraph_post,
                         description="sv, then the query region propagated along verified hyperedges"),
    "topo": Method(topo_pair, prefetch=with_word_matches,
                   description="ASMK shortlist + topological verification (patches grown across views)"),
    # topo verifies more than sv on dev (image mAP 60.0 vs 58.5) and propagation gains as much on top
    "full": Method(topo_pair, prefetch=with_word_matches, post=diffuse.full_post,
                   deepen=diffuse.deepen_when_uncertain,
                   description="topo (deeper when uncertain), hypergraph propagation, diffusion for the rest"),
    "thorough": Method(sv_pair, prefetch=with_word_matches, thorough=True,
                       description="sv, then what it did not verify verified again within a time budget: by "
                                   "learned features matched directly, LightGlue on them (the 'learned' extra) "
                                   "and tilted views of the query"),
}

# What the app calls each method, and what it is for, in plain words (the technical name stays the
# CLI's `--method` and the tooltip's). One row per method; a method without a row shows its name.
METHOD_TITLES: dict[str, tuple[str, str]] = {
    "sv": ("Fast", "flat things seen from the front or at an angle: posters, paintings, labels, facades"),
    "topo": ("3D objects", "things with depth seen from different sides: statues, toys, shoes"),
    "hypergraph": ("Far views", "Fast, then photos reached only through other photos of the object"),
    "diffusion": ("Re-ranked", "Fast, then the unverified rest ordered by photo similarity"),
    "full": ("Deeper", "3D objects, verifying deeper when unsure, then Far views"),
    "thorough": ("Thorough", "Fast, then learned features and tilted views of the outline check again what Fast "
                             "did not verify, as long as the time budget lasts: extreme angles, little texture, "
                             "deformable things; slow without a GPU"),
    "brute-sv": ("Every photo", "Fast's check on every photo, not just the shortlist: the slow reference"),
}


def method_title(name: str) -> str:
    """The method's plain name ("Fast" for sv)."""
    return METHOD_TITLES.get(name, (name, ""))[0]


# -- query features ---------------------------------------------------------------------------


def query_path(project, query: Query) -> tuple[Path, set[int]]:
    """The query photo's file, and the image ids to leave out of results (the photo itself)."""
    if isinstance(query.image, (int, np.integer)):
        return project.abs_path(int(query.image)), {int(query.image)}
    path = Path(query.image)
    own = project.image_id(path)
    return path, set() if own is None else {own}


def query_features(project, query: Query, config: FeatureConfig | None = None, *, factor: float = QUERY_FEATURE_FACTOR,
                   affine_tilt: int = 0, device: str | None = None) -> tuple[FeatureSet, set[int]]:
    """The query image's features inside the region, and the image ids to leave out of results.

    config: the features to describe it with (default: the project's); affine_tilt > 0: RootSIFT of
    simulated tilted views too (engine.features.extract.extract_affine). Kept in the project's
    query cache (keyed by the file's path, size and mtime, the region and the feature settings), so
    searching the same region again, as an object search does, skips decoding and extraction."""
    path, exclude = query_path(project, query)
    if query.region.is_empty:
        raise PixretError(f"{path}: the query region is empty")
    w, h = imageio.image_size(path)
    if query.region.clip(w, h).area < 1.0:
        x1, y1, x2, y2 = query.region.bounds
        raise PixretError(f"{path}: the query region ({x1:g},{y1:g})-({x2:g},{y2:g}) lies outside the image, "
                          f"which is {w}x{h} pixels")
    cfg = config or project.feature_config
    key = config_key(cfg)
    if affine_tilt:
        key["affine_tilt"] = affine_tilt
    if factor != QUERY_FEATURE_FACTOR:
        key["query_factor"] = factor
    cache = _query_cache_file(project, path, query.region, key)
    fs = load_features(cache)
    if fs is not None:
        return fs, exclude
    image = imageio.load_image(path)
    # Aim for about the per-image cap inside the region: a small region gets a denser description.
    area_frac = min(1.0, query.region.area / float(image.shape[0] * image.shape[1]))
    dense = replace(cfg, max_features=int(cfg.max_features * min(factor, 1.0 / max(area_frac, 1e-6))))
    fs = extract_affine(image, dense, affine_tilt) if affine_tilt else extract_kind(image, dense, device)
    fs = fs.subset(query.region.contains_points(fs.xy))
    save_features(cache, fs)
    return fs, exclude


def load_features(path: Path | None) -> FeatureSet | None:
    """Features cached by save_features (float descriptors as float32), or None when absent or unreadable."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path) as z:
            desc = z["desc"] if z["desc"].dtype == np.uint8 else z["desc"].astype(np.float32)
            return FeatureSet(z["xy"], z["scale"], z["angle"], desc)
    except (OSError, ValueError, KeyError):
        return None  # unreadable: extracted again and rewritten


def save_features(path: Path | None, fs: FeatureSet, half: bool = False) -> None:
    """Cache features (half: float descriptors as float16, which changes no match measured)."""
    if path is None:
        return
    desc = fs.desc.astype(np.float16) if half and fs.desc.dtype != np.uint8 else fs.desc
    buf = io.BytesIO()
    np.savez(buf, xy=fs.xy, scale=fs.scale, angle=fs.angle, desc=desc)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only project still searches, only without the cache


QUERY_CACHE_FILES = 512  # the oldest query feature files beyond this many are dropped


def _query_cache_file(project, path: Path, region: Region, key: dict) -> Path | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None  # load_image reports the missing file
    key = json.dumps([str(Path(path).resolve()), st.st_size, st.st_mtime_ns, region.to_json(), key],
                     sort_keys=True)
    folder = project.folder / "cache" / "queries"
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
    else:
        files = sorted(folder.glob("*.npz"), key=lambda f: f.stat().st_mtime)
        for old in files[: max(0, len(files) - QUERY_CACHE_FILES)]:
            old.unlink(missing_ok=True)
    return folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def image_features(project, image_id: int, config: FeatureConfig, device: str | None = None) -> FeatureSet:
    """A collection image's features of another type than the project's (the thorough verifier's
    learned features), extracted on demand and kept in the project's cache folder, one file per image
    (a changed file or other settings replace it)."""
    path = project.abs_path(image_id)
    try:
        st = path.stat()
        key = json.dumps([str(path), st.st_size, st.st_mtime_ns, config_key(config)], sort_keys=True)
    except OSError:
        key = None  # load_image says what is wrong with it
    folder = project.folder / "cache" / f"features-{config.kind}"
    cache = folder / f"{image_id}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz" if key else None
    fs = load_features(cache)
    if fs is not None:
        return fs
    fs = extract_kind(imageio.load_image(path), config, device)
    if cache is not None:
        for stale in folder.glob(f"{image_id}-*.npz"):
            stale.unlink(missing_ok=True)
        save_features(cache, fs, half=True)
    return fs


def query_words(project, desc: np.ndarray, assign: int, words: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The query's aggregated visual words and their binary signatures (ASMK*). words: the
    features' nearest words if known already (at least `assign` columns, nearest first)."""
    quantizer = project.quantizer
    if words is None or words.shape[1] < assign:
        words = quantizer.assign(desc, assign)
    return aggregate(desc, words[:, :assign], quantizer.centroids)


def correspondence_words(project, desc: np.ndarray, assign: int) -> QueryWords:
    """The query's `assign` nearest words per feature and its signature in each (engine.verify.correspond)."""
    quantizer, embedding = project.quantizer, project.embedding
    words = quantizer.assign(desc, assign)
    return QueryWords.make(words, embedding.signatures(desc, words, quantizer.centroids), quantizer.k)


def initial_scores(project, desc: np.ndarray, assign: int, exclude: set[int]) -> dict[int, float]:
    """ASMK* similarity of the query region to every indexed image."""
    return project.index.score(*query_words(project, desc, assign), exclude=exclude)


# -- the search ---------------------------------------------------------------------------------


def prepare(project, query: Query, config: SearchConfig = SearchConfig()) -> QueryContext:
    """The query's features and everything verifiers need, computed once per query."""
    fs, exclude = query_features(project, query)
    return context_of(project, query, fs, exclude, config)


def context_of(project, query: Query, fs: FeatureSet, exclude: set[int], config: SearchConfig) -> QueryContext:
    """A query's context from its features (inside its region)."""
    kind = project.feature_config.kind
    desc = descriptor_vectors(fs.desc, kind)
    return QueryContext(project, query, fs, desc, exclude, config, correspondence_words(project, desc, config.match_assign),
                        kind=kind)


def search(project, query: Query, *, method: str = "sv", top_k: int = 100, config: SearchConfig = SearchConfig(),
           progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER,
           on_partial: Callable[[SearchResult], None] | None = None,
           context: QueryContext | None = None) -> SearchResult:
    """context: a `prepare`d query (the bench reuses it to localize pairs), else prepared here; its
    config is the search's."""
    if method not in METHODS:
        raise PixretError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    spec = METHODS[method]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ctx = context or prepare(project, query, config)
    config = ctx.config  # (the app passes only the context)
    if spec.thorough and ctx.config.thorough.kind is not None:  # before any work: say what to install
        missing = learned_missing(ctx.config.thorough.kind)
        if missing:
            raise MissingExtra(missing)
    exclude = ctx.exclude
    timings["query_features"] = time.perf_counter() - t0
    cancel.raise_if_set()

    t = time.perf_counter()
    ids, S = project.index.score_many([query_words(project, ctx.desc, config.query_assign,
                                                   ctx.words.words if ctx.words is not None else None)])
    keep = ~np.isin(ids, np.fromiter(exclude, np.int64, len(exclude)))
    ids, S = ids[keep], S[0, keep].astype(np.float64)
    order = ids[np.lexsort((ids, -S))].tolist()  # best first, ties by id
    scores = dict(zip(ids.tolist(), S.tolist()))
    if ctx.dense is not True:
        ctx = replace(ctx, dense=frozenset(order[:config.dense_top]))
    timings["initial"] = time.perf_counter() - t
    candidates = order[: config.shortlist] if spec.shortlist else order
    if on_partial is not None:
        on_partial(SearchResult(query, method, tuple(
            Hit(i, project.image_path(i), scores[i], None, {"initial_score": scores[i]}, "shortlist")
            for i in order[:top_k]), None, dict(timings)))

    t = time.perf_counter()
    verified = verify_many(ctx, candidates, spec.verifier, progress, cancel, spec.prefetch)
    timings["verify"] = time.perf_counter() - t

    # without a post-stage only the first top_k hits are kept: make no more (5,000 Hits cost 30 ms)
    limit = top_k or None if spec.post is None and spec.deepen is None else None
    hits = rank_hits(project, order, scores, verified, limit)
    if spec.deepen is not None:
        t = time.perf_counter()
        more = [i for i in spec.deepen(ctx, hits, order, verified) if i not in verified]
        if more:
            verified.update(verify_many(ctx, more, spec.verifier, progress, cancel, spec.prefetch))
            hits = rank_hits(project, order, scores, verified)
        timings["deepen"] = time.perf_counter() - t
    if spec.thorough:
        def report(found: dict[int, PairResult]) -> None:  # the ranking so far, fast verification's first
            if on_partial is not None:
                hits = rank_hits(project, order, scores, {**verified, **found})
                on_partial(SearchResult(query, method, tuple(hits[:top_k] if top_k else hits), None, dict(timings)))

        report({})
        found, stats = thorough_stage(ctx, order, verified, progress=progress, cancel=cancel, report=report)
        verified.update(found)
        hits = rank_hits(project, order, scores, verified)
        timings.update(stats)
    uncertainty = None
    if spec.post is not None:
        t = time.perf_counter()
        hits, uncertainty = spec.post(ctx, hits, scores, progress=progress, cancel=cancel)
        timings["post"] = time.perf_counter() - t
    if on_partial is not None and config.outline.top:  # the ranking is final: show it while outlines are drawn
        on_partial(SearchResult(query, method, tuple(hits[:top_k]) if top_k else tuple(hits), uncertainty,
                                dict(timings)))
    t = time.perf_counter()
    hits = outline_hits(lambda _: ctx, hits, config.outline, progress, cancel, spec.verifier)
    timings["outline"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return SearchResult(query, method, tuple(hits[:top_k]) if top_k else tuple(hits), uncertainty, timings)


def verify_many(ctx: QueryContext, candidates: list[int], verifier: Verifier, progress: Progress,
                cancel: CancelToken, prefetch: Callable | None = None) -> dict[int, PairResult]:
    """Verify candidates in a few threads; results keyed by image id. prefetch: the method's (see
    Method), run on each chunk of candidates before they are verified."""
    out: dict[int, PairResult] = {}
    if len(ctx.features) < 4:
        return out
    progress(0, len(candidates), "verifying")
    chunk = 32 if prefetch is not None else 8
    with ThreadPoolExecutor(max_workers=max(1, ctx.config.workers)) as pool:
        for start in range(0, len(candidates), chunk):
            cancel.raise_if_set()
            part = candidates[start:start + chunk]
            c = prefetch(ctx, part) if prefetch is not None else ctx
            for i, r in zip(part, pool.map(lambda i: verifier(c, i), part)):
                out[i] = r
            progress(min(start + chunk, len(candidates)), len(candidates), "verifying")
    return out


def rank_hits(project, order: list[int], scores: dict[int, float], verified: dict[int, PairResult],
              limit: int | None = None) -> list[Hit]:
    """Verified images first (by verifier score), then the rest by initial similarity (the first
    `limit` hits only, when given). The thorough stage's (evidence 'verifier') come after fast
    verification's, their inliers (of other matches) scaled into the band below its lowest score,
    so scores still fall along the ranking."""
    fast = [r.score for r in verified.values() if r.verified and "verifier" not in r.evidence]
    floor = min(fast, default=float(SVConfig().min_inliers))

    def score(r: PairResult) -> float:
        return floor * r.score / (r.score + 1.0) if "verifier" in r.evidence else r.score

    good = sorted((i for i, r in verified.items() if r.verified),
                  key=lambda i: ("verifier" in verified[i].evidence, -verified[i].score, i))
    hits = [Hit(i, project.image_path(i), score(verified[i]), verified[i].region,
                {**verified[i].evidence, "initial_score": scores.get(i, 0.0)}, "verified") for i in good]
    seen = set(good)
    for i in order:
        if limit is not None and len(hits) >= limit:
            break
        if i not in seen:
            stage = "shortlist" if i in verified else "initial"
            # unverified images score below any verified one: keep the initial order, in (0, 1)
            hits.append(Hit(i, project.image_path(i), float(scores[i]) / (1.0 + abs(scores[i])) * 0.999,
                            None, {"initial_score": scores[i],
                                   **({"inliers": verified[i].evidence.get("inliers", 0)} if i in verified else {})},
                            stage))
    return hits


# -- the segment stage ----------------------------------------------------------------------------


def putative_ends(ctx: QueryContext, image_id: int) -> np.ndarray:
    """Where the query's tentative correspondences (words and signatures) land in the image (a
    colour guess's prior)."""
    d = ctx.project.stored(image_id)
    return np.asarray(d.xy)[match_words(ctx.words, d.word, d.sig, ctx.config.words).di]


def weak_pair(ctx: QueryContext, image_id: int, verifier: Verifier) -> PairResult:
    """The pair verified as one-shot localization does: trusting `pair_min_inliers`, on full
    descriptors where the word correspondences fail. Geometry for an outline, never a verification."""
    sv = ctx.config.sv
    pair_ctx = replace(ctx, config=replace(ctx.config, sv=replace(sv, min_inliers=ctx.config.pair_min_inliers)),
                       dense=True)
    return verifier(pair_ctx, image_id)


def outline_one(ctx: QueryContext, hit: Hit, verifier: Verifier = sv_pair) -> Hit:
    """The hit with its object's outline (engine.segment.outline.outline_hit): a planar verified hit
    keeps its warped region, any other verified or propagated one is refined on its photo. One
    without a region gets a guess, flagged so, its stage, score and rank unchanged: carried by its
    own matches where `verifier` accepts the pair at `pair_min_inliers` (stage "few"), else from
    colour ("colour"). A photo that cannot be read leaves the hit as it was."""
    cfg = ctx.config.outline
    if hit.region is not None and hit.stage == "verified" and is_planar(hit.evidence, cfg):
        return outline_hit(None, hit, None, config=cfg)  # the warped region stands: nothing to decode
    try:
        photo = ctx.photo(hit.image_id)
    except PixretError:
        return hit
    guess = hit.region is None and not hit.evidence.get("matches") and len(ctx.features)
    if guess and len(ctx.features) >= 4:
        # geometry, however weak, before colour alone: on dev3d and its hold-out every pixel mAP
        # rises, mIoU +2.0 / -0.8 (BENCHMARKS.md, issue 14)
        t = time.perf_counter()
        r = weak_pair(ctx, hit.image_id, verifier)
        if r.region is not None and r.evidence.get("matches"):
            weak = Hit(hit.image_id, hit.path, r.score, r.region, r.evidence, "verified")
            out = outline_hit(ctx.outline_query(), weak, photo, config=cfg)
            return replace(hit, region=out.region, evidence={
                **hit.evidence, "outline": FEW, "outline_inliers": int(r.evidence.get("inliers", r.score)),
                "outline_ms": round(1000.0 * (time.perf_counter() - t), 1)})
    density = putative_ends(ctx, hit.image_id) if guess else None
    return outline_hit(ctx.outline_query(), hit, photo, density=density, config=cfg)


def outline_hits(context_of: Callable[[Hit], QueryContext], hits: list[Hit], config: OutlineConfig,
                 progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER, verifier: Verifier = sv_pair
                 ) -> list[Hit]:
    """The segment stage of a search: the verified and propagated hits among the first `config.top`
    get their object's outline, and unverified ones among the first `config.guesses` a guess
    (`outline_one`: flagged as such, never moved); `config.top` 0 switches the stage off, guesses
    included. context_of(hit): the query context its evidence refers to; verifier: the method's."""
    if not config.top:
        return hits
    todo = [k for k, h in enumerate(hits[: config.top]) if needs_outline(h)]
    todo += [k for k, h in enumerate(hits[: config.guesses]) if h.region is None and needs_outline(h, guess=True)]
    if not todo:
        return hits
    hits = list(hits)
    progress(0, len(todo), "outlining")
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        for n, (k, h) in enumerate(zip(todo, pool.map(lambda k: outline_one(context_of(hits[k]), hits[k], verifier), todo))):
            cancel.raise_if_set()
            hits[k] = h
            progress(n + 1, len(todo), "outlining")
    return hits


def refine_outline(ctx: QueryContext, image_id: int, current: Region | None, *, inside=(), outside=(),
                   box=None) -> Outlined:
    """The refine tool: the outline on image_id redrawn from the current one and the annotator's
    clicks inside / outside the object or a box around it (engine.segment, stage "hints")."""
    return outline(ctx.outline_query(), ctx.photo(image_id), current=current, inside=inside, outside=outside,
                   box=box, config=ctx.config.outline)
