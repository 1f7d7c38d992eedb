"""A learned feature type per project (issue 17): a small collection of dev's real photos indexed with
`pixret index --features xfeat` finds and outlines the query's object through the whole pipeline;
the type is the project's, kept and refused when another is asked; a missing extra makes nothing.

The XFeat tests skip, naming the pip commands, where the `learned` extra is not installed (with
PIXRET_REQUIRE_LEARNED they run anyway and fail saying what is missing); the missing-extra test
runs everywhere."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from engine.annotate.objects import object_of_query, search_object
from engine.annotate.review import save_search, set_decision
from engine.base.types import Query
from engine.cli import main
from engine.features import learned
from engine.features.batch import extract_batch
from engine.features.extract import FeatureConfig
from engine.formats.pixbench import load_pixbench
from engine.ingest import imageio
from engine.pipeline import SearchConfig, search
from engine.project import Project
from engine.verify.thorough import ThoroughConfig

DEV = Path("/work/shared/bench/dev")
QUERY = 0  # vgg_graf graffiti wall img1: 5 positives with pixel labels (img2-img6, the last two far off to the side)
NEGATIVES = 8


def _missing() -> str | None:
    what = learned.feature_kind_missing("xfeat")
    return None if what is None or os.environ.get("PIXRET_REQUIRE_LEARNED") else what


pytestmark = pytest.mark.skipif(not DEV.is_dir(), reason="bench data not here")
needs_xfeat = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def graffiti(tmp_path_factory):
    """The query's positives and NEGATIVES photos of other things (neither positive nor junk of it),
    copied into a collection and indexed with `pixret index --features xfeat`."""
    bench = load_pixbench(DEV)
    positives = [bench.imlist[i] for i in bench.positives(QUERY)]
    taken = set(bench.positives(QUERY) + bench.junk(QUERY))
    others = [n for i, n in enumerate(bench.imlist) if i not in taken and not n.startswith(("comp_", "vgg_graf"))]
    negatives = [others[k] for k in np.linspace(0, len(others) - 1, NEGATIVES).astype(int)]
    root = tmp_path_factory.mktemp("graffiti")
    for name in positives + negatives:
        shutil.copy(bench.image_path(name), root / f"{name}.jpg")
    folder = tmp_path_factory.mktemp("xfeat") / "project"
    assert main(["index", str(root), "--project", str(folder), "--features", "xfeat", "-q"]) == 0
    return bench, root, folder, positives, negatives


def _query(bench) -> Query:
    return Query(bench.image_path(bench.qimlist[QUERY]), bench.query_region(QUERY))


def _label(bench, project, image_id):
    name = Path(project.image_path(image_id)).stem
    return bench.label_region(QUERY, bench.imlist.index(name))


@needs_xfeat
def test_a_project_indexed_with_xfeat_finds_and_outlines_the_object(graffiti, capsys):
    bench, _, folder, positives, negatives = graffiti
    with Project.open(folder) as project:  # reopened: the type is the project's
        assert project.feature_config.kind == "xfeat"
        packs = {project.feature_spans()[i][0] for i in project.indexed_images()}
        assert {json.dumps(project.store.meta(p), sort_keys=True) for p in packs} == {json.dumps(
            {"format": 2, "kind": "xfeat", "desc_dim": 64, "desc_dtype": "float16"}, sort_keys=True)}
        fs = project.features(project.indexed_images()[0])
        assert len(fs) > 500 and fs.desc.dtype == np.float16
        assert np.allclose(np.linalg.norm(fs.desc.astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert project.index.centroids.shape[1] == 64
        assert project.graph is not None  # the collection graph was built on the learned features too

        result = search(project, _query(bench), method="sv")
        verified = [h for h in result.hits if h.stage == "verified"]
        names = [Path(h.path).stem for h in verified]
        assert len(verified) >= 3 and set(names) <= set(positives), names  # the right photos, and only those
        assert [Path(h.path).stem for h in result.hits[:len(verified)]] == names  # ranked first
        for h in verified:  # outlined where the labels are
            w, hh = project.image_size(h.image_id)
            assert h.region.iou(_label(bench, project, h.image_id), hh, w) > 0.6, h.path

        full = search(project, _query(bench), method="full")  # topo, the graph, propagation
        found = [Path(h.path).stem for h in full.hits if h.stage in ("verified", "propagated")]
        assert set(names) <= set(found) <= set(positives)

        # the thorough method's tilted views are RootSIFT: not asked of a learned project's vocabulary
        config = SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=None, affine_views="always"))
        slow = search(project, _query(bench), method="thorough", config=config)
        assert slow.timings["thorough_affine_pairs"] == 0
        assert [h.path for h in slow.hits if h.stage == "verified"] == [h.path for h in verified]

        # the thorough method's learned look on an XFeat project reads the stored features, extracts none
        config = SearchConfig(thorough=ThoroughConfig(budget_s=None, affine_views="off", reach=8))
        slow = search(project, _query(bench), method="thorough", config=config)
        assert slow.timings["thorough_direct_pairs"] >= 1 and slow.timings["thorough_learned_pairs"] >= 1
        assert not list((project.folder / "cache").glob("features-*/*.npz"))
        assert {h.path for h in slow.hits if h.stage == "verified"} >= {h.path for h in verified}

        # the first decision makes an object; its search starts from the stored (float16) features of its view
        qid = save_search(project, result)
        first = verified[0]
        set_decision(project, qid, first.image_id, "accepted", first.region)
        again = search_object(project, object_of_query(project, qid))
        assert {Path(h.path).stem for h in again.hits if h.stage == "verified"} <= set(positives)
        assert len([h for h in again.hits if h.stage == "verified"]) >= 3

    assert main(["status", "--project", str(folder), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["feature_kind"] == "xfeat" and status["descriptor"] == "64 x float16"
    assert round(status["cold_bytes_per_feature"]) == 128 and round(status["store_bytes_per_feature"]) == 30


@needs_xfeat
def test_an_indexed_project_keeps_its_feature_type(graffiti, tmp_path, capsys):
    _, root, folder, _, _ = graffiti
    before = sorted(p.name for p in (folder / "features").iterdir())
    assert main(["index", str(root), "--project", str(folder), "-q"]) == 0  # no --features: its own
    assert main(["index", str(root), "--project", str(folder), "--features", "rootsift", "-q"]) == 2
    err = capsys.readouterr().err
    assert "indexed with xfeat features" in err and "--project NEW_PROJECT --features rootsift" in err
    with Project.open(folder) as project:
        assert project.feature_config.kind == "xfeat"
    assert sorted(p.name for p in (folder / "features").iterdir()) == before


@needs_xfeat
def test_learned_features_are_extracted_in_a_worker_process(graffiti, tmp_path):
    """extract_batch as a cluster worker runs it: another process (spawned, so nothing of this one's
    torch is inherited) writes the pack; its features are those extracted here."""
    _, root, _, positives, _ = graffiti
    store = tmp_path / "features"
    store.mkdir()
    config = FeatureConfig(long_side=320, max_features=300, kind="xfeat")
    items = [(1, f"{positives[0]}.jpg"), (2, "no such photo.jpg")]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        batch = pool.submit(extract_batch, root, items, config, store).result()
    assert [i for i, *_ in batch.ok] == [1] and [i for i, _ in batch.failed] == [2]
    _, w, h, offset, count = batch.ok[0]
    here = learned.extract_kind(imageio.load_image(root / items[0][1]), config)
    assert (w, h) == (800, 640) and count == len(here) == 300
    from engine.features.store import FeatureStore

    there = FeatureStore(store).read(batch.pack, offset, count)
    assert np.allclose(there.xy, here.xy, atol=1e-3)
    assert np.allclose(there.desc.astype(np.float32), here.desc, atol=2e-3)  # float16 in the pack


def test_a_missing_learned_extra_makes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(learned.WEIGHTS, "xfeat", learned.WeightFile("pixret_no_such_package", "w.pt", 1))
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(next((DEV / "jpg").glob("*.jpg")), root)
    folder = tmp_path / "project"
    assert main(["index", str(root), "--project", str(folder), "--features", "xfeat", "-q"]) == 2
    err = capsys.readouterr().err
    for command in learned.PIP_COMMANDS:
        assert command in err
    assert not folder.exists()
    out = tmp_path / "run"
    assert main(["bench", str(DEV), "--out", str(out), "--features", "xfeat", "-q"]) == 2
    assert "pip install" in capsys.readouterr().err and not out.exists()
    # a project made with the default type refuses to become a learned one it cannot index
    with Project.create(folder, root=root) as project:
        with pytest.raises(learned.MissingExtra):
            project.choose_features("xfeat")
        assert project.feature_config.kind == "rootsift"
