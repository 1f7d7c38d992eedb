"""LabelMe and PixBench readers: the dev set reads, and malformed files name the file and the field/line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import FormatError
from engine.base.regions import Region
from engine.formats import labelme
from engine.formats.labelme import labelme_region, read_labelme, write_labelme
from engine.formats.pixbench import load_pixbench

DEV = Path("/work/shared/bench/dev")
needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")


def labelme_doc(shapes, w=40, h=30, **extra) -> dict:
    return {"version": "5.0.1", "imagePath": "../jpg/a.jpg", "imageWidth": w, "imageHeight": h,
            "imageData": None, "flags": {}, "shapes": shapes, **extra}


def polygon(points, label="object", kind="polygon") -> dict:
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}}


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
    return path


def tiny_bench(tmp_path: Path, gnd: list[dict], imlist=("a", "b", "c"), qimlist=None) -> Path:
    qimlist = list(qimlist or [f"q{k}" for k in range(len(gnd))])
    write(tmp_path / "gnd.json", {"imlist": list(imlist), "qimlist": qimlist, "gnd": gnd})
    return tmp_path


ENTRY = {"bbx": [1, 2, 10, 12], "easy": [0], "hard": [1], "junk": [2], "pixel_gt": True}


# -- PixBench -------------------------------------------------------------------------------------


@needs_dev
def test_dev_set_reads_with_its_regions():
    b = load_pixbench(DEV)
    raw = json.loads((DEV / "gnd.json").read_text())
    assert b.imlist == tuple(raw["imlist"]) and b.qimlist == tuple(raw["qimlist"])
    assert len(b.gnd) == len(b.qimlist) == 37 and len(b.imlist) == 299
    e0 = raw["gnd"][0]
    assert b.gnd[0].easy == tuple(e0["easy"]) and b.gnd[0].bbx == tuple(float(v) for v in e0["bbx"])
    assert b.positives(0, "medium") == tuple(sorted(e0["easy"] + e0["hard"]))
    assert b.positives(0, "hard") == tuple(sorted(e0["hard"]))
    assert b.junk(0, "medium") == tuple(sorted(e0["junk"]))
    assert b.junk(0, "hard") == tuple(sorted(e0["easy"] + e0["junk"]))
    assert b.image_path(b.qimlist[0]).is_file() and b.image_path(b.imlist[-1]).is_file()
    q = b.query_region(0)
    x1, y1, x2, y2 = q.bounds
    assert (x1, y1, x2, y2) == pytest.approx(b.gnd[0].bbx, abs=0.01)
    for i in b.positives(0):
        lab = b.label_region(0, i)
        w, h = b.image_size(b.imlist[i])
        assert not lab.is_empty and lab.to_mask(h, w).any()
    assert b.label_region(0, b.positives(0)[0]) is b.label_region(0, b.positives(0)[0])   # cached
    assert b.index_of(b.imlist[5]) == 5 and b.index_of("nope") is None


@needs_dev
def test_image_size_comes_from_the_jpeg_header():
    b = load_pixbench(DEV)
    name = b.imlist[0]
    from PIL import Image
    with Image.open(b.image_path(name)) as im:
        assert b.image_size(name) == im.size


def test_protocols_medium_and_hard(tmp_path):
    b = load_pixbench(tiny_bench(tmp_path, [ENTRY]))
    assert b.positives(0, "medium") == (0, 1) and b.junk(0, "medium") == (2,)
    assert b.positives(0, "hard") == (1,) and b.junk(0, "hard") == (0, 2)
    with pytest.raises(ValueError):
        b.positives(0, "easy")


def test_out_of_range_index_names_the_field(tmp_path):
    bad = dict(ENTRY, easy=[0, 1, 400], hard=[])
    with pytest.raises(FormatError) as e:
        load_pixbench(tiny_bench(tmp_path, [ENTRY, bad]))
    assert e.value.where == "gnd[1].easy[2]"
    assert e.value.problem == "index 400 out of range for imlist of 3"
    assert str(e.value).startswith(str(tmp_path / "gnd.json"))


@pytest.mark.parametrize("change, where", [
    ({"easy": [0], "junk": [0], "hard": []}, "gnd[0]"),       # both easy and junk
    ({"easy": [0.0]}, "gnd[0].easy[0]"),
    ({"hard": "1"}, "gnd[0].hard"),
    ({"bbx": [1, 2, 3]}, "gnd[0].bbx"),
    ({"bbx": [10, 2, 3, 4]}, "gnd[0].bbx"),
    ({"pixel_gt": "yes"}, "gnd[0].pixel_gt"),
])
def test_bad_gnd_entries_name_the_field(tmp_path, change, where):
    with pytest.raises(FormatError) as e:
        load_pixbench(tiny_bench(tmp_path, [dict(ENTRY, **change)]))
    assert e.value.where == where


def test_bad_lists_name_the_field(tmp_path):
    with pytest.raises(FormatError) as e:
        load_pixbench(tiny_bench(tmp_path, [ENTRY], imlist=("a", "b", "a")))
    assert e.value.where == "imlist[2]" and "duplicate" in e.value.problem
    with pytest.raises(FormatError) as e:
        load_pixbench(tiny_bench(tmp_path, [ENTRY, ENTRY], qimlist=["q0"]))
    assert e.value.where == "gnd"


def test_truncated_gnd_names_the_line(tmp_path):
    write(tmp_path / "gnd.json", '{\n "imlist": ["a",\n  "b"],\n "qimlist": [')
    with pytest.raises(FormatError) as e:
        load_pixbench(tmp_path)
    assert e.value.where.startswith("line 4")
    assert "gnd.json: line 4" in str(e.value)


def test_missing_gnd_and_missing_label(tmp_path):
    with pytest.raises(FormatError):
        load_pixbench(tmp_path / "nowhere")
    with pytest.raises(FormatError) as e:
        load_pixbench(tmp_path)
    assert "gnd.json" in str(e.value)
    b = load_pixbench(tiny_bench(tmp_path, [ENTRY]))
    with pytest.raises(FormatError) as e:
        b.label_region(0, 1)
    assert e.value.path.endswith("0_1.json")


def test_label_region_and_size_from_the_label_file(tmp_path):
    b = load_pixbench(tiny_bench(tmp_path, [ENTRY]))
    write(b.label_path(0, 1), labelme_doc([polygon([[1, 1], [8, 1], [8, 6]])], w=33, h=22))
    assert b.label_region(0, 1).area == pytest.approx(17.5)
    assert b.image_size("b") == (33, 22)      # no jpg needed


# -- LabelMe --------------------------------------------------------------------------------------


@needs_dev
def test_reads_dev_query_files():
    lm = read_labelme(DEV / "queries" / "0.json")
    assert lm.width > 0 and lm.height > 0 and lm.shapes and not lm.warnings
    assert lm.image_file().is_file()
    assert lm.shapes[0].shape_type == "polygon" and lm.shapes[0].label == "object"
    assert labelme_region(lm) == labelme_region(DEV / "queries" / "0.json") == lm.region()


def test_shape_types_and_warnings(tmp_path):
    doc = labelme_doc([
        polygon([[0, 0], [10, 0], [10, 10], [0, 10]], label="a"),
        polygon([[20, 0], [30, 10]], label="b", kind="rectangle"),
        polygon([[5, 20], [5, 25]], label="a", kind="circle"),
        polygon([[1, 1]], kind="point"),
        polygon([[1, 1], [2, 2]], kind="line"),
        polygon([[1, 1], [2, 2]], kind="cuboid"),
        polygon([[1, 1], [2, 2]]),                 # a polygon without area
    ])
    lm = read_labelme(write(tmp_path / "x.json", doc))
    assert [s.shape_type for s in lm.shapes] == ["polygon", "rectangle", "circle"]
    assert len(lm.warnings) == 4 and "shapes[5]" in lm.warnings[2]
    assert labelme_region(lm, "b").area == pytest.approx(100)
    assert labelme_region(lm, "a").area == pytest.approx(100 + np.pi * 25, rel=1e-2)
    assert labelme_region(lm).area == pytest.approx(200 + np.pi * 25, rel=1e-2)
    assert labelme_region(lm, "none").is_empty


def test_old_files_without_shape_type_are_polygons(tmp_path):
    shape = {"label": "x", "points": [[0, 0], [4, 0], [4, 4]]}
    lm = read_labelme(write(tmp_path / "old.json", labelme_doc([shape])))
    assert lm.shapes[0].shape_type == "polygon"


def test_truncated_json_names_the_line(tmp_path):
    text = json.dumps(labelme_doc([polygon([[0, 0], [10, 0], [10, 10]])]), indent=1)
    path = write(tmp_path / "cut.json", text[: len(text) // 2])
    with pytest.raises(FormatError) as e:
        read_labelme(path)
    lines = text[: len(text) // 2].count("\n") + 1
    assert e.value.where.startswith(f"line {lines}")
    assert str(path) in str(e.value) and "invalid JSON" in str(e.value)


@pytest.mark.parametrize("points, where", [
    ([[0, 0], "1,2", [3, 3]], "shapes[1].points[1]"),
    ([[0, 0], [1], [3, 3]], "shapes[1].points[1]"),
    ([[0, 0], [1, None], [3, 3]], "shapes[1].points[1]"),
    ([[0, 0], [1, 2], [3, 3, 4]], "shapes[1].points[2]"),
    ({"x": 1}, "shapes[1].points"),
])
def test_bad_point_names_the_field(tmp_path, points, where):
    doc = labelme_doc([polygon([[0, 0], [1, 0], [1, 1]]), polygon(points)])
    with pytest.raises(FormatError) as e:
        read_labelme(write(tmp_path / "bad.json", doc))
    assert e.value.where == where
    assert str(e.value) == f"{tmp_path / 'bad.json'}: {where}: {e.value.problem}"


@pytest.mark.parametrize("doc, where", [
    ([1, 2], ""),
    (labelme_doc(None), "shapes"),
    (labelme_doc([], w=0), "imageWidth"),
    (labelme_doc([], h=12.5), "imageHeight"),
    (labelme_doc([3]), "shapes[0]"),
    (labelme_doc([polygon([[0, 0], [1, 1]], label=7)]), "shapes[0].label"),
    (labelme_doc([polygon([[0, 0]], kind="rectangle")]), "shapes[0].points"),
    (labelme_doc([], imagePath=5), "imagePath"),
])
def test_malformed_files_name_the_field(tmp_path, doc, where):
    with pytest.raises(FormatError) as e:
        read_labelme(write(tmp_path / "bad.json", doc))
    assert e.value.where == where


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError) as e:
        read_labelme(tmp_path / "none.json")
    assert "no such file" in str(e.value)


def test_write_then_read_gives_the_same_region(tmp_path):
    region = Region.from_polygons([[[1.25, 2.5], [30.125, 3.0], [20.0, 25.75]], [[32, 2], [39, 2], [39, 9]]])
    path = tmp_path / "out" / "a.json"
    write_labelme(path, "../jpg/a.jpg", 40, 30, region, label="statue")
    lm = read_labelme(path)
    assert (lm.width, lm.height, lm.image_path) == (40, 30, "../jpg/a.jpg")
    assert {s.label for s in lm.shapes} == {"statue"}
    assert labelme_region(lm) == region
    assert np.array_equal(labelme_region(lm).to_mask(30, 40), region.to_mask(30, 40))
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]   # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    write_labelme(path, "a.jpg", 10, 10, Region.from_bbox(1, 1, 5, 5))
    before = path.read_text()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(labelme.os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_labelme(path, "a.jpg", 10, 10, Region.from_bbox(2, 2, 8, 8))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def mask_shape(crop, x1=5, y1=4, points=None, data=None) -> dict:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(crop, bool)).save(buf, format="PNG")
    h, w = np.asarray(crop).shape
    return {"label": "o", "shape_type": "mask", "group_id": None, "flags": {},
            "points": points or [[x1, y1], [x1 + w - 1, y1 + h - 1]],
            "mask": data if data is not None else base64.b64encode(buf.getvalue()).decode()}


def test_mask_shapes_read_as_their_pixels(tmp_path):
    crop = np.ones((12, 20), bool)
    crop[3:8, 5:15] = False                                   # a hole
    lm = read_labelme(write(tmp_path / "m.json", labelme_doc([mask_shape(crop)])))
    want = np.zeros((30, 40), bool)
    want[4:16, 5:25] = crop
    assert lm.shapes[0].shape_type == "mask"
    assert np.array_equal(labelme_region(lm).to_mask(30, 40), want)


@pytest.mark.parametrize("shape, where", [
    (mask_shape(np.ones((3, 3)), data="not base64!"), "shapes[0].mask"),
    (mask_shape(np.ones((3, 3)), data="aGVsbG8="), "shapes[0].mask"),                 # base64, not a PNG
    (mask_shape(np.ones((3, 3)), points=[[0, 0], [9, 9]]), "shapes[0].mask"),           # 3x3 PNG, 10x10 box
    (mask_shape(np.ones((3, 3)), points=[[5, 5], [1, 1]]), "shapes[0].points"),
    (mask_shape(np.ones((3, 3)), points=[[0, 0], [10**6, 10**6]]), "shapes[0].mask"),   # too large a box
    ({**mask_shape(np.ones((3, 3))), "mask": None}, "shapes[0].mask"),
])
def test_bad_mask_shapes_name_the_field(tmp_path, shape, where):
    with pytest.raises(FormatError) as e:
        read_labelme(write(tmp_path / "bad.json", labelme_doc([shape])))
    assert e.value.where == where


def test_holes_are_mask_shapes_or_filled_and_counted(tmp_path):
    ring = Region.from_polygons([[[2, 2], [30, 2], [30, 25], [2, 25]]]).difference(
        Region.from_bbox(10, 8, 20, 16))
    other = Region.from_bbox(33, 3, 38, 8)
    region = ring.union(other)
    assert write_labelme(tmp_path / "kept.json", "a.jpg", 40, 30, region, holes=True) == 0
    assert write_labelme(tmp_path / "filled.json", "a.jpg", 40, 30, region) == 1
    kept, filled = read_labelme(tmp_path / "kept.json"), read_labelme(tmp_path / "filled.json")
    assert sorted(s.shape_type for s in kept.shapes) == ["mask", "polygon"]
    assert {s.shape_type for s in filled.shapes} == {"polygon"}
    assert np.array_equal(labelme_region(kept).to_mask(30, 40), region.to_mask(30, 40))
    assert labelme_region(filled).to_mask(30, 40)[12, 15]           # the hole, filled
