"""A project: a folder holding the catalog, the feature store and the index of one collection.

`index_folder` is the whole offline side, incremental and resumable: scan the collection against
the catalog, extract features of new and changed images in batches (each batch: one pack written
atomically, then one catalog transaction), then bring the index up to date (engine.indexing). A
cancel or a crash between batches loses nothing already committed; the next run continues where it
stopped.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select

from engine.base.atomic import IN_FLIGHT_S, atomic_write_text, remove_leftovers
from engine.base.errors import ProjectError
from engine.base.locks import folder_lock
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.catalog.tables import (AnnotationRow, Base, Catalog, DraftRow, FeatureSetRow, ImageRow, LabelRow, ObjectRow,
                                   ProjectRow, QueryRow, sqlite_url, utcnow)
from engine.features.batch import ExtractedBatch, extract_batch
from engine.features.extract import FeatureConfig, FeatureSet, descriptor_vectors
from engine.features.learned import check_feature_kind
from engine.features.store import FeatureStore, StoredFeatures, word_dtype
from engine.index.asmk import InvertedFile, Quantizer
from engine.index.checkpoint import words_key
from engine.index.embedding import HammingEmbedding
from engine.index.shards import ShardedIndex, index_form, open_index
from engine.indexing import IndexBuilding
from engine.ingest import imageio
from engine.ingest.scan import scan_folder
from engine.parallel.runner import Runner

MARKER = "pixret-project.json"
FORMAT_VERSION = 1
BATCH = 32  # images per feature pack / catalog transaction
# One indexer at a time writes the project folder (feature packs, index, graph), wherever it runs:
# the folder may be a team's network share (engine.base.locks).
INDEX_LOCK = "indexing.lock"
INDEX_LOCK_WAIT_S = 0.0  # a second indexer is told at once


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: str  # relative to the collection root, '/' separators
    width: int | None
    height: int | None
    status: str  # 'new', 'ok', 'error', 'missing'
    error: str | None


@dataclass
class IndexReport:
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    extracted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for this run
    unreadable_dirs: list[str] = field(default_factory=list)  # folders that could not be listed (kept as they were)
    n_indexed: int = 0
    vocabulary_trained: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    graph: object | None = None  # engine.propagate.graph.GraphReport when the graph was brought up to date
    ran_on: str = ""  # where the batches ran: this process, or a cluster (engine.parallel)

    def summary(self) -> str:
        s = (f"{self.new} new, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged; "
             f"{self.extracted} extracted, {len(self.failed)} failed; {self.n_indexed} images indexed")
        if self.unreadable_dirs:
            n = len(self.unreadable_dirs)
            s += f"; {n} folder{'s' if n > 1 else ''} could not be read"
        return s


def _worker_count() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


class Project(IndexBuilding):
    def __init__(self, folder: Path, catalog: Catalog):
        self.folder = Path(folder).absolute()  # a later chdir (or a dialog) must not move the project
        # What Project.create found before making this project: (topmost folder it made, or None;
        # the names already in the folder; the project row it added on a database server, or None).
        # None when the project was opened, not made.
        self._created: tuple[Path | None, set[str], int | None] | None = None
        self.catalog = catalog
        self.store = FeatureStore(self.folder / "features")
        self._index: ShardedIndex | InvertedFile | None = None  # InvertedFile: an index made before the shards
        self._quantizer: Quantizer | None = None
        self._embedding: HammingEmbedding | None = None  # trained in memory for an index of PixRet 0.1
        self._table: dict[int, tuple] | None = None  # image id -> (path, w, h, pack, offset, count, fs id)
        self._graph = None  # engine.propagate.graph.Graph, False when there is none on disk
        self._lock = threading.RLock()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, folder, *, root=None, db_url: str | None = None, settings: dict | None = None) -> "Project":
        folder = Path(folder)
        if (folder / MARKER).exists():
            raise ProjectError(f"{folder}: a PixRet project already exists here")
        if folder.exists() and not folder.is_dir():
            raise ProjectError(f"{folder}: not a folder")
        made = None  # the topmost folder this call makes
        for f in (folder.absolute(), *folder.absolute().parents):
            if f.exists():
                break
            made = f
        existing = set(os.listdir(folder)) if made is None else set()
        folder.mkdir(parents=True, exist_ok=True)
        row_id = None  # the project row this call added to a database server's catalog
        try:
            catalog = Catalog(db_url or sqlite_url(folder))
            with catalog.session(write=True) as s:
                catalog.lock(s, "project")  # two processes creating one team project at once: one row
                if s.scalar(select(ProjectRow)) is None:
                    row = ProjectRow(name=folder.resolve().name, root=str(Path(root).resolve()) if root else None,
                                     settings={"features": FeatureConfig().to_json(), **(settings or {})})
                    s.add(row)
                    s.flush()
                    row_id = row.id if db_url is not None else None
            atomic_write_text(folder / MARKER, json.dumps(
                {"format": FORMAT_VERSION, "catalog": "sqlite" if db_url is None else "external"}, indent=1))
        except BaseException:
            if "catalog" in locals():
                catalog.close()
            _remove_new(folder, made, existing)
            raise
        project = cls(folder, catalog)
        project._created = (made, existing, row_id)
        return project

    @classmethod
    def open(cls, folder, *, db_url: str | None = None) -> "Project":
        folder = Path(folder)
        marker = folder / MARKER
        if not folder.exists():
            raise ProjectError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise ProjectError(f"{folder}: not a folder")
        if not marker.exists():
            raise ProjectError(f"{folder}: not a PixRet project (no {MARKER})")
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise ProjectError(f"{marker}: unreadable project marker: {e}") from e
        if meta.get("format", 0) > FORMAT_VERSION:
            raise ProjectError(f"{folder}: made by a newer PixRet (format {meta.get('format')})")
        if meta.get("catalog") == "external" and db_url is None:
            raise ProjectError(f"{folder}: this project's catalog is on a database server; pass --db URL")
        catalog = Catalog(db_url or sqlite_url(folder))
        with catalog.session() as s:
            if s.scalar(select(ProjectRow)) is None:
                raise ProjectError(f"{folder}: the catalog holds no project")
        return cls(folder, catalog)

    @classmethod
    def open_or_create(cls, folder, *, db_url: str | None = None, root=None) -> "Project":
        if (Path(folder) / MARKER).exists():
            return cls.open(folder, db_url=db_url)
        return cls.create(folder, db_url=db_url, root=root)

    def close(self) -> None:
        self.catalog.close()

    @property
    def read_only(self) -> str | None:
        """Why the project could only be opened for reading (a full disk, a read-only medium), or None."""
        return self.catalog.read_only

    @property
    def created_now(self) -> bool:
        """True when this object made the project (Project.create), rather than opening it."""
        return self._created is not None

    def holds_no_features(self) -> bool:
        """True when no image's features are stored yet: removing the project loses no work."""
        try:
            with self.catalog.session() as s:
                return not s.scalar(select(func.coalesce(func.sum(FeatureSetRow.count), 0)))
        except Exception:
            return False  # an unreadable catalog is not known to be empty

    def remove_created(self) -> None:
        """Undo Project.create after a failed first command: closes the project and removes exactly
        what it made (a folder that existed before keeps the files it had; on a database server, the
        rows of the project it started, unless someone else has already worked in it)."""
        if self._created is None:
            raise ProjectError(f"{self.folder}: was opened, not made by this command; not removing it")
        made, existing, row_id = self._created
        if row_id is not None:
            self._clear_catalog(row_id)
        self.close()
        _remove_new(self.folder, made, existing)
        self._created = None

    def _clear_catalog(self, row_id: int) -> None:
        """Empty a database server's catalog of the project this process started (row_id), so that a
        new first command starts afresh (name, root and settings its own); kept if anyone stored
        features, a search, a decision or an object there since."""
        work = (FeatureSetRow, QueryRow, AnnotationRow, DraftRow, ObjectRow, LabelRow)
        with self.catalog.session(write=True) as s:
            self.catalog.lock(s, "project")
            if [r.id for r in s.scalars(select(ProjectRow))] != [row_id] or any(
                    s.scalar(select(func.count()).select_from(t)) for t in work):
                return
            for table in reversed(Base.metadata.sorted_tables):  # children before parents
                s.execute(table.delete())

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- settings -----------------------------------------------------------------------------

    def _project_row(self, s) -> ProjectRow:
        return s.scalar(select(ProjectRow))

    @property
    def root(self) -> Path | None:
        with self.catalog.session() as s:
            r = self._project_row(s).root
        return Path(r) if r else None

    @property
    def feature_config(self) -> FeatureConfig:
        with self.catalog.session() as s:
            return FeatureConfig.from_json((self._project_row(s).settings or {}).get("features"))

    def choose_features(self, kind: str) -> None:
        """Index this project with feature type `kind` (engine.features.learned.FEATURE_KINDS). A
        project with no features and no index yet takes it (stored in its settings); an indexed one
        keeps its own: another type means extracting every photo again and a new vocabulary, index and
        graph, so it is refused, naming the way (a new project, the current one searchable meanwhile).
        MissingExtra when a learned type cannot run here."""
        check_feature_kind(kind)
        current = self.feature_config
        if current.kind == kind:
            return
        if not self.holds_no_features() or index_form(self.folder / "index") is not None:
            raise ProjectError(f"{self.folder}: indexed with {current.kind} features, which it keeps; to search "
                               f"with {kind} features, index the collection into a new project: pixret index "
                               f"FOLDER --project NEW_PROJECT --features {kind}")
        self.update_settings(features={**current.to_json(), "kind": kind})

    def settings(self) -> dict:
        with self.catalog.session() as s:
            return dict(self._project_row(s).settings or {})

    def update_settings(self, **values) -> None:
        with self.catalog.session() as s:
            row = self._project_row(s)
            row.settings = {**(row.settings or {}), **values}

    # -- images -------------------------------------------------------------------------------

    @staticmethod
    def _info(r: ImageRow) -> ImageInfo:
        return ImageInfo(r.id, r.path, r.width, r.height, r.status, r.error)

    def images(self, status: str | None = None, name_like: str | None = None) -> list[ImageInfo]:
        with self.catalog.session() as s:
            q = select(ImageRow).order_by(ImageRow.path)
            if status:
                q = q.where(ImageRow.status == status)
            if name_like:
                q = q.where(ImageRow.path.ilike(f"%{name_like}%"))
            return [self._info(r) for r in s.scalars(q)]

    def failed_images(self) -> list[ImageInfo]:
        return self.images(status="error")

    def image_info(self, image_id: int) -> ImageInfo:
        with self.catalog.session() as s:
            r = s.get(ImageRow, image_id)
            if r is None:
                raise ProjectError(f"no image with id {image_id} in {self.folder}")
            return self._info(r)

    def image_id(self, path) -> int | None:
        rel = str(path).replace(os.sep, "/")
        root = self.root
        if root is not None and Path(path).is_absolute():
            try:
                rel = Path(path).resolve().relative_to(root).as_posix()
            except ValueError:
                return None
        with self.catalog.session() as s:
            return s.scalar(select(ImageRow.id).where(ImageRow.path == rel))

    def abs_path(self, image_id: int) -> Path:
        root = self.root
        if root is None:
            raise ProjectError(f"{self.folder}: no collection has been indexed yet")
        return root / self.image_info(image_id).path

    # -- features -----------------------------------------------------------------------------

    def _image_table(self) -> dict[int, tuple]:
        table = self._table
        if table is not None:  # read without the lock: searches ask for it per hit
            return table
        with self._lock:
            if self._table is None:
                with self.catalog.session() as s:
                    rows = s.execute(select(ImageRow.id, ImageRow.path, ImageRow.width, ImageRow.height,
                                            FeatureSetRow.pack, FeatureSetRow.offset, FeatureSetRow.count,
                                            FeatureSetRow.id)
                                     .join(FeatureSetRow, FeatureSetRow.image_id == ImageRow.id)
                                     .where(ImageRow.status == "ok")).all()
                self._table = {r[0]: tuple(r[1:]) for r in rows}
            return self._table

    def indexed_images(self) -> list[int]:
        """Image ids with features, in id order."""
        return sorted(self._image_table())

    def image_size(self, image_id: int) -> tuple[int, int]:
        _, w, h, *_ = self._image_table()[image_id]
        return int(w), int(h)

    def image_path(self, image_id: int) -> str:
        return self._image_table()[image_id][0]

    def is_indexed(self, image_id: int) -> bool:
        return int(image_id) in self._image_table()

    def feature_set_id(self, image_id: int) -> int | None:
        row = self._image_table().get(int(image_id))
        return None if row is None else int(row[6])

    def feature_spans(self) -> dict[int, tuple[str, int, int]]:
        """Where each indexed image's features are in the store: image id -> (pack, offset, count)."""
        return {i: (t[3], t[4], t[5]) for i, t in self._image_table().items()}

    def features(self, image_id: int) -> FeatureSet:
        """An image's features with their full descriptors (the store's cold part)."""
        _, _, _, pack, offset, count, _ = self._image_table()[image_id]
        return self.store.read(pack, offset, count)

    def stored(self, image_id: int) -> StoredFeatures:
        """An image's features as verification reads them: geometry, visual word, signature (the
        store's hot part). A pack still without words of the current vocabulary (a project of PixRet
        0.1 not yet upgraded) gets them computed from its descriptors, in memory."""
        _, _, _, pack, offset, count, _ = self._image_table()[image_id]
        key = self.words_key
        d = self.store.read_stored(pack, offset, count, key)
        if d is not None:
            return d
        fs = self.store.read(pack, offset, count)
        word, sig = self._words_of(descriptor_vectors(fs.desc, self.feature_config.kind))
        return StoredFeatures(fs.xy, fs.scale, fs.angle, word, sig)

    def _words_of(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Single-assignment words and signatures of float descriptors x, as the store keeps them."""
        quantizer = self.quantizer
        word = quantizer.assign(x)[:, 0]
        sig = self.embedding.signatures(x, word, quantizer.centroids)
        return word.astype(word_dtype(quantizer.k)), sig

    # -- index --------------------------------------------------------------------------------

    @property
    def index(self) -> ShardedIndex | InvertedFile:
        """The inverted file, its postings memory-mapped (engine.index.shards; a project indexed
        before the shards has one InvertedFile, searched as it is until `pixret index` shards it)."""
        with self._lock:
            if self._index is None:
                self._index = open_index(self.folder / "index")
                if self._index is None:
                    raise ProjectError(f"{self.folder}: not indexed yet (run `pixret index`)")
            return self._index

    @property
    def quantizer(self) -> Quantizer:
        with self._lock:
            if self._quantizer is None:
                self._quantizer = Quantizer(self.index.centroids)
            return self._quantizer

    @property
    def embedding(self) -> HammingEmbedding:
        """The per-feature signatures' embedding: the index's (trained in memory, deterministically,
        for an index of PixRet 0.1, until `upgrade` saves it)."""
        with self._lock:
            if self.index.embedding is not None:
                return self.index.embedding
            if self._embedding is None:
                self._embedding = self._train_embedding(self._image_table(), self.quantizer)
            return self._embedding

    @property
    def words_key(self) -> str:
        """Names the store's word columns of the current vocabulary and embedding."""
        with self._lock:
            key = getattr(self, "_words_key", None)
            if key is None or key[0] is not self.index:
                key = (self.index, words_key(self.index.centroids, self.embedding))
                self._words_key = key
            return key[1]

    def needs_upgrade(self) -> bool:
        """True for a project indexed by PixRet 0.1 (no signatures, or packs without word columns) or
        before the sharded index (one InvertedFile): it searches as it is (the missing parts computed
        in memory), faster and scalable once `upgrade`d."""
        form = index_form(self.folder / "index")
        if form is None:
            return False
        return form == "single" or self.index.embedding is None or not self._words_complete(self.words_key)

    def _words_complete(self, key: str) -> bool:
        return all(self.store.has_words(p, key) for p in {t[3] for t in self._image_table().values()})

    def upgrade(self, *, progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER) -> bool:
        """Bring an older project to the current store and index in place: the signatures' embedding
        trained on its vocabulary, each pack's word columns computed from its stored descriptors,
        the inverted file cut into shards (nothing re-extracted, no feature removed; resumable pack
        by pack, shard by shard). False if nothing was to do."""
        if not self.needs_upgrade():
            return False
        with self._indexing():
            self._update_index(IndexReport(), progress, cancel, Runner(_worker_count()))
            self.store.collect_garbage(self._used_packs(), self.words_key)
        return True

    def index_folder(self, root=None, *, include: set[str] | None = None, progress: Progress = NO_PROGRESS,
                     cancel: CancelToken = NEVER, workers: int | None = None, graph: bool = True,
                     runner: Runner | None = None) -> IndexReport:
        """Add/refresh the collection at `root` (default: the project's), extract, index.

        include: collection-relative paths to keep (the bench indexes imlist only); others are
        treated as not part of the collection. graph=False skips the collection graph this time
        (only `diffusion`, `hypergraph` and `full` use it; the next run with it catches up).
        runner: where the batches of extraction, word and graph work run (engine.parallel: a Dask
        cluster's DaskRunner); by default in this process with `workers` threads. The project is
        the same either way.
        """
        report = IndexReport()
        runner = runner or Runner(workers or _worker_count())
        with self._indexing():
            t0 = time.perf_counter()
            root = self._bind_root(root)
            runner.check_visible([root, self.store.folder])
            report.ran_on = runner.describe()
            self._sync_catalog(root, include, report, progress, cancel)
            report.seconds["scan"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            self._extract_pending(root, report, progress, cancel, runner)
            report.seconds["features"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            self._check_searchable(root)
            self._update_index(report, progress, cancel, runner)
            report.seconds["index"] = time.perf_counter() - t2
            if graph:
                self._update_graph(report, progress, cancel, runner)
            self.store.collect_garbage(self._used_packs(), self.words_key)
        return report

    @contextmanager
    def _indexing(self):
        """One indexer per project at a time, wherever it runs: `indexing.lock` names its holder
        (engine.base.locks; the lock of an indexer killed on this machine is taken over). Holding it,
        the temporaries a killed indexer left behind are removed; in the folders annotators write
        too (reviewed graph chunks, the query cache) only old ones, as theirs may be in flight."""
        if self.read_only:
            raise ProjectError(f"{self.folder}: open read-only ({self.read_only}); it cannot be indexed now")
        with folder_lock(self.folder / INDEX_LOCK, "indexing", wait_s=INDEX_LOCK_WAIT_S):
            for sub in ("", "features", "index-work", "index", "index/shards", "graph"):
                remove_leftovers(self.folder / sub)
            for sub in ("graph/pending", "cache/queries"):
                remove_leftovers(self.folder / sub, older_than_s=IN_FLIGHT_S)
            yield

    def _bind_root(self, root) -> Path:
        with self.catalog.session() as s:
            row = self._project_row(s)
            if root is None:
                if not row.root:
                    raise ProjectError(f"{self.folder}: no collection folder given and none recorded")
                root = Path(row.root)
            root = Path(root).resolve()
            if not root.is_dir():
                raise ProjectError(f"{root}: not a folder")
            if row.root and Path(row.root) != root:
                raise ProjectError(f"{self.folder} indexes the collection {row.root}, not {root}; "
                                   "use a new project for another collection")
            row.root = str(root)
        return root

    def _sync_catalog(self, root: Path, include: set[str] | None, report: IndexReport, progress: Progress,
                      cancel: CancelToken) -> None:
        with self.catalog.session() as s:
            rows = {r.path: r for r in s.scalars(select(ImageRow))}
            known = {p: (r.size, r.mtime, r.sha256) for p, r in rows.items() if r.status != "missing"}
        scan = scan_folder(root, known, progress=progress, cancel=cancel)
        new, changed, removed, unchanged, touched = scan.new, scan.changed, scan.removed, scan.unchanged, scan.touched
        report.unreadable_dirs = list(scan.unreadable_dirs)
        keep = include
        try:  # a project folder inside its own collection must not index its own files (masks, thumbnails)
            inner = self.folder.resolve().relative_to(root).as_posix() + "/"
            everything = [e.path for e in new + changed] + list(unchanged)
            keep = {p for p in (include if include is not None else everything) if not p.startswith(inner)}
        except ValueError:
            pass
        if keep is not None:
            include = keep
            removed = removed + sorted({e.path for e in changed + touched if e.path not in include}
                                       | {p for p in unchanged if p not in include})
            new = [e for e in new if e.path in include]
            changed = [e for e in changed if e.path in include]
            touched = [e for e in touched if e.path in include]
            unchanged = [p for p in unchanged if p in include]
        report.new, report.changed, report.removed, report.unchanged = len(new), len(changed), len(removed), len(unchanged)
        with self.catalog.session() as s:
            rows = {r.path: r for r in s.scalars(select(ImageRow))}
            fresh = [e for e in new if e.path not in rows]
            # One bulk INSERT instead of an ORM object per file: 10,000 new photos take milliseconds,
            # and a GUI thread waiting for the GIL does not notice.
            if fresh:
                now = utcnow()
                s.execute(insert(ImageRow), [{"path": e.path, "size": e.size, "mtime": e.mtime, "sha256": e.sha256,
                                              "status": "new", "added_at": now} for e in fresh])
            for e in new:
                if e.path in rows:  # a file that vanished earlier and came back
                    _reset_image(s, rows[e.path], e)
            for e in changed:
                _reset_image(s, rows[e.path], e)
            for e in touched:
                rows[e.path].mtime = e.mtime
            for p in removed:
                r = rows[p]
                r.status, r.error = "missing", "file not found in the collection folder"
                if r.features is not None:
                    s.delete(r.features)
        self._table = None

    def _extract_pending(self, root: Path, report: IndexReport, progress: Progress, cancel: CancelToken,
                         runner: Runner) -> None:
        """Features of the images still 'new', a batch (one pack) at a time, wherever the runner puts
        the batches; each batch's catalog rows are committed here, as its result comes back."""
        with self.catalog.session() as s:
            todo = [(r.id, r.path) for r in s.scalars(select(ImageRow).where(ImageRow.status == "new")
                                                      .order_by(ImageRow.path))]
        config = self.feature_config
        if todo:
            check_feature_kind(config.kind)  # a missing learned extra: said once, before any batch
        done = 0
        progress(0, len(todo), "features")

        def commit(batch: ExtractedBatch) -> None:
            nonlocal done
            try:
                with self.catalog.session() as s:
                    for image_id, w, h, offset, count in batch.ok:
                        r = s.get(ImageRow, image_id)
                        r.width, r.height, r.status, r.error = w, h, "ok", None
                        s.add(FeatureSetRow(image_id=image_id, kind=config.kind, pack=batch.pack, offset=offset,
                                            count=count, scale=1.0))
                    for image_id, err in batch.failed:
                        r = s.get(ImageRow, image_id)
                        r.status, r.error = "error", err
                        report.failed.append((r.path, err))
            except BaseException:
                if batch.pack is not None and batch.pack not in self._used_packs_or_all():
                    self.store.remove_pack(batch.pack)  # the commit failed (a full disk): no debris
                raise
            report.extracted += len(batch.ok)
            done += len(batch.ok) + len(batch.failed)
            progress(done, len(todo), "features")

        tasks = ((root, todo[start:start + BATCH], config, self.store.folder, runner.task_threads)
                 for start in range(0, len(todo), BATCH))
        try:
            runner.run(extract_batch, tasks, commit, cancel=cancel)
        finally:
            self._table = None

    def _check_searchable(self, root: Path) -> None:
        """A clear ProjectError instead of k-means failing on nothing: a collection without one
        readable image that has local features cannot get its first vocabulary."""
        table = self._image_table()
        if sum(t[5] for t in table.values()) > 0 or index_form(self.folder / "index") is not None:
            return
        failed = self.failed_images()
        if table:
            raise ProjectError(f"{root}: its {len(table)} image{'s hold' if len(table) > 1 else ' holds'} no local "
                               "features (blank or featureless pictures?), so there is nothing to search with")
        if failed:
            first = "; ".join(f"{im.path}: {im.error}" for im in failed[:3])
            raise ProjectError(f"{root}: no image file could be read ({first}"
                               f"{'; ...' if len(failed) > 3 else ''})")
        raise ProjectError(f"{root}: no images found (looked for {', '.join(sorted(imageio.SUPPORTED_SUFFIXES))} "
                           "files; hidden files and folders are skipped)")

    def _used_packs(self) -> set[str]:
        with self.catalog.session() as s:
            return set(s.scalars(select(FeatureSetRow.pack).distinct()))

    def _used_packs_or_all(self) -> set[str]:
        """The packs the catalog points to; every pack when the catalog cannot say (then none is unused)."""
        try:
            return self._used_packs()
        except Exception:
            return set(self.store.packs())

    def _update_graph(self, report: IndexReport, progress: Progress, cancel: CancelToken, runner: Runner) -> None:
        """kNN graph and verified hyperedges (engine.propagate.graph), incremental; off with settings graph.enabled."""
        from engine.propagate.graph import GraphConfig, build_graph

        config = GraphConfig.from_json(self.settings().get("graph"))
        if not config.enabled or not self._image_table():
            return
        t = time.perf_counter()
        try:
            report.graph = build_graph(self, config, progress=progress, cancel=cancel, runner=runner)
        finally:
            self.reload_graph()  # with whatever was saved
            report.seconds["graph"] = time.perf_counter() - t

    def reload_graph(self) -> None:
        """Forget the loaded graph (it changed on disk); the next use loads it again."""
        with self._lock:
            self._graph = None

    @property
    def graph(self):
        """The collection's graph (engine.propagate.graph.Graph), loaded on first use; None if never built."""
        with self._lock:
            if self._graph is None:
                from engine.propagate.graph import Graph

                self._graph = Graph.load(self.folder / "graph") or False
            return self._graph or None

    def stats(self) -> dict:
        """Sizes for status and benchmarks."""
        table = self._image_table()
        n_feat = int(sum(t[5] for t in table.values()))
        form = index_form(self.folder / "index")
        index_bytes = sum(f.stat().st_size for f in (self.folder / "index").rglob("*.npy")) if form else 0
        key = self.words_key if form and self.index.embedding is not None else None
        sizes = self.store.sizes(key)
        rows = max(sizes["rows"], 1)  # stored rows (features of changed images stay until their pack goes)
        packs = sorted({t[3] for t in table.values()})
        meta = self.store.meta(packs[0]) if packs else {}
        return {"images": len(table), "features": n_feat, "feature_kind": self.feature_config.kind,
                "descriptor": f"{meta['desc_dim']} x {meta['desc_dtype']}" if meta else None,
                "feature_store_bytes": self.store.nbytes(),
                "store_hot_bytes": sizes["hot"], "store_cold_bytes": sizes["cold"],
                "store_bytes_per_feature": round(sizes["hot"] / rows, 2),
                "cold_bytes_per_feature": round(sizes["cold"] / rows, 2),
                "index_bytes": index_bytes, "index_bytes_per_feature": round(index_bytes / max(n_feat, 1), 2),
                # sharded (engine.index.shards), single (one InvertedFile: indexed before the shards) or None
                "index_form": form, "index_shards": len(self.index.meta["shards"]) if form == "sharded" else None,
                "needs_upgrade": self.needs_upgrade()}


def _remove_new(folder: Path, made: Path | None, existing: set[str]) -> None:
    """Remove what was added to folder besides `existing`, then the folders up to `made` if empty."""
    import shutil

    for name in set(os.listdir(folder)) - existing:
        p = folder / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if made is not None:
        for f in (folder.absolute(), *folder.absolute().parents):
            try:
                f.rmdir()  # only ever an empty folder
            except OSError:
                break
            if f == made:
                break


def _reset_image(s, r: ImageRow, e) -> None:
    """A new or changed file: forget its old features so it is extracted again."""
    r.size, r.mtime, r.sha256 = e.size, e.mtime, e.sha256
    r.status, r.error, r.width, r.height = "new", None, None, None
    if r.features is not None:
        s.delete(r.features)
