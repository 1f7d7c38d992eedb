"""The project's inverted file is sharded and memory-mapped (engine.index.shards): with several shards
it gives the in-RAM index's scores bit for bit and the same search rankings on a real indexed
collection; adding photos rebuilds only the last shard; an interrupted build resumes; an older
project's single inverted file keeps working and is sharded in place; a cluster builds the same shards."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import make_collection
from engine.index.asmk import InvertedFile
from engine.index.shards import ShardedIndex, build_shards, index_form
from engine.pipeline import SearchConfig, prepare, query_words, search
from engine.project import Project

SHARD = 6  # 20 photos (ids 1..20) -> 4 shards: ids 1-5, 6-11, 12-17, 18-20


def _queries(project, collection) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each object's first view, outlined: its aggregated words, as a search makes them."""
    out = {}
    for name, views in collection.views.items():
        rel, poly = views[0]
        ctx = prepare(project, Query(project.image_id(rel), Region.from_polygons([poly])))
        out[name] = query_words(project, ctx.desc, SearchConfig().query_assign)
    return out


def _rankings(project, collection, method="sv") -> dict[str, list[tuple[int, str, float]]]:
    out = {}
    for name, views in collection.views.items():
        rel, poly = views[0]
        r = search(project, Query(project.image_id(rel), Region.from_polygons([poly])), method=method)
        out[name] = [(h.image_id, h.stage, h.score) for h in r.hits]
    return out


def _in_ram(index) -> InvertedFile:
    """The same postings as one InvertedFile in RAM (the form every project had before the shards)."""
    return InvertedFile.build(np.array(index.centroids), index.entries(), index.trained_on, index.feature_sets,
                              index.embedding)


def _reshard(project_folder, folder, shard_images):
    """A copy of an indexed project whose index is rebuilt with `shard_images` a shard (its features,
    vocabulary and embedding kept: no image extracted again)."""
    shutil.copytree(project_folder, folder)
    with Project.open(folder) as project:
        project.update_settings(index={"shard_images": shard_images})
        report = project.index_folder(graph=False)
        assert report.extracted == 0 and not report.vocabulary_trained
    return folder


@pytest.fixture(scope="module")
def sharded(indexed_project, tmp_path_factory):
    return _reshard(indexed_project.folder, tmp_path_factory.mktemp("sharded") / "P", SHARD)


def test_a_project_with_several_shards_scores_and_ranks_as_the_in_ram_index(indexed_project, small_collection,
                                                                              sharded):
    with Project.open(sharded) as project:
        index = project.index
        assert isinstance(index, ShardedIndex) and len(index.meta["shards"]) == 4
        assert index.n_images == len(project.indexed_images()) == 20
        for shard in index.shards():  # the premise: postings are views of the files' mappings, not loaded
            for postings in (shard.index.sigs, shard.index.images):
                assert isinstance(postings.base, np.memmap) and str(postings.base.filename).startswith(str(sharded))
        one = indexed_project.index  # the session's project: the same postings in a single shard
        assert isinstance(one, ShardedIndex) and len(one.meta["shards"]) == 1
        assert index.meta["postings"] == one.meta["postings"]
        in_ram = _in_ram(one)
        for name, (words, sigs) in _queries(project, small_collection).items():
            query_id = project.image_id(small_collection.views[name][0][0])
            expected = in_ram.score(words, sigs, exclude={query_id})
            got = index.score(words, sigs, exclude={query_id})
            assert got == expected  # same images, same float scores
            ranked = sorted(expected, key=lambda i: (-expected[i], i))
            assert index.top(words, sigs, 5, exclude={query_id}) == [(i, expected[i]) for i in ranked[:5]]
            # the scores are worth comparing: the object's other views lead the ranking
            views = {project.image_id(rel) for rel, _ in small_collection.views[name][1:]}
            assert set(ranked[:len(views)]) == views, name
        assert _rankings(project, small_collection) == _rankings(indexed_project, small_collection)


def test_an_older_projects_single_index_searches_then_is_sharded_in_place(indexed_project, small_collection,
                                                                         tmp_path, capsys):
    from engine.cli import main

    folder = tmp_path / "old"
    shutil.copytree(indexed_project.folder, folder)
    index = folder / "index"
    single = _in_ram(indexed_project.index)
    shutil.rmtree(index)
    single.save(index)  # the index as projects had it before the shards
    assert index_form(index) == "single" and not (index / "manifest").exists()
    expected = _rankings(indexed_project, small_collection)
    with Project.open(folder) as project:
        assert isinstance(project.index, InvertedFile) and project.needs_upgrade()
        assert project.stats()["index_form"] == "single"
        main(["status", "--project", str(folder)])
        assert "index: one in-RAM inverted file" in capsys.readouterr().out
        assert _rankings(project, small_collection) == expected  # it searches as it is
        report = project.index_folder(graph=False)
        assert report.extracted == 0 and not report.vocabulary_trained
        assert isinstance(project.index, ShardedIndex) and not project.needs_upgrade()
        assert _rankings(project, small_collection) == expected
        assert project.stats()["index_form"] == "sharded" and project.stats()["index_shards"] == 1
        main(["status", "--project", str(folder)])
        assert f"index: sharded, memory-mapped (1 shard, {project.stats()['index_bytes'] / 1e6:.1f} MB)" \
            in capsys.readouterr().out
    assert index_form(index) == "sharded" and sorted(p.name for p in index.iterdir()) == ["manifest", "shards"]


def test_added_photos_rebuild_only_the_last_shard_and_are_found(tmp_path):
    every = make_collection(tmp_path / "all", n_objects=1, views=4, n_distractors=6, size=(320, 240), seed=41)
    root = tmp_path / "photos"
    later = {every.views["object1"][3][0], *every.distractors[-2:]}  # a view of the object and two others
    for rel in [r for r, _ in every.views["object1"]] + every.distractors:
        if rel not in later:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(every.root / rel, root / rel)
    with Project.create(tmp_path / "P", settings={"index": {"shard_images": 3}}) as project:
        project.index_folder(root, graph=False)  # ids 1..7 -> shards {1, 2}, {3, 4, 5}, {6, 7}
        before = list(project.index.meta["shards"])
        assert len(before) == 3 and project.index.n_images == 7
        stamps = {n: (project.folder / "index" / "shards" / n / "cols.npy").stat().st_mtime_ns for n in before}
        for rel in later:
            shutil.copy(every.root / rel, root / rel)
        report = project.index_folder(graph=False)  # ids 8..10: shard {6, 7, 8} again, then {9, 10}
        assert report.extracted == 3 and not report.vocabulary_trained
        index = project.index
        after = index.meta["shards"]
        assert after[:2] == before[:2] and len(after) == 4 and after[2] != before[2]
        for n in before[:2]:  # kept, not rewritten
            assert (project.folder / "index" / "shards" / n / "cols.npy").stat().st_mtime_ns == stamps[n]
        assert sorted(p.name for p in (project.folder / "index" / "shards").iterdir()) == sorted(after)
        assert index.n_images == 10 and sorted(index.feature_sets) == project.indexed_images()
        # the same scores as the whole collection's shards built at once, in other blocks
        fresh = build_shards(tmp_path / "fresh", project.store.folder, project.feature_spans(),
                             {i: t for i, t in index.feature_sets.items()}, index.centroids, index.trained_on,
                             project.words_key, shard_images=4)
        qrel, qpoly = every.views["object1"][0]
        ctx = prepare(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])))
        words, sigs = query_words(project, ctx.desc, SearchConfig().query_assign)
        assert index.score(words, sigs) == fresh.score(words, sigs)
        # and the added view is found
        found = search(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])), method="sv")
        added = project.image_id(every.views["object1"][3][0])
        assert added in [h.image_id for h in found.hits[:3] if h.stage == "verified"]


def test_an_interrupted_shard_build_resumes_with_the_shards_it_wrote(indexed_project, small_collection, sharded,
                                                                   tmp_path):
    folder = tmp_path / "P"
    shutil.copytree(indexed_project.folder, folder)
    cancel, built = CancelToken(), []

    def progress(done, total, stage):
        if stage == "indexing shards":
            built.append((done, total))
            if done == 1:
                cancel.cancel()

    with Project.open(folder) as project:
        project.update_settings(index={"shard_images": SHARD})
        with pytest.raises(Cancelled):
            project.index_folder(graph=False, progress=progress, cancel=cancel)
        assert built[-1] == (1, 4)
        assert len(project.index.meta["shards"]) == 1  # the old index still answers
        built.clear()
        project.index_folder(graph=False, progress=lambda *a: progress(*a) if a[2] == "indexing shards" else None)
        assert built[-1] == (3, 3)  # only the shards not written before
        index = project.index
        assert index.meta["shards"] == json.loads((sharded / "index" / "manifest" / "meta.json").read_text())["shards"]
        for name in index.meta["shards"]:
            for a in ("ptr", "cols", "sigs", "ids", "nwords", "fsids"):
                assert np.array_equal(np.load(folder / "index" / "shards" / name / f"{a}.npy"),
                                      np.load(sharded / "index" / "shards" / name / f"{a}.npy")), (name, a)
        words, sigs = next(iter(_queries(project, small_collection).values()))
        assert index.score(words, sigs) == indexed_project.index.score(words, sigs)


def test_a_cluster_builds_the_same_shards(dask_cluster, indexed_project, sharded, tmp_path):
    from distributed import get_task_stream

    dask_cluster.client.wait_for_workers(2, timeout=60)
    project = indexed_project
    with get_task_stream(dask_cluster.client) as stream:
        on_cluster = build_shards(tmp_path / "index", project.store.folder, project.feature_spans(),
                                  project.index.feature_sets, project.index.centroids, project.index.trained_on,
                                  project.words_key, shard_images=SHARD, runner=dask_cluster)
    ran_on = [t["worker"] for t in stream.data if t["key"].startswith("shard_batch")]
    assert len(ran_on) == 4 and set(ran_on) <= set(dask_cluster.workers())  # the premise: workers built them
    reference = ShardedIndex.open(sharded / "index")
    assert on_cluster.meta["shards"] == reference.meta["shards"]
    for name in reference.meta["shards"]:
        for a in ("ptr", "cols", "sigs", "ids", "nwords", "fsids"):
            assert np.array_equal(np.load(on_cluster.folder / "shards" / name / f"{a}.npy"),
                                  np.load(reference.folder / "shards" / name / f"{a}.npy")), (name, a)
