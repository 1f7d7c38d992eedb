"""Killing PixRet at work and checking what survives: shared by tests/test_faults.py (a few fixed
and seeded kills) and benchmarks/kill_campaign.py (many random ones).

A kill is SIGKILL to a real process running the real CLI (`python -m engine.cli ...`) or the
engine's review API (the desktop app's decisions, in a child process): no cleanup code runs, as
when the power cord is pulled from the program (not from the machine: the OS still writes what
was handed to it). Afterwards the project must open, hold every decision the child reported as
saved, and finish the interrupted work when asked again.
"""
from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The desktop app's review loop in a child: one decision per hit, announced before it is made and
# reported once set_decision has returned (that is when the app shows it as saved).
DECIDER = r"""
import sys
from engine.annotate import review
from engine.base.regions import Region
from engine.project import Project

project = Project.open(sys.argv[1])
qid = int(sys.argv[2])
hits = review.load_search(project, qid).hits
print("ready", flush=True)
for n in range(10**9):
    hit = hits[n % len(hits)]
    kind = ("accepted", "corrected", "rejected")[n % 3]
    region = None if kind == "rejected" else Region.from_bbox(10, 10, 20 + n % 500, 60)
    print(f"saving {n} {hit.image_id} {kind}", flush=True)
    review.set_decision(project, qid, hit.image_id, kind, region)
    print(f"saved {n}", flush=True)
"""


@dataclass
class Kill:
    """One kill: what ran, when it died, what it said before."""

    what: str
    seen_marker: bool = False  # the process reached the point it was to be killed at
    exited_first: bool = False  # it finished (or failed) before the kill
    marker_seconds: float | None = None  # from the start to the marker
    seconds: float = 0.0  # from the start to the end (or the kill)
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    lines: list[str] = field(default_factory=list)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def kill_at(command: list[str], marker: str, delay: float | None, *, timeout: float = 120.0, cwd=None) -> Kill:
    """Run command; once `marker` appears in its output (stderr: progress bars; stdout: lines),
    wait `delay` seconds more and SIGKILL it (delay None: let it run to the end, timing it)."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=_env())
    kill = Kill(" ".join(command[2:4]))
    out, err = b"", b""
    deadline = time.monotonic() + timeout
    streams = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    kill_time = None
    try:
        while streams:
            now = time.monotonic()
            if kill_time is not None and now >= kill_time:
                proc.send_signal(signal.SIGKILL)
                break
            if now > deadline:
                raise TimeoutError(f"{kill.what}: no {marker!r} within {timeout:.0f}s")
            wait = 0.05 if kill_time is None else max(0.0, min(0.05, kill_time - now))
            ready, _, _ = select.select(list(streams), [], [], wait)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    del streams[fd]
                    continue
                if streams[fd] == "out":
                    out += chunk
                else:
                    err += chunk
            if not kill.seen_marker and marker.encode() in out + err:
                kill.seen_marker = True
                kill.marker_seconds = time.monotonic() - start
                if delay is not None:
                    kill_time = time.monotonic() + delay
        else:
            kill.exited_first = True
    finally:
        if proc.poll() is None and not kill.exited_first:
            proc.send_signal(signal.SIGKILL)
        rest_out, rest_err = proc.communicate(timeout=30)
        out, err = out + rest_out, err + rest_err
    kill.seconds = time.monotonic() - start
    kill.returncode = proc.returncode
    kill.exited_first = kill.exited_first or proc.returncode != -signal.SIGKILL
    kill.stdout, kill.stderr = out.decode(errors="replace"), err.decode(errors="replace")
    kill.lines = kill.stdout.splitlines()
    return kill


def last_stage(stderr: str) -> str:
    """The stage of the last progress bar a CLI command drew (its tqdm description)."""
    bars = [part.split(":")[0].strip() for part in stderr.replace("\n", "\r").split("\r") if "%|" in part]
    return bars[-1] if bars else "start-up"


def decider(project: Path, query_id: int) -> list[str]:
    return [sys.executable, "-c", DECIDER, str(project), str(query_id)]


def reported_decisions(lines: list[str]) -> tuple[dict[int, list[str]], tuple[int, str] | None]:
    """From the decider's output: the decisions reported saved, per image in order, and the one
    under way when the kill came (on disk or not, both are right), if any."""
    saved: dict[int, list[str]] = {}
    pending: dict[int, tuple[int, str]] = {}
    for line in lines:
        parts = line.split()
        if parts[:1] == ["saving"]:
            pending[int(parts[1])] = (int(parts[2]), parts[3])
        elif parts[:1] == ["saved"]:
            image_id, kind = pending.pop(int(parts[1]))
            saved.setdefault(image_id, []).append(kind)
    return saved, next(iter(pending.values()), None)


def decisions_lost(project, query_id: int, lines: list[str],
                   before: dict[int, list[str]] | None = None) -> tuple[int, int]:
    """(decisions reported saved, how many of them the catalog lacks). Each image's history must be
    what was there before, then exactly the decisions reported, then at most the one under way."""
    from engine.annotate import review

    saved, under_way = reported_decisions(lines)
    lost = 0
    for image_id, kinds in saved.items():
        expected = (before or {}).get(image_id, []) + kinds
        history = [d.kind for d in review.history(project, query_id, image_id)]
        if under_way and under_way[0] == image_id and history == expected + [under_way[1]]:
            history = history[:-1]
        lost += sum(a != b for a, b in zip(expected, history)) + max(0, len(expected) - len(history))
    return sum(map(len, saved.values())), lost


def catalog_is_sound(project: Path) -> bool:
    """SQLite's own check of the catalog file (with its write-ahead log)."""
    con = sqlite3.connect(project / "catalog.sqlite")
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def features_readable(project) -> bool:
    """Every image the catalog calls indexed has its features on disk, whole."""
    from sqlalchemy import select

    from engine.catalog.tables import FeatureSetRow

    with project.catalog.session() as s:
        counts = dict(s.execute(select(FeatureSetRow.image_id, FeatureSetRow.count)).all())
    for image_id in project.indexed_images():
        fs = project.features(image_id)
        if len(fs) != counts[image_id] or len(fs.desc) != len(fs.xy) or not fs.desc.size == 128 * len(fs):
            return False
    return True
