"""COCO instance segmentation: what pycocotools, datumaro and CVAT load, pixel for pixel.

Layout (datumaro's and CVAT's COCO import): `annotations/instances_<subset>.json` and the images
under `images/<subset>/<file_name>`; PixRet writes the subset "default" (SUBSET).

Writing: one `images` entry per image, one `annotations` entry per object outline, `iscrowd` 0,
one category per label. Every annotation decodes with pycocotools (`annToMask`) to exactly
PixRet's own mask of the region (`Region.to_mask`):
- a region without holes is written as polygons that trace its pixels' outer edges (pixel (c, r)
  is the square [c, c+1) x [r, r+1) in COCO's coordinates, so a polygon through pixel corners
  covers exactly the pixels inside it under pycocotools' rasterization); one polygon per
  4-connected part; vertices only where the outline turns;
- a region with holes (COCO polygons are filled and united, they cannot cut a hole) is written as
  compressed RLE of its mask;
- `area` is the mask's pixel count and `bbox` [x, y, w, h] its pixel box: what pycocotools'
  maskUtils.area and toBbox compute for it.
Each polygon is checked with `polygon_mask` (pycocotools' rasterization, reimplemented) before it
is written; RLE is the fallback, so exactness does not rest on the tracing alone.

Which object (query) an annotation belongs to, and its role and difficulty, ride along in a
`pixret` field that COCO tools ignore; the objects' negatives (rejected images) are listed in a
top-level `pixret` field.

Reading (`read_coco`) checks every field the regions depend on and names the file and the field
at fault, e.g. `annotations[12].segmentation[0]: odd number of coordinates`. Polygons (and boxes)
are rasterized as pycocotools does; the region keeps the polygon's own vertices (shifted by -0.5
into engine.base.regions' pixel-centre coordinates) when they give the same pixels, and is traced
from the pixels otherwise, so an import means what pycocotools means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely.affinity

from engine.base.errors import FormatError
from engine.base.regions import Region, RegionDataError, decode_rle, encode_rle
from engine.ingest.imageio import DEFAULT_MAX_PIXELS

__all__ = ["COCO_SHIFT", "SUBSET", "CocoImage", "CocoAnnotation", "CocoFile", "segmentation", "polygon_mask",
           "mask_outlines", "annotation_region", "read_coco", "MAX_COORD", "instances_path"]

COCO_SHIFT = 0.5
SUBSET = "default"
MAX_COORD = 1e7            # pixel coordinates beyond this are a damaged file, not a photo
_UP = 5                    # pycocotools walks polygon edges on a 5x finer grid
_MAX_WALK = 100_000_000    # fine-grid points one annotation's polygons may take to rasterize
_CHUNK = 1_000_000         # fine-grid points handled at once (bounds the memory)


def instances_path(root: Path, subset: str = SUBSET) -> Path:
    return Path(root) / "annotations" / f"instances_{subset}.json"


# ------------------------------------------------------------------------------------------------
# pycocotools' polygon rasterization (maskApi.c rleFrPoly), in numpy


def _column_crossings(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Flat column-major positions (x * h + y) where one polygon's outline toggles the fill."""
    x = np.trunc(_UP * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(_UP * xy[:, 1] + 0.5).astype(np.int64)
    xs, ys, xe, ye = x, y, np.roll(x, -1), np.roll(y, -1)
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    wide = dx >= dy                               # step along x, else along y
    flip = (wide & (xs > xe)) | (~wide & (ys > ye))
    sx, ex = np.where(flip, xe, xs), np.where(flip, xs, xe)
    sy, ey = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(wide, dx, dy)
    slope = np.where(wide, (ey - sy) / np.maximum(dx, 1), (ex - sx) / np.maximum(dy, 1))
    n_points = steps + 1
    if int(n_points.sum()) > _MAX_WALK:
        raise ValueError("polygon too long to rasterize")
    out = []
    prev = None                                   # last fine-grid point of the previous chunk
    starts = np.concatenate(([0], np.cumsum(n_points)))
    edge = 0
    while edge < len(xy):
        last = int(np.searchsorted(starts, starts[edge] + _CHUNK, side="right")) - 1
        last = max(last, edge + 1)
        idx = np.arange(edge, last)
        cnt = n_points[idx]
        e = np.repeat(idx, cnt)
        d = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        t = np.where(flip[e], steps[e] - d, d)
        u = np.where(wide[e], t + sx[e], np.trunc(sx[e] + slope[e] * t + 0.5).astype(np.int64))
        v = np.where(wide[e], np.trunc(sy[e] + slope[e] * t + 0.5).astype(np.int64), t + sy[e])
        if prev is not None:
            u, v = np.concatenate(([prev[0]], u)), np.concatenate(([prev[1]], v))
        prev = (u[-1], v[-1])
        # where the walk crosses a pixel column's centre: x = c + 0.5 at fine x = 5c + 2
        ch = np.flatnonzero(u[1:] != u[:-1]) + 1
        xd = np.minimum(u[ch], u[ch - 1])
        col = (xd - 2) // _UP
        keep = (xd % _UP == 2) & (xd >= 0) & (col <= w - 1)
        yd = (np.minimum(v[ch], v[ch - 1]).astype(np.float64) + 0.5) / _UP - 0.5
        yd = np.ceil(np.clip(yd, 0, h)).astype(np.int64)
        out.append(col[keep] * h + yd[keep])
        edge = last
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def polygon_mask(polygons, height: int, width: int) -> np.ndarray:
    """Bool (height, width) mask that pycocotools decodes for COCO polygons (flat [x1, y1, x2, y2,
    ...] lists, each filled even-odd along pixel columns, then united), e.g. annToMask."""
    h, w = int(height), int(width)
    mask = np.zeros(h * w, dtype=bool)
    for p in polygons:
        xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 1 or h * w == 0:
            continue
        # each crossing toggles the fill; runs between toggles alternate, the last one runs to the end
        at, times = np.unique(_column_crossings(xy, h, w), return_counts=True)
        toggles = at[times % 2 == 1]
        if toggles.size % 2:
            toggles = np.append(toggles, h * w)
        edges = np.zeros(h * w + 1, dtype=np.int8)
        edges[toggles[0::2]] += 1
        edges[toggles[1::2]] -= 1
        mask |= np.cumsum(edges[: h * w], dtype=np.int8).astype(bool)
    return mask.reshape((h, w), order="F")


# ------------------------------------------------------------------------------------------------
# a mask as polygons through pixel corners


def mask_outlines(mask: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """(rings, has_holes): the outlines of a mask's 4-connected parts along pixel edges, as int64
    (N, 2) arrays of corners (x, y), vertices where the outline turns; has_holes when some ring
    encloses background (such a mask is not a union of filled polygons)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    starts: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # directed edges with the foreground on their left (x right, y down)
    above, below = m[:-1, 1:-1], m[1:, 1:-1]
    for r, c in zip(*np.nonzero(above != below)):
        r, c = int(r), int(c)
        if below[r, c]:
            starts.setdefault((c + 1, r), []).append((-1, 0))
        else:
            starts.setdefault((c, r), []).append((1, 0))
    left, right = m[1:-1, :-1], m[1:-1, 1:]
    for r, c in zip(*np.nonzero(left != right)):
        r, c = int(r), int(c)
        if right[r, c]:
            starts.setdefault((c, r), []).append((0, 1))
        else:
            starts.setdefault((c, r + 1), []).append((0, -1))
    rings, holes = [], False
    while starts:
        v = next(iter(starts))
        d = first = None
        corners = []
        while v in starts:
            dirs = starts[v]
            turn_left = None if d is None else (d[1], -d[0])
            # where two parts touch at a corner, turning left keeps to this part (4-connectivity)
            nd = turn_left if turn_left in dirs else dirs[0]
            dirs.remove(nd)
            if not dirs:
                del starts[v]
            if nd != d:
                corners.append(v)
            first = first or nd
            d = nd
            v = (v[0] + d[0], v[1] + d[1])
        if d == first:
            corners = corners[1:]                # the ring started halfway along an edge
        ring = np.asarray(corners, dtype=np.int64)
        twice_area = int(np.sum(ring[:, 0] * np.roll(ring[:, 1], -1) - np.roll(ring[:, 0], -1) * ring[:, 1]))
        holes |= twice_area > 0                  # outer rings run one way, holes the other
        rings.append(ring)
    return rings, holes


def segmentation(region: Region, height: int, width: int) -> tuple[object, float, list[float]]:
    """(segmentation, area, bbox) of a region in COCO form, exact under pycocotools (module doc)."""
    mask = region.to_mask(height, width)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return [], 0.0, [0.0, 0.0, 0.0, 0.0]
    rows = np.flatnonzero(mask.any(axis=1))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    area = float(np.count_nonzero(mask))
    bbox = [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]
    window = mask[y0:y1 + 1, x0:x1 + 1]
    rings, holes = mask_outlines(window)
    if not holes:
        polys = [(ring + (x0, y0)).astype(np.float64).reshape(-1).tolist() for ring in rings]
        check = polygon_mask([(ring.astype(np.float64)).reshape(-1) for ring in rings], *window.shape)
        if np.array_equal(check, window):
            return polys, area, bbox
    return encode_rle(mask), area, bbox


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class CocoAnnotation:
    index: int               # position in the file's annotations list (for messages)
    id: int
    image_id: int
    category_id: int | None
    region: Region
    pixret: dict             # our extension: {"object", "role", "difficulty"} or {}
    group: object            # what identifies the object instance when there is no pixret field


@dataclass(frozen=True)
class CocoFile:
    path: Path
    images: dict[int, CocoImage]
    annotations: tuple[CocoAnnotation, ...]
    categories: dict[int, str]
    objects: tuple[dict, ...] = field(default=())   # top-level pixret.objects (our exports)


def _int(v, path: Path, where: str, *, positive: bool = False) -> int:
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or (positive and v <= 0):
        raise FormatError(path, where, f"not a{' positive' if positive else 'n'} integer: {v!r}"[:200])
    return v


def _number(v, path: Path, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > MAX_COORD:
        raise FormatError(path, where, f"not a finite pixel coordinate: {v!r}"[:200])
    return float(v)


def _polygons_region(polys: list[np.ndarray], path: Path, where: str, height: int | None,
                     width: int | None) -> Region:
    """The pixels pycocotools fills for these polygons (COCO coordinates, (N, 2) each), as a
    Region: the polygons themselves when PixRet's rasterization of them agrees, else the pixels'
    own outline."""
    if not polys:
        return Region.empty()
    try:
        smooth = Region.from_polygons([p - COCO_SHIFT for p in polys])
    except (ValueError, ArithmeticError) as e:
        raise FormatError(path, where, f"not a usable polygon: {e}") from None
    lo = np.floor(np.min([p.min(axis=0) for p in polys], axis=0)).astype(np.int64) - 1
    hi = np.ceil(np.max([p.max(axis=0) for p in polys], axis=0)).astype(np.int64) + 1
    if height is None or width is None:          # no image size: the canvas the polygons span
        width, height = (max(1, int(v)) for v in hi)
    # work in the window the polygons reach (an integer shift changes nothing in pycocotools' rule)
    x0, y0 = (max(0, int(v)) for v in lo)
    x1, y1 = min(width, int(hi[0])), min(height, int(hi[1]))
    if x1 <= x0 or y1 <= y0:
        return Region.empty()
    if (x1 - x0) * (y1 - y0) > DEFAULT_MAX_PIXELS:
        return smooth
    try:
        mask = polygon_mask([(p - (x0, y0)).reshape(-1) for p in polys], y1 - y0, x1 - x0)
    except ValueError as e:
        raise FormatError(path, where, str(e)) from None
    # (clipped at the window's far edges only where the image ends: the window holds the polygons)
    if np.array_equal(smooth.window_mask(x0, y0, x1 - x0, y1 - y0), mask):
        return smooth
    return Region(shapely.affinity.translate(Region.from_mask(mask).geometry, x0, y0))


def annotation_region(seg, bbox, path: Path, where: str, height: int | None, width: int | None) -> Region:
    """The region of one COCO annotation: polygons, RLE (compressed or not), or the bbox alone;
    the pixels pycocotools gives it."""
    if isinstance(seg, list) and seg:
        polys = []
        for k, p in enumerate(seg):
            w = f"{where}.segmentation[{k}]"
            if not isinstance(p, list):
                raise FormatError(path, w, "not a flat list [x1, y1, x2, y2, ...]")
            if len(p) % 2:
                raise FormatError(path, w, "odd number of coordinates")
            xy = [_number(v, path, f"{w}[{j}]") for j, v in enumerate(p)]
            if len(xy) >= 6:
                polys.append(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        return _polygons_region(polys, path, f"{where}.segmentation", height, width)
    if isinstance(seg, dict):
        w = f"{where}.segmentation"
        size = seg.get("size")
        if (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
                and height is not None and width is not None and list(size) != [height, width]):
            raise FormatError(path, f"{w}.size", f"{size} but the image is {height}x{width} (height, width)")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in size):
            if size[0] * size[1] > DEFAULT_MAX_PIXELS:
                raise FormatError(path, f"{w}.size", f"{size}: too large for an image")
        try:
            mask = decode_rle(seg)
        except RegionDataError as e:
            raise FormatError(path, f"{w}.{e.where}" if e.where else w, e.problem) from None
        except (ValueError, OverflowError, MemoryError) as e:
            raise FormatError(path, w, f"not a COCO RLE: {e}") from None
        return Region.from_mask(mask)
    if seg not in (None, []):
        raise FormatError(path, f"{where}.segmentation", "neither polygons nor an RLE object")
    # no segmentation: a detection dataset; the box is the region
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise FormatError(path, f"{where}.bbox", "no segmentation, and no [x, y, w, h] box either")
    x, y, bw, bh = (_number(v, path, f"{where}.bbox[{j}]") for j, v in enumerate(bbox))
    if bw <= 0 or bh <= 0:
        raise FormatError(path, f"{where}.bbox", "no segmentation, and the box is empty")
    # the box as pycocotools' frBbox fills it: the polygon around it
    box = np.array([[x, y], [x, y + bh], [x + bw, y + bh], [x + bw, y]], dtype=np.float64)
    return _polygons_region([box], path, f"{where}.bbox", height, width)


def read_coco(path, doc) -> CocoFile:
    """Check a parsed COCO document; FormatError(path, field, problem) on anything malformed."""
    path = Path(path)
    if not isinstance(doc, dict):
        raise FormatError(path, "", "not a COCO object (expected {\"images\": ..., \"annotations\": ...})")
    raw_images = doc.get("images")
    if not isinstance(raw_images, list):
        raise FormatError(path, "images", "missing or not a list")
    images: dict[int, CocoImage] = {}
    for k, im in enumerate(raw_images):
        where = f"images[{k}]"
        if not isinstance(im, dict):
            raise FormatError(path, where, "not an object")
        iid = _int(im.get("id"), path, f"{where}.id")
        if iid in images:
            raise FormatError(path, f"{where}.id", f"duplicate image id {iid}")
        name = im.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise FormatError(path, f"{where}.file_name", "missing or not a file name")
        w = im.get("width")
        h = im.get("height")
        w = None if w is None else _int(w, path, f"{where}.width", positive=True)
        h = None if h is None else _int(h, path, f"{where}.height", positive=True)
        images[iid] = CocoImage(iid, name, w, h)
    categories: dict[int, str] = {}
    raw_cats = doc.get("categories", [])
    if not isinstance(raw_cats, list):
        raise FormatError(path, "categories", "not a list")
    for k, c in enumerate(raw_cats):
        where = f"categories[{k}]"
        if not isinstance(c, dict):
            raise FormatError(path, where, "not an object")
        cid = _int(c.get("id"), path, f"{where}.id")
        name = c.get("name", str(cid))
        if not isinstance(name, str):
            raise FormatError(path, f"{where}.name", "not a string")
        categories[cid] = name or str(cid)
    raw_anns = doc.get("annotations")
    if not isinstance(raw_anns, list):
        raise FormatError(path, "annotations", "missing or not a list")
    anns = []
    seen: set[int] = set()
    for k, a in enumerate(raw_anns):
        where = f"annotations[{k}]"
        if not isinstance(a, dict):
            raise FormatError(path, where, "not an object")
        aid = _int(a.get("id", k + 1), path, f"{where}.id")
        if aid in seen:
            raise FormatError(path, f"{where}.id", f"duplicate annotation id {aid}")
        seen.add(aid)
        iid = _int(a.get("image_id"), path, f"{where}.image_id")
        if iid not in images:
            raise FormatError(path, f"{where}.image_id", f"no image with id {iid} in images")
        cid = a.get("category_id")
        cid = None if cid is None else _int(cid, path, f"{where}.category_id")
        if cid is not None and categories and cid not in categories:
            raise FormatError(path, f"{where}.category_id", f"no category with id {cid} in categories")
        if a.get("iscrowd", 0) not in (0, 1, False, True):
            raise FormatError(path, f"{where}.iscrowd", "not 0 or 1")
        im = images[iid]
        region = annotation_region(a.get("segmentation"), a.get("bbox"), path, where, im.height, im.width)
        ext = a.get("pixret", {})
        if not isinstance(ext, dict):
            raise FormatError(path, f"{where}.pixret", "not an object")
        ext = _pixret_ext(ext, path, f"{where}.pixret")
        # without our extension, an instance is identified by the usual per-instance ids, else its category
        group = next((("id", key, a[key]) for key in ("instance_id", "track_id", "object_id")
                      if isinstance(a.get(key), (int, str)) and not isinstance(a.get(key), bool)),
                     ("category", cid))
        anns.append(CocoAnnotation(k, aid, iid, cid, region, ext, group))
    objects = ()
    top = doc.get("pixret")
    if top is not None:
        if not isinstance(top, dict) or not isinstance(top.get("objects", []), list):
            raise FormatError(path, "pixret", "not an object with an 'objects' list")
        objs = []
        for k, o in enumerate(top.get("objects", [])):
            where = f"pixret.objects[{k}]"
            if not isinstance(o, dict):
                raise FormatError(path, where, "not an object")
            _int(o.get("id"), path, f"{where}.id")
            neg = o.get("negative_image_ids", [])
            if not isinstance(neg, list):
                raise FormatError(path, f"{where}.negative_image_ids", "not a list of image ids")
            for j, iid in enumerate(neg):
                if _int(iid, path, f"{where}.negative_image_ids[{j}]") not in images:
                    raise FormatError(path, f"{where}.negative_image_ids[{j}]", f"no image with id {iid}")
            objs.append(o)
        objects = tuple(objs)
    return CocoFile(path, images, tuple(anns), categories, objects)


def _pixret_ext(ext: dict, path: Path, where: str) -> dict:
    out = {}
    if "object" in ext:
        out["object"] = _int(ext["object"], path, f"{where}.object")
    role = ext.get("role", "positive")
    if role not in ("query", "positive"):
        raise FormatError(path, f"{where}.role", f"{role!r}: expected 'query' or 'positive'"[:200])
    out["role"] = role
    diff = ext.get("difficulty", "easy")
    if diff not in ("easy", "hard", "junk"):
        raise FormatError(path, f"{where}.difficulty", f"{diff!r}: expected easy, hard or junk"[:200])
    out["difficulty"] = diff
    return out
