"""The thorough method's slow stage, pair by pair: what each candidate costs and what a budget buys.

    python benchmarks/thorough.py SET --project P --out DIR [--kinds planar,image] [--features xfeat]
                                  [--reach 100] [--stages direct,tilted,learned] [--tilted [auto|always]]
                                  [--report]

For each query of SET (a PixBench folder; its meta.json gives the kinds) on the indexed project P:
the fast search (`sv`), then every candidate of the initial ranking's first --reach that sv did not
verify, verified by each stage the method runs (engine.pipeline.thorough_stage): `direct`, the
learned features matched directly (engine.pipeline.LearnedPairs.direct: the database's features
extracted on demand into P's cache, mutual nearest neighbours, sv's check); with --tilted, when sv
verified nothing (as the method's default 'auto') or with --tilted always, `tilted`, RootSIFT of the
query's tilted views (engine.pipeline.affine_context) on the shortlist; `learned`, LightGlue and
MAGSAC++. Each pair's inliers and seconds go to DIR/<q>.json; a run resumes, and adds the stages
asked for to the queries an earlier run recorded.

--report (no pairs run): image AP (medium) per kind for sv and for the thorough ranking (sv's
verified, then the slow stage's, then the rest in the initial order) at each budget and inlier
floor, with and without each stage (the budget a query needs: the pairs' measured seconds in the
order the stage tries them), and the median seconds per pair (extraction, matching).
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
BUDGETS = (30, 60, 90, 120, 300, None)
STAGES = ("direct", "tilted", "learned")  # in the order the method runs them


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def run_query(project, bench, q: int, kind: str, args, doc: dict | None) -> dict:
    """The query's fast search and each of args.stages not in `doc` yet (a run adds stages to an
    earlier run's records)."""
    config = SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=args.features, max_tilt=args.max_tilt))
    query = Query(bench.image_path(bench.qimlist[q]), bench.query_region(q))
    t = time.perf_counter()
    ctx = prepare(project, query, config)
    scores = initial_scores(project, ctx.desc, config.query_assign, ctx.exclude)
    order = sorted(scores, key=lambda i: (-scores[i], i))
    fast = verify_many(ctx, order[: config.shortlist], sv_pair, NO_PROGRESS, NEVER)
    sv_s = time.perf_counter() - t
    name = lambda i: _stem(project.image_path(i))  # noqa: E731
    doc = doc or {"query": bench.qimlist[q], "kind": kind, "order": [name(i) for i in order], "sv_s": sv_s,
                  "sv": {name(i): int(r.evidence.get("inliers", 0)) for i, r in fast.items()},
                  "sv_verified": [name(i) for i, r in fast.items() if r.verified], "learned": {}, "tilted": {}}
    todo = [i for i in order[: args.reach] if not (i in fast and fast[i].verified)]
    if "tilted" in args.stages and args.tilted and doc.get("tilted_mode") != args.tilted:
        doc["tilted_mode"], doc["tilted"] = args.tilted, {}
    if "tilted" in args.stages and doc.get("tilted_mode") and not doc["tilted"] and (
            args.tilted == "always" or not doc["sv_verified"]):
        t = time.perf_counter()
        actx = affine_context(ctx, config.thorough)
        doc["tilted_query_s"] = time.perf_counter() - t
        doc["tilted_query_features"] = len(actx.features)
        for i in [i for i in order[: config.shortlist] if not (i in fast and fast[i].verified)]:
            t = time.perf_counter()
            r = sv_pair(actx, i)
            doc["tilted"][name(i)] = [int(r.evidence.get("inliers", 0)), time.perf_counter() - t]
    if args.features == "none" or not ({"direct", "learned"} & set(args.stages)):
        return doc
    t = time.perf_counter()
    pairs = LearnedPairs(ctx, config.thorough)
    doc.setdefault("learned_query_s", time.perf_counter() - t)  # (the first run's: later ones read the cache)
    doc["learned_query_features"] = len(pairs.query)
    for stage, verify in (("direct", pairs.direct), ("learned", pairs.verify)):
        if stage not in args.stages or _has(doc, stage, args):
            continue
        doc[stage] = {}
        for i in todo:
            before, t = pairs.extract_s, time.perf_counter()
            r = verify(i)
            extract_s = pairs.extract_s - before
            doc[stage][name(i)] = [int(r.evidence["inliers"]), time.perf_counter() - t - extract_s, extract_s]
    return doc


def _has(doc: dict, stage: str, args) -> bool:
    """Whether an earlier run recorded this stage as asked."""
    if stage == "tilted":
        return not args.tilted or doc.get("tilted_mode") == args.tilted
    return args.features == "none" or bool(doc.get(stage)) or (stage == "direct" and stage in doc)


def thorough_ranking(doc: dict, floor: int, budget: float | None, tilted_floor: int = 8, direct_floor: int | None = None,
                     stages: tuple[str, ...] = STAGES, lightglue_first: int = ThoroughConfig().lightglue_first,
                     tilted_mode: str | None = None) -> tuple[list[str], float]:
    """The thorough stage's ranking given each pair's measured inliers and seconds, in the method's
    order (engine.pipeline.thorough_stage): the learned features matched directly, LightGlue's first
    turn (`lightglue_first` pairs), tilted views (always, or when sv verified nothing: `tilted_mode`,
    else as recorded), LightGlue on the rest, until `budget` seconds are spent (a photo's learned
    features are extracted once: the first stage that reaches it pays). Returns the ranking and the
    seconds the stage took. `floor`: the learned looks' inlier floor (the direct one's too unless
    given); `stages`: the stages to replay."""
    sv_ok = sorted(doc["sv_verified"], key=lambda n: (-doc["sv"][n], n))
    spent, found, extracted = 0.0, {}, set()
    learned = list((doc.get("learned") or {}).items())
    steps = [("direct", list((doc.get("direct") or {}).items())), ("learned", learned[:lightglue_first]),
             ("tilted", list(doc["tilted"].items())), ("learned", learned[lightglue_first:])]
    mode = tilted_mode or doc.get("tilted_mode")
    learned_query = False
    for stage, pairs in steps:
        if stage not in stages or not pairs or (stage == "tilted" and sv_ok and mode != "always"):
            continue
        if budget is not None and spent >= budget:
            break
        if stage == "tilted":
            spent += doc.get("tilted_query_s", 0.0)
        elif not learned_query:  # the query's learned features, once for both learned stages
            spent, learned_query = spent + doc.get("learned_query_s", 0.0), True
        least = {"direct": direct_floor or floor, "tilted": tilted_floor, "learned": floor}[stage]
        for n, (inl, s, *extract) in pairs:
            if n in found or n in sv_ok:
                continue
            if budget is not None and spent >= budget:
                break
            spent += s + (extract[0] if extract and n not in extracted else 0.0)
            extracted.add(n)
            if inl >= least:
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
    default = ThoroughConfig()

    def row(label: str, **kw) -> None:
        aps = []
        for k in kinds:
            values = [image_ap(bench, q, thorough_ranking(d, **kw)[0]) for q, d in docs.items() if d["kind"] == k]
            aps.append(f"{statistics.mean(values):.1f}")
        spent = [thorough_ranking(d, **kw)[1] for d in docs.values()]
        print(f"| {label} | " + " | ".join(aps) + f" | {statistics.median(spent):.0f} |")

    print("| setting | " + " | ".join(kinds) + " | median stage s |")
    print("|" + "---|" * (len(kinds) + 2))
    row("sv", floor=10 ** 9, budget=0.0, stages=())
    for budget in BUDGETS:
        row(f"thorough, budget {budget if budget is not None else 'none'}", floor=default.min_inliers, budget=budget)
    at = dict(floor=default.min_inliers, budget=default.budget_s)
    row(f"budget {default.budget_s:g}, direct only", **at, stages=("direct",))
    row(f"budget {default.budget_s:g}, without direct (the method before it)", **at, stages=("tilted", "learned"))
    row(f"budget {default.budget_s:g}, without tilted views", **at, stages=("direct", "learned"))
    row(f"budget {default.budget_s:g}, without LightGlue", **at, stages=("direct", "tilted"))
    for floor in FLOORS:
        row(f"budget {default.budget_s:g}, floor {floor}", floor=floor, budget=default.budget_s)
    for stage in ("direct", "learned"):
        match = [v[1] for d in docs.values() for v in (d.get(stage) or {}).values()]
        extract = [v[2] for d in docs.values() for v in (d.get(stage) or {}).values() if v[2] > 0.05]
        if match:
            print(f"{stage} pairs {len(match)}: match median {statistics.median(match):.3f} s; a photo's features "
                  f"extracted (not read from the cache) in {len(extract)} pairs, median "
                  f"{statistics.median(extract) if extract else 0:.2f} s")
    tilted = [v[1] for d in docs.values() for v in d["tilted"].values()]
    if tilted:
        query_s = [d["tilted_query_s"] for d in docs.values() if "tilted_query_s" in d]
        print(f"tilted-view pairs {len(tilted)}: median {statistics.median(tilted):.3f} s; query extraction "
              f"median {statistics.median(query_s):.1f} s")
    sv_s = [d["sv_s"] for d in docs.values()]
    print(f"fast search (sv) median {statistics.median(sv_s):.2f} s per query")
    for q, d in sorted(docs.items()):  # the positives' inliers by each verifier, and the best negative's
        pos = {bench.imlist[i] for i in bench.positives(q, "medium")}
        seen = {s: {n[-12:]: v[0] for n, v in (d.get(s) or {}).items() if n in pos} for s in STAGES}
        sv = {n[-12:]: d["sv"][n] for n in pos if n in d["sv"]}
        negative = {s: max([v[0] for n, v in (d.get(s) or {}).items() if n not in pos], default=0) for s in STAGES}
        before = image_ap(bench, q, thorough_ranking(d, 10 ** 9, 0.0, stages=())[0])
        after = image_ap(bench, q, thorough_ranking(d, default.min_inliers, default.budget_s)[0])
        print(f"  q{q} {d['query'][:32]:32s} {d['kind']:9s} sv {before:5.1f} -> {after:5.1f}; positives' inliers "
              f"sv {sv} " + " ".join(f"{s} {seen[s]}" for s in STAGES if seen[s])
              + "; best negative " + " ".join(f"{s} {negative[s]}" for s in STAGES if d.get(s)))


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
    ap.add_argument("--stages", default="direct,tilted,learned",
                    help="what to run (comma-separated, of %s); a stage an earlier run recorded is kept" % ",".join(STAGES))
    ap.add_argument("--max-tilt", type=int, default=ThoroughConfig().max_tilt)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    args.stages = args.stages.split(",")
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
            for stage in ("direct", "learned"):
                d[stage] = {n: v for n, v in (d.get(stage) or {}).items() if n in first}
        report(bench, docs)
        return
    project = Project.open(args.project)
    try:
        for q in queries:
            path = out / f"{q}.json"
            doc = json.loads(path.read_text()) if path.exists() else None
            if doc is not None and all(_has(doc, stage, args) for stage in args.stages):
                continue
            t = time.perf_counter()
            doc = run_query(project, bench, q, kinds[q], args, doc)
            path.write_text(json.dumps(doc))
            print(f"q{q} {bench.qimlist[q]} ({kinds[q]}): " + ", ".join(f"{len(doc.get(s) or {})} {s}" for s in STAGES)
                  + f" pairs in {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        project.close()


if __name__ == "__main__":
    main()
