"""The catalog: SQLAlchemy 2 models of a project, and the engine/session factory.

The schema is owned by Alembic (engine/catalog/migrations); `Catalog.open` upgrades a database to head, so
a model change always comes with a new migration (tests/test_catalog.py checks they agree).
SQLite runs in WAL mode with foreign keys on; PostgreSQL (psycopg 3) is the team catalog
(docs/adr/team-catalog-concurrency.md: how concurrent writers stay consistent).

Every database error leaves a `Catalog` as a ProjectError with a one-line message (CatalogBusy when
another writer held the database too long), never as a raw SQLAlchemy exception.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from engine.base.errors import CatalogBusy, DiskFullError, ProjectError, is_disk_full
from engine.catalog.errors import catalog_error

T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# Every constraint gets a deterministic name: SQLite can only change a constraint by rebuilding its
# table (Alembic batch mode), and batch mode can only drop or alter constraints it can name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class FilePath(TypeDecorator):
    """A file path as Python holds it, stored as valid text.

    On Linux a file name is bytes; one that is not UTF-8 (a Latin-1 'café.jpg' from an old archive)
    reaches Python with surrogate escapes, which neither SQLite nor PostgreSQL can store. Such a
    path is stored as '//' + its bytes percent-encoded; every other path as it is. Stored paths
    never otherwise start with '//' (collection paths are relative, pathlib collapses '//' inside
    a path; a path that does start with it is encoded too), so the two never mix.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = str(value)
        if value.startswith("//") or _has_surrogates(value):
            return "//" + quote_from_bytes(os.fsencode(value), safe="/")
        return value

    def process_result_value(self, value, dialect):
        if value is None or not value.startswith("//"):
            return value
        return os.fsdecode(unquote_to_bytes(value[2:]))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


class ProjectRow(Base):
    """One row: the project's settings (collection root, feature parameters)."""

    __tablename__ = "project"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    root: Mapped[str | None] = mapped_column(Text, nullable=True)  # absolute collection root
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # feature long side, cap, ...
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ImageRow(Base):
    """An image of the collection. status: 'new' (scanned, not yet extracted), 'ok', 'error', 'missing'."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)  # relative to the collection root, '/' separators
    size: Mapped[int] = mapped_column(BigInteger)  # bytes; INTEGER is 32-bit on PostgreSQL
    mtime: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)  # after EXIF orientation
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    features: Mapped["FeatureSetRow | None"] = relationship(
        back_populates="image", cascade="all, delete-orphan", uselist=False
    )


class FeatureSetRow(Base):
    """Where an image's local features live: a pack file and a row range in it."""

    __tablename__ = "feature_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # 'rootsift' or 'torch:<name>'
    pack: Mapped[str] = mapped_column(String(64))  # pack folder name under features/
    offset: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    scale: Mapped[float] = mapped_column(Float)  # feature pixels = image pixels * scale
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    image: Mapped[ImageRow] = relationship(back_populates="features")


class LabelRow(Base):
    """A label (class) of the project's list: what exports write for the objects that carry it
    (engine.annotate.labels)."""

    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    color: Mapped[str] = mapped_column(String(7))  # "#rrggbb"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ObjectRow(Base):
    """A remembered object (engine.annotate.objects): named by the user; its views and negatives are the
    decisions on the searches that point at it. Its label is a row of `labels`, or its own name."""

    __tablename__ = "objects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id", ondelete="SET NULL"), nullable=True)


class QueryRow(Base):
    """A search that was run: the query image, its region, the method, and the object it belongs to."""

    __tablename__ = "queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), nullable=True)
    image_path: Mapped[str] = mapped_column(FilePath)  # as given (collection-relative or absolute)
    region: Mapped[dict] = mapped_column(JSON)  # Region.to_json()
    method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    uncertainty: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    object_id: Mapped[int | None] = mapped_column(ForeignKey("objects.id", ondelete="SET NULL"), nullable=True,
                                                  index=True)

    hits: Mapped[list["HitRow"]] = relationship(back_populates="query", cascade="all, delete-orphan")


class HitRow(Base):
    """One ranked result of a query with its predicted region and evidence."""

    __tablename__ = "hits"
    __table_args__ = (UniqueConstraint("query_id", "image_id"), Index("ix_hits_query_rank", "query_id", "rank"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    region: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    evidence: Mapped[dict] = mapped_column(JSON, default=dict)

    query: Mapped[QueryRow] = relationship(back_populates="hits")


class AnnotationRow(Base):
    """A region of the query object in an image, with its review state.

    kind: 'predicted' | 'accepted' | 'corrected' | 'rejected'; difficulty: 'easy' | 'hard' | 'junk'.
    The latest row for (query, image) is the current decision; older ones are the history.
    """

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_query_image", "query_id", "image_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int | None] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"), nullable=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    region: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    difficulty: Mapped[str] = mapped_column(String(8), default="easy")
    label: Mapped[str] = mapped_column(String(200), default="object")
    author: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DraftRow(Base):
    """A hit's outline edited in review and not yet accepted: one per (query, image, author), replaced
    on each edit, deleted when its author decides the hit. Kept so an edit survives a quit or a crash."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("query_id", "image_id", "author"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    region: Mapped[dict] = mapped_column(JSON)  # Region.to_json()
    author: Mapped[str] = mapped_column(String(100), default="")  # '' (made before 0004): anybody's
    # the id of the hit's decision the outline was edited from (0: none, None: not recorded)
    base_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk when it returns, so a decision the screen calls saved survives a power
    # cut or an OS crash too (NORMAL only survives a killed process); commits are one per decision or
    # per batch of images, so the extra fsync costs nothing noticeable.
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'catalog.sqlite'}"


# SQLite: a statement waits this long for another process's write lock (its busy handler) before
# "database is locked"; Catalog.write then retries the whole transaction until WRITE_RETRY_S.
SQLITE_BUSY_TIMEOUT_S = 30.0
WRITE_RETRY_S = 120.0
def normalized_url(url: str) -> str:
    """A plain postgresql:// URL means psycopg 3 (SQLAlchemy alone would pick psycopg2)."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ProjectError(f"{url!r} is not a database URL (expected e.g. postgresql://user@host/db): {e}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def make_engine(url: str) -> Engine:
    url = normalized_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, future=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        else:
            # pre_ping: a pooled connection the server dropped (restart, idle timeout) is replaced, not used
            engine = create_engine(url, future=True, pool_pre_ping=True)
    except ImportError as e:
        raise ProjectError(f"the catalog {url.split(':', 1)[0]}://... needs a database driver that is not "
                           f"installed ({e.name or e}); for PostgreSQL: "
                           "pip install 'pixret-desktop[postgres]'") from None
    except ArgumentError as e:
        raise ProjectError(f"cannot use the catalog URL: {e}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _read_only_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.close()


# SQLite's answers that mean "cannot write here" (not "someone else is writing": busy, locked)
_SQLITE_CANNOT_WRITE = {8: "read-only", 10: "I/O error", 13: "full", 14: "cannot open"}


class Catalog:
    """An open catalog: the SQLAlchemy engine and a session factory, migrated to head.

    A catalog at head is opened without writing. One that cannot be written at all (a full disk,
    a read-only medium or folder) is opened read-only when nothing waits in its write-ahead log:
    reading works, and a write raises ProjectError saying why (`read_only` holds the reason).
    """

    def __init__(self, url: str):
        self.url = url
        self.read_only: str | None = None
        database = make_url(url).database if url.startswith("sqlite") else None
        self.file = Path(database) if database and database != ":memory:" else None
        self.engine = make_engine(url)
        try:
            self._migrate(self.engine)
        except BaseException as exc:
            self.engine.dispose()  # release the file, so a refused catalog can be moved or deleted
            why = self._cannot_write(exc)
            if why is None:
                raise
            self._open_read_only(why, exc)
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.retries = 0

    @staticmethod
    def _migrate(engine: Engine) -> None:
        from engine.catalog.migrations import upgrade_to_head  # local: alembic is only needed when opening

        # Migrating takes the write lock: a catalog already at head is opened without writing
        # (upgrade_to_head only reads then), so reading works while another process writes.
        upgrade_to_head(engine)

    def _cannot_write(self, exc: BaseException) -> str | None:
        """Why the catalog file cannot be opened for writing, or None for any other failure."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        code = getattr(getattr(cause, "orig", cause), "sqlite_errorcode", None)
        if self.file is None or not self.file.is_file() or code is None or code & 0xFF not in _SQLITE_CANNOT_WRITE:
            return None
        if is_disk_full(cause, self.file.parent):
            return "the disk is full"
        if not os.access(self.file.parent, os.W_OK) or code & 0xFF == 8:
            return "its folder cannot be written"
        return f"the catalog cannot be written ({_SQLITE_CANNOT_WRITE[code & 0xFF]})"

    def _open_read_only(self, why: str, exc: BaseException) -> None:
        wal = self.file.with_name(self.file.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            # the latest changes are in the log, which SQLite can only read with room for its index
            if why == "the disk is full":
                raise DiskFullError(self.file.parent) from exc
            raise ProjectError(f"{self.file}: cannot be opened ({why}) and its latest changes wait in "
                               f"{wal.name}; open it once where it can be written") from exc
        # immutable: no lock, no journal, nothing written (safe: nobody can write here either)
        engine = create_engine(f"sqlite:///file:{quote(str(self.file))}?immutable=1&uri=true", future=True)
        event.listen(engine, "connect", _read_only_pragmas)
        from engine.catalog.migrations import current_revision, head_revision

        try:
            if current_revision(engine) != head_revision():
                raise ProjectError(f"{self.file}: made by an older PixRet and cannot be upgraded ({why})") from exc
        except BaseException:
            engine.dispose()
            raise
        self.engine, self.read_only = engine, why

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error.

        write=True, for a transaction that reads what it is about to change: on SQLite it starts
        with BEGIN IMMEDIATE (the database's one write lock, taken before the first read, so what
        was read cannot change before the write); PostgreSQL stays at READ COMMITTED and the
        caller locks the rows it depends on (SELECT ... FOR UPDATE, `lock`).

        Running out of space raises DiskFullError naming the catalog's folder; a write to a
        read-only catalog raises ProjectError saying why it is read-only; any other database error
        a ProjectError of one line (engine.catalog.errors).
        """
        try:
            with self._sessions() as s:
                try:
                    if write and self.dialect == "sqlite":
                        conn = s.connection()
                        if not conn.connection.driver_connection.in_transaction:
                            conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield s
                    s.commit()
                except BaseException as exc:
                    s.rollback()
                    if self.read_only and isinstance(exc, DBAPIError):
                        raise ProjectError(f"{self.file.parent}: opened read-only ({self.read_only}); "
                                           "nothing can be saved") from exc
                    if self.file is not None and is_disk_full(exc, self.file.parent):
                        raise DiskFullError(self.file.parent) from exc
                    raise
        except SQLAlchemyError as exc:
            raise catalog_error(exc, self.engine) from exc

    def write(self, fn: Callable[[Session], T], *, retry_s: float | None = None) -> T:
        """Run fn(session) in a write transaction (see `session`) and return its result; when
        another writer holds the database (SQLite locked, PostgreSQL deadlock or serialization
        failure) the whole transaction runs again, with backoff, for up to retry_s seconds
        (default WRITE_RETRY_S); `retries` counts how often that happened."""
        retry_s = WRITE_RETRY_S if retry_s is None else retry_s
        deadline = time.monotonic() + retry_s
        delay = 0.02
        while True:
            try:
                with self.session(write=True) as s:
                    return fn(s)
            except CatalogBusy as exc:
                if time.monotonic() + delay > deadline:
                    raise CatalogBusy(f"{exc}; gave up after {retry_s:.0f} s: try again when the other "
                                      "process (an import or indexing?) has finished") from exc
                self.retries += 1
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def lock(self, s: Session, name: str) -> None:
        """A named lock held until the transaction ends, for invariants no row can carry (e.g.
        "one project row"). PostgreSQL: a transaction advisory lock; SQLite: a write session
        already holds the whole database."""
        if self.dialect == "postgresql":
            key = zlib.crc32(f"pixret:{name}".encode())
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def close(self) -> None:
        self.engine.dispose()
