"""Refinement: the query object's outline as it appears in one database image.

    model = learn_query(query_rgb, query_mask)                    # once per search
    if planar(H, on_plane, putative): keep the verifier's warped region (no decode, stage "warp")
    out = refine(model, db_rgb, matches=(q_xy, d_xy), H=H)        # a verified hit: stage "cut"
    out = refine(model, db_rgb, prior=mask, points=pts)           # a propagated hit: stage "cut"
    out = refine(model, db_rgb, density=putative_d_xy)            # no geometry at all: stage "colour"
    out = refine(model, db_rgb, hints=Hints(inside=((x, y),), current=mask))  # the refine tool: "hints"

Stages (Refined.stage says which one produced the outline):
- "warp" (decided by `planar`, before any decode): one homography explains most putative matches,
  the object is a plane for this pair and the verifier's warped query region is its exact outline
  (any resampling or colour step could only blur it);
- "cut": the query mask carried by the correspondences (global model, residual field, DIS flow:
  carry.py), or a region that propagation carried here, is the soft prior of a graph cut of the
  database crop, whose unaries also hold colour models of the query's inside and outside (both
  known exactly) and, after a first cut, of the crop's own labels; verified points are sure
  foreground. The cut works on a small grid; its boundary is then redrawn at the photo's
  resolution by a second cut of a narrow band along it (`_snap`; also for "colour" and "hints");
- "colour": no geometry: the cut over the whole image with colour and the putative matches'
  density as the only evidence, keeping the most object-like component. A guess: it verifies
  nothing and must never reorder results;
- "hints": the annotator's clicks / box constrain the cut (hard labels), starting from the
  current outline.

Images are RGB uint8 arrays, masks bool, points (n, 2) in the arrays' pixels, H 3x3 query ->
database. Callers working on reduced images scale their inputs (engine.segment.outline does).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.segment.carry import Frame, backward_map, flow_correct, frame_around, remap
from engine.segment.colour import colour_codes, histogram, log_ratio
from engine.segment.graphcut import contrast_weights, min_cut
from engine.verify.spatial import SVConfig, plausible_homography
from engine.verify.topological import TopoConfig, global_model, project


@dataclass(frozen=True)
class RefineConfig:
    work_px: int = 160  # longer side of the working grid (the cut's cost grows with its square)
    margin: float = 0.35  # crop around the carried mask: this fraction of its size on every side
    bandwidth: float = 0.15  # residual field's kernel, as a fraction of the carried mask's size
    flow: bool = True  # dense DIS flow after the sparse carry
    planar_ratio: float = 0.5  # homography inliers / putative matches at which the warp is kept
    prior_blur: float = 0.06  # the carried mask's (or user's outline's) boundary is uncertain by this x its size
    prior_in: float = 3.0  # cap of the prior log-odds deep inside the carried mask ...
    prior_out: float = 6.0  # ... and far outside it
    colour_weight: float = 1.0  # weight of the colour log-likelihood ratio in the unaries
    colour_clip: float = 4.0  # cap of the colour log-likelihood ratio
    smooth: float = 2.0  # Potts weight between similar neighbours
    rounds: int = 2  # cuts; after each, the database crop's own colour models are relearned
    point_radius: int = 1  # grid cells around each verified point fixed to foreground
    min_points: int = 3  # fewer correspondences than this (and no H): no carry
    density: float = 2.0  # colour stage: weight of the putative matches' density in the prior
    flat_prior: float = 0.3  # colour stage: prior probability of the object
    click_reach: float = 0.08  # a click raises the prior around it over this fraction of the frame ...
    click_weight: float = 4.0  # ... by up to this much log-odds, and the outline's prior fades there
    snap_px: int = 400  # the grid's boundary is redrawn on the frame at up to this many pixels (0: not)
    snap_band: float = 2.0  # ... within this many grid cells of it
    snap_prior: float = 3.0  # log-odds for the grid's label at the band's edges
    snap_stages: tuple = ("cut", "hints", "colour")  # the stages whose outline is redrawn so


@dataclass(frozen=True)
class Hints:
    """The annotator's corrections, in database image pixels: clicks on the object and on the
    background, a box holding the object (everything outside it is background), and the outline
    to start from (bool mask, full size)."""

    inside: tuple = ()
    outside: tuple = ()
    box: tuple | None = None
    current: np.ndarray | None = None

    @property
    def any(self) -> bool:
        return bool(self.inside or self.outside or self.box is not None or self.current is not None)


@dataclass(frozen=True, eq=False)
class QueryModel:
    """What refinement needs of the query, learned once per search."""

    image: np.ndarray  # RGB
    gray: np.ndarray
    mask: np.ndarray  # float32 (h, w), 1 inside the query region
    box: tuple[float, float, float, float]
    log_fg: np.ndarray  # colour histogram (log-probabilities) of the inside ...
    log_bg: np.ndarray  # ... and of the outside
    trust: float  # how well colour alone tells the query's inside from its outside, in [0, 1]


@dataclass(frozen=True, eq=False)
class Refined:
    mask: np.ndarray  # bool (height, width) of the database image
    stage: str  # "cut" | "colour" | "hints"
    info: dict = field(default_factory=dict)


def learn_query(image: np.ndarray, mask: np.ndarray, near: float = 0.5, far: float = 0.5) -> QueryModel:
    """Colour models of the query's inside and of its outside: within `near` times the object's size
    around it, mixed (weight `far`) with the whole photo's outside (a database photo of the same
    scene shows more of it). `trust` = balanced accuracy of the colour ratio's sign on the query
    itself, mapped to [0, 1] (0: colour says nothing, as for a rectangle cut out of a textured wall)."""
    m = np.asarray(mask) > 0
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        raise ValueError("empty query mask")
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    h, w = m.shape
    f = frame_around(box, w, h, near, 256)
    codes = colour_codes(f.sample(image))
    inside = f.sample(m.astype(np.float32), cv2.INTER_AREA)
    log_fg = histogram(codes, inside)
    log_bg = histogram(codes, 1.0 - inside)
    if far > 0:
        whole = frame_around((0, 0, w - 1, h - 1), w, h, 0.0, 256)
        out = 1.0 - whole.sample(m.astype(np.float32), cv2.INTER_AREA)
        log_bg = np.logaddexp(np.log(1 - far) + log_bg,
                              np.log(far) + histogram(colour_codes(whole.sample(image)), out))
    r = log_ratio(codes, log_fg, log_bg)
    fg, bg = inside > 0.5, inside < 0.5
    acc = 0.5 * ((r[fg] > 0).mean() if fg.any() else 0.5) + 0.5 * ((r[bg] < 0).mean() if bg.any() else 0.5)
    trust = float(np.clip(2.0 * acc - 1.0, 0.0, 1.0))
    return QueryModel(image, cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), m.astype(np.float32), box,
                      log_fg, log_bg, trust)


def planar(H: np.ndarray | None, on_plane: int, putative: int, config: RefineConfig = RefineConfig()) -> bool:
    """One homography explains at least `planar_ratio` of the putative matches: the object is a plane
    for this pair, its warped outline is exact and nothing needs refining (nor decoding).

    3D objects leave many correct matches off any single plane: on dev every planar pair and 51 of
    54 composites pass, 19 of dev3d's 24 verified pairs do not."""
    return H is not None and on_plane >= max(config.planar_ratio * putative, 1)


def carry_model(q_xy: np.ndarray, d_xy: np.ndarray, H: np.ndarray | None, box, config: RefineConfig = RefineConfig()
                ) -> np.ndarray | None:
    """The 3x3 query -> database model that carries the mask: the verifier's homography, or the
    affine where its perspective is not significant, or the affine of the correspondences without
    one (engine.verify.topological.global_model); None unless plausible on the query box."""
    if H is None and len(q_xy) < config.min_points:
        return None
    M, _ = global_model(np.asarray(q_xy, np.float64).reshape(-1, 2), np.asarray(d_xy, np.float64).reshape(-1, 2),
                        None if H is None else np.asarray(H, np.float64), SVConfig().threshold_px,
                        TopoConfig().perspective_alpha)
    return M if M is not None and plausible_homography(M, box) else None


# -- helpers ----------------------------------------------------------------------------------


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _distance_logit(inside: np.ndarray, sigma: float, cap_in: float, cap_out: float) -> np.ndarray:
    """Prior log-odds of the object from a carried mask: the signed distance to its boundary in
    units of sigma (positive inside), capped: the carry may be off by a few sigma, not by the crop."""
    m = inside.astype(np.uint8)
    if not (1 - m).any():  # all inside: distanceTransform has no zero to measure from
        return np.full(m.shape, cap_in, np.float32)
    d_in = cv2.distanceTransform(m, cv2.DIST_L2, 3) if m.any() else np.zeros(m.shape, np.float32)
    d_out = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return np.clip((d_in - d_out) / sigma, -cap_out, cap_in).astype(np.float32)


def _fill_holes(mask: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """The mask with its holes filled, except those touching `keep` (background the user clicked)."""
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, cnts, -1, 1, thickness=cv2.FILLED)
    out = out.astype(bool)
    if keep is not None and keep.any():
        n, holes = cv2.connectedComponents((out & ~mask).astype(np.uint8), connectivity=4)
        clicked = np.unique(holes[keep & (holes > 0)])
        out &= ~np.isin(holes, clicked[clicked > 0])
    return out


def _keep_components(label: np.ndarray, score: np.ndarray, min_frac: float) -> np.ndarray:
    """Connected components whose summed score is positive and at least min_frac of the best's."""
    n, comp = cv2.connectedComponents(label.astype(np.uint8), connectivity=8)
    if n <= 2:
        return label
    s = np.bincount(comp.ravel(), weights=score.ravel(), minlength=n)[1:]
    if s.max() <= 0:
        return np.zeros_like(label)
    keep = np.r_[False, (s > 0) & (s >= min_frac * s.max())]
    return keep[comp]


def _disks(shape, centres: np.ndarray, radius: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for c in centres:
        cv2.circle(out, (int(c[0]), int(c[1])), radius, 1, -1)
    return out.astype(bool)


def _box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _cut(crop_rgb: np.ndarray, prior_logit: np.ndarray, model: QueryModel, config: RefineConfig,
         sure_fg: np.ndarray, sure_bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rounds of graph cut on the crop: (bool labelling, the query colour log-ratio used)."""
    codes = colour_codes(crop_rgb)
    lr_q = log_ratio(codes, model.log_fg, model.log_bg, config.colour_clip)
    wr, wd = contrast_weights(cv2.GaussianBlur(crop_rgb, (3, 3), 0), config.smooth)
    weight = config.colour_weight * (0.25 + 0.75 * model.trust)  # colour counts as far as it told the query apart
    lr = lr_q
    label = prior_logit > 0
    fg = sure_fg if sure_fg.any() else None
    bg = sure_bg if sure_bg.any() else None
    for k in range(config.rounds):
        z = prior_logit + weight * lr
        label = min_cut(_softplus(-z), _softplus(z), wr, wd, fg, bg)
        if k + 1 < config.rounds and label.any() and (~label).any():
            # the crop's own colours, as this cut labelled them, next to the query's
            lr_d = log_ratio(codes, histogram(codes, label), histogram(codes, ~label), config.colour_clip)
            lr = 0.5 * (lr_q + lr_d)
    return label, lr_q


# -- refine -----------------------------------------------------------------------------------


def refine(model: QueryModel, image: np.ndarray, *, matches: tuple[np.ndarray, np.ndarray] | None = None,
           H: np.ndarray | None = None, prior: np.ndarray | None = None, points: np.ndarray | None = None,
           density: np.ndarray | None = None, hints: Hints | None = None,
           config: RefineConfig = RefineConfig()) -> Refined:
    """The object's outline in `image` (RGB).

    matches: verified correspondences (query pixels, image pixels), (n, 2) each; H: the verifier's
    query -> image homography (None for topological verification's piecewise models): they carry
    the query mask. prior: a bool mask of where the object is believed to be (a region propagation
    carried here), used when nothing is carried; points: image points on the object (sure
    foreground where the prior holds). density: the image ends of the pair's putative matches (the
    colour stage's prior). hints: the annotator's constraints (the refine tool)."""
    height, width = image.shape[:2]
    q_xy, d_xy = (np.zeros((0, 2)), np.zeros((0, 2))) if matches is None else \
        (np.asarray(matches[0], np.float64).reshape(-1, 2), np.asarray(matches[1], np.float64).reshape(-1, 2))
    hints = hints or Hints()
    info: dict = {"trust": round(model.trust, 3)}
    current = hints.current if hints.current is not None and hints.current.any() else None
    if prior is not None and not prior.any():
        prior = None

    # 1. what the outline starts from: the user's outline, a carried query mask, a given prior, or nothing
    M = None if current is not None else carry_model(q_xy, d_xy, H, model.box, config)
    box = None
    if current is not None:
        box, stage = _box_of(current), "hints"
    elif M is not None:
        b = model.box
        c = project(M, np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]))
        if np.all(np.isfinite(c)):
            box = (max(c[:, 0].min(), 0), max(c[:, 1].min(), 0), min(c[:, 0].max(), width - 1),
                   min(c[:, 1].max(), height - 1))
        if box is None or box[2] <= box[0] or box[3] <= box[1]:
            M, box = None, None
    stage = "hints" if current is not None else "cut"
    if box is None and prior is not None:
        box = _box_of(prior)
    if box is None:
        stage, box = "colour", (0, 0, width - 1, height - 1)
    if hints.box is not None:
        box = tuple(hints.box)
    elif hints.inside or hints.outside:  # the frame must hold every click
        pts = np.asarray(list(hints.inside) + list(hints.outside), float).reshape(-1, 2)
        box = (min(box[0], pts[:, 0].min()), min(box[1], pts[:, 1].min()),
               max(box[2], pts[:, 0].max()), max(box[3], pts[:, 1].max()))
    if hints.any:
        stage = "hints"

    # 2. the working frame
    frame = frame_around(box, width, height, 0.0 if stage == "colour" else config.margin, config.work_px)
    gh, gw = frame.shape
    crop = frame.sample(image)
    size = float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0)))  # image pixels

    # 3. the prior: the user's outline, a carried mask or a given one, else flat
    start = None
    if current is not None:
        start = frame.sample(current.astype(np.float32))
    elif M is not None:
        mx, my = backward_map(frame, M, q_xy, d_xy, config.bandwidth * size)
        start = remap(model.mask, mx, my)
        if config.flow:
            fl = flow_correct(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), remap(model.gray, mx, my), start > 0.5)
            if fl is not None:
                start = remap(start, *fl)
                info["flow"] = True
    elif prior is not None:
        start = frame.sample(prior.astype(np.float32))
    if start is not None and (start > 0.5).any():
        sigma = max(config.prior_blur * size * frame.scale, 0.5)
        prior_logit = _distance_logit(start > 0.5, sigma, config.prior_in, config.prior_out)
    else:
        start = None
        p0 = config.flat_prior
        prior_logit = np.full((gh, gw), np.log(p0 / (1 - p0)), np.float32)
        if density is not None and len(density) and config.density > 0:
            # putative matches cluster on the object more than false ones do anywhere else
            g = frame.to_grid(density)
            dens = np.zeros((gh, gw), np.float32)
            np.add.at(dens, (g[:, 1], g[:, 0]), 1.0)
            dens = cv2.GaussianBlur(dens, (0, 0), 0.06 * max(gh, gw))
            prior_logit += config.density * (dens / max(float(dens.max()), 1e-6) - 0.5)

    # 4. hard constraints: points on the carried mask, the user's clicks and box
    sure_fg = np.zeros((gh, gw), bool)
    sure_bg = np.zeros((gh, gw), bool)
    on_object = d_xy if M is not None else (np.asarray(points, np.float64).reshape(-1, 2) if points is not None
                                            else np.zeros((0, 2)))
    if stage == "cut" and start is not None and len(on_object):
        sure_fg |= _disks((gh, gw), frame.to_grid(on_object), config.point_radius) & (start > 0.5)
    click = max(2, max(gh, gw) // 40)
    if hints.inside:
        sure_fg |= _disks((gh, gw), frame.to_grid(np.asarray(hints.inside, float)), click)
    if hints.outside:
        sure_bg |= _disks((gh, gw), frame.to_grid(np.asarray(hints.outside, float)), click)
    if hints.box is not None:
        # the frame is the box grown by the margin: its ring outside the box is background
        b = frame.to_grid(np.array([[hints.box[0], hints.box[1]], [hints.box[2], hints.box[3]]], float))
        ring = np.ones((gh, gw), bool)
        ring[b[0, 1]:b[1, 1] + 1, b[0, 0]:b[1, 0] + 1] = False
        sure_bg |= ring
    if hints.inside or hints.outside:
        # a click speaks for its neighbourhood too (the cut's colours decide how far)
        bump = np.zeros((gh, gw), np.float32)
        near = np.zeros((gh, gw), np.float32)
        reach = max(config.click_reach * max(gh, gw), 1.0)
        for clicks, sign in ((hints.inside, 1.0), (hints.outside, -1.0)):
            for c in frame.to_grid(np.asarray(clicks, float).reshape(-1, 2)):
                dot = np.zeros((gh, gw), np.float32)
                dot[c[1], c[0]] = 1.0
                g = cv2.GaussianBlur(dot, (0, 0), reach)
                g /= max(float(g.max()), 1e-9)
                bump += sign * g
                near = np.maximum(near, g)
        if current is not None:
            # the outline is wrong where the user clicks and right elsewhere: a click changes its
            # neighbourhood, not the whole outline (on dev3d's 82 pairs, 3 clicks: IoU 40 -> 72
            # this way, 40 -> 68 holding the whole outline loosely; 16 % vs 22 % of clicks made it worse)
            prior_logit = (1.0 - near) * prior_logit
        prior_logit = prior_logit + config.click_weight * bump
    sure_bg &= ~sure_fg

    # 5. cut, clean, back to full size
    label, lr_q = _cut(crop, prior_logit, model, config, sure_fg, sure_bg)
    if stage == "colour":
        label = _keep_components(label, lr_q + prior_logit, min_frac=1.0)
    else:
        label = _keep_components(label, prior_logit + 10.0 * sure_fg, min_frac=0.1)
    label = _fill_holes(label, keep=sure_bg)
    if not label.any() and current is not None:  # the cut let go of everything: keep the outline, less the "no" clicks
        label = (start > 0.5) & ~sure_bg
    info["frame"] = (frame.x0, frame.y0, frame.x1, frame.y1, round(frame.scale, 3))
    if config.snap_px and stage in config.snap_stages and label.any():
        return Refined(_snap(image, frame, label, model, config), stage, info)
    return Refined(frame.paste(label.astype(np.float32), height, width), stage, info)


def _snap(image: np.ndarray, frame: Frame, label: np.ndarray, model: QueryModel, config: RefineConfig) -> np.ndarray:
    """The grid's labelling back at the photo's resolution (at most snap_px across the frame), its
    boundary redrawn there: a graph cut of the band within snap_band grid cells of it, the rest
    fixed. The band's colour models come from the labelling's own inside and outside next to the
    query's, so the boundary settles on the edge between them the grid was too coarse to see."""
    height, width = image.shape[:2]
    cw, ch = frame.x1 - frame.x0, frame.y1 - frame.y0
    fine = min(1.0, config.snap_px / max(cw, ch))
    fw, fh = max(1, int(round(cw * fine))), max(1, int(round(ch * fine)))
    crop = image[frame.y0:frame.y1, frame.x0:frame.x1]
    if fine < 1.0:
        crop = cv2.resize(crop, (fw, fh), interpolation=cv2.INTER_AREA)
    up = cv2.resize(label.astype(np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR) >= 0.5
    r = max(2, int(round(config.snap_band * fine / frame.scale)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    u8 = up.astype(np.uint8)
    band = (cv2.dilate(u8, disk) > 0) & ~(cv2.erode(u8, disk, borderValue=1) > 0)
    codes = colour_codes(crop)
    inside, outside = up & ~band, ~up & ~band
    if band.any() and inside.any() and outside.any():
        lr = 0.5 * (log_ratio(codes, model.log_fg, model.log_bg, config.colour_clip)
                    + log_ratio(codes, histogram(codes, inside), histogram(codes, outside), config.colour_clip))
        prior = _distance_logit(up, r / config.snap_prior, config.snap_prior, config.snap_prior)
        z = prior + config.colour_weight * lr
        wr, wd = contrast_weights(cv2.GaussianBlur(crop, (3, 3), 0), config.smooth)
        up = _fill_holes(min_cut(_softplus(-z), _softplus(z), wr, wd, sure_fg=up, active=band))
    out = np.zeros((height, width), bool)
    out[frame.y0:frame.y1, frame.x0:frame.x1] = cv2.resize(up.astype(np.float32), (cw, ch),
                                                           interpolation=cv2.INTER_LINEAR) >= 0.5
    return out
