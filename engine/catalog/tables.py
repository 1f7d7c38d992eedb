"""The catalog: SQLAlchemy 2 models of a project, and the engine/session factory.

The schema is owned by Alembic (engine/catalog/migrations); `Catalog.open` upgrades a database to head, so
a model change always comes with a new migration (tests/test_catalog.py checks they agree).
SQLite runs in WAL mode with foreign keys on; any SQLAlchemy URL works (PostgreSQL for teams).
"""
from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote_from_bytes, unquote_to_bytes

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
)
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker


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


class ObjectRow(Base):
    """A remembered object (engine.annotate.objects): named by the user; its views and negatives are the
    decisions on the searches that point at it."""

    __tablename__ = "objects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


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
    """A hit's outline edited in review and not yet accepted: one per (query, image), replaced on
    each edit, deleted when the hit is decided. Kept so an edit survives a quit or a crash."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("query_id", "image_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    region: Mapped[dict] = mapped_column(JSON)  # Region.to_json()
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'catalog.sqlite'}"


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Catalog:
    """An open catalog: the SQLAlchemy engine and a session factory, migrated to head."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        # local: alembic is only needed when opening
        from engine.catalog.migrations import current_revision, head_revision, upgrade_to_head

        try:
            # Migrating takes the write lock; a catalog already at head is opened without writing,
            # so reading works while another process writes, on a full disk or a read-only medium.
            if current_revision(self.engine) != head_revision():
                upgrade_to_head(self.engine)
        except BaseException:
            self.engine.dispose()  # release the file, so a refused catalog can be moved or deleted
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()
