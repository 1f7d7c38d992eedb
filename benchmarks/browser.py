"""How long the collection browser takes to list and filter a big collection (a measurement, not a
test; tests/gui/test_browser.py checks what it does).

The real ImageListModel behind the real ThumbnailGrid (offscreen), given N catalog rows at once as
after opening a project, then filtered by file name and by review status, as the filter box and the
status menu do. Each step's wall time, median of --repeat runs, including the Qt events it causes
(the grid's layout of the visible rows; thumbnails decode in their own pool, not counted).

    .venv/bin/python benchmarks/browser.py [--rows 10000,100000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.demo import make_collection  # noqa: E402
from engine.project import ImageInfo  # noqa: E402
from pixret_desktop.models.images import ImageListModel  # noqa: E402
from pixret_desktop.models.thumbnails import ThumbnailCache  # noqa: E402
from pixret_desktop.views.thumbnail_grid import ThumbnailGrid  # noqa: E402


def timed(app, fn) -> float:
    t = time.perf_counter()
    fn()
    app.processEvents()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    work = Path(tempfile.mkdtemp(prefix="pixret-browser-"))
    col = make_collection(work / "photos", n_objects=1, views=2, n_distractors=2, seed=0)
    cache = ThumbnailCache(96)
    cache.set_folder(work)
    print(f"{'rows':>8} {'list (ms)':>10} {'name filter':>12} {'status filter':>14} {'clear filters':>14}   median of "
          f"{args.repeat}")
    for n in (int(x) for x in args.rows.split(",")):
        # rows named after one real file with a digit changed (the name filter keeps a tenth; a
        # thumbnail that fails to load is not measured); every 100th row is accepted
        rows = [ImageInfo(i, col.distractors[0].replace("0", str(i % 10), 1), 640, 480, "ok", None)
                for i in range(1, n + 1)]
        statuses = {i: "accepted" for i in range(1, n + 1, 100)}
        steps = {"list": [], "name": [], "status": [], "clear": []}
        for _ in range(args.repeat):
            model = ImageListModel(cache)
            grid = ThumbnailGrid(96)
            grid.setModel(model)
            grid.resize(600, 500)
            grid.show()
            app.processEvents()
            steps["list"].append(timed(app, lambda: model.set_images(col.root, rows, statuses)))
            steps["name"].append(timed(app, lambda: model.set_filter(name="7")))
            steps["status"].append(timed(app, lambda: model.set_filter(status="accepted")))
            steps["clear"].append(timed(app, lambda: model.set_filter(status="all", name="")))
            assert model.rowCount() == n, (model.rowCount(), n)
            grid.close()
            grid.deleteLater()
            app.processEvents()
        ms = {k: 1000 * statistics.median(v) for k, v in steps.items()}
        print(f"{n:>8,} {ms['list']:>10.1f} {ms['name']:>12.1f} {ms['status']:>14.1f} {ms['clear']:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
