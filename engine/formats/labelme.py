"""LabelMe JSON: the polygon files of PixBench queries and labels, and a common annotation export.

Reading is strict about what the region depends on (every point a pair of finite numbers, sizes
positive integers, a mask's PNG the size of its box) and names the file and the field or line at
fault; shape types without an area (points, lines) or unknown to us are skipped and listed in
`LabelMeFile.warnings`. Shapes with an area: polygon, rectangle, circle, and mask (LabelMe 5.3:
`points` [[x1, y1], [x2, y2]] the inclusive pixel box, `mask` a base64 PNG of that box, nonzero =
inside), each as LabelMe itself draws it.

Holes. A LabelMe polygon is filled: it cannot cut a hole. `region_shapes` writes each part of a
region without holes as a polygon, and each part with holes as a `mask` shape (its pixels exactly,
holes included), so nothing is lost. PixBench's label files (FORMAT.md, and PROxford's scripts,
which read `points` only) must stay polygons: there `holes=False` fills the holes, and the caller
warns.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
import shapely.geometry

from engine.base.atomic import atomic_write_text
from engine.base.errors import FormatError
from engine.base.regions import Region
from engine.ingest.imageio import DEFAULT_MAX_PIXELS

__all__ = ["Shape", "LabelMeFile", "read_labelme", "labelme_region", "shape_region", "write_labelme",
           "region_shapes", "labelme_doc", "load_json", "MAX_JSON_BYTES"]

AREA_TYPES = ("polygon", "rectangle", "circle", "mask")
MAX_JSON_BYTES = 1 << 30   # an annotation file larger than this is refused before it is parsed
NO_AREA_TYPES = ("point", "points", "line", "linestrip")
CIRCLE_SEGMENTS = 64  # vertices of a circle's polygon: within 0.1% of its area


@dataclass(frozen=True, eq=False)
class Shape:
    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]
    group_id: int | str | None = None
    flags: dict = field(default_factory=dict)
    mask: np.ndarray | None = None      # shape_type "mask": bool pixels of the box points[0]..points[1]
    index: int = -1                     # its position in the file's shapes list (for messages)


@dataclass(frozen=True)
class LabelMeFile:
    path: Path
    image_path: str                 # as written in the file (relative to the file's folder)
    width: int | None               # imageWidth; None when the file has none
    height: int | None
    shapes: tuple[Shape, ...]       # the shapes with an area: polygon, rectangle, circle
    warnings: tuple[str, ...] = field(default=())   # shapes skipped, and why

    def image_file(self) -> Path:
        """The image the file annotates, resolved against the file's folder."""
        return Path(os.path.normpath(self.path.parent / self.image_path.replace("\\", "/")))

    def region(self, label: str | None = None) -> Region:
        return labelme_region(self, label)


def load_json(path) -> object:
    """Parse a JSON file; FormatError naming the line and column of a syntax error."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise FormatError(path, "", f"larger than {MAX_JSON_BYTES >> 20} MiB: refused")
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, "", "no such file") from None
    except UnicodeDecodeError as e:
        raise FormatError(path, f"byte {e.start}", "not UTF-8 text") from None
    except OSError as e:
        raise FormatError(path, "", f"cannot read: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(path, f"line {e.lineno}, column {e.colno}", f"invalid JSON: {e.msg}") from None


def _size(d: dict, key: str, path: Path) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or v <= 0:
        raise FormatError(path, key, f"not a positive integer: {v!r}")
    return int(v)


def _points(raw, where: str, path: Path) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list):
        raise FormatError(path, where, "not a list of [x, y] points")
    for k, p in enumerate(raw):
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in p)):
            raise FormatError(path, f"{where}[{k}]", "not a pair of numbers")
    return tuple((float(x), float(y)) for x, y in raw)


def read_labelme(path) -> LabelMeFile:
    """Read a LabelMe JSON file; FormatError(path, field or line, problem) when it is malformed."""
    path = Path(path)
    d = load_json(path)
    if not isinstance(d, dict):
        raise FormatError(path, "", "not a LabelMe object (expected {...} at the top level)")
    image_path = d.get("imagePath") or ""
    if not isinstance(image_path, str):
        raise FormatError(path, "imagePath", "not a string")
    width, height = _size(d, "imageWidth", path), _size(d, "imageHeight", path)
    raw_shapes = d.get("shapes")
    if not isinstance(raw_shapes, list):
        raise FormatError(path, "shapes", "missing or not a list")
    shapes, warnings = [], []
    for k, s in enumerate(raw_shapes):
        where = f"shapes[{k}]"
        if not isinstance(s, dict):
            raise FormatError(path, where, "not an object")
        label = s.get("label", "")
        if not isinstance(label, str):
            raise FormatError(path, f"{where}.label", "not a string")
        # LabelMe files from before shape_type existed hold polygons only
        kind = s.get("shape_type") or "polygon"
        if not isinstance(kind, str):
            raise FormatError(path, f"{where}.shape_type", "not a string")
        if kind not in AREA_TYPES:
            reason = "has no area" if kind in NO_AREA_TYPES else "is not supported"
            warnings.append(f"{where}: shape_type {kind!r} {reason}; skipped")
            continue
        pts = _points(s.get("points"), f"{where}.points", path)
        if kind in ("rectangle", "circle", "mask") and len(pts) < 2:
            raise FormatError(path, f"{where}.points", f"a {kind} needs 2 points, got {len(pts)}")
        if kind == "polygon" and len(pts) < 3:
            warnings.append(f"{where}: polygon with {len(pts)} point(s) has no area; skipped")
            continue
        group = s.get("group_id")
        if group is not None and (isinstance(group, bool) or not isinstance(group, (int, str))):
            raise FormatError(path, f"{where}.group_id", "not an integer, a string or null")
        flags = s.get("flags") or {}
        if not isinstance(flags, dict):
            raise FormatError(path, f"{where}.flags", "not an object")
        mask = _mask(s.get("mask"), pts, f"{where}.mask", path) if kind == "mask" else None
        shapes.append(Shape(label, kind, pts, group, flags, mask, k))
    return LabelMeFile(path, image_path, width, height, tuple(shapes), tuple(warnings))


def _mask(data, pts, where: str, path: Path) -> np.ndarray:
    """A mask shape's pixels: the base64 PNG, checked to be exactly its box's size before decoding."""
    from PIL import Image, UnidentifiedImageError

    box = np.asarray(pts[:2], dtype=np.float64)
    if not (np.abs(box) <= DEFAULT_MAX_PIXELS).all():
        raise FormatError(path, where.replace(".mask", ".points"), "a box far outside any image")
    (x1, y1), (x2, y2) = box.astype(np.int64)
    if x2 < x1 or y2 < y1 or x1 < 0 or y1 < 0:
        raise FormatError(path, where.replace(".mask", ".points"), "not a box [[x1, y1], [x2, y2]] in the image")
    w, h = int(x2 - x1 + 1), int(y2 - y1 + 1)
    if w * h > DEFAULT_MAX_PIXELS:
        raise FormatError(path, where, f"{w}x{h} pixels: too large")
    if not isinstance(data, str) or len(data) > MAX_JSON_BYTES:
        raise FormatError(path, where, "missing or not a base64 PNG")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
            if im.size != (w, h):
                raise FormatError(path, where, f"a {im.size[0]}x{im.size[1]} image for a {w}x{h} box")
            return np.asarray(im.convert("L")) != 0
    except FormatError:
        raise
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise FormatError(path, where, f"not a base64 PNG ({e})") from None


def shape_region(shape: Shape) -> Region:
    """The filled area of one shape."""
    p = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    if shape.shape_type == "mask":
        x1, y1 = (int(v) for v in p[0])
        return Region(shapely.affinity.translate(Region.from_mask(shape.mask).geometry, x1, y1))
    if shape.shape_type == "rectangle":
        # two opposite corners (some tools write all four)
        return Region.from_bbox(p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())
    if shape.shape_type == "circle":
        # LabelMe: the centre, then a point on the circle
        r = float(np.hypot(*(p[1] - p[0])))
        t = np.linspace(0.0, 2.0 * np.pi, CIRCLE_SEGMENTS, endpoint=False)
        return Region.from_polygons([np.stack([p[0, 0] + r * np.cos(t), p[0, 1] + r * np.sin(t)], 1)])
    return Region.from_polygons([p])


def labelme_region(file, label: str | None = None) -> Region:
    """The union of the file's shapes with an area (only those with this label, when given).

    `file` is a LabelMeFile or a path.
    """
    if not isinstance(file, LabelMeFile):
        file = read_labelme(file)
    shapes = [s for s in file.shapes if label is None or s.label == label]
    polys = [s for s in shapes if s.shape_type == "polygon"]
    region = Region.from_polygons([s.points for s in polys])
    for s in shapes:
        if s.shape_type != "polygon":
            region = region.union(shape_region(s))
    return region


def _png_b64(mask: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def region_shapes(region: Region, height: int, width: int, *, label: str = "object", group_id=None,
                  flags: dict | None = None, holes: bool = True) -> tuple[list[dict], int]:
    """(LabelMe shape dicts, holes left out) for a region: a polygon per part without holes; a part
    with holes becomes a `mask` shape of its pixels (holes=True) or its filled exterior (holes=False,
    and the holes are counted for the caller to warn about)."""
    shapes, dropped = [], 0
    common = {"label": label, "group_id": group_id, "description": "", "flags": dict(flags or {})}
    for rings in region.polygons_with_holes():
        if len(rings) > 1 and holes:
            part = Region(shapely.geometry.Polygon(rings[0], rings[1:]))
            box = part.pixel_box(height, width)
            if box is not None:                  # (a part wholly outside the image has no pixels)
                x1, y1, x2, y2 = box
                crop = part.to_mask(height, width)[y1:y2 + 1, x1:x2 + 1]
                shapes.append({**common, "shape_type": "mask", "points": [[x1, y1], [x2, y2]],
                               "mask": _png_b64(crop)})
            continue
        dropped += len(rings) - 1
        shapes.append({**common, "shape_type": "polygon", "points": rings[0]})
    return shapes, dropped


def write_labelme(path, image_path, width: int, height: int, region: Region, label: str = "object", *,
                  holes: bool = False) -> int:
    """Save a region as a LabelMe file (atomically); returns the number of holes left out.

    holes=False (PixBench labels, FORMAT.md): one polygon per part, holes filled. holes=True: parts
    with holes as `mask` shapes (module doc). Polygon coordinates are written exactly (shortest
    round-trip floats) so that reading the file back rasterizes to the same pixels. `image_path` is
    stored as given (LabelMe expects it relative to the file's folder).
    """
    shapes, dropped = region_shapes(region, height, width, label=label, holes=holes)
    atomic_write_text(path, json.dumps(labelme_doc(shapes, image_path, width, height), indent=1))
    return dropped


def labelme_doc(shapes: list[dict], image_path, width: int, height: int) -> dict:
    """A LabelMe file's content (version 5.3.1 when it holds a mask shape, which came with 5.3)."""
    return {
        "version": "5.3.1" if any(s["shape_type"] == "mask" for s in shapes) else "5.0.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": str(image_path).replace("\\", "/"),
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }
