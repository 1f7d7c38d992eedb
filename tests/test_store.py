"""The compact feature store: what it holds per feature, and projects of PixRet 0.1 upgraded in place."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.base.progress import CancelToken, Cancelled
from engine.base.regions import Region
from engine.base.types import Query
from engine.cli import main
from engine.features.extract import rootsift
from engine.pipeline import search
from engine.project import Project
from tests.legacy import make_v01, pack_files


def test_the_searched_part_of_the_store_is_30_bytes_per_feature(indexed_project, capsys):
    stats = indexed_project.stats()
    assert stats["features"] > 10000
    # xy float32 x 2, scale and angle float16, word uint16, signature 2 x uint64 (+ npy headers)
    assert 30.0 <= stats["store_bytes_per_feature"] < 30.5
    assert 128.0 <= stats["cold_bytes_per_feature"] < 128.5  # the full SIFT descriptors, kept apart
    assert 0 < stats["index_bytes_per_feature"] < 40
    assert main(["status", "--project", str(indexed_project.folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["store_bytes_per_feature"] == stats["store_bytes_per_feature"]
    assert shown["index_bytes_per_feature"] == stats["index_bytes_per_feature"]
    assert main(["status", "--project", str(indexed_project.folder)]) == 0
    text = capsys.readouterr().out
    assert f"({stats['store_bytes_per_feature']:.1f} B/feature searched, {stats['cold_bytes_per_feature']:.1f} B/feature " \
           f"of full descriptors), index" in text
    assert f"({stats['index_bytes_per_feature']:.1f} B/feature)" in text
    pack = indexed_project.store.packs()[0]
    assert indexed_project.store.meta(pack) == {"format": 2, "kind": "rootsift", "desc_dim": 128,
                                                 "desc_dtype": "uint8"}


def test_stored_words_are_the_vocabulary_words_of_the_descriptors(indexed_project):
    image_id = indexed_project.indexed_images()[3]
    stored, full = indexed_project.stored(image_id), indexed_project.features(image_id)
    x = rootsift(full.desc)
    word = indexed_project.quantizer.assign(x)[:, 0]
    assert np.array_equal(np.asarray(stored.word), word)
    sig = indexed_project.embedding.signatures(x, word, indexed_project.quantizer.centroids)
    assert np.array_equal(np.asarray(stored.sig), sig)
    assert np.array_equal(np.asarray(stored.xy), np.asarray(full.xy))


@pytest.fixture(scope="module")
def v01_project(small_collection, tmp_path_factory):
    """The small collection indexed as PixRet 0.1 stored it (see tests/legacy.py)."""
    return make_v01(tmp_path_factory.mktemp("v01") / "project", small_collection.root, batch=8)


def ranking(project, small_collection):
    out = []
    for views in small_collection.views.values():
        qrel, qpoly = views[0]
        r = search(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])), method="sv")
        out.append([(h.image_id, h.stage, round(h.score, 3),
                     None if h.region is None else json.dumps(h.region.to_json())) for h in r.hits[:6]])
    return out


def test_a_v01_project_searches_as_it_is_then_is_upgraded_in_place(v01_project, small_collection, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(v01_project, folder)
    before = pack_files(folder)
    with Project.open(folder) as project:
        assert project.needs_upgrade() and project.stats()["needs_upgrade"]
        assert not list((folder / "features").glob("*/words-*"))  # the premise: 0.1's layout
        old = ranking(project, small_collection)  # words computed in memory: nothing written
        assert not list((folder / "features").glob("*/words-*"))
        for views, hits in zip(small_collection.views.values(), old):
            truth = {project.image_id(rel) for rel, _ in views[1:]}
            assert {i for i, stage, *_ in hits[:len(truth)] if stage == "verified"} == truth
        report = project.index_folder(small_collection.root, graph=False)
        assert report.extracted == 0  # nothing re-extracted
        assert not project.needs_upgrade()
        assert ranking(project, small_collection) == old
        assert project.stats()["store_bytes_per_feature"] == pytest.approx(34.0, abs=0.5)  # float32 scale, angle kept
    assert pack_files(folder) == before  # every stored feature, byte for byte
    assert sorted(p.name for p in (folder / "index").iterdir()) == ["manifest", "shards"]  # sharded in place


def test_an_interrupted_upgrade_resumes_where_it_stopped(v01_project, small_collection, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(v01_project, folder)
    cancel = CancelToken()
    seen = []

    def progress(done, total, stage):
        if stage == "indexing words" and done > 0:
            seen.append(done)
            cancel.cancel()  # after the first pack

    with Project.open(folder) as project:
        with pytest.raises(Cancelled):
            project.upgrade(progress=progress, cancel=cancel)
        first = sorted((folder / "features").glob("*/words-*/sig.npy"))
        assert len(first) == 1 and project.needs_upgrade()
        stamp = first[0].stat().st_mtime_ns
        assert project.upgrade()
        assert not project.needs_upgrade()
        assert first[0].stat().st_mtime_ns == stamp  # the pack done before was not redone
        assert len(list((folder / "features").glob("*/words-*/sig.npy"))) == len(project.store.packs())
