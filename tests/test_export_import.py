"""Export and import of reviewed annotations: the files load in the field's own tools (pycocotools,
revisitop's pickle, labelme's JSON), and export -> import gives the same regions back."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from sqlalchemy import func, select

from engine.annotate import review
from engine.base.errors import FormatError, PixretError
from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.catalog.tables import AnnotationRow, HitRow, QueryRow
from engine.cli import main
from engine.demo import make_collection
from engine.formats import coco as coco_format
from engine.formats.destination import check_export_destination
from engine.formats.export import NothingToExport, export_project, reviewed_set
from engine.formats.importers import import_annotations
from engine.formats.pixbench import load_pixbench
from engine.pipeline import search
from engine.project import Project

W, H = 320, 240


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("excol"), n_objects=2, views=4, n_distractors=3, size=(W, H),
                           seed=11)


@pytest.fixture(scope="module")
def blank(collection, tmp_path_factory):
    """An indexed project with no searches, closed: tests copy it (`fresh`)."""
    folder = tmp_path_factory.mktemp("blank") / "project"
    with Project.create(folder, root=collection.root) as p:
        p.index_folder(collection.root)
    return folder


@pytest.fixture
def fresh(blank, tmp_path):
    folder = tmp_path / "fresh"
    shutil.copytree(blank, folder)
    with Project.open(folder) as p:
        yield p


def holed(poly) -> Region:
    """The view's outline with a square hole in the middle (COCO writes it as RLE)."""
    r = Region.from_polygons([poly])
    cx, cy = r.geometry.centroid.x, r.geometry.centroid.y
    hole = [(cx - 12, cy - 12), (cx + 12, cy - 12), (cx + 12, cy + 12), (cx - 12, cy + 12)]
    return Region(Polygon(r.polygons()[0], [hole]))


@pytest.fixture(scope="module")
def reviewed(collection, blank, tmp_path_factory):
    """Two searches, reviewed: view02 accepted (easy), view03 corrected (hard; object2's with a hole),
    view04 accepted as junk, a distractor rejected. Returns (project, expected decisions by path)."""
    folder = tmp_path_factory.mktemp("reviewed") / "project"
    shutil.copytree(blank, folder)
    p = Project.open(folder)
    expected = {}
    for name, views in collection.views.items():
        qrel, qpoly = views[0]
        result = search(p, Query(p.image_id(qrel), Region.from_polygons([qpoly])), top_k=10)
        qid = review.save_search(p, result)
        dec = {}
        for k, (rel, poly) in enumerate(views[1:]):
            kind, diff = [("accepted", "easy"), ("corrected", "hard"), ("accepted", "junk")][k]
            region = holed(poly) if (name == "object2" and k == 1) else Region.from_polygons([poly])
            review.set_decision(p, qid, p.image_id(rel), kind, region, difficulty=diff, author="t")
            dec[rel] = (kind, diff, region)
        # a first, undone verdict: only the latest decision counts
        review.set_decision(p, qid, p.image_id(collection.distractors[0]), "accepted",
                            Region.from_bbox(1, 1, 30, 30))
        review.set_decision(p, qid, p.image_id(collection.distractors[0]), "rejected")
        dec[collection.distractors[0]] = ("rejected", "easy", None)
        expected[qrel] = (Region.from_polygons([qpoly]), dec)
    yield p, expected
    p.close()


def counts(project) -> tuple[int, int, int]:
    with project.catalog.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (QueryRow, HitRow, AnnotationRow))


def imported(project, fmt) -> dict:
    """{query image path: (query region, {image path: Decision})} of the searches imported in `fmt`."""
    out = {}
    for q in review.list_queries(project):
        if q.method != f"import:{fmt}":
            continue
        search_ = review.load_search(project, q.id)
        out[q.image_path] = (search_.query.region,
                             {project.image_info(i).path: d for i, d in review.decisions(project, q.id).items()})
    return out


def no_holes(region: Region) -> Region:
    return Region.from_polygons(region.polygons())


def check_round_trip(expected, got, *, holes: bool, negatives: bool, junk_regions: bool = True, exact=False):
    """exact: every region comes back with the same pixels (IoU 1.0), else IoU >= 0.99."""
    least = 1.0 if exact else 0.99
    assert set(got) == set(expected)
    for qrel, (qregion, dec) in expected.items():
        gregion, gdec = got[qrel]
        assert gregion.iou(qregion, H, W) >= least
        want = {rel: v for rel, v in dec.items() if negatives or v[0] != "rejected"}
        assert set(gdec) == set(want), qrel
        for rel, (kind, diff, region) in want.items():
            d = gdec[rel]
            if kind == "rejected":
                assert d.kind == "rejected" and d.region is None
                continue
            assert d.kind == "accepted" and d.difficulty == diff and d.author
            if diff == "junk" and not junk_regions:
                assert d.region is None
                continue
            ref = region if holes else no_holes(region)
            assert d.region.iou(ref, H, W) >= least, (qrel, rel)


# -- what is exported ----------------------------------------------------------------------------


def test_reviewed_set_holds_the_current_decisions(reviewed, collection):
    project, expected = reviewed
    rs = reviewed_set(project)
    assert len(rs.objects) == 2 and not rs.warnings
    for o in rs.objects:
        qregion, dec = expected[o.query.rel]
        got = {project.image_info(i).path: (d.kind, d.difficulty) for i, d in o.decisions.items()}
        assert got == {rel: (k, diff) for rel, (k, diff, _) in dec.items()}
        assert o.region.iou(qregion, H, W) == 1.0
    assert len(rs.images) == 4 * 2 + 3


# -- PixBench + revisitop ------------------------------------------------------------------------


def test_pixbench_export_is_a_valid_set_and_round_trips(reviewed, fresh, tmp_path):
    project, expected = reviewed
    calls = []
    report = export_project(project, tmp_path / "pb", "pixbench", progress=lambda d, t, s: calls.append((d, t, s)))
    assert report.n_objects == 2 and report.n_regions == 4 and report.n_negatives == 2
    assert calls and all(0 <= d <= t for d, t, _ in calls)
    bench = load_pixbench(tmp_path / "pb")
    assert len(bench.qimlist) == 2 and set(bench.qimlist).isdisjoint(bench.imlist)
    assert bench.qimlist[0] == "object1__view01"
    # query images nobody decided on are not in the database
    assert len(bench.imlist) == 3 * 2 + 3
    for q in range(2):
        e = bench.gnd[q]
        assert len(e.easy) == 1 and len(e.hard) == 1 and len(e.junk) == 1 and e.pixel_gt
        for i in e.easy + e.hard:
            label = bench.label_region(q, i)
            assert bench.image_size(bench.imlist[i]) == (W, H) and not label.is_empty
        x1, y1, x2, y2 = bench.query_region(q).bounds
        assert e.bbx == pytest.approx((x1, y1, x2, y2))
    for name in bench.imlist + bench.qimlist:
        assert bench.image_path(name).is_file()
    assert (tmp_path / "pb" / "SOURCES.md").is_file()

    r = import_annotations(fresh, tmp_path / "pb", "pixbench")
    assert r.n_objects == 2 and r.n_annotations == 6 and not r.unmatched
    check_round_trip(expected, imported(fresh, "pixbench"), holes=False, negatives=False, junk_regions=False)


def test_gnd_pkl_has_revisitops_structure_and_round_trips(reviewed, fresh, tmp_path):
    project, expected = reviewed
    export_project(project, tmp_path / "pb", "pixbench", name="myset")
    with open(tmp_path / "pb" / "gnd_myset.pkl", "rb") as f:
        cfg = pickle.load(f)          # as revisitop's configdataset does
    assert set(cfg) >= {"imlist", "qimlist", "gnd"}
    gnd = json.loads((tmp_path / "pb" / "gnd.json").read_text())
    assert cfg["imlist"] == gnd["imlist"] and cfg["qimlist"] == gnd["qimlist"]
    for q, g in enumerate(cfg["gnd"]):
        assert set(g) >= {"bbx", "easy", "hard", "junk"}
        assert len(g["bbx"]) == 4 and g["easy"] == gnd["gnd"][q]["easy"]
        # revisitop's compute_map builds its protocols like this
        ok = np.concatenate([g["easy"], g["hard"]])
        assert ok.dtype.kind == "i" and len(ok) == 2
    # PROxford's pixel labels: np.load(..., allow_pickle=True).item()["<q>_<i>"] -> path under the set
    p2l = np.load(tmp_path / "pb" / "myset_pair2labelpath.npy", allow_pickle=True).item()
    assert len(p2l) == 4
    for key, rel in p2l.items():
        q, i = map(int, key.split("_"))
        assert i in cfg["gnd"][q]["easy"] + cfg["gnd"][q]["hard"]
        label = json.loads((tmp_path / "pb" / rel).read_text())
        assert [s["points"] for s in label["shapes"]]

    r = import_annotations(fresh, tmp_path / "pb" / "gnd_myset.pkl", "revisitop")
    assert r.n_objects == 2 and not r.unmatched
    check_round_trip(expected, imported(fresh, "revisitop"), holes=False, negatives=False, junk_regions=False)


def test_revisitop_without_pixel_labels_imports_image_level_positives(reviewed, fresh, tmp_path):
    project, _ = reviewed
    export_project(project, tmp_path / "pb", "pixbench", name="s")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tmp_path / "pb" / "gnd_s.pkl", bare / "gnd_s.pkl")
    shutil.copytree(tmp_path / "pb" / "jpg", bare / "jpg")
    r = import_annotations(fresh, bare / "gnd_s.pkl", "revisitop")
    assert r.n_objects == 2 and r.n_annotations == 6 and not r.unmatched
    for qregion, dec in imported(fresh, "revisitop").values():
        assert qregion.area > 0            # the query box from bbx
        assert all(d.kind == "accepted" and d.region is None for d in dec.values())
    # and they export again as image-level positives: in easy/hard, with pixel_gt false
    export_project(fresh, tmp_path / "again", "pixbench")
    bench = load_pixbench(tmp_path / "again")
    imported_q = [q for q, e in enumerate(bench.gnd) if not e.pixel_gt]
    assert len(imported_q) == 2 and all(len(bench.gnd[q].easy) == 1 for q in imported_q)


def test_a_query_keeps_its_name_through_import_and_export(reviewed, fresh, tmp_path):
    """A query photo byte-identical to a database photo is matched to it by content on import; the
    export still calls it by its own name (not `<db name>__q0`)."""
    project, _ = reviewed
    export_project(project, tmp_path / "pb", "pixbench")
    pb = tmp_path / "pb"
    gnd = json.loads((pb / "gnd.json").read_text())
    db_name = next(n for n in gnd["imlist"] if n.startswith("other"))
    (pb / "jpg" / f"{gnd['qimlist'][0]}.jpg").unlink()
    shutil.copy(pb / "jpg" / f"{db_name}.jpg", pb / "jpg" / "my_query.jpg")      # same bytes as a db photo
    gnd["qimlist"][0] = "my_query"
    (pb / "gnd.json").write_text(json.dumps(gnd))
    (pb / "pixret.json").unlink()                  # no name map: the photo is found by content alone
    r = import_annotations(fresh, pb, "pixbench")
    assert r.n_objects == 2 and not r.unmatched
    export_project(fresh, tmp_path / "again", "pixbench")
    again = json.loads((tmp_path / "again" / "gnd.json").read_text())
    assert "my_query" in again["qimlist"] and not any(n.endswith("__q0") for n in again["qimlist"])
    assert (tmp_path / "again" / "jpg" / "my_query.jpg").read_bytes() == (pb / "jpg" / "my_query.jpg").read_bytes()


def test_query_images_decided_in_other_searches_stay_in_the_database(fresh, collection, tmp_path):
    """Two searches of one object from two views, each accepting the other's query image; the
    first search saved twice (one object, decisions merged)."""
    (rel1, p1), (rel2, p2) = collection.views["object1"][:2]
    a = search(fresh, Query(fresh.image_id(rel1), Region.from_polygons([p1])), top_k=5)
    a1, a2 = review.save_search(fresh, a), review.save_search(fresh, a)
    review.set_decision(fresh, a1, fresh.image_id(rel2), "rejected")
    review.set_decision(fresh, a2, fresh.image_id(rel2), "accepted", Region.from_polygons([p2]))
    b = review.save_search(fresh, search(fresh, Query(fresh.image_id(rel2), Region.from_polygons([p2])), top_k=5))
    review.set_decision(fresh, b, fresh.image_id(rel1), "corrected", Region.from_polygons([p1]), difficulty="hard")
    rs = reviewed_set(fresh)
    assert [o.query_ids for o in rs.objects] == [(a1, a2), (b,)]
    export_project(fresh, tmp_path / "pb", "pixbench")
    bench = load_pixbench(tmp_path / "pb")
    i1, i2 = bench.index_of("object1__view01"), bench.index_of("object1__view02")
    assert i1 is not None and i2 is not None
    assert bench.qimlist == ("object1__view01__q0", "object1__view02__q1")
    assert bench.gnd[0].easy == (i2,) and bench.gnd[0].junk == (i1,)     # its own image: junk
    assert bench.gnd[1].hard == (i1,) and bench.gnd[1].junk == (i2,)
    r = import_annotations(fresh, tmp_path / "pb", "pixbench")
    assert r.n_objects == 2 and not r.unmatched
    got = imported(fresh, "pixbench")
    assert set(got) == {rel1, rel2}
    assert got[rel1][1][rel2].region.iou(Region.from_polygons([p2]), H, W) >= 0.99
    assert got[rel2][1][rel1].difficulty == "hard"
    assert rel1 not in got[rel1][1]          # a query's own image is never its own result


# -- COCO ------------------------------------------------------------------------------------------


def coco_json(out) -> Path:
    """The instances file of a COCO export, found by datumaro's rules (its CocoImporter, without
    datumaro): annotations/<task>_<subset>.json under the dataset root, the images of a subset in
    images/<subset>/ (or images/), each at images_dir/<file_name> without leaving it."""
    found = sorted(p for p in Path(out).rglob("*_*.json") if p.name.startswith("instances_"))
    assert len(found) == 1 and found[0].parent.name == "annotations", found
    return found[0]


def datumaro_image_path(instances: Path, file_name: str) -> Path:
    root = instances.parent.parent                     # the folder above annotations/
    subset = instances.stem.split("instances_", 1)[1]
    images = root / "images" / subset if (root / "images" / subset).is_dir() else root / "images"
    path = (images / file_name).resolve()
    assert path.is_relative_to(images.resolve()), file_name        # join_within_base
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # pycocotools' own, under numpy 2
def test_coco_export_is_exact_in_pycocotools_and_scores_1_against_itself(reviewed, tmp_path):
    pycocotools = pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    project, expected = reviewed
    export_project(project, tmp_path / "coco", "coco")
    path = coco_json(tmp_path / "coco")
    assert path == tmp_path / "coco" / "annotations" / "instances_default.json"
    gt = COCO(str(path))
    assert len(gt.getImgIds()) == 2 * 4 + 1 and len(gt.getAnnIds()) == 2 * 4
    for img in gt.loadImgs(gt.getImgIds()):
        assert datumaro_image_path(path, img["file_name"]).is_file()
        assert (img["width"], img["height"]) == (W, H)
    rs = reviewed_set(project)
    want = {}                                 # (file_name, object, role) -> PixRet's own mask
    for o in rs.objects:
        want[(o.query.rel, o.index, "query")] = o.region.to_mask(H, W)
        for d in o.positives():
            want[(rs.images[d.image_id].rel, o.index, "positive")] = d.region.to_mask(H, W)
    kinds = set()
    for ann in gt.loadAnns(gt.getAnnIds()):
        key = (gt.loadImgs(ann["image_id"])[0]["file_name"], ann["pixret"]["object"], ann["pixret"]["role"])
        m = gt.annToMask(ann).astype(bool)
        assert np.array_equal(m, want[key]), key                   # pixel for pixel
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ann["area"] == mask_utils.area(rle) and ann["bbox"] == mask_utils.toBbox(rle).tolist()
        assert ann["iscrowd"] == 0
        kinds.add(type(ann["segmentation"]).__name__)
    assert kinds == {"list", "dict"}       # polygons, and RLE for the region with a hole
    for iou_type, field in (("segm", "segmentation"), ("bbox", "bbox")):      # the ground truth as detections
        results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
                    field: a["bbox"] if field == "bbox" else gt.annToRLE(a)} for a in gt.loadAnns(gt.getAnnIds())]
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), iou_type
    del pycocotools


def hard_regions() -> dict[str, Region]:
    """Regions whose pixels polygons get wrong most easily (image W x H)."""
    line = np.zeros((H, W), bool)
    line[100, 20:200] = True                                            # one pixel thin
    line[30:90, 250] = True
    diagonal = np.zeros((H, W), bool)
    diagonal[np.arange(40, 80), np.arange(40, 80)] = True               # pixels touching at corners only
    pinch = np.zeros((H, W), bool)
    pinch[10:20, 10:20] = pinch[20:30, 20:30] = True                    # two squares meeting at a corner
    ring = np.zeros((H, W), bool)
    ring[50:120, 100:200] = True
    ring[70:100, 130:170] = False                                       # a hole
    ring[80:90, 145:155] = True                                         # an island in the hole
    return {
        "holes": Region.from_mask(ring),
        "parts": Region.from_polygons([[(5, 5), (40, 5), (40, 30), (5, 30)], [(60, 60), (90, 62), (70, 95)],
                                       [(200.4, 150.6), (240.2, 151.1), (220.7, 190.3)]]),
        "thin": Region.from_mask(line),
        "diagonal": Region.from_mask(diagonal),
        "pinch": Region.from_mask(pinch),
        "border": Region.from_polygons([[(-20, -10), (100, -5), (W + 30, H / 2), (W - 1, H - 1), (0, H + 10)]]),
        "tiny": Region.from_mask(np.pad(np.ones((1, 1), bool), ((3, H - 4), (3, W - 4)))),   # one pixel
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_coco_polygons_and_rle_are_pixel_exact_on_hard_regions(fresh, collection, tmp_path):
    """Holes, several parts, one-pixel-thin parts, corner contacts, the image border: annToMask gives
    PixRet's mask back exactly, and area and bbox are pycocotools' own."""
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    (qrel, qpoly), *views = collection.views["object1"]
    qid = review.save_search(fresh, search(fresh, Query(fresh.image_id(qrel), Region.from_polygons([qpoly])),
                                           top_k=3))
    regions = hard_regions()
    targets = [rel for rel, _ in views] + collection.distractors + [rel for rel, _ in collection.views["object2"]]
    placed = dict(zip(targets, regions.items()))
    for rel, (_, region) in placed.items():
        assert region.to_mask(H, W).any()
        review.set_decision(fresh, qid, fresh.image_id(rel), "corrected", region, author="t")
    export_project(fresh, tmp_path / "coco", "coco")
    gt = COCO(str(coco_json(tmp_path / "coco")))
    seen = {}
    for ann in gt.loadAnns(gt.getAnnIds()):
        rel = gt.loadImgs(ann["image_id"])[0]["file_name"]
        if rel not in placed:
            continue
        name, region = placed[rel]
        m = gt.annToMask(ann).astype(bool)
        assert np.array_equal(m, region.to_mask(H, W)), name
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ann["area"] == mask_utils.area(rle) and ann["bbox"] == mask_utils.toBbox(rle).tolist(), name
        seen[name] = type(ann["segmentation"]).__name__
    assert set(seen) == set(regions)
    assert seen["holes"] == "dict" and all(k == "list" for n, k in seen.items() if n != "holes")


def test_coco_square_writes_the_pixels_it_covers():
    """The issue's example: PixRet's square (10, 10)-(20, 20) covers 121 pixels; COCO gets their outline."""
    seg, area, bbox = coco_format.segmentation(Region.from_bbox(10, 10, 20, 20), 40, 40)
    assert seg == [[10.0, 10.0, 10.0, 21.0, 21.0, 21.0, 21.0, 10.0]]
    assert area == 121 and bbox == [10.0, 10.0, 11.0, 11.0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.1, 0.4, 0.7]))
def test_random_masks_and_polygons_agree_with_pycocotools(seed, density):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 40, 2))
    region = Region.from_mask(rng.random((h, w)) < density)
    seg, area, bbox = coco_format.segmentation(region, h, w)
    want = region.to_mask(h, w)
    if isinstance(seg, dict):
        got = mask_utils.decode(seg)
    elif seg:
        got = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
    else:
        got = np.zeros((h, w), np.uint8)
    assert np.array_equal(got.astype(bool), want)
    poly = (rng.uniform(-4, max(h, w) + 4, (int(rng.integers(3, 9)), 2))).ravel().tolist()   # any polygon
    ref = mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[:, :, 0].astype(bool)
    assert np.array_equal(coco_format.polygon_mask([poly], h, w), ref)


def test_coco_round_trip_keeps_holes_roles_and_negatives(reviewed, fresh, tmp_path):
    project, expected = reviewed
    export_project(project, tmp_path / "coco", "coco")
    r = import_annotations(fresh, tmp_path / "coco", "coco")
    assert r.n_objects == 2 and r.n_annotations == 6 and r.n_rejected == 2 and not r.unmatched
    check_round_trip(expected, imported(fresh, "coco"), holes=True, negatives=True, exact=True)


def test_plain_coco_groups_by_category_and_reports_unmatched_images(fresh, collection, tmp_path):
    (rel1, p1), (rel2, p2) = collection.views["object1"][:2]
    doc = {"images": [{"id": 1, "file_name": rel1, "width": W, "height": H},
                      {"id": 2, "file_name": "elsewhere/" + rel2, "width": W, "height": H},
                      {"id": 3, "file_name": "nowhere/ghost.jpg", "width": W, "height": H}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0,
                "segmentation": [(np.asarray(p1) + 0.5).ravel().tolist()]},
               {"id": 2, "image_id": 2, "category_id": 7, "iscrowd": 0,
                "segmentation": [(np.asarray(p2) + 0.5).ravel().tolist()]},
               {"id": 3, "image_id": 3, "category_id": 7, "iscrowd": 0, "bbox": [10, 10, 50, 40]}],
           "categories": [{"id": 7, "name": "poster"}]}
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(doc))
    before = counts(fresh)
    r = import_annotations(fresh, path, "coco")
    assert r.n_objects == 1 and r.n_annotations == 1
    assert r.unmatched == ["nowhere/ghost.jpg (in poster#0)"]
    got = imported(fresh, "coco")
    (qregion, dec), = got.values()
    assert list(got) == [rel1]
    # the regions mean what pycocotools means: its pixels for the polygons, exactly
    for region, seg in ((qregion, doc["annotations"][0]["segmentation"]), (dec[rel2].region,
                                                                         doc["annotations"][1]["segmentation"])):
        assert np.array_equal(region.to_mask(H, W), coco_format.polygon_mask(seg, H, W))
    assert counts(fresh) == (before[0] + 1, before[1] + 1, before[2] + 1)


# -- LabelMe ---------------------------------------------------------------------------------------


def labelme_mask(doc: dict, group_id) -> np.ndarray:
    """An object's pixels by LabelMe's own rules (labelme.utils.shape_to_mask and shapes_to_label,
    without labelme): polygons drawn by PIL with their outline, mask shapes pasted into their box."""
    import base64
    import io

    from PIL import Image, ImageDraw

    out = np.zeros((doc["imageHeight"], doc["imageWidth"]), bool)
    for s in doc["shapes"]:
        if s["group_id"] != group_id:
            continue
        if s["shape_type"] == "mask":
            (x1, y1), (x2, y2) = np.asarray(s["points"]).astype(int)
            out[y1:y2 + 1, x1:x2 + 1] |= np.asarray(Image.open(io.BytesIO(base64.b64decode(s["mask"])))).astype(bool)
        else:
            canvas = Image.fromarray(np.zeros(out.shape, np.uint8))
            ImageDraw.Draw(canvas).polygon([tuple(p) for p in s["points"]], outline=1, fill=1)
            out |= np.asarray(canvas).astype(bool)
    return out


def test_labelme_export_keeps_holes_and_round_trips_exactly(reviewed, fresh, tmp_path):
    project, expected = reviewed
    report = export_project(project, tmp_path / "lm", "labelme")
    assert any("no place for negatives: 2 rejected" in w for w in report.warnings)
    files = sorted((tmp_path / "lm").rglob("view*.json"))
    assert len(files) == 2 * 4
    holed_region = expected["object2/view01.jpg"][1]["object2/view03.jpg"][2]
    assert len(holed_region.polygons_with_holes()[0]) == 2            # the premise: it has a hole
    kinds = set()
    for f in files:
        doc = json.loads(f.read_text())
        assert set(doc) >= {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
        assert doc["imageData"] is None and (doc["imageWidth"], doc["imageHeight"]) == (W, H)
        assert not doc["imagePath"].startswith("/") and (f.parent / doc["imagePath"]).is_file()
        for s in doc["shapes"]:
            assert set(s) >= {"label", "points", "group_id", "shape_type", "flags"}
            assert s["shape_type"] in ("polygon", "mask") and isinstance(s["group_id"], int)
            assert all(len(p) == 2 for p in s["points"])
            kinds.add(s["shape_type"])
        if f.name == "view03.json" and f.parent.name == "object2":
            # read by LabelMe's rules, the holed outline is its pixels exactly, the hole included
            assert [s["shape_type"] for s in doc["shapes"]] == ["mask"] and doc["version"] >= "5.3"
            got = labelme_mask(doc, doc["shapes"][0]["group_id"])
            assert np.array_equal(got, holed_region.to_mask(H, W))
    assert kinds == {"polygon", "mask"}
    r = import_annotations(fresh, tmp_path / "lm", "labelme")
    assert r.n_objects == 2 and r.n_annotations == 6 and not r.unmatched
    check_round_trip(expected, imported(fresh, "labelme"), holes=True, negatives=False, exact=True)


def test_pixbench_labels_fill_holes_and_say_so(reviewed, tmp_path):
    project, expected = reviewed
    report = export_project(project, tmp_path / "pb", "pixbench")
    warning, = [w for w in report.warnings if "holes" in w]
    assert "1 outlines have holes" in warning and "labels/" in warning
    for f in (tmp_path / "pb").rglob("*.json"):
        if f.parent.name in ("labels", "queries"):
            assert all(s["shape_type"] == "polygon" for s in json.loads(f.read_text())["shapes"])


def test_labelme_shapes_of_one_object_unite_and_the_first_file_is_the_query(fresh, collection, tmp_path):
    (rel1, p1), (rel2, p2) = collection.views["object2"][:2]
    d = tmp_path / "lm"
    half = np.asarray(p2)
    for rel, shapes in ((rel1, [p1]), (rel2, [half[[0, 1, 2]].tolist(), half[[0, 2, 3]].tolist()])):
        out = d / rel.replace(".jpg", ".json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"imagePath": "../../" + "x/" + rel, "imageWidth": W, "imageHeight": H,
                                   "shapes": [{"label": "poster", "shape_type": "polygon", "points": s,
                                               "group_id": None, "flags": {}} for s in shapes]}))
    (d / "classes.json").write_text(json.dumps({"names": ["poster"]}))     # not LabelMe: skipped, said so
    r = import_annotations(fresh, d, "labelme")
    assert r.n_objects == 1 and r.n_annotations == 1 and not r.unmatched
    assert any("classes.json" in w for w in r.warnings)
    (qregion, dec), = imported(fresh, "labelme").values()
    assert dec[rel2].region.iou(Region.from_polygons([p2]), H, W) >= 0.99


# -- masks -----------------------------------------------------------------------------------------


def test_masks_are_8bit_pngs_255_inside_one_per_image_and_object(reviewed, tmp_path):
    project, expected = reviewed
    report = export_project(project, tmp_path / "m", "masks")
    index = json.loads((tmp_path / "m" / "masks.json").read_text())["masks"]
    assert len(index) == 2 * 4 and report.n_regions == 6
    by_image = {e["image"]: e for e in index}
    for qrel, (qregion, dec) in expected.items():
        for rel, region in [(qrel, qregion)] + [(r, v[2]) for r, v in dec.items() if v[2] is not None]:
            e = by_image[rel]
            m = cv2.imread(str(tmp_path / "m" / e["mask"]), cv2.IMREAD_UNCHANGED)
            assert m.dtype == np.uint8 and m.shape == (H, W) and set(np.unique(m)) <= {0, 255}
            assert np.array_equal(m == 255, region.to_mask(H, W))


# -- the export folder -----------------------------------------------------------------------------


def user_folder(path):
    """A folder of the user's: a photo, notes, a subfolder. Returns {relative path: bytes}."""
    files = {"notes.txt": b"my notes", "holiday/beach.jpg": b"\xff\xd8 not really a jpeg", ".hidden": b"x"}
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return files


def contents(path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_users_folder_is_refused_whatever_overwrite_says(reviewed, tmp_path):
    project, _ = reviewed
    out = tmp_path / "mine"
    files = user_folder(out)
    for overwrite in (False, True):
        dest = check_export_destination(project, out)
        assert dest.state == "refused" and not dest.allowed and "not a folder a PixRet export made" in dest.message
        with pytest.raises(PixretError, match="nothing in it is replaced"):
            export_project(project, out, "coco", overwrite=overwrite)
        assert contents(out) == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]         # no staging folder left
    with pytest.raises(PixretError, match="project or|collection folder"):
        export_project(project, project.root, "coco", overwrite=True)
    with pytest.raises(PixretError, match="unknown export format"):
        export_project(project, tmp_path / "x", "voc")


def test_new_empty_and_earlier_export_folders(reviewed, tmp_path):
    project, _ = reviewed
    out = tmp_path / "out"
    assert check_export_destination(project, out).state == "new"
    out.mkdir()
    assert check_export_destination(project, out).state == "empty"
    export_project(project, out, "coco")
    marker = json.loads((out / "pixret.json").read_text())
    assert sorted(marker["files"]) == sorted(p for p in contents(out) if p != "pixret.json")
    dest = check_export_destination(project, out)
    assert dest.state == "earlier_export" and dest.replaces
    coco_files = contents(out)
    with pytest.raises(PixretError, match="earlier PixRet export.*--overwrite"):
        export_project(project, out, "labelme")
    assert contents(out) == coco_files
    export_project(project, out, "labelme", overwrite=True)            # replaces it whole
    json_only = {p for p in coco_files if p.endswith(".json") and p != "pixret.json"}
    assert json_only and not json_only & set(contents(out)) and any(out.rglob("*.json"))
    assert oct((out / "pixret.json").stat().st_mode & 0o044) == oct(0o044)  # readable by others
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a file of the user's added to an earlier export makes the folder the user's
    (out / "my_notes.txt").write_text("keep me")
    dest = check_export_destination(project, out)
    assert dest.state == "refused" and "my_notes.txt" in dest.message
    with pytest.raises(PixretError, match="my_notes.txt"):
        export_project(project, out, "coco", overwrite=True)
    assert (out / "my_notes.txt").read_text() == "keep me"
    # a marker without the file list (or damaged) is not trusted
    (out / "my_notes.txt").unlink()
    (out / "pixret.json").write_text('{"pixret_export": 1, "format": "coco"}')
    assert check_export_destination(project, out).state == "refused"
    link = tmp_path / "link"
    link.symlink_to(out)
    assert check_export_destination(project, link).state == "refused"


def test_a_file_that_appears_during_the_export_stops_the_swap(reviewed, tmp_path):
    project, _ = reviewed
    out = tmp_path / "out"
    export_project(project, out, "masks")
    before = contents(out)

    def progress(done, total, stage):
        if stage.startswith("export"):
            (out / "dropped_in.txt").write_text("mine")

    with pytest.raises(PixretError, match="dropped_in.txt"):
        export_project(project, out, "masks", overwrite=True, progress=progress)
    assert contents(out) == {**before, "dropped_in.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_nothing_to_export_is_an_error_that_says_what_to_do(fresh, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(NothingToExport, match="no saved searches"):
        export_project(fresh, out, "coco")
    assert main(["export", "--project", str(fresh.folder), "--format", "pixbench", "--out", str(out), "-q"]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert not out.exists()


def test_cancelled_export_leaves_the_old_export_untouched(reviewed, tmp_path):
    project, _ = reviewed
    out = tmp_path / "out"
    export_project(project, out, "labelme")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    token = CancelToken()

    def progress(done, total, stage):
        if stage.startswith("export") and done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        export_project(project, out, "pixbench", overwrite=True, progress=progress, cancel=token)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# -- import: all or nothing ------------------------------------------------------------------------


def test_a_bad_file_late_in_the_source_leaves_the_project_unchanged(reviewed, fresh, tmp_path):
    project, _ = reviewed
    export_project(project, tmp_path / "pb", "pixbench")
    label = sorted((tmp_path / "pb" / "labels").glob("*.json"))[-1]
    label.write_text(label.read_text()[:-30])
    before = counts(fresh)
    with pytest.raises(FormatError) as e:
        import_annotations(fresh, tmp_path / "pb", "pixbench")
    assert label.name in str(e.value) and "line" in str(e.value)
    assert counts(fresh) == before


def test_a_cancel_while_writing_rolls_the_whole_import_back(reviewed, fresh, tmp_path):
    project, _ = reviewed
    export_project(project, tmp_path / "coco", "coco")
    token = CancelToken()

    def progress(done, total, stage):
        if stage == "writing" and done == 1:
            token.cancel()            # after the first object's rows were added to the transaction

    before = counts(fresh)
    with pytest.raises(Cancelled):
        import_annotations(fresh, tmp_path / "coco", "coco", progress=progress, cancel=token)
    assert counts(fresh) == before


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_export_and_import(reviewed, fresh, tmp_path, capsys):
    project, _ = reviewed
    out = tmp_path / "cli"
    project_dir = str(project.folder)
    assert main(["export", "--project", project_dir, "--format", "coco", "--out", str(out), "-q"]) == 0
    assert "2 objects" in capsys.readouterr().out
    assert main(["export", "--project", project_dir, "--format", "coco", "--out", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "--project", project_dir, "--format", "coco", "--out", str(out), "-q",
                 "--overwrite"]) == 0
    assert main(["import", "--project", str(fresh.folder), "--format", "coco", str(coco_json(out)),
                 "-q"]) == 0
    assert "imported 2 objects" in capsys.readouterr().out
    mine = tmp_path / "Documents"
    files = user_folder(mine)
    assert main(["export", "--project", project_dir, "--format", "pixbench", "--out", str(mine), "-q",
                 "--overwrite"]) == 2
    assert "nothing in it is replaced" in capsys.readouterr().err
    assert contents(mine) == files
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [{"id": 1}], "annotations": []}')
    assert main(["import", "--project", str(fresh.folder), "--format", "coco", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "images[0].file_name" in err


def test_jpg_copies_carry_the_pixels_as_seen(tmp_path):
    """jpg/ holds JPEGs with EXIF orientation applied (FORMAT.md): plain JPEGs are copied byte for
    byte, rotated ones and other formats are decoded as the engine sees them and re-encoded."""
    from PIL import Image

    from engine.formats.export import _write_jpeg
    from engine.ingest import imageio

    rgb = np.zeros((30, 50, 3), np.uint8)
    rgb[:, :10] = 255
    plain, rotated, png = tmp_path / "plain.jpg", tmp_path / "rot.jpg", tmp_path / "img.png"
    Image.fromarray(rgb).save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 degrees clockwise to view
    Image.fromarray(rgb).save(rotated, quality=95, exif=exif)
    Image.fromarray(rgb).save(png)
    for src in (plain, rotated, png):
        dst = tmp_path / "out" / f"{src.stem}.jpg"
        _write_jpeg(src, dst)
        with Image.open(dst) as im:
            assert im.format == "JPEG" and im.getexif().get(0x0112, 1) == 1
        assert imageio.image_size(dst) == imageio.image_size(src)
        assert np.abs(imageio.load_image(dst).astype(int) - imageio.load_image(src).astype(int)).mean() < 4
    assert (tmp_path / "out" / "plain.jpg").read_bytes() == plain.read_bytes()


def test_an_export_killed_midway_leaves_nothing_the_next_one_keeps(reviewed, tmp_path):
    """SIGKILL leaves the hidden staging folder (or the earlier export moved aside); the next export to
    the same folder removes them, and never those of a process that is still running."""
    import subprocess
    import sys

    project, _ = reviewed
    out = tmp_path / "out"
    export_project(project, out, "masks")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    stale = tmp_path / f".out.export-{dead}-abc123"
    (stale / "masks").mkdir(parents=True)
    (stale / "masks" / "x.png").write_bytes(b"half")
    moved = tmp_path / f".out.old-{dead}-def456"
    shutil.copytree(out, moved)
    live = tmp_path / f".out.export-{os.getpid()}-ghi789"           # an export running now (this process)
    live.mkdir()
    export_project(project, out, "masks", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name])
