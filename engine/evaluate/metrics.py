"""Metrics of a PixBench run, exactly as ../shared/bench/FORMAT.md defines them.

- image mAP: revisitop's trapezoidal AP (`compute_ap`) on the ranking with the junk images removed,
  averaged over the queries with at least one positive.
- pixel mAP@50:5:95: at each threshold t in 0.50, 0.55, ..., 0.95 a retrieved positive is relevant
  only if the IoU of its region in the ranking with its label is >= t; one that fails stays in the
  ranking as a wrong result (it is not junk), and the recall still counts every positive. The ten
  mAPs are averaged; queries with pixel_gt only. Mask IoU (segmentation) and box IoU (detection).
- mIoU: one-shot localization given the pair: for each query with pixel_gt, the mean IoU over its
  positives of the predicted region (no prediction scores 0), averaged over queries.

Where this differs from PROxford's published scripts (which divide by the positives that pass the
threshold and drop queries where none does, and skip easy pairs without a prediction in the
medium mIoU), it follows FORMAT.md: a failed localization always costs.

All means are percentages (0-100). A ranked image not in imlist is a wrong result; an image listed
twice counts once, where first ranked; positives missing from a ranking are not retrieved and add
nothing to AP (as if appended after every retrieved image with zero credit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from engine.base.errors import FormatError
from engine.base.regions import Region, RegionDataError, pair_ious, polygons_from_json
from engine.formats.labelme import load_json
from engine.formats.pixbench import PROTOCOLS, PixBench

__all__ = ["THRESHOLDS", "IOU_KINDS", "Score", "average_precision", "image_map", "pixel_map", "miou",
           "evaluate", "by_kind", "load_results"]

THRESHOLDS = tuple(k / 100 for k in range(50, 100, 5))
IOU_KINDS = ("mask", "box")
# IoUs are ratios of pixel counts; a hair of tolerance keeps 0.7 >= 0.70 true whatever the rounding
_IOU_EPS = 1e-9

Ranking = Mapping[int, Sequence[str]]
Predictions = Mapping[tuple[int, str], "Region | None"]


@dataclass(frozen=True)
class Score:
    """A metric: its mean over the queries that count, and each query's value (None: not counted)."""
    value: float | None
    per_query: tuple[float | None, ...]
    per_threshold: tuple[float | None, ...] = ()   # pixel mAP: the mAP at each of THRESHOLDS

    @property
    def n_queries(self) -> int:
        return sum(v is not None for v in self.per_query)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


# ------------------------------------------------------------------------------------------------
# AP


def average_precision(ranks_of_positives, n_positives: int) -> float:
    """revisitop's `compute_ap`: the trapezoidal area under the precision-recall curve, in [0, 1].

    ranks_of_positives: the 0-based positions of the retrieved positives in the ranking with the junk
    removed; n_positives: all positives of the query, retrieved or not (those not retrieved add 0).
    Between recall j/n and (j+1)/n, reached at rank r, the trapezoid averages the precision before
    the hit, j/r (1 at r = 0), and after it, (j+1)/(r+1).
    """
    ranks = np.sort(np.asarray(ranks_of_positives, dtype=np.float64).reshape(-1))
    if n_positives <= 0:
        raise ValueError("AP is undefined without positives")
    if len(ranks) > n_positives:
        raise ValueError(f"{len(ranks)} ranks for {n_positives} positives")
    if len(ranks) == 0:
        return 0.0
    if ranks[0] < 0 or (np.diff(ranks) <= 0).any():
        raise ValueError("ranks must be distinct non-negative positions")
    j = np.arange(len(ranks), dtype=np.float64)
    before = np.ones_like(ranks)
    np.divide(j, ranks, out=before, where=ranks > 0)
    after = (j + 1.0) / (ranks + 1.0)
    return float(np.sum(before + after) / (2.0 * n_positives))


def _ranked_indices(names: Sequence[str], bench: PixBench) -> np.ndarray:
    """imlist indices in ranked order; the first occurrence of a name wins, unknown names get
    distinct negative ids (wrong results that match nothing)."""
    idx = []
    unknown: dict[str, int] = {}
    for n in dict.fromkeys(names):
        i = bench.index_of(n)
        idx.append(i if i is not None else -1 - unknown.setdefault(n, len(unknown)))
    return np.asarray(idx, dtype=np.int64)


def _without_junk(ranked: np.ndarray, junk: Sequence[int]) -> np.ndarray:
    return ranked[~np.isin(ranked, np.asarray(junk, dtype=np.int64))] if len(junk) else ranked


# ------------------------------------------------------------------------------------------------
# IoUs of predicted regions, computed once per pair


class _PairIoUs:
    """(mask IoU, box IoU) of predicted[(q, name)] against labels/<q>_<i>.json, cached."""

    def __init__(self, predicted: Predictions, bench: PixBench):
        self.predicted = predicted
        self.bench = bench
        self.cache: dict[tuple[int, int], tuple[float, float]] = {}

    def __call__(self, q: int, i: int) -> tuple[float, float]:
        key = (q, i)
        if key not in self.cache:
            name = self.bench.imlist[i]
            region = self.predicted.get((q, name))
            if region is None or region.is_empty:
                self.cache[key] = (0.0, 0.0)
            else:
                label = self.bench.label_region(q, i)   # reads the size too, before any jpg
                w, h = self.bench.image_size(name)
                self.cache[key] = pair_ious(region, label, h, w)
        return self.cache[key]


def _kind(iou: str) -> int:
    if iou not in IOU_KINDS:
        raise ValueError(f"unknown IoU {iou!r}: expected one of {IOU_KINDS}")
    return IOU_KINDS.index(iou)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")


# ------------------------------------------------------------------------------------------------
# metrics


def image_map(ranking: Ranking, bench: PixBench, protocol: str = "medium") -> Score:
    """Image-level mAP (percent) over the queries with at least one positive."""
    _check_protocol(protocol)
    per: list[float | None] = []
    for q in range(len(bench.qimlist)):
        pos = bench.positives(q, protocol)
        if not pos:
            per.append(None)
            continue
        kept = _without_junk(_ranked_indices(ranking.get(q, ()), bench), bench.junk(q, protocol))
        ranks = np.flatnonzero(np.isin(kept, np.asarray(pos, dtype=np.int64)))
        per.append(100.0 * average_precision(ranks, len(pos)))
    return Score(_mean(per), tuple(per))


def pixel_map(ranking: Ranking, predicted: Predictions, bench: PixBench, protocol: str = "medium",
              iou: str = "mask", *, _ious: _PairIoUs | None = None) -> Score:
    """mAP@50:5:95 (percent): predicted[(q, name)] is the region given in q's ranking for that image."""
    _check_protocol(protocol)
    kind = _kind(iou)
    ious = _ious or _PairIoUs(predicted, bench)
    thresholds = np.asarray(THRESHOLDS) - _IOU_EPS
    per: list[float | None] = []
    per_t: list[np.ndarray] = []
    for q, entry in enumerate(bench.gnd):
        pos = np.asarray(bench.positives(q, protocol), dtype=np.int64)
        if not entry.pixel_gt or pos.size == 0:
            per.append(None)
            continue
        kept = _without_junk(_ranked_indices(ranking.get(q, ()), bench), bench.junk(q, protocol))
        at = np.flatnonzero(np.isin(kept, pos))              # where the retrieved positives are
        pair_iou = np.array([ious(q, int(i))[kind] for i in kept[at]], dtype=np.float64)
        # one AP per threshold; a positive below it stays in the ranking as a wrong result
        aps = np.array([average_precision(at[pair_iou >= t], pos.size) for t in thresholds])
        per.append(100.0 * float(aps.mean()))
        per_t.append(100.0 * aps)
    per_threshold = tuple(float(v) for v in np.mean(per_t, axis=0)) if per_t else ()
    return Score(_mean(per), tuple(per), per_threshold)


def miou(pairs: Predictions, bench: PixBench, protocol: str = "medium", iou: str = "mask", *,
         _ious: _PairIoUs | None = None) -> Score:
    """mIoU (percent) of one-shot localization: pairs[(q, name)] is the region predicted in positive
    `name` of query q given the pair; a positive without one scores 0."""
    _check_protocol(protocol)
    kind = _kind(iou)
    ious = _ious or _PairIoUs(pairs, bench)
    per: list[float | None] = []
    for q, entry in enumerate(bench.gnd):
        pos = bench.positives(q, protocol)
        if not entry.pixel_gt or not pos:
            per.append(None)
            continue
        per.append(100.0 * float(np.mean([ious(q, i)[kind] for i in pos])))
    return Score(_mean(per), tuple(per))


def evaluate(ranking: Ranking, ranked_regions: Predictions, pair_regions: Predictions,
             bench: PixBench) -> dict:
    """Every metric of FORMAT.md for both protocols, with per-query values for reports.

    Returns {"medium": {"mAP", "mAP@50:5:95_mask", "mAP@50:5:95_box", "mIoU_mask", "mIoU_box",
    "n_queries", "n_pixel_queries", "per_query": {"AP", "pixAP_mask", "pixAP_box", "IoU_mask",
    "IoU_box"}}, "hard": {...}}; means in percent (None when no query counts), per-query lists in
    qimlist order with None for the queries a metric leaves out.
    """
    ranked_ious = _PairIoUs(ranked_regions, bench)
    given_ious = _PairIoUs(pair_regions, bench)
    out = {}
    for protocol in PROTOCOLS:
        img = image_map(ranking, bench, protocol)
        pix = {k: pixel_map(ranking, ranked_regions, bench, protocol, k, _ious=ranked_ious) for k in IOU_KINDS}
        loc = {k: miou(pair_regions, bench, protocol, k, _ious=given_ious) for k in IOU_KINDS}
        out[protocol] = {
            "mAP": img.value,
            "mAP@50:5:95_mask": pix["mask"].value,
            "mAP@50:5:95_box": pix["box"].value,
            "mIoU_mask": loc["mask"].value,
            "mIoU_box": loc["box"].value,
            "n_queries": img.n_queries,
            "n_pixel_queries": pix["mask"].n_queries,
            "per_query": {
                "AP": list(img.per_query),
                "pixAP_mask": list(pix["mask"].per_query),
                "pixAP_box": list(pix["box"].per_query),
                "IoU_mask": list(loc["mask"].per_query),
                "IoU_box": list(loc["box"].per_query),
            },
        }
        kinds = bench.kinds()
        if kinds:
            out[protocol]["per_kind"] = by_kind(out[protocol]["per_query"], kinds)
    return out


# per-query lists (evaluate's "per_query") -> the summary metric they average into
_PER_QUERY_METRIC = {"AP": "mAP", "pixAP_mask": "mAP@50:5:95_mask", "pixAP_box": "mAP@50:5:95_box",
                     "IoU_mask": "mIoU_mask", "IoU_box": "mIoU_box"}


def by_kind(per_query: dict, kinds: Sequence[str]) -> dict:
    """The summary metrics per query kind (meta.json's kind), in order of first appearance:
    {kind: {"mAP": ..., "mIoU_mask": ..., "n_queries": n}}, each the mean over that kind's queries
    that count for it (as the overall mean is over all of them)."""
    out: dict[str, dict] = {}
    for kind in dict.fromkeys(kinds):
        qs = [q for q, k in enumerate(kinds) if k == kind]
        out[kind] = {metric: _mean(per_query[key][q] for q in qs) for key, metric in _PER_QUERY_METRIC.items()}
        out[kind]["n_queries"] = len(qs)
    return out


# ------------------------------------------------------------------------------------------------
# reading a run's output (the `pixret bench` contract in DESIGN.md)


def _query_file(path: Path, bench: PixBench | None) -> int:
    try:
        q = int(path.stem)
    except ValueError:
        raise FormatError(path, "", "expected a file named <q>.json, q the query's index in qimlist") from None
    if q < 0 or str(q) != path.stem or (bench is not None and q >= len(bench.qimlist)):
        n = "" if bench is None else f" (qimlist has {len(bench.qimlist)} queries)"
        raise FormatError(path, "", f"{path.stem!r} is not a query index{n}")
    return q


def _header(path: Path, d, q: int, key: str, kind: type, bench: PixBench | None):
    if not isinstance(d, dict):
        raise FormatError(path, "", f"not an object with 'query' and '{key}'")
    qname = d.get("query")
    if not isinstance(qname, str):
        raise FormatError(path, "query", "missing or not a string")
    if bench is not None and qname != bench.qimlist[q]:
        raise FormatError(path, "query", f"{qname!r}, but query {q} of qimlist is {bench.qimlist[q]!r}")
    body = d.get(key)
    if not isinstance(body, kind):
        raise FormatError(path, key, f"missing or not a{'n object' if kind is dict else ' list'}")
    return body


def _image_name(path: Path, name, where: str, bench: PixBench | None) -> str:
    if not isinstance(name, str) or not name:
        raise FormatError(path, where, "not a non-empty image name")
    if bench is not None and bench.index_of(name) is None:
        raise FormatError(path, where, f"{name!r} is not in imlist")
    return name


def _region(path: Path, polys, where: str) -> Region | None:
    try:
        rings = polygons_from_json(polys, where)
    except RegionDataError as e:
        raise FormatError(path, e.where, e.problem) from None
    region = Region.from_polygons(rings)
    return None if region.is_empty else region   # `[]`: not localized


def load_results(out_dir, bench: PixBench | None = None) -> tuple[dict, dict, dict]:
    """Read OUT_DIR/ranking/<q>.json and OUT_DIR/pairs/<q>.json -> (ranking, ranked_regions, pair_regions).

    ranking: {q: [db names, best first]}; ranked_regions: {(q, name): Region | None} from the
    ranking's polygons; pair_regions: {(q, name): Region | None} from pairs/ (empty if there is no
    pairs/ folder). With a bench, query and image names are checked against it too.
    FormatError names the file and field at fault.
    """
    out = Path(out_dir)
    rdir = out / "ranking"
    if not rdir.is_dir():
        raise FormatError(rdir, "", "missing: a run writes ranking/<q>.json for every query")
    ranking: dict[int, list[str]] = {}
    ranked_regions: dict[tuple[int, str], Region | None] = {}
    for path in sorted(rdir.glob("*.json")):
        q = _query_file(path, bench)
        results = _header(path, load_json(path), q, "results", list, bench)
        names: list[str] = []
        first: dict[str, int] = {}
        for k, r in enumerate(results):
            where = f"results[{k}]"
            if not isinstance(r, dict):
                raise FormatError(path, where, "not an object with image, score and polygons")
            name = _image_name(path, r.get("image"), f"{where}.image", bench)
            if name in first:
                raise FormatError(path, f"{where}.image", f"{name!r} is already ranked at results[{first[name]}]")
            first[name] = k
            score = r.get("score")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise FormatError(path, f"{where}.score", f"not a finite number: {score!r}")
            ranked_regions[(q, name)] = _region(path, r.get("polygons", []), f"{where}.polygons")
            names.append(name)
        ranking[q] = names

    pair_regions: dict[tuple[int, str], Region | None] = {}
    pdir = out / "pairs"
    if pdir.is_dir():
        for path in sorted(pdir.glob("*.json")):
            q = _query_file(path, bench)
            pairs = _header(path, load_json(path), q, "pairs", dict, bench)
            for name, polys in pairs.items():
                where = f"pairs[{_json_key(name)}]"
                _image_name(path, name, where, bench)
                pair_regions[(q, name)] = _region(path, polys, where)
    return ranking, ranked_regions, pair_regions


def _json_key(name: str) -> str:
    """A dict key as it reads in a field path: pairs["name"]."""
    return '"' + name.replace('"', '\\"') + '"'
