"""PixBench sets (../shared/bench/FORMAT.md): revisitop's gnd.json plus LabelMe query and label files.

`load_pixbench` checks everything the metrics depend on (names, indices, disjoint easy/hard/junk
lists, boxes) and names the file and field at fault, e.g.
`gnd.json: gnd[3].easy[2]: index 400 out of range for imlist of 299`. Query and label polygons are
read when first asked for, and kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.errors import FormatError
from engine.base.regions import Region
from engine.formats.labelme import labelme_region, load_json, read_labelme

__all__ = ["GndEntry", "PixBench", "load_pixbench", "PROTOCOLS"]

PROTOCOLS = ("medium", "hard")


@dataclass(frozen=True)
class GndEntry:
    bbx: tuple[float, float, float, float]
    easy: tuple[int, ...]
    hard: tuple[int, ...]
    junk: tuple[int, ...]
    pixel_gt: bool


@dataclass(frozen=True, eq=False)
class PixBench:
    folder: Path
    imlist: tuple[str, ...]
    qimlist: tuple[str, ...]
    gnd: tuple[GndEntry, ...]
    _regions: dict = field(default_factory=dict, repr=False)
    _sizes: dict = field(default_factory=dict, repr=False)
    _index: dict = field(default_factory=dict, repr=False)
    _meta: dict = field(default_factory=dict, repr=False)  # meta.json, read when first asked for

    # -- paths ---------------------------------------------------------------------------------

    def image_path(self, name: str) -> Path:
        return self.folder / "jpg" / f"{name}.jpg"

    def query_path(self, q: int) -> Path:
        return self.folder / "queries" / f"{q}.json"

    def label_path(self, q: int, i: int) -> Path:
        return self.folder / "labels" / f"{q}_{i}.json"

    def index_of(self, name: str) -> int | None:
        """The imlist index of a database image name (no extension), or None."""
        if not self._index:
            self._index.update((n, i) for i, n in enumerate(self.imlist))
        return self._index.get(name)

    # -- regions -------------------------------------------------------------------------------

    def query_region(self, q: int) -> Region:
        """The query object's region in query image q (queries/<q>.json)."""
        self._check_q(q)
        key = ("q", q)
        if key not in self._regions:
            self._regions[key] = self._read_region(self.query_path(q), self.qimlist[q])
        return self._regions[key]

    def label_region(self, q: int, i: int) -> Region:
        """The query object's region in database image imlist[i] (labels/<q>_<i>.json)."""
        self._check_q(q)
        if not 0 <= i < len(self.imlist):
            raise IndexError(f"database index {i} out of range for imlist of {len(self.imlist)}")
        key = ("l", q, i)
        if key not in self._regions:
            self._regions[key] = self._read_region(self.label_path(q, i), self.imlist[i])
        return self._regions[key]

    def _read_region(self, path: Path, name: str) -> Region:
        if not path.exists():
            raise FormatError(path, "", "missing (gnd.json promises this file)")
        lm = read_labelme(path)
        if lm.width is not None and lm.height is not None:
            self._sizes.setdefault(name, (lm.width, lm.height))
        return labelme_region(lm)

    # -- sizes ---------------------------------------------------------------------------------

    def image_size(self, name: str) -> tuple[int, int]:
        """(width, height) of jpg/<name>.jpg as stored: from a LabelMe file already read for it, else
        from the JPEG header (EXIF rotations swap the two, as image loading applies them)."""
        if name not in self._sizes:
            from PIL import Image, UnidentifiedImageError

            path = self.image_path(name)
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    orientation = im.getexif().get(0x0112, 1)
            except (OSError, UnidentifiedImageError) as e:
                raise FormatError(path, "", f"cannot read the image size: {e}") from None
            self._sizes[name] = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        return self._sizes[name]

    # -- protocols -----------------------------------------------------------------------------

    def positives(self, q: int, protocol: str = "medium") -> tuple[int, ...]:
        """medium: easy + hard; hard: hard only (sorted imlist indices)."""
        e = self.gnd[q]
        if protocol == "medium":
            return tuple(sorted(e.easy + e.hard))
        if protocol == "hard":
            return tuple(sorted(e.hard))
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")

    def junk(self, q: int, protocol: str = "medium") -> tuple[int, ...]:
        """medium: junk; hard: easy + junk (ignored, neither right nor wrong)."""
        e = self.gnd[q]
        if protocol == "medium":
            return tuple(sorted(e.junk))
        if protocol == "hard":
            return tuple(sorted(e.easy + e.junk))
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")

    # -- query kinds ---------------------------------------------------------------------------

    def kinds(self) -> tuple[str, ...] | None:
        """Each query's kind (planar, mask, composite, image, mask3d, ...) from meta.json's
        queries[].kind, in qimlist order; None when the set has no meta.json. A query meta.json
        does not list is of kind "?"."""
        if "kinds" not in self._meta:
            path = self.folder / "meta.json"
            kinds = None
            if path.exists():
                d = load_json(path)
                entries = d.get("queries") if isinstance(d, dict) else None
                if not isinstance(entries, list):
                    raise FormatError(path, "queries", "missing or not a list")
                by_q: dict[int, str] = {}
                for k, e in enumerate(entries):
                    if not isinstance(e, dict) or isinstance(e.get("q"), bool) or not isinstance(e.get("q"), int) \
                            or not isinstance(e.get("kind"), str):
                        raise FormatError(path, f"queries[{k}]", "not an object with an integer q and a string kind")
                    by_q[e["q"]] = e["kind"]
                kinds = tuple(by_q.get(q, "?") for q in range(len(self.qimlist)))
            self._meta["kinds"] = kinds
        return self._meta["kinds"]

    def _check_q(self, q: int) -> None:
        if not 0 <= q < len(self.qimlist):
            raise IndexError(f"query index {q} out of range for qimlist of {len(self.qimlist)}")


def _names(d: dict, key: str, path: Path) -> tuple[str, ...]:
    v = d.get(key)
    if not isinstance(v, list):
        raise FormatError(path, key, "missing or not a list of names")
    seen: dict[str, int] = {}
    for k, n in enumerate(v):
        if not isinstance(n, str) or not n:
            raise FormatError(path, f"{key}[{k}]", "not a non-empty string")
        if "/" in n or "\\" in n:
            raise FormatError(path, f"{key}[{k}]", f"{n!r}: names are flat (no folders) and have no extension")
        if n in seen:
            raise FormatError(path, f"{key}[{k}]", f"duplicate name {n!r} (also {key}[{seen[n]}])")
        seen[n] = k
    return tuple(v)


def _indices(e: dict, key: str, where: str, n: int, path: Path) -> tuple[int, ...]:
    v = e.get(key)
    if not isinstance(v, list):
        raise FormatError(path, f"{where}.{key}", "missing or not a list of indices")
    for k, i in enumerate(v):
        if isinstance(i, bool) or not isinstance(i, int):
            raise FormatError(path, f"{where}.{key}[{k}]", f"not an integer index: {i!r}")
        if not 0 <= i < n:
            raise FormatError(path, f"{where}.{key}[{k}]", f"index {i} out of range for imlist of {n}")
    if len(set(v)) != len(v):
        raise FormatError(path, f"{where}.{key}", "repeated index")
    return tuple(v)


def _entry(e, k: int, n: int, path: Path) -> GndEntry:
    where = f"gnd[{k}]"
    if not isinstance(e, dict):
        raise FormatError(path, where, "not an object")
    bbx = e.get("bbx")
    if (not isinstance(bbx, list) or len(bbx) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbx)):
        raise FormatError(path, f"{where}.bbx", "not [x1, y1, x2, y2] of finite numbers")
    if bbx[2] < bbx[0] or bbx[3] < bbx[1]:
        raise FormatError(path, f"{where}.bbx", f"x2 < x1 or y2 < y1: {bbx}")
    lists = {key: _indices(e, key, where, n, path) for key in ("easy", "hard", "junk")}
    for a, b in (("easy", "hard"), ("easy", "junk"), ("hard", "junk")):
        both = sorted(set(lists[a]) & set(lists[b]))
        if both:
            raise FormatError(path, where, f"index {both[0]} is in both {a} and {b}")
    pixel_gt = e.get("pixel_gt", False)
    if not isinstance(pixel_gt, bool):
        raise FormatError(path, f"{where}.pixel_gt", "not true or false")
    return GndEntry(tuple(float(v) for v in bbx), lists["easy"], lists["hard"], lists["junk"], pixel_gt)


def load_pixbench(folder) -> PixBench:
    """Read and check a PixBench set's gnd.json; FormatError names the file and field at fault."""
    folder = Path(folder)
    path = folder / "gnd.json"
    if not folder.is_dir():
        raise FormatError(folder, "", "not a folder")
    d = load_json(path)
    if not isinstance(d, dict):
        raise FormatError(path, "", "not an object with imlist, qimlist and gnd")
    imlist = _names(d, "imlist", path)
    qimlist = _names(d, "qimlist", path)
    gnd = d.get("gnd")
    if not isinstance(gnd, list):
        raise FormatError(path, "gnd", "missing or not a list")
    if len(gnd) != len(qimlist):
        raise FormatError(path, "gnd", f"{len(gnd)} entries for {len(qimlist)} queries in qimlist")
    entries = tuple(_entry(e, k, len(imlist), path) for k, e in enumerate(gnd))
    return PixBench(folder, imlist, qimlist, entries)
