"""Correspondences from the index (visual words + Hamming signatures), seeded verification, seeds;
on generated photos and on the demo's real ones."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.base.regions import Region
from engine.base.types import Query
from engine.features.store import DescriptorsMissing
from engine.index.embedding import HammingEmbedding
from engine.pipeline import SearchConfig, dense_sv_pair, prepare, sv_pair, topo_pair
from engine.project import Project
from engine.propagate.graph import verify_pair
from engine.features.extract import rootsift
from engine.verify.correspond import QueryWords, match_mutual, match_words, match_words_many
from engine.verify.spatial import SVConfig, fit_homography, spatial_verify


def view_pair(project, collection, name="object1", a=0, b=1):
    """(query context on view a's outline, image id of view b, the true homography a -> b)."""
    (qa, poly_a), (rb, poly_b) = collection.views[name][a], collection.views[name][b]
    ctx = prepare(project, Query(project.image_id(qa), Region.from_polygons([poly_a])), SearchConfig())
    H = cv2.getPerspectiveTransform(np.float32(poly_a), np.float32(poly_b))
    return ctx, project.image_id(rb), H


def mapped(H, xy):
    p = np.c_[xy, np.ones(len(xy))] @ H.T
    return p[:, :2] / p[:, 2:3]


def test_word_correspondences_follow_the_true_homography(indexed_project, small_collection):
    ctx, image_id, H = view_pair(indexed_project, small_collection)
    d = indexed_project.stored(image_id)
    corr = match_words(ctx.words, d.word, d.sig)
    err = np.linalg.norm(mapped(H, ctx.features.xy[corr.qi]) - np.asarray(d.xy)[corr.di], axis=1)
    assert len(corr) >= 50
    assert (err < 8).mean() >= 0.6  # most are true matches, found without a descriptor product
    # one-to-one, closest signatures first
    assert len(set(corr.qi.tolist())) == len(corr) == len(set(corr.di.tolist()))
    assert np.all(np.diff(corr.cost) >= 0)


def test_mutual_nearest_neighbours_follow_the_true_homography(indexed_project, small_collection):
    ctx, image_id, H = view_pair(indexed_project, small_collection)
    d = indexed_project.features(image_id)
    d_desc = rootsift(d.desc)
    corr = match_mutual(ctx.desc, d_desc, 0.8)
    err = np.linalg.norm(mapped(H, ctx.features.xy[corr.qi]) - np.asarray(d.xy)[corr.di], axis=1)
    assert len(corr) >= 50 and (err < 8).mean() >= 0.6
    # each pair is the other's nearest, at least that alike, and none is left out
    sim = ctx.desc @ d_desc.T
    assert np.all(sim.argmax(axis=1)[corr.qi] == corr.di) and np.all(sim.argmax(axis=0)[corr.di] == corr.qi)
    assert np.all(1.0 - corr.cost >= 0.8 - 1e-6)
    best = sim.argmax(axis=1)
    mutual = (sim.argmax(axis=0)[best] == np.arange(len(best))) & (sim.max(axis=1) >= 0.8)
    assert len(corr) == int(mutual.sum())
    # a stricter similarity keeps a subset
    strict = match_mutual(ctx.desc, d_desc, 0.9)
    assert 0 < len(strict) < len(corr) and set(strict.qi.tolist()) <= set(corr.qi.tolist())


def test_correspondences_do_not_depend_on_the_order_of_features(indexed_project, small_collection):
    ctx, image_id, _ = view_pair(indexed_project, small_collection)
    d = indexed_project.stored(image_id)
    base = match_words(ctx.words, d.word, d.sig)
    perm = np.random.default_rng(0).permutation(len(d))
    shuffled = match_words(ctx.words, np.asarray(d.word)[perm], np.asarray(d.sig)[perm])
    assert sorted(zip(base.qi.tolist(), base.di.tolist())) == \
        sorted(zip(shuffled.qi.tolist(), perm[shuffled.di].tolist()))


def test_a_batch_of_images_gets_what_each_would_get_alone(indexed_project, small_collection):
    """The shortlist is matched in one pass (match_words_many): every image's correspondences equal
    its own match_words', in order, for true views and unrelated images alike."""
    ctx, image_id, _ = view_pair(indexed_project, small_collection)
    ids = [i for i in indexed_project.indexed_images() if i not in ctx.exclude]
    stored = [indexed_project.stored(i) for i in ids]
    many = match_words_many(ctx.words, [d.word for d in stored], [d.sig for d in stored])
    alone = [match_words(ctx.words, d.word, d.sig) for d in stored]
    assert len(many) == len(ids) and sum(len(c) >= 50 for c in alone) >= 1  # the true view is among them
    assert sum(len(c) == 0 for c in alone) + sum(0 < len(c) < 50 for c in alone) >= 1  # and others
    for a, b in zip(alone, many):
        assert a.qi.tolist() == b.qi.tolist() and a.di.tolist() == b.di.tolist() and a.cost.tolist() == b.cost.tolist()
    # a small cap applies to each image on its own
    capped = match_words_many(ctx.words, [d.word for d in stored], [d.sig for d in stored],
                              replace(SearchConfig().words, max_candidates=7))
    assert [len(c) for c in capped] == [min(len(c), 7) for c in alone]
    assert all(c.qi.tolist() == a.qi[:7].tolist() for c, a in zip(capped, alone))


def test_image_to_image_correspondences_from_the_store_alone(indexed_project, small_collection):
    """The graph's case: both sides are stored images (one word each), no descriptor is read."""
    (ra, poly_a), (rb, poly_b) = small_collection.views["object2"][1:3]
    a, b = indexed_project.stored(indexed_project.image_id(ra)), indexed_project.stored(indexed_project.image_id(rb))
    qa = QueryWords.single(a.word, a.sig, indexed_project.quantizer.k)
    corr = match_words(qa, b.word, b.sig)
    v = spatial_verify(a, b, corr, SVConfig())
    truth = cv2.getPerspectiveTransform(np.float32(poly_a), np.float32(poly_b))
    qi, di = v.verified_pairs
    assert v.inliers >= 30
    assert np.median(np.linalg.norm(mapped(truth, np.asarray(a.xy)[qi]) - np.asarray(b.xy)[di], axis=1)) < 3


def test_word_verification_outlines_like_the_dense_reference(indexed_project, small_collection):
    ctx, image_id, _ = view_pair(indexed_project, small_collection, "object3", 0, 2)
    fast, dense = sv_pair(ctx, image_id), dense_sv_pair(ctx, image_id)
    assert fast.verified and dense.verified
    truth = Region.from_polygons([small_collection.views["object3"][2][1]])
    assert fast.region.iou(truth, 480, 640) > 0.9
    assert fast.region.iou(dense.region, 480, 640) > 0.9


def test_unrelated_images_are_mostly_rejected_before_magsac(indexed_project, small_collection):
    ctx, _, _ = view_pair(indexed_project, small_collection)
    config = SVConfig()
    early = 0
    for rel in small_collection.distractors:
        d = indexed_project.stored(indexed_project.image_id(rel))
        corr = match_words(ctx.words, d.word, d.sig)
        assert len(corr) >= 4  # candidates there are ...
        v = spatial_verify(ctx.features, d, corr, config, ctx.query.region.bounds)
        assert v.inliers < config.min_inliers  # ... but no model
        early += v.consensus < config.min_consensus  # no similarity gathered them: MAGSAC never ran
        assert not sv_pair(replace(ctx, dense=frozenset()), indexed_project.image_id(rel)).verified
    assert early >= len(small_collection.distractors) // 2


def test_magsac_gives_one_model_whatever_the_thread():
    """USAC seeds its own generator: the same correspondences give the same homography everywhere."""
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 1000, (300, 2)).astype(np.float32)
    H0 = np.array([[1.1, 0.1, 20], [-0.05, 0.9, 30], [1e-4, 2e-5, 1]])
    dst = mapped(H0, src).astype(np.float32) + rng.normal(0, 1.5, (300, 2)).astype(np.float32)
    out = rng.random(300) < 0.85  # mostly outliers: the draws matter
    dst[out] = rng.uniform(0, 1000, (int(out.sum()), 2))

    def fit(_=None):
        H, inl = fit_homography(src, dst)
        return H.tobytes(), int(inl.sum())

    first = fit()
    assert first[1] >= 30
    cv2.setRNGSeed(123)  # OpenCV's global generator is not what USAC draws from
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(fit, range(16))) == {first}


def test_embedding_is_fixed_by_its_seed_and_fits_any_descriptor_size():
    rng = np.random.default_rng(1)
    k, d = 16, 64  # a 64-d float descriptor (XFeat's size): 128 bits stack two rotations
    centroids = rng.normal(size=(k, d)).astype(np.float32)
    x = rng.normal(size=(4000, d)).astype(np.float32)
    words = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    a = HammingEmbedding.train(centroids, x, words, bits=128, seed=5)
    b = HammingEmbedding.train(centroids, x, words, bits=128, seed=5)
    c = HammingEmbedding.train(centroids, x, words, bits=128, seed=6)
    assert np.array_equal(a.rotation, b.rotation) and np.array_equal(a.medians, b.medians)
    assert not np.array_equal(a.rotation, c.rotation)
    sig = a.signatures(x, words, centroids)
    assert sig.shape == (4000, 2) and sig.dtype == np.uint64
    ones = np.unpackbits(sig.view(np.uint8), axis=1).mean()
    assert 0.45 < ones < 0.55  # medians split every bit evenly


# -- real photos: the demo's (pixret_desktop/resources/demo), a can in six photos, other objects in four

DEMO = Path(__file__).resolve().parents[1] / "pixret_desktop" / "resources" / "demo"


@pytest.fixture(scope="module")
def demo_photos(tmp_path_factory):
    """(project, the can's hand-drawn outlines, the other objects' photos): the can's six photos and
    two photos each of an alarm clock and a backpack, indexed, then the full descriptors removed:
    what follows can only use the store's searched part (words, signatures, geometry)."""
    outlines = json.loads((DEMO / "can_outlines.json").read_text())
    others = [f"{o}/0{k}.jpg" for o in ("alarm_clock", "backpack") for k in range(2)]
    folder = tmp_path_factory.mktemp("demo") / "p"
    with Project.create(folder, root=DEMO / "photos") as project:
        project.index_folder(include={*outlines, *others}, graph=False)
    removed = [f.unlink() for f in (folder / "features").glob("*/desc.npy")]
    assert removed and not list((folder / "features").glob("*/desc.npy"))
    project = Project.open(folder)
    yield project, outlines, others
    project.close()


@pytest.mark.parametrize("verifier", [sv_pair, topo_pair], ids=["sv", "topo"])
def test_real_photos_verify_on_words_alone(demo_photos, verifier):
    project, outlines, others = demo_photos
    query = "beer_can/00.jpg"
    ctx = prepare(project, Query(project.image_id(query), Region.from_polygons([outlines[query]])), SearchConfig())
    ctx = replace(ctx, dense=frozenset())  # no safety net: words and signatures only
    for rel in set(outlines) - {query}:
        hit = verifier(ctx, project.image_id(rel))
        assert hit.verified and hit.score >= (100 if verifier is sv_pair else 30), rel
        assert hit.region.iou(Region.from_polygons([outlines[rel]]), 800, 800) > 0.6, rel  # outlined where the can is
    for rel in others:
        d = project.stored(project.image_id(rel))
        assert len(match_words(ctx.words, d.word, d.sig)) >= 8, rel  # the premise: candidates there are ...
        assert not verifier(ctx, project.image_id(rel)).verified, rel  # ... but no object
    with pytest.raises(DescriptorsMissing):  # the premise: nothing above read a descriptor
        dense_sv_pair(ctx, project.image_id(others[0]))


def test_real_photos_make_graph_edges_on_words_alone(demo_photos):
    project, outlines, others = demo_photos
    k = project.quantizer.k
    cans = [project.stored(project.image_id(rel)) for rel in sorted(outlines)]
    for d in cans[1:]:
        inliers, H, idx, xy = verify_pair(cans[0], d, SVConfig(), 1024, k)
        assert inliers >= 100 and H is not None
        assert np.allclose(mapped(H.astype(np.float64), xy[:, :2]), xy[:, 2:], atol=SVConfig().threshold_px + 1)
    for rel in others:
        assert verify_pair(cans[0], project.stored(project.image_id(rel)), SVConfig(), 1024, k)[0] == 0, rel
