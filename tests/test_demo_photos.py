"""The demo ships real photos (pixret_desktop/resources/demo): small, credited, and its search finds
and outlines the can in its other photos, as the hand-drawn outlines say."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.base.regions import Region
from engine.base.types import Query
from engine.demo import ensure_demo_project
from engine.pipeline import search

DEMO = Path(__file__).resolve().parents[1] / "pixret_desktop" / "resources" / "demo"


def test_the_demo_photos_are_small_and_every_folder_is_credited():
    photos = sorted((DEMO / "photos").rglob("*.jpg"))
    assert len(photos) >= 20
    assert sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file()) < 10e6
    credits = (DEMO / "CREDITS.md").read_text()
    for folder in {p.parent.name for p in photos}:
        assert f"photos/{folder}/" in credits


def test_the_demo_search_finds_and_outlines_the_can_in_its_other_photos(tmp_path):
    outlines = json.loads((DEMO / "can_outlines.json").read_text())
    query = json.loads((DEMO / "demo_query.json").read_text())
    # the shipped photos, fewer of them (all 29 take a minute to index): the can's six photos and three
    # photos of two other objects each
    subset = tmp_path / "photos"
    for rel in [*outlines, *(f"{o}/0{k}.jpg" for o in ("alarm_clock", "backpack") for k in range(3))]:
        (subset / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO / "photos" / rel, subset / rel)
    project = ensure_demo_project(tmp_path / "demo", photos=subset)
    try:
        assert (tmp_path / "demo" / "images" / "beer_can" / "00.jpg").is_file()  # copied in, not used in place
        assert len(project.images()) == 12
        rel = query["imagePath"].removeprefix("photos/")
        region = Region.from_polygons([query["shapes"][0]["points"]])
        assert region.iou(Region.from_polygons([outlines[rel]]), 800, 800) > 0.99  # the query is the can
        result = search(project, Query(project.image_id(rel), region), top_k=20)
        verified = {h.path: h for h in result.hits if h.stage == "verified"}
        assert set(verified) == set(outlines) - {rel}  # the can's five other photos, nothing else
        for path, hit in verified.items():
            truth = Region.from_polygons([outlines[path]])
            assert hit.region.iou(truth, 800, 800) > 0.6, path  # outlined where the can is
    finally:
        project.close()
