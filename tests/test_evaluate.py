"""Metrics of FORMAT.md on hand-computed cases, and a perfect run on dev scoring 100 everywhere.

The trapezoidal AP of revisitop: the j-th retrieved positive (0-based) at rank r in the ranking
with junk removed adds (j / r + (j + 1) / (r + 1)) / 2 / n_positives (j / r read as 1 when r = 0).
"""
from __future__ import annotations

import json
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.base.errors import FormatError
from engine.base.regions import Region
from engine.evaluate import metrics as ev
from engine.formats.pixbench import load_pixbench

DEV = Path("/work/shared/bench/dev")
W, H = 20, 10   # every image of the tiny bench


def pct(x) -> float:
    return pytest.approx(100 * float(x), abs=1e-9)


# -- average_precision ----------------------------------------------------------------------------


def test_ap_of_positives_at_ranks_0_2_5():
    # (1 + 1)/2, (1/2 + 2/3)/2, (2/5 + 3/6)/2 over 3 positives
    expected = (F(1) + (F(1, 2) + F(2, 3)) / 2 + (F(2, 5) + F(3, 6)) / 2) / 3
    assert expected == F(61, 90)
    assert ev.average_precision([0, 2, 5], 3) == pytest.approx(float(expected), abs=1e-15)
    assert ev.average_precision([5, 0, 2], 3) == pytest.approx(61 / 90)   # order does not matter


def test_ap_with_the_junk_at_rank_1_removed():
    # raw ranks 0, 2, 5 with junk at 1: after removal the positives sit at 0, 1, 4
    expected = (F(1) + F(1) + (F(2, 4) + F(3, 5)) / 2) / 3
    assert expected == F(17, 20)
    assert ev.average_precision([0, 1, 4], 3) == pytest.approx(0.85, abs=1e-15)


def test_ap_counts_positives_not_retrieved_as_zero():
    assert ev.average_precision([0, 1, 4], 4) == pytest.approx(float(F(17, 20) * 3 / 4))
    assert ev.average_precision([], 2) == 0.0
    assert ev.average_precision([1], 1) == pytest.approx(1 / 4)     # (0/1 + 1/2)/2
    assert ev.average_precision([0], 1) == 1.0


@pytest.mark.parametrize("ranks, n", [([0, 0], 2), ([0, 1, 2], 2), ([-1], 1), ([0], 0)])
def test_ap_rejects_impossible_input(ranks, n):
    with pytest.raises(ValueError):
        ev.average_precision(ranks, n)


# -- a tiny bench with known answers ---------------------------------------------------------------
#
# imlist a b c d e f g (indices 0..6), images 20 x 10.
# q0: easy [0, 2], hard [5], junk [1], pixel_gt; labels are 10 x 10 squares (100 pixels).
# q1: easy [4], no pixel_gt.
# q2: hard [6], junk [0], pixel_gt; its label is an L of 75 pixels inside a 10 x 10 box.

SQUARE = [[0, 0], [9, 0], [9, 9], [0, 9]]                     # pixels x 0..9, y 0..9: 100
SEVENTY = [[0, 0], [6, 0], [6, 9], [0, 9]]                    # x 0..6: 70 of them
ELL = [[0, 0], [9, 0], [9, 4], [4, 4], [4, 9], [0, 9]]        # 50 + 25 = 75 pixels


def labelme(points) -> dict:
    return {"imagePath": "x.jpg", "imageWidth": W, "imageHeight": H,
            "shapes": [{"label": "object", "shape_type": "polygon", "points": points}]}


@pytest.fixture
def bench(tmp_path):
    imlist = list("abcdefg")
    gnd = [
        {"bbx": [0, 0, 9, 9], "easy": [0, 2], "hard": [5], "junk": [1], "pixel_gt": True},
        {"bbx": [0, 0, 9, 9], "easy": [4], "hard": [], "junk": [], "pixel_gt": False},
        {"bbx": [0, 0, 9, 9], "easy": [], "hard": [6], "junk": [0], "pixel_gt": True},
    ]
    (tmp_path / "jpg").mkdir()
    for n in imlist + ["q0", "q1", "q2"]:
        Image.new("RGB", (W, H)).save(tmp_path / "jpg" / f"{n}.jpg")
    (tmp_path / "gnd.json").write_text(json.dumps({"imlist": imlist, "qimlist": ["q0", "q1", "q2"], "gnd": gnd}))
    (tmp_path / "queries").mkdir()
    (tmp_path / "labels").mkdir()
    for q in range(3):
        (tmp_path / "queries" / f"{q}.json").write_text(json.dumps(labelme(SQUARE)))
    for q, i, pts in [(0, 0, SQUARE), (0, 2, SQUARE), (0, 5, SQUARE), (2, 6, ELL)]:
        (tmp_path / "labels" / f"{q}_{i}.json").write_text(json.dumps(labelme(pts)))
    return load_pixbench(tmp_path)


def region(points) -> Region:
    return Region.from_polygons([points])


@pytest.fixture
def run():
    ranking = {
        0: list("abcdefg"),   # positives a c f at raw ranks 0 2 5, junk b at 1
        1: list("edcba"),     # its only positive first
        2: list("abg"),       # a is junk for q2: g is second after b
    }
    predicted = {
        (0, "a"): region(SQUARE),     # IoU 1
        (0, "c"): region(SEVENTY),    # IoU 0.7, mask and box alike
        (0, "f"): None,               # failed localization
        (2, "g"): Region.from_bbox(0, 0, 9, 9),   # mask IoU 0.75, box IoU 1
        (0, "b"): region(SQUARE),     # a junk image's region changes nothing
    }
    return ranking, predicted


def test_image_map_medium(bench, run):
    ranking, _ = run
    s = ev.image_map(ranking, bench, "medium")
    q0 = F(17, 20)                     # positives at 0, 1, 4 once b is removed
    q2 = (F(0) + F(1, 2)) / 2          # g at rank 1 once a is removed
    assert s.per_query == (pct(q0), pct(1), pct(q2))
    assert s.value == pct((q0 + 1 + q2) / 3)
    assert s.n_queries == 3


def test_image_map_hard_ignores_easy_positives(bench, run):
    ranking, _ = run
    s = ev.image_map(ranking, bench, "hard")
    # q0: a, b, c are ignored; f is third among d e f g: (0/2 + 1/3)/2. q1 has no hard positive.
    q0 = (F(0) + F(1, 3)) / 2
    assert q0 == F(1, 6)
    assert s.per_query == (pct(q0), None, pct(F(1, 4)))
    assert s.value == pct((q0 + F(1, 4)) / 2)


def test_positives_missing_from_the_ranking_count_as_not_retrieved(bench):
    s = ev.image_map({0: ["a"]}, bench, "medium")
    assert s.per_query[0] == pct(F(1, 3))
    assert s.per_query[1] == 0.0 and s.per_query[2] == 0.0
    # an unknown name is a wrong result, and a repeated name counts once
    s = ev.image_map({0: ["zzz", "a", "a", "c", "f"]}, bench, "medium")
    # a, c, f at ranks 1, 2, 3: (0/1 + 1/2)/2 + (1/2 + 2/3)/2 + (2/3 + 3/4)/2, over 3
    expected = ((F(1, 2)) / 2 + (F(1, 2) + F(2, 3)) / 2 + (F(2, 3) + F(3, 4)) / 2) / 3
    assert s.per_query[0] == pct(expected)


def test_pixel_map_counts_a_localization_up_to_its_iou(bench, run):
    ranking, predicted = run
    s = ev.pixel_map(ranking, predicted, bench, "medium", "mask")
    # q0: t <= 0.70: a and c relevant at ranks 0, 1 of 3 -> 2/3; above: a only -> 1/3; f never.
    q0 = (5 * F(2, 3) + 5 * F(1, 3)) / 10
    # q2: g at rank 1 (1/4) while t <= 0.75 (six thresholds), then 0
    q2 = 6 * F(1, 4) / 10
    assert s.per_query == (pct(q0), None, pct(q2))      # q1 has no pixel_gt
    assert s.value == pct((q0 + q2) / 2)
    per_t = [(F(2, 3) + F(1, 4)) / 2] * 5 + [(F(1, 3) + F(1, 4)) / 2] + [(F(1, 3) + 0) / 2] * 4
    assert s.per_threshold == tuple(pct(v) for v in per_t)
    assert s.n_queries == 2


def test_pixel_map_with_box_iou(bench, run):
    ranking, predicted = run
    s = ev.pixel_map(ranking, predicted, bench, "medium", "box")
    # c's box IoU is 0.7 as well; g's box is the label's box: relevant at every threshold
    q0 = (5 * F(2, 3) + 5 * F(1, 3)) / 10
    assert s.per_query == (pct(q0), None, pct(F(1, 4)))


def test_failed_positive_is_a_wrong_result_not_junk(bench):
    # c fails; f succeeds and sits behind it: it is at rank 2 (after a and c), not rank 1
    ranking = {0: ["a", "c", "f"]}
    pred = {(0, "a"): region(SQUARE), (0, "f"): region(SQUARE)}
    s = ev.pixel_map(ranking, pred, bench, "medium", "mask")
    expected = (F(1) + (F(1, 2) + F(2, 3)) / 2) / 3
    assert s.per_query[0] == pct(expected)


def test_pixel_map_hard(bench, run):
    ranking, predicted = run
    s = ev.pixel_map(ranking, predicted, bench, "hard", "mask")
    assert s.per_query == (0.0, None, pct(6 * F(1, 4) / 10))    # f never localized


def test_miou_scores_a_missing_prediction_zero(bench, run):
    _, pairs = run
    s = ev.miou(pairs, bench, "medium", "mask")
    assert s.per_query == (pct(F(17, 10) / 3), None, pct(F(3, 4)))
    assert s.value == pct((F(17, 30) + F(3, 4)) / 2)
    b = ev.miou(pairs, bench, "medium", "box")
    assert b.per_query == (pct(F(17, 10) / 3), None, pct(1))
    h = ev.miou(pairs, bench, "hard", "mask")
    assert h.per_query == (0.0, None, pct(F(3, 4)))
    assert ev.miou({}, bench, "medium", "mask").value == 0.0


def test_evaluate_reports_every_metric(bench, run):
    ranking, predicted = run
    out = ev.evaluate(ranking, predicted, predicted, bench)
    m = out["medium"]
    assert m["mAP"] == pct((F(17, 20) + 1 + F(1, 4)) / 3)
    assert m["mAP@50:5:95_mask"] == pct((F(1, 2) + F(3, 20)) / 2)
    assert m["mAP@50:5:95_box"] == pct((F(1, 2) + F(1, 4)) / 2)
    assert m["mIoU_mask"] == pct((F(17, 30) + F(3, 4)) / 2)
    assert m["mIoU_box"] == pct((F(17, 30) + 1) / 2)
    assert (m["n_queries"], m["n_pixel_queries"]) == (3, 2)
    h = out["hard"]
    assert h["mAP"] == pct((F(1, 6) + F(1, 4)) / 2)
    assert h["mAP@50:5:95_mask"] == pct(F(3, 20) / 2)
    assert h["mIoU_box"] == pct(F(1, 2))
    assert (h["n_queries"], h["n_pixel_queries"]) == (2, 2)
    assert set(m["per_query"]) == {"AP", "pixAP_mask", "pixAP_box", "IoU_mask", "IoU_box"}
    assert all(len(v) == 3 for v in m["per_query"].values())
    json.dumps(out)   # plain JSON: None, never NaN


def test_unknown_protocol_or_iou(bench, run):
    ranking, predicted = run
    with pytest.raises(ValueError):
        ev.image_map(ranking, bench, "easy")
    with pytest.raises(ValueError):
        ev.pixel_map(ranking, predicted, bench, "medium", "polygon")


# -- the run's files --------------------------------------------------------------------------------


def write_run(out: Path, bench, ranking, predicted) -> None:
    (out / "ranking").mkdir(parents=True)
    (out / "pairs").mkdir()
    for q, names in ranking.items():
        results = [{"image": n, "score": float(len(names) - k),
                    "polygons": predicted[(q, n)].polygons() if predicted.get((q, n)) else []}
                   for k, n in enumerate(names)]
        (out / "ranking" / f"{q}.json").write_text(json.dumps({"query": bench.qimlist[q], "results": results}))
        pairs = {bench.imlist[i]: (predicted[(q, bench.imlist[i])].polygons()
                                   if predicted.get((q, bench.imlist[i])) else [])
                 for i in bench.positives(q, "medium")}
        (out / "pairs" / f"{q}.json").write_text(json.dumps({"query": bench.qimlist[q], "pairs": pairs}))


def test_load_results_reads_back_what_evaluate_needs(tmp_path, bench, run):
    ranking, predicted = run
    write_run(tmp_path / "out", bench, ranking, predicted)
    r, ranked, pairs = ev.load_results(tmp_path / "out", bench)
    assert r == ranking
    assert ranked[(0, "c")] == region(SEVENTY) and ranked[(0, "f")] is None and ranked[(0, "d")] is None
    assert pairs[(0, "a")] == region(SQUARE) and pairs[(0, "f")] is None
    assert ev.evaluate(r, ranked, pairs, bench) == ev.evaluate(ranking, predicted, predicted, bench)


@pytest.mark.parametrize("name, doc, where", [
    ("0.json", {"query": "q0", "results": [{"image": "a", "score": 1, "polygons": [[[0, 0], [1, 0], "x"]]}]},
     "results[0].polygons[0][2]"),
    ("0.json", {"query": "q0", "results": [{"image": "a", "score": 1}, {"image": "a", "score": 0}]},
     "results[1].image"),
    ("0.json", {"query": "q0", "results": [{"image": "zz", "score": 1}]}, "results[0].image"),
    ("0.json", {"query": "q0", "results": [{"image": "a", "score": "high"}]}, "results[0].score"),
    ("0.json", {"query": "q1", "results": []}, "query"),
    ("0.json", {"query": "q0"}, "results"),
    ("x.json", {"query": "q0", "results": []}, ""),
    ("7.json", {"query": "q0", "results": []}, ""),
])
def test_load_results_names_the_bad_field(tmp_path, bench, name, doc, where):
    (tmp_path / "ranking").mkdir()
    (tmp_path / "ranking" / name).write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        ev.load_results(tmp_path, bench)
    assert e.value.where == where and e.value.path.endswith(name)


def test_load_results_errors_in_pairs_and_missing_ranking(tmp_path, bench):
    with pytest.raises(FormatError):
        ev.load_results(tmp_path, bench)
    (tmp_path / "ranking").mkdir()
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "0.json").write_text(json.dumps({"query": "q0", "pairs": {"a": [[[0, 0], [1]]]}}))
    with pytest.raises(FormatError) as e:
        ev.load_results(tmp_path, bench)
    assert e.value.where == 'pairs["a"][0][1]'
    (tmp_path / "pairs" / "0.json").write_text('{"query": "q0",\n "pairs": {')
    with pytest.raises(FormatError) as e:
        ev.load_results(tmp_path, bench)
    assert e.value.where.startswith("line 2")


# -- dev ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")
def test_perfect_run_on_dev_scores_100(tmp_path):
    b = load_pixbench(DEV)
    ranking, predicted = {}, {}
    for q, e in enumerate(b.gnd):
        pos = b.positives(q, "medium")
        ranking[q] = [b.imlist[i] for i in pos] + [n for k, n in enumerate(b.imlist) if k not in set(pos)]
        if e.pixel_gt:
            predicted.update({(q, b.imlist[i]): b.label_region(q, i) for i in pos})
    # through the files, as `pixret bench` writes and reads them
    write_run(tmp_path, b, ranking, predicted)
    out = ev.evaluate(*ev.load_results(tmp_path, b), b)
    for protocol in ("medium", "hard"):
        m = out[protocol]
        for key in ("mAP", "mAP@50:5:95_mask", "mAP@50:5:95_box", "mIoU_mask", "mIoU_box"):
            assert m[key] == pytest.approx(100.0), (protocol, key)
        assert m["n_pixel_queries"] > 0
    assert out["medium"]["n_queries"] == len(b.qimlist)
    # reversed, the same ranking is much worse
    worse = ev.image_map({q: names[::-1] for q, names in ranking.items()}, b, "medium")
    assert worse.value < 20
    assert all(v < 100 for v in worse.per_query if v is not None)
    assert np.isfinite(worse.value)
