"""The initial search on a simulated collection of N images: inverted file size, query time, memory.

    python benchmarks/index_scale.py --project P --images 1000000 --out /tmp/sim1m [--queries BENCH_DIR]
    python benchmarks/index_scale.py --project P --images 1000000 --out /tmp/sim1m --keep   # reuse it next time

A real project gives the word distribution: each visual word's document frequency (the share of
its images holding it) and the vocabulary. The simulated inverted file gives word w to each of the
N images independently with that probability (so every word has its real share of postings and an
image its real number of distinct words on average), with random 128-bit aggregated signatures
(every posting costs the same in the ASMK* kernel whatever its bits). It is written word block by
word block in PixRet's own layout (engine.index.asmk.InvertedFile: CSR by word, image ids int32,
two uint64 per posting), so RAM never holds it, and then searched memory-mapped, as a project
opens its index: with the page cache cold (dropped for the file when the OS lets us: posix_fadvise)
and warm. The queries are real: the region features of the bench's queries (default: the
project's own collection is not needed, only its vocabulary), aggregated as a search aggregates them.

Prints build time, bytes on disk (and per simulated local feature, at the real project's features
per image), query time (median, p90) cold and warm, and the process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from engine.base.types import Query
from engine.formats.pixbench import load_pixbench
from engine.index.asmk import SIG_WORDS, InvertedFile
from engine.pipeline import prepare, query_words
from engine.project import Project

SEED = 19  # the simulation's random draws (images per word, signatures)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate(index: InvertedFile, n_images: int, out: Path, block_words: int = 256) -> dict:
    """Write a simulated inverted file of n_images images with index's word distribution to out."""
    real_n = len(index.n_words)
    df = np.diff(np.asarray(index.ptr)) / max(real_n, 1)  # per word: share of images holding it
    rng = np.random.default_rng(SEED)
    k = index.k
    out.mkdir(parents=True, exist_ok=True)
    counts = rng.binomial(n_images, np.minimum(df, 1.0))
    ptr = np.zeros(k + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    total = int(ptr[-1])
    # np.lib.format.open_memmap: .npy files filled in place, block by block (never all in RAM)
    images = np.lib.format.open_memmap(out / "images.npy", "w+", np.int32, (total,))
    sigs = np.lib.format.open_memmap(out / "sigs.npy", "w+", np.uint64, (total, SIG_WORDS))
    n_words = np.zeros(n_images, np.int64)
    t = time.perf_counter()
    for w0 in range(0, k, block_words):
        parts = []
        for w in range(w0, min(k, w0 + block_words)):
            c = int(counts[w])
            ids = np.sort(rng.choice(n_images, c, replace=False)).astype(np.int32) if c else np.zeros(0, np.int32)
            parts.append(ids)
        block = np.concatenate(parts)
        a, b = int(ptr[w0]), int(ptr[min(k, w0 + block_words)])
        images[a:b] = block
        sigs[a:b] = rng.integers(0, np.iinfo(np.uint64).max, (b - a, SIG_WORDS), dtype=np.uint64, endpoint=True)
        np.add.at(n_words, block, 1)
    images.flush()
    sigs.flush()
    del images, sigs
    ids = np.arange(n_images, dtype=np.int64)
    np.save(out / "centroids.npy", np.asarray(index.centroids))
    np.save(out / "ptr.npy", ptr)
    np.save(out / "image_ids.npy", ids)
    np.save(out / "image_nwords.npy", n_words)
    np.save(out / "image_fsids.npy", ids)
    (out / "meta.json").write_text(json.dumps({"trained_on": int(index.trained_on), "k": k}))
    return {"postings": total, "build_s": time.perf_counter() - t}


def drop_cache(folder: Path) -> bool:
    """Ask the OS to forget the file pages (a cold start); False where it cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for f in folder.glob("*.npy"):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, help="a real indexed project: the word distribution")
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--out", required=True, help="folder for the simulated inverted file")
    ap.add_argument("--queries", default="../shared/bench/dev", help="a PixBench set whose queries are searched")
    ap.add_argument("--n-queries", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the simulated file instead of removing it")
    args = ap.parse_args()

    project = Project.open(args.project)
    stats = project.stats()
    per_image = stats["features"] / max(stats["images"], 1)
    out = Path(args.out)
    if not (out / "meta.json").exists():
        sim = simulate(project.index, args.images, out)
        print(f"simulated {args.images} images: {sim['postings']} postings in {sim['build_s']:.0f} s")
    disk = sum(f.stat().st_size for f in out.glob("*.npy"))
    print(f"inverted file on disk {disk / 1e9:.2f} GB: {disk / args.images / 1e3:.1f} KB per image, "
          f"{disk / (args.images * per_image):.1f} B per local feature (at {per_image:.0f} features per image)")

    bench = load_pixbench(args.queries)
    n = len(bench.qimlist)
    picks = sorted({round(i * (n - 1) / max(args.n_queries - 1, 1)) for i in range(args.n_queries)})
    qwords = []
    for q in picks:
        ctx = prepare(project, Query(bench.image_path(bench.qimlist[q]), bench.query_region(q)))
        qwords.append(query_words(project, ctx.desc, ctx.config.query_assign))
    project.close()
    before = rss_mb()
    inv = InvertedFile.load(out)  # images and signatures memory-mapped
    print(f"opened: peak RSS {rss_mb():.0f} MB (before {before:.0f} MB)")
    for label in ("cold", "warm"):
        times = []
        for w, s in qwords:
            if label == "cold":
                drop_cache(out)
            t = time.perf_counter()
            inv.score_many([(w, s)])
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"{label}: query median {statistics.median(times) * 1000:.0f} ms, p90 "
              f"{times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))] * 1000:.0f} ms "
              f"(postings read per query: median {statistics.median(int((inv.ptr[w + 1] - inv.ptr[w]).sum()) for w, _ in qwords):,}); "
              f"peak RSS {rss_mb():.0f} MB", flush=True)
    if not args.keep:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
