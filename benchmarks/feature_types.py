"""A learned feature type per project: two checks behind BENCHMARKS.md's section on it.

    python benchmarks/feature_types.py float16 --project PROJECT_DIR [--photos 20]
    python benchmarks/feature_types.py magsac-alone BENCH_DIR --out OUT --project PROJECT_DIR

float16: a learned project stores its descriptors as float16. Extracts `--photos` of its photos
again as float32 and prints how often float16 changes a feature's visual word, how many signature
bits it flips, and how many dense ratio-test matches (consecutive photos) it changes.

magsac-alone: `pixret bench --method sv` with sv's one-correspondence similarity hypotheses off
(MAGSAC++ on all word correspondences; the safety net then verifies each of its pairs densely, as
there is no pre-filter): the row that shows whether a learned feature's constant scale and zero
angle still make useful hypotheses.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def float16(args) -> None:
    from engine.features.learned import extract_kind
    from engine.ingest import imageio
    from engine.project import Project
    from engine.verify.correspond import match_ratio

    with Project.open(args.project) as project:
        config = project.feature_config
        ids = project.indexed_images()
        ids = ids[:: max(1, len(ids) // args.photos)][: args.photos]
        quantizer, embedding = project.quantizer, project.embedding
        same = flipped = n = 0
        described = []
        for i in ids:
            d32 = extract_kind(imageio.load_image(project.abs_path(i)), config).desc
            d16 = d32.astype(np.float16).astype(np.float32)
            w32, w16 = quantizer.assign(d32)[:, 0], quantizer.assign(d16)[:, 0]
            same += int((w32 == w16).sum())
            n += len(d32)
            s32 = embedding.signatures(d32, w32, quantizer.centroids)
            s16 = embedding.signatures(d16, w32, quantizer.centroids)
            flipped += int(np.bitwise_count(s32 ^ s16).sum())
            described.append((d32, d16))
    shared = total = 0
    for (a32, a16), (b32, b16) in zip(described, described[1:]):
        m32, m16 = match_ratio(a32, b32, 0.85), match_ratio(a16, b16, 0.85)
        p32, p16 = set(zip(m32.qi.tolist(), m32.di.tolist())), set(zip(m16.qi.tolist(), m16.di.tolist()))
        shared += len(p32 & p16)
        total += max(len(p32), len(p16))
    print(f"{config.kind}: {len(ids)} photos, {n} features; same visual word {same / max(n, 1):.5f}; "
          f"signature bits flipped {flipped / max(n, 1):.4f} of 128 per feature; dense ratio-test matches "
          f"kept {shared} of {total}")


def magsac_alone(argv: list[str]) -> int:
    import engine.pipeline as pipeline
    from engine.cli import main
    from engine.verify import spatial

    pipeline.spatial_verify = lambda *a, **k: spatial.spatial_verify(*a, **{**k, "seeded": False})
    pipeline.safety_net = lambda ctx, image_id, consensus: ctx.dense is True or image_id in ctx.dense
    return main(["bench", *argv, "--method", "sv"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["magsac-alone"]:
        sys.exit(magsac_alone(sys.argv[2:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=("float16",))
    ap.add_argument("--project", required=True)
    ap.add_argument("--photos", type=int, default=20)
    float16(ap.parse_args())
