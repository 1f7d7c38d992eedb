"""The initial ASMK* scoring of a project's single in-RAM inverted file against its sharded one.

    python benchmarks/index_forms.py --single P_OLD --sharded P_NEW --bench /work/shared/bench/dev

P_OLD: a project indexed before the shards (one InvertedFile in index/); P_NEW: a copy of it
upgraded by `pixret index` (the same vocabulary, so the same query words). Each bench query region
is scored by both, interleaved, `--repeats` times: prints how many queries got identical scores
and the CPU time a query (median, mean) of each form.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    from engine.base.types import Query
    from engine.formats.pixbench import load_pixbench
    from engine.pipeline import SearchConfig, prepare, query_words
    from engine.project import Project

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single", required=True)
    ap.add_argument("--sharded", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bench = load_pixbench(args.bench)
    with Project.open(args.single) as a, Project.open(args.sharded) as b:
        print(f"{type(a.index).__name__} against {type(b.index).__name__}")
        queries = []
        for q, qname in enumerate(bench.qimlist):
            ctx = prepare(a, Query(bench.image_path(qname), bench.query_region(q)))
            queries.append(query_words(a, ctx.desc, SearchConfig().query_assign))
        same, cpu = 0, {"single": [], "sharded": []}
        for rep in range(args.repeats):
            for words, sigs in queries:
                scores = []
                for name, project in (("single", a), ("sharded", b)):
                    t = time.process_time()
                    ids, S = project.index.score_many([(words, sigs)])
                    cpu[name].append(time.process_time() - t)
                    scores.append(dict(zip(ids.tolist(), S[0].tolist())))
                same += rep == 0 and scores[0] == scores[1]
        print(f"identical scores: {same} of {len(queries)} queries")
        for name, t in cpu.items():
            print(f"{name}: CPU ms a query, median {1000 * statistics.median(t):.2f}, mean {1000 * np.mean(t):.2f}")


if __name__ == "__main__":
    main()
