"""The peers' protocols: PROxford/PRParis (An et al., ICCV 2023) and revisitop (Radenovic et al.,
CVPR 2018). Their evaluation inputs, written from a PixBench set and a run, and their numbers.

Files. `export_results(dataset, results, out, fmt)` writes what the official scripts read:

proxford   the tree their evaluation_code/ expects next to it (README: "Directory Structure"):
             pixel_retrieval_benchmarks/revisitop/data/<set>/gnd_<set>.pkl   (revisitop's ground truth)
             pixel_retrieval_benchmarks/<short>_pair2labelpath.npy            ({"<q>_<i>": "labels/<q>_<i>.json"})
             pixel_retrieval_benchmarks/labels/<q>_<i>.json                  (the set's labels)
             results/image-level/<method>/r<short>.npy                       (ranks, n_db x n_queries)
             results/pixel-level/<method>/matching_result/pr<short>.npy       ({"qimlist_<q>_imlist_<i>": points})
           <set> is roxford5k or rparis6k (<short> oxford or paris): the scripts know no other name.
           Only queries with pixel labels go in (the scripts need a label for every positive).
revisitop  datasets/<set>/gnd_<set>.pkl (revisitop's configdataset(<set>, OUT/datasets)) and
           ranks_<set>.npy (n_db x n_queries, for its compute_map); every query.

The rank arrays rank the whole database, as the scripts assume: the images a run did not rank
follow its ranking in imlist order. A prediction is one polygon in the scripts: the exterior of
the region's largest part (holes and other parts are not carried; the export says how many).

Numbers. `proxford_metrics` computes what evaluation_code/mious.py and mAP@k.py print for those
files, quirks included (numbered as in BENCHMARKS.md; PixRet's own definitions are FORMAT.md's,
engine.evaluate.metrics):
 Q1 IoUs of integer points: coordinates truncated (astype(int)), both masks drawn on a square
    canvas as wide as the largest coordinate (the last row and column of an object are cut), the
    prediction with cv2.fillPoly, the label shape by shape; box IoU of the points' boxes.
 Q2 pixel mAP ranks by the box IoU (the first of each pair's [box, segmentation] IoUs), not the mask.
 Q3 a positive counts at threshold t when IoU > t (strictly), t = 0.50, 0.55, ..., 0.95.
 Q4 AP's denominator is the positives that pass t, not all positives.
 Q5 a query where none passes is left out of that threshold's mean; a threshold where every
    query is left out divides by zero in the script (reported here as None).
 Q6 it scores the given-the-pair predictions (matching_result), not the ranking's own regions.
 Q7 mIoU: an easy positive without a prediction is skipped (medium), a hard one scores 0; a query
    with nothing left is NaN, and one NaN makes the mean NaN (reported as None).
 Q8 an easy positive without a prediction has no IoU entry, so pixel mAP drops it from the
    positives: it stays in the ranking as a wrong result.
 Q9 queries 56 and 63 (oxford) or 57 and 59 (paris) are skipped in pixel mAP but still divide the mean.
Q10 image mAP: revisitop's compute_map on the full rank arrays (unranked images appended).
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.base.atomic import atomic_write, atomic_write_text
from engine.base.errors import PixretError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import Region
from engine.evaluate.metrics import load_results
from engine.formats import revisitop
from engine.formats.destination import ensure_export_allowed, new_stage, swap_in, write_marker
from engine.formats.export import publish_modes
from engine.formats.labelme import load_json
from engine.formats.pixbench import PixBench, load_pixbench

__all__ = ["PEER_FORMATS", "SETS", "PeerInputs", "peer_inputs", "export_results", "proxford_metrics",
           "prediction_points", "official_report"]

PEER_FORMATS = ("proxford", "revisitop")
SETS = {"roxford5k": "oxford", "rparis6k": "paris"}         # the names the official scripts know
_IGNORED = {"oxford": (56, 63), "paris": (57, 59)}          # Q9
_THRESHOLDS = range(50, 100, 5)


@dataclass
class PeerInputs:
    """What the official scripts read, in memory (the files hold exactly this)."""
    name: str                          # roxford5k | rparis6k
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]                    # {"bbx", "easy", "hard", "junk"} per query, imlist indices
    ranks: np.ndarray                  # (len(imlist), len(qimlist)) int64: column q ranks the database
    matching: dict[str, list] = field(default_factory=dict)     # "qimlist_<q>_imlist_<i>" -> [[x, y], ...]
    labels: dict[str, Path] = field(default_factory=dict)       # "<q>_<i>" -> the set's label file
    kept: list[int] = field(default_factory=list)                # the set's query index of each query
    not_carried: list[str] = field(default_factory=list)


def prediction_points(region: Region | None) -> tuple[list[list[float]], bool]:
    """A prediction as the scripts take it, one polygon: the exterior of the largest part.
    Returns (points, lost) where lost says that holes or other parts were left out."""
    if region is None or region.is_empty:
        return [], False
    parts = region.polygons_with_holes()
    rings = max(parts, key=lambda r: abs(_ring_area(r[0])))
    return [[float(x), float(y)] for x, y in rings[0]], len(parts) > 1 or len(rings) > 1


def _ring_area(ring) -> float:
    a = np.asarray(ring, dtype=np.float64)
    return 0.5 * float(np.sum(a[:, 0] * np.roll(a[:, 1], -1) - np.roll(a[:, 0], -1) * a[:, 1]))


def _full_ranks(bench: PixBench, names) -> np.ndarray:
    """imlist indices: the run's ranking (unknown names and repeats dropped), then the rest in order."""
    seen: dict[int, None] = {}
    for n in names:
        i = bench.index_of(n)
        if i is not None:
            seen.setdefault(i, None)
    rest = [i for i in range(len(bench.imlist)) if i not in seen]
    return np.asarray(list(seen) + rest, dtype=np.int64)


def peer_inputs(bench: PixBench, ranking: dict, pair_regions: dict, *, name: str = "roxford5k",
                pixel_only: bool = True) -> PeerInputs:
    """The official scripts' inputs for a run (ranking, pair_regions as engine.evaluate.metrics
    .load_results reads them). pixel_only: only queries with pixel labels, as PROxford needs."""
    if name not in SETS:
        raise PixretError(f"{name!r}: the official scripts know only {' and '.join(SETS)}")
    kept = [q for q, e in enumerate(bench.gnd) if e.pixel_gt or not pixel_only]
    if not kept:
        raise PixretError(f"{bench.folder}: no query has pixel labels (pixel_gt); PROxford scores none")
    inputs = PeerInputs(name, list(bench.imlist), [bench.qimlist[q] for q in kept], [],
                        np.stack([_full_ranks(bench, ranking.get(q, ())) for q in kept], axis=1), kept=kept)
    lost = 0
    for k, q in enumerate(kept):
        e = bench.gnd[q]
        inputs.gnd.append({"bbx": list(e.bbx), "easy": list(e.easy), "hard": list(e.hard), "junk": list(e.junk)})
        if not pixel_only:
            continue
        for i in list(e.easy) + list(e.hard):
            points, lossy = prediction_points(pair_regions.get((q, bench.imlist[i])))
            inputs.matching[f"qimlist_{k}_imlist_{i}"] = points
            inputs.labels[f"{k}_{i}"] = bench.label_path(q, i)
            lost += lossy
    if pixel_only and len(kept) < len(bench.qimlist):
        inputs.not_carried.append(f"{len(bench.qimlist) - len(kept)} queries without pixel labels are left out "
                                  "(PROxford needs a label for every positive)")
    if lost:
        inputs.not_carried.append(f"{lost} predictions have holes or several parts; the scripts take one polygon, "
                                  "the exterior of the largest part")
    return inputs


# ------------------------------------------------------------------------------------------------
# the files


def _save(path: Path, obj, allow_pickle: bool = False) -> None:
    atomic_write(path, lambda f: np.save(f, obj, allow_pickle=allow_pickle))


def _write_proxford(inputs: PeerInputs, stage: Path, method: str) -> None:
    short = SETS[inputs.name]
    gnd_dir = stage / "pixel_retrieval_benchmarks"
    revisitop.write_gnd_pkl(gnd_dir / "revisitop" / "data" / inputs.name / f"gnd_{inputs.name}.pkl",
                            inputs.imlist, inputs.qimlist, inputs.gnd)
    pair2label = {}
    for key, src in inputs.labels.items():
        rel = f"labels/{key}.json"
        (gnd_dir / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, gnd_dir / rel)
        q, i = key.split("_")
        pair2label[(int(q), int(i))] = rel
    revisitop.write_pair2labelpath(gnd_dir / f"{short}_pair2labelpath.npy", pair2label)
    _save(stage / "results" / "image-level" / method / f"r{short}.npy", inputs.ranks)
    _save(stage / "results" / "pixel-level" / method / "matching_result" / f"pr{short}.npy",
          np.array(inputs.matching, dtype=object), allow_pickle=True)


def _write_revisitop(inputs: PeerInputs, stage: Path, method: str) -> None:
    revisitop.write_gnd_pkl(stage / "datasets" / inputs.name / f"gnd_{inputs.name}.pkl",
                            inputs.imlist, inputs.qimlist, inputs.gnd)
    _save(stage / f"ranks_{inputs.name}.npy", inputs.ranks)


def export_results(dataset, results, out, fmt: str, *, name: str = "roxford5k", method: str | None = None,
                   overwrite: bool = False, progress: Progress = NO_PROGRESS,
                   cancel: CancelToken = NEVER) -> list[str]:
    """Write a run on a PixBench set as the official scripts' inputs (module doc); returns warnings."""
    if fmt not in PEER_FORMATS:
        raise PixretError(f"unknown format {fmt!r}: expected one of {', '.join(PEER_FORMATS)}")
    out = Path(out)
    ensure_export_allowed(None, out, overwrite)
    progress(0, 2, "reading the run")
    bench = load_pixbench(dataset)
    ranking, _, pair_regions = load_results(results, bench)
    inputs = peer_inputs(bench, ranking, pair_regions, name=name, pixel_only=fmt == "proxford")
    method = re.sub(r"[^A-Za-z0-9_.-]+", "_", method or Path(results).resolve().name).strip("._") or "pixret"
    cancel.raise_if_set()
    stage = new_stage(out)
    try:
        (_write_proxford if fmt == "proxford" else _write_revisitop)(inputs, stage, method)
        cancel.raise_if_set()
        write_marker(stage, {"format": fmt, "set": name, "method": method, "dataset": Path(dataset).name,
                             "queries": [bench.qimlist[q] for q in inputs.kept]})
        publish_modes(stage)
        warnings = inputs.not_carried + swap_in(None, stage, out, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    progress(2, 2, "export")
    return warnings


# ------------------------------------------------------------------------------------------------
# the numbers


def _pair_ious(found_points, label_shapes) -> tuple[float, float]:
    """(box IoU, segmentation IoU) as the scripts' compute_iou computes them (Q1)."""
    test = np.array(found_points).astype(int)
    gt_all = np.array([p for shape in label_shapes for p in shape]).astype(int)
    size = max(test[:, 0].max(), test[:, 1].max(), gt_all[:, 0].max(), gt_all[:, 1].max())
    test_box, gt_box = np.zeros((size, size)), np.zeros((size, size))
    test_box[test[:, 1].min():test[:, 1].max() + 1, test[:, 0].min():test[:, 0].max() + 1] = 1.0
    gt_box[gt_all[:, 1].min():gt_all[:, 1].max() + 1, gt_all[:, 0].min():gt_all[:, 0].max() + 1] = 1.0
    test_mask, gt_mask = np.zeros((size, size)), np.zeros((size, size))
    cv2.fillPoly(test_mask, pts=[test[:, :2]], color=(255, 255, 255))
    for shape in label_shapes:
        cv2.fillPoly(gt_mask, pts=[np.array(shape).astype(int)], color=(255, 255, 255))
    test_mask /= 255.0
    gt_mask /= 255.0

    def iou(a, b):
        inter = np.sum(np.logical_and(a, b))
        return inter / (np.sum(b) + np.sum(a) - inter)

    with np.errstate(invalid="ignore", divide="ignore"):
        return float(iou(test_box, gt_box)), float(iou(test_mask, gt_mask))


def _label_shapes(path: Path) -> list:
    return [s["points"] for s in load_json(path)["shapes"]]


def _ap(pos: np.ndarray, n: int) -> float:
    """revisitop's compute_ap on 0-based ranks with junk already taken out, summed in its order
    (so that the numbers agree to the last bit)."""
    ap = 0.0
    recall_step = 1.0 / n
    for j in range(len(pos)):
        rank = pos[j]
        before = 1.0 if rank == 0 else float(j) / rank
        ap += (before + float(j + 1) / (rank + 1)) * recall_step / 2.0
    return float(ap)


def _ranked(ranks_q: np.ndarray, ok, junk) -> np.ndarray:
    pos = np.flatnonzero(np.isin(ranks_q, np.asarray(ok)))
    junk_at = np.flatnonzero(np.isin(ranks_q, np.asarray(junk)))
    return pos - np.searchsorted(junk_at, pos)         # junk ranked before each positive is taken out


def _protocol(e: dict, protocol: str) -> tuple[list, list]:
    if protocol == "medium":
        return list(e["easy"]) + list(e["hard"]), list(e["junk"])
    return list(e["hard"]), list(e["junk"]) + list(e["easy"])


def proxford_metrics(inputs: PeerInputs) -> dict:
    """What mious.py and mAP@k.py print, in percent: {"medium" | "hard": {"mAP", "mAP@50:5:95",
    "mIoU_box", "mIoU_mask", "per_query": {"mIoU_box", "mIoU_mask"}}}; None where the scripts divide
    by zero or average a NaN (Q5, Q7); per_query as mious.py prints it (fractions; None for NaN)."""
    ious: dict[str, tuple[float, float]] = {}        # the scripts' IOU_dict: hard pairs always, easy when predicted
    miou = {("medium", k): [] for k in ("box", "mask")} | {("hard", k): [] for k in ("box", "mask")}
    for q, e in enumerate(inputs.gnd):
        per = {key: [] for key in miou}
        for difficulty in ("hard", "easy"):
            for i in e[difficulty]:
                points = inputs.matching.get(f"qimlist_{q}_imlist_{i}", [])
                if len(points) == 0:
                    if difficulty == "easy":
                        continue                                  # Q7, Q8
                    box = seg = 0.0
                else:
                    box, seg = _pair_ious(points, _label_shapes(inputs.labels[f"{q}_{i}"]))
                ious[f"{q}_{i}"] = (box, seg)
                for protocol in (("medium", "hard") if difficulty == "hard" else ("medium",)):
                    per[(protocol, "box")].append(box)
                    per[(protocol, "mask")].append(seg)
        for key, values in per.items():
            miou[key].append(float(np.mean(values)) if values else math.nan)
    out = {}
    for protocol in ("medium", "hard"):
        aps, pixel_maps = [], []
        for q, e in enumerate(inputs.gnd):
            ok, junk = _protocol(e, protocol)
            if ok:
                aps.append(_ap(_ranked(inputs.ranks[:, q], ok, junk), len(ok)))
        for t in _THRESHOLDS:
            total, counted = 0.0, 0
            for q, e in enumerate(inputs.gnd):
                counted += 1
                if q in _IGNORED[SETS[inputs.name]]:
                    continue                                                   # Q9
                ok, junk = _protocol(e, protocol)
                passing = [i for i in ok if f"{q}_{i}" in ious and ious[f"{q}_{i}"][0] > t / 100]   # Q2, Q3, Q8
                if not passing:
                    counted -= 1                                               # Q5
                    continue
                total += _ap(_ranked(inputs.ranks[:, q], passing, junk), len(passing))   # Q4
            pixel_maps.append(total / counted if counted else None)
        out[protocol] = {
            "mAP": 100.0 * (sum(aps) / len(aps)) if aps else None,
            "mAP@50:5:95": (100.0 * float(np.mean(pixel_maps))
                            if pixel_maps and all(v is not None for v in pixel_maps) else None),
            "mIoU_box": _nan_mean(miou[(protocol, "box")]),
            "mIoU_mask": _nan_mean(miou[(protocol, "mask")]),
            "per_query": {k: [None if math.isnan(v) else v for v in miou[(protocol, kind)]]
                          for k, kind in (("mIoU_box", "box"), ("mIoU_mask", "mask"))},
        }
    return out


def _nan_mean(values: list[float]) -> float | None:
    v = float(np.mean(values)) if values else math.nan
    return None if math.isnan(v) else 100.0 * v


def official_report(dataset, results, out_dir, *, names=None, name: str = "roxford5k") -> dict:
    """The official numbers of each run (names: one per run, as `pixret eval` calls them), written to
    OUT_DIR/proxford.json; returns that document."""
    bench = load_pixbench(dataset)
    doc = {"protocol": "proxford", "set": name, "dataset": str(dataset), "methods": [],
           "definitions": "PROxford's evaluation_code/mious.py and mAP@k.py; quirks Q1-Q10 in "
                          "engine/evaluate/official.py; percent; null where the scripts give NaN or divide by 0"}
    for k, folder in enumerate(results):
        ranking, _, pair_regions = load_results(folder, bench)
        inputs = peer_inputs(bench, ranking, pair_regions, name=name)
        doc["n_queries"] = len(inputs.qimlist)
        doc["methods"].append({"name": names[k] if names else Path(folder).name, "folder": str(folder),
                               "metrics": proxford_metrics(inputs)})
    atomic_write_text(Path(out_dir) / "proxford.json", json.dumps(doc, indent=1))
    return doc
