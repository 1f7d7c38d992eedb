"""A batch of images -> one feature pack: indexing's unit of extraction work.

`extract_batch` runs wherever the project's Runner puts it (engine.parallel): in the indexing
process, or on a cluster worker. It decodes and describes each image, writes the batch's features
as one pack into the project's store, and returns what the catalog needs; only the coordinating
process writes the catalog. A pack whose catalog rows never come (a cancel, a crash) is left
unreferenced, and the next complete run removes it (FeatureStore.collect_garbage).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.errors import ImageReadError, ProjectError
from engine.features.extract import FeatureConfig
from engine.features.learned import extract_kind
from engine.features.store import FeatureStore
from engine.ingest import imageio


@dataclass
class ExtractedBatch:
    pack: str | None  # None when no image of the batch could be read
    ok: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # image id, width, height, offset, count
    failed: list[tuple[int, str]] = field(default_factory=list)  # image id, reason


def store_at(folder) -> FeatureStore:
    """The project's feature store, which must already exist: a worker that does not see the
    project's folder gets an error, not a new empty store of its own."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProjectError(f"{folder}: this process does not see the project's feature store (on a cluster the "
                           "project must be on a shared folder mounted at the same path on every machine)")
    return FeatureStore(folder)


def extract_batch(root, items: list[tuple[int, str]], config: FeatureConfig, store_folder,
                  threads: int = 1) -> ExtractedBatch:
    """items: (image id, collection-relative path). Unreadable images are reported, not raised.
    config.kind picks RootSIFT or a learned type (engine.features.learned: its model loaded once per
    process, so a cluster worker loads it on its first batch)."""
    root = Path(root)
    if not root.is_dir():  # else every image would be recorded as unreadable
        raise ProjectError(f"{root}: this process does not see the collection folder (on a cluster it must be on "
                           "a shared folder mounted at the same path on every machine)")
    store = store_at(store_folder)

    def work(item):
        image_id, rel = item
        try:
            img = imageio.load_image(root / rel)
        except ImageReadError as e:
            return image_id, None, None, e.reason
        except Exception as e:  # a decoder bug must not stop the collection: report, go on
            return image_id, None, None, f"unexpected error while reading: {e!r}"
        return image_id, extract_kind(img, config), (img.shape[1], img.shape[0]), None

    if config.kind != "rootsift":
        threads = 1  # a learned extractor runs its network on torch's own threads (two at once oversubscribe)
    if threads > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
            results = list(pool.map(work, items))
    else:
        results = [work(item) for item in items]
    ok = [(i, fs, size) for i, fs, size, err in results if err is None]
    out = ExtractedBatch(None, failed=[(i, err) for i, _, _, err in results if err is not None])
    if ok:
        out.pack, spans = store.write_pack([fs for _, fs, _ in ok], config.kind)
        out.ok = [(i, w, h, offset, count) for (i, _, (w, h)), (offset, count) in zip(ok, spans)]
    return out
