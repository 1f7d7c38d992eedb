"""Several annotators on one project at once (issue 18): separate processes (tests/annotator.py)
deciding on one catalog, on a real PostgreSQL server and on SQLite (WAL).

What must hold: every decision an annotator was told was saved is in the catalog's history, and
nothing else is; each hit's final decision is the last one written; a decision made on a stale view
is refused as a conflict (each saved decision follows, in the hit's history, the very decision its
annotator saw, or repeats the outcome of the one it follows); a first decision by two annotators at
once makes one object; no process fails, and PostgreSQL never needed a retry (no deadlock).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import engine.annotate.review as review
import engine.catalog.tables as tables
from engine.annotate.live import DecisionWatcher
from engine.annotate.objects import list_objects
from engine.base.errors import CatalogBusy
from engine.base.locks import LockHeld, folder_lock
from engine.base.regions import Region
from engine.base.types import Query
from engine.catalog.tables import ObjectRow, QueryRow
from engine.demo import make_collection
from engine.pipeline import search
from engine.project import Project

ANNOTATOR = Path(__file__).resolve().parent / "annotator.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_search(indexed_project, small_collection):
    """A search of the indexed project (every project here is a copy of it: same image ids)."""
    rel, poly = small_collection.query("object1")
    result = search(indexed_project, Query(indexed_project.image_id(rel), Region.from_polygons([poly])), top_k=20)
    assert len(result.hits) >= 12, "the premise: enough hits for two overlapping review sets"
    return result


def saved_searches(project, result, n: int = 1) -> tuple[list[int], list[int]]:
    """n stored copies of one search (same query image: their objects compete for one name);
    (their ids, the hits' images)."""
    return [review.save_search(project, result) for _ in range(n)], [h.image_id for h in result.hits]


def start_annotators(project, db, tmp_path, specs: list[dict]) -> tuple[list[subprocess.Popen], list[Path]]:
    """One process per spec (author, queries, images, n, seed), all released at the same moment."""
    go = tmp_path / "go"
    procs, logs = [], []
    for spec in specs:
        log = tmp_path / f"{spec['author']}.jsonl"
        cmd = [sys.executable, str(ANNOTATOR), "--project", str(project.folder), "--author", spec["author"],
               "--queries", ",".join(map(str, spec["queries"])), "--images", ",".join(map(str, spec["images"])),
               "--n", str(spec["n"]), "--seed", str(spec.get("seed", 0)), "--log", str(log), "--go", str(go)]
        if db:
            cmd += ["--db", db]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        logs.append(log)
    deadline = time.time() + 120
    while not all(log.exists() and '"ready"' in log.read_text() for log in logs):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"an annotator died before starting: {p.communicate()[1]}")
        assert time.time() < deadline, "annotators did not get ready"
        time.sleep(0.05)
    go.touch()
    return procs, logs


def finish(procs, timeout: float = 300) -> None:
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"an annotator failed ({p.returncode}):\n{err[-3000:]}"


def read_log(path: Path) -> list[dict]:
    """Its complete lines (a killed annotator may have left half of one)."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def interrupted_writes(project, logs: list[list[dict]], saved: dict) -> None:
    """Add to `saved` the write each killed annotator was in the middle of (its log ends "writing") if it
    did commit: then it is the one decision of that hit's history no log calls saved, by its author,
    of the kind it was writing."""
    for log in logs:
        w = log[-1] if log and "writing" in log[-1] else None
        if w is None:
            continue
        key = (w["query"], w["writing"])
        logged = {e["saved"] for e in saved.get(key, [])}
        extra = [d for d in review.history(project, *key) if d.id not in logged]
        assert len(extra) <= 1, f"hit {key}: decisions no annotator wrote: {extra}"
        if extra:
            d = extra[0]
            assert (d.author, d.kind) == (log[0]["ready"], w["kind"]), f"hit {key}: {d} is not the write in flight"
            saved.setdefault(key, []).append({"saved": d.id, "query": key[0], "image": key[1], "kind": d.kind,
                                              "expected": w["expected"]})


def outcome(d) -> tuple:
    if d is None:
        return ("unreviewed",)
    return (d.kind,) if d.kind == "rejected" else (d.kind, d.region)


def check_history(project, logs: list[list[dict]]) -> dict[tuple[int, int], list[dict]]:
    """Every saved decision, and nothing else (but a killed annotator's write in flight, if it
    committed), in each hit's history; each one written on the view of the decision just before it (or
    repeating its outcome); the final decision the last one written."""
    saved: dict[tuple[int, int], list[dict]] = {}
    for log in logs:
        for e in log:
            if "saved" in e:
                saved.setdefault((e["query"], e["image"]), []).append(e)
    assert saved, "nothing was saved"
    interrupted_writes(project, logs, saved)
    for (q, image), entries in saved.items():
        hist = review.history(project, q, image)
        assert [d.id for d in hist] == sorted(e["saved"] for e in entries), f"hit {(q, image)}: history differs"
        by_id = {e["saved"]: e for e in entries}
        rows = {d.id: d for d in hist}
        for k, d in enumerate(hist):
            expected = by_id[d.id]["expected"]
            prev = hist[k - 1] if k else None
            follows = expected == (prev.id if prev is not None else review.NOT_DECIDED)
            # or what it replaced said the same as what its writer saw, or as what it says itself
            same = outcome(prev) in (outcome(rows.get(expected)), outcome(d))
            assert follows or same, f"hit {(q, image)}: decision {d.id} overwrote {prev} unseen (saw {expected})"
        current = review.decisions(project, q)[image]
        assert current.id == max(by_id), f"hit {(q, image)}: the final decision is not the last one written"
    return saved


def test_two_annotators_deciding_on_overlapping_hits_lose_nothing(team_project, one_search, tmp_path):
    project, db = team_project
    (qid,), hits = saved_searches(project, one_search)
    a, b = hits[:8], hits[4:12]  # four hits both review
    procs, paths = start_annotators(project, db, tmp_path, [
        {"author": "ana", "queries": [qid], "images": a, "n": 200, "seed": 1},
        {"author": "bob", "queries": [qid], "images": b, "n": 200, "seed": 2},
    ])
    finish(procs)
    logs = [read_log(p) for p in paths]

    saved = check_history(project, logs)
    assert {image for _, image in saved} <= set(a) | set(b)
    conflicts = [(log[0]["ready"], e) for log in logs for e in log if "conflict" in e]
    assert conflicts, "the premise: the two annotators did decide the same hits at the same time"
    for author, e in conflicts:
        assert e["conflict"] in set(a) & set(b)
        other = "bob" if author == "ana" else "ana"
        assert f"changed by {other} " in e["message"] and " -> " in e["message"]
    done = [e for log in logs for e in log if "done" in e]
    assert len(done) == 2
    if db:  # row locks taken in one order: PostgreSQL never reported a deadlock or serialization failure
        assert [e["retries"] for e in done] == [0, 0]
    with project.catalog.session() as s:  # the first decisions, made at once, made one object
        objects = s.scalars(select(ObjectRow)).all()
        assert len(objects) == 1
        assert s.get(QueryRow, qid).object_id == objects[0].id


def test_first_decisions_on_many_searches_at_once_make_one_object_each(pg_project, one_search, tmp_path):
    """Both annotators start 8 of the same searches (one object per search) and 6 of their own, all of
    one query image (every new object wants the image's name): no IntegrityError, no orphan object.
    (PostgreSQL: concurrent inserts race for the name there; SQLite writes one transaction at a time.)"""
    project, db = pg_project, pg_project.catalog.url
    queries, hits = saved_searches(project, one_search, n=20)
    procs, paths = start_annotators(project, db, tmp_path, [
        {"author": "ana", "queries": queries[:14], "images": hits[:1], "n": 14, "seed": 3},
        {"author": "bob", "queries": queries[6:], "images": hits[:1], "n": 14, "seed": 4},
    ])
    finish(procs)
    check_history(project, [read_log(p) for p in paths])
    objects = list_objects(project)
    assert sorted(q for o in objects for q in o.queries) == sorted(queries)  # every search has its object
    assert all(len(o.queries) == 1 for o in objects)  # and no object is an orphan
    stem = Path(project.image_info(one_search.query.image).path).stem
    assert {o.name for o in objects} == {stem} | {f"{stem} ({n})" for n in range(2, 21)}


def test_killing_an_annotator_mid_write_loses_nothing_saved(team_project, one_search, tmp_path):
    project, db = team_project
    (qid,), hits = saved_searches(project, one_search)
    procs, paths = start_annotators(project, db, tmp_path, [
        {"author": "ana", "queries": [qid], "images": hits[:8], "n": 100000, "seed": 5},
        {"author": "bob", "queries": [qid], "images": hits[4:12], "n": 40, "seed": 6},
    ])
    victim, survivor = procs
    deadline = time.time() + 120
    while sum('"saved"' in line for line in paths[0].read_text().splitlines()) < 20:
        assert time.time() < deadline and victim.poll() is None, "ana never got going"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)  # in the middle of whatever it was writing
    victim.wait(30)
    finish([survivor])
    logs = [read_log(p) for p in paths]
    assert not any("done" in e for e in logs[0])
    check_history(project, logs)  # ana's saved decisions too, and nothing half-written
    # the killed process left no lock behind: another decision goes through at once
    again = review.set_decision(project, qid, hits[5], "rejected", author="carl")
    assert review.decisions(project, qid)[hits[5]].id == again.id
    if db is None:
        with sqlite3.connect(project.folder / "catalog.sqlite") as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# -- SQLite: a long writer in the way --------------------------------------------------------------


@pytest.fixture
def sqlite_project(project_copy):
    return project_copy


def hold_write_lock(folder: Path) -> sqlite3.Connection:
    """What a long import does: a write transaction left open (COMMIT on the returned connection ends it)."""
    holder = sqlite3.connect(folder / "catalog.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE images SET mtime = mtime + 1")
    return holder


def test_a_long_import_transaction_neither_stops_status_nor_loses_a_decision(sqlite_project, one_search,
                                                                             monkeypatch):
    (qid,), hits = saved_searches(sqlite_project, one_search)
    folder = sqlite_project.folder
    monkeypatch.setattr(tables, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # "database is locked" after 0.2 s, not 30
    annotator = Project.open(folder)
    holder = hold_write_lock(folder)
    outcome: dict = {}

    def decide():
        try:
            outcome["decision"] = review.set_decision(annotator, qid, hits[0], "rejected", author="ana")
        except Exception as e:  # noqa: BLE001 - the test reports it
            outcome["error"] = e

    thread = threading.Thread(target=decide)
    try:
        thread.start()
        status = subprocess.run([sys.executable, "-m", "engine.cli", "status", "--project", str(folder)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr  # opening takes no write lock when the schema is at head
        assert f"{len(sqlite_project.indexed_images())} ok" in status.stdout
        assert thread.is_alive() and not outcome  # the decision waits for the import, it does not fail
    finally:
        holder.execute("COMMIT")
        holder.close()
    thread.join(60)
    annotator.close()
    assert "error" not in outcome, outcome.get("error")
    assert review.decisions(sqlite_project, qid)[hits[0]].id == outcome["decision"].id
    assert annotator.catalog.retries > 0  # the premise: "database is locked" did happen, and was retried


def test_a_writer_that_never_lets_go_is_a_clear_busy_error(sqlite_project, one_search, monkeypatch):
    (qid,), hits = saved_searches(sqlite_project, one_search)
    monkeypatch.setattr(tables, "SQLITE_BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr(tables, "WRITE_RETRY_S", 1.0)
    annotator = Project.open(sqlite_project.folder)
    holder = hold_write_lock(sqlite_project.folder)
    try:
        with pytest.raises(CatalogBusy) as info:
            review.set_decision(annotator, qid, hits[0], "rejected", author="ana")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        annotator.close()
    message = str(info.value)
    assert "is busy" in message and "gave up after 1 s" in message and "sqlalche.me" not in message
    assert review.decisions(sqlite_project, qid) == {}


# -- one indexer at a time -----------------------------------------------------------------------


def test_a_second_indexer_is_told_who_is_indexing_and_a_killed_ones_lock_is_taken_over(tmp_path):
    collection = make_collection(tmp_path / "photos", n_objects=1, views=3, n_distractors=3, seed=11)
    folder = tmp_path / "shared" / "project"

    def index():
        return subprocess.Popen([sys.executable, "-m", "engine.cli", "index", str(collection.root), "--project",
                                 str(folder), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    first = index()
    lock = folder / "indexing.lock"
    deadline = time.time() + 120
    while f'"pid": {first.pid},' not in (lock.read_text() if lock.exists() else ""):  # created and written
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGSTOP)  # frozen while it holds the lock: the second one comes now
    try:
        second = index()
        _, err = second.communicate(timeout=120)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # then it dies without cleaning up
        first.wait(30)
    assert second.returncode == 2
    assert err.startswith(f"error: {folder}: indexing is already running there (")
    assert f"pid {first.pid}" in err and "delete" in err and "Traceback" not in err
    assert lock.exists()  # the dead indexer's lock is still there...

    third = index()  # ...and the next indexer on this machine sees its holder is gone and takes over
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert not lock.exists()
    with Project.open(folder) as project:
        assert len(project.indexed_images()) == sum(len(v) for v in collection.views.values()) + len(collection.distractors)


def test_a_lock_held_on_another_machine_names_it_and_says_how_to_recover(tmp_path):
    lock = tmp_path / "indexing.lock"
    holder = {"what": "indexing", "user": "bob", "host": "ws-elsewhere", "pid": 4242, "since": "2026-12-01T09:00:00"}
    lock.write_text(json.dumps(holder))
    with pytest.raises(LockHeld) as info:
        with folder_lock(lock, "indexing"):
            pass
    assert str(info.value) == (f"{tmp_path}: indexing is already running there (bob on ws-elsewhere, pid 4242, "
                               f"since 2026-12-01T09:00:00); wait for it to finish. If it is no longer running "
                               f"(it crashed), delete {lock} and try again")
    assert json.loads(lock.read_text()) == holder  # someone else's lock is never touched


# -- the conflict rules, one process -----------------------------------------------------------------


def test_a_decision_on_a_stale_view_is_refused_and_can_then_be_made_knowingly(sqlite_project, one_search):
    project = sqlite_project
    (qid,), hits = saved_searches(project, one_search)
    image = hits[1]
    region = review.load_search(project, qid).hits[1].region
    assert region is not None, "the premise: a verified hit with a region to accept"
    first = review.set_decision(project, qid, image, "accepted", region, author="ana",
                                expected=review.NOT_DECIDED)
    assert (first.author, first.kind) == ("ana", "accepted") and first.id is not None

    # bob still sees the hit undecided: his rejection would silently replace ana's acceptance
    with pytest.raises(review.DecisionConflict) as info:
        review.set_decision(project, qid, image, "rejected", author="bob", expected=review.NOT_DECIDED)
    conflict = info.value
    path = project.image_info(image).path
    assert str(conflict) == f"{path}: changed by ana just now: unreviewed -> accepted"
    assert conflict.current.id == conflict.current_id == first.id and conflict.seen is None
    assert [d.id for d in review.history(project, qid, image)] == [first.id]  # nothing written

    # bob now knows; his decision goes in, and ana's stays in the history
    second = review.set_decision(project, qid, image, "rejected", author="bob", expected=conflict.current_id)
    assert [(d.kind, d.author) for d in review.history(project, qid, image)] == [("accepted", "ana"),
                                                                                  ("rejected", "bob")]
    assert review.decisions(project, qid)[image].id == second.id

    # ana, still seeing her acceptance, undoes it: refused, it is bob's rejection now
    with pytest.raises(review.DecisionConflict, match=r"changed by bob just now: accepted -> rejected$"):
        review.set_decision(project, qid, image, "unreviewed", author="ana", expected=first.id)


def test_deciding_the_same_as_someone_else_meanwhile_is_no_conflict(sqlite_project, one_search):
    project = sqlite_project
    (qid,), hits = saved_searches(project, one_search)
    theirs = review.set_decision(project, qid, hits[2], "rejected", author="ana", expected=review.NOT_DECIDED)
    mine = review.set_decision(project, qid, hits[2], "rejected", author="bob", expected=review.NOT_DECIDED)
    assert [d.id for d in review.history(project, qid, hits[2])] == [theirs.id, mine.id]
    # both undo it, each on the view of the decision they saw: the outcome is the same, no conflict
    review.set_decision(project, qid, hits[2], "unreviewed", author="ana", expected=theirs.id)
    review.set_decision(project, qid, hits[2], "unreviewed", author="bob", expected=mine.id)
    assert hits[2] not in review.decisions(project, qid)


def test_ago_reads_like_a_person_would_say_it():
    import datetime as dt

    now = dt.datetime(2026, 12, 1, 12, 0, 0)
    assert [review.ago(now - dt.timedelta(seconds=s), now) for s in (5, 100, 7200, 3 * 86400)] == [
        "just now", "2 min ago", "2 h ago", "on 2026-11-28"]


# -- live ------------------------------------------------------------------------------------------


def test_the_watcher_reports_a_decision_made_by_another_connection(team_project, one_search):
    project, db = team_project
    (qid, other_qid), hits = saved_searches(project, one_search, n=2)
    seen: list = []
    got = threading.Event()
    watcher = DecisionWatcher(project.catalog, lambda q: (seen.append(q), got.set()), interval=0.2).start()
    colleague = Project.open(project.folder, db_url=db)  # another annotator: a connection of its own
    try:
        assert watcher.listening.wait(30)
        review.set_decision(colleague, other_qid, hits[0], "rejected", author="ana")
        assert got.wait(30), "the decision was never reported"
        assert seen[0] == {other_qid}
        assert qid not in set().union(*seen)
    finally:
        watcher.stop()
        colleague.close()
    assert not watcher.running


# -- drafts are each annotator's own ------------------------------------------------------------------


def test_two_annotators_drafts_of_one_hit_are_each_their_own(team_project, one_search):
    project, _ = team_project
    (qid,), hits = saved_searches(project, one_search)
    hit = next(h for h in one_search.hits if h.region is not None)
    ana_edit = hit.region.union(Region.from_bbox(0, 0, 30, 30))
    bob_edit = hit.region.union(Region.from_bbox(600, 440, 639, 479))
    review.save_draft(project, qid, hit.image_id, ana_edit, author="ana", base=review.NOT_DECIDED)
    review.save_draft(project, qid, hit.image_id, bob_edit, author="bob", base=review.NOT_DECIDED)
    assert [(d.author, d.region == ana_edit) for d in review.drafts(project, qid, "ana")] == [("ana", True)]
    assert (review.draft_count(project, "ana"), review.draft_count(project, "bob"), review.draft_count(project)) == (1, 1, 2)

    # ana accepts hers: her draft goes, bob's stays
    review.set_decision(project, qid, hit.image_id, "corrected", ana_edit, author="ana", expected=review.NOT_DECIDED)
    assert [d.author for d in review.drafts(project, qid)] == ["bob"]

    # bob quits with "Accept all": his draft was edited on no decision, ana has decided since: it stays a draft
    assert review.accept_drafts(project, author="bob") == 0
    current = review.decisions(project, qid)[hit.image_id]
    assert (current.author, current.region == ana_edit) == ("ana", True)
    assert review.draft_count(project, "bob") == 1

    # edited again on ana's decision, it is accepted over it, knowingly
    review.save_draft(project, qid, hit.image_id, bob_edit, author="bob", base=current.id)
    assert review.accept_drafts(project, author="bob") == 1
    assert [(d.kind, d.author) for d in review.history(project, qid, hit.image_id)] == [("corrected", "ana"),
                                                                                        ("corrected", "bob")]
    assert review.drafts(project) == []


def test_drafts_made_before_drafts_had_authors_are_kept_and_anybodys(sqlite_project, one_search):
    """Down to 0003 and back up: a draft of then survives (SQLite rebuilds the table) and, its owner
    unknown, is anyone's until someone edits it."""
    from alembic import command
    from sqlalchemy import text

    from engine.catalog.migrations import current_revision, head_revision, make_config, migration_connection

    (qid,), hits = saved_searches(sqlite_project, one_search)
    folder = sqlite_project.folder
    review.save_draft(sqlite_project, qid, hits[0], Region.from_bbox(0, 0, 9, 9), author="ana")
    engine = sqlite_project.catalog.engine
    config = make_config()
    with migration_connection(engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert current_revision(engine) == "0003"
    sqlite_project.close()

    with Project.open(folder) as project:  # upgraded again on opening
        assert current_revision(project.catalog.engine) == head_revision()
        with project.catalog.session() as s:
            assert s.execute(text("SELECT query_id, image_id, author, base_id FROM drafts")).all() == [
                (qid, hits[0], "", None)]
        assert [d.image_id for d in review.drafts(project, qid, "zoe")] == [hits[0]]
        assert review.draft_count(project, "bob") == 1
        review.save_draft(project, qid, hits[0], Region.from_bbox(0, 0, 20, 20), author="zoe")  # hers now
        assert [(d.author, d.region == Region.from_bbox(0, 0, 20, 20)) for d in review.drafts(project)] == [
            ("zoe", True)]


# -- a first team command that fails -----------------------------------------------------------------


def test_a_failed_first_team_index_leaves_nothing_on_the_server_either(pg_url, tmp_path, monkeypatch, capsys):
    """The project folder is removed (as for any project) and so are the catalog's rows on the
    server: the next first index starts afresh, with its own name."""
    from sqlalchemy import create_engine, func

    from engine.cli import main

    collection = make_collection(tmp_path / "photos", n_objects=1, views=2, n_distractors=1, seed=3)
    monkeypatch.setitem(sys.modules, "distributed", None)  # --workers needs Dask: fails after the project is made
    first = tmp_path / "share" / "first"
    assert main(["index", str(collection.root), "--project", str(first), "--db", pg_url, "--workers", "2", "-q"]) == 2
    assert "pip install 'pixret-desktop[dask]'" in capsys.readouterr().err
    assert not first.exists() and not first.parent.exists()
    server = create_engine(pg_url)
    try:
        with server.connect() as c:
            counts = {t.name: c.scalar(select(func.count()).select_from(t)) for t in tables.Base.metadata.sorted_tables}
    finally:
        server.dispose()
    assert "project" in counts and set(counts.values()) == {0}, counts  # (migrated, then emptied)

    monkeypatch.delitem(sys.modules, "distributed")
    second = tmp_path / "share" / "second"
    assert main(["index", str(collection.root), "--project", str(second), "--db", pg_url, "-q"]) == 0
    with Project.open(second, db_url=pg_url) as project:
        with project.catalog.session() as s:
            assert [r.name for r in s.scalars(select(tables.ProjectRow))] == ["second"]
        assert len(project.indexed_images()) == 3
