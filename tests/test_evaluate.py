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


# -- the official PROxford / revisitop scripts (engine.evaluate.official) ----------------------------
#
# The tiny bench by the scripts' own rules (worked out by hand from evaluation_code/mious.py and mAP@k.py).
# Only q0 and q2 have pixel labels: they are the exported queries 0 and 1.
# Q1: the canvas is as wide as the largest coordinate (9): a 10 x 10 square keeps 81 pixels, SEVENTY 63,
#     ELL 65. q0: a 1 (box and mask), c 63/81 (box and mask), f no prediction (hard: 0).
#     q2: g is the box (0, 0)-(9, 9) over ELL: box 1, mask 65/81.
# mIoU medium: q0 (0 + 1 + 63/81) / 3, q2 1 (box) or 65/81 (mask); hard: q0 0, q2 as medium.
# pixel mAP (box IoU, > t): q0 medium passes a (and c up to t = 0.75): AP 1; q2: g after a (junk) and b: AP 1/4.
#     hard: q0's only positive f never passes: q0 is left out (Q5), so the mean is q2's alone.
# image mAP medium: q0 0.85 (positives at 0, 1, 4 after the junk), q2 0.25; hard: q0 1/6, q2 1/4.


def test_official_numbers_follow_the_scripts_quirks(tmp_path, bench, run):
    from engine.evaluate.official import peer_inputs, proxford_metrics

    ranking, predicted = run
    inputs = peer_inputs(bench, ranking, predicted)
    assert inputs.qimlist == ["q0", "q2"] and inputs.ranks.shape == (7, 2)
    assert inputs.ranks[:, 1].tolist() == [0, 1, 6, 2, 3, 4, 5]       # the run's ranking, then the rest
    got = proxford_metrics(inputs)
    m, h = got["medium"], got["hard"]
    assert m["mIoU_box"] == pytest.approx(100 * ((0 + 1 + 63 / 81) / 3 + 1) / 2)
    assert m["mIoU_mask"] == pytest.approx(100 * ((0 + 1 + 63 / 81) / 3 + 65 / 81) / 2)
    assert h["mIoU_box"] == pytest.approx(100 * (0 + 1) / 2)
    assert h["mIoU_mask"] == pytest.approx(100 * (0 + 65 / 81) / 2)
    assert m["mAP@50:5:95"] == pytest.approx(100 * (1 + 0.25) / 2)
    assert h["mAP@50:5:95"] == pytest.approx(25.0)
    assert m["mAP"] == pytest.approx(100 * (0.85 + 0.25) / 2)
    assert h["mAP"] == pytest.approx(100 * (1 / 6 + 0.25) / 2)
    # PixRet's own definitions on the same run differ where the quirks bite
    ours = ev.evaluate(ranking, predicted, predicted, bench)
    assert ours["hard"]["mAP@50:5:95_box"] != pytest.approx(h["mAP@50:5:95"])


def test_official_quirks_strict_threshold_and_skipped_easy_pairs(tmp_path, bench, run):
    from engine.evaluate.official import peer_inputs, proxford_metrics

    ranking, predicted = run
    # a's prediction is 20 wide: on the 20-wide canvas its box keeps 200 pixels, the label 100: IoU 0.5
    # exactly, which does not pass t = 0.50 (Q3: strictly greater). Then c alone passes up to t = 0.75,
    # after the junk b: AP 1/4; from 0.80 on nothing passes and q0 is left out (Q5). q2 is 1/4 throughout.
    wide = {**predicted, (0, "a"): region([[0, 0], [20, 0], [20, 9], [0, 9]])}
    got = proxford_metrics(peer_inputs(bench, ranking, wide))["medium"]
    assert got["mAP@50:5:95"] == pytest.approx(25.0)
    assert got["mIoU_box"] == pytest.approx(100 * ((0 + 0.5 + 63 / 81) / 3 + 1) / 2)
    # an easy pair without a prediction: skipped by mIoU (Q7) and no positive for pixel mAP (Q8)
    missing = {**predicted, (0, "a"): None}
    got = proxford_metrics(peer_inputs(bench, ranking, missing))["medium"]
    assert got["mIoU_box"] == pytest.approx(100 * ((0 + 63 / 81) / 2 + 1) / 2)
    assert got["mAP@50:5:95"] == pytest.approx(25.0)
    ours = ev.evaluate(ranking, missing, missing, bench)["medium"]
    assert ours["mIoU_box"] == pytest.approx(100 * ((0 + 0.7 + 0) / 3 + 1) / 2)     # FORMAT.md: a missing one is 0


def test_export_proxford_writes_what_the_scripts_load(tmp_path, bench, run, capsys):
    import pickle

    from engine.cli import main

    ranking, predicted = run
    write_run(tmp_path / "run", bench, ranking, predicted)
    out = tmp_path / "official"
    assert main(["export", "--format", "proxford", "--dataset", str(bench.folder), "--results", str(tmp_path / "run"),
                 "--method", "mine", "--out", str(out), "-q"]) == 0
    assert "1 queries without pixel labels are left out" in capsys.readouterr().err
    gnd_folder = out / "pixel_retrieval_benchmarks"
    with open(gnd_folder / "revisitop" / "data" / "roxford5k" / "gnd_roxford5k.pkl", "rb") as f:
        gnd = pickle.load(f)                                            # path_manage.name_list('roxford')
    assert gnd["qimlist"] == ["q0", "q2"] and gnd["imlist"] == list("abcdefg")
    assert gnd["gnd"][1] == {"bbx": [0.0, 0.0, 9.0, 9.0], "easy": [], "hard": [6], "junk": [0]}
    pair2label = np.load(gnd_folder / "oxford_pair2labelpath.npy", allow_pickle=True).item()   # mious.py
    assert pair2label == {"0_0": "labels/0_0.json", "0_2": "labels/0_2.json", "0_5": "labels/0_5.json",
                          "1_6": "labels/1_6.json"}
    assert all(json.loads((gnd_folder / p).read_text())["shapes"] for p in pair2label.values())
    matching = np.load(out / "results" / "pixel-level" / "mine" / "matching_result" / "proxford.npy",
                       allow_pickle=True).item()
    assert set(matching) == {"qimlist_0_imlist_0", "qimlist_0_imlist_2", "qimlist_0_imlist_5", "qimlist_1_imlist_6"}
    assert len(matching["qimlist_0_imlist_5"]) == 0 and len(matching["qimlist_0_imlist_2"]) == 4
    ranks = np.load(out / "results" / "image-level" / "mine" / "roxford.npy")             # mAP@k.py
    assert ranks.shape == (7, 2) and sorted(ranks[:, 0]) == list(range(7))
    # the revisitop layout: configdataset('roxford5k', OUT/datasets) and ranks for compute_map
    assert main(["export", "--format", "revisitop", "--dataset", str(bench.folder), "--results",
                 str(tmp_path / "run"), "--out", str(tmp_path / "rv"), "-q"]) == 0
    with open(tmp_path / "rv" / "datasets" / "roxford5k" / "gnd_roxford5k.pkl", "rb") as f:
        assert len(pickle.load(f)["qimlist"]) == 3
    assert np.load(tmp_path / "rv" / "ranks_roxford5k.npy").shape == (7, 3)
    # `pixret eval --protocol proxford` prints the official numbers beside PixRet's own
    assert main(["eval", str(bench.folder), str(tmp_path / "run"), "--out", str(tmp_path / "rep"), "--protocol",
                 "proxford", "-q"]) == 0
    text = capsys.readouterr().out
    assert "PROxford's official scripts" in text and f"{100 * (1 + 0.25) / 2:.2f}" in text
    doc = json.loads((tmp_path / "rep" / "proxford.json").read_text())
    assert doc["methods"][0]["metrics"]["hard"]["mAP@50:5:95"] == pytest.approx(25.0)
    # a run export without a dataset is a clear error
    assert main(["export", "--format", "proxford", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "--dataset" in capsys.readouterr().err


@pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")
def test_official_numbers_of_a_perfect_run_on_dev(tmp_path):
    """Labels as predictions: every box IoU is 1 after the scripts' truncation, so pixel mAP equals image
    mAP (100); only the 20 pixel-labelled queries count."""
    from engine.evaluate.official import peer_inputs, proxford_metrics

    b = load_pixbench(DEV)
    ranking, predicted = {}, {}
    for q, e in enumerate(b.gnd):
        pos = b.positives(q, "medium")
        ranking[q] = [b.imlist[i] for i in pos]
        if e.pixel_gt:
            predicted.update({(q, b.imlist[i]): b.label_region(q, i) for i in pos})
    inputs = peer_inputs(b, ranking, predicted)
    assert len(inputs.qimlist) == sum(e.pixel_gt for e in b.gnd) == 20
    got = proxford_metrics(inputs)
    for protocol in ("medium", "hard"):
        assert got[protocol]["mAP"] == pytest.approx(100.0)
        assert got[protocol]["mAP@50:5:95"] == pytest.approx(100.0), protocol
    assert got["medium"]["mIoU_box"] == pytest.approx(100.0)
    # one label (12_51) crosses itself: as a region it is repaired, a few of its 45 points move
    assert 99.99 < got["medium"]["mIoU_mask"] <= 100.0
