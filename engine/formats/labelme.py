"""LabelMe JSON: the polygon files of PixBench queries and labels, and a common annotation export.

Reading is strict about what the region depends on (every point a pair of finite numbers, sizes
positive integers) and names the file and the field or line at fault; shape types without an area
(points, lines) or unknown to us are skipped and listed in `LabelMeFile.warnings`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write_text
from engine.base.errors import FormatError
from engine.base.regions import Region

__all__ = ["Shape", "LabelMeFile", "read_labelme", "labelme_region", "shape_region", "write_labelme",
           "load_json"]

AREA_TYPES = ("polygon", "rectangle", "circle")
NO_AREA_TYPES = ("point", "points", "line", "linestrip")
CIRCLE_SEGMENTS = 64  # vertices of a circle's polygon: within 0.1% of its area


@dataclass(frozen=True)
class Shape:
    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]


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
        if kind in ("rectangle", "circle") and len(pts) < 2:
            raise FormatError(path, f"{where}.points", f"a {kind} needs 2 points, got {len(pts)}")
        if kind == "polygon" and len(pts) < 3:
            warnings.append(f"{where}: polygon with {len(pts)} point(s) has no area; skipped")
            continue
        shapes.append(Shape(label, kind, pts))
    return LabelMeFile(path, image_path, width, height, tuple(shapes), tuple(warnings))


def shape_region(shape: Shape) -> Region:
    """The filled area of one shape."""
    p = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
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


def write_labelme(path, image_path, width: int, height: int, region: Region, label: str = "object") -> None:
    """Save a region as a LabelMe file (atomically): one polygon shape per exterior ring.

    LabelMe polygons have no holes, so holes are not written. Coordinates are written exactly
    (shortest round-trip floats) so that reading the file back rasterizes to the same pixels.
    `image_path` is stored as given (LabelMe expects it relative to the file's folder).
    """
    doc = {
        "version": "5.0.1",
        "flags": {},
        "shapes": [{"label": label, "points": ring, "group_id": None, "description": "",
                    "shape_type": "polygon", "flags": {}} for ring in region.polygons()],
        "imagePath": str(image_path).replace("\\", "/"),
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }
    atomic_write_text(path, json.dumps(doc, indent=1))
