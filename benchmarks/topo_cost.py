"""Cost (and one-shot localization quality) of topological vs spatial verification, per pair.

    python benchmarks/topo_cost.py [BENCH_DIR] [--repeat 3] [--kinds image,mask] [--limit N]

Pairs: each query of BENCH_DIR/gnd.json (default: ../shared/bench/dev) with each of its easy and
hard positives; the query region from queries/<q>.json. Features as the pipeline makes them
(engine.features.extract.extract on engine.ingest.imageio.load_image; the query described at up to 3x the cap,
as engine.pipeline.query_features does, and restricted to its region). Extraction is not timed.

Timed per pair, best of --repeat, one thread: `sv` = spatial_verify + the warped region (what
engine.pipeline.sv_pair does), `topo` = topo_verify (matching, patches, growth, region). Prints
ms per pair for both and their ratio, overall and per query kind (meta.json), and the one-shot
mIoU (mask) per kind where the set has pixel labels (both trust 5 inliers there, as `pixret bench`
does for pair localization).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # per-pair cost on one core, as each verification thread has

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from engine.base.regions import pair_ious  # noqa: E402
from engine.features.extract import FeatureConfig, extract  # noqa: E402
from engine.formats.pixbench import load_pixbench  # noqa: E402
from engine.ingest.imageio import load_image  # noqa: E402
from engine.pipeline import QUERY_FEATURE_FACTOR  # noqa: E402
from engine.verify.localize import predicted_region  # noqa: E402
from engine.verify.correspond import DenseAppearance, match_ratio  # noqa: E402
from engine.verify.spatial import SVConfig, spatial_verify  # noqa: E402
from engine.verify.topological import TopoConfig, topo_verify  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "bench" / "dev"
PAIR_MIN_INLIERS = 5  # engine.pipeline.SearchConfig.pair_min_inliers


def query_features(image: np.ndarray, region, cfg: FeatureConfig):
    area_frac = min(1.0, region.area / float(image.shape[0] * image.shape[1]))
    factor = min(QUERY_FEATURE_FACTOR, 1.0 / max(area_frac, 1e-6))
    fs = extract(image, replace(cfg, max_features=int(cfg.max_features * factor)))
    return fs.subset(region.contains_points(fs.xy))


def run_sv(q, q_desc, d, d_desc, region, size, sv: SVConfig):
    v = spatial_verify(q, d, match_ratio(q_desc, d_desc, sv.ratio), sv, region.bounds, seeded=False)
    if v.H is None or v.inliers < sv.min_inliers:
        return None
    return predicted_region(region, v.H, d.xy[v.verified_pairs[1]], *size)


def best_ms(fn, repeat: int):
    out, best = None, float("inf")
    for _ in range(repeat):
        cv2.setRNGSeed(12345)  # MAGSAC draws from OpenCV's global RNG: same draws for every repeat
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="?", default=str(DEV))
    ap.add_argument("--repeat", type=int, default=3, help="time each pair this many times, keep the best")
    ap.add_argument("--kinds", default="", help="only queries of these kinds (meta.json), comma-separated")
    ap.add_argument("--limit", type=int, default=0, help="at most this many pairs (0: all)")
    ap.add_argument("--verbose", action="store_true", help="one line per pair")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    bench = load_pixbench(args.bench)
    meta_path = Path(args.bench) / "meta.json"
    kinds = {m["q"]: m["kind"] for m in json.loads(meta_path.read_text())["queries"]} if meta_path.exists() else {}
    wanted = set(filter(None, args.kinds.split(",")))
    cfg = FeatureConfig()
    sv_cfg = SVConfig(min_inliers=PAIR_MIN_INLIERS)
    topo_cfg = TopoConfig(min_inliers=PAIR_MIN_INLIERS)  # as engine.pipeline.topo_pair does for pairs
    db_cache: dict[str, tuple] = {}

    rows = []  # (kind, sv_ms, topo_ms, sv_iou, topo_iou, q)
    for q, qname in enumerate(bench.qimlist):
        kind = kinds.get(q, "?")
        if wanted and kind not in wanted:
            continue
        region = bench.query_region(q)
        qf = query_features(load_image(bench.image_path(qname)), region, cfg)
        q_desc = qf.rootsift()
        for i in bench.positives(q):
            name = bench.imlist[i]
            if name not in db_cache:
                d = extract(load_image(bench.image_path(name)), cfg)
                db_cache[name] = (d, d.rootsift())
            d, d_desc = db_cache[name]
            size = bench.image_size(name)
            sv_region, sv_ms = best_ms(lambda: run_sv(qf, q_desc, d, d_desc, region, size, sv_cfg), args.repeat)
            topo, topo_ms = best_ms(lambda: topo_verify(qf, d, match_ratio(q_desc, d_desc, topo_cfg.ratio), region, size,
                                                        DenseAppearance(q_desc, d_desc, -topo_cfg.guided_sim), topo_cfg),
                                    args.repeat)
            ious = (None, None)
            if bench.gnd[q].pixel_gt:
                label = bench.label_region(q, i)
                ious = (pair_ious(sv_region, label, size[1], size[0])[0],
                        pair_ious(topo.region, label, size[1], size[0])[0])
            rows.append((kind, sv_ms, topo_ms, *ious, q))
            if args.verbose:
                print(f"q{q} {kind} {name}: sv {sv_ms:.1f} ms, topo {topo_ms:.1f} ms ({topo.evidence['model']}, "
                      f"score {topo.score:g})" + (f", IoU sv {ious[0]:.3f} topo {ious[1]:.3f}" if ious[0] is not None
                                                  else ""))
            if args.limit and len(rows) >= args.limit:
                break
        if args.limit and len(rows) >= args.limit:
            break

    def line(label, sel):
        sv_ms = [r[1] for r in sel]
        topo_ms = [r[2] for r in sel]
        text = (f"{label:10s} pairs {len(sel):4d}  sv {statistics.mean(sv_ms):7.1f} ms/pair "
                f"(median {statistics.median(sv_ms):6.1f})  topo {statistics.mean(topo_ms):7.1f} ms/pair "
                f"(median {statistics.median(topo_ms):6.1f})  ratio {sum(topo_ms) / sum(sv_ms):4.2f}")
        per_query: dict[int, list] = {}
        for r in sel:
            if r[3] is not None:
                per_query.setdefault(r[5], []).append(r[3:5])
        if per_query:  # as bench/FORMAT.md: the mean IoU over a query's positives, averaged over queries
            m = np.array([np.mean(v, axis=0) for v in per_query.values()])
            text += f"  mIoU sv {m[:, 0].mean():.3f} topo {m[:, 1].mean():.3f}"
        print(text)

    if not rows:
        print("no pairs")
        return
    for kind in sorted({r[0] for r in rows}):
        line(kind, [r for r in rows if r[0] == kind])
    line("all", rows)


if __name__ == "__main__":
    main()
