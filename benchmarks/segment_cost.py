"""Cost of the segment stage per hit (engine.pipeline.outline_one), and the outline it gives.

    python benchmarks/segment_cost.py BENCH_DIR PROJECT [--method sv] [--repeat 3]

Pairs: each query of BENCH_DIR with each of its easy and hard positives, verified as the search
verifies (the method's verifier and floor), then outlined as the search's segment stage outlines
a hit: a planar verified pair keeps its warped region (stage "warp", nothing decoded), any other
verified pair is refined ("cut"), an unverified one gets a guess: carried by the matches of the
pair verified again at the one-shot floor ("few"), else from colour ("colour").
PROJECT is a project indexed on BENCH_DIR's jpg/ (pixret bench --project makes one; copy it
first: the query cache is written).

Timed per hit, best of --repeat, one thread: the photo's decode (at the segment stage's long side)
and the refinement, and for a guess the pair's second verification; the search's own verification
is not timed. Prints the median and 90th percentile per stage and overall, and the mean IoU (mask)
of each stage's outlines with the labels.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per hit, as each of the stage's two threads has

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from engine.base.types import Hit, Query  # noqa: E402
from engine.formats.pixbench import load_pixbench  # noqa: E402
from engine.pipeline import METHODS, SearchConfig, outline_one, prepare  # noqa: E402
from engine.project import Project  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench")
    ap.add_argument("project")
    ap.add_argument("--method", default="sv", choices=sorted(METHODS))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    bench = load_pixbench(a.bench)
    project = Project.open(a.project)
    id_of = {project.image_path(i).rsplit("/", 1)[-1].rsplit(".", 1)[0]: i for i in project.indexed_images()}
    config = SearchConfig()
    ms: dict[str, list[float]] = {}
    ious: dict[str, list[float]] = {}
    try:
        for q, qname in enumerate(bench.qimlist):
            if not bench.gnd[q].pixel_gt:
                continue
            ctx = prepare(project, Query(bench.image_path(qname), bench.query_region(q)), config)
            ctx.outline_query()  # learned once per search: not a per-hit cost
            verifier = METHODS[a.method].verifier
            for i in bench.positives(q):
                name = bench.imlist[i]
                r = verifier(ctx, id_of[name])
                hit = Hit(id_of[name], name, r.score, r.region, r.evidence,
                          "verified" if r.region is not None else "shortlist")
                best = None
                for _ in range(a.repeat):
                    ctx._photos = {}  # the decode is part of the cost
                    t = time.perf_counter()
                    out = outline_one(ctx, hit, verifier)
                    dt = 1000 * (time.perf_counter() - t)
                    best = dt if best is None else min(best, dt)
                stage = out.evidence.get("outline", "none")
                ms.setdefault(stage, []).append(best)
                w, h = bench.image_size(name)
                iou = out.region.iou(bench.label_region(q, i), h, w) if out.region is not None else 0.0
                ious.setdefault(stage, []).append(iou)
    finally:
        project.close()
    every = [v for vs in ms.values() for v in vs]
    print(f"{a.bench} ({a.method}), {len(every)} positive pairs, best of {a.repeat}, one thread")
    print(f"{'stage':8s} {'pairs':>6s} {'median ms':>10s} {'p90 ms':>8s} {'mean IoU':>9s}")
    for stage in sorted(ms):
        v = np.asarray(ms[stage])
        print(f"{stage:8s} {len(v):6d} {np.median(v):10.1f} {np.percentile(v, 90):8.1f} "
              f"{100 * np.mean(ious[stage]):9.1f}")
    v = np.asarray(every)
    print(f"{'all':8s} {len(v):6d} {np.median(v):10.1f} {np.percentile(v, 90):8.1f} "
          f"{100 * np.mean([x for xs in ious.values() for x in xs]):9.1f}")


if __name__ == "__main__":
    main()
