"""Indexing on a Dask cluster (engine.parallel.cluster): a LocalCluster of 2 worker processes builds
exactly the project one process builds, a killed worker's batch runs again elsewhere, and a
cancelled cluster run resumes. Without the dask extra the CLI names the pip command."""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.cli import main
from engine.demo import make_collection
from engine.index.shards import ShardedIndex
from engine.pipeline import search
from engine.project import Project
from engine.propagate.graph import Graph

SMALL_BATCHES = {"engine.project.BATCH": 2,  # 4 packs: 4 batches of word work, one per pack
                 "engine.propagate.graph.PAIRS_PER_BATCH": 6}


@pytest.fixture(scope="module")
def small_batches():
    """Batches small enough that 8 photos make several of each kind (the coordinator cuts them)."""
    with pytest.MonkeyPatch.context() as mp:
        for target, value in SMALL_BATCHES.items():
            mp.setattr(target, value)
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster") / "photos"
    return make_collection(root, n_objects=2, views=3, n_distractors=2, size=(320, 240), seed=11)


@pytest.fixture(scope="module")
def reference(photos, small_batches, tmp_path_factory):
    """The collection indexed in this process: what every cluster run must equal."""
    folder = tmp_path_factory.mktemp("cluster") / "reference"
    with Project.create(folder) as project:
        report = project.index_folder(photos.root)
    assert report.graph is not None and report.graph.hyperedges > 0  # the graph has pairs to compare
    return folder


@pytest.fixture
def cluster(dask_cluster, small_batches):
    dask_cluster.client.wait_for_workers(2, timeout=60)  # (a worker killed earlier is back)
    return dask_cluster


def _same_project(a, b, photos) -> None:
    """Features, inverted file, graph and the rankings of every object's query: identical."""
    with Project.open(a) as pa, Project.open(b) as pb:
        ids = pa.indexed_images()
        assert ids == pb.indexed_images() and len(ids) == 8
        for i in ids:
            fa, fb = pa.features(i), pb.features(i)
            assert np.array_equal(fa.desc, fb.desc) and np.array_equal(fa.xy, fb.xy)
        ia, ib = ShardedIndex.open(a / "index"), ShardedIndex.open(b / "index")
        assert np.array_equal(ia.centroids, ib.centroids) and ia.meta["shards"] == ib.meta["shards"]
        for sa, sb in zip(ia.shards(), ib.shards()):
            for name in ("ptr", "images", "sigs"):
                assert np.array_equal(getattr(sa.index, name), getattr(sb.index, name)), name
        ga, gb = Graph.load(a / "graph"), Graph.load(b / "graph")
        assert np.array_equal(ga.knn_ids, gb.knn_ids)
        ea, eb = ga.edges, gb.edges
        order_a, order_b = np.lexsort(np.asarray(ea.pairs).T[::-1]), np.lexsort(np.asarray(eb.pairs).T[::-1])
        for name in ("pairs", "inliers", "H"):
            assert np.array_equal(np.asarray(getattr(ea, name))[order_a], np.asarray(getattr(eb, name))[order_b],
                                  equal_nan=True), name
        for obj, views in photos.views.items():
            rel, poly = views[0]
            for method in ("sv", "hypergraph"):
                ra = search(pa, Query(pa.image_id(rel), Region.from_polygons([poly])), method=method)
                rb = search(pb, Query(pb.image_id(rel), Region.from_polygons([poly])), method=method)
                assert [(h.image_id, h.stage) for h in ra.hits] == [(h.image_id, h.stage) for h in rb.hits]
                assert [h.score for h in ra.hits] == pytest.approx([h.score for h in rb.hits], abs=1e-6)
                found = {h.image_id for h in ra.hits if h.stage == "verified"}
                assert found >= {pa.image_id(r) for r, _ in views[1:]} - {None}, (obj, method)


def test_the_cli_on_a_cluster_builds_the_project_one_process_builds(cluster, photos, reference, tmp_path, capsys):
    from distributed import get_task_stream

    folder = tmp_path / "on-cluster"
    with get_task_stream(cluster.client) as stream:
        code = main(["index", str(photos.root), "--project", str(folder), "--scheduler",
                     cluster.client.scheduler.address, "-q"])
    assert code == 0
    assert "ran on the cluster at tcp://" in capsys.readouterr().out
    ran = {}
    for task in stream.data:  # the premise: the batches ran on the workers, both of them
        ran.setdefault(task["key"].split("-")[0], set()).add(task["worker"])
    assert {name: len(workers) for name, workers in ran.items() if name in
            ("extract_batch", "pack_words_batch", "verify_batch")} == \
        {"extract_batch": 2, "pack_words_batch": 2, "verify_batch": 2}
    _same_project(reference, folder, photos)


def test_a_cancelled_cluster_run_resumes_to_the_same_project(cluster, photos, reference, tmp_path):
    folder = tmp_path / "resumed"

    def cancel_at(stage, at):
        token = CancelToken()

        def progress(done, total, name):
            if name == stage and done >= at:
                token.cancel()
        return progress, token

    with Project.create(folder) as project:
        progress, token = cancel_at("features", 2)
        with pytest.raises(Cancelled):
            project.index_folder(photos.root, progress=progress, cancel=token, runner=cluster)
        kept = len(project.images(status="ok"))
        assert 2 <= kept < 8  # the finished batches are committed, the rest is not
        progress, token = cancel_at("graph", 6)
        with pytest.raises(Cancelled):
            project.index_folder(photos.root, progress=progress, cancel=token, runner=cluster)
        assert len(project.images(status="ok")) == 8 and (folder / "index" / "manifest" / "meta.json").exists()
        report = project.index_folder(photos.root, runner=cluster)
        assert report.extracted == 0 and 0 < report.graph.pairs_checked < report.graph.pairs_wanted
    _same_project(reference, folder, photos)


def test_a_killed_workers_batch_runs_again_on_another_worker(cluster, photos, reference, tmp_path):
    """SIGKILL a worker process while it holds a batch: the scheduler hands the batch to the other
    worker (the nanny restarts the dead one) and the project comes out whole and the same."""
    from distributed import get_task_stream

    client = cluster.client
    pids = client.run(os.getpid)
    killed = {}

    def progress(done, total, stage):
        if stage != "features" or killed or done == 0:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a worker that holds a batch right now
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                worker, keys = sorted(busy.items())[0]
                killed.update(worker=worker, keys=set(keys))
                os.kill(pids[worker], signal.SIGKILL)
                return
            time.sleep(0.01)

    folder = tmp_path / "killed"
    with get_task_stream(client) as stream, Project.create(folder) as project:
        report = project.index_folder(photos.root, progress=progress, runner=cluster)
    assert killed, "no worker held a batch to kill"
    assert pids[killed["worker"]] not in client.run(os.getpid).values()  # it did die
    done_on = {t["key"]: t["worker"] for t in stream.data}
    for key in killed["keys"]:  # each batch it held was finished by another worker
        assert key in done_on and done_on[key] != killed["worker"], key
    assert report.extracted == 8 and not report.failed
    _same_project(reference, folder, photos)


def test_without_dask_the_cli_names_the_pip_command(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code = main(["index", str(photos.root), "--project", str(tmp_path / "p"), "--workers", "2", "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install 'pixret-desktop[dask]'" in err and "Dask" in err
    assert not (tmp_path / "p").exists()  # the failed first command leaves no project
