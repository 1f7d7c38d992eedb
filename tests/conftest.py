"""Shared fixtures: generated collections whose right answers are known."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.demo import GeneratedCollection, make_collection

DEV = Path(__file__).resolve().parents[2] / "shared" / "bench" / "dev"


@pytest.fixture(scope="session")
def small_collection(tmp_path_factory) -> GeneratedCollection:
    """3 objects x 4 views + 8 distractors, 640x480 JPEGs (generated once per test session)."""
    root = tmp_path_factory.mktemp("collection")
    return make_collection(root, n_objects=3, views=4, n_distractors=8, seed=7)


@pytest.fixture(scope="session")
def indexed_project(small_collection, tmp_path_factory):
    """The small collection indexed into a project (read-only for tests: copy before changing)."""
    from engine.project import Project

    folder = tmp_path_factory.mktemp("project")
    project = Project.create(folder, root=small_collection.root)
    project.index_folder(small_collection.root)
    yield project
    project.close()


def write_pixbench(collection: GeneratedCollection, out: Path) -> Path:
    """Lay a generated collection out as a PixBench set: each object's first view is a query."""
    import shutil

    (out / "jpg").mkdir(parents=True)
    (out / "queries").mkdir()
    (out / "labels").mkdir()

    def flat(rel: str) -> str:
        return rel.replace("/", "__").rsplit(".", 1)[0]

    imlist, qimlist, gnd = [], [], []
    for views in collection.views.values():
        for rel, _ in views[1:]:
            imlist.append(flat(rel))
    imlist += [flat(r) for r in collection.distractors]
    for rel in [r for v in collection.views.values() for r, _ in v] + collection.distractors:
        shutil.copy(collection.root / rel, out / "jpg" / f"{flat(rel)}.jpg")

    def labelme(name, poly):
        return {"imagePath": f"../jpg/{name}.jpg", "imageWidth": 640, "imageHeight": 480,
                "shapes": [{"label": "object", "shape_type": "polygon", "points": poly}]}

    for q, views in enumerate(collection.views.values()):
        qrel, qpoly = views[0]
        qimlist.append(flat(qrel))
        xs, ys = [p[0] for p in qpoly], [p[1] for p in qpoly]
        easy = [imlist.index(flat(r)) for r, _ in views[1:]]
        gnd.append({"bbx": [min(xs), min(ys), max(xs), max(ys)], "easy": easy, "hard": [], "junk": [],
                    "pixel_gt": True})
        (out / "queries" / f"{q}.json").write_text(json.dumps(labelme(flat(qrel), qpoly)))
        for rel, poly in views[1:]:
            i = imlist.index(flat(rel))
            (out / "labels" / f"{q}_{i}.json").write_text(json.dumps(labelme(flat(rel), poly)))
    (out / "gnd.json").write_text(json.dumps({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}))
    return out
