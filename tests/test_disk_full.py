"""A full disk and a read-only medium: said in words, no debris, the project still opens and reads.

Two ways to run out of space. A real one: the project on a small tmpfs (mounting needs root, so
those tests are skipped elsewhere). An injected one, on any machine: numpy's writer fails with
ENOSPC halfway through a file, and SQLite's own `max_page_count` makes the catalog full.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, select

from engine.annotate import review
from engine.base.errors import DiskFullError, ProjectError
from engine.base.regions import Region
from engine.catalog.tables import ProjectRow
from engine.cli import main
from engine.demo import make_collection
from engine.project import Project

can_mount = os.name == "posix" and os.geteuid() == 0 and shutil.which("mount") is not None
needs_mount = pytest.mark.skipif(not can_mount, reason="mounting a small tmpfs needs root")


@contextmanager
def small_disk(folder: Path, size_kb: int):
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of folder's file system; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert shutil.disk_usage(folder).free < 4096
    return filler


def debris(folder: Path) -> list[str]:
    """Temporary files and folders the engine writes on its way (engine.base.atomic's names)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name.startswith((".tmp-", ".old-")) or p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A small collection indexed into a project (copy it before changing it), and more photos."""
    base = tmp_path_factory.mktemp("disk_full")
    make_collection(base / "photos", n_objects=1, views=3, n_distractors=2, size=(320, 240), seed=12)
    make_collection(base / "more", n_objects=1, views=3, n_distractors=3, size=(320, 240), seed=13)
    with Project.create(base / "P") as project:
        project.index_folder(base / "photos", graph=False)
    return base


def copy_project(indexed: Path, to: Path, photos: Path) -> tuple[Path, Path]:
    """A copy of the indexed project and of its collection (the copy's root points at the copy)."""
    shutil.copytree(indexed / "photos", photos)
    shutil.copytree(indexed / "P", to)
    with Project.open(to) as project:
        with project.catalog.session() as s:
            s.scalar(select(ProjectRow)).root = str(photos.resolve())
    return to, photos


def n_photos(folder: Path) -> int:
    return len(list(folder.rglob("*.jpg")))


@needs_mount
def test_a_full_disk_is_said_in_words_leaves_no_debris_and_the_project_still_opens(tmp_path, indexed, capsys):
    size_kb = sum(f.stat().st_size for f in (indexed / "P").rglob("*") if f.is_file()) // 1024 + 160
    with small_disk(tmp_path / "disk", size_kb) as disk:
        project, photos = copy_project(indexed, disk / "P", tmp_path / "photos")
        shutil.copytree(indexed / "more", photos / "more")  # their features do not fit
        n_ok, n_all = n_photos(indexed / "photos"), n_photos(photos)

        assert main(["index", str(photos), "--project", str(project), "-q", "--no-graph"]) == 1
        err = capsys.readouterr().err
        assert f"disk full: no space left to write in {project}" in err and "Traceback" not in err
        assert debris(disk) == []

        assert main(["status", "--project", str(project)]) == 0  # everything saved before is there
        assert f"{n_all - n_ok} new, {n_ok} ok" in capsys.readouterr().out

        filler = fill(disk)  # not a byte left: the catalog is read without writing
        assert main(["status", "--project", str(project)]) == 0
        captured = capsys.readouterr()
        assert f"{n_ok} ok" in captured.out and "read-only (the disk is full)" in captured.err
        with Project.open(project) as p:
            assert p.read_only == "the disk is full"
            with pytest.raises(ProjectError, match="read-only"):
                p.update_settings(anything=1)

        filler.unlink()
        remount(disk, "size=20m")
        assert main(["index", str(photos), "--project", str(project), "-q", "--no-graph"]) == 0
        assert f"{n_all - n_ok} extracted" in capsys.readouterr().out  # the first ones are not redone


@needs_mount
def test_a_project_on_a_read_only_medium_opens_for_reading(tmp_path, indexed, capsys):
    with small_disk(tmp_path / "disk", 20 * 1024) as disk:
        project, photos = copy_project(indexed, disk / "P", tmp_path / "photos")
        remount(disk, "ro")
        try:
            assert main(["status", "--project", str(project)]) == 0
            captured = capsys.readouterr()
            assert "read-only (its folder cannot be written)" in captured.err
            assert f"{n_photos(photos)} ok" in captured.out
            assert main(["index", str(photos), "--project", str(project), "-q"]) == 2
            assert "cannot be indexed now" in capsys.readouterr().err
        finally:
            remount(disk, "rw")


def test_no_space_for_features_is_named_and_leaves_nothing_behind(tmp_path, indexed, monkeypatch):
    project_dir, photos = copy_project(indexed, tmp_path / "P", tmp_path / "photos")
    shutil.copytree(indexed / "more", photos / "more")

    def save(f, arr, *a, **kw):  # half a file gets out, then the disk is full
        f.write(b"\x93NUMPY" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with Project.open(project_dir) as project:
        packs = project.store.packs()
        monkeypatch.setattr(np, "save", save)
        with pytest.raises(DiskFullError, match=f"no space left to write in {project.folder / 'features'}") as e:
            project.index_folder(graph=False)
        assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
        assert debris(project.folder) == [] and project.store.packs() == packs
        assert len(project.images(status="new")) == n_photos(indexed / "more")
        monkeypatch.undo()
        assert project.index_folder(graph=False).extracted == n_photos(indexed / "more")


def test_no_space_for_the_index_keeps_the_old_one(tmp_path, indexed, monkeypatch):
    project_dir, photos = copy_project(indexed, tmp_path / "P", tmp_path / "photos")
    shutil.copy(photos / "object1" / "view01.jpg", photos / "copy.jpg")
    real = np.save
    reached = []

    def save(f, arr, *a, **kw):  # the new features fit, the new index does not
        name = str(getattr(f, "name", ""))
        if "/index/" in name and "/.tmp-" in name:  # a shard or the manifest
            reached.append(f.name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, arr, *a, **kw)

    with Project.open(project_dir) as project:
        before = _files(project.folder / "index")
        monkeypatch.setattr(np, "save", save)
        with pytest.raises(DiskFullError, match=f"no space left to write in {project.folder / 'index' / 'shards'};"):
            project.index_folder(graph=False)
        assert reached  # the premise: the index writer ran out of space, not another one
        assert debris(project.folder) == []
        assert _files(project.folder / "index") == before
        assert project.image_id("copy.jpg") in {im.id for im in project.images(status="ok")}  # its features kept


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_full_catalog_is_named_and_keeps_every_earlier_decision(tmp_path, indexed):
    """SQLite's own limit makes the catalog full (SQLITE_FULL, as on a full disk)."""
    from engine.base.types import Query
    from engine.pipeline import search

    project_dir, photos = copy_project(indexed, tmp_path / "P", tmp_path / "photos")
    with Project.open(project_dir) as project:
        result = search(project, Query(photos / "object1" / "view01.jpg", Region.from_bbox(40, 40, 280, 200)))
        qid = review.save_search(project, result)

        @event.listens_for(project.catalog.engine, "connect")
        def limit(dbapi_connection, _record):
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

        project.catalog.engine.dispose()  # new connections get the limit
        outline = Region.from_polygons([[[x, 20 + (x * 7) % 200] for x in range(0, 300, 3)]])
        saved = 0
        with pytest.raises(DiskFullError, match=f"in {project.folder}"):
            for k in range(10_000):
                hit = result.hits[k % len(result.hits)]
                review.set_decision(project, qid, hit.image_id, "corrected", outline.buffer(k % 7))
                saved += 1
        assert saved > 0
    last = {result.hits[k % len(result.hits)].image_id: k for k in range(saved)}
    with Project.open(project_dir) as project:  # every decision that returned is there
        kept = review.decisions(project, qid)
        assert set(kept) == set(last)
        for image_id, k in last.items():
            assert kept[image_id].region.area == pytest.approx(outline.buffer(k % 7).area, rel=1e-6)
