"""The collection browser: 10,000 rows that load lazily, thumbnails cached on disk, filters."""
from __future__ import annotations

from PySide6.QtWidgets import QListView

from engine.project import ImageInfo
from pixret_desktop.models import StatusRole
from pixret_desktop.models import thumbnails as T
from pixret_desktop.models.images import ImageListModel
from pixret_desktop.models.thumbnails import ThumbnailCache
from pixret_desktop.views.thumbnail_grid import ThumbnailGrid
from tests.gui.conftest import WAIT_MS, open_project_with_images


def many_rows(collection, n=10_000):
    """n catalog rows, all pointing at one real file (the browser cannot tell)."""
    rel = collection.distractors[0]
    return [ImageInfo(i, rel, 640, 480, "ok", None) for i in range(1, n + 1)]


def test_ten_thousand_images_are_rows_that_load_only_what_is_seen(qtbot, collection, tmp_path):
    cache = ThumbnailCache(96)
    cache.set_folder(tmp_path)
    model = ImageListModel(cache)
    grid = ThumbnailGrid(96)
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(600, 500)
    grid.show()
    qtbot.waitExposed(grid)
    rows = many_rows(collection)
    model.set_images(collection.root, rows, {5: "accepted"})  # (its speed: benchmarks/browser.py)
    qtbot.wait(50)
    assert model.rowCount() == 10_000
    assert grid.findChildren(QListView) == [] and len(grid.children()) < 50  # rows, not widgets
    qtbot.waitUntil(lambda: cache.pixmap(1) is not None, timeout=WAIT_MS)
    loaded = len(cache._mem) + len(cache.failed)
    assert loaded < 200, "thumbnails were decoded for rows nobody looked at"
    model.set_filter(name="scene001")
    model.set_filter(status="accepted")
    assert model.rowCount() == 1 and model.data(model.index(0), StatusRole) == "accepted"
    files = list((tmp_path / "thumbs" / "96").glob("*.jpg"))
    assert files, "thumbnails are kept on disk under the project's thumbs/"
    cache.wait()


def test_the_memory_cache_is_bounded(qtbot, collection, tmp_path, monkeypatch):
    img = T.decode_thumbnail(collection.root / collection.distractors[0], 64)
    assert max(img.width(), img.height()) == 64
    monkeypatch.setattr(T, "MEMORY_BUDGET", img.width() * img.height() * 4 * 5)
    cache = ThumbnailCache(64)
    for i in range(20):
        cache._on_loaded(cache._generation, i, img)
    assert len(cache._mem) == 5 and cache.pixmap(19) is not None and cache.pixmap(0) is None


def test_statuses_show_in_the_browser_and_filter_it(qtbot, make_window, reviewed_project):
    folder, result = reviewed_project
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, folder)
    accepted, rejected = result.hits[0], result.hits[1]
    row = lambda i: ctl.images.row_of(i)  # noqa: E731
    assert ctl.images.data(ctl.images.index(row(accepted.image_id)), StatusRole) == "accepted"
    assert ctl.images.data(ctl.images.index(row(rejected.image_id)), StatusRole) == "rejected"
    window.status_filter.setCurrentIndex(window.status_filter.findData("accepted"))
    assert ctl.images.image_ids() == [accepted.image_id]
    assert window.grid_count.text() == "1 of 13 images"
    window.status_filter.setCurrentIndex(window.status_filter.findData("unreadable"))
    assert [ctl.images.info_at(0).path] == ["other/broken.jpg"]
    window.status_filter.setCurrentIndex(0)
    qtbot.keyClicks(window.name_filter, "view02")
    assert sorted(ctl.images.info_at(r).path for r in range(ctl.images.rowCount())) == \
        ["object1/view02.jpg", "object2/view02.jpg"]
    # the last search comes back with its decisions on the results list
    qtbot.waitUntil(lambda: ctl.results.rowCount() == len(result.hits), timeout=WAIT_MS)
    assert ctl.results.status_of(accepted.image_id) == "accepted"


def test_sort_by_uncertainty_and_evidence_on_demand(qtbot, make_window, reviewed_project):
    folder, result = reviewed_project
    window, ctl = make_window()
    open_project_with_images(qtbot, ctl, folder)
    qtbot.waitUntil(lambda: ctl.results.rowCount() == len(result.hits), timeout=WAIT_MS)
    by_score = [h.image_id for h in ctl.results.hits()]
    assert by_score == [h.image_id for h in result.hits]
    with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
        ctl.review_ctl.select_row(0)
    current = ctl.review_ctl.current.image_id
    window.sort.setCurrentIndex(window.sort.findData("uncertainty"))
    u = [ctl.results.uncertainty_of(h.image_id) for h in ctl.results.hits()]
    assert u == sorted(u, reverse=True)
    assert window.act_sort_uncertainty.isChecked()
    assert window.results.currentIndex().row() == ctl.results.row_of(current)  # still on the same hit
    assert not window.evidence.isVisible()
    window.act_evidence.trigger()
    assert window.evidence.isVisible()
    keys = [window.evidence.topLevelItem(i).text(0) for i in range(window.evidence.topLevelItemCount())]
    assert {"score", "inliers", "matches", "homography"} <= set(keys)
