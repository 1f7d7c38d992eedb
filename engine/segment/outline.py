"""A hit's outline from what verification and propagation left in its evidence.

The bridge between the search's plain data (Regions and evidence in the photos' own pixels) and
refine.py's arrays: photos are decoded at most `long_side` pixels long (features are detected at
that size, so nothing finer is known), every point, homography and region is scaled onto that grid
and the resulting mask is traced back into a Region in the photo's pixels.

What each kind of hit gives (engine.pipeline and engine.propagate write these evidence keys):
- verified: "matches" ([xq, yq, xd, yd] rows), "homography" and "homography_inliers" when one
  homography was accepted, "putative" (ratio-test matches inside the query region). `is_planar`
  decides from these alone, before any decode, whether the verifier's warped region stands;
- propagated: its region (the prior) and "points" (where the carrying correspondences landed);
- anything else: nothing; the caller passes the putative matches' ends (`density`) for a guess.
The stage that produced the outline is written to the evidence as "outline".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from engine.base.regions import Region
from engine.base.types import Hit
from engine.ingest import imageio
from engine.segment.refine import Hints, QueryModel, RefineConfig, learn_query, planar, refine

# the stages, as written to a hit's evidence["outline"]
WARP, CUT, FEW, COLOUR, HINTS = "warp", "cut", "few", "colour", "hints"
# outlines of unverified hits, carried by matches too few to verify it or from colour alone: never a verification
GUESSES = (FEW, COLOUR)


@dataclass(frozen=True)
class OutlineConfig:
    top: int = 20  # verified and propagated hits among the first `top` of a search get their outline there (0: no stage)
    # unverified hits among the first `guesses` get a guessed outline, flagged "few" or "colour" (see
    # engine.pipeline.outline_one): the reviewer opening one gets it anyway, and most of dev3d's
    # positives are such hits (BENCHMARKS.md)
    guesses: int = 10
    long_side: int = 1024  # photos are decoded at most this long for refinement
    simplify_px: float = 0.5  # outline vertices kept within this many (decoded) pixels
    workers: int = 2
    refine: RefineConfig = field(default_factory=RefineConfig)


@dataclass(frozen=True, eq=False)
class Photo:
    """A photo decoded at most long_side pixels long: `image` (RGB) and its full size."""

    image: np.ndarray
    width: int
    height: int

    @property
    def to_grid(self) -> np.ndarray:
        """3x3 map from the photo's pixels to `image`'s (pixel centres stay centres)."""
        return _scaling(self.image.shape[1] / self.width, self.image.shape[0] / self.height)

    def points(self, xy) -> np.ndarray:
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        S = self.to_grid
        return p * (S[0, 0], S[1, 1]) + (S[0, 2], S[1, 2])

    def mask(self, region: Region | None) -> np.ndarray | None:
        if region is None or region.is_empty:
            return None
        return region.transform(self.to_grid).to_mask(*self.image.shape[:2])

    def region(self, mask: np.ndarray, simplify_px: float) -> Region:
        r = Region.from_mask(mask)
        if simplify_px > 0:
            r = r.simplify(simplify_px)
        return r.transform(np.linalg.inv(self.to_grid)).clip(self.width, self.height)


def _scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def load_photo(path, long_side: int) -> Photo:
    width, height = imageio.image_size(path)
    return Photo(imageio.load_image(path, max_side=long_side), width, height)


@dataclass(frozen=True, eq=False)
class QueryOutline:
    """The query's refinement model and the map from its photo's pixels to the model's."""

    model: QueryModel
    to_grid: np.ndarray

    def points(self, xy) -> np.ndarray:
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        return p * (self.to_grid[0, 0], self.to_grid[1, 1]) + self.to_grid[:2, 2]


def learn(photo: Photo, region: Region) -> QueryOutline:
    """The query's model (colour of its inside and outside, its mask and grey image for the carry)."""
    return QueryOutline(learn_query(photo.image, photo.mask(region)), photo.to_grid)


@dataclass(frozen=True, eq=False)
class Outlined:
    region: Region | None  # None: nothing was found (the caller keeps what it had)
    stage: str
    ms: float


def outline(query: QueryOutline, photo: Photo, *, matches=None, H=None, prior: Region | None = None, points=None,
            density=None, current: Region | None = None, inside=(), outside=(), box=None,
            config: OutlineConfig = OutlineConfig()) -> Outlined:
    """engine.segment.refine.refine on a decoded photo; everything in the photos' own pixels.

    matches: (query xy, photo xy) verified correspondences; H: their query -> photo homography;
    prior / points: a propagated region and where its correspondences landed; density: the photo
    ends of putative matches; current, inside, outside, box: the refine tool's outline, clicks and
    box."""
    t = time.perf_counter()
    S = photo.to_grid
    if matches is not None:
        matches = (query.points(matches[0]), photo.points(matches[1]))
    if H is not None:
        H = S @ np.asarray(H, np.float64) @ np.linalg.inv(query.to_grid)
    hints = None
    if current is not None or inside or outside or box is not None:
        b = None if box is None else tuple(photo.points(np.reshape(box, (2, 2))).ravel())
        hints = Hints(tuple(map(tuple, photo.points(inside))) if len(inside) else (),
                      tuple(map(tuple, photo.points(outside))) if len(outside) else (), b, photo.mask(current))
    out = refine(query.model, photo.image, matches=matches, H=H, prior=photo.mask(prior),
                 points=None if points is None else photo.points(points),
                 density=None if density is None else photo.points(density), hints=hints, config=config.refine)
    region = photo.region(out.mask, config.simplify_px) if out.mask.any() else None
    return Outlined(region if region is not None and not region.is_empty else None, out.stage,
                    1000.0 * (time.perf_counter() - t))


def outline_alone(photo: Photo, current: Region | None, *, inside=(), outside=(), box=None,
                  config: OutlineConfig = OutlineConfig()) -> Outlined:
    """The refine tool without a search (drawing a query): the colour models are learned from the
    photo itself, inside and outside the current outline, or the box when there is no outline yet."""
    start = current if current is not None and not current.is_empty else \
        (Region.from_bbox(*box) if box is not None else None)
    if start is None or start.clip(photo.width, photo.height).area < 1.0:
        raise ValueError("draw a rough outline or drag a box around the object first")
    return outline(learn(photo, start), photo, current=start, inside=inside, outside=outside, box=box, config=config)


# -- hits ---------------------------------------------------------------------------------------


def _array(rows, cols: int) -> np.ndarray:
    a = np.asarray(rows if rows else np.zeros((0, cols)), np.float64)
    return a.reshape(-1, cols) if a.size else np.zeros((0, cols))


def is_planar(evidence: dict, config: OutlineConfig = OutlineConfig()) -> bool:
    """The verifier's homography explains most putative matches: its warped region is the outline."""
    H = evidence.get("homography")
    return planar(None if H is None else np.asarray(H), int(evidence.get("homography_inliers", 0)),
                  int(evidence.get("putative", 0)), config.refine)


def needs_outline(hit: Hit, *, guess: bool = False) -> bool:
    """A verified or propagated hit whose outline is still the verifier's or the graph's geometry,
    or (guess) an unverified one without any, which colour alone can guess."""
    ev = hit.evidence or {}
    if "outline" in ev:
        return False
    if hit.stage in ("verified", "propagated"):
        return hit.region is not None or bool(ev.get("matches"))  # topo may verify without predicting a region
    return guess and hit.region is None and hit.stage in ("shortlist", "initial")


def outline_hit(query: QueryOutline | None, hit: Hit, photo: Photo | None, *, density=None,
                config: OutlineConfig = OutlineConfig()) -> Hit:
    """The hit with its object's outline and evidence["outline"] = the stage that drew it.

    A planar verified hit keeps its region (stage "warp"; query and photo may be None then). A hit
    with no region gets a colour guess (stage "colour") from the photo and `density` (the photo
    ends of the pair's putative matches); its stage and rank stay what they were."""
    ev = hit.evidence
    if hit.region is not None and hit.stage == "verified" and is_planar(ev, config):
        return replace(hit, evidence={**ev, "outline": WARP})
    if query is None or photo is None:
        raise ValueError("the query's model and the photo are needed to outline a non-planar hit")
    if "points" in ev and hit.region is not None:  # propagated: the carried region, where its matches landed
        out = outline(query, photo, prior=hit.region, points=_array(ev["points"], 2), config=config)
    elif ev.get("matches") and (hit.region is not None or hit.stage == "verified"):
        m = _array(ev["matches"], 4)
        H = ev.get("homography")
        out = outline(query, photo, matches=(m[:, :2], m[:, 2:4]), H=None if H is None else np.asarray(H),
                      prior=hit.region, config=config)
    elif hit.region is not None:
        out = outline(query, photo, prior=hit.region, config=config)
    else:
        out = outline(query, photo, density=density, config=config)
    if out.region is None:
        return replace(hit, evidence={**ev, "outline": out.stage, "outline_ms": round(out.ms, 1)}) \
            if hit.region is None else hit
    return replace(hit, region=out.region, evidence={**ev, "outline": out.stage, "outline_ms": round(out.ms, 1)})
