"""Indexing throughput in one process and on a local Dask cluster, and the rankings they answer.

    python benchmarks/cluster.py BENCH_DIR --out OUT [--runs process:1,process:2,workers:1,workers:2]
                                 [--methods sv,hypergraph]

Indexes the PixBench set (its imlist) into a fresh project per run: `process:T` in this process
with T threads (the default install), `workers:N` on a LocalCluster of N worker processes
(engine.parallel.cluster; `pixret index --workers N`). Prints per run the wall time of each stage,
images per second, and the cost per image in worker-seconds (stage time x parallel slots / images:
what a user plans with, since a cluster of N such slots divides it by N). Then it answers every
query of the set with each method on every project and checks that the rankings (image order and
scores) are identical to the first run's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from engine.base.types import Query
from engine.formats.pixbench import load_pixbench
from engine.parallel.runner import Runner
from engine.pipeline import search
from engine.project import Project


def runner_for(spec: str):
    kind, _, n = spec.partition(":")
    if kind == "process":
        return contextlib.nullcontext(Runner(int(n))), int(n)
    if kind == "workers":
        from engine.parallel.cluster import open_cluster

        return open_cluster(workers=int(n)), int(n)
    raise SystemExit(f"--runs: {spec!r} is not process:T or workers:N")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--out", required=True, help="a scratch folder for the projects (replaced)")
    ap.add_argument("--runs", default="process:1,process:2,workers:1,workers:2")
    ap.add_argument("--methods", default="sv,hypergraph")
    args = ap.parse_args()

    bench = load_pixbench(args.bench)
    jpg = Path(args.bench) / "jpg"
    include = {f"{n}.jpg" for n in bench.imlist}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = []
    for spec in args.runs.split(","):
        folder = out / spec.replace(":", "-")
        manager, slots = runner_for(spec)
        t0 = time.perf_counter()
        with manager as runner:
            start_s = time.perf_counter() - t0
            with Project.create(folder, root=jpg) as project:
                t = time.perf_counter()
                report = project.index_folder(jpg, include=include, runner=runner)
                total = time.perf_counter() - t
                pairs = report.graph.pairs_checked if report.graph else 0
        s = report.seconds
        graph_verify = report.graph.seconds.get("verify", 0.0) if report.graph else 0.0
        row = {"run": spec, "images": report.extracted, "cluster_start_s": round(start_s, 1),
               "total_s": round(total, 1), "features_s": round(s.get("features", 0), 1),
               "index_s": round(s.get("index", 0), 1), "graph_s": round(s.get("graph", 0), 1),
               "graph_pairs": pairs, "images_per_s": round(report.extracted / total, 2),
               "features_slot_s_per_image": round(s.get("features", 0) * slots / max(report.extracted, 1), 3),
               "graph_slot_ms_per_pair": round(graph_verify * slots / max(pairs, 1) * 1000, 1),
               "load_avg": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n| run | images | total s | features s | index s | graph s | images/s | "
          f"features slot-s/image | graph slot-ms/pair | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['images']} | {r['total_s']} | {r['features_s']} | {r['index_s']} | {r['graph_s']} | "
              f"{r['images_per_s']} | {r['features_slot_s_per_image']} | {r['graph_slot_ms_per_pair']} | "
              f"{r['load_avg']} |")

    projects = [Project.open(out / spec.replace(":", "-")) for spec in args.runs.split(",")]
    same = differ = 0
    for method in args.methods.split(","):
        for q, qname in enumerate(bench.qimlist):
            query = Query(bench.image_path(qname), bench.query_region(q))
            rankings = []
            for p in projects:
                result = search(p, query, method=method, top_k=len(bench.imlist))
                rankings.append([(p.image_path(h.image_id), round(float(h.score), 6)) for h in result.hits])
            if all(r == rankings[0] for r in rankings[1:]):
                same += 1
            else:
                differ += 1
                print(f"DIFFERENT: {method} query {q} ({qname})")
    print(f"\nrankings identical across the {len(projects)} builds: {same} of {same + differ} "
          f"(queries x methods: {len(bench.qimlist)} x {args.methods})")
    for p in projects:
        p.close()


if __name__ == "__main__":
    main()
