"""engine.annotate.review: searches and review decisions in a real SQLite catalog."""
from __future__ import annotations


import numpy as np
import pytest

import engine.annotate.review as review
from engine.base.errors import ProjectError
from engine.base.regions import Region
from engine.base.types import Hit, Query, SearchResult
from engine.pipeline import search
from engine.project import Project


@pytest.fixture
def project(project_copy):
    """These tests write to their project: a private copy of the session's indexed one."""
    return project_copy


@pytest.fixture
def result(project, small_collection):
    rel, poly = small_collection.query("object1")
    return search(project, Query(project.image_id(rel), Region.from_polygons([poly])), top_k=10)


def reopened(project) -> Project:
    """The same project through a second, independent connection: sees only what is committed."""
    return Project.open(project.folder)


def test_a_saved_search_loads_back_the_same(project, result):
    qid = review.save_search(project, result)
    other = reopened(project)
    try:
        back = review.load_search(other, qid)
    finally:
        other.close()
    assert back.method == result.method
    assert back.query.image == result.query.image
    assert back.query.region == result.query.region
    assert [(h.image_id, h.path, h.stage) for h in back.hits] == [(h.image_id, h.path, h.stage) for h in result.hits]
    assert [h.score for h in back.hits] == pytest.approx([h.score for h in result.hits])
    for a, b in zip(back.hits, result.hits):
        assert (a.region is None) == (b.region is None)
        if a.region is not None:
            assert a.region.iou(b.region, 480, 640) > 0.999
        assert a.evidence.get("inliers") == b.evidence.get("inliers")
    assert back.hits[0].evidence["matches"] == [list(m) for m in result.hits[0].evidence["matches"]]


def test_evidence_with_numpy_values_is_stored_as_plain_json(project):
    region = Region.from_bbox(10, 10, 50, 40)
    ids = project.indexed_images()
    hit = Hit(ids[1], project.image_path(ids[1]), np.float32(3.5), region,
              {"inliers": np.int64(12), "H": np.eye(3), "ratio": np.float64(0.25), "nan": float("nan")}, "verified")
    qid = review.save_search(project, SearchResult(Query(ids[0], region), "sv", (hit,), 0.3, {"total": 0.1}))
    back = review.load_search(project, qid)
    assert back.hits[0].evidence == {"inliers": 12, "H": np.eye(3).tolist(), "ratio": 0.25, "nan": None}
    assert back.uncertainty == pytest.approx(0.3)
    assert back.timings == {"total": 0.1}


def test_each_decision_is_committed_before_the_call_returns(project, result):
    qid = review.save_search(project, result)
    hit = result.hits[0]
    review.set_decision(project, qid, hit.image_id, "accepted", hit.region, author="ann")
    other = reopened(project)
    try:
        d = review.decisions(other, qid)
    finally:
        other.close()
    assert d[hit.image_id].kind == "accepted" and d[hit.image_id].author == "ann"
    assert d[hit.image_id].region == hit.region


def test_the_latest_decision_is_current_and_the_history_is_kept(project, result):
    qid = review.save_search(project, result)
    a, b = result.hits[0], result.hits[1]
    corrected = b.region.union(Region.from_bbox(0, 0, 30, 30))
    review.set_decision(project, qid, a.image_id, "accepted", a.region)
    review.set_decision(project, qid, b.image_id, "rejected")
    review.set_decision(project, qid, b.image_id, "corrected", corrected, difficulty="hard")
    d = review.decisions(project, qid)
    assert {i: x.kind for i, x in d.items()} == {a.image_id: "accepted", b.image_id: "corrected"}
    assert d[b.image_id].region.iou(corrected, 480, 640) > 0.999
    assert d[b.image_id].difficulty == "hard"
    assert [h.kind for h in review.history(project, qid, b.image_id)] == ["rejected", "corrected"]


def test_undoing_a_decision_leaves_the_image_unreviewed(project, result):
    qid = review.save_search(project, result)
    a = result.hits[0]
    review.set_decision(project, qid, a.image_id, "accepted", a.region)
    review.set_decision(project, qid, a.image_id, "unreviewed")
    assert review.decisions(project, qid) == {}
    assert a.image_id not in review.image_status(project)
    assert [h.kind for h in review.history(project, qid, a.image_id)] == ["accepted", "unreviewed"]


def test_image_status_is_the_most_recent_current_decision_over_all_searches(project, result):
    q1 = review.save_search(project, result)
    q2 = review.save_search(project, result)
    a, b = result.hits[0], result.hits[1]
    review.set_decision(project, q1, a.image_id, "accepted", a.region)
    review.set_decision(project, q1, b.image_id, "accepted", b.region)
    review.set_decision(project, q2, b.image_id, "rejected")
    assert review.image_status(project) == {a.image_id: "accepted", b.image_id: "rejected"}
    review.set_decision(project, q2, b.image_id, "unreviewed")  # undone in q2: q1's decision shows again
    assert review.image_status(project) == {a.image_id: "accepted", b.image_id: "accepted"}


def test_list_queries_is_newest_first_with_counts(project, result):
    q1 = review.save_search(project, result)
    q2 = review.save_search(project, result)
    review.set_decision(project, q2, result.hits[0].image_id, "rejected")
    infos = review.list_queries(project)
    assert [q.id for q in infos] == [q2, q1]
    assert infos[0].n_hits == len(result.hits) and infos[0].n_decided == 1 and infos[1].n_decided == 0
    assert infos[0].image_id == result.query.image and infos[0].method == "sv"


def test_bad_decisions_are_refused_and_nothing_is_written(project, result):
    qid = review.save_search(project, result)
    image = result.hits[0].image_id
    with pytest.raises(ValueError, match="kind"):
        review.set_decision(project, qid, image, "maybe")
    with pytest.raises(ValueError, match="region"):
        review.set_decision(project, qid, image, "accepted", None)
    with pytest.raises(ValueError, match="difficulty"):
        review.set_decision(project, qid, image, "rejected", difficulty="impossible")
    with pytest.raises(ProjectError):
        review.set_decision(project, qid + 100, image, "rejected")
    with pytest.raises(ProjectError):
        review.load_search(project, qid + 100)
    assert review.decisions(project, qid) == {}


def test_a_draft_is_committed_replaced_and_read_back_by_another_connection(project, result):
    qid = review.save_search(project, result)
    hit = result.hits[1]
    first = hit.region.union(Region.from_bbox(0, 0, 30, 30))
    second = hit.region.union(Region.from_bbox(0, 0, 60, 40))
    review.save_draft(project, qid, hit.image_id, first)
    review.save_draft(project, qid, hit.image_id, second)  # replaces, never piles up
    other = reopened(project)
    try:
        back = review.drafts(other, qid)
        assert review.draft_count(other) == 1
    finally:
        other.close()
    assert [(d.query_id, d.image_id) for d in back] == [(qid, hit.image_id)]
    assert back[0].region == second and back[0].region != hit.region
    assert review.decisions(project, qid) == {}  # a draft is not a decision


def test_deciding_a_hit_drops_its_draft_and_only_its_own(project, result):
    qid = review.save_search(project, result)
    a, b = result.hits[0], result.hits[1]
    for h in (a, b):
        review.save_draft(project, qid, h.image_id, h.region.union(Region.from_bbox(0, 0, 30, 30)))
    review.set_decision(project, qid, a.image_id, "rejected")
    assert [d.image_id for d in review.drafts(project, qid)] == [b.image_id]
    review.discard_draft(project, qid, b.image_id)
    assert review.drafts(project) == [] and review.draft_count(project) == 0


def test_accept_drafts_makes_each_a_correction_and_keeps_empty_ones(project, result):
    qid = review.save_search(project, result)
    a, b, c = result.hits[0], result.hits[1], result.hits[2]
    edited = a.region.union(Region.from_bbox(0, 0, 30, 30))
    review.set_decision(project, qid, a.image_id, "accepted", a.region)
    review.save_draft(project, qid, a.image_id, edited)
    review.save_draft(project, qid, b.image_id, b.region)  # edited back to the prediction
    review.save_draft(project, qid, c.image_id, Region.empty())  # everything erased
    assert review.accept_drafts(project, author="ann") == 2
    d = review.decisions(project, qid)
    assert (d[a.image_id].kind, d[a.image_id].region) == ("corrected", edited)
    assert (d[b.image_id].kind, d[b.image_id].author) == ("accepted", "ann")
    assert c.image_id not in d
    assert [x.image_id for x in review.drafts(project)] == [c.image_id]
    assert review.discard_drafts(project) == 1 and review.draft_count(project) == 0


def test_a_draft_for_an_unknown_search_or_image_is_refused(project, result):
    qid = review.save_search(project, result)
    with pytest.raises(ProjectError, match="no search"):
        review.save_draft(project, qid + 100, result.hits[0].image_id, result.hits[0].region)
    with pytest.raises(ProjectError, match="no image"):
        review.save_draft(project, qid, 10**6, result.hits[0].region)
    assert review.draft_count(project) == 0


def test_hit_uncertainty_puts_doubtful_hits_first():
    r = Region.from_bbox(0, 0, 10, 10)
    strong = Hit(1, "a", 200, r, {"inliers": 200}, "verified")
    weak = Hit(2, "b", 11, r, {"inliers": 11}, "verified")
    near_miss = Hit(3, "c", 0.1, None, {"inliers": 8}, "shortlist")
    nothing = Hit(4, "d", 0.01, None, {"inliers": 0}, "shortlist")
    told = Hit(5, "e", 1.0, r, {"uncertainty": 0.7}, "propagated")
    u = {h.image_id: review.hit_uncertainty(h) for h in (strong, weak, near_miss, nothing, told)}
    assert u[2] > u[1]
    assert u[3] > u[4]
    assert u[5] == pytest.approx(0.7)
    assert all(0.0 <= v <= 1.0 for v in u.values())
