"""The project's index brought up to date: the vocabulary, the signatures' embedding, the packs'
word columns and the shards (engine.index), as `Project.index_folder` runs it after extraction.

A mixin of engine.project.Project (it reads the project's catalog table, store and settings),
kept apart from the catalog and extraction side of the project.
"""
from __future__ import annotations

import random

import numpy as np

from engine.base.progress import CancelToken, Progress
from engine.features.extract import descriptor_vectors
from engine.index.asmk import VOCABULARY_ITERATIONS, Quantizer, pack_words_batch, train_vocabulary, vocabulary_size
from engine.index.checkpoint import IndexWork, training_key, vocabulary_key, words_key
from engine.index.embedding import HammingEmbedding
from engine.index.shards import SHARD_IMAGES, ShardedIndex, build_shards, open_index, remove_single_index
from engine.parallel.runner import Runner

RETRAIN_GROWTH = 4.0  # retrain the vocabulary once the collection has 4x the features it was trained on
TRAIN_SAMPLE_PER_WORD = 32  # k-means cost is sample x k per iteration: enough, and bounded
LARGE_SAMPLE_PER_WORD = 40  # past 8,192 words: faiss trains at most sample / 39 words
EMBEDDING_SAMPLE_PER_WORD = 64  # features per word (on average) the signatures' medians are taken over


class IndexBuilding:
    def _update_index(self, report: "IndexReport", progress: Progress, cancel: CancelToken,
                      runner: Runner) -> None:
        """Train the vocabulary when there is none or the collection outgrew it (and the signatures'
        embedding with it), give every pack its word columns, and (re)build the shards whose images
        changed (engine.index.shards; the others are kept). The long steps checkpoint: the vocabulary
        and embedding in index-work/ (engine.index.checkpoint), a pack's words and a shard each
        written once, whole: an interrupted run resumes there. An older project is upgraded here: its
        vocabulary kept, an embedding trained, word columns computed from the stored descriptors, its
        single inverted file replaced by shards."""
        table = self._image_table()
        wanted = {i: t[6] for i, t in table.items()}  # image id -> feature set id
        n_features = sum(t[5] for t in table.values())
        work = IndexWork(self.folder / "index-work")
        folder = self.folder / "index"
        old = open_index(folder)
        packs = {t[3] for t in table.values()}
        can_retrain = all(self.store.has_descriptors(p) for p in packs)  # else the vocabulary is frozen
        retrain = (old is None or n_features > RETRAIN_GROWTH * max(old.trained_on, 1)
                   and vocabulary_size(n_features) > old.k and can_retrain)
        if (isinstance(old, ShardedIndex) and not retrain and old.feature_sets == wanted and old.embedding is not None
                and all(self.store.has_words(p, words_key(old.centroids, old.embedding)) for p in packs)
                and self._shard_images() == old.meta.get("shard_images", SHARD_IMAGES)):
            report.n_indexed = len(wanted)
            work.clear()  # a run killed after saving its index
            return  # nothing changed
        if retrain:
            centroids = self._train_vocabulary(work, table, n_features, progress, cancel)
            report.vocabulary_trained = True
            trained_on, embedding = n_features, None
        else:
            centroids, trained_on, embedding = old.centroids, old.trained_on, old.embedding
        del old  # (a search in progress keeps its own reference)
        quantizer = Quantizer(centroids)
        vocabulary = vocabulary_key(centroids)
        if embedding is None:
            embedding = work.embedding(vocabulary)
            if embedding is None:
                progress(0, 1, "training signatures")
                embedding = self._train_embedding(table, quantizer)
                work.save_embedding(vocabulary, embedding)
        key = words_key(centroids, embedding)
        self._index_words(table, quantizer, embedding, key, progress, cancel, runner)
        index = build_shards(folder, self.store.folder, self.feature_spans(), wanted, centroids, trained_on, key,
                             self.feature_config.kind, embedding=embedding, runner=runner,
                             shard_images=self._shard_images(), progress=progress, cancel=cancel)
        remove_single_index(folder)  # an older project's single inverted file, replaced
        work.clear()
        with self._lock:
            self._index, self._quantizer, self._embedding = index, quantizer, None
        report.n_indexed = len(wanted)

    def _shard_images(self) -> int:
        """Images per shard of the index: the project's setting index.shard_images (tests and clusters
        may want smaller shards), else engine.index.shards.SHARD_IMAGES."""
        return int((self.settings().get("index") or {}).get("shard_images", SHARD_IMAGES))

    def _index_words(self, table: dict[int, tuple], quantizer: Quantizer, embedding: HammingEmbedding, key: str,
                     progress: Progress, cancel: CancelToken, runner: Runner) -> None:
        """The word columns (every row's word and signature) of each pack that lacks them, a batch
        per pack (engine.index.asmk.pack_words_batch)."""
        sizes: dict[str, int] = {}
        for t in table.values():
            sizes[t[3]] = sizes.get(t[3], 0) + 1
        todo = [p for p in sorted(sizes) if not self.store.has_words(p, key)]
        total = sum(sizes[p] for p in todo)
        done = 0
        packs_done = iter(todo)  # results come in the order of the batches

        def collect(_: int) -> None:
            nonlocal done
            done += sizes[next(packs_done)]
            progress(done, total, "indexing words")

        progress(0, total, "indexing words")
        if not todo:
            return
        centroids, shared_embedding = runner.share(quantizer.centroids), runner.share(embedding)
        kind = self.feature_config.kind
        tasks = ((self.store.folder, p, centroids, shared_embedding, key, kind) for p in todo)
        runner.run(pack_words_batch, tasks, collect, cancel=cancel)

    def _train_embedding(self, table: dict[int, tuple], quantizer: Quantizer) -> HammingEmbedding:
        """The signatures' per-word medians over a deterministic sample (the same in any process)."""
        n_features = sum(t[5] for t in table.values())
        sample = self._training_sample(table, n_features, quantizer.k * EMBEDDING_SAMPLE_PER_WORD)
        return HammingEmbedding.train(quantizer.centroids, sample, quantizer.assign(sample)[:, 0])

    def _train_vocabulary(self, work: IndexWork, table: dict[int, tuple], n_features: int, progress: Progress,
                          cancel: CancelToken) -> np.ndarray:
        """k-means one iteration at a time, each saved: a new run continues from the last one."""
        k = vocabulary_size(n_features)
        key = training_key(k, [t[6] for t in table.values()])
        centroids, done = work.vocabulary(key) or (None, 0)
        per_word = TRAIN_SAMPLE_PER_WORD if k <= 8192 else LARGE_SAMPLE_PER_WORD
        sample = self._training_sample(table, n_features, k * per_word) \
            if done < VOCABULARY_ITERATIONS else None
        while done < VOCABULARY_ITERATIONS:
            progress(done, VOCABULARY_ITERATIONS, "training vocabulary")
            cancel.raise_if_set()
            centroids = train_vocabulary(sample, k, niter=1, init=centroids)
            done += 1
            work.save_vocabulary(key, centroids, done)
        progress(done, VOCABULARY_ITERATIONS, "training vocabulary")
        return centroids

    def _training_sample(self, table: dict[int, tuple], n_features: int, budget: int) -> np.ndarray:
        """About `budget` descriptors (as float vectors), the same share of every image, drawn by a
        fixed seed over the images in id order: the same sample in any process."""
        budget = min(n_features, budget)
        per_image = max(1, int(np.ceil(budget / max(len(table), 1))))
        rng = random.Random(0)
        kind = self.feature_config.kind
        parts = []
        for image_id in sorted(table):
            fs = self.features(image_id)
            if len(fs) == 0:
                continue
            take = sorted(rng.sample(range(len(fs)), min(per_image, len(fs))))
            parts.append(descriptor_vectors(fs.desc[take], kind))
        return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)
