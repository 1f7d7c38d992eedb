"""Cost of the graph stages, whether uncertainty predicts failure, and what propagation gains.

    .venv/bin/python benchmarks/propagation.py BENCH_DIR [--project DIR] [--method hypergraph ...]
                                               [--queries N] [--json OUT.json]
    .venv/bin/python benchmarks/propagation.py BENCH_DIR --compare OUT_SV OUT_HYPERGRAPH

For a PixBench folder: indexes it (or reuses --project, e.g. the OUT/project a `pixret bench` run
left behind), then prints

- offline: the graph's cost so far (graph/cost.json: pairs spatially verified, seconds, per pair)
  and its size;
- online: for each method, each query's post-stage time (SearchResult.timings["post"]: diffusion
  and/or propagation, the part the graph adds to a search) with median / p90 / max;
- uncertainty vs AP: Spearman's rank correlation between each query's SearchResult.uncertainty and
  its image AP (medium protocol, engine.evaluate.metrics), per method. Negative = uncertain queries fail.

--compare reads two `pixret bench` output folders instead and counts the positives the second
finds (in its top 100 with a region: verified or propagated) and localizes (mask IoU >= 0.5
against labels/) where the first does not, and the other way round.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.base.regions import pair_ious  # noqa: E402
from engine.base.types import Query
from engine.evaluate import metrics  # noqa: E402
from engine.formats.pixbench import load_pixbench  # noqa: E402
from engine.pipeline import search  # noqa: E402
from engine.project import Project  # noqa: E402


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def offline_cost(project) -> dict:
    folder = project.folder / "graph"
    cost = json.loads((folder / "cost.json").read_text()) if (folder / "cost.json").exists() else {}
    g = project.graph
    n_pairs = len(g.edges) if g is not None else 0
    linked = int((np.asarray(g.edges.inliers) > 0).sum()) if g is not None else 0
    checked = cost.get("pairs_checked", 0)
    return {"images": g.n if g is not None else 0, "pairs_stored": n_pairs, "hyperedges": linked,
            "correspondences": int(g.edges.ptr[-1]) if g is not None else 0,
            "pairs_checked": checked, "verify_s": cost.get("verify_s", 0.0), "knn_s": cost.get("knn_s", 0.0),
            "knn_rows": cost.get("knn_rows", 0),
            "ms_per_pair": 1000.0 * cost.get("verify_s", 0.0) / checked if checked else None,
            "ms_per_knn_row": 1000.0 * cost.get("knn_s", 0.0) / cost["knn_rows"] if cost.get("knn_rows") else None,
            "disk_mb": _folder_bytes(folder) / 1e6}


def run(bench_dir, project_dir, methods, n_queries=None) -> dict:
    bench = load_pixbench(bench_dir)
    jpg = Path(bench_dir) / "jpg"
    project = Project.open_or_create(project_dir, root=jpg)
    try:
        t = time.perf_counter()
        report = project.index_folder(jpg, include={f"{n}.jpg" for n in bench.imlist})
        index_s = time.perf_counter() - t
        out = {"bench": str(bench_dir), "project": str(project_dir), "index_s": index_s,
               "graph_this_run": None if report.graph is None else {
                   "pairs_checked": report.graph.pairs_checked, "seconds": report.graph.seconds,
                   "ms_per_pair": (report.graph.seconds_per_pair or 0.0) * 1000.0},
               "offline": offline_cost(project), "methods": {}}
        queries = list(range(len(bench.qimlist)))[:n_queries]
        for method in methods:
            rows, ranking = [], {}
            for q in queries:
                qname = bench.qimlist[q]
                result = search(project, Query(bench.image_path(qname), bench.query_region(q)), method=method,
                                top_k=0)
                ranking[q] = [_stem(h.path) for h in result.hits]
                rows.append({"q": q, "query": qname, "post_ms": 1000.0 * result.timings.get("post", 0.0),
                             "deepen_ms": 1000.0 * result.timings.get("deepen", 0.0),
                             "total_ms": 1000.0 * result.timings["total"], "uncertainty": result.uncertainty,
                             "propagated": sum(h.stage == "propagated" for h in result.hits)})
            ap = metrics.image_map(ranking, bench, "medium").per_query  # percent; None: no positives
            for row in rows:
                row["AP"] = ap[row["q"]]
            post = np.array([r["post_ms"] for r in rows])
            pairs = [(r["uncertainty"], r["AP"]) for r in rows if r["AP"] is not None and r["uncertainty"] is not None]
            rho = spearmanr([u for u, _ in pairs], [a for _, a in pairs]) if len(pairs) > 2 else None
            out["methods"][method] = {
                "queries": rows,
                "post_ms": {"median": float(np.median(post)), "p90": float(np.percentile(post, 90)),
                            "max": float(post.max())},
                "spearman_uncertainty_ap": None if rho is None else {"rho": float(rho.statistic),
                                                                     "p": float(rho.pvalue), "n": len(pairs)}}
        return out
    finally:
        project.close()


def print_report(out: dict) -> None:
    o = out["offline"]
    print(f"offline  graph of {o['images']} images: {o['pairs_checked']} pairs verified in "
          f"{o['verify_s']:.1f} s ({o['ms_per_pair'] or 0:.1f} ms per pair, wall clock, all workers), "
          f"kNN {o['knn_s']:.1f} s ({o['ms_per_knn_row'] or 0:.1f} ms per image); "
          f"{o['hyperedges']} hyperedges, {o['correspondences']} correspondences, {o['disk_mb']:.1f} MB")
    if out["graph_this_run"] and out["graph_this_run"]["pairs_checked"]:
        g = out["graph_this_run"]
        print(f"         this run: {g['pairs_checked']} pairs, {g['ms_per_pair']:.1f} ms per pair")
    for method, m in out["methods"].items():
        print(f"\nmethod {method}")
        print(f"{'q':>3s} {'query':40s} {'post ms':>8s} {'uncert.':>8s} {'AP':>6s} {'prop.':>5s}")
        for r in m["queries"]:
            u = "-" if r["uncertainty"] is None else f"{r['uncertainty']:.3f}"
            a = "-" if r["AP"] is None else f"{r['AP']:.1f}"
            print(f"{r['q']:3d} {r['query'][:40]:40s} {r['post_ms']:8.1f} {u:>8s} {a:>6s} {r['propagated']:5d}")
        p = m["post_ms"]
        print(f"online post stage: median {p['median']:.1f} ms, p90 {p['p90']:.1f} ms, max {p['max']:.1f} ms")
        s = m["spearman_uncertainty_ap"]
        if s:
            print(f"uncertainty vs AP: Spearman rho {s['rho']:+.3f} (p {s['p']:.3g}, {s['n']} queries)")


def compare(bench_dir, out_a, out_b, top: int = 100) -> dict:
    """Positives found / localized by run B and missed by run A (and the reverse)."""
    bench = load_pixbench(bench_dir)
    runs = {d: metrics.load_results(d, bench) for d in (out_a, out_b)}

    def status(d, q, i):
        ranking, regions, _ = runs[d]
        name = bench.imlist[i]
        if name not in ranking.get(q, [])[:top] or regions.get((q, name)) is None:
            return False, False
        if not bench.gnd[q].pixel_gt:
            return True, None
        w, h = bench.image_size(name)
        return True, pair_ious(regions[(q, name)], bench.label_region(q, i), h, w)[0] >= 0.5

    out = {"found_gained": [], "found_lost": [], "localized_gained": [], "localized_lost": [],
           "other_regions_gained": {"junk": 0, "negative": 0}}
    for q in range(len(bench.qimlist)):
        e = bench.gnd[q]
        for i in list(e.easy) + list(e.hard):
            (fa, la), (fb, lb) = status(out_a, q, i), status(out_b, q, i)
            item = [q, bench.imlist[i]]
            if fb and not fa:
                out["found_gained"].append(item)
            if fa and not fb:
                out["found_lost"].append(item)
            if lb and not la:
                out["localized_gained"].append(item)
            if la and not lb:
                out["localized_lost"].append(item)
        positives, junk = set(e.easy) | set(e.hard), set(e.junk)
        for name in runs[out_b][0].get(q, [])[:top]:
            if runs[out_b][1].get((q, name)) is not None and runs[out_a][1].get((q, name)) is None:
                i = bench.index_of(name)
                if i not in positives:
                    out["other_regions_gained"]["junk" if i in junk else "negative"] += 1
    return out


def print_compare(c: dict, a: str, b: str) -> None:
    for q, name in c["found_gained"]:
        loc = "localized" if [q, name] in c["localized_gained"] else ""
        print(f"  q{q:<3d} {name} {loc}")
    print(f"{b} vs {a}: positives found in the top 100 with a region that {a} misses: "
          f"{len(c['found_gained'])} (lost {len(c['found_lost'])}); localized (IoU >= 0.5) that {a} misses: "
          f"{len(c['localized_gained'])} (lost {len(c['localized_lost'])}); regions given to non-positives "
          f"that {a} did not give: {c['other_regions_gained']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_dir")
    ap.add_argument("--project", help="project folder to (re)use (default: /tmp/propagation-<set name>)")
    ap.add_argument("--method", action="append", help="method(s) to time (default: hypergraph)")
    ap.add_argument("--queries", type=int, default=None, help="only the first N queries")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--compare", nargs=2, metavar=("OUT_A", "OUT_B"), help="compare two `pixret bench` outputs")
    args = ap.parse_args(argv)
    if args.compare:
        c = compare(args.bench_dir, *args.compare)
        print_compare(c, *args.compare)
        if args.json:
            Path(args.json).write_text(json.dumps(c, indent=1))
        return 0
    project = args.project or f"/tmp/propagation-{Path(args.bench_dir).resolve().name}"
    out = run(args.bench_dir, project, args.method or ["hypergraph"], args.queries)
    print_report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
