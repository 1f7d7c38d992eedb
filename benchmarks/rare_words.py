"""Would skipping a query's most frequent words (stop words) make the initial search cheaper at no loss?

    python benchmarks/rare_words.py --project P --bench /work/shared/bench/dev

For each of the bench's queries, its aggregated words (as a search makes them) are sorted by how
many photos hold each (document frequency); only its rarest words are kept, up to a share of the
postings all its words would read. Prints, per share, the words kept and the image mAP (medium) of
the initial ASMK* ranking alone (no verification): what the shortlist loses when a query reads less.
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from engine.base.types import Query
    from engine.evaluate.bench import _stem
    from engine.evaluate.metrics import image_map
    from engine.formats.pixbench import load_pixbench
    from engine.pipeline import SearchConfig, prepare, query_words
    from engine.project import Project

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, help="the bench's images indexed (a `pixret bench --project` folder)")
    ap.add_argument("--bench", required=True)
    ap.add_argument("--shares", default="1,0.5,0.3,0.2,0.1,0.05")
    args = ap.parse_args()
    bench = load_pixbench(args.bench)
    with Project.open(args.project) as project:
        index = project.index
        df = index.document_frequency()
        n = len(index.n_words)
        print(f"{n} images, {len(df)} words; a word is in {100 * df.mean() / n:.1f}% of the images on average "
              f"(median {100 * np.median(df) / n:.1f}%, p90 {100 * np.percentile(df, 90) / n:.1f}%)")
        queries = []
        for q, qname in enumerate(bench.qimlist):
            ctx = prepare(project, Query(bench.image_path(qname), bench.query_region(q)))
            queries.append((*query_words(project, ctx.desc, SearchConfig().query_assign), ctx.exclude))
        names = {i: _stem(project.image_path(i)) for i in index.n_words}
        for share in (float(s) for s in args.shares.split(",")):
            ranking, kept = {}, []
            for q, (words, sigs, exclude) in enumerate(queries):
                order = np.argsort(df[words], kind="stable")  # rarest first
                reads = np.cumsum(df[words][order])
                keep = np.sort(order[reads <= share * reads[-1]] if share < 1 else order)
                kept.append(len(keep) / max(len(words), 1))
                scores = index.score(words[keep], sigs[keep], exclude=exclude)
                ranking[q] = [names[i] for i in sorted(scores, key=lambda i: (-scores[i], i))]
            print(f"postings read {100 * share:5.1f}%: words kept {100 * np.mean(kept):5.1f}%, "
                  f"initial image mAP {image_map(ranking, bench).value:.2f}", flush=True)


if __name__ == "__main__":
    main()
