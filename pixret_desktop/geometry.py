"""Small geometry glue between engine.base.regions.Region (shapely-backed) and the canvas.

No algorithms: conversions (Region <-> shapely <-> QPainterPath), the shapes the tools make
(a brush stroke is a buffered polyline, a rectangle, a polygon), and the box-clipped replacement
that lets an undo step store only the part of the region it changed.
"""
from __future__ import annotations

import numpy as np
import shapely
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainterPath, QPolygonF
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry import box as shapely_box
from shapely.geometry.base import BaseGeometry

from engine.base.regions import Region

BRUSH_QUAD_SEGS = 8  # segments per quarter circle of a brush stroke's round ends


def shape_of(region: Region | None) -> BaseGeometry:
    if region is None:
        return Polygon()
    return region.geometry


def region_of(geom: BaseGeometry) -> Region:
    return Region.from_geometry(_areal(geom))


def _areal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygonal part (an overlay can leave points and lines along shared edges)."""
    if geom.is_empty:
        return Polygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    return shapely.unary_union(polys) if polys else Polygon()


def empty_region() -> Region:
    return region_of(Polygon())


def polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [g for g in geom.geoms if isinstance(g, Polygon) and not g.is_empty]


def same_shape(a: Region | None, b: Region | None, tol: float = 1e-6) -> bool:
    ga, gb = shape_of(a), shape_of(b)
    if ga.is_empty and gb.is_empty:
        return True
    if ga.is_empty != gb.is_empty:
        return False
    return ga.symmetric_difference(gb).area <= tol * max(ga.area, gb.area, 1.0)


# -- tools' shapes ------------------------------------------------------------------------------


def stroke(points, radius: float) -> BaseGeometry:
    """A brush stroke: the polyline through the points, buffered by the radius (round caps)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return Polygon()
    if len(pts) == 1 or np.allclose(pts, pts[0]):
        return Point(pts[0]).buffer(radius, quad_segs=BRUSH_QUAD_SEGS)
    return LineString(pts).buffer(radius, quad_segs=BRUSH_QUAD_SEGS)


def rectangle(x0, y0, x1, y1) -> Polygon:
    return shapely_box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def polygon(points) -> BaseGeometry:
    return _areal(Polygon(np.asarray(points, np.float64)))


# -- box-clipped change (undo steps store only this) --------------------------------------------


def change_box(*geoms: BaseGeometry, pad: float = 1.0):
    """The bounding box of everything an edit touched, padded a little."""
    bounds = [g.bounds for g in geoms if g is not None and not g.is_empty]
    if not bounds:
        return None
    b = np.array(bounds)
    return (b[:, 0].min() - pad, b[:, 1].min() - pad, b[:, 2].max() + pad, b[:, 3].max() + pad)


def _combine(polys: list[Polygon]) -> BaseGeometry:
    """Polygons as one geometry; disjoint ones are kept exactly as they are (no overlay that
    could re-node them), touching or overlapping ones are merged."""
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    if not polys:
        return Polygon()
    if len(polys) == 1:
        return polys[0]
    multi = MultiPolygon(polys)
    return multi if multi.is_valid else _areal(shapely.unary_union(polys))


def clip(geom: BaseGeometry, bx) -> BaseGeometry:
    """The part of geom inside the box (polygons wholly inside are kept untouched)."""
    b, out = shapely_box(*bx), []
    for p in polygons(geom):
        if b.contains(p):
            out.append(p)
        elif b.intersects(p):
            out.extend(polygons(_areal(p.intersection(b))))
    return _combine(out)


def replace_in_box(geom: BaseGeometry, bx, part: BaseGeometry) -> BaseGeometry:
    """geom outside the box, plus `part` (which lies inside it)."""
    b, keep = shapely_box(*bx), []
    for p in polygons(geom):
        if not b.intersects(p):
            keep.append(p)
        elif not b.contains(p):
            keep.extend(polygons(_areal(p.difference(b))))
    return _combine(keep + polygons(part))


# -- drawing ------------------------------------------------------------------------------------


def _ring_polygon(coords) -> QPolygonF:
    return QPolygonF([QPointF(float(x), float(y)) for x, y in coords])


def geometry_to_path(geom: BaseGeometry) -> QPainterPath:
    """Filled outline: each polygon's shell and holes as subpaths, odd-even fill."""
    path = QPainterPath()
    path.setFillRule(Qt.OddEvenFill)
    for p in polygons(geom):
        path.addPolygon(_ring_polygon(p.exterior.coords))
        path.closeSubpath()
        for hole in p.interiors:
            path.addPolygon(_ring_polygon(hole.coords))
            path.closeSubpath()
    return path


def region_to_path(region: Region | None) -> QPainterPath:
    return geometry_to_path(shape_of(region))


def polyline_path(points, closed: bool = False) -> QPainterPath:
    path = QPainterPath()
    if len(points):
        path.moveTo(QPointF(*points[0]))
        for p in points[1:]:
            path.lineTo(QPointF(*p))
        if closed:
            path.closeSubpath()
    return path


# -- vertex editing -------------------------------------------------------------------------------


def rings(geom: BaseGeometry) -> list[tuple[int, int, np.ndarray]]:
    """(polygon index, ring index (0 = shell), vertices without the closing repeat) of every ring."""
    out = []
    for pi, p in enumerate(polygons(geom)):
        out.append((pi, 0, np.asarray(p.exterior.coords)[:-1]))
        for ri, hole in enumerate(p.interiors, 1):
            out.append((pi, ri, np.asarray(hole.coords)[:-1]))
    return out


def with_ring(geom: BaseGeometry, pi: int, ri: int, vertices) -> tuple[BaseGeometry, BaseGeometry, BaseGeometry]:
    """Replace one ring's vertices. Returns (new geometry, the old polygon, the new polygon(s)).

    A ring left with fewer than 3 vertices disappears (a shell takes its polygon with it).
    """
    polys = polygons(geom)
    old = polys[pi]
    shell = np.asarray(old.exterior.coords)[:-1]
    holes = [np.asarray(h.coords)[:-1] for h in old.interiors]
    vertices = np.asarray(vertices, np.float64).reshape(-1, 2)
    if ri == 0:
        shell = vertices
    else:
        holes[ri - 1] = vertices
    if len(shell) < 3:
        new = Polygon()
    else:
        new = _areal(Polygon(shell, [h for h in holes if len(h) >= 3]))
    others = [p for i, p in enumerate(polys) if i != pi]
    return _combine(others + polygons(new)), old, new


def key_vertices(ring: np.ndarray, tol: float, most: int = 80) -> np.ndarray:
    """The indices of a closed ring's vertices that carry its shape: Douglas-Peucker at `tol` (raised
    until at most `most` are left), never fewer than 3. A traced outline (a brush stroke, a topo
    region) has hundreds of vertices; editing needs a handle only where the shape turns."""
    n = len(ring)
    if n <= 3:
        return np.arange(n)
    v = np.asarray(ring, np.float64)
    far = int(np.argmax(np.hypot(*(v - v[0]).T)))
    while True:
        keep = np.zeros(n, bool)
        keep[[0, far]] = True
        stack = [(0, far), (far, n)]  # (start, end) with end == n meaning the ring's vertex 0 again
        while stack:
            a, b = stack.pop()
            if b - a < 2:
                continue
            p, q = v[a], v[b % n]
            inner = v[a + 1:b]
            d = q - p
            length = float(np.hypot(*d))
            if length < 1e-12:
                dist = np.hypot(*(inner - p).T)
            else:
                dist = np.abs(d[0] * (inner[:, 1] - p[1]) - d[1] * (inner[:, 0] - p[0])) / length
            k = int(np.argmax(dist))
            if dist[k] > tol:
                keep[a + 1 + k] = True
                stack += [(a, a + 1 + k), (a + 1 + k, b)]
        idx = np.flatnonzero(keep)
        if len(idx) <= most or tol <= 0:
            break
        tol *= 1.5
    if len(idx) < 3:
        idx = np.unique(np.r_[idx, [0, n // 3, 2 * n // 3]])
    return idx
