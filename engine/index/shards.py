"""A project's inverted file: sharded, memory-mapped ASMK* CSR (the initial search, up to a million photos).

engine.index.asmk's InvertedFile is one CSR of every posting; a million photos of ~1,000 visual
words each make ~1e9 postings (20 bytes each: 20 GB), too much to build in one piece or to hold in
RAM. Here the collection is cut into shards of SHARD_IMAGES images, each a CSR by word over its own
images in a folder of .npy files, which a query opens with mmap_mode='r': it reads only the
postings of its own words, and RAM holds one score per image, not the postings.

Layout (all under one folder):
    shards/<name>/   ptr (k + 1), cols (postings' image columns in the shard), sigs (postings' 128-bit
                     signatures), ids (the shard's catalog image ids), nwords, fsids; meta.json
    manifest/        centroids, the signatures' embedding (he_*), meta.json (k, trained_on, vocabulary
                     key, the shards in order)
Images go to shards by id (ids // shard_images: a block of ids each), and a shard's name hashes
what it holds (vocabulary, image ids, their feature sets), so a rebuild keeps every shard still
valid: an interrupted build resumes, added photos (new ids) rebuild only the last shard and add
new ones, a changed or removed photo rebuilds its own shard. The manifest is written last,
atomically: a reader sees the old index or the new one, whole.

A shard is built from its images alone, so shards are batches of a Runner (engine.parallel, in
this process or on a Dask cluster's workers): the worker aggregates its images' words from the
feature store (their descriptors and stored word columns) and writes its shard folder; the
coordinator writes the manifest.

A project indexed before the shards keeps one InvertedFile (engine.index.asmk) in `index/` itself:
`open_index` still opens it (searches work), and the next `pixret index` replaces it with shards.

A shard is queried as an InvertedFile over its images (InvertedFile.score_many itself), and an
image lives in exactly one shard: each score is the in-RAM index's, bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.base.atomic import atomic_write_arrays
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.index.asmk import InvertedFile, stored_entries
from engine.index.checkpoint import Entries, vocabulary_key
from engine.index.embedding import HammingEmbedding
from engine.parallel.runner import Runner

SHARD_IMAGES = 10_000  # ~10M postings, ~200 MB a shard at ~1,000 words an image
SHARD_ARRAYS = ("ptr", "cols", "sigs", "ids", "nwords", "fsids")


def shard_name(vocabulary: str, feature_sets: dict[int, int]) -> str:
    """What a shard holds, hashed: its vocabulary, its images and their feature sets."""
    ids = sorted(feature_sets)
    key = json.dumps([vocabulary, ids, [int(feature_sets[i]) for i in ids]])
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def write_shard(folder: Path, entries: Entries, feature_sets: dict[int, int], centroids: np.ndarray) -> dict:
    """One shard of these images' (words, sigs) (as asmk.aggregate makes them), written atomically.

    The CSR is InvertedFile.build's over the images' columns 0..n-1 in id order; ids maps back."""
    ids = sorted(entries)
    local = InvertedFile.build(centroids, {c: entries[i] for c, i in enumerate(ids)}, 0,
                               {c: 0 for c in range(len(ids))})
    arrays = {"ptr": local.ptr, "cols": local.images, "sigs": local.sigs, "ids": np.array(ids, np.int64),
              "nwords": np.array([local.n_words[c] for c in range(len(ids))], np.int64),
              "fsids": np.array([feature_sets[i] for i in ids], np.int64)}
    atomic_write_arrays(folder, arrays, {"images": len(ids), "postings": len(local.images)})
    return {"name": Path(folder).name, "images": len(ids), "postings": int(len(local.images))}


def shard_batch(store_folder, items: list[tuple[int, str, int, int]], feature_sets: dict[int, int],
                centroids: np.ndarray, key: str, kind: str, folder: str) -> dict:
    """A shard's unit of work (in this process or on a cluster worker): aggregate the listed images
    from the project's feature store (items: image id, pack, offset, count; their word columns under
    `key`) and write the shard."""
    return write_shard(Path(folder), stored_entries(store_folder, items, centroids, key, kind), feature_sets, centroids)


def build_shards(folder, store_folder, spans: dict[int, tuple[str, int, int]], feature_sets: dict[int, int],
                 centroids: np.ndarray, trained_on: int, key: str, kind: str = "rootsift", *,
                 embedding: HammingEmbedding | None = None, runner: Runner | None = None,
                 shard_images: int = SHARD_IMAGES, progress: Progress = NO_PROGRESS,
                 cancel: CancelToken = NEVER) -> "ShardedIndex":
    """The sharded index of a project's images (spans: image id -> (pack, offset, count) in the
    feature store, whose packs hold word columns under `key`; feature_sets: image id -> feature set
    id), shard by shard on `runner`.

    Shards already on disk for the same images, features and vocabulary are kept (a rerun resumes)."""
    runner = runner or Runner()
    vocabulary = vocabulary_key(centroids)
    blocks: dict[int, list[int]] = {}
    for i in sorted(spans):
        blocks.setdefault(i // shard_images, []).append(i)
    blocks_in_order = [blocks[b] for b in sorted(blocks)]
    names = [shard_name(vocabulary, {i: feature_sets[i] for i in block}) for block in blocks_in_order]
    shards = Path(folder) / "shards"
    todo = [(b, n) for b, n in zip(blocks_in_order, names) if not (shards / n / "meta.json").exists()]
    shards.mkdir(parents=True, exist_ok=True)
    if todo:
        runner.check_visible([Path(store_folder), shards])
    shared = runner.share(centroids) if todo else centroids
    tasks = ((store_folder, [(i, *spans[i]) for i in block], {i: feature_sets[i] for i in block}, shared, key, kind,
              str(shards / name)) for block, name in todo)
    done = 0

    def collect(_: dict) -> None:
        nonlocal done
        done += 1
        progress(done, len(todo), "indexing shards")

    progress(0, len(todo), "indexing shards")
    runner.run(shard_batch, tasks, collect, cancel=cancel)
    return write_manifest(folder, centroids, trained_on, names, embedding, shard_images=shard_images)


def write_manifest(folder, centroids: np.ndarray, trained_on: int, names: list[str],
                   embedding: HammingEmbedding | None = None, *, shard_images: int = SHARD_IMAGES) -> "ShardedIndex":
    """Make these shards (under folder/shards, in this order) the index; remove every other shard."""
    folder = Path(folder)
    postings = images = 0
    for name in names:
        meta = json.loads((folder / "shards" / name / "meta.json").read_text())
        postings, images = postings + meta["postings"], images + meta["images"]
    arrays = {"centroids": centroids}
    meta = {"k": int(len(centroids)), "trained_on": int(trained_on), "vocabulary": vocabulary_key(centroids),
            "shards": names, "images": images, "postings": postings, "shard_images": int(shard_images)}
    if embedding is not None:
        arrays.update(embedding.arrays())
        meta.update(embedding.meta())
    atomic_write_arrays(folder / "manifest", arrays, meta)
    keep = set(names)
    for old in (folder / "shards").iterdir():
        # a shard of an earlier build (other images or vocabulary); nothing that is not a shard
        if old.name not in keep and old.is_dir() and (old / "meta.json").is_file():
            shutil.rmtree(old, ignore_errors=True)
    return ShardedIndex.open(folder)


@dataclass
class Shard:
    ids: np.ndarray  # (n,) catalog image ids, column c of the shard is image ids[c]
    index: InvertedFile  # over the shard's columns; ptr in RAM, postings (cols, sigs) memory-mapped


class ShardedIndex:
    """The sharded inverted file, opened: answers as InvertedFile does (score, score_many, matches,
    entries, n_words, feature_sets), shard by shard, without reading postings it does not need."""

    def __init__(self, folder: Path, centroids: np.ndarray, meta: dict, embedding: HammingEmbedding | None = None):
        self.folder = Path(folder)
        self.centroids = centroids
        self.meta = meta
        self.embedding = embedding
        # every shard opened now: a rebuild removing an outdated one cannot pull it from under us
        self._shards = [self._open_shard(name) for name in meta["shards"]]
        self._n_words: dict[int, int] | None = None
        self._feature_sets: dict[int, int] | None = None
        self._df: np.ndarray | None = None

    @classmethod
    def open(cls, folder) -> "ShardedIndex":
        manifest = Path(folder) / "manifest"
        meta = json.loads((manifest / "meta.json").read_text())
        return cls(folder, np.load(manifest / "centroids.npy"), meta, HammingEmbedding.in_index(manifest, meta))

    @property
    def k(self) -> int:
        return int(self.meta["k"])

    @property
    def n_images(self) -> int:
        return int(self.meta["images"])

    @property
    def trained_on(self) -> int:
        return int(self.meta["trained_on"])

    def _open_shard(self, name: str) -> Shard:
        """A shard: its postings memory-mapped (nothing of them read yet), its per-image columns in RAM."""
        f = self.folder / "shards" / name
        a = {n: np.load(f / f"{n}.npy", mmap_mode="r" if n in ("cols", "sigs") else None) for n in SHARD_ARRAYS}
        for n in ("cols", "sigs"):  # plain arrays over the mapping: a np.memmap slice costs more than its work
            a[n] = a[n].view(np.ndarray)
        columns = range(len(a["ids"]))
        index = InvertedFile(self.centroids, a["ptr"], a["cols"], a["sigs"], dict(zip(columns, a["nwords"].tolist())),
                             self.trained_on, dict(zip(columns, a["fsids"].tolist())))
        return Shard(a["ids"], index)

    def shards(self) -> Iterator[Shard]:
        yield from self._shards

    # -- what the project and the graph read of the index, as InvertedFile has it -------------------

    @property
    def n_words(self) -> dict[int, int]:
        """image id -> its number of distinct words."""
        if self._n_words is None:
            self._n_words = {int(i): n for s in self._shards for i, n in zip(s.ids.tolist(), s.index.n_words.values())}
        return self._n_words

    @property
    def feature_sets(self) -> dict[int, int]:
        """image id -> the feature set id its postings were made from (what a rebuild compares)."""
        if self._feature_sets is None:
            self._feature_sets = {int(i): f for s in self._shards
                                  for i, f in zip(s.ids.tolist(), s.index.feature_sets.values())}
        return self._feature_sets

    @property
    def image_ids(self) -> np.ndarray:
        return np.concatenate([s.ids for s in self._shards]) if self._shards else np.zeros(0, np.int64)

    def document_frequency(self) -> np.ndarray:
        """Postings per word (k,): how many images hold each word."""
        if self._df is None:
            self._df = sum((np.diff(s.index.ptr) for s in self._shards), np.zeros(self.k, np.int64))
        return self._df

    def entries(self) -> Entries:
        """The per-image (words, sigs), every shard's (for the graph; reads every posting)."""
        out: Entries = {}
        for s in self._shards:
            out.update({int(s.ids[c]): e for c, e in s.index.entries().items()})
        return out

    def matches(self, words: np.ndarray, sigs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every posting of the query's words with its ASMK* kernel value: (image ids, sigma(u)),
        shard after shard (an image's own postings in the query's word order, as InvertedFile's)."""
        images, weights = [], []
        for s in self._shards:
            cols, w = s.index.matches(words, sigs)
            images.append(s.ids[cols])
            weights.append(w)
        if not images:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(images), np.concatenate(weights)

    # -- scoring ------------------------------------------------------------------------------

    def score_many(self, queries: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """ASMK* similarities of several queries: (image ids (N,), scores (len(queries), N)), shard by shard."""
        ids, scores = [], []
        for shard in self._shards:
            _, S = shard.index.score_many(queries)  # columns 0..n-1 in order
            ids.append(shard.ids)
            scores.append(S)
        if not ids:
            return np.zeros(0, np.int64), np.zeros((len(queries), 0), np.float32)
        return np.concatenate(ids), np.concatenate(scores, axis=1)

    def score(self, words: np.ndarray, sigs: np.ndarray, exclude: set[int] = frozenset()) -> dict[int, float]:
        """image id -> ASMK* similarity, as InvertedFile.score (a dict of every image: for tests and
        small collections; `top` for large ones)."""
        ids, S = self.score_many([(words, sigs)])
        out = dict(zip(ids.tolist(), S[0].tolist()))
        for i in exclude:
            out.pop(i, None)
        return out

    def top(self, words: np.ndarray, sigs: np.ndarray, k: int, exclude: set[int] = frozenset()) -> list[tuple[int, float]]:
        """The k best (image id, score), best first, ties by id (the search's order)."""
        ids, S = self.score_many([(words, sigs)])
        s = S[0].astype(np.float64)
        if exclude:
            s[np.isin(ids, np.fromiter(exclude, np.int64, len(exclude)))] = -np.inf
        k = min(k, int(np.isfinite(s).sum()))
        if k <= 0:
            return []
        cut = np.partition(s, len(s) - k)[len(s) - k]  # the k-th best score; ties at it are all kept
        cand = np.flatnonzero(s >= cut)
        order = cand[np.lexsort((ids[cand], -s[cand]))][:k]
        return [(int(ids[i]), float(S[0, i])) for i in order]

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())

    def files(self) -> list[Path]:
        """The postings' files (what a query reads from)."""
        return [self.folder / "shards" / n / f"{a}.npy" for n in self.meta["shards"] for a in ("cols", "sigs")]


# -- a project's index folder: sharded, or the single InvertedFile of a project indexed before --


def index_form(folder) -> str | None:
    """'sharded', 'single' (one InvertedFile in the folder itself, as projects indexed before the
    shards have it), or None (no index)."""
    folder = Path(folder)
    if (folder / "manifest" / "meta.json").is_file():
        return "sharded"
    if (folder / "meta.json").is_file():
        return "single"
    return None


def open_index(folder) -> "ShardedIndex | InvertedFile | None":
    """The index in a project's index folder, either form, its postings memory-mapped; None if none."""
    form = index_form(folder)
    if form == "sharded":
        return ShardedIndex.open(folder)
    if form == "single":
        return InvertedFile.load(folder)
    return None


def remove_single_index(folder) -> None:
    """Remove the single InvertedFile from the folder (once shards replace it): its meta.json
    first (what marks it), then its arrays; the shards and manifest stay."""
    folder = Path(folder)
    (folder / "meta.json").unlink(missing_ok=True)
    for f in folder.glob("*.npy"):
        f.unlink(missing_ok=True)
