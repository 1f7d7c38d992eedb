"""Search on a generated collection with known answers: found, ranked first, outlined."""
from __future__ import annotations

import pytest

from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.pipeline import METHODS, search


@pytest.mark.parametrize("method", ["sv", "brute-sv"])
def test_every_view_of_the_object_is_found_first_and_outlined(indexed_project, small_collection, method):
    project, coll = indexed_project, small_collection
    for name, views in coll.views.items():
        qrel, qpoly = views[0]
        result = search(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])), method=method)
        truth = {project.image_id(rel): poly for rel, poly in views[1:]}
        top = [h.image_id for h in result.hits[: len(truth)]]
        assert set(top) == set(truth), f"{name}: {[h.path for h in result.hits[:5]]}"
        assert project.image_id(qrel) not in [h.image_id for h in result.hits]  # the query itself
        for h in result.hits[: len(truth)]:
            assert h.stage == "verified" and h.evidence["inliers"] >= 10
            assert h.region.iou(Region.from_polygons([truth[h.image_id]]), 480, 640) > 0.85
        # nothing else verifies
        assert all(h.stage != "verified" for h in result.hits[len(truth):])


def test_query_image_outside_the_collection(indexed_project, small_collection, tmp_path):
    import shutil

    qrel, qpoly = small_collection.query("object2")
    outside = tmp_path / "query.jpg"
    shutil.copy(small_collection.root / qrel, outside)
    result = search(indexed_project, Query(outside, Region.from_polygons([qpoly])), top_k=5)
    # the same file is in the collection: it is found as a perfect match of itself
    assert result.hits[0].path == qrel and result.hits[0].stage == "verified"


def test_partial_results_arrive_before_verification_and_before_outlines(indexed_project, small_collection):
    partial = []
    qrel, qpoly = small_collection.query("object1")
    result = search(indexed_project, Query(indexed_project.image_id(qrel), Region.from_polygons([qpoly])),
                    on_partial=partial.append)
    assert len(partial) == 2 and all(h.stage == "shortlist" for h in partial[0].hits)
    # the shortlist already ranks the true views high
    truth = {indexed_project.image_id(r) for r, _ in small_collection.views["object1"][1:]}
    assert truth <= {h.image_id for h in partial[0].hits[:8]}
    # then the final ranking, before the segment stage outlines it
    assert [h.image_id for h in partial[1].hits] == [h.image_id for h in result.hits]
    assert {h.image_id for h in partial[1].hits if h.stage == "verified"} >= truth
    assert not any("outline" in h.evidence for h in partial[1].hits)
    assert any("outline" in h.evidence for h in result.hits)
    assert result.timings["total"] > 0


def test_cancel_stops_a_search(indexed_project, small_collection):
    token = CancelToken()
    token.cancel()
    qrel, qpoly = small_collection.query("object1")
    with pytest.raises(Cancelled):
        search(indexed_project, Query(indexed_project.image_id(qrel), Region.from_polygons([qpoly])), cancel=token)


def test_unknown_method_is_a_clear_error(indexed_project, small_collection):
    from engine.base.errors import PixretError

    qrel, qpoly = small_collection.query("object1")
    with pytest.raises(PixretError, match="unknown method"):
        search(indexed_project, Query(qrel, Region.from_polygons([qpoly])), method="nope")


def test_asmk_self_similarity_is_one(indexed_project):
    from engine.index.asmk import aggregate

    image_id = indexed_project.indexed_images()[0]
    desc = indexed_project.features(image_id).rootsift()
    q = indexed_project.quantizer
    words, sigs = aggregate(desc, q.assign(desc), q.centroids)
    scores = indexed_project.index.score(words, sigs)
    assert scores[image_id] == pytest.approx(1.0, abs=1e-5)
    assert max(s for i, s in scores.items() if i != image_id) < 0.5
    assert set(METHODS) >= {"sv", "brute-sv"}
