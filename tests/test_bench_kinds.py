"""Metrics per query kind (meta.json's kind): in engine.evaluate.metrics, `pixret bench`'s
metrics.json and table, and `pixret eval`'s report, so a gain on one kind is not hidden by another."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import FormatError
from engine.cli import main
from engine.evaluate import metrics as ev
from engine.formats.pixbench import load_pixbench
from tests.test_eval_report import imperfect, write_run

DEV = Path("/work/shared/bench/dev")

needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="dev bench not present")


@needs_dev
def test_each_kind_averages_its_own_queries(tmp_path):
    bench = load_pixbench(DEV)
    meta = json.loads((DEV / "meta.json").read_text())
    kind_of = {e["q"]: e["kind"] for e in meta["queries"]}
    assert sorted(set(kind_of.values())) == ["composite", "image", "mask", "planar"]  # premise: dev mixes kinds
    run = write_run(tmp_path / "run", bench, *imperfect(bench, 3), imperfect(bench, 3)[1])
    scores = ev.evaluate(*ev.load_results(run, bench), bench)
    for protocol, m in scores.items():
        assert list(m["per_kind"]) == list(dict.fromkeys(kind_of[q] for q in range(len(bench.qimlist))))
        for kind, km in m["per_kind"].items():
            qs = [q for q in range(len(bench.qimlist)) if kind_of[q] == kind]
            assert km["n_queries"] == len(qs)
            for key, metric in (("AP", "mAP"), ("pixAP_mask", "mAP@50:5:95_mask"), ("IoU_mask", "mIoU_mask")):
                vals = [m["per_query"][key][q] for q in qs if m["per_query"][key][q] is not None]
                assert km[metric] == (pytest.approx(np.mean(vals)) if vals else None)
    # image-level queries have no pixel labels: their kind has image mAP only
    assert scores["medium"]["per_kind"]["image"]["mAP"] is not None
    assert scores["medium"]["per_kind"]["image"]["mIoU_mask"] is None


@needs_dev
def test_bench_table_and_eval_report_show_the_split(tmp_path, capsys):
    bench = load_pixbench(DEV)
    run = write_run(tmp_path / "run", bench, *imperfect(bench, 4), imperfect(bench, 4)[1], method="noisy")
    assert main(["eval", str(DEV), str(run), "--out", str(tmp_path / "rep"), "-q"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    per_kind = doc["methods"][0]["metrics"]["medium"]["per_kind"]
    for kind, km in per_kind.items():
        row = next(line for line in out.splitlines() if line.strip().startswith(f"{kind} ("))
        assert f"{km['mAP']:.2f}" in row
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "kind (medium)" in page and f"{per_kind['composite']['mIoU_mask']:.2f}" in page


def test_a_set_without_meta_has_no_split_and_a_bad_meta_is_named(tmp_path, small_collection):
    from tests.conftest import write_pixbench

    folder = write_pixbench(small_collection, tmp_path / "set")
    bench = load_pixbench(folder)
    assert bench.kinds() is None
    ranking = {q: [bench.imlist[i] for i in bench.positives(q)] for q in range(len(bench.qimlist))}
    assert "per_kind" not in ev.evaluate(ranking, {}, {}, bench)["medium"]
    (folder / "meta.json").write_text(json.dumps({"queries": [{"q": 0, "kind": "planar"}, {"q": "1"}]}))
    with pytest.raises(FormatError, match=r"meta.json.*queries\[1\]"):
        load_pixbench(folder).kinds()
    (folder / "meta.json").write_text(json.dumps({"queries": [{"q": 0, "kind": "planar"}]}))
    assert load_pixbench(folder).kinds() == ("planar",) + ("?",) * (len(bench.qimlist) - 1)
    shutil.rmtree(folder)
