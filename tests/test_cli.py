"""The command-line contract of DESIGN.md on a small generated set: files, fields, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.base.regions import Region
from engine.cli import main
from tests.conftest import write_pixbench


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def cli_project(small_collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cliproj")
    assert main(["index", str(small_collection.root), "--project", str(folder), "-q"]) == 0
    return folder


def test_index_then_status_lists_every_image(cli_project, small_collection, capsys):
    assert main(["status", "--project", str(cli_project)]) == 0
    out = capsys.readouterr().out
    assert f"{3 * 4 + 8} ok" in out


def test_search_with_polygon_writes_ranked_results_with_regions(cli_project, small_collection, tmp_path):
    qrel, qpoly = small_collection.query("object3")
    poly = tmp_path / "q.json"
    poly.write_text(json.dumps({"shapes": [{"label": "o", "shape_type": "polygon", "points": qpoly}]}))
    out = tmp_path / "result.json"
    code = main(["search", "--project", str(cli_project), "--query", str(small_collection.root / qrel),
                 "--polygon", str(poly), "--out", str(out), "-q"])
    assert code == 0
    doc = json.loads(out.read_text())
    truth = {rel: p for rel, p in small_collection.views["object3"][1:]}
    top = doc["results"][: len(truth)]
    assert {r["image"] for r in top} == set(truth)  # names relative to the root, with extension
    for r in top:
        assert r["evidence"]["inliers"] >= 10
        assert Region.from_polygons(r["polygons"]).iou(Region.from_polygons([truth[r["image"]]]), 480, 640) > 0.85
    scores = [r["score"] for r in doc["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_with_bbox_and_mask(cli_project, small_collection, tmp_path):
    qrel, qpoly = small_collection.query("object1")
    region = Region.from_polygons([qpoly])
    x1, y1, x2, y2 = region.bounds
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), region.to_mask(480, 640).astype(np.uint8) * 255)
    for flag, value in (("--bbox", f"{x1},{y1},{x2},{y2}"), ("--mask", str(mask))):
        out = tmp_path / f"r{flag}.json"
        assert main(["search", "--project", str(cli_project), "--query", qrel, flag, value,
                     "--out", str(out), "-q", "--top", "5"]) == 0
        doc = json.loads(out.read_text())
        assert len(doc["results"]) == 5
        assert doc["results"][0]["image"] in {r for r, _ in small_collection.views["object1"][1:]}


def test_bad_input_names_the_file_and_exits_2(cli_project, small_collection, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"shapes": [ {"points": ')
    r = run("search", "--project", str(cli_project), "--query", "x.jpg", "--polygon", str(bad), "--out",
            str(tmp_path / "o.json"))
    assert r.returncode == 2 and "broken.json" in r.stderr and "line" in r.stderr
    r = run("search", "--project", str(tmp_path / "nowhere"), "--query", "x.jpg", "--bbox", "1,2,3,4", "--out",
            str(tmp_path / "o.json"))
    assert r.returncode == 2 and "nowhere: no such folder" in r.stderr
    r = run("search", "--project", str(cli_project), "--query", "x.jpg", "--bbox", "5,5,1,1", "--out", "o.json")
    assert r.returncode == 2 and "--bbox" in r.stderr


def test_bench_writes_the_contract_files_and_metrics(small_collection, tmp_path):
    bench = write_pixbench(small_collection, tmp_path / "set")
    out = tmp_path / "out"
    assert main(["bench", str(bench), "--out", str(out), "--method", "sv", "-q"]) == 0
    gnd = json.loads((bench / "gnd.json").read_text())
    for q, qname in enumerate(gnd["qimlist"]):
        ranking = json.loads((out / "ranking" / f"{q}.json").read_text())
        assert ranking["query"] == qname
        names = [r["image"] for r in ranking["results"]]
        assert sorted(names) == sorted(gnd["imlist"])  # fewer than 100 images: all of them, once
        positives = {gnd["imlist"][i] for i in gnd["gnd"][q]["easy"]}
        assert set(names[: len(positives)]) == positives
        pairs = json.loads((out / "pairs" / f"{q}.json").read_text())
        assert set(pairs["pairs"]) == positives and all(pairs["pairs"].values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "sv"
    m = metrics["metrics"]["medium"]
    assert m["mAP"] == pytest.approx(100.0)
    assert m["mAP@50:5:95_mask"] > 80 and m["mIoU_mask"] > 85
    assert len(metrics["timing"]["query_s"]) == len(gnd["qimlist"]) and metrics["timing"]["index_s"] > 0


def test_index_without_the_graph_then_with_it(tmp_path):
    from engine.demo import make_collection

    root = tmp_path / "photos"
    make_collection(root, n_objects=1, views=3, n_distractors=2, seed=4)
    project = tmp_path / "proj"
    assert main(["index", str(root), "--project", str(project), "--no-graph", "-q"]) == 0
    assert not (project / "graph").exists()
    assert main(["index", str(root), "--project", str(project), "-q"]) == 0  # catches up
    assert any((project / "graph").iterdir())


def test_objects_and_search_by_object_and_recall(cli_project, small_collection, tmp_path, capsys):
    """A reviewed search becomes an object: listed, renamed, searched by name, recalled from a redrawn view."""
    import shutil

    from engine.annotate import review
    from engine.project import Project

    folder = tmp_path / "proj"
    shutil.copytree(cli_project, folder)
    qrel, qpoly = small_collection.query("object2")
    x1, y1, x2, y2 = Region.from_polygons([qpoly]).bounds
    out = tmp_path / "r.json"
    args = ["--project", str(folder), "-q"]
    assert main(["search", *args, "--query", qrel, "--bbox", f"{x1},{y1},{x2},{y2}", "--out", str(out), "--save"]) == 0
    assert "saved as search 1" in capsys.readouterr().err
    views = dict(small_collection.views["object2"][1:])
    with Project.open(folder) as project:  # the reviewer accepts the true views (as the app would)
        for r in json.loads(out.read_text())["results"][:5]:
            if r["image"] in views:
                review.set_decision(project, 1, project.image_id(small_collection.root / r["image"]), "corrected",
                                    Region.from_polygons([views[r["image"]]]))
    assert main(["objects", *args]) == 0
    listed = capsys.readouterr().out
    assert "view01" in listed and f"{len(views)} reviewed · 0 rejected" in listed
    assert main(["objects", *args, "rename", "view01", "poster"]) == 0
    assert main(["objects", *args, "show", "poster"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("corrected") == len(views) and "query" in shown

    assert main(["search", *args, "--object", "poster", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["object"] == "poster"
    assert {r["image"] for r in doc["results"][: len(views)]} == set(views)
    assert all(r["stage"] == "reviewed" for r in doc["results"][: len(views)])

    # a box drawn again on a reviewed view is recognized; --no-recall searches afresh
    rel, poly = small_collection.views["object2"][2]
    bx1, by1, bx2, by2 = Region.from_polygons([poly]).bounds
    box = ["--query", rel, "--bbox", f"{bx1},{by1},{bx2},{by2}", "--out", str(out)]
    assert main(["search", *args, *box]) == 0
    assert "seen before: object 'poster'" in capsys.readouterr().err
    assert json.loads(out.read_text())["object"] == "poster"
    assert main(["search", *args, *box, "--no-recall"]) == 0
    assert json.loads(out.read_text())["object"] is None

    assert main(["objects", *args, "rename", "nothing", "x"]) == 2
    assert "no object 'nothing'" in capsys.readouterr().err
    assert main(["search", *args, "--out", str(out)]) == 2
    assert main(["objects", *args, "forget", "poster"]) == 0
    assert main(["objects", *args]) == 0
    assert "no objects yet" in capsys.readouterr().out


# -- issue 12: the smaller ones ------------------------------------------------------------------


def test_version_is_printed(capsys):
    from engine import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"pixret {__version__}"


def test_a_relative_query_is_left_out_of_its_own_results_and_exports(cli_project, small_collection, tmp_path,
                                                                       monkeypatch):
    """--query relative to the working directory (not to the collection): the query image is the
    collection image it is, so it is not its own hit #1, and a saved search exports with it."""
    import shutil

    from engine.annotate import review
    from engine.formats.export import export_project
    from engine.project import Project

    folder = tmp_path / "proj"
    shutil.copytree(cli_project, folder)
    root = small_collection.root
    qrel, qpoly = small_collection.query("object1")
    monkeypatch.chdir(root.parent)
    given = f"{root.name}/{qrel}"
    assert not (root / given).exists()  # the premise: only the working directory makes sense of it
    x1, y1, x2, y2 = Region.from_polygons([qpoly]).bounds
    out = tmp_path / "r.json"
    assert main(["search", "--project", str(folder), "--query", given, "--bbox", f"{x1},{y1},{x2},{y2}",
                 "--out", str(out), "--save", "--no-recall", "-q"]) == 0
    results = [r["image"] for r in json.loads(out.read_text())["results"]]
    assert qrel not in results
    assert set(results[:3]) == {rel for rel, _ in small_collection.views["object1"][1:]}

    monkeypatch.chdir(tmp_path)  # a later command, elsewhere
    with Project.open(folder) as project:
        hit = review.load_search(project, 1).hits[0]
        review.set_decision(project, 1, hit.image_id, "accepted", hit.region)
        report = export_project(project, tmp_path / "export", "coco")
    assert report.n_objects == 1 and not report.warnings
    coco = tmp_path / "export" / "annotations" / "instances_default.json"
    names = {im["file_name"] for im in json.loads(coco.read_text())["images"]}
    assert qrel in names


def test_a_failed_index_leaves_no_project_behind(tmp_path, capsys):
    project = tmp_path / "P"
    assert main(["index", str(tmp_path / "nonexistent"), "--project", str(project), "-q"]) == 2
    assert "nonexistent: no such folder" in capsys.readouterr().err
    assert not project.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no photos here")
    deep = tmp_path / "a" / "b" / "P"
    assert main(["index", str(empty), "--project", str(deep), "-q"]) == 2
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # the folders made for it are gone too

    mine = tmp_path / "mine"  # a folder the user had: kept, with exactly what it held
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    assert main(["index", str(empty), "--project", str(mine), "-q"]) == 2
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"] and (mine / "keep.txt").read_text() == "mine"


def test_regions_outside_the_query_image_are_refused_with_its_size(cli_project, small_collection, tmp_path,
                                                                   capsys):
    qrel, _ = small_collection.query("object1")
    w, h = Image.open(small_collection.root / qrel).size
    args = ["search", "--project", str(cli_project), "--query", qrel, "--out", str(tmp_path / "o.json"), "-q"]
    assert main([*args, "--bbox", f"{w + 10},{h + 10},{w + 100},{h + 100}"]) == 2
    err = capsys.readouterr().err
    assert "outside the image" in err and f"{w}x{h} pixels" in err
    poly = tmp_path / "q.json"
    poly.write_text(json.dumps({"shapes": [{"label": "o", "shape_type": "polygon",
                                            "points": [[-50, -50], [-10, -50], [-10, -10]]}]}))
    assert main([*args, "--polygon", str(poly)]) == 2
    assert f"{w}x{h} pixels" in capsys.readouterr().err
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.full((h // 2, w // 2), 255, np.uint8))
    assert main([*args, "--mask", str(mask)]) == 2
    assert f"the mask is {w // 2}x{h // 2} pixels" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
    assert main([*args, "--bbox", f"{w - 50},{h - 50},{w + 50},{h + 50}"]) == 0  # partly inside: searched


def test_a_missing_project_folder_is_said_as_such(tmp_path, capsys):
    assert main(["status", "--project", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere: no such folder" in err and "not a PixRet project" not in err
    assert main(["status", "--project", str(tmp_path)]) == 2  # a folder, but no project in it
    assert "not a PixRet project" in capsys.readouterr().err


def test_a_closed_output_pipe_ends_quietly(cli_project):
    # `pixret status | head -1`: the reader is gone before everything is written
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "status", "--project", str(cli_project)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
