"""Region: masks, COCO RLE, warps, IoU; rasterization by its own exact definition, not OpenCV's."""
from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from engine.base.regions import (
    Region,
    RegionDataError,
    box_iou,
    decode_rle,
    encode_rle,
    mask_iou,
    pair_ious,
    polygons_from_json,
)

mask_util = pytest.importorskip("pycocotools.mask")

DEV = Path("/work/shared/bench/dev")


def coco_rle(mask: np.ndarray) -> dict:
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


def covered(region: Region, h, w) -> np.ndarray:
    """The definition of to_mask, checked independently: the pixel centres that shapely says the
    region's polygons, vertices rounded to pixel centres, cover (inside or on the boundary)."""
    rounded = [Polygon(np.round(np.asarray(p.exterior.coords)), [np.round(np.asarray(r.coords)) for r in p.interiors])
               for p in getattr(region.geometry, "geoms", [region.geometry])]
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros(h * w, bool)
    for poly in rounded:
        out |= shapely.intersects_xy(poly, xx.ravel(), yy.ravel())
    return out.reshape(h, w)


def blob_mask(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth random shape: blurred noise, thresholded (several parts, some holes)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 9)
    return noise > np.quantile(noise, 0.55)


def ring_with_island(h=100, w=120) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (60, 50), 40, 1, -1)
    cv2.circle(m, (60, 50), 20, 0, -1)      # a hole
    cv2.rectangle(m, (55, 45), (64, 54), 1, -1)  # an island inside the hole
    cv2.rectangle(m, (2, 2), (12, 30), 1, -1)    # a separate part
    return m.astype(bool)


# -- COCO RLE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_rle_encoding_matches_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 90, 2)
    masks = [rng.random((h, w)) < rng.uniform(0.05, 0.95), blob_mask(seed, h + 40, w + 40)]
    for m in masks:
        ours = encode_rle(m)
        ref = coco_rle(m)
        assert ours["size"] == list(ref["size"])
        assert ours["counts"] == ref["counts"].decode("ascii")
        assert np.array_equal(decode_rle(ours), m)
        assert np.array_equal(decode_rle({"size": ref["size"], "counts": ref["counts"].decode()}), m)
        assert int(mask_util.area(ref)) == int(decode_rle(ours).sum())


@pytest.mark.parametrize("mask", [
    np.zeros((7, 5), bool), np.ones((7, 5), bool), np.eye(6, dtype=bool),
    np.pad(np.ones((300, 200), bool), ((0, 500), (9, 0))),   # long runs need several characters
])
def test_rle_edge_cases_match_pycocotools(mask):
    assert encode_rle(mask)["counts"] == coco_rle(mask)["counts"].decode("ascii")
    assert np.array_equal(decode_rle(encode_rle(mask)), mask)


def test_uncompressed_rle_is_read():
    m = np.array([[0, 1], [1, 1], [0, 0]], bool)   # column-major: 0 1 0 | 1 1 0
    assert np.array_equal(decode_rle({"size": [3, 2], "counts": [1, 1, 1, 2, 1]}), m)


@pytest.mark.parametrize("rle, where", [
    ({"size": [2, 2], "counts": "1"}, "counts"),          # covers 1 pixel, not 4
    ({"size": [2, 2], "counts": "\u00e9"}, "counts"),
    ({"size": [2, 2], "counts": "0P"}, "counts"),        # a continuation bit on the last character
    ({"size": [2], "counts": "04"}, "size"),
    ({"size": [2, 2], "counts": None}, "counts"),
])
def test_bad_rle_names_the_field(rle, where):
    with pytest.raises(RegionDataError) as e:
        Region.from_rle(rle)
    assert e.value.where == where


def test_region_rle_agrees_with_pycocotools_on_area_and_iou():
    a = Region.from_polygons([[[5, 5], [60, 8], [50, 70], [8, 50]]])
    b = Region.from_mask(ring_with_island())
    h, w = 100, 120
    ra, rb = a.to_rle(h, w), b.to_rle(h, w)
    ref_a = {"size": ra["size"], "counts": ra["counts"].encode()}
    ref_b = {"size": rb["size"], "counts": rb["counts"].encode()}
    assert int(mask_util.area(ref_a)) == int(a.to_mask(h, w).sum())
    ref_iou = float(mask_util.iou([ref_a], [ref_b], [0])[0, 0])
    assert a.iou(b, h, w) == pytest.approx(ref_iou, abs=1e-12)
    assert mask_iou(a.to_mask(h, w), b.to_mask(h, w)) == pytest.approx(ref_iou, abs=1e-12)


def test_rle_round_trip_keeps_holes_and_islands():
    m = ring_with_island()
    r = Region.from_rle(encode_rle(m))
    assert len(r.geometry.geoms) == 3   # ring with a hole, the island, the separate part
    assert np.array_equal(r.to_mask(*m.shape), m)
    assert np.array_equal(decode_rle(r.to_rle(*m.shape)), m)


# -- masks ----------------------------------------------------------------------------------------


def test_mask_round_trip_is_exact_with_holes_and_islands():
    m = ring_with_island()
    r = Region.from_mask(m)
    assert any(p.interiors for p in r.geometry.geoms)
    assert np.array_equal(r.to_mask(*m.shape), m)


@pytest.mark.parametrize("seed", range(5))
def test_mask_round_trip_of_random_shapes(seed):
    m = blob_mask(seed)
    back = Region.from_mask(m).to_mask(*m.shape)
    assert mask_iou(back, m) >= 0.99


def test_thin_structures_survive_the_round_trip():
    m = np.zeros((20, 20), bool)
    m[3, 4] = True                       # a lone pixel
    m[8, 2:15] = True                    # a horizontal line
    m[np.arange(10, 18), np.arange(5, 13)] = True   # a diagonal line
    r = Region.from_mask(m)
    assert not r.is_empty
    assert np.array_equal(r.to_mask(20, 20), m)


def test_empty_mask_gives_empty_region():
    r = Region.from_mask(np.zeros((4, 4), bool))
    assert r.is_empty and r == Region.empty() and r.bounds is None
    assert not r.to_mask(4, 4).any()
    assert r.polygons() == []


def test_to_mask_takes_the_pixels_whose_centres_the_rounded_polygon_covers():
    poly = [[2.4, 1.6], [15.5, 2.5], [13.2, 11.7], [3.5, 9.49]]
    r = Region.from_polygons([poly])
    assert np.array_equal(r.to_mask(14, 18), covered(r, 14, 18))
    # the centre (2, 3) is just left of the rounded edge (2, 2)-(4, 9), at x = 2.29: outside (cv2.fillPoly
    # takes it anyway); (3, 3) is inside
    assert not r.to_mask(14, 18)[3, 2] and r.to_mask(14, 18)[3, 3]
    # a box covers its corner pixels: x 2..5 and y 3..7 is 4 x 5 pixels
    box = Region.from_bbox(2, 3, 5, 7).to_mask(10, 10)
    assert box.sum() == 20 and box[3:8, 2:6].all()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), holes=st.booleans())
def test_scanline_fill_is_exact_on_random_polygons(seed, holes):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-4, 30, (int(rng.integers(3, 10)), 2))
    region = Region.from_polygons([pts])
    if holes and not region.is_empty:
        region = region.difference(Region.from_polygons([rng.uniform(5, 20, (4, 2))]))
    assert np.array_equal(region.to_mask(24, 26), covered(region, 24, 26))


# The masks of dev's 111 label and query polygons: a digest of every pixel, so that any change of the
# rasterization (a library's, or ours) fails here. OpenCV is not involved: 4.9 and 5.1's fillPoly
# differed on 50 of these polygons, by up to 49 pixels (and 5.1's on 88 from ours, by up to 1,310).
DEV_MASKS_SHA256 = "d46cbcaa015584f9b5f836dc882994072ccb2940c4fe9cd475b1e8f0f0340571"


@pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")
def test_dev_labels_rasterize_to_the_same_pixels_whatever_the_libraries(monkeypatch):
    import hashlib

    def no_opencv(*args, **kwargs):
        raise AssertionError("to_mask must not use OpenCV's polygon filling")

    monkeypatch.setattr(cv2, "fillPoly", no_opencv)
    monkeypatch.setattr(cv2, "polylines", no_opencv)
    digest = hashlib.sha256()
    files = sorted((DEV / "labels").glob("*.json")) + sorted((DEV / "queries").glob("*.json"))
    assert len(files) == 111
    for f in files:
        d = json.loads(f.read_text())
        region = Region.from_polygons([s["points"] for s in d["shapes"]])
        h, w = d["imageHeight"], d["imageWidth"]
        mask = region.to_mask(h, w)
        digest.update(np.packbits(mask).tobytes())
        assert np.array_equal(Region.from_mask(mask).to_mask(h, w), mask), f.name
    assert digest.hexdigest() == DEV_MASKS_SHA256


def test_region_with_a_hole_rasterizes_the_hole_empty():
    shell = [[0, 0], [20, 0], [20, 20], [0, 20]]
    hole = [[5, 5], [15, 5], [15, 15], [5, 15]]
    r = Region.from_json({"polygons": [[shell, hole]]})
    m = r.to_mask(21, 21)
    assert not m[6:15, 6:15].any()       # inside the hole
    assert m[5, 5:16].all() and m[0].all()   # the hole's ring and the outside stay
    assert r.area == pytest.approx(400 - 100)


# -- construction ---------------------------------------------------------------------------------


def test_from_polygons_unions_repairs_and_ignores_short_polygons():
    a = [[0, 0], [10, 0], [10, 10], [0, 10]]
    b = [[5, 5], [15, 5], [15, 15], [5, 15]]
    r = Region.from_polygons([a, b, [[1, 1], [2, 2]], []])
    assert r.area == pytest.approx(175)
    assert r.geometry.is_valid
    bowtie = Region.from_polygons([[[0, 0], [10, 10], [10, 0], [0, 10]]])
    assert bowtie.geometry.is_valid and bowtie.area == pytest.approx(50)
    assert Region.from_polygons([]).is_empty


def test_from_geometry_keeps_only_the_area():
    g = shapely.GeometryCollection([Polygon([(0, 0), (4, 0), (4, 4)]), shapely.LineString([(0, 0), (9, 9)])])
    r = Region.from_geometry(g)
    assert r.area == pytest.approx(8)
    assert Region.from_geometry(shapely.Point(1, 1)).is_empty


def test_from_bbox_and_bounds():
    r = Region.from_bbox(10, 20, 4, 8)   # corners in any order
    assert r.bounds == (4.0, 8.0, 10.0, 20.0) == r.bbox
    assert r.area == pytest.approx(72)


# -- geometry -------------------------------------------------------------------------------------


def test_warp_by_a_known_homography_and_back():
    src = np.float32([[0, 0], [100, 0], [100, 80], [0, 80]])
    dst = np.float32([[10, 20], [150, 5], [170, 140], [30, 110]])
    H = cv2.getPerspectiveTransform(src, dst)
    poly = np.array([[20, 10], [80, 15], [90, 70], [50, 40], [10, 60]], np.float64)
    r = Region.from_polygons([poly])
    warped = r.transform(H)
    expected = cv2.perspectiveTransform(poly[None].astype(np.float64), H)[0]
    assert warped.geometry.is_valid
    assert np.allclose(warped.polygons()[0], expected, atol=1e-9)
    back = warped.transform(np.linalg.inv(H))
    assert back.geometry.symmetric_difference(r.geometry).area < 1e-6 * r.area
    # densified edges lie on the same straight lines: same region, more vertices
    dense = r.transform(H, max_segment=2.0)
    assert dense.geometry.symmetric_difference(warped.geometry).area < 1e-6 * warped.area
    assert len(dense.polygons()[0]) > 50


def test_warp_keeps_the_side_in_front_of_the_camera():
    # w = 1 - x/50: the horizon x = 50 cuts the region; only x < 50 can be seen
    H = np.array([[1, 0, 0], [0, 1, 0], [-1 / 50, 0, 1]], np.float64)
    r = Region.from_bbox(0, 0, 60, 10)
    warped = r.transform(H)
    assert not warped.is_empty and warped.geometry.is_valid
    assert np.isfinite(np.asarray(warped.polygons()[0])).all()
    assert warped.bounds[0] == pytest.approx(0.0)
    assert warped.bounds[2] > 1e3        # stretched toward the horizon
    # the same homography scaled by -1 is the same map
    assert r.transform(-H) == warped


def test_identity_and_translation():
    r = Region.from_polygons([[[1, 2], [9, 3], [5, 8]]])
    assert r.transform(np.eye(3)) == r
    t = np.array([[1, 0, 5], [0, 1, -2], [0, 0, 1]], np.float64)
    assert r.transform(t).bounds == pytest.approx((6, 0, 14, 6))


def test_clip_keeps_the_part_inside_the_image():
    r = Region.from_bbox(-10, -5, 30, 8).clip(20, 6)
    assert r.bounds == (0.0, 0.0, 19.0, 5.0)
    assert Region.from_bbox(50, 50, 60, 60).clip(20, 20).is_empty


def test_set_operations_buffer_simplify():
    a = Region.from_bbox(0, 0, 10, 10)
    b = Region.from_bbox(5, 0, 15, 10)
    assert a.union(b).area == pytest.approx(150)
    assert a.intersection(b).area == pytest.approx(50)
    assert a.difference(b).area == pytest.approx(50)
    assert a.difference(a).is_empty
    assert a.buffer(-2).area == pytest.approx(36)
    assert a.buffer(1).area > a.area
    circle = Region.from_geometry(shapely.Point(50, 50).buffer(30, quad_segs=64))
    simple = circle.simplify(1.0)
    assert len(simple.polygons()[0]) < len(circle.polygons()[0])
    # every vertex moved by at most tol: the area changes by less than tol x perimeter
    assert abs(simple.area - circle.area) < 1.0 * circle.geometry.length


def test_contains_points_is_vectorized_and_respects_holes():
    r = Region.from_json({"polygons": [[[[0, 0], [10, 0], [10, 10], [0, 10]], [[4, 4], [6, 4], [6, 6], [4, 6]]]]})
    xy = np.array([[1, 1], [5, 5], [11, 5], [0, 5], [10, 10], [4.5, 3.9]])
    assert r.contains_points(xy).tolist() == [True, False, False, True, True, True]
    many = np.random.default_rng(0).uniform(-5, 15, (10000, 2))
    inside = r.contains_points(many)
    expected = ((many >= 0) & (many <= 10)).all(1) & ~((many > 4) & (many < 6)).all(1)
    assert np.array_equal(inside, expected)
    assert Region.empty().contains_points(xy).sum() == 0


# -- IoU ------------------------------------------------------------------------------------------


def test_iou_box_iou_and_pair_ious():
    label = Region.from_polygons([[[0, 0], [9, 0], [9, 9], [0, 9]]])      # 100 pixels
    pred = Region.from_polygons([[[0, 0], [6, 0], [6, 9], [0, 9]]])       # 70 of them
    assert label.iou(pred, 20, 20) == pytest.approx(0.7)
    assert pair_ious(pred, label, 20, 20) == pytest.approx((0.7, 0.7))
    assert label.box_iou(pred) == pytest.approx(54 / 81)                # continuous boxes
    assert pair_ious(None, label, 20, 20) == (0.0, 0.0)
    assert pair_ious(Region.empty(), label, 20, 20) == (0.0, 0.0)
    # outside the image counts for nothing
    far = Region.from_bbox(30, 30, 40, 40)
    assert label.iou(far, 20, 20) == 0.0 and pair_ious(far, label, 20, 20) == (0.0, 0.0)
    assert label.pixel_box(20, 20) == (0, 0, 9, 9)
    assert Region.from_bbox(-5, -5, 3, 30).pixel_box(20, 20) == (0, 0, 3, 19)


def test_module_iou_helpers():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0
    with pytest.raises(ValueError):
        mask_iou(a, b[:3])
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 9, 9), (0, 0, 4, 9), inclusive=True) == pytest.approx(0.5)
    assert box_iou(None, (0, 0, 1, 1)) == 0.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


# -- value semantics and JSON ---------------------------------------------------------------------


def test_equality_is_geometric_and_hash_agrees():
    a = Region.from_polygons([[[0, 0], [10, 0], [10, 10], [0, 10]]])
    b = Region.from_polygons([[[10, 10], [10, 0], [0, 0], [0, 10]]])        # other start, other winding
    c = Region.from_polygons([[[0, 0], [5, 0], [10, 0], [10, 10], [0, 10]]])  # an extra collinear vertex
    assert a == b == c and hash(a) == hash(b) == hash(c)
    assert len({a, b, c, Region.empty(), Region.empty()}) == 2
    assert a != Region.from_bbox(0, 0, 10, 11) and a != "a region"
    with pytest.raises(AttributeError):
        a._geom = None
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) is a


def test_json_round_trip():
    r = Region.from_mask(ring_with_island())
    d = json.loads(json.dumps(r.to_json()))
    assert Region.from_json(d) == r
    assert Region.from_json(Region.empty().to_json()).is_empty
    assert all(len(p) >= 3 for p in r.polygons())
    assert len(r.polygons()) == len(r.polygons_with_holes())


@pytest.mark.parametrize("data, where", [
    ([], ""),
    ({"polygons": 3}, "polygons"),
    ({"polygons": [[]]}, "polygons[0]"),
    ({"polygons": [[[[0, 0], [1, 0], "x"]]]}, "polygons[0][0][2]"),
    ({"polygons": [[[[0, 0], [1, 0], [1, float("nan")]]]]}, "polygons[0][0][2]"),
    ({"polygons": [[[[0, 0], [1, 0]]]]}, "polygons[0][0]"),
])
def test_from_json_names_the_bad_field(data, where):
    with pytest.raises(ValueError) as e:
        Region.from_json(data)
    assert isinstance(e.value, RegionDataError) and e.value.where == where


def test_polygons_from_json_names_the_bad_point():
    assert [p.shape for p in polygons_from_json([[[0, 0], [1, 0], [1, 1]]])] == [(3, 2)]
    with pytest.raises(RegionDataError) as e:
        polygons_from_json([[[0, 0], [1, 0], [1, 1]], [[0, 0], [True, 1]]], "results[4].polygons")
    assert e.value.where == "results[4].polygons[1][1]"
