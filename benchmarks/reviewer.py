"""Self-adaptation on a PixBench set: one simulated round of review, then a search for the object.

For every pixel-labelled query (every query with `--all-queries`): search (`--method`), then a
simulated reviewer looks at the top `--review` results with the labels as its eyes: a positive is accepted (kept as predicted when its
region already has IoU >= 0.95 with the label, otherwise corrected to the label), a negative is
rejected, junk is left alone. Then the object is searched again (engine.annotate.objects.search_object:
every reviewed view at once, known negatives last). Image mAP and pixel mAP@50:5:95 (mask, medium)
over those queries are printed before and after, with the time of each search.

    python benchmarks/reviewer.py ../shared/bench/dev --project /tmp/rev/project --method sv

The project is indexed when needed (reuse one from `pixret bench --project`); the searches and
decisions it stores are its own (use a copy of a project you want to keep clean).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.annotate import review  # noqa: E402
from engine.annotate.objects import object_of_query, search_object  # noqa: E402
from engine.base.types import Query
from engine.evaluate import metrics
from engine.formats.pixbench import load_pixbench  # noqa: E402
from engine.pipeline import SearchConfig, search  # noqa: E402
from engine.project import Project  # noqa: E402

ACCEPT_IOU = 0.95
SAVED = 100  # hits kept per stored search (the desktop app's default top-k)


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def simulate_review(project, bench, q: int, query_id: int, result, name_of: dict[int, str], top: int) -> dict:
    """Decide the top results as a reviewer who can see the labels; returns counts per kind."""
    pos = set(bench.positives(q, "medium"))
    junk = set(bench.junk(q, "medium"))
    counts = {"accepted": 0, "corrected": 0, "rejected": 0}
    for hit in result.hits[:top]:
        i = bench.index_of(name_of[hit.image_id])
        if i in junk:
            continue
        if i in pos and not bench.gnd[q].pixel_gt:  # no label to correct to: keep an outline as predicted
            if hit.region is None:
                continue
            kind, region = "accepted", hit.region
        elif i in pos:
            label = bench.label_region(q, i)
            w, h = bench.image_size(bench.imlist[i])
            if hit.region is not None and hit.region.iou(label, h, w) >= ACCEPT_IOU:
                kind, region = "accepted", hit.region
            else:
                kind, region = "corrected", label
        else:
            kind, region = "rejected", None
        review.set_decision(project, query_id, hit.image_id, kind, region, author="simulated reviewer")
        counts[kind] += 1
    return counts


def scores(bench, rankings: dict, regions: dict, queries: list[int]) -> tuple[float, float]:
    """(image mAP, pixel mAP@50:5:95 mask), medium protocol, over `queries`."""
    img = metrics.image_map(rankings, bench, "medium").per_query
    pix = metrics.pixel_map(rankings, regions, bench, "medium", "mask").per_query
    return (statistics.fmean(img[q] for q in queries if img[q] is not None),
            statistics.fmean(pix[q] for q in queries if pix[q] is not None and bench.gnd[q].pixel_gt))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pixbench_dir")
    ap.add_argument("--project", required=True)
    ap.add_argument("--method", default="sv")
    ap.add_argument("--review", type=int, default=10, help="results the reviewer looks at")
    ap.add_argument("--all-queries", action="store_true",
                    help="also the image-level queries (the reviewer accepts their outlines as predicted; "
                         "pixel mAP stays over the pixel-labelled ones)")
    ap.add_argument("--json", default=None, help="write the figures here too")
    args = ap.parse_args(argv)

    bench = load_pixbench(args.pixbench_dir)
    jpg = Path(args.pixbench_dir) / "jpg"
    config = SearchConfig()
    project = Project.open_or_create(args.project, root=jpg)
    try:
        project.index_folder(jpg, include={f"{n}.jpg" for n in bench.imlist})
        name_of = {i: _stem(project.image_path(i)) for i in project.indexed_images()}
        n_all = len(name_of)
        queries = [q for q, e in enumerate(bench.gnd) if (e.pixel_gt or args.all_queries)
                   and bench.positives(q, "medium")]
        before_rank, before_reg, after_rank, after_reg = {}, {}, {}, {}
        t_first, t_second, decided, per_query = [], [], {"accepted": 0, "corrected": 0, "rejected": 0}, []
        for q in queries:
            qname = bench.qimlist[q]
            query = Query(bench.image_path(qname), bench.query_region(q))
            shutil.rmtree(Path(args.project) / "cache" / "queries", ignore_errors=True)  # a first search is cold
            t = time.perf_counter()
            first = search(project, query, method=args.method, top_k=n_all, config=config)
            t_first.append(time.perf_counter() - t)
            qid = review.save_search(project, replace(first, hits=first.hits[:SAVED]))  # as the app keeps them
            counts = simulate_review(project, bench, q, qid, first, name_of, args.review)
            for k, v in counts.items():
                decided[k] += v
            object_id = object_of_query(project, qid)
            t = time.perf_counter()
            second = search_object(project, object_id, method=args.method, top_k=n_all, config=config) \
                if object_id is not None else first
            t_second.append(time.perf_counter() - t)
            for rank, reg, res in ((before_rank, before_reg, first), (after_rank, after_reg, second)):
                rank[q] = [name_of[h.image_id] for h in res.hits]
                for h in res.hits:
                    reg[(q, name_of[h.image_id])] = h.region
            per_query.append({"query": qname, "first_s": t_first[-1], "second_s": t_second[-1], **counts})
            print(f"{qname:45s} first {t_first[-1] * 1000:6.0f} ms  second {t_second[-1] * 1000:5.0f} ms  "
                  f"{counts}", flush=True)
    finally:
        project.close()

    img0, pix0 = scores(bench, before_rank, before_reg, queries)
    img1, pix1 = scores(bench, after_rank, after_reg, queries)
    med0, med1 = statistics.median(t_first), statistics.median(t_second)
    doc = {"method": args.method, "queries": len(queries), "reviewed_top": args.review, "decisions": decided,
           "before": {"mAP": img0, "mAP@50:5:95_mask": pix0, "median_s": med0},
           "after": {"mAP": img1, "mAP@50:5:95_mask": pix1, "median_s": med1},
           "speedup_median": med0 / med1 if med1 > 0 else None, "per_query": per_query}
    print(f"\n{len(queries)} {'' if args.all_queries else 'pixel-labelled '}queries, method {args.method}, reviewer sees the top {args.review}: "
          f"{decided}")
    print(f"{'':8s}{'image mAP':>12s}{'pixel mAP@50:5:95 mask':>26s}{'median search':>16s}")
    print(f"{'before':8s}{img0:12.2f}{pix0:26.2f}{med0 * 1000:13.0f} ms")
    print(f"{'after':8s}{img1:12.2f}{pix1:26.2f}{med1 * 1000:13.0f} ms")
    print(f"second search {med0 / med1:.1f}x faster (median)")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
