"""A dev3d-like hold-out set (issue 14) with a DIFFERENT query photo per object: the middle one of
its capture order (make_objects3d.py always takes the first). Positives: every other photo of the
object, the nearer half (by distance in capture order to the query) easy, the rest hard. dev3d's
objects (its meta.json origins), 80 other real distractors; reuses the bench tools' LabelMe writer
and polygons. The segment stage was never tuned on it.

    python benchmarks/make_holdout3d.py --like ../shared/bench/dev3d --src ../shared/bench/raw3d \
        --out /tmp/dev3d_mid --distractors ../shared/bench/raw --n-distractors 80 --seed 11
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import cv2



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--like", required=True, type=Path, help="dev3d: its meta.json's origins are the objects")
    ap.add_argument("--src", required=True, type=Path, help="raw3d: a folder per object, photo.jpg + photo.png mask")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--distractors", type=Path)
    ap.add_argument("--n-distractors", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tools", type=Path, default=None, help="the bench tools (default: beside --like)")
    a = ap.parse_args()
    sys.path.insert(0, str(a.tools or a.like.parent / "tools"))
    from make_objects3d import bbox, labelme
    from make_pixbench import mask_to_polygons

    out = a.out
    if out.exists():
        shutil.rmtree(out)
    for d in ("jpg", "queries", "labels"):
        (out / d).mkdir(parents=True)
    objects = [e["origin"] for e in json.loads((a.like / "meta.json").read_text())["queries"]]
    per_obj, imlist, qimlist, meta_q = [], [], [], []
    for obj in objects:
        folder = a.src / obj
        stems = sorted(p.stem for p in folder.glob("*.jpg"))
        tag = obj.replace("/", "__")
        items = []
        for s in stems:
            img = cv2.imread(str(folder / f"{s}.jpg"), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(folder / f"{s}.png"), cv2.IMREAD_GRAYSCALE)
            polys = mask_to_polygons(mask)
            name = f"{tag}__{s}"
            shutil.copyfile(folder / f"{s}.jpg", out / "jpg" / f"{name}.jpg")
            items.append((name, img.shape[1], img.shape[0], polys))
        k = len(items) // 2
        q = items[k]
        rest = sorted((it for j, it in enumerate(items) if j != k),
                      key=lambda it: (abs(items.index(it) - k), items.index(it)))
        n_easy = max(1, len(rest) // 2)
        per_obj.append((q, rest[:n_easy], rest[n_easy:]))
    for q, easy, hard in per_obj:
        imlist += [it[0] for it in easy + hard]
    if a.distractors and a.n_distractors > 0:
        man = json.loads((a.distractors / "manifest.json").read_text())["images"]
        for e in random.Random(a.seed).sample(man, min(a.n_distractors, len(man))):
            name = "dis3d__" + e["path"].rsplit(".", 1)[0].replace("/", "__")
            img = cv2.imread(str(a.distractors / e["path"]), cv2.IMREAD_COLOR)
            if img is None:
                continue
            cv2.imwrite(str(out / "jpg" / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            imlist.append(name)
    index = {n: i for i, n in enumerate(imlist)}
    gnd = []
    for qi, (q, easy, hard) in enumerate(per_obj):
        name, w, h, polys = q
        qimlist.append(name)
        (out / "queries" / f"{qi}.json").write_text(json.dumps(labelme(name, w, h, polys)))
        for it in easy + hard:
            (out / "labels" / f"{qi}_{index[it[0]]}.json").write_text(json.dumps(labelme(*it)))
        gnd.append({"bbx": bbox(polys), "easy": [index[it[0]] for it in easy],
                    "hard": [index[it[0]] for it in hard], "junk": [], "pixel_gt": True})
        meta_q.append({"q": qi, "name": name, "kind": "mask3d", "origin": objects[qi]})
    (out / "gnd.json").write_text(json.dumps({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}))
    (out / "meta.json").write_text(json.dumps({"recipe": out.name, "seed": a.seed, "generator": "make_holdout3d.py",
                                               "queries": meta_q}, indent=1))
    (out / "SOURCES.md").write_text("Hold-out variant of dev3d (middle photo as query); sources: bench raw3d/SOURCES.md\n")
    print(f"{out}: {len(qimlist)} queries, {len(imlist)} database images")


if __name__ == "__main__":
    main()
