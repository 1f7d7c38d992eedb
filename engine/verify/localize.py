"""The predicted region in a verified image.

With a plausible homography, the query region warped into the database image and clipped to it
(faithful for planar objects, and a good outline for most landmarks). Without one, or when the warp
is degenerate (almost nothing left after clipping, or a sliver), the convex hull of the inliers.
"""
from __future__ import annotations

import numpy as np
import shapely

from engine.base.regions import Region

MIN_AREA_PX = 16.0


def warp_region(query_region: Region, H: np.ndarray, width: int, height: int) -> Region | None:
    warped = query_region.transform(H).clip(width, height)
    if warped.is_empty or warped.area < MIN_AREA_PX:
        return None
    return warped


def hull_region(points: np.ndarray, width: int, height: int) -> Region | None:
    """Convex hull of database points (the inliers), clipped to the image."""
    if len(points) < 3:
        return None
    hull = shapely.convex_hull(shapely.multipoints(np.asarray(points, np.float64)))
    region = Region.from_geometry(hull).clip(width, height)
    return None if region.is_empty or region.area < MIN_AREA_PX else region


def predicted_region(query_region: Region, H: np.ndarray | None, inlier_xy: np.ndarray,
                     width: int, height: int) -> Region | None:
    if H is not None:
        region = warp_region(query_region, H, width, height)
        if region is not None:
            return region
    return hull_region(inlier_xy, width, height)
