"""Topological verification on generated pairs whose right answer is known.

The object is a textured card (noise at three scales plus random discs, boxes and strokes, so SIFT
finds plenty). "Two wings": its left and right halves are warped by two different homographies
that agree on the fold between them (a building corner, an open book) and pasted on an unrelated
background; one homography can explain only one wing.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from engine.base.regions import Region
from engine.features.extract import FeatureSet, extract
from engine.verify.localize import predicted_region
from engine.verify.correspond import DenseAppearance, match_ratio
from engine.verify.spatial import SVConfig, spatial_verify
from engine.verify.topological import MIN_TESTED, TopoConfig, find_patches, global_model
from engine.verify.topological import topo_verify as topo_on


def topo_verify(q, q_desc, d, d_desc, region, size, config=TopoConfig()):
    """Topological verification on dense ratio-test seeds and descriptor-guided growth."""
    seeds = match_ratio(q_desc, d_desc, config.ratio)
    return topo_on(q, d, seeds, region, size, DenseAppearance(q_desc, d_desc, -config.guided_sim), config)

QW, QH = 640, 480  # query image
DW, DH = 800, 600  # database image
CARD = [(80, 60), (560, 60), (560, 420), (80, 420)]  # the query region: the object's outline
LEFT = [(80, 60), (320, 60), (320, 420), (80, 420)]
RIGHT = [(320, 60), (560, 60), (560, 420), (320, 420)]
FOLD_TOP, FOLD_BOTTOM = (380, 90), (380, 520)  # where the fold x = 320 lands in the database image
TWO_WINGS = [(LEFT, [(110, 140), FOLD_TOP, FOLD_BOTTOM, (110, 460)]),
             (RIGHT, [FOLD_TOP, (680, 160), (690, 430), FOLD_BOTTOM])]
PLANE = [(CARD, [(150, 120), (650, 80), (680, 500), (120, 450)])]


def texture(seed: int, w: int, h: int) -> np.ndarray:
    """An RGB texture rich in blobs and corners (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for s in (3, 9, 27):
        n = rng.normal(size=(h // s + 2, w // s + 2)).astype(np.float32)
        img += cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC) * s ** 0.5
    img = ((img - img.min()) / (img.max() - img.min()) * 160 + 40).astype(np.uint8)
    for _ in range(140):
        c = int(rng.integers(0, 256))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(4, 22)), c, -1)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(6, 40)), y + int(rng.integers(6, 40))), c, -1)
        else:
            cv2.line(img, (x, y), (x + int(rng.integers(-60, 60)), y + int(rng.integers(-60, 60))), c,
                     int(rng.integers(1, 5)))
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def paste(query: np.ndarray, pieces, bg_seed: int) -> tuple[np.ndarray, list[Region]]:
    """Warp each (query polygon -> database quad) piece of the query onto a fresh background."""
    db = texture(bg_seed, DW, DH)
    truth = []
    for qpoly, dquad in pieces:
        H = cv2.getPerspectiveTransform(np.float32(qpoly), np.float32(dquad))
        mask = np.zeros((QH, QW), np.uint8)
        cv2.fillPoly(mask, [np.int32(qpoly)], 255)
        warped = cv2.warpPerspective(query, H, (DW, DH))
        inside = cv2.warpPerspective(mask, H, (DW, DH), flags=cv2.INTER_NEAREST) > 0
        db[inside] = warped[inside]
        truth.append(Region.from_polygons([dquad]))
    return db, truth


@pytest.fixture(scope="module")
def query():
    image = texture(1, QW, QH)
    region = Region.from_polygons([CARD])
    fs = extract(image)
    fs = fs.subset(region.contains_points(fs.xy))
    return image, region, fs, fs.rootsift()


def verify_both(query, db_image):
    _, region, q, q_desc = query
    d = extract(db_image)
    d_desc = d.rootsift()
    cv2.setRNGSeed(7)
    v = spatial_verify(q, d, match_ratio(q_desc, d_desc, SVConfig().ratio), SVConfig(), region.bounds, seeded=False)
    sv_region = predicted_region(region, v.H, d.xy[v.verified_pairs[1]], DW, DH) if v.H is not None else None
    topo = topo_verify(q, q_desc, d, d_desc, region, (DW, DH))
    return v, sv_region, topo, q


def iou(a: Region | None, b: Region) -> float:
    return 0.0 if a is None else a.iou(b, DH, DW)


def test_two_wings_verify_together_where_one_homography_keeps_one(query):
    db, (left, right) = paste(query[0], TWO_WINGS, bg_seed=99)
    v, sv_region, topo, q = verify_both(query, db)
    both = left.union(right)

    # spatial verification: one homography, whose inliers sit on one wing only
    qi, _ = v.verified_pairs
    on_left = q.xy[qi, 0] < 320
    assert v.inliers >= 20 and max(on_left.mean(), 1 - on_left.mean()) >= 0.9
    # topological verification: patches verified on both wings, grown into one region
    assert topo.verified and topo.score > v.inliers
    patch_q = np.array([p["q"] for p in topo.evidence["patches"]])
    assert (patch_q[:, 0] < 300).sum() >= 10 and (patch_q[:, 0] > 340).sum() >= 10
    assert topo.evidence["model"] == "piecewise"
    for wing in (left, right):
        assert topo.region.intersection(wing).area >= 0.9 * wing.area
    assert iou(topo.region, both) >= 0.7
    # the one homography, extrapolated over the other wing, outlines the object much worse
    assert iou(topo.region, both) >= iou(sv_region, both) + 0.2


def test_planar_pair_gives_the_same_region_as_sv(query):
    db, (card,) = paste(query[0], PLANE, bg_seed=98)
    v, sv_region, topo, _ = verify_both(query, db)
    assert v.inliers >= 100 and topo.verified
    assert topo.evidence["model"] == "homography"
    assert iou(topo.region, card) >= 0.95
    assert topo.region.iou(sv_region, DH, DW) >= 0.9


def test_unrelated_pair_does_not_verify(query):
    v, _, topo, _ = verify_both(query, texture(7, DW, DH))
    assert not topo.verified
    assert topo.score < TopoConfig().min_inliers


def test_evidence_is_json_and_capped(query):
    db, _ = paste(query[0], TWO_WINGS, bg_seed=97)
    _, _, topo, _ = verify_both(query, db)
    ev = json.loads(json.dumps(topo.evidence))
    assert ev["inliers"] == topo.score
    assert 0 < len(ev["patches"]) <= TopoConfig().max_patches
    assert 0 < len(ev["matches"]) <= 200 and all(len(m) == 4 for m in ev["matches"])
    p = ev["patches"][0]
    assert set(p) >= {"q", "d", "r", "n"} and p["n"] >= TopoConfig().min_patch
    assert ev["components"] and ev["components"][0] <= ev["inliers"]


def test_saccades_grow_verified_regions_with_guided_matches(query):
    _, region, q, q_desc = query
    db, _ = paste(query[0], TWO_WINGS, bg_seed=96)
    d = extract(db)
    d_desc = d.rootsift()
    still = topo_verify(q, q_desc, d, d_desc, region, (DW, DH), TopoConfig(grow_rounds=0))
    grown = topo_verify(q, q_desc, d, d_desc, region, (DW, DH), TopoConfig(grow_rounds=1))
    assert still.evidence["grown"] == 0 and grown.evidence["grown"] > 0
    assert grown.score > still.score


def test_empty_and_tiny_inputs_do_not_verify(query):
    _, region, q, q_desc = query
    empty = FeatureSet.empty()
    for d in (empty, q.subset(np.arange(1)), q.subset(np.arange(6))):  # 6 perfect matches: still too few
        r = topo_verify(q, q_desc, d, d.rootsift(), region, (DW, DH))
        assert not r.verified and r.score < TopoConfig().min_inliers and json.dumps(r.evidence)
    r = topo_verify(empty, empty.rootsift(), q, q_desc, region, (DW, DH))
    assert not r.verified and r.score == 0


def similarity_matches(rng, n, centre, size, scale, angle_deg, shift):
    """n matches of a patch of the query moved by one similarity (SIFT-like scale and angle)."""
    q = centre + rng.uniform(-size, size, (n, 2))
    t = np.deg2rad(angle_deg)
    R = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # y down, OpenCV's angles
    d = q @ R.T + shift + rng.normal(0, 0.7, (n, 2))
    q_scale = rng.uniform(2, 8, n)
    q_angle = rng.uniform(0, 360, n)
    d_scale = q_scale * scale * rng.uniform(0.85, 1.15, n)
    d_angle = q_angle + angle_deg + rng.normal(0, 5, n)
    return q, q_scale, q_angle, d, d_scale, d_angle


def test_patches_grow_per_part_and_reject_scattered_matches():
    rng = np.random.default_rng(3)
    a = similarity_matches(rng, 60, np.array([150.0, 200.0]), 60, 1.3, 35, np.array([400.0, -50.0]))
    b = similarity_matches(rng, 60, np.array([450.0, 200.0]), 60, 0.7, -50, np.array([-100.0, 500.0]))
    n_noise = 60
    noise = (rng.uniform(0, 600, (n_noise, 2)), rng.uniform(2, 8, n_noise), rng.uniform(0, 360, n_noise),
             rng.uniform(0, 800, (n_noise, 2)), rng.uniform(2, 8, n_noise), rng.uniform(0, 360, n_noise))
    parts = [np.concatenate(x) for x in zip(a, b, noise)]
    patches = find_patches(*parts, radius=50.0, config=TopoConfig())
    comp = patches.component
    part_a, part_b, scattered = comp[:60], comp[60:120], comp[120:]
    assert (part_a >= 0).mean() >= 0.9 and (part_b >= 0).mean() >= 0.9
    # each part is one component, and the two parts (different motions, far apart) stay apart
    assert len(set(part_a[part_a >= 0])) == 1 and len(set(part_b[part_b >= 0])) == 1
    assert set(part_a[part_a >= 0]).isdisjoint(part_b[part_b >= 0])
    assert (scattered >= 0).sum() <= 2


def test_rotated_and_scaled_object_verifies_patch_by_patch(query):
    """Real SIFT scale and angle: the seeds' similarities must predict their neighbours."""
    image, region, q, q_desc = query
    M = cv2.getRotationMatrix2D((QW / 2, QH / 2), 50, 0.75)  # counter-clockwise on screen
    M[:, 2] += (80, 60)
    db = texture(95, DW, DH)
    warped = cv2.warpAffine(image, M, (DW, DH))
    inside = cv2.warpAffine(region.to_mask(QH, QW).astype(np.uint8), M, (DW, DH), flags=cv2.INTER_NEAREST) > 0
    db[inside] = warped[inside]
    d = extract(db)
    topo = topo_verify(q, q_desc, d, d.rootsift(), region, (DW, DH), TopoConfig(grow_rounds=0))
    assert topo.verified and topo.evidence["model"] == "affine"  # the motion is affine: no perspective to keep
    assert len(topo.evidence["patches"]) >= 30  # patches passed on their own, not just through the plane
    truth = Region.from_geometry(region.transform(np.vstack([M, [0, 0, 1]])).geometry)
    assert iou(topo.region, truth) >= 0.95


@pytest.mark.parametrize("motion", ["affine", "homography"])
def test_region_from_matches_on_one_part_keeps_perspective_only_where_measured(query, motion):
    """Texture on one corner of the card only (a face on a plain body): every match sits there, and
    the region is extrapolated from them. An affine motion gives a homography that bends to the
    keypoint noise and extrapolates it over the plain rest; topo warps by the affine instead. A real
    perspective is measured even from the corner: topo keeps the homography, as sv does."""
    image, region, _, _ = query
    image = image.copy()
    corner = np.zeros((QH, QW), bool)
    corner[60:180, 80:200] = True
    image[~corner] = 128
    q = extract(image)
    q = q.subset(region.contains_points(q.xy))
    if motion == "affine":
        M = np.array([[0.9, 0.25, 90.0], [-0.1, 1.05, 40.0], [0.0, 0.0, 1.0]])  # sheared, no perspective
    else:
        M = cv2.getPerspectiveTransform(np.float32(CARD), np.float32(PLANE[0][1]))
    db = texture(94, DW, DH)
    inside = cv2.warpPerspective(region.to_mask(QH, QW).astype(np.uint8), M, (DW, DH), flags=cv2.INTER_NEAREST) > 0
    db[inside] = cv2.warpPerspective(image, M, (DW, DH))[inside]
    v, sv_region, topo, _ = verify_both((image, region, q, q.rootsift()), db)
    truth = region.transform(M)
    assert v.inliers >= 20 and topo.verified
    assert topo.evidence["model"] == motion
    assert iou(topo.region, truth) >= 0.97
    if motion == "affine":
        assert iou(topo.region, truth) >= iou(sv_region, truth) + 0.02
    else:
        assert topo.region.iou(sv_region, DH, DW) >= 0.99


def test_global_model_keeps_the_homography_when_too_few_inliers_test_it():
    rng = np.random.default_rng(5)
    H = np.array([[1.1, 0.1, 20.0], [0.05, 0.9, -10.0], [1e-4, 2e-4, 1.0]])
    for n, expected in ((MIN_TESTED - 1, "homography"), (200, "homography")):
        P = rng.uniform(0, 400, (n, 2))
        p = np.c_[P, np.ones(n)] @ H.T
        Q = p[:, :2] / p[:, 2:3] + rng.normal(0, 0.5, (n, 2))
        assert global_model(P, Q, H, 5.0, 0.05)[1] == expected
    A = np.array([[1.1, 0.1, 20.0], [0.05, 0.9, -10.0], [0.0, 0.0, 1.0]])
    P = rng.uniform(0, 400, (200, 2))
    Q = P @ A[:2, :2].T + A[:2, 2] + rng.normal(0, 0.5, (200, 2))
    model, kind = global_model(P, Q, A, 5.0, 0.05)
    assert kind == "affine"
    assert np.abs(model[:2, :2] - A[:2, :2]).max() < 0.01 and np.abs(model[:2, 2] - A[:2, 2]).max() < 0.5
    assert global_model(P, Q, None, 5.0, 0.05)[1] == "affine"  # no homography at all: the affine of all


def test_topo_method_finds_and_outlines_every_view(indexed_project, small_collection):
    from engine.base.types import Query
    from engine.pipeline import METHODS, search

    assert "topo" in METHODS
    project, coll = indexed_project, small_collection
    for name, views in coll.views.items():
        qrel, qpoly = views[0]
        result = search(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])), method="topo")
        truth = {project.image_id(rel): poly for rel, poly in views[1:]}
        top = result.hits[: len(truth)]
        assert {h.image_id for h in top} == set(truth), f"{name}: {[h.path for h in result.hits[:5]]}"
        for h in top:
            assert h.stage == "verified" and h.evidence["patches"]
            assert h.region.iou(Region.from_polygons([truth[h.image_id]]), 480, 640) > 0.85
        assert all(h.stage != "verified" for h in result.hits[len(truth):])
