"""The sharded, memory-mapped inverted file (engine.index.shards) gives the in-RAM index's scores,
bit for bit, on a real indexed collection; it is built shard by shard, resumes, and builds the same
shards on a Dask cluster."""
from __future__ import annotations

import numpy as np
import pytest

from engine.base.regions import Region
from engine.base.types import Query
from engine.index.shards import ShardedIndex, build_shards
from engine.pipeline import SearchConfig, prepare, query_words

SHARD = 6  # 20 photos -> 4 shards (the last one short)


def _build(project, folder, **kw) -> ShardedIndex:
    inv = project.index
    return build_shards(folder, project.store.folder, project.feature_spans(), inv.feature_sets, inv.centroids,
                        inv.trained_on, shard_images=kw.pop("shard_images", SHARD), **kw)


def _queries(project, collection) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each object's first view, outlined: its aggregated words, as a search makes them."""
    out = {}
    for name, views in collection.views.items():
        rel, poly = views[0]
        ctx = prepare(project, Query(project.image_id(rel), Region.from_polygons([poly])))
        out[name] = query_words(project, ctx.desc, SearchConfig().query_assign)
    return out


@pytest.fixture(scope="module")
def sharded(indexed_project, tmp_path_factory):
    return _build(indexed_project, tmp_path_factory.mktemp("shards") / "index")


def test_sharded_index_scores_every_image_as_the_in_ram_index(indexed_project, small_collection, sharded):
    project = indexed_project
    assert len(sharded.meta["shards"]) == 4 and sharded.n_images == len(project.indexed_images()) == 20
    for shard in sharded.shards():  # the premise: postings are read from disk, not loaded
        assert isinstance(shard.index.sigs, np.memmap) and isinstance(shard.index.images, np.memmap)
    assert sharded.meta["postings"] == len(project.index.images)
    for name, (words, sigs) in _queries(project, small_collection).items():
        query_id = project.image_id(small_collection.views[name][0][0])
        expected = project.index.score(words, sigs, exclude={query_id})
        got = sharded.score(words, sigs, exclude={query_id})
        assert got == expected  # same images, same float scores
        ranked = sorted(expected, key=lambda i: (-expected[i], i))
        assert sharded.top(words, sigs, 5, exclude={query_id}) == [(i, expected[i]) for i in ranked[:5]]
        # the scores are worth comparing: the object's other views lead the ranking
        views = {project.image_id(rel) for rel, _ in small_collection.views[name][1:]}
        assert set(ranked[:len(views)]) == views, name


def test_a_rebuild_keeps_valid_shards_and_replaces_the_rest(indexed_project, small_collection, sharded, tmp_path):
    import shutil

    folder = tmp_path / "index"
    shutil.copytree(sharded.folder, folder)
    lost = sharded.meta["shards"][1]
    shutil.rmtree(folder / "shards" / lost)  # as if the build had stopped before this shard
    built = []
    again = _build(indexed_project, folder, progress=lambda done, total, stage: built.append((done, total)))
    assert built[-1] == (1, 1) and again.meta["shards"] == sharded.meta["shards"]
    for name in again.meta["shards"]:
        for a in ("ptr", "cols", "sigs", "ids"):
            assert np.array_equal(np.load(folder / "shards" / name / f"{a}.npy"),
                                  np.load(sharded.folder / "shards" / name / f"{a}.npy")), (name, a)
    bigger = _build(indexed_project, folder, shard_images=8)  # other blocks: every old shard goes
    assert len(bigger.meta["shards"]) == 3
    assert sorted(p.name for p in (folder / "shards").iterdir()) == sorted(bigger.meta["shards"])
    words, sigs = next(iter(_queries(indexed_project, small_collection).values()))
    assert bigger.score(words, sigs) == indexed_project.index.score(words, sigs)


def test_a_cluster_builds_the_same_shards(dask_cluster, indexed_project, sharded, tmp_path):
    from distributed import get_task_stream

    dask_cluster.client.wait_for_workers(2, timeout=60)
    with get_task_stream(dask_cluster.client) as stream:
        on_cluster = _build(indexed_project, tmp_path / "index", runner=dask_cluster)
    ran_on = [t["worker"] for t in stream.data if t["key"].startswith("shard_batch")]
    assert len(ran_on) == 4 and set(ran_on) <= set(dask_cluster.workers())  # the premise: workers built them
    assert on_cluster.meta["shards"] == sharded.meta["shards"]
    for name in sharded.meta["shards"]:
        for a in ("ptr", "cols", "sigs", "ids", "nwords", "fsids"):
            assert np.array_equal(np.load(on_cluster.folder / "shards" / name / f"{a}.npy"),
                                  np.load(sharded.folder / "shards" / name / f"{a}.npy")), (name, a)
