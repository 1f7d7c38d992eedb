"""Projects as PixRet 0.1 wrote them, for the upgrade tests.

0.1's layout: each feature pack holds xy.npy (float32 N x 2), scale.npy and angle.npy (float32 N)
and desc.npy (uint8 N x 128, raw SIFT), nothing else; the index folder (one InvertedFile) holds centroids, ptr,
images, sigs, image_ids, image_nwords, image_fsids (.npy) and meta.json {"trained_on", "k"}. The
catalog's schema is the same. `make_v01` indexes a collection with today's code and writes every
pack and the index back in exactly that layout, from the same extracted features.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from engine.index.asmk import InvertedFile
from engine.index.shards import ShardedIndex

V01_PACK = ("xy", "scale", "angle", "desc")
V01_INDEX = ("centroids", "ptr", "images", "sigs", "image_ids", "image_nwords", "image_fsids")


def make_v01(folder: Path, root: Path, batch: int = 32) -> Path:
    """batch: images per pack (0.1 wrote 32; fewer gives a small collection several packs)."""
    import engine.project
    from engine.project import Project

    saved, engine.project.BATCH = engine.project.BATCH, batch
    try:
        project = Project.create(folder, root=root)
        project.index_folder(root, graph=False)
        project.close()
    finally:
        engine.project.BATCH = saved
    for pack in (folder / "features").iterdir():
        arrays = {f: np.load(pack / f"{f}.npy") for f in V01_PACK}
        shutil.rmtree(pack)
        pack.mkdir()
        for f in ("xy", "scale", "angle"):
            np.save(pack / f"{f}.npy", arrays[f].astype(np.float32))
        np.save(pack / "desc.npy", arrays["desc"].astype(np.uint8))
    index = folder / "index"
    sharded = ShardedIndex.open(index)  # today's index, as one CSR of the same postings
    single = InvertedFile.build(np.array(sharded.centroids), sharded.entries(), sharded.trained_on, sharded.feature_sets)
    shutil.rmtree(index)
    index.mkdir()
    for n in V01_INDEX:
        np.save(index / f"{n}.npy", {"image_ids": np.array(list(single.n_words), np.int64),
                                     "image_nwords": np.array(list(single.n_words.values()), np.int64),
                                     "image_fsids": np.array([single.feature_sets[i] for i in single.n_words], np.int64),
                                     }.get(n, getattr(single, n, None)))
    (index / "meta.json").write_text(json.dumps({"trained_on": single.trained_on, "k": single.k}))
    return folder


def pack_files(folder: Path) -> dict[str, bytes]:
    """Every file of the 0.1 layout in a project's feature store, by relative path."""
    out = {}
    for pack in sorted((folder / "features").iterdir()):
        for f in V01_PACK:
            out[f"features/{pack.name}/{f}.npy"] = (pack / f"{f}.npy").read_bytes()
    return out
