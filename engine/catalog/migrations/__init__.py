"""Alembic migrations of the catalog schema, run from code (no alembic.ini at run time).

`upgrade_to_head(engine)` is what `Catalog` calls on every open: it brings an empty or older
database to the newest schema this code knows, and refuses (ProjectError) a database written by a
newer PixRet instead of guessing at it. A database already at head is only read: opening never
waits for another process's write lock (a long import must not stop `pixret status`).

Developers: after changing a model in engine/catalog/tables.py, write the matching migration with
autogenerate against a database at the current head, from the repository root:

    python -m engine.catalog.migrations --db sqlite:////tmp/dev/catalog.sqlite upgrade head
    python -m engine.catalog.migrations --db sqlite:////tmp/dev/catalog.sqlite revision --autogenerate -m "add x"

Every `alembic` sub-command and option works after `--db URL` (`history`, `current`, `downgrade`,
`upgrade --sql` for offline SQL). Plain `alembic -c some.ini ...` works too, with an ini holding
`script_location` (this folder) and `sqlalchemy.url`, or the URL given as `-x url=...` or in the
PIXRET_DB_URL environment variable; the repository root must then be importable (PYTHONPATH=.).
Then check the new file by hand: autogenerate misses renames and server defaults, and name new
files like versions/0002_short_name.py with revision "0002".
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.base.errors import ProjectError
from engine.catalog.errors import catalog_error, first_line, shown_url

MIGRATIONS_DIR = Path(__file__).resolve().parent

__all__ = ["MIGRATIONS_DIR", "make_config", "head_revision", "current_revision", "upgrade_to_head",
           "migration_connection"]


def _escape(value: str) -> str:
    # Config options go through ConfigParser interpolation: a literal '%' must be doubled.
    return value.replace("%", "%%")


def make_config(url: str | None = None) -> Config:
    """An Alembic Config built in code: script_location is this package, url optional."""
    config = Config()
    config.set_main_option("script_location", _escape(str(MIGRATIONS_DIR)))
    # Alembic >= 1.16 warns when this is missing; older versions ignore the unknown key.
    config.set_main_option("path_separator", "os")
    if url:
        config.set_main_option("sqlalchemy.url", _escape(url))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(make_config()).get_current_head()
    assert head is not None, "engine/catalog/migrations/versions holds no migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database never migrated (empty or foreign)."""
    heads = _current_heads(engine)
    return heads[0] if heads else None


def _current_heads(engine: Engine) -> tuple[str, ...]:
    """The database's revisions, read without taking any lock."""
    try:
        with engine.connect() as conn:
            return tuple(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        raise catalog_error(exc, engine) from exc
    except CommandError as exc:
        raise ProjectError(f"cannot read the catalog {shown_url(engine)}: {exc}") from exc


# PostgreSQL: one migration at a time per database, whichever process opens it first (a
# transaction advisory lock, released at commit); SQLite's BEGIN IMMEDIATE does the same.
_MIGRATION_LOCK = 0x70697872  # 'pixr'


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction for migrating: committed if the block succeeds.

    On SQLite three things differ from ordinary use, each for a reason:
    - foreign keys are switched off while migrating, as SQLite's own guide to table changes says:
      batch mode rebuilds a table by copy-and-drop, and dropping `images` with enforcement on would
      run ON DELETE CASCADE and silently empty feature_sets, hits and annotations. Integrity is
      checked with `PRAGMA foreign_key_check` before committing, and enforcement is back on
      before the connection returns to the pool;
    - the transaction is opened explicitly (BEGIN IMMEDIATE): Python's sqlite3 module otherwise
      runs DDL outside any transaction, so a failed migration would leave half a schema; IMMEDIATE
      also makes a second process opening the same project wait instead of migrating twice;
    - the pragma must be set before that BEGIN, as SQLite ignores it inside a transaction.
    On PostgreSQL the transaction first takes an advisory lock, so two processes opening a new
    database at once migrate it one after the other (the second finds it at head).
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            if not conn.connection.driver_connection.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if not conn.in_transaction():
                conn.begin()
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            yield conn
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise ProjectError(
                        f"catalog {shown_url(engine)}: migration left {len(broken)} rows pointing at "
                        f"missing rows (first: table {broken[0][0]!r}, row {broken[0][1]}); "
                        "nothing was changed"
                    )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if sqlite:
                try:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
                except SQLAlchemyError:
                    # A pooled connection without enforcement must never be reused: drop it.
                    conn.invalidate()


def _refuse_unknown(conn: Connection, script: ScriptDirectory, engine: Engine) -> None:
    """ProjectError when the database's revision is not one of ours (a newer PixRet wrote it)."""
    known = {rev.revision for rev in script.walk_revisions()}
    current = MigrationContext.configure(conn).get_current_heads()
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        raise ProjectError(
            f"catalog {shown_url(engine)} has schema revision {', '.join(unknown)}, which this version "
            f"of PixRet does not know (its newest is {script.get_current_head()}); it was probably "
            "written by a newer PixRet: open it with that version or newer"
        )


def upgrade_to_head(engine: Engine) -> None:
    """Migrate the database to the newest schema; a no-op when it is already there.

    Raises ProjectError when the database is newer than this code, or when migrating fails (the
    database is then left as it was: the whole upgrade is one transaction).
    """
    config = make_config()
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    if head is None:  # an install (or a frozen bundle) that lost its versions/
        raise ProjectError(f"no catalog migrations found in {script.dir}: the installation is incomplete")
    if _current_heads(engine) == (head,):
        return  # at head: nothing to write, so no write lock to wait for
    try:
        with migration_connection(engine) as conn:
            _refuse_unknown(conn, script, engine)
            # env.py finds the live connection here and migrates on it, inside our transaction.
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except ProjectError:
        raise
    except (SQLAlchemyError, CommandError) as exc:
        raise ProjectError(f"cannot migrate the catalog {shown_url(engine)}: {first_line(exc)}") from exc
