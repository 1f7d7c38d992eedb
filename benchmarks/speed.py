"""Query speed of methods on an indexed PixBench set (the 5,000-image set for the speed claims).

    python benchmarks/speed.py BENCH_DIR --project PROJECT_DIR [--methods sv,brute-sv] [--queries 8]

Indexes the set into PROJECT_DIR first if needed (incremental: reuse a project `pixret bench`
made; a project of PixRet 0.1 is upgraded; no graph), then times `search` for every method on the same
evenly spaced queries, in one process, and prints indexing throughput, median and p90 query time
(wall clock and the process's CPU time, which a shared machine's load does not inflate), the ratio
of each method to the first on the same queries, peak memory, bytes per local feature. The query
features are extracted (and cached, as a repeated search finds them) before anything is timed, so
no method pays for the first extraction.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

from engine.base.types import Query
from engine.formats.pixbench import load_pixbench
from engine.pipeline import METHODS, Method, SearchConfig, dense_topo_pair, prepare, search
from engine.project import Project


# a reference for topo's speed: topological verification of every shortlisted pair on dense seeds
# (what `topo` did before it started from word correspondences); timed here, not offered by the CLI
REFERENCES = {"dense-topo": Method(dense_topo_pair, description="topo on dense ratio-test seeds")}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_p90(xs: list[float]) -> tuple[float, float]:
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--project", required=True)
    ap.add_argument("--methods", default="sv,brute-sv", help="pipeline methods, or the reference dense-topo")
    ap.add_argument("--queries", type=int, default=8, help="how many queries (evenly spaced over qimlist)")
    ap.add_argument("--no-index", action="store_true", help="time queries on the project as it is")
    ap.add_argument("--outline-top", type=int, default=SearchConfig().outline.top,
                    help="hits the segment stage outlines (0: verification alone)")
    args = ap.parse_args()
    METHODS.update(REFERENCES)
    config = SearchConfig()
    config = replace(config, outline=replace(config.outline, top=args.outline_top))

    bench = load_pixbench(args.bench)
    jpg = Path(args.bench) / "jpg"
    project = Project.open_or_create(args.project, root=jpg)
    if not args.no_index:
        t = time.perf_counter()
        report = project.index_folder(jpg, include={f"{n}.jpg" for n in bench.imlist}, graph=False)
        index_s = time.perf_counter() - t
        print(f"extracted now {report.extracted} in {index_s:.1f}s ({report.seconds})")
        if report.extracted:
            print(f"indexing throughput {report.extracted / index_s:.2f} images/s")
    stats = project.stats()
    print(f"images {stats['images']}, features {stats['features']}")
    print(f"feature store {stats['feature_store_bytes'] / 1e6:.1f} MB: searched part "
          f"{stats['store_bytes_per_feature']:.1f} B/feature, full descriptors {stats['cold_bytes_per_feature']:.1f} "
          f"B/feature; index {stats['index_bytes'] / 1e6:.1f} MB ({stats['index_bytes_per_feature']:.2f} B/feature)")

    n = len(bench.qimlist)
    picks = sorted({round(k * (n - 1) / max(args.queries - 1, 1)) for k in range(args.queries)})
    queries = [Query(bench.image_path(bench.qimlist[q]), bench.query_region(q)) for q in picks]
    for query in queries:
        prepare(project, query, config)  # extracts the query features into the project's cache
    print(f"after opening and caching the query features: peak RSS {rss_mb():.0f} MB")
    # wall times on a shared machine follow its load (2 cores: a load of 1 takes half of them)
    print("load average before timing: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    first = None
    for method in args.methods.split(","):
        wall, cpu, stages = [], [], {}
        for query in queries:
            c, t = time.process_time(), time.perf_counter()
            result = search(project, query, method=method, top_k=100, config=config)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            for stage, s in result.timings.items():
                stages.setdefault(stage, []).append(s)
        (wm, wp), (cm, cp) = median_p90(wall), median_p90(cpu)
        line = (f"{method:10s} queries {len(wall)}  wall median {wm * 1000:.0f} ms p90 {wp * 1000:.0f} ms max "
                f"{max(wall) * 1000:.0f} ms | CPU median {cm * 1000:.0f} ms p90 {cp * 1000:.0f} ms | peak RSS {rss_mb():.0f} MB")
        if first is None:
            first = (method, wall, cpu)
        else:
            ratio_w = statistics.median(a / b for a, b in zip(wall, first[1]))
            ratio_c = statistics.median(a / b for a, b in zip(cpu, first[2]))
            line += (f" | x{statistics.median(wall) / statistics.median(first[1]):.0f} {first[0]}'s median wall, "
                     f"per query median x{ratio_w:.0f} wall, x{ratio_c:.0f} CPU")
        print(line, flush=True)
        print("           stage medians (wall): " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms"
                                                          for k, v in stages.items() if k != "total"), flush=True)
    print("load average after timing: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    project.close()


if __name__ == "__main__":
    main()
