"""Indexing throughput in one process and on a local Dask cluster, and the rankings they answer.

    python benchmarks/cluster.py BENCH_DIR --out OUT [--runs process:1,process:2,workers:1,workers:2]
                                 [--methods sv,hypergraph]

Indexes the PixBench set (its imlist) into a fresh project per run: `process:T` in this process
with T threads (the default install), `workers:N` on a LocalCluster of N worker processes
(engine.parallel.cluster; `pixret index --workers N`). Prints per run the wall time of each stage,
images per second, and the CPU time of each stage (this process and every worker process together)
per image and per graph pair: the cost a user plans with, independent of how loaded the machine
was (a cluster of N idle cores divides it by about N). Then it answers every query of the set with
each method on every project and checks that the rankings (image order and scores) are identical
to the first run's.
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
        return contextlib.nullcontext(Runner(int(n)))
    if kind == "workers":
        from engine.parallel.cluster import open_cluster

        return open_cluster(workers=int(n))
    raise SystemExit(f"--runs: {spec!r} is not process:T or workers:N")


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class StageClock:
    """A progress callback that notes wall and CPU time (this process and the cluster's workers)
    at every change of stage."""

    def __init__(self, runner):
        self.client = getattr(runner, "client", None)
        self.marks: list[tuple[str, float, float]] = []
        self.stage = None

    def cpu(self) -> float:
        total = _cpu_seconds()
        if self.client is not None:
            total += sum(self.client.run(_cpu_seconds).values())
        return total

    def __call__(self, done, total, stage):
        key = stage.split(":")[0]  # 'graph: neighbours' and 'graph' are both the graph
        if key != self.stage:
            self.stage = key
            self.marks.append((key, time.perf_counter(), self.cpu()))

    def per_stage(self) -> dict[str, tuple[float, float]]:
        """stage -> (wall s, CPU s), the stages in their order; call after the run."""
        marks = self.marks + [("end", time.perf_counter(), self.cpu())]
        out: dict[str, list[float]] = {}
        for (name, w0, c0), (_, w1, c1) in zip(marks, marks[1:]):
            acc = out.setdefault(name, [0.0, 0.0])
            acc[0] += w1 - w0
            acc[1] += c1 - c0
        return {k: (v[0], v[1]) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--out", required=True, help="a scratch folder for the projects (replaced)")
    ap.add_argument("--runs", default="process:1,process:2,workers:1,workers:2")
    ap.add_argument("--methods", default="sv,hypergraph")
    ap.add_argument("--images", type=int, default=None, help="only the first N images of the set (and the query images)")
    args = ap.parse_args()

    bench = load_pixbench(args.bench)
    jpg = Path(args.bench) / "jpg"
    names = bench.imlist if args.images is None else sorted(set(bench.imlist[:args.images]) | set(bench.qimlist))
    include = {f"{n}.jpg" for n in names}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = []
    for spec in args.runs.split(","):
        folder = out / spec.replace(":", "-")
        manager = runner_for(spec)
        t0 = time.perf_counter()
        with manager as runner:
            start_s = time.perf_counter() - t0
            with Project.create(folder, root=jpg) as project:
                clock = StageClock(runner)
                clock(0, 0, "scan")
                t = time.perf_counter()
                report = project.index_folder(jpg, include=include, runner=runner, progress=clock)
                total = time.perf_counter() - t
                stages = clock.per_stage()
                pairs = report.graph.pairs_checked if report.graph else 0
        n = max(report.extracted, 1)
        cpu = {k: round(v[1], 1) for k, v in stages.items()}
        row = {"run": spec, "images": report.extracted, "cluster_start_s": round(start_s, 1),
               "total_s": round(total, 1), "wall_s": {k: round(v[0], 1) for k, v in stages.items()}, "cpu_s": cpu,
               "graph_pairs": pairs, "images_per_s": round(report.extracted / total, 2),
               "cpu_s_per_image": round(sum(cpu.values()) / n, 3),
               "features_cpu_s_per_image": round(cpu.get("features", 0) / n, 3),
               "words_cpu_s_per_image": round(cpu.get("indexing words", 0) / n, 3),
               "graph_cpu_ms_per_pair": round(cpu.get("graph", 0) / max(pairs, 1) * 1000, 1),
               "load_avg": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    print("\n| run | images | wall s | images/s | CPU s/image (all) | features | words | graph CPU ms/pair | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['images']} | {r['total_s']} | {r['images_per_s']} | {r['cpu_s_per_image']} | "
              f"{r['features_cpu_s_per_image']} | {r['words_cpu_s_per_image']} | {r['graph_cpu_ms_per_pair']} | "
              f"{r['load_avg']} |")

    projects = [Project.open(out / spec.replace(":", "-")) for spec in args.runs.split(",")]
    same = differ = 0
    for method in args.methods.split(","):
        for q, qname in enumerate(bench.qimlist):
            query = Query(bench.image_path(qname), bench.query_region(q))
            rankings = []
            for p in projects:
                result = search(p, query, method=method, top_k=len(names))
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
