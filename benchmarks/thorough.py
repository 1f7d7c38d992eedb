"""The thorough method's slow stage, pair by pair: what each candidate costs and what a budget buys.

    python benchmarks/thorough.py SET --project P --out DIR [--kinds planar,image] [--features xfeat]
                                  [--reach 100] [--tilted [auto|always]] [--report]

For each query of SET (a PixBench folder; its meta.json gives the kinds) on the indexed project P:
the fast search (`sv`), then every candidate of the initial ranking's first --reach that sv did not
verify, verified by the learned matcher (engine.pipeline.LearnedPairs: the database's learned features
extracted on demand into P's cache, LightGlue, MAGSAC++), and with --tilted, when sv verified
nothing (as the method's default 'auto') or with --tilted always, by RootSIFT of the query's tilted views
(engine.pipeline.affine_context) on the shortlist. Each pair's inliers and
seconds go to DIR/<q>.json (a finished query is not run again: the run resumes).

--report (no pairs run): image AP (medium) per kind for sv and for the thorough ranking (sv's
verified, then the slow stage's, then the rest in the initial order) at each inlier floor, and the
budget a query needs (the pairs' measured seconds in the order the stage tries them), with the
median seconds per pair (extraction, matching).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from engine.base.progress import NEVER, NO_PROGRESS
from engine.base.types import Query
from engine.evaluate.metrics import average_precision
from engine.formats.pixbench import load_pixbench
from engine.pipeline import (
    LearnedPairs,
    SearchConfig,
    affine_context,
    initial_scores,
    prepare,
    sv_pair,
    verify_many,
)
from engine.project import Project
from engine.verify.thorough import ThoroughConfig

FLOORS = (8, 10, 12, 15, 20, 25, 30, 40)
BUDGETS = (30, 60, 120, 300, None)


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def run_query(project, bench, q: int, kind: str, args) -> dict:
    config = SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=args.features, max_tilt=args.max_tilt))
    query = Query(bench.image_path(bench.qimlist[q]), bench.query_region(q))
    t = time.perf_counter()
    ctx = prepare(project, query, config)
    scores = initial_scores(project, ctx.desc, config.query_assign, ctx.exclude)
    order = sorted(scores, key=lambda i: (-scores[i], i))
    fast = verify_many(ctx, order[: config.shortlist], sv_pair, NO_PROGRESS, NEVER)
    sv_s = time.perf_counter() - t
    name = lambda i: _stem(project.image_path(i))  # noqa: E731
    doc = {"query": bench.qimlist[q], "kind": kind, "order": [name(i) for i in order], "sv_s": sv_s,
           "sv": {name(i): int(r.evidence.get("inliers", 0)) for i, r in fast.items()},
           "sv_verified": [name(i) for i, r in fast.items() if r.verified], "learned": {}, "tilted": {}}
    todo = [i for i in order[: args.reach] if not (i in fast and fast[i].verified)]
    if args.tilted == "always" or (args.tilted and not doc["sv_verified"]):  # 'auto': only then
        doc["tilted_mode"] = args.tilted
        t = time.perf_counter()
        actx = affine_context(ctx, config.thorough)
        doc["tilted_query_s"] = time.perf_counter() - t
        doc["tilted_query_features"] = len(actx.features)
        for i in [i for i in order[: config.shortlist] if not (i in fast and fast[i].verified)]:
            t = time.perf_counter()
            r = sv_pair(actx, i)
            doc["tilted"][name(i)] = [int(r.evidence.get("inliers", 0)), time.perf_counter() - t]
    if args.features != "none":
        t = time.perf_counter()
        pairs = LearnedPairs(ctx, config.thorough)
        doc["learned_query_s"] = time.perf_counter() - t
        doc["learned_query_features"] = len(pairs.query)
        for i in todo:
            before, t = pairs.extract_s, time.perf_counter()
            r = pairs.verify(i)
            extract_s = pairs.extract_s - before
            doc["learned"][name(i)] = [int(r.evidence["inliers"]), time.perf_counter() - t - extract_s, extract_s]
    return doc


def thorough_ranking(doc: dict, floor: int, budget: float | None, tilted_floor: int = 8) -> tuple[list[str], float]:
    """The thorough stage's ranking given each pair's measured inliers and seconds: tilted views first
    (when sv verified nothing), then the learned matcher, until `budget` seconds are spent. Returns
    the ranking and the seconds the stage took."""
    sv_ok = sorted(doc["sv_verified"], key=lambda n: (-doc["sv"][n], n))
    spent, found = 0.0, {}
    stop = False
    if doc["tilted"] and (not sv_ok or doc.get("tilted_mode") == "always"):
        spent += doc.get("tilted_query_s", 0.0)
        for n, (inl, s) in doc["tilted"].items():
            if n in sv_ok:  # (runs before the method skipped them too)
                continue
            if budget is not None and spent >= budget:
                stop = True
                break
            spent += s
            if inl >= tilted_floor:
                found[n] = inl
    if doc["learned"] and not stop:  # its query features are extracted before the first pair
        spent += doc.get("learned_query_s", 0.0)
        for n, (inl, match_s, extract_s) in doc["learned"].items():
            if n in found:
                continue
            if budget is not None and spent >= budget:
                break
            spent += match_s + extract_s
            if inl >= floor:
                found[n] = inl
    slow = sorted(found, key=lambda n: (-found[n], n))
    seen = set(sv_ok) | set(slow)
    return sv_ok + slow + [n for n in doc["order"] if n not in seen], spent


def image_ap(bench, q: int, ranking: list[str]) -> float:
    index = {n: k for k, n in enumerate(bench.imlist)}
    pos = set(bench.positives(q, "medium"))
    junk = set(bench.junk(q, "medium"))
    kept = [index[n] for n in ranking if n in index and index[n] not in junk]
    ranks = [k for k, i in enumerate(kept) if i in pos]
    return 100.0 * average_precision(np.asarray(ranks, np.int64), len(pos))


def report(bench, docs: dict[int, dict]) -> None:
    kinds = sorted({d["kind"] for d in docs.values()})
    counts = {k: sum(d["kind"] == k for d in docs.values()) for k in kinds}
    print(f"queries: {len(docs)}; kinds: " + ", ".join(f"{k} ({n})" for k, n in counts.items()))

    def mean_ap(rank_of, kind):
        aps = [image_ap(bench, q, rank_of(d)) for q, d in docs.items() if d["kind"] == kind]
        return statistics.mean(aps) if aps else float("nan")

    header = "| setting | " + " | ".join(kinds) + " | median stage s |"
    print(header)
    print("|" + "---|" * (len(kinds) + 2))
    sv_only = lambda d: thorough_ranking(d, 10 ** 9, 0.0)[0]  # noqa: E731
    print("| sv | " + " | ".join(f"{mean_ap(sv_only, k):.1f}" for k in kinds) + " | 0 |")
    for floor in FLOORS:
        for budget in BUDGETS:
            spent = [thorough_ranking(d, floor, budget)[1] for d in docs.values()]
            row = [f"{mean_ap(lambda d: thorough_ranking(d, floor, budget)[0], k):.1f}" for k in kinds]
            print(f"| floor {floor}, budget {budget if budget is not None else 'none'} | " + " | ".join(row)
                  + f" | {statistics.median(spent):.0f} |")
    match = [v[1] for d in docs.values() for v in d["learned"].values()]
    extract = [v[2] for d in docs.values() for v in d["learned"].values() if v[2] > 0]
    tilted = [v[1] for d in docs.values() for v in d["tilted"].values()]
    if match:
        print(f"learned pairs {len(match)}: match median {statistics.median(match):.2f} s, "
              f"extraction (on demand, uncached) median {statistics.median(extract) if extract else 0:.2f} s "
              f"over {len(extract)} images")
    if tilted:
        query_s = [d["tilted_query_s"] for d in docs.values() if "tilted_query_s" in d]
        print(f"tilted-view pairs {len(tilted)}: median {statistics.median(tilted):.3f} s; query extraction "
              f"median {statistics.median(query_s):.1f} s")
    sv_s = [d["sv_s"] for d in docs.values()]
    print(f"fast search (sv) median {statistics.median(sv_s):.2f} s per query")
    for q, d in sorted(docs.items()):  # the positives' inliers by each verifier, and the best negative's
        pos = {bench.imlist[i] for i in bench.positives(q, "medium")}
        sv = {n[-12:]: d["sv"][n] for n in pos if n in d["sv"]}
        learned = {n[-12:]: v[0] for n, v in d["learned"].items() if n in pos}
        tilted = {n[-12:]: v[0] for n, v in d["tilted"].items() if n in pos}
        negative = max([v[0] for n, v in d["learned"].items() if n not in pos], default=0)
        print(f"  q{q} {d['query'][:32]:32s} {d['kind']:9s} sv {image_ap(bench, q, sv_only(d)):5.1f} "
              f"-> {image_ap(bench, q, thorough_ranking(d, 15, None)[0]):5.1f}; positives' inliers sv {sv} "
              f"learned {learned}" + (f" tilted {tilted}" if d["tilted"] else "")
              + f"; best negative learned {negative}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set")
    ap.add_argument("--project", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kinds", default=None, help="comma-separated query kinds (default: all)")
    ap.add_argument("--features", default="xfeat", choices=("xfeat", "aliked", "none"))
    ap.add_argument("--reach", type=int, default=100)
    ap.add_argument("--tilted", nargs="?", const="auto", choices=("auto", "always"),
                    help="also RootSIFT of tilted query views on the shortlist: when sv verified nothing (auto, "
                         "the method's default) or always")
    ap.add_argument("--max-tilt", type=int, default=ThoroughConfig().max_tilt)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    bench = load_pixbench(args.set)
    meta = json.loads((Path(args.set) / "meta.json").read_text())
    kinds = {m["q"]: m["kind"] for m in meta["queries"]}
    wanted = set(args.kinds.split(",")) if args.kinds else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    queries = [q for q in range(len(bench.qimlist)) if wanted is None or kinds[q] in wanted]
    if args.report:  # runs of a longer reach are cut to this one: every query is judged alike
        docs = {q: json.loads((out / f"{q}.json").read_text()) for q in queries if (out / f"{q}.json").exists()}
        for d in docs.values():
            first = set(d["order"][: args.reach])
            d["learned"] = {n: v for n, v in d["learned"].items() if n in first}
        report(bench, docs)
        return
    project = Project.open(args.project)
    try:
        for q in queries:
            path = out / f"{q}.json"
            if path.exists():
                continue
            t = time.perf_counter()
            doc = run_query(project, bench, q, kinds[q], args)
            path.write_text(json.dumps(doc))
            print(f"q{q} {bench.qimlist[q]} ({kinds[q]}): {len(doc['learned'])} learned, {len(doc['tilted'])} tilted "
                  f"pairs in {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        project.close()


if __name__ == "__main__":
    main()
