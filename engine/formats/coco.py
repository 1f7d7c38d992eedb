"""COCO instance segmentation JSON: what pycocotools' COCO(path) loads.

Writing: one `images` entry per image, one `annotations` entry per object outline (polygons, or
compressed RLE for a region with holes, which COCO polygons cannot express), `bbox` [x, y, w, h]
and `area` of the rasterized mask, `iscrowd` 0, and one category per label. Which object (query)
an annotation belongs to, and its role and difficulty, ride along in a `pixret` field that COCO
tools ignore; the objects' negatives (rejected images) are listed in a top-level `pixret` field.

Coordinates. COCO puts pixel (c, r) on the square [c, c+1) x [r, r+1), its centre at (c+0.5,
r+0.5); engine.base.regions puts pixel centres on integer coordinates. Polygons are shifted by +0.5 on
the way out and -0.5 on the way in, so the same pixels are meant in both.

Reading (`read_coco`) checks every field the regions depend on and names the file and the field
at fault, e.g. `annotations[12].segmentation[0]: odd number of coordinates`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import FormatError
from engine.base.regions import Region, RegionDataError, decode_rle, encode_rle
from engine.ingest.imageio import DEFAULT_MAX_PIXELS

__all__ = ["COCO_SHIFT", "CocoImage", "CocoAnnotation", "CocoFile", "segmentation", "annotation_region",
           "read_coco", "MAX_COORD"]

COCO_SHIFT = 0.5
MAX_COORD = 1e7  # pixel coordinates beyond this are a damaged file, not a photo


def segmentation(region: Region, height: int, width: int) -> tuple[object, float, list[float]]:
    """(segmentation, area, bbox) of a region in COCO form.

    Polygons (flat [x1, y1, x2, y2, ...] lists, shifted into COCO's pixel convention) unless the
    region has holes, then compressed RLE of its mask. area and bbox are those of the mask
    (pycocotools' maskUtils.area and toBbox of the same pixels).
    """
    mask = region.to_mask(height, width)
    area = float(np.count_nonzero(mask))
    box = region.pixel_box(height, width)
    bbox = [0.0, 0.0, 0.0, 0.0] if box is None else \
        [float(box[0]), float(box[1]), float(box[2] - box[0] + 1), float(box[3] - box[1] + 1)]
    rings = region.polygons_with_holes()
    if any(len(p) > 1 for p in rings):
        return encode_rle(mask), area, bbox
    polys = [(np.asarray(p[0], dtype=np.float64) + COCO_SHIFT).reshape(-1).tolist() for p in rings]
    return polys, area, bbox


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


def annotation_region(seg, bbox, path: Path, where: str, height: int | None, width: int | None) -> Region:
    """The region of one COCO annotation: polygons, RLE (compressed or not), or the bbox alone."""
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
                polys.append((np.asarray(xy, dtype=np.float64).reshape(-1, 2) - COCO_SHIFT))
        try:
            return Region.from_polygons(polys)
        except (ValueError, ArithmeticError) as e:
            raise FormatError(path, f"{where}.segmentation", f"not a usable polygon: {e}") from None
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
    # pixels x .. x+w-1 in engine.base.regions' pixel-centre coordinates
    return Region.from_bbox(x, y, x + bw - 1.0, y + bh - 1.0)


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
