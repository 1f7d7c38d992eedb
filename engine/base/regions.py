"""Regions: the outline of an object in one image, as polygons with holes.

A `Region` is a frozen value backed by a shapely Polygon or MultiPolygon in pixel coordinates
(x right, y down, zero-based). It converts to and from masks, boxes, COCO RLE and JSON, warps by a
homography, and measures IoU.

Pixel convention. Integer coordinates are pixel centres: a vertex at (10, 20) lies on the centre of
pixel column 10, row 20, and a region covers a pixel when that centre lies in the region or on its
boundary. `to_mask` rounds the vertices to pixel centres (as the PixBench generator did before it
called cv2.fillPoly) and then takes exactly the pixels whose centres the rounded polygon covers:
inside its exterior ring or on it, and not strictly inside a hole. This is computed by our own
scanline fill in integer arithmetic (`_cover`), not by OpenCV, whose fillPoly picks the pixels
along slanted edges differently from one version to the next (4.9 and 5.1 filled 50 of dev's 111
label polygons differently, by up to 49 pixels), so metrics do not change with the OpenCV version.
`from_mask` inverts it (a contour through boundary pixel centres covers back the same pixels).
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry import box as _shapely_box
from shapely.geometry.base import BaseGeometry

__all__ = [
    "Region", "RegionDataError", "mask_iou", "box_iou", "pair_ious", "encode_rle", "decode_rle",
    "polygons_from_json",
]

_EMPTY = Polygon()
# Half-width given to one-pixel-thin mask structures (lines, single pixels) so that they keep an
# area; below 0.5 so that every vertex still rounds back onto the traced pixel centres.
_THIN = 0.25


class RegionDataError(ValueError):
    """Malformed region data (JSON, RLE, polygons); `where` names the field, e.g. `polygons[1][0][3]`.

    Readers of files wrap it into `engine.base.errors.FormatError(path, where, problem)`.
    """

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


# ------------------------------------------------------------------------------------------------
# geometry helpers


def _iter_polygons(g: BaseGeometry) -> Iterator[Polygon]:
    if isinstance(g, Polygon):
        if not g.is_empty:
            yield g
    elif hasattr(g, "geoms"):  # MultiPolygon, GeometryCollection
        for part in g.geoms:
            yield from _iter_polygons(part)


def _polygonal(g: BaseGeometry | None) -> Polygon | MultiPolygon:
    """The polygonal part of any geometry, valid, 2-D, without empty or zero-area pieces."""
    if g is None or g.is_empty:
        return _EMPTY
    if g.has_z:
        g = shapely.force_2d(g)
    if not g.is_valid:
        g = shapely.make_valid(g)
    parts = [p for p in _iter_polygons(g) if not p.is_empty and p.area > 0.0]
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    multi = MultiPolygon(parts)
    if multi.is_valid:
        return multi
    # parts that overlap (a user's GeometryCollection): merge them
    merged = shapely.union_all(parts)
    parts = [p for p in _iter_polygons(merged) if not p.is_empty and p.area > 0.0]
    if not parts:
        return _EMPTY
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _ring_xy(ring) -> np.ndarray:
    """Ring vertices without shapely's closing repeat, float64 (N, 2)."""
    return np.asarray(ring.coords, dtype=np.float64)[:-1, :2]


def _ring_pixels(ring) -> np.ndarray:
    """Ring vertices rounded to pixel centres (np.round, half to even, as the bench generator did)."""
    return np.round(_ring_xy(ring)).astype(np.int64)


def _cover(ring: np.ndarray, x0: int, y0: int, w: int, h: int, *, boundary: bool = True) -> np.ndarray:
    """Bool (h, w): the pixels of the window at (x0, y0) whose centres the closed integer ring covers:
    inside it (even-odd) or exactly on an edge; boundary=False: strictly inside (not on an edge).
    Exact: integer arithmetic only."""
    out = np.zeros((h, w), dtype=bool)
    if len(ring) == 0 or w <= 0 or h <= 0:
        return out
    a, b = ring, np.roll(ring, -1, axis=0)
    # inside: where each edge crosses a row of pixel centres (rows half-open, so a vertex counts once);
    # between a row's 1st and 2nd crossing, 3rd and 4th, ... the centres strictly between are inside
    slanted = a[:, 1] != b[:, 1]
    ea, eb = a[slanted], b[slanted]
    r0 = np.maximum(np.minimum(ea[:, 1], eb[:, 1]), y0)
    n = np.maximum(np.minimum(np.maximum(ea[:, 1], eb[:, 1]), y0 + h) - r0, 0)
    if n.sum():
        e = np.repeat(np.arange(len(ea)), n)
        y = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + r0[e]
        xa, ya, dx, dy = ea[e, 0], ea[e, 1], eb[e, 0] - ea[e, 0], eb[e, 1] - ea[e, 1]
        num, den = (y - ya) * dx * np.sign(dy), np.abs(dy)       # crossing at xa + num / den
        order = np.lexsort((xa + num / den, y))
        y, xa, num, den = y[order], xa[order], num[order], den[order]
        row_start = np.concatenate(([True], y[1:] != y[:-1]))
        k = np.arange(len(y)) - np.maximum.accumulate(np.where(row_start, np.arange(len(y)), 0))
        left = np.flatnonzero((k % 2 == 0)[:-1] & (y[1:] == y[:-1]))
        first = np.maximum(xa[left] + num[left] // den[left] + 1, x0) - x0          # right of floor(left)
        last = np.minimum(xa[left + 1] - (-num[left + 1] // den[left + 1]) - 1, x0 + w - 1) - x0  # left of ceil
        for r, c0, c1 in zip((y[left] - y0).tolist(), first.tolist(), last.tolist()):
            if c0 <= c1:
                out[r, c0:c1 + 1] = True
    # on an edge: its lattice points, gcd(|dx|, |dy|) + 1 of them (the crossings above cannot tell
    # those apart: a row along a horizontal edge counts as inside or outside depending on its ends)
    d = b - a
    g = np.gcd(np.abs(d[:, 0]), np.abs(d[:, 1]))
    step = d // np.maximum(g, 1)[:, None]
    e = np.repeat(np.arange(len(a)), g + 1)
    k = np.arange(int((g + 1).sum())) - np.repeat(np.cumsum(g + 1) - (g + 1), g + 1)
    px, py = a[e, 0] + k * step[e, 0] - x0, a[e, 1] + k * step[e, 1] - y0
    keep = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    out[py[keep], px[keep]] = boundary
    return out


def _halfplane_clip(corners: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of a convex polygon where a*x + b*y + c >= 0."""
    out = []
    n = len(corners)
    f = corners @ (a, b) + c
    for i in range(n):
        j = (i + 1) % n
        if f[i] >= 0:
            out.append(corners[i])
        if (f[i] >= 0) != (f[j] >= 0):
            t = f[i] / (f[i] - f[j])
            out.append(corners[i] + t * (corners[j] - corners[i]))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _convex(xy: np.ndarray) -> Polygon:
    return Polygon(xy) if len(xy) >= 3 else _EMPTY


def _check_points(obj, where: str) -> np.ndarray:
    """A JSON list of [x, y] pairs of finite numbers -> float64 (N, 2); names the bad point."""
    if not isinstance(obj, (list, tuple)):
        raise RegionDataError(where, "not a list of [x, y] points")
    for k, p in enumerate(obj):
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in p)):
            raise RegionDataError(f"{where}[{k}]", "not a pair of numbers")
    return np.asarray(obj, dtype=np.float64).reshape(-1, 2)


def polygons_from_json(obj, where: str = "polygons") -> list[np.ndarray]:
    """Validate the contract's polygon list `[[[x, y], ...], ...]` -> list of float64 (N, 2) arrays.

    Raises RegionDataError naming the field, e.g. `polygons[2][5]: not a pair of numbers`.
    """
    if not isinstance(obj, list):
        raise RegionDataError(where, "not a list of polygons")
    return [_check_points(p, f"{where}[{k}]") for k, p in enumerate(obj)]


# ------------------------------------------------------------------------------------------------
# COCO RLE (compressed), compatible with pycocotools' rleToString / rleFrString

_RLE_GROUPS = 12  # 5-bit groups per count; 60 bits cover any image (and keep shifts below 64)


def _runs(mask: np.ndarray) -> np.ndarray:
    """Column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(0, np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).astype(np.int64)
    return np.concatenate(([0], runs)) if flat[0] else runs


def _counts_to_string(cnts: np.ndarray) -> str:
    x = cnts.astype(np.int64).copy()
    # pycocotools stores each count as a delta against the count two back (same colour)
    x[3:] -= cnts[1:-2]
    shifts = 5 * np.arange(_RLE_GROUPS, dtype=np.int64)
    c = (x[:, None] >> shifts) & 0x1F          # arithmetic shift: the sign carries along
    rest = x[:, None] >> (shifts + 5)
    more = np.where((c & 0x10) != 0, rest != -1, rest != 0)
    nchars = np.argmin(more, axis=1) + 1       # up to the first group that ends the number
    keep = np.arange(_RLE_GROUPS) < nchars[:, None]
    codes = np.where(more, c | 0x20, c) + 48
    return codes[keep].astype(np.uint8).tobytes().decode("ascii")


def _string_to_counts(s: str, limit: int) -> np.ndarray:
    """Run lengths of a compressed RLE string; `limit` (the image's pixel count) bounds each delta,
    so that undoing the deltas cannot overflow int64 (a wrapped sum once passed the size check)."""
    try:
        b = np.frombuffer(s.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise RegionDataError("counts", "not a COCO RLE string (non-ASCII characters)") from None
    if b.size == 0:
        return np.zeros(0, np.int64)
    if ((b < 0) | (b > 63)).any():
        raise RegionDataError("counts", "not a COCO RLE string (characters outside '0'..'o')")
    ends = (b & 0x20) == 0
    if not ends[-1]:
        raise RegionDataError("counts", "truncated COCO RLE string")
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    group = np.cumsum(np.concatenate(([0], ends[:-1].astype(np.int64))))
    k = np.arange(b.size) - starts[group]     # position of each char inside its number
    if k.max() >= _RLE_GROUPS:
        raise RegionDataError("counts", "COCO RLE count too large")
    x = np.add.reduceat((b & 0x1F) << (5 * k), starts)
    nk = k[ends] + 1
    neg = (b[ends] & 0x10) != 0
    x[neg] |= np.left_shift(np.int64(-1), 5 * nk[neg])   # sign extension
    if x.size and int(np.abs(x).max()) > limit:
        raise RegionDataError("counts", "a run longer than the image")
    cnts = x.copy()
    cnts[1::2] = np.cumsum(x[1::2])            # undo the deltas: index 3 adds 1, 5 adds 3, ...
    cnts[2::2] = np.cumsum(x[2::2])            # ... and 4 adds 2 (index 0 stands alone)
    return cnts


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2-D mask: `{"size": [h, w], "counts": str}` (pycocotools' format)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": _counts_to_string(_runs(m != 0))}


def decode_rle(rle: dict) -> np.ndarray:
    """Bool (h, w) mask of a COCO RLE, compressed (`counts` str) or uncompressed (list of ints)."""
    if not isinstance(rle, dict):
        raise RegionDataError("", "an RLE must be an object with 'size' and 'counts'")
    size = rle.get("size")
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise RegionDataError("size", "not [height, width] of non-negative integers")
    h, w = size
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        cnts = _string_to_counts(counts, h * w)
    elif isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
            raise RegionDataError("counts", "not a list of integers")
        cnts = np.asarray(counts, dtype=np.int64).reshape(-1)
    else:
        raise RegionDataError("counts", "missing, or neither a string nor a list of integers")
    if (cnts < 0).any():
        raise RegionDataError("counts", "negative run length")
    if cnts.size and int(cnts.max()) > h * w:
        # checked before the sum: int64 sums of huge runs wrap around (and np.repeat then overruns)
        raise RegionDataError("counts", "a run longer than the image")
    if int(cnts.sum()) != h * w:
        raise RegionDataError("counts", f"runs cover {int(cnts.sum())} pixels, size {h}x{w} has {h * w}")
    values = np.zeros(cnts.size, dtype=bool)
    values[1::2] = True                        # runs alternate 0, 1, 0, ... starting with zeros
    return np.repeat(values, cnts).reshape((h, w), order="F")


# ------------------------------------------------------------------------------------------------
# IoU


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks of the same shape; 0.0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def box_iou(b1: Sequence[float] | None, b2: Sequence[float] | None, *, inclusive: bool = False) -> float:
    """IoU of two boxes (x1, y1, x2, y2); 0.0 if either is None or degenerate.

    inclusive=True: integer pixel boxes whose last row and column are inside (a box from pixel 0 to
    pixel 9 is 10 pixels wide), as PROxford's detection IoU counts them.
    """
    if b1 is None or b2 is None:
        return 0.0
    one = 1.0 if inclusive else 0.0
    ax1, ay1, ax2, ay2 = (float(v) for v in b1)
    bx1, by1, bx2, by2 = (float(v) for v in b2)
    iw = min(ax2, bx2) - max(ax1, bx1) + one
    ih = min(ay2, by2) - max(ay1, by1) + one
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (ax2 - ax1 + one) * (ay2 - ay1 + one) + (bx2 - bx1 + one) * (by2 - by1 + one) - inter
    return float(inter / union) if union > 0 else 0.0


def _mask_box(m: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int] | None:
    cols = np.flatnonzero(m.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(m.any(axis=1))
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1]))


def pair_ious(pred: "Region | None", label: "Region", height: int, width: int) -> tuple[float, float]:
    """(mask IoU, box IoU) of a predicted region against a label in an image of this size.

    Both regions are rasterized once, in the window around them; the box IoU compares the pixel
    boxes around the two rasterized regions (inclusive), so a perfect mask is also a perfect box.
    A missing or empty prediction scores (0, 0).
    """
    if pred is None or pred.is_empty or label.is_empty:
        return 0.0, 0.0
    window = _joint_window((pred, label), height, width)
    if window is None:
        return 0.0, 0.0
    x0, y0, w, h = window
    a = pred._raster(x0, y0, w, h)
    b = label._raster(x0, y0, w, h)
    return mask_iou(a, b), box_iou(_mask_box(a, x0, y0), _mask_box(b, x0, y0), inclusive=True)


def _joint_window(regions: Iterable["Region"], height: int, width: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, w, h): the image pixels that the rounded vertices of these regions can reach."""
    bounds = [r._geom.bounds for r in regions if not r.is_empty]
    if not bounds:
        return None
    b = np.round(np.asarray(bounds, dtype=np.float64))
    x0 = int(max(0.0, b[:, 0].min()))
    y0 = int(max(0.0, b[:, 1].min()))
    x1 = int(min(width - 1.0, b[:, 2].max()))
    y1 = int(min(height - 1.0, b[:, 3].max()))
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


# ------------------------------------------------------------------------------------------------


class Region:
    """An immutable region: a valid shapely Polygon or MultiPolygon (empty: `Region.empty()`).

    Equality is geometric (same point set, whatever the vertex order); regions are hashable.
    """

    __slots__ = ("_geom",)

    def __init__(self, geometry: BaseGeometry | None = None):
        object.__setattr__(self, "_geom", _polygonal(geometry))

    def __setattr__(self, name, value):
        raise AttributeError("Region is immutable")

    def __delattr__(self, name):
        raise AttributeError("Region is immutable")

    def __reduce__(self):
        return (_region_from_wkb, (shapely.to_wkb(self._geom),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> Region:
        return cls(None)

    @classmethod
    def from_geometry(cls, geometry: BaseGeometry) -> Region:
        """Any shapely geometry; its polygonal part is kept (lines and points have no area)."""
        return cls(geometry)

    @classmethod
    def from_polygons(cls, polygons: Iterable[Sequence[Sequence[float]]]) -> Region:
        """The union of the filled polygons (`[[x, y], ...]` each).

        Self-intersecting polygons are repaired (shapely make_valid: a bow-tie becomes its two
        lobes; a spike or a collapsed edge stays as a sliver thinner than a pixel, which is what
        fillPoly draws for it); polygons with fewer than 3 points are ignored.
        """
        parts = []
        for k, p in enumerate(polygons):
            a = np.asarray(p, dtype=np.float64)
            if a.size == 0:
                continue
            if a.ndim != 2 or a.shape[1] != 2:
                raise ValueError(f"polygon {k}: expected a list of [x, y] points, got shape {a.shape}")
            if len(a) < 3:
                continue
            if not np.isfinite(a).all():
                raise ValueError(f"polygon {k}: coordinates must be finite")
            g = Polygon(a)
            parts.append(g if g.is_valid else _repair(g))
        if not parts:
            return cls.empty()
        # a single polygon keeps its vertices exactly (a union could re-node them), so that
        # to_mask covers the pixels of the very polygon given
        return cls(parts[0] if len(parts) == 1 else shapely.union_all(parts))

    @classmethod
    def from_bbox(cls, x1: float, y1: float, x2: float, y2: float) -> Region:
        xa, xb = sorted((float(x1), float(x2)))
        ya, yb = sorted((float(y1), float(y2)))
        return cls(_shapely_box(xa, ya, xb, yb))

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> Region:
        """The region of a mask's nonzero pixels, holes included; `to_mask` gives the mask back.

        Outer contours and hole contours come from cv2.findContours (RETR_CCOMP); both trace the
        centres of the region's own boundary pixels. One-pixel-thin parts (lines, lone pixels)
        get a small width so they are not lost.
        """
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
        m = np.ascontiguousarray(m != 0, dtype=np.uint8)
        if not m.any():
            return cls.empty()
        contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        hier = hierarchy.reshape(-1, 4)  # next, previous, first child, parent
        parts = []
        for i, contour in enumerate(contours):
            if hier[i, 3] != -1:
                continue  # a hole: built with its outer contour
            holes = []
            child = hier[i, 2]
            while child != -1:
                holes.append(contours[child].reshape(-1, 2).astype(np.float64))
                child = hier[child, 0]
            parts.append(_contour_geometry(contour.reshape(-1, 2).astype(np.float64), holes))
        return cls(parts[0] if len(parts) == 1 else shapely.union_all(parts))

    @classmethod
    def from_rle(cls, rle: dict) -> Region:
        """From COCO RLE (compressed or not); RegionDataError on malformed input."""
        return cls.from_mask(decode_rle(rle))

    @classmethod
    def from_json(cls, data) -> Region:
        """Inverse of `to_json`; RegionDataError (a ValueError with `.where`) on malformed input."""
        if not isinstance(data, dict) or "polygons" not in data:
            raise RegionDataError("", "a region must be an object with 'polygons'")
        polys = data["polygons"]
        if not isinstance(polys, list):
            raise RegionDataError("polygons", "not a list")
        parts = []
        for k, rings in enumerate(polys):
            if not isinstance(rings, list) or not rings:
                raise RegionDataError(f"polygons[{k}]", "not a non-empty list of rings (exterior first)")
            xy = [_check_points(r, f"polygons[{k}][{j}]") for j, r in enumerate(rings)]
            for j, r in enumerate(xy):
                if len(r) < 3:
                    raise RegionDataError(f"polygons[{k}][{j}]", "a ring needs at least 3 points")
            parts.append(shapely.make_valid(Polygon(xy[0], xy[1:])))
        if not parts:
            return cls.empty()
        return cls(parts[0] if len(parts) == 1 else shapely.union_all(parts))

    # -- properties --------------------------------------------------------------------------

    @property
    def geometry(self) -> Polygon | MultiPolygon:
        return self._geom

    @property
    def is_empty(self) -> bool:
        return self._geom.is_empty

    @property
    def area(self) -> float:
        """Geometric area in square pixels (the mask's pixel count is a little larger: see to_mask)."""
        return float(self._geom.area)

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(x1, y1, x2, y2) of the vertices, or None when empty."""
        if self.is_empty:
            return None
        return tuple(float(v) for v in self._geom.bounds)

    bbox = bounds

    def _parts(self) -> list[Polygon]:
        return list(_iter_polygons(self._geom))

    # -- conversions -------------------------------------------------------------------------

    def polygons(self) -> list[list[list[float]]]:
        """Exterior rings only, `[[[x, y], ...], ...]` (the bench contract and LabelMe have no holes)."""
        return [_ring_xy(p.exterior).tolist() for p in self._parts()]

    def polygons_with_holes(self) -> list[list[list[list[float]]]]:
        """Each polygon as a list of rings, exterior first, then its holes (GeoJSON order, unclosed)."""
        return [[_ring_xy(p.exterior).tolist()] + [_ring_xy(r).tolist() for r in p.interiors]
                for p in self._parts()]

    def to_json(self) -> dict:
        return {"polygons": self.polygons_with_holes()}

    def to_mask(self, height: int, width: int) -> np.ndarray:
        """Bool (height, width) mask: the pixels whose centres the polygon, its vertices rounded to
        pixel centres, covers (module doc); the same whatever the OpenCV version."""
        return self._raster(0, 0, int(width), int(height)).astype(bool)

    def window_mask(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """Bool (height, width): `to_mask` of the image window whose top-left pixel is (x0, y0)."""
        return self._raster(int(x0), int(y0), int(width), int(height)).astype(bool)

    def pixel_box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """Inclusive pixel box (c1, r1, c2, r2) of `to_mask(height, width)`, or None if no pixel."""
        window = _joint_window((self,), height, width)
        if window is None:
            return None
        x0, y0, w, h = window
        return _mask_box(self._raster(x0, y0, w, h), x0, y0)

    def _raster(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """uint8 (h, w) rasterization of the image window whose top-left pixel is (x0, y0)."""
        out = np.zeros((max(h, 0), max(w, 0)), np.uint8)
        if self.is_empty or w <= 0 or h <= 0:
            return out
        geom = self._geom
        # Far-away vertices (a warp near the horizon) would overflow the integer edge arithmetic;
        # cutting the geometry well outside the window moves an edge inside it by < 0.5 px.
        margin = 4 * max(w, h) + 16
        bx0, by0, bx1, by1 = geom.bounds
        if bx0 < x0 - margin or by0 < y0 - margin or bx1 > x0 + w + margin or by1 > y0 + h + margin:
            geom = _polygonal(geom.intersection(
                _shapely_box(x0 - margin, y0 - margin, x0 + w + margin, y0 + h + margin)))
        for part in _iter_polygons(geom):
            ext = _ring_pixels(part.exterior)
            # each part in its own box (holes may hold islands of other parts), then OR-ed in
            cx0, cy0 = np.maximum(ext.min(axis=0), (x0, y0))
            cx1, cy1 = np.minimum(ext.max(axis=0), (x0 + w - 1, y0 + h - 1))
            if cx1 < cx0 or cy1 < cy0:
                continue
            box = (int(cx0), int(cy0), int(cx1 - cx0 + 1), int(cy1 - cy0 + 1))
            canvas = _cover(ext, *box)
            for ring in part.interiors:
                # a hole's ring passes through the centres of boundary pixels that belong to the
                # region (as findContours traces them): clear only what is strictly inside
                canvas &= ~_cover(_ring_pixels(ring), *box, boundary=False)
            out[cy0 - y0:cy1 - y0 + 1, cx0 - x0:cx1 - x0 + 1] |= canvas
        return out

    def to_rle(self, height: int, width: int) -> dict:
        """COCO compressed RLE of `to_mask(height, width)`."""
        return encode_rle(self.to_mask(height, width))

    # -- geometry ----------------------------------------------------------------------------

    def transform(self, H: np.ndarray, *, max_segment: float | None = None) -> Region:
        """Warp every vertex by the 3x3 homography H (x' ~ H x); returns a valid region.

        Only the part in front of the camera is kept (one side of the horizon line H[2]·(x, y, 1)
        = 0, the side holding most of the region): across that line a projective map tears the
        plane apart. On that side a homography maps straight edges to straight edges, so warping
        the vertices is exact; `max_segment` (pixels) densifies edges first for callers that want
        more vertices to edit.
        """
        H = np.asarray(H, dtype=np.float64)
        if H.shape != (3, 3) or not np.isfinite(H).all():
            raise ValueError(f"expected a finite 3x3 homography, got {H.shape}")
        if self.is_empty:
            return self
        g = self._geom
        a, b, c = H[2]
        x1, y1, x2, y2 = g.bounds
        corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
        wv = corners @ (a, b) + c
        if (wv <= 0).any():
            # a relative margin keeps warped points finite
            eps = 1e-9 * float(np.abs(wv).max() or 1.0)
            pad = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
            box = corners + pad
            front = g.intersection(_convex(_halfplane_clip(box, a, b, c - eps)))
            back = g.intersection(_convex(_halfplane_clip(box, -a, -b, -c - eps)))
            g = front if front.area >= back.area else back
            if g.is_empty:
                return Region.empty()
        if max_segment:
            g = shapely.segmentize(g, float(max_segment))

        def warp(xy: np.ndarray) -> np.ndarray:
            p = xy @ H[:, :2].T + H[:, 2]
            return p[:, :2] / p[:, 2:3]

        return Region(shapely.transform(g, warp))

    def clip(self, width: int, height: int) -> Region:
        """The part inside the image: vertices stay within [0, width-1] x [0, height-1]."""
        if self.is_empty:
            return self
        return Region(self._geom.intersection(_shapely_box(0, 0, width - 1, height - 1)))

    def union(self, other: Region) -> Region:
        return Region(self._geom.union(other._geom))

    def intersection(self, other: Region) -> Region:
        return Region(self._geom.intersection(other._geom))

    def difference(self, other: Region) -> Region:
        return Region(self._geom.difference(other._geom))

    def buffer(self, px: float) -> Region:
        """Grown (px > 0) or shrunk (px < 0) by px pixels."""
        return Region(self._geom.buffer(float(px)))

    def simplify(self, tol: float) -> Region:
        """Fewer vertices, within tol pixels of the original, topology kept."""
        return Region(self._geom.simplify(float(tol), preserve_topology=True))

    def contains_points(self, xy: np.ndarray) -> np.ndarray:
        """Bool (N,): which points (x, y) lie in the region, boundary included (as in to_mask)."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.is_empty or len(pts) == 0:
            return np.zeros(len(pts), dtype=bool)
        shapely.prepare(self._geom)  # shapely caches the prepared index on the geometry
        return shapely.intersects_xy(self._geom, pts[:, 0], pts[:, 1])

    # -- comparison --------------------------------------------------------------------------

    def iou(self, other: Region, height: int, width: int) -> float:
        """Mask IoU in an image of this size (rasterized as to_mask; 0.0 if both are empty)."""
        window = _joint_window((self, other), height, width)
        if window is None:
            return 0.0
        x0, y0, w, h = window
        return mask_iou(self._raster(x0, y0, w, h), other._raster(x0, y0, w, h))

    def box_iou(self, other: Region) -> float:
        """IoU of the two regions' continuous bounding boxes."""
        return box_iou(self.bounds, other.bounds)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Region):
            return NotImplemented
        if self.is_empty or other.is_empty:
            return self.is_empty and other.is_empty
        return bool(self._geom.equals(other._geom))

    def __hash__(self) -> int:
        # Geometrically equal regions share their extreme vertices, hence their bounds.
        return hash(()) if self.is_empty else hash(self._geom.bounds)

    def __repr__(self) -> str:
        if self.is_empty:
            return "Region.empty()"
        x1, y1, x2, y2 = self.bounds
        return (f"Region({len(self._parts())} polygon(s), area={self.area:.1f}, "
                f"bounds=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}))")


def _region_from_wkb(wkb: bytes) -> Region:
    return Region(shapely.from_wkb(wkb))


def _contour_geometry(shell: np.ndarray, holes: list[np.ndarray]) -> BaseGeometry:
    """One outer contour and its holes (pixel centres) -> geometry whose rasterization is the blob."""
    if len(shell) < 3 or Polygon(shell).area == 0.0:
        # a one-pixel-thin blob: a line or a lone pixel
        thin = LineString(shell) if len(np.unique(shell, axis=0)) > 1 else Point(shell[0])
        return thin.buffer(_THIN, cap_style="square", join_style="mitre")
    holes = [h for h in holes if len(h) >= 3 and Polygon(h).area > 0.0]
    g = Polygon(shell, holes)
    return g if g.is_valid else _repair(g)


def _repair(g: Polygon) -> BaseGeometry:
    """make_valid, keeping the pieces it reduces to lines or points (spikes, tails, diagonal
    bridges) as slivers narrower than a pixel: fillPoly draws those pixels, so we keep them."""
    fixed = shapely.make_valid(g)
    pieces = [p for p in _iter_polygons(fixed) if p.area > 0.0]
    for part in getattr(fixed, "geoms", [fixed]):
        if part.geom_type in ("LineString", "MultiLineString", "Point", "MultiPoint"):
            pieces.append(part.buffer(_THIN, cap_style="square", join_style="mitre"))
    return shapely.union_all(pieces) if pieces else _EMPTY
