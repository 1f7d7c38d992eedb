"""`pixret bench`: run a whole PixBench set through one method and write the contract's files.

OUT_DIR/ranking/<q>.json, OUT_DIR/pairs/<q>.json and OUT_DIR/metrics.json as DESIGN.md fixes them.
The ground truth is read only for the list of queries and the pairs to localize; metrics are
computed afterwards from the written files, exactly as `pixret eval` would.
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import replace
from pathlib import Path

from engine.base.atomic import atomic_write_text
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.types import Hit, Query
from engine.evaluate import metrics
from engine.features.learned import check_feature_kind
from engine.formats.pixbench import load_pixbench
from engine.pipeline import METHODS, QueryContext, SearchConfig, outline_one, prepare, search, weak_pair
from engine.project import Project

MIN_RANKED = 100


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data))


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def run_bench(bench_dir, out_dir, *, method: str = "sv", project_dir=None, config: SearchConfig = SearchConfig(),
              graph: bool = True, progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER,
              features: str | None = None) -> dict:
    """features: the feature type of a new project (engine.features.learned.FEATURE_KINDS; None:
    the default, RootSIFT); a reused project keeps its own, and another type is refused."""
    if features is not None:
        check_feature_kind(features)  # before anything is made
    bench = load_pixbench(bench_dir)
    out = Path(out_dir)
    (out / "ranking").mkdir(parents=True, exist_ok=True)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    project_dir = Path(project_dir) if project_dir else out / "project"
    jpg = Path(bench_dir) / "jpg"

    t0 = time.perf_counter()
    project = Project.open_or_create(project_dir, root=jpg)
    try:
        if features is not None:
            project.choose_features(features)
        report = project.index_folder(jpg, include={f"{n}.jpg" for n in bench.imlist}, graph=graph,
                                      progress=progress, cancel=cancel)
        index_s = time.perf_counter() - t0
        name_of = {i: _stem(project.image_path(i)) for i in project.indexed_images()}
        id_of = {n: i for i, n in name_of.items()}
        query_s, query_timings = [], []
        for q, qname in enumerate(bench.qimlist):
            cancel.raise_if_set()
            progress(q, len(bench.qimlist), f"query {qname}")
            query = Query(bench.image_path(qname), bench.query_region(q))
            t = time.perf_counter()
            ctx = prepare(project, query, config)
            result = search(project, query, method=method, top_k=max(MIN_RANKED, len(name_of)), config=config,
                            context=ctx)
            query_s.append(time.perf_counter() - t)
            query_timings.append(result.timings)
            _write_json(out / "ranking" / f"{q}.json", {"query": qname, "results": [
                {"image": name_of[h.image_id], "score": float(h.score),
                 "polygons": h.region.polygons() if h.region is not None else []} for h in result.hits]})
            pairs = localize_pairs(ctx, bench, q, result, id_of, method)
            _write_json(out / "pairs" / f"{q}.json", {"query": qname, "pairs": {
                n: (r.polygons() if r is not None else []) for n, r in pairs.items()}})
        progress(len(bench.qimlist), len(bench.qimlist), "queries")
        stats = project.stats()
    finally:
        project.close()

    ranking, ranked_regions, pair_regions = metrics.load_results(out)
    scores = metrics.evaluate(ranking, ranked_regions, pair_regions, bench)
    doc = {"method": method, "outline": {"top": config.outline.top, "guesses": config.outline.guesses},
           "metrics": {p: {k: v for k, v in m.items() if k != "per_query"}
                                         for p, m in scores.items()},
           "timing": {"index_s": index_s, "query_s": query_s, "query_stages": query_timings},
           "index": {"failed": report.failed, "seconds": report.seconds, **stats,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0},
           "per_query": {p: m.get("per_query", {}) for p, m in scores.items()}}
    _write_json(out / "metrics.json", doc)
    return doc


def localize_pairs(ctx: QueryContext, bench, q: int, result, id_of: dict[str, int], method: str) -> dict:
    """The predicted region in each easy and hard positive of q, given the pair (one-shot), as the
    app outlines a hit the reviewer opens.

    A positive the search already outlined keeps that outline (a region it has not refined yet is
    refined now); any other gets what engine.pipeline.outline_one draws for an unverified hit: the
    pair verified on its own, trusting fewer inliers (it is known to be positive), and outlined
    from that geometry, or from colour where there is none.
    """
    entry = bench.gnd[q]
    wanted = [bench.imlist[i] for i in list(entry.easy) + list(entry.hard)]
    found = {h.image_id: h for h in result.hits if h.region is not None}
    verifier = METHODS[method].verifier
    pairs = {}
    for name in wanted:
        image_id = id_of.get(name)
        if image_id is None:
            pairs[name] = None  # the image failed to load: nothing to localize
            continue
        hit = found.get(image_id) or Hit(image_id, name, 0.0, None, {}, "shortlist")
        if ctx.config.outline.top:
            if "outline" not in hit.evidence:
                hit = outline_one(ctx, hit, verifier)
        elif hit.region is None and len(ctx.features) >= 4:  # no segment stage: the weak pair's warped region
            hit = replace(hit, region=weak_pair(ctx, image_id, verifier).region)
        pairs[name] = hit.region
    return pairs
