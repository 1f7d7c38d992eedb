"""Shared fixtures: generated collections whose right answers are known."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from engine.demo import GeneratedCollection, make_collection

DEV = Path(__file__).resolve().parents[2] / "shared" / "bench" / "dev"


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the whole session (tests/pgserver.py), started on first use;
    without one the test is skipped, saying why (in CI, where PIXRET_REQUIRE_POSTGRES is set, it fails)."""
    import pgserver

    cluster = pgserver.start_or_skip()
    yield cluster
    cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a new, empty PostgreSQL database for one test."""
    return pg_cluster.create_database(f"t{next(_databases)}")


@pytest.fixture(scope="session")
def dask_cluster():
    """A LocalCluster of 2 worker processes for the whole session (engine.parallel.cluster's
    DaskRunner on it), started on first use; skipped where the dask extra is not installed."""
    pytest.importorskip("distributed")
    from engine.parallel.cluster import open_cluster

    with open_cluster(workers=2) as runner:
        yield runner


@pytest.fixture(scope="session")
def small_collection(tmp_path_factory) -> GeneratedCollection:
    """3 objects x 4 views + 8 distractors, 640x480 JPEGs (generated once per test session)."""
    root = tmp_path_factory.mktemp("collection")
    return make_collection(root, n_objects=3, views=4, n_distractors=8, seed=7)


@pytest.fixture(scope="session")
def indexed_project(small_collection, tmp_path_factory):
    """The small collection indexed into a project (read-only for tests: copy before changing)."""
    from engine.project import Project

    folder = tmp_path_factory.mktemp("project")
    project = Project.create(folder, root=small_collection.root)
    project.index_folder(small_collection.root)
    yield project
    project.close()


@pytest.fixture
def pg_project(indexed_project, pg_url, tmp_path):
    """The session's indexed project with its catalog on PostgreSQL: a new project on a new database,
    given the indexed catalog's rows and a copy of its feature store, index and graph (indexing it
    again would take seconds; what is searched and decided is the same)."""
    from engine.project import Project

    folder = tmp_path / "pg_project"
    project = Project.create(folder, db_url=pg_url)
    copy_catalog(indexed_project.catalog, project.catalog)
    for part in ("features", "index", "graph"):
        if (indexed_project.folder / part).exists():
            shutil.copytree(indexed_project.folder / part, folder / part, dirs_exist_ok=True)
    project.close()
    project = Project.open(folder, db_url=pg_url)
    yield project
    project.close()


@pytest.fixture
def project_copy(indexed_project, tmp_path):
    """A private copy of the session's indexed project (SQLite), for tests that write to it."""
    from engine.project import Project

    folder = tmp_path / "project"
    shutil.copytree(indexed_project.folder, folder)
    project = Project.open(folder)
    yield project
    project.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def team_project(request):
    """(project, db url or None): the indexed project, on a private SQLite copy or on PostgreSQL."""
    if request.param == "postgresql":
        project = request.getfixturevalue("pg_project")
        return project, project.catalog.url
    return request.getfixturevalue("project_copy"), None


def copy_catalog(src, dst) -> None:
    """Every row of one catalog into another (emptied first), ids kept; PostgreSQL's id sequences
    are moved past the copied ids."""
    from sqlalchemy import delete, func, insert, select, text

    from engine.catalog.tables import Base

    tables = Base.metadata.sorted_tables
    with dst.session() as d:
        for table in reversed(tables):
            d.execute(delete(table))
        with src.session() as s:
            for table in tables:
                rows = [dict(r._mapping) for r in s.execute(select(table))]
                if rows:
                    d.execute(insert(table), rows)
        if dst.engine.dialect.name == "postgresql":
            for table in tables:
                top = d.scalar(select(func.max(table.c.id)))
                if top is not None:
                    d.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), {int(top)})"))


def write_pixbench(collection: GeneratedCollection, out: Path) -> Path:
    """Lay a generated collection out as a PixBench set: each object's first view is a query."""
    (out / "jpg").mkdir(parents=True)
    (out / "queries").mkdir()
    (out / "labels").mkdir()

    def flat(rel: str) -> str:
        return rel.replace("/", "__").rsplit(".", 1)[0]

    imlist, qimlist, gnd = [], [], []
    for views in collection.views.values():
        for rel, _ in views[1:]:
            imlist.append(flat(rel))
    imlist += [flat(r) for r in collection.distractors]
    for rel in [r for v in collection.views.values() for r, _ in v] + collection.distractors:
        shutil.copy(collection.root / rel, out / "jpg" / f"{flat(rel)}.jpg")

    def labelme(name, poly):
        return {"imagePath": f"../jpg/{name}.jpg", "imageWidth": 640, "imageHeight": 480,
                "shapes": [{"label": "object", "shape_type": "polygon", "points": poly}]}

    for q, views in enumerate(collection.views.values()):
        qrel, qpoly = views[0]
        qimlist.append(flat(qrel))
        xs, ys = [p[0] for p in qpoly], [p[1] for p in qpoly]
        easy = [imlist.index(flat(r)) for r, _ in views[1:]]
        gnd.append({"bbx": [min(xs), min(ys), max(xs), max(ys)], "easy": easy, "hard": [], "junk": [],
                    "pixel_gt": True})
        (out / "queries" / f"{q}.json").write_text(json.dumps(labelme(flat(qrel), qpoly)))
        for rel, poly in views[1:]:
            i = imlist.index(flat(rel))
            (out / "labels" / f"{q}_{i}.json").write_text(json.dumps(labelme(flat(rel), poly)))
    (out / "gnd.json").write_text(json.dumps({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}))
    return out
