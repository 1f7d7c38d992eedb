"""SIGKILL at work (tests/faults.py): during indexing, during review decisions, during an export.

After each kill the project opens, its catalog passes SQLite's integrity check, nothing that was
reported saved is missing, and the interrupted work finishes when asked again. Kill points are
progress markers plus a seeded random delay (the seed is in the failure message);
benchmarks/kill_campaign.py runs many more, at random points.
"""
from __future__ import annotations

import random
import shutil

import pytest

from engine.annotate import review
from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import make_collection
from engine.pipeline import search
from engine.project import Project
from tests.faults import catalog_is_sound, cli, decider, decisions_lost, features_readable, kill_at

SEED = 12


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A small indexed project with one saved search, and its collection."""
    base = tmp_path_factory.mktemp("faults")
    make_collection(base / "photos", n_objects=1, views=3, n_distractors=4, size=(320, 240), seed=31)
    with Project.create(base / "P") as project:
        project.index_folder(base / "photos", graph=False)
        result = search(project, Query(base / "photos" / "object1" / "view01.jpg", Region.from_bbox(40, 40, 280, 200)))
        qid = review.save_search(project, result)
    return base / "P", qid


def debris(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name.startswith((".tmp-", ".old-")) or p.name.endswith(".tmp"))


def test_killed_while_indexing_the_project_opens_keeps_its_features_and_resumes(tmp_path):
    """Killed while training the vocabulary, after every feature batch was committed (random points,
    extraction included, are benchmarks/kill_campaign.py's)."""
    photos = tmp_path / "photos"
    make_collection(photos, n_objects=1, views=3, n_distractors=5, size=(320, 240), seed=32)
    folder = tmp_path / "P"
    delay = random.Random(SEED).uniform(0.0, 0.05)
    kill = kill_at(cli("index", str(photos), "--project", str(folder), "--no-graph"), "training vocabulary", delay)
    assert kill.seen_marker and not kill.exited_first, (delay, kill.stderr[-2000:])
    assert catalog_is_sound(folder)
    with Project.open(folder) as project:
        assert not project.read_only
        assert len(project.indexed_images()) == 8
        assert features_readable(project)  # every image marked indexed has its features, whole
        report = project.index_folder(graph=False)  # indexing resumes
        assert report.extracted == 0 and report.n_indexed == 8  # nothing saved was redone
        assert project.index.feature_sets.keys() == set(project.indexed_images())
    assert debris(folder) == [] and not (folder / "index-work").exists()


def test_killed_while_deciding_every_decision_reported_saved_is_kept(tmp_path, reviewed):
    rng = random.Random(SEED)
    folder = tmp_path / "P"
    shutil.copytree(reviewed[0], folder)
    delay = rng.uniform(0.05, 0.3)
    kill = kill_at(decider(folder, reviewed[1]), "saved 3\n", delay)
    assert kill.seen_marker and not kill.exited_first, (delay, kill.stderr[-2000:])
    assert catalog_is_sound(folder)
    with Project.open(folder) as project:
        saved, lost = decisions_lost(project, reviewed[1], kill.lines)
    assert saved >= 4 and lost == 0, (delay, saved, lost)


def test_killed_while_exporting_the_project_is_untouched_and_the_export_is_never_half(tmp_path, reviewed):
    from engine.formats.export import export_project

    folder = tmp_path / "P"
    shutil.copytree(reviewed[0], folder)
    with Project.open(folder) as project:
        qid = reviewed[1]
        for hit in review.load_search(project, qid).hits[:3]:
            review.set_decision(project, qid, hit.image_id, "accepted", Region.from_bbox(10, 10, 100, 80))
        before = {i: d.kind for i, d in review.decisions(project, qid).items()}
        export_project(project, tmp_path / "whole", "pixbench")
    whole = sorted(p.relative_to(tmp_path / "whole").as_posix() for p in (tmp_path / "whole").rglob("*"))

    out = tmp_path / "out"
    kill = kill_at(cli("export", "--project", str(folder), "--format", "pixbench", "--out", str(out)),
                   "collecting reviews", 0.0)
    assert kill.seen_marker and not kill.exited_first, kill.stderr[-2000:]
    assert catalog_is_sound(folder)
    if out.exists():  # the export folder appears whole or not at all
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == whole
    with Project.open(folder) as project:
        assert {i: d.kind for i, d in review.decisions(project, qid).items()} == before
        export_project(project, out, "pixbench", overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == whole
