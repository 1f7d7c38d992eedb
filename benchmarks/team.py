"""Several annotators on one catalog: how fast are decisions, how often do they collide, how soon does
a window hear of another's decision? (a measurement, not a test)

For each catalog (SQLite WAL in the project folder; PostgreSQL on a throwaway local server started
like the tests' one, tests/pgserver.py) and each team size, N annotator processes (tests/annotator.py)
make --decisions decisions each on one search, every annotator's hits overlapping its neighbours'
by half; then one decision is made while a DecisionWatcher listens, --live times, and the delay
from set_decision's return to the watcher's call is taken.

    .venv/bin/python benchmarks/team.py [--teams 2,4] [--decisions 200] [--live 20]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pgserver  # noqa: E402
from conftest import copy_catalog  # noqa: E402

import engine.annotate.review as review  # noqa: E402
from engine.annotate.live import DecisionWatcher  # noqa: E402
from engine.base.regions import Region  # noqa: E402
from engine.base.types import Query  # noqa: E402
from engine.demo import make_collection  # noqa: E402
from engine.pipeline import search  # noqa: E402
from engine.project import Project  # noqa: E402


def race(project, db, result, n_annotators: int, decisions: int, work: Path) -> dict:
    qid = review.save_search(project, result)
    work = work / f"race-{project.folder.name}-{qid}"
    work.mkdir()
    hits = [h.image_id for h in result.hits]
    span = max(4, len(hits) // 2)
    go = work / "go"
    procs, logs = [], []
    for k in range(n_annotators):
        start = (k * span // 2) % max(1, len(hits) - span + 1)
        log = work / f"a{k}.jsonl"
        cmd = [sys.executable, str(ROOT / "tests" / "annotator.py"), "--project", str(project.folder),
               "--queries", str(qid), "--images", ",".join(map(str, hits[start:start + span])),
               "--n", str(decisions), "--author", f"a{k}", "--seed", str(k), "--log", str(log), "--go", str(go)]
        if db:
            cmd += ["--db", db]
        procs.append(subprocess.Popen(cmd, cwd=ROOT))
        logs.append(log)
    while not all(log.exists() and '"ready"' in log.read_text() for log in logs):
        time.sleep(0.05)
    t0 = time.perf_counter()
    go.touch()
    for p in procs:
        assert p.wait() == 0
    wall = time.perf_counter() - t0
    entries = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    saved = sum("saved" in e for e in entries)
    lat = sorted(x for e in entries if "done" in e for x in e["latency"])
    return {"annotators": n_annotators, "saved": saved, "conflicts": sum("conflict" in e for e in entries),
            "retries": sum(e["retries"] for e in entries if "done" in e), "wall_s": wall,
            "per_s": saved / wall, "p50_ms": 1000 * lat[len(lat) // 2], "p90_ms": 1000 * lat[int(0.9 * len(lat))]}


def live_delay(project, db, result, times: int) -> list[float]:
    qid = review.save_search(project, result)
    heard = threading.Event()
    watcher = DecisionWatcher(project.catalog, lambda q: qid in (q or {qid}) and heard.set(), interval=1.0).start()
    colleague = Project.open(project.folder, db_url=db)
    delays = []
    try:
        watcher.listening.wait(30)
        for k in range(times):
            heard.clear()
            time.sleep(0.3 + 0.137 * k % 1.0)  # not in step with the poll
            review.set_decision(colleague, qid, result.hits[k % len(result.hits)].image_id, "rejected", author="b")
            t = time.perf_counter()
            heard.wait(30)
            delays.append(time.perf_counter() - t)
    finally:
        watcher.stop()
        colleague.close()
    return delays


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teams", default="2,4")
    ap.add_argument("--decisions", type=int, default=200)
    ap.add_argument("--live", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pixret-team-"))
    cluster = pgserver.start()
    try:
        collection = make_collection(work / "photos", n_objects=3, views=4, n_distractors=8, seed=7)
        base = Project.create(work / "base", root=collection.root)
        base.index_folder(collection.root)
        rel, poly = collection.query("object1")
        result = search(base, Query(base.image_id(rel), Region.from_polygons([poly])), top_k=20)
        for name in ("sqlite", "postgresql"):
            folder = work / name
            if name == "sqlite":
                shutil.copytree(base.folder, folder)
                db, project = None, Project.open(folder)
            else:
                db = cluster.create_database("bench")
                Project.create(folder, db_url=db).close()
                for part in ("features", "index", "graph"):
                    shutil.copytree(base.folder / part, folder / part, dirs_exist_ok=True)
                project = Project.open(folder, db_url=db)
                copy_catalog(base.catalog, project.catalog)
            for n in (int(x) for x in args.teams.split(",")):
                r = race(project, db, result, n, args.decisions, work)
                print(f"{name:10s} {n} annotators x {args.decisions}: {r['saved']} saved, {r['conflicts']} conflicts, "
                      f"{r['retries']} retries; {r['per_s']:.0f} decisions/s; "
                      f"set_decision p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms")
            d = live_delay(project, db, result, args.live)
            print(f"{name:10s} another's decision heard by the watcher after: median {statistics.median(d):.2f} s, "
                  f"max {max(d):.2f} s ({len(d)} decisions)")
            project.close()
        base.close()
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
