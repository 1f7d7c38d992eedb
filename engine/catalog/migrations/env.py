"""Alembic environment of the catalog. Needs no alembic.ini; two ways in:

1. From the app: `engine.catalog.migrations.upgrade_to_head(engine)` puts a live connection, already
   inside its transaction, in `config.attributes["connection"]`; we migrate on it and leave the
   commit to the caller.
2. By hand (`python -m engine.catalog.migrations --db URL ...`, or `alembic` with an ini): the database
   comes from `-x url=...`, else the config's `sqlalchemy.url`, else $PIXRET_DB_URL. Offline mode
   (`upgrade --sql`) prints the SQL instead of running it.

Autogenerate renders batch operations (render_as_batch) for every database, not only SQLite:
SQLite can change a column or constraint only by rebuilding the table, and one migration script
must run on both SQLite (laptops) and PostgreSQL (teams); on PostgreSQL batch mode emits plain
ALTER statements.
"""
from __future__ import annotations

import logging.config
import os

from alembic import context

from engine.catalog.migrations import migration_connection
from engine.catalog.tables import Base, make_engine

config = context.config
target_metadata = Base.metadata

if config.config_file_name and os.path.exists(config.config_file_name):
    # Only a hand-written ini has logging sections; the app configures its own logging.
    try:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    except KeyError:  # an ini without [loggers]/[handlers]/[formatters]
        pass

_OPTIONS = dict(target_metadata=target_metadata, render_as_batch=True, compare_type=True)


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("PIXRET_DB_URL")
    )
    if not url:
        raise SystemExit(
            "no catalog database given: use `python -m engine.catalog.migrations --db URL ...`, "
            "`-x url=URL`, sqlalchemy.url in the ini, or PIXRET_DB_URL"
        )
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection) -> None:
    context.configure(connection=connection, **_OPTIONS)
    with context.begin_transaction():  # a no-op when the connection is already in a transaction
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    # The app's engine (WAL, foreign keys) and the app's migration transaction, so a migration
    # run by hand behaves exactly like one run by Catalog.open.
    engine = make_engine(_url())
    try:
        with migration_connection(engine) as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
