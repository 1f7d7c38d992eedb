"""Kill PixRet at random points, many times, and count what survives (a measurement, not a test).

Three kinds of work are killed with SIGKILL after a random delay, counted from the work's first
progress report and uniform over the time the work takes when left alone: `pixret index` on a
generated collection (the same project again and again, so each run resumes the last one's work;
a fresh project once a run gets to the end), the review loop (decisions through the engine's
review API, as the desktop app makes them), and `pixret export`. After every kill: the project
must open, SQLite's integrity check must pass, every image the catalog calls indexed must have
its features whole, no image indexed before a kill may be lost by it, every decision reported
saved must be in the catalog, and an export folder must be whole or absent. tests/faults.py has
the harness; tests/test_faults.py the quick fixed cases.

    python benchmarks/kill_campaign.py [--index-kills 20] [--decision-kills 20] [--export-kills 10] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.annotate import review  # noqa: E402
from engine.base.regions import Region  # noqa: E402
from engine.base.types import Query  # noqa: E402
from engine.demo import make_collection  # noqa: E402
from engine.formats.export import export_project  # noqa: E402
from engine.pipeline import search  # noqa: E402
from engine.project import Project  # noqa: E402
from tests.faults import (  # noqa: E402
    catalog_is_sound,
    cli,
    decider,
    decisions_lost,
    features_readable,
    kill_at,
    last_stage,
)


def timed(command, marker: str) -> float:
    """Seconds the work takes when left alone, from the marker (its first progress) to the end."""
    kill = kill_at(command, marker, None, timeout=600)
    assert kill.exited_first and kill.returncode == 0 and kill.seen_marker, kill.stderr[-3000:]
    return kill.seconds - kill.marker_seconds


def reopen(folder: Path) -> tuple[bool, str]:
    try:
        if not catalog_is_sound(folder):
            return False, "integrity check failed"
        with Project.open(folder) as project:
            if project.read_only:
                return False, f"opened read-only: {project.read_only}"
            if not features_readable(project):
                return False, "features missing or cut short"
        return True, ""
    except Exception as e:  # noqa: BLE001 - any failure to open is what we count
        return False, f"{type(e).__name__}: {e}"


def index_kills(work: Path, n: int, rng: random.Random, out: dict) -> None:
    photos = work / "photos"
    make_collection(photos, n_objects=3, views=4, n_distractors=40, size=(480, 360), seed=5)
    folder = work / "index-P"
    command = cli("index", str(photos), "--project", str(folder))
    full = timed(command, "scan")
    shutil.rmtree(folder)
    out.update(index_kills=0, index_reopened=0, index_completed_runs=0, images_lost=0, index_failures=[],
               index_seconds_uninterrupted=round(full, 2), index_kill_stages={})
    indexed: set[int] = set()
    while out["index_kills"] < n:
        delay = rng.uniform(0.0, full)
        kill = kill_at(command, "scan", delay, timeout=600)
        if kill.exited_first:
            assert kill.returncode == 0, kill.stderr[-3000:]
            out["index_completed_runs"] += 1
            shutil.rmtree(folder)
            indexed = set()
            continue
        out["index_kills"] += 1
        stage = last_stage(kill.stderr)
        out["index_kill_stages"][stage] = out["index_kill_stages"].get(stage, 0) + 1
        ok, why = reopen(folder) if (folder / "pixret-project.json").exists() else (True, "")
        out["index_reopened"] += ok
        if not ok:
            out["index_failures"].append(f"after {delay:.2f}s: {why}")
            continue
        if (folder / "pixret-project.json").exists():
            with Project.open(folder) as project:
                now = set(project.indexed_images())
            out["images_lost"] += len(indexed - now)
            indexed = now
        print(f"  index kill {out['index_kills']:3d} at {delay:5.2f}s ({stage}): {len(indexed)} images indexed "
              "so far", flush=True)


def prepared_project(work: Path) -> tuple[Path, int]:
    photos = work / "review-photos"
    make_collection(photos, n_objects=1, views=4, n_distractors=8, size=(480, 360), seed=6)
    folder = work / "review-P"
    with Project.create(folder) as project:
        project.index_folder(photos, graph=False)
        result = search(project, Query(photos / "object1" / "view01.jpg", Region.from_bbox(60, 60, 420, 300)))
        return folder, review.save_search(project, result)


def decision_kills(work: Path, n: int, rng: random.Random, out: dict) -> None:
    folder, qid = prepared_project(work)
    out.update(decision_kills=0, decision_reopened=0, decisions_reported_saved=0, decisions_lost=0,
               decision_failures=[])
    for k in range(n):
        with Project.open(folder) as project:
            before = {i: [d.kind for d in review.history(project, qid, i)]
                      for i in {h.image_id for h in review.load_search(project, qid).hits}}
        delay = rng.uniform(0.0, 1.0)
        kill = kill_at(decider(folder, qid), "saved 0\n", delay, timeout=600)  # from the first decision on
        assert not kill.exited_first, kill.stderr[-3000:]
        out["decision_kills"] += 1
        ok, why = reopen(folder)
        out["decision_reopened"] += ok
        if not ok:
            out["decision_failures"].append(f"after {delay:.2f}s: {why}")
            continue
        with Project.open(folder) as project:
            saved, lost = decisions_lost(project, qid, kill.lines, before)
        out["decisions_reported_saved"] += saved
        out["decisions_lost"] += lost
        print(f"  decision kill {k + 1:3d} at {delay:4.2f}s: {saved} reported saved, {lost} lost", flush=True)


def export_kills(work: Path, n: int, rng: random.Random, out: dict) -> None:
    folder, qid = prepared_project(work / "export")
    with Project.open(folder) as project:
        for hit in review.load_search(project, qid).hits[:6]:
            review.set_decision(project, qid, hit.image_id, "accepted", Region.from_bbox(10, 10, 200, 150))
        decided = {i: d.kind for i, d in review.decisions(project, qid).items()}
        export_project(project, work / "whole", "pixbench")
    whole = sorted(p.relative_to(work / "whole").as_posix() for p in (work / "whole").rglob("*"))
    target = work / "exports"
    target.mkdir()
    command = cli("export", "--project", str(folder), "--format", "pixbench", "--out", str(target / "out"))
    full = timed(command, "collecting reviews")
    shutil.rmtree(target / "out")
    out.update(export_kills=0, export_reopened=0, exports_half_written=0, export_leftovers=0,
               export_seconds_uninterrupted=round(full, 2), export_failures=[])
    while out["export_kills"] < n:
        delay = rng.uniform(0.0, full)
        kill = kill_at(command, "collecting reviews", delay, timeout=600)
        if not kill.exited_first:
            out["export_kills"] += 1
            ok, why = reopen(folder)
            out["export_reopened"] += ok
            if not ok:
                out["export_failures"].append(f"after {delay:.2f}s: {why}")
            with Project.open(folder) as project:
                if {i: d.kind for i, d in review.decisions(project, qid).items()} != decided:
                    out["export_failures"].append(f"after {delay:.2f}s: decisions changed")
        if (target / "out").exists():
            files = sorted(p.relative_to(target / "out").as_posix() for p in (target / "out").rglob("*"))
            out["exports_half_written"] += files != whole
            shutil.rmtree(target / "out")
        leftovers = [p for p in target.iterdir() if p.name != "out"]
        out["export_leftovers"] += len(leftovers)
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-kills", type=int, default=20)
    ap.add_argument("--decision-kills", type=int, default=20)
    ap.add_argument("--export-kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pixret-kills-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    out: dict = {"seed": args.seed}
    t = time.perf_counter()
    try:
        index_kills(work, args.index_kills, rng, out)
        decision_kills(work, args.decision_kills, rng, out)
        export_kills(work, args.export_kills, rng, out)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out, indent=1))
    kills = out["index_kills"] + out["decision_kills"] + out["export_kills"]
    reopened = out["index_reopened"] + out["decision_reopened"] + out["export_reopened"]
    print(f"kills {kills}, projects reopened {reopened}, images lost {out['images_lost']}, "
          f"decisions reported saved {out['decisions_reported_saved']}, decisions lost {out['decisions_lost']}, "
          f"exports half-written {out['exports_half_written']}, export leftovers {out['export_leftovers']}")


if __name__ == "__main__":
    main()
