"""Labels (classes): the project's list, each object's label (its name by default), what the exports
write (COCO categories, LabelMe labels) and what an import brings back."""
from __future__ import annotations

import json
import shutil

import pytest

from engine.annotate import labels, objects, review
from engine.base.errors import PixretError
from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import make_collection
from engine.formats.export import export_project
from engine.formats.importers import import_annotations
from engine.pipeline import search
from engine.project import Project

W, H = 320, 240


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("labelcol"), n_objects=2, views=3, n_distractors=2, size=(W, H),
                           seed=5)


@pytest.fixture(scope="module")
def blank(collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelblank") / "project"
    with Project.create(folder, root=collection.root) as p:
        p.index_folder(collection.root)
    return folder


@pytest.fixture
def project(blank, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(blank, folder)
    with Project.open(folder) as p:
        yield p


def reviewed_object(p, collection, name: str) -> int:
    """Search the object from its first view and accept its other views (their true outlines): the
    search becomes an object, named after its query image. Returns the object id."""
    qrel, qpoly = collection.views[name][0]
    result = search(p, Query(p.image_id(qrel), Region.from_polygons([qpoly])), top_k=5)
    qid = review.save_search(p, result)
    for rel, poly in collection.views[name][1:]:
        review.set_decision(p, qid, p.image_id(rel), "accepted", Region.from_polygons([poly]))
    return objects.object_of_query(p, qid)


def coco_doc(folder):
    return json.loads(next(folder.rglob("instances_*.json")).read_text())


def labelme_labels(folder) -> set[str]:
    return {s["label"] for f in folder.rglob("*.json") if f.name != "pixret.json"
            for s in json.loads(f.read_text()).get("shapes", [])}


def test_the_label_list(project):
    assert labels.list_labels(project) == []
    a = labels.add_label(project, "  poster ")
    assert a.name == "poster" and a.color.startswith("#")
    assert labels.add_label(project, "poster").id == a.id  # the same name is the same label
    b = labels.add_label(project, "statue", "#123456")
    assert [(x.name, x.color) for x in labels.list_labels(project)] == [("poster", a.color), ("statue", "#123456")]
    assert a.color != labels.add_label(project, "sign").color  # new labels get distinct colours
    labels.rename_label(project, b.id, "sculpture")
    with pytest.raises(PixretError, match="already exists"):
        labels.rename_label(project, "sculpture", "poster")
    with pytest.raises(PixretError, match="#rrggbb"):
        labels.set_label_color(project, "poster", "red")
    labels.set_label_color(project, "poster", "#FF0000")
    labels.remove_label(project, "sign")
    assert [(x.name, x.color) for x in labels.list_labels(project)] == [("poster", "#ff0000"),
                                                                       ("sculpture", "#123456")]
    with pytest.raises(PixretError, match="cannot be empty"):
        labels.add_label(project, "   ")


def test_an_object_is_labelled_by_its_name_until_a_label_is_chosen(project, collection):
    oid = reviewed_object(project, collection, "object1")
    obj = objects.load_object(project, oid)
    assert obj.name == "view01" and obj.label == "view01" and obj.label_color is None
    objects.rename_object(project, oid, "poster")
    assert objects.load_object(project, oid).label == "poster"  # the name, renamed

    labels.set_object_label(project, oid, "sign")  # a new label joins the list
    obj = objects.load_object(project, oid)
    assert obj.label == "sign" and obj.label_color == labels.list_labels(project)[0].color
    assert [(x.name, x.n_objects) for x in labels.list_labels(project)] == [("sign", 1)]
    labels.rename_label(project, "sign", "road sign")  # every object labelled with it follows
    assert objects.load_object(project, oid).label == "road sign"
    labels.remove_label(project, "road sign")
    assert objects.load_object(project, oid).label == "poster"  # back to its own name


def test_exports_write_the_label_and_an_import_brings_it_back(project, collection, tmp_path, blank):
    first = reviewed_object(project, collection, "object1")
    second = reviewed_object(project, collection, "object2")
    labels.set_object_label(project, first, "poster")
    objects.rename_object(project, second, "painting")  # no label chosen: its name is its label

    export_project(project, tmp_path / "coco", "coco")
    doc = coco_doc(tmp_path / "coco")
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert sorted(names.values()) == ["painting", "poster"]
    by_object = {}
    for a in doc["annotations"]:
        by_object.setdefault(a["pixret"]["object"], set()).add(names[a["category_id"]])
    assert sorted(map(sorted, by_object.values())) == [["painting"], ["poster"]]  # each object's own label

    export_project(project, tmp_path / "labelme", "labelme")
    assert labelme_labels(tmp_path / "labelme") == {"poster", "painting"}

    # into a fresh project of the same photos: the labels are the list's, each object carries its own
    folder = tmp_path / "again"
    shutil.copytree(blank, folder)
    with Project.open(folder) as again:
        report = import_annotations(again, tmp_path / "coco", "coco")
        assert report.n_objects == 2 and not report.unmatched
        assert sorted(x.name for x in labels.list_labels(again)) == ["painting", "poster"]
        assert sorted(o.label for o in objects.list_objects(again)) == ["painting", "poster"]
        # what was matched to which photo
        assert {(src.rsplit("/", 1)[-1], path) for _o, src, path in report.matched} >= \
            {(rel.rsplit("/", 1)[-1], rel) for rel, _ in collection.views["object1"][1:]}
        export_project(again, tmp_path / "coco2", "coco")
        assert sorted(c["name"] for c in coco_doc(tmp_path / "coco2")["categories"]) == ["painting", "poster"]
