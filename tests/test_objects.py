"""Object memory and self-adaptation (engine.annotate.objects), on generated photos with known outlines.

The chain collection: a poster's left half in view A, the whole poster in B, its right half in C.
A query on A's half finds B but not C (they share nothing); once B is accepted, searching for the
object finds C through B.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.annotate import objects, review
from engine.base.errors import PixretError
from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import _save_jpeg, object_polygon, paste, random_homography, texture
from engine.pipeline import search
from engine.project import Project
from engine.segment.outline import GUESSES

TW, TH = 420, 300


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Images A (left half), B (whole poster), C (right half), D (whole, another view), 8 others."""
    root = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(11)
    poster = texture(rng, TH, TW, busy=140)
    parts = {"A": poster[:, : TW // 2], "B": poster, "C": poster[:, TW // 2:], "D": poster}
    truth = {}
    for name, part in parts.items():
        h, w = part.shape[:2]
        Hm = random_homography(rng, w, h, 640, 480, 0.4)
        _save_jpeg(root / f"{name}.jpg", paste(texture(rng, 480, 640, busy=25), np.ascontiguousarray(part), Hm, rng))
        truth[name] = Region.from_polygons([object_polygon(Hm, w, h)])
    for d in range(8):
        _save_jpeg(root / f"other{d}.jpg", texture(rng, 480, 640, busy=40))
    folder = tmp_path_factory.mktemp("chain_project")
    project = Project.create(folder, root=root, settings={"graph": {"enabled": False}})
    project.index_folder(root)
    yield project, root, truth
    project.close()


def _id(project, name):
    return project.image_id(Path(project.root) / f"{name}.jpg")


def _a_then_b_corrected(project, truth) -> int:
    """The usual start: a search on A's half, saved, with B corrected to its outline; its query id."""
    qid = review.save_search(project, search(project, Query(_id(project, "A"), truth["A"]), method="sv"))
    review.set_decision(project, qid, _id(project, "B"), "corrected", truth["B"])
    return qid


def _fresh(chain, tmp_path) -> Project:
    """A copy of the chain project, so decisions of one test do not leak into another."""
    import shutil

    project, root, _ = chain
    shutil.copytree(project.folder, tmp_path / "p", ignore=shutil.ignore_patterns("cache"))
    return Project.open(tmp_path / "p")


def test_object_seen_in_a_and_b_finds_c_through_b(chain, tmp_path):
    project = _fresh(chain, tmp_path)
    _, _, truth = chain
    a, b, c = (_id(project, n) for n in "ABC")
    first = search(project, Query(a, truth["A"]), method="sv")
    verified = {h.image_id for h in first.hits if h.stage == "verified"}
    assert b in verified and c not in verified  # A's half and C's half share nothing
    qid = review.save_search(project, first)
    review.set_decision(project, qid, b, "corrected", truth["B"])
    obj = objects.object_of_query(project, qid)
    assert obj is not None

    again = objects.search_object(project, obj, method="sv")
    by_id = {h.image_id: h for h in again.hits}
    assert again.hits[0].image_id == b and again.hits[0].stage == "reviewed"
    assert again.hits[0].region == truth["B"]  # the corrected region, not the predicted one
    assert by_id[c].stage == "verified"
    # B's whole outline carried to C: it covers C's half (and where the missing half would be)
    assert by_id[c].region.intersection(truth["C"]).area > 0.9 * truth["C"].area
    assert [h.image_id for h in again.hits].index(c) < 3
    project.close()


def test_a_rejected_image_stays_below_the_accepted_ones(chain, tmp_path):
    project = _fresh(chain, tmp_path)
    _, _, truth = chain
    b, c, d = (_id(project, n) for n in "BCD")
    first = search(project, Query(b, truth["B"]), method="sv")
    ranked = [h.image_id for h in first.hits if h.stage == "verified"]
    assert set(ranked) >= {c, d}
    qid = review.save_search(project, first)
    # the reviewer rejects the best-verified hit (wrongly or not, it is their call) and accepts the rest
    top, *rest = ranked
    review.set_decision(project, qid, top, "rejected")
    for i in rest:
        review.set_decision(project, qid, i, "accepted", next(h.region for h in first.hits if h.image_id == i))
    again = objects.search_object(project, objects.object_of_query(project, qid), method="sv")
    order = [h.image_id for h in again.hits]
    assert order.index(top) > max(order.index(i) for i in rest)
    assert again.hits[-1].image_id == top and again.hits[-1].stage == "rejected"
    assert top not in {h.image_id for h in again.hits if h.stage in ("verified", "reviewed")}
    project.close()


def test_a_second_search_verifies_only_new_pairs(chain, tmp_path, monkeypatch):
    project = _fresh(chain, tmp_path)
    _, _, truth = chain
    obj = objects.object_of_query(project, _a_then_b_corrected(project, truth))
    second = objects.search_object(project, obj, method="sv")
    review.save_search(project, second)  # the object's own searches are remembered too

    calls = []
    real = objects.verify_many
    monkeypatch.setattr(objects, "verify_many", lambda ctx, ids, *a, **k: calls.append(list(ids)) or real(ctx, ids, *a, **k))
    third = objects.search_object(project, obj, method="sv")
    assert sum(len(c) for c in calls) == 0
    assert [h.image_id for h in third.hits[:3]] == [h.image_id for h in second.hits[:3]]
    project.close()


def test_recall_a_region_redrawn_on_an_annotated_view(chain, tmp_path):
    project = _fresh(chain, tmp_path)
    _, root, truth = chain
    b, c = _id(project, "B"), _id(project, "C")
    assert objects.recall(project, Query(b, truth["B"])) is None  # nothing remembered yet
    obj = objects.object_of_query(project, _a_then_b_corrected(project, truth))

    # B's outline drawn again, as a box: the same view
    x0, y0, x1, y1 = truth["B"].bounds
    got = objects.recall(project, Query(b, Region.from_bbox(x0, y0, x1, y1)))
    assert got is not None and got.object.id == obj and got.how == "same view" and got.view.image == b
    # the query file itself, given by path: its query view
    got = objects.recall(project, Query(root / "A.jpg", truth["A"]))
    assert got is not None and got.object.id == obj
    # another image of the object: recognized by verifying against the remembered view B
    from engine.pipeline import prepare

    query = Query(c, truth["C"])
    got = objects.recall(project, query, prepare(project, query))
    assert got is not None and got.object.id == obj and got.how == "verified" and got.view.image == b
    # the same image, elsewhere (no overlap with the view), and a photo of something else: not recalled
    assert objects.recall(project, Query(b, Region.from_bbox(0, 0, 40, 40))) is None
    other = Query(_id(project, "other0"), Region.from_bbox(100, 100, 400, 300))
    assert objects.recall(project, other, prepare(project, other)) is None
    project.close()


def test_objects_are_named_renamed_listed_and_forgotten(chain, tmp_path):
    project = _fresh(chain, tmp_path)
    _, _, truth = chain
    a, b, c = (_id(project, n) for n in "ABC")
    first = search(project, Query(a, truth["A"]), method="sv")
    qid = review.save_search(project, first)
    assert objects.object_of_query(project, qid) is None  # no decision yet: not an object
    assert objects.list_objects(project) == []
    review.set_decision(project, qid, b, "accepted", truth["B"])
    review.set_decision(project, qid, _id(project, "other0"), "rejected")
    [info] = objects.list_objects(project)
    assert info.name == "A"  # after the query image, until renamed
    outlined = {h.image_id for h in first.hits if h.region is not None and h.evidence.get("outline") not in GUESSES}
    assert info.to_review == len(outlined - {b}) and "reviewed · 1 rejected" in info.status
    assert [v.kind for v in info.views] == ["query", "accepted"] and info.negatives == (_id(project, "other0"),)
    objects.rename_object(project, info.id, "poster")
    assert objects.load_object(project, "poster").id == info.id

    # a second search named "poster" joins the object; a taken name or an empty one is refused
    second = review.save_search(project, search(project, Query(c, truth["C"]), method="sv"))
    assert objects.name_object(project, second, "poster") == info.id
    assert len(objects.load_object(project, "poster").queries) == 2
    third = review.save_search(project, search(project, Query(b, truth["B"]), method="sv"))
    objects.name_object(project, third)
    with pytest.raises(PixretError, match="already exists"):
        objects.rename_object(project, objects.object_of_query(project, third), "poster")
    with pytest.raises(PixretError, match="empty"):
        objects.rename_object(project, info.id, "  ")
    with pytest.raises(PixretError, match="no object"):
        objects.load_object(project, "nothing")

    objects.forget_object(project, "poster")
    assert objects.object_of_query(project, qid) is None
    assert review.decisions(project, qid)[b].kind == "accepted"  # the decisions stay
    project.close()


def test_reviewed_pairs_become_hyperedges_of_the_graph(chain, tmp_path):
    """Database adaptation: B accepted for a query on D (both in the collection) links D and B in the
    graph, so propagation crosses between them without re-indexing."""
    _, root, truth = chain
    project = Project.create(tmp_path / "g", root=root, settings={"graph": {"verify_k": 0}})
    project.index_folder(root)
    b, d = _id(project, "B"), _id(project, "D")
    assert project.graph is not None and project.graph.neighbours(d) == []  # kNN only, no hyperedges
    first = search(project, Query(d, truth["D"]), method="sv")
    hit = next(h for h in first.hits if h.image_id == b)
    assert hit.stage == "verified"
    qid = review.save_search(project, first)
    review.set_decision(project, qid, b, "accepted", hit.region)
    assert objects.adapt_graph(project) == 1
    assert objects.adapt_graph(project) == 0  # already there
    assert [n for n, _ in project.graph.neighbours(d)] == [b]
    src, dst, H = project.graph.hyperedge(project.graph.neighbours(d)[0][1], d)
    assert len(src) >= 8 and H is not None
    # the stored homography carries D's outline onto B's
    w, h = project.image_size(b)
    assert truth["D"].transform(H).iou(truth["B"], h, w) > 0.8
    # a propagation from D now reaches B
    reached = search(project, Query(root / "D.jpg", truth["D"]), method="hypergraph")
    assert b in {x.image_id for x in reached.hits if x.stage in ("verified", "propagated")}
    project.close()
