"""The catalog schema: Alembic migrations build exactly engine.catalog.tables's models, safely."""
from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, select, text

from engine.base.errors import ProjectError
from engine.catalog.migrations import (
    current_revision,
    head_revision,
    make_config,
    migration_connection,
    upgrade_to_head,
)
from engine.catalog.tables import Base, Catalog, FeatureSetRow, ImageRow, ProjectRow, QueryRow, make_engine, sqlite_url


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(sqlite_url(tmp_path))
    yield cat
    cat.close()


def _schema(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def _add_image(session, path="a.jpg") -> ImageRow:
    image = ImageRow(path=path, size=10, mtime=1.0)
    session.add(image)
    session.flush()
    return image


def test_migrating_an_empty_database_creates_every_model_table(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    try:
        assert current_revision(engine) is None
        upgrade_to_head(engine)
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_models_and_migrations_do_not_drift(catalog):
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == [], f"engine/catalog/tables.py and engine/catalog/migrations disagree: {differences}"


def test_migrated_schema_has_the_declared_constraints_and_indexes(catalog):
    insp = inspect(catalog.engine)

    assert {ix["name"] for ix in insp.get_indexes("images")} == {"ix_images_status"}
    assert {ix["name"] for ix in insp.get_indexes("hits")} == {"ix_hits_query_rank"}
    assert {ix["name"] for ix in insp.get_indexes("annotations")} == {"ix_annotations_query_image"}
    assert {ix["name"] for ix in insp.get_indexes("queries")} == {"ix_queries_object_id"}
    assert {tuple(uq["column_names"]) for uq in insp.get_unique_constraints("objects")} == {("name",)}
    assert {tuple(uq["column_names"]) for uq in insp.get_unique_constraints("hits")} == {("query_id", "image_id")}
    assert {tuple(uq["column_names"]) for uq in insp.get_unique_constraints("images")} == {("path",)}
    assert {tuple(uq["column_names"]) for uq in insp.get_unique_constraints("drafts")} == {("query_id", "image_id", "author")}
    ondelete = {
        (table, fk["referred_table"], fk["constrained_columns"][0]): fk["options"].get("ondelete")
        for table in ("feature_sets", "queries", "hits", "annotations", "drafts")
        for fk in insp.get_foreign_keys(table)
    }
    assert ondelete == {
        ("feature_sets", "images", "image_id"): "CASCADE",
        ("queries", "images", "image_id"): "SET NULL",
        ("queries", "objects", "object_id"): "SET NULL",
        ("hits", "queries", "query_id"): "CASCADE",
        ("hits", "images", "image_id"): "CASCADE",
        ("annotations", "queries", "query_id"): "CASCADE",
        ("annotations", "images", "image_id"): "CASCADE",
        ("drafts", "queries", "query_id"): "CASCADE",
        ("drafts", "images", "image_id"): "CASCADE",
    }


def test_revision_is_head_after_open(catalog):
    assert current_revision(catalog.engine) == head_revision() == "0005"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(catalog):
    with catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # The migration switches enforcement off on its connection; it must come back on.
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_deleting_an_image_cascades_in_the_database(catalog):
    with catalog.session() as s:
        image = _add_image(s)
        s.add(FeatureSetRow(image_id=image.id, kind="rootsift", pack="p0", offset=0, count=5, scale=1.0))
        s.add(QueryRow(image_id=image.id, image_path="a.jpg", region={"polygons": []}, method="sv"))

    with catalog.session() as s:
        # A Core delete: the database's ON DELETE rules act, not the ORM's relationship cascade.
        s.execute(delete(ImageRow).where(ImageRow.path == "a.jpg"))

    with catalog.session() as s:
        assert s.scalars(select(FeatureSetRow)).all() == []
        query = s.scalars(select(QueryRow)).one()
        assert query.image_id is None  # ondelete SET NULL: the saved search outlives its image


def test_json_columns_round_trip(catalog):
    settings = {"long_side": 1024, "cap": 2000, "nested": {"a": [1, 2.5, "x"]}}
    with catalog.session() as s:
        s.add(ProjectRow(name="demo", settings=settings))
    with catalog.session() as s:
        assert s.scalars(select(ProjectRow)).one().settings == settings


def test_file_sizes_above_32_bits_fit(catalog):
    with catalog.session() as s:
        s.add(ImageRow(path="huge.tif", size=5 * 2**30, mtime=1.0))
    with catalog.session() as s:
        assert s.scalars(select(ImageRow.size)).one() == 5 * 2**30


def test_rerunning_the_upgrade_is_a_no_op(tmp_path):
    url = sqlite_url(tmp_path)
    first = Catalog(url)
    with first.session() as s:
        _add_image(s, "kept.jpg")
    schema = _schema(first.engine)
    first.close()

    again = Catalog(url)
    try:
        upgrade_to_head(again.engine)
        assert _schema(again.engine) == schema
        assert current_revision(again.engine) == head_revision()
        with again.session() as s:
            assert s.scalars(select(ImageRow.path)).all() == ["kept.jpg"]
    finally:
        again.close()


def test_database_from_a_newer_pixret_is_refused(tmp_path):
    url = sqlite_url(tmp_path)
    Catalog(url).close()
    db = tmp_path / "catalog.sqlite"
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")

    with pytest.raises(ProjectError) as info:
        Catalog(url)

    message = str(info.value)
    assert "9999_from_the_future" in message and "newer PixRet" in message
    with sqlite3.connect(db) as raw:  # refused, and left untouched
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999_from_the_future",)]
    db.rename(tmp_path / "moved.sqlite")  # the refused catalog released its file


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path):
    db = tmp_path / "catalog.sqlite"
    with sqlite3.connect(db) as raw:  # not a PixRet catalog: its last table's name is taken
        raw.execute("CREATE TABLE annotations (something TEXT)")

    with pytest.raises(ProjectError, match="cannot migrate the catalog"):
        Catalog(sqlite_url(tmp_path))

    with sqlite3.connect(db) as raw:  # the tables created before the failure were rolled back
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == {"annotations"}


def migrate(engine, command_name: str, revision: str) -> None:
    """Run alembic's upgrade or downgrade to `revision` on this engine (to test the steps one by one)."""
    config = make_config()
    with migration_connection(engine) as conn:
        config.attributes["connection"] = conn
        getattr(command, command_name)(config, revision)


def test_downgrade_to_base_and_back(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    try:
        upgrade_to_head(engine)
        migrate(engine, "downgrade", "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade_to_head(engine)
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_in_memory_database_migrates(tmp_path):
    catalog = Catalog("sqlite://")
    try:
        with catalog.session() as s:
            _add_image(s)
            assert s.execute(text("SELECT count(*) FROM images")).scalar() == 1
    finally:
        catalog.close()


def test_a_0001_catalog_with_searches_upgrades_to_objects_keeping_everything(tmp_path):
    """0002 rebuilds the queries table (SQLite batch mode): its rows, their hits and decisions survive."""
    engine = make_engine(sqlite_url(tmp_path))
    try:
        migrate(engine, "upgrade", "0001")
        with engine.begin() as c:
            c.execute(text("INSERT INTO images (id, path, size, mtime, status, added_at) "
                           "VALUES (1, 'a.jpg', 1, 0, 'ok', '2026-01-01')"))
            c.execute(text("INSERT INTO queries (id, image_id, image_path, region, method, params, created_at) "
                           "VALUES (7, 1, 'a.jpg', '{}', 'sv', '{}', '2026-01-01')"))
            c.execute(text("INSERT INTO hits (query_id, image_id, rank, score, evidence) VALUES (7, 1, 0, 3.0, '{}')"))
            c.execute(text("INSERT INTO annotations (query_id, image_id, kind, difficulty, label, author, created_at) "
                           "VALUES (7, 1, 'accepted', 'easy', 'object', '', '2026-01-01')"))
    finally:
        engine.dispose()
    catalog = Catalog(sqlite_url(tmp_path))
    try:
        assert current_revision(catalog.engine) == head_revision()
        with catalog.session() as s:
            assert s.execute(text("SELECT id, image_path, object_id FROM queries")).all() == [(7, "a.jpg", None)]
            assert s.execute(text("SELECT count(*) FROM hits WHERE query_id = 7")).scalar() == 1
            assert s.execute(text("SELECT count(*) FROM annotations WHERE query_id = 7")).scalar() == 1
            s.execute(text("INSERT INTO objects (id, name, created_at) VALUES (1, 'x', '2026-01-01')"))
            s.execute(text("UPDATE queries SET object_id = 1"))
            s.execute(text("DELETE FROM objects"))  # forgetting an object keeps its searches
            assert s.execute(text("SELECT object_id FROM queries")).scalar() is None
    finally:
        catalog.close()


def test_a_0004_catalog_with_objects_upgrades_to_labels_keeping_them(tmp_path):
    """0005 rebuilds the objects table (SQLite batch mode): its rows and their searches survive, unlabelled."""
    engine = make_engine(sqlite_url(tmp_path))
    try:
        migrate(engine, "upgrade", "0004")
        with engine.begin() as c:
            c.execute(text("INSERT INTO objects (id, name, created_at) VALUES (3, 'poster', '2026-01-01')"))
            c.execute(text("INSERT INTO queries (id, image_id, image_path, region, method, params, created_at, "
                           "object_id) VALUES (7, NULL, 'a.jpg', '{}', 'sv', '{}', '2026-01-01', 3)"))
    finally:
        engine.dispose()
    catalog = Catalog(sqlite_url(tmp_path))
    try:
        with catalog.session() as s:
            assert s.execute(text("SELECT id, name, label_id FROM objects")).all() == [(3, "poster", None)]
            assert s.execute(text("SELECT object_id FROM queries WHERE id = 7")).scalar() == 3
            s.execute(text("INSERT INTO labels (id, name, color, created_at) VALUES (1, 'sign', '#e69f00', "
                           "'2026-01-01')"))
            s.execute(text("UPDATE objects SET label_id = 1"))
            s.execute(text("DELETE FROM labels"))  # taking a label off the list keeps its objects
            assert s.execute(text("SELECT name, label_id FROM objects")).all() == [("poster", None)]
    finally:
        catalog.close()


def test_a_catalog_at_head_opens_while_another_process_writes(tmp_path):
    """Opening takes no write lock when there is nothing to migrate: `pixret status` works while the
    app indexes (or on a medium that cannot be written)."""
    Catalog(sqlite_url(tmp_path)).close()
    writer = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    writer.execute("INSERT INTO objects (name, created_at) VALUES ('being written', '2024-01-01')")
    try:
        catalog = Catalog(sqlite_url(tmp_path))
        with catalog.session() as s:
            assert s.scalar(select(ProjectRow)) is None
            assert current_revision(catalog.engine) == head_revision()
        catalog.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.parametrize("path", ["a/b.jpg", "caf\udce9/\udcff.jpg", "//server/share/x.jpg", "%2F.jpg", "/abs/ü.jpg"])
def test_file_paths_round_trip_whatever_their_bytes(catalog, path):
    """File names that are not UTF-8 (surrogate escapes) are stored as valid text and come back as they were."""
    with catalog.session() as s:
        image = _add_image(s, path)
        s.add(QueryRow(image_id=image.id, image_path=path, region={}, method="sv"))
    with catalog.session() as s:
        assert s.scalar(select(ImageRow.path)) == path
        assert s.scalar(select(ImageRow.id).where(ImageRow.path == path)) == image.id
        assert s.scalar(select(QueryRow.image_path)) == path
    with catalog.engine.connect() as conn:  # stored as valid UTF-8; readable paths as they are
        stored = conn.exec_driver_sql("SELECT path FROM images").scalar()
    stored.encode("utf-8")
    assert (stored == path) == (path in ("a/b.jpg", "%2F.jpg", "/abs/ü.jpg"))
