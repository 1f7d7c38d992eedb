"""How long does the GUI thread stall while the engine works? (a measurement, not a test)

A 10 ms QTimer heartbeat runs on the GUI thread of the real main window while it
  1. imports and indexes a generated collection (default 1,000 images),
  2. scrolls the collection grid from top to bottom (thumbnails decode in their pool),
  3. runs searches,
and the script prints, per phase, the worst and the 99th-percentile lateness of the heartbeat
(how much later than due a tick fired: what a user would feel as a frozen window).

    .venv/bin/python benchmarks/gui_stall.py [--images 1000] [--searches 5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from engine.base.regions import Region  # noqa: E402
from engine.demo import make_collection  # noqa: E402
from pixret_desktop.settings import AppSettings  # noqa: E402
from pixret_desktop.startup import create_window, make_application  # noqa: E402

TICK_MS = 10


class Heartbeat:
    def __init__(self):
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.late: list[float] = []
        self._last = None

    def start(self):
        self.late, self._last = [], time.perf_counter()
        self.timer.start(TICK_MS)

    def stop(self) -> np.ndarray:
        self.timer.stop()
        return np.asarray(self.late) * 1000.0

    def _tick(self):
        now = time.perf_counter()
        self.late.append(max(0.0, now - self._last - TICK_MS / 1000.0))
        self._last = now


def wait_until(cond, timeout=3600.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the benchmark step did not finish")
        QTest.qWait(5)


def report(name: str, late_ms: np.ndarray, seconds: float) -> None:
    if len(late_ms) == 0:
        print(f"{name:<28} no ticks")
        return
    print(f"{name:<28} {seconds:8.1f} s  {len(late_ms):7d} ticks   worst {late_ms.max():7.1f} ms   "
          f"p99 {np.percentile(late_ms, 99):6.1f} ms   mean {late_ms.mean():5.2f} ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--searches", type=int, default=5)
    ap.add_argument("--keep", help="generate into this folder and keep it (reused when it exists)")
    args = ap.parse_args(argv)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pixret-stall-"))
    images = work / "images"
    n_objects, views = 10, 5
    if not (images / "demo_truth.json").exists():
        t = time.perf_counter()
        col = make_collection(images, n_objects=n_objects, views=views,
                              n_distractors=max(0, args.images - n_objects * views), seed=1)
        print(f"generated {args.images} images in {time.perf_counter() - t:.1f} s")
    else:
        import json

        truth = json.loads((images / "demo_truth.json").read_text())
        col = type("C", (), {"views": truth["views"]})()
    project_dir = work / "project"
    if project_dir.exists():
        shutil.rmtree(project_dir)

    app = make_application()
    settings = AppSettings(QSettings(str(work / "settings.ini"), QSettings.IniFormat))
    window, ctl = create_window(settings)
    window.resize(1400, 900)
    window.show()
    QTest.qWait(200)
    beat = Heartbeat()
    print(f"platform {app.platformName()}, {os.cpu_count()} CPU cores, heartbeat every {TICK_MS} ms\n")

    ctl.new_project(project_dir)
    wait_until(lambda: ctl.project is not None)
    wait_until(lambda: not ctl.jobs.running)

    beat.start()
    t = time.perf_counter()
    ctl.import_folder(images)
    wait_until(lambda: ctl.last_report is not None)
    report(f"import + index {args.images}", beat.stop(), time.perf_counter() - t)
    wait_until(lambda: ctl.images.total == args.images)

    bar = window.grid.verticalScrollBar()
    beat.start()
    t = time.perf_counter()
    for v in range(0, bar.maximum() + 1, max(1, bar.pageStep() // 2)):
        bar.setValue(v)
        QTest.qWait(15)
    wait_until(lambda: ctl.cache.pending() == 0)
    report("scroll the grid", beat.stop(), time.perf_counter() - t)

    timings = []
    all_late = []
    objects = list(col.views)
    for k in range(args.searches):
        rel, poly = col.views[objects[k % len(objects)]][0]
        image_id = next(i.id for i in ctl.images._all if i.path == rel)
        ctl.open_query_image(image_id)
        wait_until(lambda: window.canvas.image_size is not None)
        ctl.search_ctl.document(image_id).set_geometry(Region.from_polygons([poly]).geometry)
        done = []
        ctl.search_ctl.finished.connect(lambda r, q, d=done: d.append(r))
        beat.start()
        t = time.perf_counter()
        ctl.run_search()
        wait_until(lambda: done)
        all_late.append(beat.stop())
        timings.append(time.perf_counter() - t)
    report(f"search x{args.searches}", np.concatenate(all_late), sum(timings))
    print(f"\nsearch wall time per query: {', '.join(f'{s:.2f} s' for s in timings)}")
    window.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
