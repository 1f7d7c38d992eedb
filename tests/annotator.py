"""One annotator as a process of its own (tests/test_team.py, benchmarks/team.py).

It makes --n decisions on the given hits of its searches (taken in turn) through engine.annotate.review, the way the
desktop does: each decision states the one the annotator last saw (`expected`); a DecisionConflict
is answered alternately "keep theirs" (nothing written, their decision is now the one seen) and
"use mine" (written again over theirs, knowingly). Each write is logged as one JSON line before it
starts ("writing") and its outcome the moment set_decision has returned, so a line "saved" means
committed; a process killed between the two leaves "writing" last, a write that may have committed.

    python tests/annotator.py --project P [--db URL] --queries 7[,8,...] --images 3,4,5 --n 200 --author ana
        --seed 1 --log OUT.jsonl [--go FILE]

With --go it logs {"ready": ...} once the project is open and waits for FILE to exist, so several
annotators start deciding at the same moment.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine.annotate.review as review  # noqa: E402
from engine.base.regions import Region  # noqa: E402
from engine.project import Project  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", required=True)
    ap.add_argument("--db", default=None)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--author", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--go", default=None, help="start deciding once this file exists")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    images = [int(i) for i in args.images.split(",")]
    queries = [int(q) for q in args.queries.split(",")]
    project = Project.open(args.project, db_url=args.db)
    regions, seen = {}, {}  # seen: what this annotator sees as each hit's decision
    for q in queries:
        regions.update({(q, h.image_id): h.region for h in review.load_search(project, q).hits})
        seen.update({(q, i): d.id for i, d in review.decisions(project, q).items()})
    out = open(args.log, "a", buffering=1)
    if args.go:
        out.write(json.dumps({"ready": args.author}) + "\n")
        while not Path(args.go).exists():
            time.sleep(0.002)
    answer_mine = False
    latency = []
    for k in range(args.n):
        query, image = queries[k % len(queries)], rng.choice(images)
        kind = rng.choice(("accepted", "corrected", "rejected"))
        base = regions.get((query, image)) or Region.from_bbox(10, 10, 60, 50)
        region = None if kind == "rejected" else (
            base.transform(np.array([[1, 0, rng.randint(1, 9)], [0, 1, rng.randint(1, 9)], [0, 0, 1]], float))
            if kind == "corrected" else base)
        expected = seen.get((query, image), review.NOT_DECIDED)
        while True:
            out.write(json.dumps({"writing": image, "query": query, "kind": kind, "expected": expected}) + "\n")
            t = time.perf_counter()
            try:
                d = review.set_decision(project, query, image, kind, region, author=args.author,
                                        expected=expected)
            except review.DecisionConflict as c:
                latency.append(time.perf_counter() - t)
                answer_mine = not answer_mine
                out.write(json.dumps({"conflict": image, "query": query, "seen": expected, "current": c.current_id,
                                      "message": str(c), "answer": "mine" if answer_mine else "theirs"}) + "\n")
                seen[(query, image)] = expected = c.current_id
                if answer_mine:
                    continue  # decide again, now knowing theirs
                break
            latency.append(time.perf_counter() - t)
            seen[(query, image)] = d.id
            out.write(json.dumps({"saved": d.id, "query": query, "image": image, "kind": d.kind,
                                  "expected": expected}) + "\n")
            break
    out.write(json.dumps({"done": args.n, "retries": project.catalog.retries,
                          "latency": sorted(latency)}) + "\n")
    out.close()
    project.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
