"""Query speed of methods on an indexed PixBench set (the 5,000-image set for the speed claims).

    python benchmarks/speed.py BENCH_DIR --project PROJECT_DIR [--methods sv,brute-sv] [--queries 8]

Indexes the set into PROJECT_DIR first if needed (incremental: reuse a project `pixret bench`
made), then times `search` for every method on the same evenly spaced queries, in one process,
and prints indexing throughput, median and p90 query time, peak memory, bytes per local feature.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from engine.base.types import Query
from engine.formats.pixbench import load_pixbench
from engine.pipeline import search
from engine.project import Project


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--project", required=True)
    ap.add_argument("--methods", default="sv,brute-sv")
    ap.add_argument("--queries", type=int, default=8, help="how many queries (evenly spaced over qimlist)")
    ap.add_argument("--no-index", action="store_true", help="time queries on the project as it is")
    args = ap.parse_args()

    bench = load_pixbench(args.bench)
    jpg = Path(args.bench) / "jpg"
    project = Project.open_or_create(args.project, root=jpg)
    if not args.no_index:
        t = time.perf_counter()
        report = project.index_folder(jpg, include={f"{n}.jpg" for n in bench.imlist})
        index_s = time.perf_counter() - t
        print(f"extracted now {report.extracted} in {index_s:.1f}s ({report.seconds})")
        if report.extracted:
            print(f"indexing throughput {report.extracted / index_s:.2f} images/s")
    stats = project.stats()
    print(f"images {stats['images']}, features {stats['features']}")
    print(f"feature store {stats['feature_store_bytes'] / 1e6:.1f} MB "
          f"({stats['feature_store_bytes'] / max(stats['features'], 1):.1f} B/feature); "
          f"index {stats['index_bytes'] / 1e6:.1f} MB ({stats['index_bytes'] / max(stats['features'], 1):.2f} B/feature)")

    n = len(bench.qimlist)
    picks = sorted({round(k * (n - 1) / max(args.queries - 1, 1)) for k in range(args.queries)})
    for method in args.methods.split(","):
        times = []
        for q in picks:
            query = Query(bench.image_path(bench.qimlist[q]), bench.query_region(q))
            t = time.perf_counter()
            search(project, query, method=method, top_k=100)
            times.append(time.perf_counter() - t)
        times.sort()
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
        print(f"{method:10s} queries {len(times)}  median {statistics.median(times) * 1000:.0f} ms  "
              f"p90 {p90 * 1000:.0f} ms  max {times[-1] * 1000:.0f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    project.close()


if __name__ == "__main__":
    main()
