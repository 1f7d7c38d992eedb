"""`pixret eval`: score one or more result folders on a PixBench set and write a comparison report.

Each results folder is in the `pixret bench` contract (ranking/<q>.json, pairs/<q>.json; DESIGN.md),
from pixret or from any other method. Metrics come from engine.evaluate.metrics, the same code `pixret
bench` uses, so the numbers agree with a run's own metrics.json. The report folder holds:

  metrics.json   every method's metrics per protocol, per-query values, per-pair IoUs
  plots/*.png    per-query AP bars (image AP and pixel AP, per protocol), IoU histograms (mask, box)
  report.html    one self-contained page: the tables and the plots (inline base64 PNG)

Plots are drawn with OpenCV (no plotting library in the desktop bundle).
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.base.atomic import atomic_write_bytes, atomic_write_text
from engine.base.errors import FormatError, PixretError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import pair_ious
from engine.evaluate import metrics
from engine.formats.export import publish_modes
from engine.formats.labelme import load_json
from engine.formats.pixbench import PROTOCOLS, load_pixbench

__all__ = ["MethodResult", "evaluate_results", "write_report", "eval_report", "METRIC_KEYS"]

METRIC_KEYS = ("mAP", "mAP@50:5:95_mask", "mAP@50:5:95_box", "mIoU_mask", "mIoU_box")
# colour-blind-safe palette (Okabe-Ito), as BGR for OpenCV and hex for HTML
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


@dataclass
class MethodResult:
    name: str
    folder: Path
    metrics: dict                  # metrics.evaluate(): {protocol: {metric: value, ..., "per_query": {...}}}
    pair_iou: dict                 # {"mask": [...], "box": [...]}: IoU of every (query, positive) pair, medium

    def summary(self) -> dict:
        return {p: {k: v for k, v in m.items() if k != "per_query"} for p, m in self.metrics.items()}


def _method_name(folder: Path) -> str:
    doc_path = folder / "metrics.json"
    if doc_path.is_file():
        try:
            doc = load_json(doc_path)
            if isinstance(doc, dict) and isinstance(doc.get("method"), str) and doc["method"].strip():
                return doc["method"].strip()
        except FormatError:
            pass   # a damaged metrics.json of a run does not matter here: we recompute the metrics
    return folder.resolve().name


def _pair_ious(bench, pair_regions: dict) -> dict:
    """Mask and box IoU of the given-the-pair prediction in every positive (medium) of every pixel_gt query."""
    mask, box = [], []
    for q, entry in enumerate(bench.gnd):
        if not entry.pixel_gt:
            continue
        for i in bench.positives(q, "medium"):
            name = bench.imlist[i]
            pred = pair_regions.get((q, name))
            if pred is None or pred.is_empty:
                m, b = 0.0, 0.0
            else:
                label = bench.label_region(q, i)
                w, h = bench.image_size(name)
                m, b = pair_ious(pred, label, h, w)
            mask.append(m)
            box.append(b)
    return {"mask": mask, "box": box}


def evaluate_results(dataset, results, *, names=None, progress: Progress = NO_PROGRESS,
                     cancel: CancelToken = NEVER) -> tuple[object, list[MethodResult]]:
    """Score each results folder on the PixBench set; returns (bench, [MethodResult])."""
    bench = load_pixbench(dataset)
    results = [Path(r) for r in results]
    if not results:
        raise PixretError("no results folder given")
    if names is not None and len(names) != len(results):
        raise PixretError(f"{len(names)} names for {len(results)} results folders")
    out: list[MethodResult] = []
    used: set[str] = set()
    for k, folder in enumerate(results):
        cancel.raise_if_set()
        progress(k, len(results), f"evaluate {folder.name}")
        if not folder.is_dir():
            raise FormatError(folder, "", "not a results folder (expected ranking/<q>.json and pairs/<q>.json)")
        name = names[k] if names else _method_name(folder)
        base, n = name, 2
        while name in used:
            name, n = f"{base} ({n})", n + 1
        used.add(name)
        ranking, ranked_regions, pair_regions = metrics.load_results(folder, bench)
        scores = metrics.evaluate(ranking, ranked_regions, pair_regions, bench)
        out.append(MethodResult(name, folder, scores, _pair_ious(bench, pair_regions)))
    progress(len(results), len(results), "evaluate")
    return bench, out


# ------------------------------------------------------------------------------------------------
# plots (OpenCV)


def _bgr(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[k:k + 2], 16) for k in (0, 2, 4))
    return (b, g, r)


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img, s: str, org, scale=0.42, color=(40, 40, 40), thickness=1, anchor="left") -> None:
    (w, h), _ = cv2.getTextSize(s, _FONT, scale, thickness)
    x, y = org
    if anchor == "center":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, s, (int(x), int(y)), _FONT, scale, color, thickness, cv2.LINE_AA)


def _axes(width: int, height: int, title: str, ylabel: str, ymax: float, left=56, right=16, top=44, bottom=48):
    img = np.full((height, width, 3), 255, np.uint8)
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    _text(img, title, (width // 2, 24), 0.55, (20, 20, 20), 1, "center")
    for k in range(6):
        v = ymax * k / 5
        y = int(round(y1 - (y1 - y0) * k / 5))
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225) if k else (120, 120, 120), 1)
        _text(img, f"{v:g}", (x0 - 6, y + 4), 0.38, anchor="right")
    cv2.line(img, (x0, y0), (x0, y1), (120, 120, 120), 1)
    # the y label, written vertically: draw it on its side and rotate
    (tw, th), _ = cv2.getTextSize(ylabel, _FONT, 0.4, 1)
    side = np.full((th + 8, tw + 4, 3), 255, np.uint8)
    cv2.putText(side, ylabel, (2, th + 2), _FONT, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
    side = cv2.rotate(side, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ys = max(0, (y0 + y1) // 2 - side.shape[0] // 2)
    img[ys:ys + side.shape[0], 2:2 + side.shape[1]] = side[: max(0, min(side.shape[0], height - ys))]
    return img, (x0, x1, y0, y1)


def _legend(img, names: list[str], colors: list[str], x1: int, y0: int) -> None:
    if len(names) < 2:
        return
    widths = [cv2.getTextSize(n, _FONT, 0.4, 1)[0][0] for n in names]
    w = max(widths) + 30
    x = x1 - w - 4
    cv2.rectangle(img, (x, y0 + 4), (x1 - 4, y0 + 8 + 16 * len(names)), (255, 255, 255), -1)
    cv2.rectangle(img, (x, y0 + 4), (x1 - 4, y0 + 8 + 16 * len(names)), (190, 190, 190), 1)
    for k, (n, c) in enumerate(zip(names, colors)):
        y = y0 + 10 + 16 * k
        cv2.rectangle(img, (x + 6, y), (x + 18, y + 10), _bgr(c), -1)
        _text(img, n, (x + 24, y + 10), 0.4)


def bar_chart(series: dict[str, list], title: str, ylabel: str = "AP (%)", ymax: float = 100.0) -> np.ndarray:
    """Grouped bars: one group per query (x: query index), one bar per method; None values are
    drawn as a small grey tick (the query does not count for this metric)."""
    names = list(series)
    n = max((len(v) for v in series.values()), default=0)
    m = max(len(names), 1)
    bar = max(3, min(14, 600 // max(n * m, 1)))
    group = bar * m + max(4, bar)
    width = max(640, 56 + 16 + n * group + 8)
    img, (x0, x1, y0, y1) = _axes(width, 360, title, ylabel, ymax)
    step = max(1, int(math.ceil(n / max(1, (x1 - x0) // 28))))
    for q in range(n):
        gx = x0 + 6 + q * group
        for k, name in enumerate(names):
            vals = series[name]
            v = vals[q] if q < len(vals) else None
            bx = gx + k * bar
            if v is None:
                cv2.line(img, (bx, y1 - 2), (bx + bar - 2, y1 - 2), (170, 170, 170), 1)
                continue
            top = int(round(y1 - (y1 - y0) * min(max(float(v), 0.0), ymax) / ymax))
            cv2.rectangle(img, (bx, top), (bx + bar - 2, y1), _bgr(_PALETTE[k % len(_PALETTE)]), -1)
        if q % step == 0:
            _text(img, str(q), (gx + (group - bar) // 2, y1 + 16), 0.36, anchor="center")
    _text(img, "query", ((x0 + x1) // 2, y1 + 36), 0.42, anchor="center")
    _legend(img, names, [_PALETTE[k % len(_PALETTE)] for k in range(len(names))], x1, y0)
    return img


def histogram(series: dict[str, list[float]], title: str, bins: int = 10) -> np.ndarray:
    """Side-by-side histograms of IoU values in [0, 1], one colour per method (y: % of pairs)."""
    names = list(series)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = {}
    for name, vals in series.items():
        v = np.clip(np.asarray(vals, dtype=np.float64), 0.0, 1.0)
        c, _ = np.histogram(v, bins=edges)
        counts[name] = 100.0 * c / max(len(v), 1)
    ymax = max([float(c.max()) for c in counts.values() if c.size] + [1.0])
    ymax = float(min(100.0, math.ceil(ymax / 10.0) * 10.0)) or 10.0
    img, (x0, x1, y0, y1) = _axes(max(640, 80 + bins * 20 * max(len(names), 1)), 360, title, "% of pairs", ymax)
    m = max(len(names), 1)
    group = (x1 - x0 - 8) / bins
    bar = max(2.0, (group - 6) / m)
    for b in range(bins):
        gx = x0 + 4 + b * group
        for k, name in enumerate(names):
            v = counts[name][b]
            top = int(round(y1 - (y1 - y0) * min(v, ymax) / ymax))
            bx = int(round(gx + 3 + k * bar))
            cv2.rectangle(img, (bx, top), (int(round(bx + bar - 1)), y1), _bgr(_PALETTE[k % len(_PALETTE)]), -1)
    for b in range(bins + 1):
        _text(img, f"{edges[b]:.1f}", (int(round(x0 + 4 + b * group)), y1 + 16), 0.36, anchor="center")
    _text(img, "IoU", ((x0 + x1) // 2, y1 + 36), 0.42, anchor="center")
    _legend(img, names, [_PALETTE[k % len(_PALETTE)] for k in range(len(names))], x1, y0)
    return img


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise PixretError("PNG encoding failed")
    return buf.tobytes()


# ------------------------------------------------------------------------------------------------
# the report


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_report(bench, methods: list[MethodResult], out_dir, *, dataset=None) -> dict:
    """Write metrics.json, plots/*.png and report.html; returns the metrics document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "dataset": str(dataset or bench.folder),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "qimlist": list(bench.qimlist),
        "methods": [{"name": m.name, "results": str(m.folder), "metrics": m.summary(),
                     "per_query": {p: mm["per_query"] for p, mm in m.metrics.items()},
                     "pair_iou": m.pair_iou} for m in methods],
    }
    atomic_write_text(out / "metrics.json", json.dumps(_json_safe(doc), indent=1))

    plots: list[tuple[str, str, bytes]] = []   # (file, caption, png)
    for protocol in PROTOCOLS:
        plots.append((f"ap_{protocol}.png", f"Image AP per query ({protocol})", _png(bar_chart(
            {m.name: m.metrics[protocol]["per_query"]["AP"] for m in methods}, f"Image AP per query - {protocol}"))))
        plots.append((f"pixap_mask_{protocol}.png", f"Pixel AP@50:5:95 (mask) per query ({protocol})", _png(bar_chart(
            {m.name: m.metrics[protocol]["per_query"]["pixAP_mask"] for m in methods},
            f"Pixel AP@50:5:95 (mask) per query - {protocol}"))))
    for kind in ("mask", "box"):
        plots.append((f"iou_{kind}.png", f"{kind.capitalize()} IoU of one-shot localization, every positive pair",
                      _png(histogram({m.name: m.pair_iou[kind] for m in methods},
                                     f"{kind} IoU of each (query, positive) pair"))))
    for file, _, data in plots:
        atomic_write_bytes(out / "plots" / file, data)
    atomic_write_text(out / "report.html", _html(bench, methods, plots, doc))
    for p in (out / "metrics.json", out / "report.html", out / "plots"):
        publish_modes(p)
    return doc


def _html(bench, methods: list[MethodResult], plots, doc) -> str:
    e = html.escape
    colors = {m.name: _PALETTE[k % len(_PALETTE)] for k, m in enumerate(methods)}
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>PixRet evaluation: {e(Path(doc['dataset']).name)}</title>",
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}"
        "table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}.best{font-weight:700}"
        ".sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}"
        "img{max-width:100%;border:1px solid #ddd;margin:4px 0 16px}h2{margin-top:28px}"
        "small{color:#666}</style></head><body>",
        f"<h1>Evaluation on {e(Path(doc['dataset']).name)}</h1>",
        f"<p><small>{e(doc['dataset'])} &middot; {len(bench.qimlist)} queries, {len(bench.imlist)} database "
        f"images &middot; {e(doc['created'])} &middot; metrics as bench/FORMAT.md defines them "
        "(percent)</small></p>",
        "<h2>Summary</h2>",
    ]
    for protocol in PROTOCOLS:
        parts.append(f"<h3>{e(protocol)}</h3><table><tr><th class='l'>method</th>"
                     + "".join(f"<th>{e(k)}</th>" for k in METRIC_KEYS) + "<th>queries</th><th>pixel queries</th></tr>")
        best = {}
        for k in METRIC_KEYS:
            vals = [m.metrics[protocol][k] for m in methods if m.metrics[protocol][k] is not None]
            best[k] = max(vals) if vals else None
        for m in methods:
            mm = m.metrics[protocol]
            cells = "".join(
                f"<td class='{'best' if len(methods) > 1 and mm[k] is not None and mm[k] == best[k] else ''}'>"
                f"{_fmt(mm[k])}</td>" for k in METRIC_KEYS)
            parts.append(f"<tr><td class='l'><span class='sw' style='background:{colors[m.name]}'></span>"
                         f"{e(m.name)}<br><small>{e(str(m.folder))}</small></td>{cells}"
                         f"<td>{mm['n_queries']}</td><td>{mm['n_pixel_queries']}</td></tr>")
        parts.append("</table>")
        parts.append(_kinds_table(methods, protocol, colors))
    parts.append("<h2>Plots</h2>")
    for file, caption, data in plots:
        parts.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,"
                     f"{base64.b64encode(data).decode('ascii')}'><figcaption><small>{e(caption)} "
                     f"(plots/{e(file)})</small></figcaption></figure>")
    parts.append("<h2>Per query (medium)</h2><table><tr><th>q</th><th class='l'>query</th>")
    for m in methods:
        for k in ("AP", "pixAP mask", "IoU mask"):
            parts.append(f"<th>{e(m.name)}<br>{k}</th>")
    parts.append("</tr>")
    for q, qname in enumerate(bench.qimlist):
        row = [f"<tr><td>{q}</td><td class='l'>{e(qname)}</td>"]
        for m in methods:
            pq = m.metrics["medium"]["per_query"]
            for key in ("AP", "pixAP_mask", "IoU_mask"):
                row.append(f"<td>{_fmt(pq[key][q])}</td>")
        parts.append("".join(row) + "</tr>")
    parts.append("</table><p><small>– : the query does not count for this metric (no positive, or no pixel "
                 "labels).</small></p></body></html>")
    return "\n".join(parts)


def _kinds_table(methods: list[MethodResult], protocol: str, colors: dict) -> str:
    """The summary per query kind (meta.json's kind), one row per kind and method; "" without kinds."""
    kinds = list(dict.fromkeys(k for m in methods for k in m.metrics[protocol].get("per_kind", {})))
    if not kinds:
        return ""
    e = html.escape
    rows = [f"<table><tr><th class='l'>kind ({e(protocol)})</th><th class='l'>method</th>"
            + "".join(f"<th>{e(k)}</th>" for k in METRIC_KEYS) + "<th>queries</th></tr>"]
    for kind in kinds:
        for m in methods:
            km = m.metrics[protocol].get("per_kind", {}).get(kind)
            if km is None:
                continue
            rows.append(f"<tr><td class='l'>{e(kind)}</td><td class='l'><span class='sw' style='background:"
                        f"{colors[m.name]}'></span>{e(m.name)}</td>"
                        + "".join(f"<td>{_fmt(km[k])}</td>" for k in METRIC_KEYS) + f"<td>{km['n_queries']}</td></tr>")
    return "".join(rows) + "</table>"


def eval_report(dataset, results, out_dir, *, names=None, progress: Progress = NO_PROGRESS,
                cancel: CancelToken = NEVER) -> dict:
    """evaluate_results + write_report: the whole of `pixret eval`."""
    bench, methods = evaluate_results(dataset, results, names=names, progress=progress, cancel=cancel)
    cancel.raise_if_set()
    progress(0, 1, "report")
    doc = write_report(bench, methods, out_dir, dataset=dataset)
    progress(1, 1, "report")
    return doc
