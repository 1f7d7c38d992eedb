"""Indexing a folder: bad files are reported and skipped, good ones indexed, refresh is incremental."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.base.errors import ProjectError
from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import make_collection
from engine.pipeline import search
from engine.project import Project


def _bad_corpus(folder: Path, good_jpeg: Path) -> dict[str, str]:
    """Writes broken files next to good ones; returns name -> a word the reason must contain."""
    data = good_jpeg.read_bytes()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "text.png").write_text("this is not an image")
    (folder / "random.webp").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    return {"zero.jpg": "empty", "truncated.jpg": "truncated", "text.png": "", "random.webp": ""}


def test_corrupt_files_are_reported_and_every_good_file_is_indexed(tmp_path, small_collection):
    root = tmp_path / "photos"
    shutil.copytree(small_collection.root, root)
    good = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    bad = _bad_corpus(root / "other", root / good[0])
    with Project.create(tmp_path / "proj") as project:
        report = project.index_folder(root)
        failed = dict(report.failed)
        assert sorted(failed) == sorted(f"other/{n}" for n in bad)
        for name, word in bad.items():
            assert word in failed[f"other/{name}"].lower()
        ok = sorted(im.path for im in project.images(status="ok"))
        assert ok == good
        assert sorted(im.path for im in project.failed_images()) == sorted(failed)
        assert set(project.indexed_images()) == {im.id for im in project.images(status="ok")}


def test_refresh_is_incremental_new_changed_removed(tmp_path):
    root = tmp_path / "photos"
    coll = make_collection(root, n_objects=1, views=3, n_distractors=3, seed=3)
    with Project.create(tmp_path / "proj") as project:
        first = project.index_folder(root)
        assert (first.new, first.extracted) == (6, 6)
        again = project.index_folder()
        assert (again.new, again.changed, again.removed, again.extracted) == (0, 0, 0, 0)
        # one file changes, one vanishes, one is added
        changed, removed = coll.distractors[0], coll.distractors[1]
        Image.open(root / coll.distractors[2]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / changed)
        (root / removed).unlink()
        shutil.copy(root / coll.distractors[2], root / "added.jpg")
        third = project.index_folder()
        assert (third.new, third.changed, third.removed, third.extracted) == (1, 1, 1, 2)
        statuses = {im.path: im.status for im in project.images()}
        assert statuses[removed] == "missing" and statuses["added.jpg"] == "ok"
        assert len(project.indexed_images()) == 6
        assert project.image_id(removed) not in project.indexed_images()


def test_cancel_keeps_finished_batches_and_resumes(tmp_path, monkeypatch):
    import engine.project as project_module

    root = tmp_path / "photos"
    make_collection(root, n_objects=1, views=4, n_distractors=6, seed=5)
    monkeypatch.setattr(project_module, "BATCH", 3)
    token = CancelToken()
    calls = []

    def progress(done, total, stage):
        calls.append((done, stage))
        if stage == "features" and done >= 3:
            token.cancel()

    with Project.create(tmp_path / "proj") as project:
        with pytest.raises(Cancelled):
            project.index_folder(root, progress=progress, cancel=token)
        assert len(project.images(status="ok")) == 3  # the finished batch is committed
        report = project.index_folder(root)
        assert report.extracted == 7 and len(project.indexed_images()) == 10


def test_exif_rotated_image_region_lines_up_with_its_pixels(tmp_path):
    """A photo stored sideways with an EXIF orientation tag is searched and outlined upright."""
    root = tmp_path / "photos"
    coll = make_collection(root, n_objects=1, views=3, n_distractors=4, seed=11)
    rel, truth = coll.views["object1"][2]
    upright = Image.open(root / rel)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": store the pixels turned the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(root / rel, exif=exif.tobytes(), quality=95)
    with Project.create(tmp_path / "proj") as project:
        project.index_folder(root)
        image_id = project.image_id(rel)
        assert project.image_size(image_id) == upright.size
        qrel, qpoly = coll.query("object1")
        result = search(project, Query(project.image_id(qrel), Region.from_polygons([qpoly])))
        hit = next(h for h in result.hits if h.image_id == image_id)
        assert hit.stage == "verified"
        w, h = upright.size
        assert hit.region.iou(Region.from_polygons([truth]), h, w) > 0.85


def test_a_different_collection_folder_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_collection(a, n_objects=1, views=2, n_distractors=1, seed=1)
    b.mkdir()
    with Project.create(tmp_path / "proj") as project:
        project.index_folder(a)
        with pytest.raises(ProjectError, match="indexes the collection"):
            project.index_folder(b)


def test_opening_a_folder_that_is_not_a_project_is_a_clear_error(tmp_path):
    with pytest.raises(ProjectError, match="not a PixRet project"):
        Project.open(tmp_path)


def test_a_file_name_that_is_not_utf8_is_indexed_searched_and_printed(tmp_path, capsys):
    """A Latin-1 name from an old archive: indexed with the rest, found by a search, listed by status."""
    import os

    from engine.cli import main

    root = tmp_path / "photos"
    coll = make_collection(root, n_objects=1, views=3, n_distractors=2, seed=8)
    view, poly = coll.views["object1"][1]
    odd = os.fsencode(root / "object1") + b"/caf\xe9.jpg"
    (root / view).rename(os.fsdecode(odd))
    assert os.fsdecode(b"caf\xe9.jpg").encode("utf-8", "surrogateescape") == b"caf\xe9.jpg"
    with pytest.raises(UnicodeEncodeError):  # the premise: no UTF-8 text holds this name
        os.fsdecode(b"caf\xe9.jpg").encode("utf-8")
    odd_rel = "object1/" + os.fsdecode(b"caf\xe9.jpg")
    with Project.create(tmp_path / "proj") as project:
        report = project.index_folder(root)
        assert report.failed == [] and report.extracted == 5
        assert project.image_id(odd_rel) in project.indexed_images()
        qrel, qpoly = coll.query("object1")
        result = search(project, Query(root / qrel, Region.from_polygons([qpoly])))
        hit = next(h for h in result.hits if h.path == odd_rel)
        assert hit.stage == "verified"
        assert hit.region.iou(Region.from_polygons([poly]), 480, 640) > 0.8
    assert main(["status", "--project", str(tmp_path / "proj")]) == 0
    assert "5 ok" in capsys.readouterr().out
    (root / "object1" / "view03.jpg").write_bytes(b"broken")  # a failure next to it is printed, named
    (root / os.fsdecode(odd)).write_bytes(b"also broken")
    assert main(["index", str(root), "--project", str(tmp_path / "proj"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "skipped object1/caf\\xe9.jpg" in err and "skipped object1/view03.jpg" in err


def test_empty_and_featureless_collections_get_a_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with Project.create(tmp_path / "p1") as project:
        with pytest.raises(ProjectError, match="no images found"):
            project.index_folder(empty)
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(3):
        Image.new("RGB", (200, 150), (120, 130, 140)).save(blank / f"b{i}.png")
    with Project.create(tmp_path / "p2") as project:
        with pytest.raises(ProjectError, match="3 images hold no local features"):
            project.index_folder(blank)
        assert [im.status for im in project.images()] == ["ok"] * 3  # the premise: read, just featureless
    for p in blank.iterdir():
        p.write_bytes(b"not an image")
    with Project.create(tmp_path / "p3") as project:
        with pytest.raises(ProjectError, match="no image file could be read"):
            project.index_folder(blank)


def test_an_unreadable_subfolder_is_reported(tmp_path, monkeypatch, capsys):
    import os

    import engine.ingest.scan as scan_module
    from engine.cli import main

    root = tmp_path / "photos"
    make_collection(root, n_objects=1, views=3, n_distractors=2, seed=9)
    locked = root / "other"
    locked.chmod(0)
    try:
        os.listdir(locked)
        real = os.scandir  # running as root: permissions do not stop us, so the walk is refused the folder

        def scandir(path=None):
            if isinstance(path, (str, os.PathLike)) and Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(scan_module.os, "scandir", scandir)
    except PermissionError:
        pass
    try:
        assert main(["index", str(root), "--project", str(tmp_path / "proj"), "-q"]) == 1
    finally:
        locked.chmod(0o755)
    captured = capsys.readouterr()
    assert "1 folder could not be read" in captured.out
    assert f"could not read the folder {locked}" in captured.err


class Recorder:
    """A progress callback that records every call, and cancels once `stage` reaches step `at`."""

    def __init__(self, stage: str | None = None, at: int = 0):
        self.token, self.calls, self.stage, self.at = CancelToken(), [], stage, at

    def __call__(self, done, total, stage):
        self.calls.append((stage, done, total))
        if stage == self.stage and done >= self.at:
            self.token.cancel()

    def steps(self, stage):
        return [(done, total) for name, done, total in self.calls if name == stage]


def test_interrupted_vocabulary_training_and_word_indexing_resume(tmp_path, monkeypatch):
    """A cancel (or a crash) during k-means or during word indexing loses at most one step: the
    next run continues from the saved one and ends with exactly the index of an uninterrupted run."""
    import engine.project as project_module
    from engine.index.asmk import VOCABULARY_ITERATIONS
    from engine.index.shards import ShardedIndex

    root = tmp_path / "photos"
    make_collection(root, n_objects=1, views=3, n_distractors=5, size=(320, 240), seed=21)
    monkeypatch.setattr(project_module, "BATCH", 3)  # packs of 3 images: a batch of word work each
    with Project.create(tmp_path / "straight") as project:
        project.index_folder(root, graph=False)
    reference = ShardedIndex.open(tmp_path / "straight" / "index")

    with Project.create(tmp_path / "P") as project:
        run = Recorder("training vocabulary", 4)
        with pytest.raises(Cancelled):
            project.index_folder(root, graph=False, progress=run, cancel=run.token)
        assert not (project.folder / "index").exists()

        run = Recorder("indexing words", 3)  # the vocabulary resumes; words stop after a pack
        with pytest.raises(Cancelled):
            project.index_folder(root, graph=False, progress=run, cancel=run.token)
        training = [done for done, _ in run.steps("training vocabulary")]
        assert training[0] == 4 and training[-1] == VOCABULARY_ITERATIONS  # resumed, not restarted
        stopped, total = run.steps("indexing words")[-1]
        assert total == 8 and 3 <= stopped < 8  # stopped after the pack that reached 3 images

        run = Recorder()
        project.index_folder(root, graph=False, progress=run)
        assert run.steps("training vocabulary") == [(VOCABULARY_ITERATIONS, VOCABULARY_ITERATIONS)]
        assert run.steps("indexing words")[-1] == (8 - stopped, 8 - stopped)  # only the packs without words
        assert not (project.folder / "index-work").exists()
    resumed = ShardedIndex.open(tmp_path / "P" / "index")
    assert np.array_equal(resumed.centroids, reference.centroids)
    assert resumed.n_words == reference.n_words
    mine = resumed.entries()
    for i, (words, sigs) in reference.entries().items():
        assert np.array_equal(mine[i][0], words) and np.array_equal(mine[i][1], sigs)
