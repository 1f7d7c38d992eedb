"""The graph's pairwise verification: word correspondences against the dense reference, per pair.

    python benchmarks/graph_pairs.py --project PROJECT_DIR [--images 60] [--verify-k 8]

Picks `--images` indexed images evenly spaced over the collection, finds each one's `--verify-k`
nearest images by the graph's own ASMK rows (engine.propagate.graph.AsmkRows: the pairs
`build_graph` verifies), and verifies every pair both ways, interleaved, in one thread:
`verify_pair` (the stored words and signatures of both images, what the graph uses) and
`dense_verify_pair` (ratio-test matches of the full descriptors: PixRet 0.1's graph). Prints the
median and mean time per pair (wall clock and this process's CPU time), the pairs each verifies,
their agreement, and the inliers of the pairs both verify.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from engine.project import Project
from engine.propagate.graph import AsmkRows, GraphConfig, dense_verify_pair, verify_pair
from engine.verify.spatial import SVConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--verify-k", type=int, default=GraphConfig().verify_k)
    args = ap.parse_args()

    project = Project.open(args.project)
    if project.needs_upgrade():
        raise SystemExit(f"{args.project}: made by PixRet 0.1, run `pixret index` on it first (upgrades its store)")
    index = project.index
    entries = index.entries()
    nodes = np.array(sorted(entries), np.int64)
    scorer = AsmkRows(index, nodes)
    picks = nodes[np.linspace(0, len(nodes) - 1, min(args.images, len(nodes))).round().astype(int)]
    pairs = set()
    for a in picks.tolist():
        s = scorer.scores(*entries[a])
        s[np.searchsorted(nodes, a)] = 0.0
        for b in nodes[np.lexsort((nodes, -s))[:args.verify_k]].tolist():
            pairs.add((min(a, b), max(a, b)))
    pairs = sorted(pairs)
    k, sv, max_corr = project.quantizer.k, SVConfig(), GraphConfig().max_corr
    kind = project.feature_config.kind
    print(f"{len(nodes)} images, {len(pairs)} pairs ({len(picks)} images x {args.verify_k} nearest)")

    times = {"words": ([], []), "dense": ([], [])}
    inliers = {"words": [], "dense": []}
    for a, b in pairs:
        for name in ("words", "dense"):
            c, t = time.process_time(), time.perf_counter()
            if name == "words":
                n = verify_pair(project.stored(a), project.stored(b), sv, max_corr, k)[0]
            else:
                n = dense_verify_pair(project.features(a), project.features(b), sv, max_corr, kind)[0]
            times[name][0].append(time.perf_counter() - t)
            times[name][1].append(time.process_time() - c)
            inliers[name].append(n)
    for name, (wall, cpu) in times.items():
        print(f"{name:6s} per pair: wall median {statistics.median(wall) * 1000:.2f} ms mean "
              f"{statistics.mean(wall) * 1000:.2f} ms | CPU median {statistics.median(cpu) * 1000:.2f} ms mean "
              f"{statistics.mean(cpu) * 1000:.2f} ms | verified {sum(n > 0 for n in inliers[name])}")
    w, d = (np.array(inliers[n]) > 0 for n in ("words", "dense"))
    both = w & d
    ratio = np.median(np.array(inliers["words"])[both] / np.array(inliers["dense"])[both]) if both.any() else float("nan")
    print(f"agreement {np.mean(w == d):.3f}; verified by both {both.sum()}, words only {(w & ~d).sum()}, dense only "
          f"{(d & ~w).sum()}; inliers words/dense (median over both) {ratio:.2f}")
    tw, td = (statistics.mean(times[n][0]) for n in ("words", "dense"))
    cw, cd = (statistics.mean(times[n][1]) for n in ("words", "dense"))
    print(f"speed-up of words over dense (mean per pair): x{td / tw:.1f} wall, x{cd / cw:.1f} CPU")
    project.close()


if __name__ == "__main__":
    main()
