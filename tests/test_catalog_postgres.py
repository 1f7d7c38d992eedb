"""The catalog on a real PostgreSQL server (a throwaway cluster, tests/pgserver.py): the same Alembic
migrations build the same schema, and errors read as PixRet errors."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, select, text

from engine.base.errors import ProjectError
from engine.catalog.migrations import current_revision, head_revision, make_config, migration_connection
from engine.catalog.tables import Base, Catalog, FeatureSetRow, ImageRow, ProjectRow, QueryRow, make_engine


@pytest.fixture
def catalog(pg_url):
    cat = Catalog(pg_url)
    yield cat
    cat.close()


def test_the_migrations_build_every_model_table_on_postgresql(catalog):
    assert catalog.engine.dialect.name == "postgresql"
    assert set(inspect(catalog.engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    assert current_revision(catalog.engine) == head_revision()


def test_models_and_migrations_do_not_drift_on_postgresql(catalog):
    with catalog.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert differences == [], f"engine/catalog/tables.py and the migrations disagree on PostgreSQL: {differences}"


def test_constraints_and_cascades_hold_on_postgresql(catalog):
    insp = inspect(catalog.engine)
    assert {tuple(uq["column_names"]) for uq in insp.get_unique_constraints("objects")} == {("name",)}
    with catalog.session() as s:
        image = ImageRow(path="a.jpg", size=5 * 2**30, mtime=1.0)  # above 32 bits
        s.add(image)
        s.flush()
        s.add(FeatureSetRow(image_id=image.id, kind="rootsift", pack="p0", offset=0, count=5, scale=1.0))
        s.add(QueryRow(image_id=image.id, image_path="a.jpg", region={"polygons": [[[0, 0], [1, 0], [1, 1]]]},
                       method="sv"))
        s.add(ProjectRow(name="p", settings={"nested": {"a": [1, 2.5, "x"]}}))
    with catalog.session() as s:
        assert s.scalars(select(ImageRow.size)).one() == 5 * 2**30
        assert s.scalars(select(ProjectRow)).one().settings == {"nested": {"a": [1, 2.5, "x"]}}
        s.execute(delete(ImageRow))  # the database's ON DELETE rules act
    with catalog.session() as s:
        assert s.scalars(select(FeatureSetRow)).all() == []
        assert s.scalars(select(QueryRow)).one().image_id is None


def test_downgrade_to_base_and_back_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    try:
        Catalog(pg_url).close()
        config = make_config()
        with migration_connection(engine) as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        Catalog(pg_url).close()
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_two_processes_opening_a_new_database_at_once_both_succeed(pg_url):
    """The first migrates, the second waits for it (advisory lock) and finds the schema at head."""
    script = textwrap.dedent(f"""
        import sys, time
        from engine.catalog.tables import Catalog
        t = float(sys.argv[1])
        while time.time() < t:
            time.sleep(0.001)
        Catalog({pg_url!r}).close()
        print("ok")
    """)
    import time

    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", script, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    finally:
        engine.dispose()


def test_a_plain_postgresql_url_uses_psycopg_3(pg_cluster, pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    cat = Catalog(plain)
    try:
        assert cat.engine.dialect.driver == "psycopg"
    finally:
        cat.close()


def test_an_unreachable_server_is_a_clear_error(pg_cluster, tmp_path):
    url = f"postgresql://pixret@/nowhere?host={tmp_path}&port=1"
    with pytest.raises(ProjectError) as info:
        Catalog(url)
    message = str(info.value)
    assert message.startswith("cannot reach the catalog database postgresql+psycopg://pixret@/nowhere")
    assert "\n" not in message and "sqlalche.me" not in message


def test_a_missing_database_is_a_clear_error(pg_cluster):
    with pytest.raises(ProjectError, match='database "no_such_db" does not exist'):
        Catalog(pg_cluster.url("no_such_db"))


@pytest.mark.parametrize("required", [False, True])
def test_without_a_server_the_tests_skip_saying_why_or_fail_in_ci(tmp_path, monkeypatch, required):
    """CI sets PIXRET_REQUIRE_POSTGRES (.ci/run): there a missing server fails the test, never skips it."""
    import pgserver

    pytest.importorskip("psycopg", reason="the message about initdb comes after the driver check")

    monkeypatch.setenv("PIXRET_PG_BIN", str(tmp_path))  # no initdb there
    if required:
        monkeypatch.setenv("PIXRET_REQUIRE_POSTGRES", "1")
    else:
        monkeypatch.delenv("PIXRET_REQUIRE_POSTGRES", raising=False)
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as info:
        pgserver.start_or_skip()
    assert isinstance(info.value, pytest.fail.Exception if required else pytest.skip.Exception)
    expected = ("PostgreSQL is required here (PIXRET_REQUIRE_POSTGRES is set) but could not start: " if required
                else "needs a PostgreSQL server, and none could be started: ")
    assert str(info.value.msg) == f"{expected}PIXRET_PG_BIN={tmp_path} holds no initdb"


def test_the_cli_reports_an_unreachable_catalog_in_one_line(pg_cluster, pg_url, tmp_path):
    from engine.project import Project

    Project.create(tmp_path / "p", db_url=pg_url).close()
    down = pg_url.replace(f"port={pg_cluster.port}", "port=1")  # no server there
    r = subprocess.run([sys.executable, "-m", "engine.cli", "status", "--project", str(tmp_path / "p"), "--db", down],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: cannot reach the catalog database postgresql+psycopg://pixret@/")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_two_annotators_adding_the_same_new_label_at_once_share_one(pg_project):
    """A's insert of "poster" is flushed but not committed when B adds "poster": B's insert waits on
    the unique name and, once A commits, reads A's row instead of failing."""
    import threading
    import time

    from engine.annotate import labels

    flushed, b_started, a_ids = threading.Event(), threading.Event(), []

    def annotator_a():
        with pg_project.catalog.session() as s:
            a_ids.append(labels.ensure_label(s, "poster").id)
            flushed.set()
            b_started.wait(10)
            time.sleep(0.5)  # B is now blocked on A's uncommitted row

    a = threading.Thread(target=annotator_a)
    a.start()
    assert flushed.wait(10)
    b_started.set()
    t = time.perf_counter()
    b = labels.add_label(pg_project, "poster")
    waited = time.perf_counter() - t
    a.join(10)
    assert waited > 0.3, "the premise: B's insert really met A's uncommitted one"
    assert b.id == a_ids[0]
    assert [x.name for x in labels.list_labels(pg_project)] == ["poster"]
