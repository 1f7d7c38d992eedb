"""The segment stage on real photos of 3D objects (dev3d, downscaled to 512 px): the refined outline
follows the object where the warped query region does not, a planar pair keeps its exact warp,
colour alone guesses an outline, and clicks fix a wrong one."""
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.base.regions import Region
from engine.base.types import Hit
from engine.features.extract import FeatureConfig, extract
from engine.formats.pixbench import load_pixbench
from engine.segment.outline import FEW, GUESSES, OutlineConfig, learn, load_photo, outline, outline_hit
from engine.verify.localize import predicted_region
from engine.verify.correspond import match_ratio
from engine.verify.spatial import SVConfig, spatial_verify

DEV3D = Path("/work/shared/bench/dev3d")
DEV = Path("/work/shared/bench/dev")
pytestmark = pytest.mark.skipif(not DEV3D.is_dir(), reason="bench data not here")

SIDE = 512  # the photos are decoded and described at this size: the test stays fast
CONFIG = OutlineConfig(long_side=SIDE)
FEATURES = FeatureConfig(long_side=SIDE)


def _pair(bench_dir: Path, q: int, name: str):
    """The query (photo, region), the positive (photo, label) and its name: photos at SIDE px."""
    bench = load_pixbench(bench_dir)
    i = bench.imlist.index(name)
    qpath, dpath = bench.image_path(bench.qimlist[q]), bench.image_path(name)
    return (load_photo(qpath, SIDE), bench.query_region(q)), (load_photo(dpath, SIDE), bench.label_region(q, i))


def _iou(region: Region | None, label: Region, photo) -> float:
    return 0.0 if region is None else region.iou(label, photo.height, photo.width)


def _verify(qphoto, qregion, dphoto):
    """sv on the pair, as engine.pipeline.dense_sv_pair does: the verification and its evidence."""
    def features(photo):
        fs = extract(photo.image, FEATURES)
        inv = np.linalg.inv(photo.to_grid)  # decoded pixels -> the photo's own
        return fs, fs.xy * (inv[0, 0], inv[1, 1]) + inv[:2, 2]

    qf, qxy = features(qphoto)
    inside = qregion.contains_points(qxy)
    df, dxy = features(dphoto)
    q, d = replace(qf.subset(inside), xy=qxy[inside]), replace(df, xy=dxy)
    corr = match_ratio(q.rootsift(), d.rootsift(), SVConfig().ratio)  # two photos, no index: the dense matches
    v = spatial_verify(q, d, corr, q_bounds=qregion.bounds, seeded=False)
    qi, di = v.verified_pairs
    evidence = {"inliers": v.inliers, "homography": None if v.H is None else v.H.tolist(),
                "homography_inliers": v.inliers, "putative": len(v.matches),
                "matches": np.hstack([qxy[inside][qi], dxy[di]]).tolist()}
    return v, evidence, dxy[di]


def test_the_cut_follows_a_turned_head_better_than_the_warp():
    # Ethiopian head, DSC_0007 -> DSC_0073: the head turned; the warped query region misses its silhouette
    (qphoto, qregion), (dphoto, label) = _pair(DEV3D, 10, "nerd_photogrammetry__ethiopian_head__DSC_0073")
    v, evidence, d_xy = _verify(qphoto, qregion, dphoto)
    assert v.H is not None and v.inliers >= 8  # premise: sv verifies the pair
    warped = predicted_region(qregion, v.H, d_xy, dphoto.width, dphoto.height)
    hit = Hit(1, "x.jpg", float(v.inliers), warped, evidence, "verified")
    out = outline_hit(learn(qphoto, qregion), hit, dphoto, config=CONFIG)
    assert out.evidence["outline"] == "cut"  # the pair is not planar: most matches are off sv's plane
    assert _iou(out.region, label, dphoto) > _iou(warped, label, dphoto) + 0.05
    assert _iou(out.region, label, dphoto) > 0.75
    assert out.region.bounds[2] > SIDE  # in the photo's own pixels (1024 px), not the decoded 512
    # a propagated hit (a carried region and where its correspondences landed) is refined the same way
    carried = Hit(1, "x.jpg", 12.0, warped, {"hop": 1, "points": d_xy.tolist()}, "propagated")
    out = outline_hit(learn(qphoto, qregion), carried, dphoto, config=CONFIG)
    assert out.evidence["outline"] == "cut" and _iou(out.region, label, dphoto) > _iou(warped, label, dphoto) + 0.05


def test_the_boundary_redrawn_at_the_photos_resolution_follows_the_head_closer():
    # the same turned head: the cut on its 160 px grid, then its boundary redrawn on the photo's pixels
    (qphoto, qregion), (dphoto, label) = _pair(DEV3D, 10, "nerd_photogrammetry__ethiopian_head__DSC_0073")
    v, evidence, d_xy = _verify(qphoto, qregion, dphoto)
    assert v.H is not None and v.inliers >= 8  # premise: sv verifies the pair
    hit = Hit(1, "x.jpg", float(v.inliers), predicted_region(qregion, v.H, d_xy, dphoto.width, dphoto.height),
              evidence, "verified")
    query = learn(qphoto, qregion)
    grid = outline_hit(query, hit, dphoto, config=replace(CONFIG, refine=replace(CONFIG.refine, snap_px=0)))
    fine = outline_hit(query, hit, dphoto, config=CONFIG)
    assert grid.evidence["outline"] == fine.evidence["outline"] == "cut"
    assert _iou(grid.region, label, dphoto) < 0.94  # premise: the grid's outline is off by a cell here and there
    assert _iou(fine.region, label, dphoto) > 0.94 and _iou(fine.region, label, dphoto) > _iou(grid.region, label, dphoto) + 0.005


def test_a_cut_of_a_band_keeps_the_whole_cuts_answer():
    """min_cut over a band along the optimal boundary, the rest fixed to the optimum, gives the
    optimum back (a band cut solves the same energy, only smaller)."""
    from engine.segment.colour import colour_codes, histogram, log_ratio
    from engine.segment.graphcut import contrast_weights, min_cut

    bench = load_pixbench(DEV3D)
    qphoto, qregion = load_photo(bench.image_path(bench.qimlist[10]), SIDE), bench.query_region(10)
    image = cv2.resize(qphoto.image, (128, 128), interpolation=cv2.INTER_AREA)
    truth = cv2.resize(qregion.to_mask(qphoto.height, qphoto.width).astype(np.uint8), (128, 128),
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    codes = colour_codes(image)
    z = log_ratio(codes, histogram(codes, truth), histogram(codes, ~truth))
    wr, wd = contrast_weights(image, 2.0)
    whole = min_cut(np.logaddexp(0, -z), np.logaddexp(0, z), wr, wd)
    assert 0.05 < whole.mean() < 0.95 and (whole & truth).sum() / (whole | truth).sum() > 0.6  # premise: the head, roughly
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    u8 = whole.astype(np.uint8)
    band = (cv2.dilate(u8, ring) > 0) & ~(cv2.erode(u8, ring) > 0)
    assert 0.02 < band.mean() < 0.5
    again = min_cut(np.logaddexp(0, -z), np.logaddexp(0, z), wr, wd, sure_fg=whole, active=band)
    assert (again != whole).sum() <= 2  # ties aside
    # started from a wrong labelling (shifted by 2 pixels), the band moves the boundary back
    shifted = np.roll(whole, 2, axis=1)
    u8 = shifted.astype(np.uint8)
    band = (cv2.dilate(u8, ring) > 0) & ~(cv2.erode(u8, ring) > 0)
    moved = min_cut(np.logaddexp(0, -z), np.logaddexp(0, z), wr, wd, sure_fg=shifted, active=band)
    assert (moved != whole).sum() < 0.5 * (shifted != whole).sum()


@pytest.mark.skipif(not DEV.is_dir(), reason="bench data not here")
def test_a_planar_pair_keeps_its_exact_warp_without_decoding():
    # graffiti wall, img1 -> img2: one homography explains most matches
    bench = load_pixbench(DEV)
    q = bench.qimlist.index("vgg_graf__graffiti_wall__img1")
    name = next(bench.imlist[i] for i in bench.positives(q))
    (qphoto, qregion), (dphoto, label) = _pair(DEV, q, name)
    v, evidence, d_xy = _verify(qphoto, qregion, dphoto)
    assert v.H is not None and v.inliers >= 0.5 * len(v.matches)  # premise: a planar pair
    warped = predicted_region(qregion, v.H, d_xy, dphoto.width, dphoto.height)
    hit = Hit(1, "x.jpg", float(v.inliers), warped, evidence, "verified")
    out = outline_hit(None, hit, None, config=CONFIG)  # no model, no photo: nothing is decoded
    assert out.evidence["outline"] == "warp" and out.region is warped
    assert _iou(out.region, label, dphoto) > 0.8


def test_colour_alone_guesses_an_outline_and_says_so():
    # no geometry at all (a pair no verifier accepts): the query's colours find the head on the same table
    (qphoto, qregion), (dphoto, label) = _pair(DEV3D, 10, "nerd_photogrammetry__ethiopian_head__DSC_0073")
    hit = Hit(1, "x.jpg", 0.3, None, {"initial_score": 0.3}, "shortlist")
    out = outline_hit(learn(qphoto, qregion), hit, dphoto, config=CONFIG)
    assert out.evidence["outline"] == "colour" and out.stage == "shortlist" and out.score == 0.3
    assert _iou(out.region, label, dphoto) > 0.5


def next_click(mask: np.ndarray, truth: np.ndarray):
    """Where a simulated annotator clicks: the most interior point of the largest part the outline
    gets wrong, and whether it is a miss (a click on the object) or a spill (on the background)."""
    best = None
    for err, inside in ((truth & ~mask, True), (mask & ~truth, False)):
        n, comp, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
        if n > 1:
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if best is None or stats[k, cv2.CC_STAT_AREA] > best[0]:
                d = cv2.distanceTransform(np.pad((comp == k).astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
                y, x = np.unravel_index(int(np.argmax(d)), d.shape)
                best = (stats[k, cv2.CC_STAT_AREA], (float(x), float(y)), inside)
    return best[1:]


def test_three_clicks_fix_a_wrong_outline():
    # Statue of Liberty: start from the upper half of the label's box; click where the outline is wrong
    (qphoto, qregion), (dphoto, label) = _pair(
        DEV3D, 11, "nerd_photogrammetry__statue_of_liberty__25557972781_9969807a0a_o")
    x1, y1, x2, y2 = label.bounds
    wrong = Region.from_bbox(x1, y1, x2, (y1 + y2) / 2)
    assert _iou(wrong, label, dphoto) < 0.3  # premise: the outline is wrong
    query = learn(qphoto, qregion)
    truth = label.to_mask(dphoto.height, dphoto.width)
    current, inside, outside, ious = wrong, [], [], []
    for _ in range(3):
        xy, on_object = next_click(current.to_mask(dphoto.height, dphoto.width), truth)
        (inside if on_object else outside).append(xy)
        out = outline(query, dphoto, current=current, inside=inside, outside=outside, config=CONFIG)
        assert out.stage == "hints"
        current = out.region
        ious.append(_iou(current, label, dphoto))
    assert ious[-1] > 0.8 and ious[0] > _iou(wrong, label, dphoto)


# -- the stage inside the search ------------------------------------------------------------------


def test_a_search_outlines_its_top_hits_and_planar_ones_keep_their_warp(indexed_project, small_collection):
    from engine.base.types import Query
    from engine.pipeline import SearchConfig, outline_one, prepare, search

    project = indexed_project
    rel, poly = small_collection.query("object1")
    query = Query(project.image_id(rel), Region.from_polygons([poly]))
    plain = search(project, query, config=replace(SearchConfig(), outline=OutlineConfig(top=0)))
    guesses = 5
    result = search(project, query, config=replace(SearchConfig(), outline=OutlineConfig(guesses=guesses)))
    assert len(result.hits) > guesses  # premise: hits beyond the guesses
    assert [h.image_id for h in result.hits] == [h.image_id for h in plain.hits]  # the stage reorders nothing
    assert all(h.region is None for h in plain.hits if h.stage != "verified")  # top 0: no stage, no guesses
    verified = [(a, b) for a, b in zip(plain.hits, result.hits) if b.stage == "verified"]
    assert len(verified) == 3 and all(a.evidence["putative"] > 0 for a, _ in verified)
    for before, after in verified:  # the generated objects are flat: one homography explains their matches
        assert before.evidence["homography_inliers"] >= 0.5 * before.evidence["putative"]
        assert after.evidence["outline"] == "warp" and after.region is before.region or after.region == before.region
    # the unverified among the first `guesses` get a guess, flagged, that changes neither stage nor score
    for before, after in zip(plain.hits[len(verified):guesses], result.hits[len(verified):guesses]):
        assert after.region is not None and after.evidence["outline"] in GUESSES
        assert (after.stage, after.score) == (before.stage, before.score) and after.stage != "verified"
    beyond = result.hits[guesses]
    assert beyond.region is None and "outline" not in beyond.evidence
    # opened later (the app's lazy path): the same kind of guess
    guessed = outline_one(prepare(project, query), beyond)
    assert guessed.evidence["outline"] in GUESSES and guessed.region is not None
    assert (guessed.stage, guessed.score, guessed.image_id) == (beyond.stage, beyond.score, beyond.image_id)


@pytest.mark.skipif(not DEV3D.is_dir(), reason="bench data not here")
def test_a_pair_with_too_few_inliers_to_verify_is_outlined_from_its_matches(tmp_path):
    # the Ethiopian head seen from its side (dev3d): sv matches it, too few to verify the photo; its
    # guess is carried by those matches ("few"); without any, colour alone guesses
    from engine.base.types import Query
    from engine.pipeline import SearchConfig, outline_one, prepare, sv_pair
    from engine.project import Project

    bench = load_pixbench(DEV3D)
    q, name = 10, "nerd_photogrammetry__ethiopian_head__DSC_0021"
    others = ("DSC_0036", "DSC_0043", "DSC_0050", "DSC_0065")  # more of the head, for a vocabulary
    root = tmp_path / "images"
    root.mkdir()
    for n in (bench.qimlist[q], name, *(f"nerd_photogrammetry__ethiopian_head__{o}" for o in others)):
        shutil.copy(bench.image_path(n), root / f"{n}.jpg")
    project = Project.create(tmp_path / "project")
    try:
        project.index_folder(root, graph=False)
        query = Query(project.image_id(f"{bench.qimlist[q]}.jpg"), bench.query_region(q))
        ctx = prepare(project, query)
        image_id = project.image_id(f"{name}.jpg")
        assert not sv_pair(ctx, image_id).verified  # premise: too few inliers to verify
        hit = Hit(image_id, f"{name}.jpg", 0.2, None, {"initial_score": 0.2}, "shortlist")
        few = outline_one(ctx, hit)
        assert few.evidence["outline"] == FEW and few.evidence["outline_inliers"] >= SearchConfig().pair_min_inliers
        assert (few.stage, few.score) == ("shortlist", 0.2)  # a guess: nothing verified, nothing moved
        nothing = replace(ctx, config=replace(ctx.config, pair_min_inliers=10 ** 6))  # no pair verifies
        colour = outline_one(nothing, hit)
        assert colour.evidence["outline"] == "colour"
        label = bench.label_region(q, bench.imlist.index(name))
        w, h = bench.image_size(name)
        assert few.region.iou(label, h, w) > 0.6 and colour.region is not None
    finally:
        project.close()


def test_photos_decode_reduced_and_outlines_come_back_in_the_photos_pixels():
    from engine.ingest.imageio import image_size, load_image

    path = DEV3D / "jpg" / "nerd_photogrammetry__ethiopian_head__DSC_0073.jpg"
    w, h = image_size(path)
    small = load_image(path, max_side=256)
    assert max(small.shape[:2]) == 256 and abs(small.shape[1] / small.shape[0] - w / h) < 0.02
    full = load_image(path)
    assert np.abs(cv2.resize(full, small.shape[1::-1], interpolation=cv2.INTER_AREA).astype(int)
                  - small.astype(int)).mean() < 6  # the same picture, smaller
    photo = load_photo(path, 256)
    label = load_pixbench(DEV3D).label_region(10, load_pixbench(DEV3D).imlist.index(path.stem))
    back = photo.region(photo.mask(label), 0.0)  # through the 256 px grid and back
    assert back.iou(label, h, w) > 0.9 and back.bounds[2] > 300


def test_nan_evidence_never_reaches_the_cut():
    """A NaN cost or colour weight (no evidence there) must not become a garbage capacity: the cut
    still follows the finite evidence around it, without a warning."""
    import warnings

    from engine.segment.colour import colour_codes, histogram
    from engine.segment.graphcut import contrast_weights, min_cut

    bench = load_pixbench(DEV3D)
    qphoto, qregion = load_photo(bench.image_path(bench.qimlist[0]), SIDE), bench.query_region(0)
    truth = cv2.resize(qregion.to_mask(qphoto.height, qphoto.width).astype(np.uint8),
                       qphoto.image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(truth)
    y0, y1 = max(ys.min() - (ys.max() - ys.min()) // 2, 0), ys.max() + (ys.max() - ys.min()) // 2
    x0, x1 = max(xs.min() - (xs.max() - xs.min()) // 2, 0), xs.max() + (xs.max() - xs.min()) // 2
    small = cv2.resize(truth[y0:y1, x0:x1], (96, 96), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert 0.05 < small.mean() < 0.95  # the premise: an object and a background to tell apart
    cost_fg = np.where(small, 0.0, 3.0)
    cost_bg = np.where(small, 3.0, 0.0)
    cost_fg[40:56, 40:56] = np.nan  # a hole of no evidence, and a NaN on the border
    cost_bg[0, :8] = np.nan
    image = cv2.resize(qphoto.image[y0:y1, x0:x1], (96, 96), interpolation=cv2.INTER_AREA)
    wr, wd = contrast_weights(image, 2.0)
    wr[5, 5] = np.nan
    weights = small.astype(np.float64)
    weights[:3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        label = min_cut(cost_fg, cost_bg, wr, wd)
        log_p = histogram(colour_codes(image), weights)
    assert np.isfinite(log_p).all()
    iou = (label & small).sum() / max((label | small).sum(), 1)
    assert iou > 0.9
