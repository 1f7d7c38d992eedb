"""`pixret eval`: the report's numbers are engine.evaluate.metrics's (as `pixret bench` computes them), for
any results folder in the contract format; tables, plots and one self-contained HTML page."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.base.errors import FormatError
from engine.cli import main
from engine.evaluate import metrics as ev
from engine.evaluate.report import METRIC_KEYS, bar_chart, eval_report, histogram
from engine.formats.pixbench import load_pixbench
from tests.conftest import DEV

needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")


def write_run(out: Path, bench, ranking: dict, ranked: dict, pairs: dict, method: str | None = None) -> Path:
    """A results folder in the `pixret bench` contract (ranking/<q>.json, pairs/<q>.json)."""
    (out / "ranking").mkdir(parents=True)
    (out / "pairs").mkdir()
    for q, names in ranking.items():
        results = [{"image": n, "score": float(len(names) - k),
                    "polygons": ranked[(q, n)].polygons() if ranked.get((q, n)) is not None else []}
                   for k, n in enumerate(names)]
        (out / "ranking" / f"{q}.json").write_text(json.dumps({"query": bench.qimlist[q], "results": results}))
        p = {bench.imlist[i]: (pairs[(q, bench.imlist[i])].polygons() if pairs.get((q, bench.imlist[i])) else [])
             for i in bench.positives(q, "medium")}
        (out / "pairs" / f"{q}.json").write_text(json.dumps({"query": bench.qimlist[q], "pairs": p}))
    if method:
        (out / "metrics.json").write_text(json.dumps({"method": method, "metrics": {}}))
    return out


def perfect(bench):
    ranking, regions = {}, {}
    for q, e in enumerate(bench.gnd):
        pos = bench.positives(q, "medium")
        ranking[q] = [bench.imlist[i] for i in pos] + [n for k, n in enumerate(bench.imlist) if k not in set(pos)]
        if e.pixel_gt:
            regions.update({(q, bench.imlist[i]): bench.label_region(q, i) for i in pos})
    return ranking, regions


def imperfect(bench, seed=0):
    """Shuffled rankings, shifted or missing regions: every metric somewhere between 0 and 100."""
    rng = np.random.default_rng(seed)
    ranking, regions = perfect(bench)
    for q in ranking:
        names = ranking[q]
        k = min(len(names), 12)
        head = list(rng.permutation(names[:k]))
        ranking[q] = head + names[k:]
    out = {}
    for key, region in regions.items():
        r = rng.random()
        if r < 0.2:
            continue                                        # not localized
        shift = 0.0 if r < 0.5 else float(rng.uniform(2, 40))
        out[key] = region.transform(np.array([[1, 0, shift], [0, 1, shift / 2], [0, 0, 1]]))
    return ranking, out


def strip(m: dict) -> dict:
    return {p: {k: v for k, v in mm.items() if k != "per_query"} for p, mm in m.items()}


@needs_dev
def test_eval_agrees_with_engine_evaluate_on_dev(tmp_path):
    bench = load_pixbench(DEV)
    runs = {"perfect": perfect(bench), "noisy": imperfect(bench)}
    folders = [write_run(tmp_path / name, bench, r, reg, reg) for name, (r, reg) in runs.items()]
    doc = eval_report(DEV, folders, tmp_path / "report")
    assert [m["name"] for m in doc["methods"]] == ["perfect", "noisy"]
    for m, folder in zip(doc["methods"], folders):
        direct = ev.evaluate(*ev.load_results(folder, bench), bench)
        assert m["metrics"] == strip(direct)               # the same numbers, exactly
        assert m["per_query"] == {p: mm["per_query"] for p, mm in direct.items()}
    perfect_m = doc["methods"][0]["metrics"]
    for protocol in ("medium", "hard"):
        for key in METRIC_KEYS:
            assert perfect_m[protocol][key] == pytest.approx(100.0)
    noisy = doc["methods"][1]["metrics"]["medium"]
    assert all(0 < noisy[k] < 100 for k in METRIC_KEYS)
    # the file on disk is the same document
    on_disk = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert on_disk["methods"][1]["metrics"] == doc["methods"][1]["metrics"]
    # the per-pair IoUs behind the histograms average to the per-query mIoU
    ious = iter(doc["methods"][1]["pair_iou"]["mask"])
    per_query = doc["methods"][1]["per_query"]["medium"]["IoU_mask"]
    for q, e in enumerate(bench.gnd):
        if e.pixel_gt and bench.positives(q):
            got = [next(ious) for _ in bench.positives(q)]
            assert 100.0 * np.mean(got) == pytest.approx(per_query[q])
    assert next(ious, None) is None


@needs_dev
def test_report_page_is_self_contained_with_tables_and_plots(tmp_path):
    bench = load_pixbench(DEV)
    a = write_run(tmp_path / "a", bench, *perfect(bench), perfect(bench)[1], method="sv")
    b = write_run(tmp_path / "b", bench, *imperfect(bench, 1), imperfect(bench, 1)[1], method="sv")
    doc = eval_report(DEV, [a, b], tmp_path / "rep")
    assert [m["name"] for m in doc["methods"]] == ["sv", "sv (2)"]   # names from each run's metrics.json
    page = (tmp_path / "rep" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:)""", page)  # nothing outside the page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 6
    for data in images:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] == 360 and img.shape[1] >= 640
    for name in ("ap_medium", "ap_hard", "pixap_mask_medium", "pixap_mask_hard", "iou_mask", "iou_box"):
        assert cv2.imread(str(tmp_path / "rep" / "plots" / f"{name}.png")) is not None
    for m in doc["methods"]:
        for protocol in ("medium", "hard"):
            assert f"{m['metrics'][protocol]['mAP']:.2f}" in page
    assert bench.qimlist[5] in page and "sv (2)" in page


def test_plots_draw_bars_and_histograms_in_method_colours():
    img = bar_chart({"a": [100.0, None, 50.0], "b": [25.0, 0.0, None]}, "t")
    assert img.dtype == np.uint8 and img.shape == (360, 640, 3)
    blue, orange = (178, 114, 0), (0, 159, 230)     # the palette's first two colours, BGR
    assert (img == blue).all(axis=2).sum() > 100 and (img == orange).all(axis=2).sum() > 50
    h = histogram({"a": [0.0, 0.95, 0.97, 1.0]}, "t")
    assert (h == blue).all(axis=2).sum() > 100


@needs_dev
def test_cli_eval_writes_the_report_and_names_bad_files(tmp_path, capsys):
    bench = load_pixbench(DEV)
    run = write_run(tmp_path / "run", bench, *perfect(bench), perfect(bench)[1])
    assert main(["eval", str(DEV), str(run), "--out", str(tmp_path / "rep"), "--name", "oracle", "-q"]) == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "100.00" in out and (tmp_path / "rep" / "report.html").is_file()
    (run / "ranking" / "3.json").write_text('{"query": "x", "results": [')
    assert main(["eval", str(DEV), str(run), "--out", str(tmp_path / "rep2"), "-q"]) == 2
    assert "3.json" in capsys.readouterr().err
    with pytest.raises(FormatError, match="not a results folder"):
        eval_report(DEV, [tmp_path / "nowhere"], tmp_path / "rep3")

