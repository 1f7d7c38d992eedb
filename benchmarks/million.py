"""The initial search over a simulated collection of 100k / 1M photos, on the sharded index.

    python benchmarks/million.py --project P --bench /work/shared/bench/dev --images 100000,1000000 \
        --out /tmp/million [--workers N] [--queries N] [--words-scale F] [--keep]

A real project gives the collection's statistics: its vocabulary, each visual word's document
frequency df (the share of its images holding the word) and its images' numbers of distinct words.
Each simulated image takes a real image's number of distinct words n (drawn at random) and holds
word w with probability min(1, df[w] * n / mean n): every word keeps its real share of postings,
every image a real size. Signatures are random 128-bit strings (the ASMK* kernel costs the same
whatever the bits). The simulated index is written shard by shard in engine.index.shards' layout
(SHARD_IMAGES a shard) as batches of a Runner: this process, or --workers N on a LocalCluster,
so RAM never holds more than a shard per worker.

The queries are real: the bench's query regions, aggregated by the project's quantizer as a
search aggregates them. Each is answered (its top 100 of all images) in a fresh process, the
index opened memory-mapped, first with the page cache dropped for the index's files (cold, as
after a reboot; posix_fadvise) then again (warm). Prints per size: build time, bytes on disk,
postings, query ms (median, p90; cold and warm), postings read per query, and the query
process's peak RSS (ru_maxrss; it counts the index's file pages the process touched, which the
OS reclaims at will) with the peak of its anonymous memory (RssAnon, sampled every 5 ms: what the
process itself holds).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SEED = 19


def simulated_shard(block: int, images: int, first_id: int, df: np.ndarray, sizes: np.ndarray,
                    centroids: np.ndarray, folder: str) -> dict:
    """One shard of `images` simulated images (ids first_id...), written under folder (a Runner batch)."""
    from engine.index.shards import shard_name, write_shard

    rng = np.random.default_rng([SEED, block])
    k = len(df)
    mean = float(sizes.mean())
    entries = {}
    for start in range(0, images, 1000):
        n = min(1000, images - start)
        scale = sizes[rng.integers(0, len(sizes), n)] / mean
        p = np.minimum(df[None, :] * scale[:, None], 1.0).astype(np.float32)
        img, word = np.nonzero(rng.random((n, k), dtype=np.float32) < p)  # by image, then word
        sigs = np.frombuffer(rng.bytes(len(word) * 16), np.uint64).reshape(-1, 2)
        bounds = np.searchsorted(img, np.arange(1, n))
        for j, (w, s) in enumerate(zip(np.split(word.astype(np.int32), bounds), np.split(sigs, bounds))):
            entries[first_id + start + j] = (w, s)
    feature_sets = dict.fromkeys(entries, 0)
    name = shard_name(f"sim-{SEED}-{block}", feature_sets)
    return write_shard(Path(folder) / name, entries, feature_sets, centroids)


def build(out: Path, n_images: int, df, sizes, centroids, trained_on, runner):
    from engine.index.shards import SHARD_IMAGES, write_manifest

    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    runner.check_visible([shards])
    shared = runner.share(centroids)
    tasks = [(b, min(SHARD_IMAGES, n_images - s), s + 1, df, sizes, shared, str(shards))
             for b, s in enumerate(range(0, n_images, SHARD_IMAGES))]
    names = []
    runner.run(simulated_shard, tasks, lambda r: names.append(r["name"]))
    return write_manifest(out, centroids, trained_on, names)


def real_statistics(project_folder: Path, bench_dir: str, n_queries: int | None):
    """The project's vocabulary, df, image sizes, and the bench's queries' (words, sigs)."""
    from engine.base.types import Query
    from engine.formats.pixbench import load_pixbench
    from engine.pipeline import SearchConfig, prepare, query_words
    from engine.project import Project

    with Project.open(project_folder) as project:
        inv = project.index
        sizes = np.fromiter(inv.n_words.values(), np.float64, len(inv.n_words))
        df = inv.document_frequency() / len(sizes)
        bench = load_pixbench(bench_dir)
        queries = []
        for q, qname in enumerate(bench.qimlist[:n_queries]):
            ctx = prepare(project, Query(bench.image_path(qname), bench.query_region(q)))
            queries.append(query_words(project, ctx.desc, SearchConfig().query_assign))
        return np.array(inv.centroids), df, sizes, inv.trained_on, queries


def larger_vocabulary_statistics(project_folder: Path, bench_dir: str, n_queries: int | None, k: int, niter: int,
                                 stat_images: int, out: Path):
    """As real_statistics, under a k-word vocabulary trained here (as the project trains one: faiss
    k-means, seeded, on a fixed-seed sample of every image's descriptors, 40 a word: faiss wants 39)
    on the project's own features: each word's df and each image's distinct words measured by
    assigning `stat_images` of its images (every n-th) to it. Prints k-means' time per iteration."""
    from engine.base.types import Query
    from engine.features.extract import descriptor_vectors
    from engine.formats.pixbench import load_pixbench
    from engine.index.asmk import Quantizer, aggregate, train_vocabulary
    from engine.pipeline import prepare
    from engine.project import Project

    cached = out / f"vocabulary-{k}.npz"
    with Project.open(project_folder) as project:
        ids = project.indexed_images()
        kind = project.feature_config.kind
        if cached.exists():
            c = np.load(cached)
            centroids, df, sizes, trained_on = c["centroids"], c["df"], c["sizes"], int(c["trained_on"])
        else:
            spans = project.feature_spans()
            trained_on = sum(n for _, _, n in spans.values())
            per_image = int(np.ceil(40 * k / len(ids)))
            rng = np.random.default_rng(SEED)
            parts = []
            for i in ids:
                desc = project.features(i).desc
                take = np.sort(rng.choice(len(desc), min(per_image, len(desc)), replace=False))
                parts.append(descriptor_vectors(desc[take], kind))
            sample = np.concatenate(parts)
            centroids = None
            for it in range(niter):
                t = time.perf_counter()
                centroids = train_vocabulary(sample, k, niter=1, init=centroids)
                print(f"k-means {len(centroids)} words, {len(sample):,} sample: iteration {it + 1} "
                      f"{time.perf_counter() - t:.1f} s", flush=True)
            quantizer = Quantizer(centroids)
            counts = np.zeros(len(centroids), np.int64)
            chosen = ids[::max(1, len(ids) // stat_images)][:stat_images]
            sizes = []
            t = time.perf_counter()
            for i in chosen:
                words = np.unique(quantizer.assign(descriptor_vectors(project.features(i).desc, kind))[:, 0])
                counts[words] += 1
                sizes.append(len(words))
            print(f"assigned {len(chosen)} images in {time.perf_counter() - t:.1f} s", flush=True)
            sizes = np.array(sizes, np.float64)
            df = counts / len(chosen)
            np.savez(cached, centroids=centroids, df=df, sizes=sizes, trained_on=trained_on)
        quantizer = Quantizer(centroids)
        bench = load_pixbench(bench_dir)
        queries = []
        for q, qname in enumerate(bench.qimlist[:n_queries]):
            ctx = prepare(project, Query(bench.image_path(qname), bench.query_region(q)))
            queries.append(aggregate(ctx.desc, quantizer.assign(ctx.desc, 1), quantizer.centroids))
        return np.asarray(centroids), df, sizes, trained_on, queries


def measure(folder: Path, queries_file: Path) -> dict:
    """Run in a fresh process: open the index, answer every query cold, then warm."""
    from engine.index.shards import ShardedIndex

    q = np.load(queries_file)
    queries = [(q[f"w{i}"], q[f"s{i}"]) for i in range(int(q["n"]))]
    index = ShardedIndex.open(folder)
    for f in index.files():  # cold: the index's pages out of the page cache (as far as the OS lets us)
        fd = os.open(f, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    out = {}
    anon = [0.0]
    stop = threading.Event()

    def sample() -> None:  # RssAnon's peak, every 5 ms (the kernel keeps no high-water mark of it)
        while not stop.wait(0.005):
            anon[0] = max(anon[0], _status_mb("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for label in ("cold", "warm"):
        ms = []
        for words, sigs in queries:
            t = time.perf_counter()
            index.top(words, sigs, 100)
            ms.append((time.perf_counter() - t) * 1000)
        out[f"{label}_ms_median"] = round(statistics.median(ms), 1)
        out[f"{label}_ms_p90"] = round(float(np.percentile(ms, 90)), 1)
    stop.set()
    sampler.join()
    anon = anon[0]
    postings = []
    for words, _ in queries:
        postings.append(sum(int(s.index.ptr[words + 1].sum() - s.index.ptr[words].sum()) for s in index.shards()))
    out["postings_read_median"] = int(statistics.median(postings))
    out["words_per_query_median"] = int(statistics.median(len(w) for w, _ in queries))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["peak_anon_mb"] = round(anon, 1)
    return out


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", help="a real indexed project: the word distribution and the vocabulary")
    ap.add_argument("--bench", help="a PixBench set whose queries are searched")
    ap.add_argument("--images", default="100000,1000000")
    ap.add_argument("--out", required=True, help="a scratch folder (its indexes are rebuilt unless --keep)")
    ap.add_argument("--workers", type=int, default=0, help="build on a LocalCluster of N workers (0: this process)")
    ap.add_argument("--keep", action="store_true", help="reuse indexes (and queries) already made under --out")
    ap.add_argument("--queries", type=int, default=None, help="only the bench's first N queries")
    ap.add_argument("--words-scale", type=float, default=1.0,
                    help="scale every image's number of words (a 1M index of 0.1 takes 100k's disk)")
    ap.add_argument("--vocabulary", type=int, default=0,
                    help="simulate a K-word vocabulary trained on the project's features (not the project's own)")
    ap.add_argument("--kmeans-iterations", type=int, default=10, help="with --vocabulary: k-means iterations")
    ap.add_argument("--stat-images", type=int, default=2000,
                    help="with --vocabulary: images assigned to it to measure df and words an image")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # (the fresh query process: FOLDER)
    args = ap.parse_args()
    out = Path(args.out)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), out / "queries.npz")))
        return

    from engine.index.shards import ShardedIndex
    from engine.parallel.runner import Runner

    out.mkdir(parents=True, exist_ok=True)
    if args.vocabulary:
        centroids, df, sizes, trained_on, queries = larger_vocabulary_statistics(
            Path(args.project), args.bench, args.queries, args.vocabulary, args.kmeans_iterations, args.stat_images, out)
    else:
        centroids, df, sizes, trained_on, queries = real_statistics(Path(args.project), args.bench, args.queries)
    sizes = sizes * args.words_scale
    arrays = {"n": np.array(len(queries))}
    for i, (w, s) in enumerate(queries):
        arrays[f"w{i}"], arrays[f"s{i}"] = w, s
    np.savez(out / "queries.npz", **arrays)
    print(f"real project: {len(sizes)} images, k={len(df)}, {sizes.mean():.0f} distinct words an image "
          f"(a word in {100 * df.mean():.1f}% of images); {len(queries)} queries, "
          f"{int(np.median([len(w) for w, _ in queries]))} words (median)", flush=True)
    rows = []
    for n in [int(x) for x in args.images.split(",")]:
        folder = out / (f"sim-{n}" + (f"-k{len(df)}" if args.vocabulary else "")
                        + (f"-words{args.words_scale:g}" if args.words_scale != 1 else ""))
        t = time.perf_counter()
        if not (args.keep and (folder / "manifest" / "meta.json").exists()):
            shutil.rmtree(folder, ignore_errors=True)
            if args.workers:
                from engine.parallel.cluster import open_cluster
                manager = open_cluster(workers=args.workers)
            else:
                manager = contextlib.nullcontext(Runner())
            with manager as runner:
                build(folder, n, df, sizes, centroids, trained_on, runner)
        build_s = time.perf_counter() - t
        index = ShardedIndex.open(folder)
        disk = index.disk_bytes()
        run = subprocess.run([sys.executable, __file__, "--out", str(out), "--measure", str(folder)],
                             capture_output=True, text=True, check=True)
        row = {"images": n, "words_scale": args.words_scale, "shards": len(index.meta["shards"]), "postings": index.meta["postings"],
               "build_s": round(build_s, 1), "disk_gb": round(disk / 1e9, 2),
               "bytes_per_image": round(disk / n), **json.loads(run.stdout.strip().splitlines()[-1]),
               "load_avg": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| images | shards | postings | disk | build s | query ms cold (median / p90) | warm (median / p90) "
          "| postings read / query | peak RSS MB (anon) | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['images']:,} | {r['shards']} | {r['postings']:,} | {r['disk_gb']} GB | {r['build_s']} | "
              f"{r['cold_ms_median']} / {r['cold_ms_p90']} | {r['warm_ms_median']} / {r['warm_ms_p90']} | "
              f"{r['postings_read_median']:,} | {r['peak_rss_mb']} ({r['peak_anon_mb']}) | {r['load_avg']} |")


if __name__ == "__main__":
    main()
