"""Import existing labels (LabelMe, COCO, PixBench, revisitop/PROxford gnd .pkl) as reviewed searches.

Each object of the source becomes a saved search (QueryRow, method 'import:<format>') with its
query image and region, and every image the object is outlined in becomes a hit with an 'accepted'
annotation (author 'import:<format>', difficulty easy/hard/junk as the source says), so the review
screen shows it and `export` writes it out again. Negatives the source lists (our COCO extension)
become 'rejected' decisions.

What makes an object:
- pixbench / revisitop: one per query of qimlist; its positives are easy + hard (+ junk, kept as
  difficulty 'junk'), outlined by labels/<q>_<i>.json (revisitop: by the PROxford
  <set>_pair2labelpath.npy or labels/ next to the .pkl; the query region from queries/<q>.json,
  else the box bbx). A positive without a label is an image-level positive: accepted, no region.
- coco: annotations with the same `pixret.object` (our exports), else the same instance id
  (instance_id, track_id, object_id), else the same category. The query is the annotation whose
  `pixret.role` is 'query', else the group's first annotation.
- labelme: shapes with the same label and group_id across the files (LabelMe's own notion of one
  object); shapes of one object in one image are united. The query is the shape flagged "query",
  else the object's first file in path order.

Images are matched to the project's collection by collection-relative path (also any trailing part
of the path given), by flat PixBench name ('a__b__c' for a/b/c.jpg; our exports also carry each
name's source path), by a file name stem that is unique in the collection, and last by content
(sha256 of the file the source points to). Images that match nothing are reported and skipped.

Only files inside the source dataset's folder are ever opened: a file name (COCO `file_name`,
LabelMe `imagePath`, a gnd name, a pair2labelpath entry) that is absolute or climbs out of the
folder with '..' is used as a name to look for in the collection and nothing else (a warning says
so; a label path is an error), so no outside file is hashed, kept as a query image or copied by a
later export. Names too long for the file system are names that match nothing, not tracebacks.

Nothing is written until the whole source has been read and checked: a malformed file raises
FormatError naming the file and the field; the rows of an import go in one catalog transaction, so
a failure or a cancel leaves the project as it was.
"""
from __future__ import annotations

import os
import posixpath
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from engine.annotate.objects import new_object
from engine.base.errors import FormatError, PixretError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.base.regions import Region
from engine.catalog.tables import AnnotationRow, HitRow, ImageRow, QueryRow
from engine.formats import coco as coco_format
from engine.formats import revisitop
from engine.formats.destination import LEGACY_MANIFEST, MARKER
from engine.formats.export import flat_name
from engine.formats.labelme import labelme_region, load_json, read_labelme, shape_region
from engine.formats.pixbench import load_pixbench
from engine.formats.revisitop import short_repr
from engine.ingest.imageio import SUPPORTED_SUFFIXES, file_sha256

__all__ = ["IMPORT_FORMATS", "ImportReport", "import_annotations", "read_source", "SourceObject", "SourceItem",
           "ImageRef"]

IMPORT_FORMATS = ("pixbench", "coco", "labelme", "revisitop")
MAX_COORD = coco_format.MAX_COORD
_STAGE_KEY = "_stage"    # engine.annotate.review keeps a hit's stage under this evidence key


@dataclass(frozen=True)
class ImageRef:
    names: tuple[str, ...]       # how the source names the image, best guess first
    file: Path | None = None     # the file in the source dataset, when there is one

    def __str__(self) -> str:
        return self.names[0] if self.names else str(self.file)


@dataclass
class SourceItem:
    image: ImageRef
    region: Region | None
    difficulty: str = "easy"
    kind: str = "accepted"       # accepted | rejected


@dataclass
class SourceObject:
    name: str
    label: str
    query: ImageRef
    region: Region
    items: list[SourceItem] = field(default_factory=list)
    query_name: str | None = None   # the query image's own name in a PixBench/revisitop set (kept on export)


@dataclass
class ImportReport:
    format: str
    source: Path
    n_objects: int = 0
    n_annotations: int = 0
    n_rejected: int = 0
    query_ids: list[int] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    matched: list[tuple[str, str, str]] = field(default_factory=list)  # (object, source image, collection path)

    def summary(self) -> str:
        return (f"imported {self.n_objects} objects with {self.n_annotations} outlines and {self.n_rejected} "
                f"negatives from {self.source} ({self.format}); {len(self.unmatched)} unmatched")


# ------------------------------------------------------------------------------------------------
# reading, strictly


@contextmanager
def _guard(path: Path, where: str = ""):
    """Decoding limits of untrusted input are format errors too."""
    try:
        yield
    except RecursionError:
        raise FormatError(path, where, "nested too deeply") from None
    except MemoryError:
        raise FormatError(path, where, "too large to read") from None


def _json(path: Path):
    with _guard(path):
        return load_json(path)


def _checked(region: Region, path: Path, where: str) -> Region:
    b = region.bounds
    if b is not None and not all(abs(v) <= MAX_COORD for v in b):
        raise FormatError(path, where, "coordinates far outside any image")
    return region


def _check_points(lm, path: Path) -> None:
    """Coordinates far outside any image are a damaged file (and would overflow the geometry)."""
    for s in lm.shapes:
        if not all(abs(v) <= MAX_COORD for p in s.points for v in p):
            raise FormatError(path, f"shapes[{s.index}].points", "coordinates far outside any image")


def _labelme_file_region(path: Path) -> Region | None:
    with _guard(path):
        lm = read_labelme(path)
        _check_points(lm, path)
        try:
            region = labelme_region(lm)
        except (ValueError, ArithmeticError) as e:
            raise FormatError(path, "shapes", f"not a usable outline: {e}") from None
    region = _checked(region, path, "shapes")
    return None if region.is_empty else region


def _climbs_out(rel: str) -> bool:
    """An absolute path (POSIX, Windows drive or UNC), or one whose '..' lead out of its folder."""
    rel = rel.replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":") or "\x00" in rel:
        return True
    norm = posixpath.normpath(rel)
    return norm == ".." or norm.startswith("../")


def _file_in(folder: Path, rel: str) -> Path | None:
    """The file `rel` names inside `folder`, or None: no such file, a name the file system cannot
    hold, or a path out of the folder (absolute, '..', or a symbolic link leading out)."""
    if _climbs_out(rel):
        return None
    try:
        p = folder / rel.replace("\\", "/")
        if not p.is_file() or not p.resolve().is_relative_to(folder.resolve()):
            return None
        return p
    except (OSError, ValueError):
        return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _dataset_image(folder: Path, name: str) -> Path | None:
    for rel in (f"jpg/{name}.jpg", f"{name}.jpg", f"jpg/{name}", name):
        found = _file_in(folder, rel)
        if found is not None:
            return found
    return None


def _manifest_sources(folder: Path) -> dict[str, str]:
    path = next((folder / n for n in (MARKER, LEGACY_MANIFEST) if _is_file(folder / n)), None)
    if path is None:
        return {}
    d = _json(path)
    src = d.get("sources", {}) if isinstance(d, dict) else None
    if not isinstance(src, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in src.items()):
        raise FormatError(path, "sources", "not an object {name: source path}")
    return src


def _ref(name: str, folder: Path, sources: dict[str, str]) -> ImageRef:
    names = tuple(n for n in (sources.get(name), name) if n)
    return ImageRef(names, _dataset_image(folder, name))


def _read_pixbench(folder: Path, report: ImportReport, cancel: CancelToken, progress: Progress) -> list[SourceObject]:
    if folder.is_file():
        folder = folder.parent
    with _guard(folder / "gnd.json"):
        bench = load_pixbench(folder)
    sources = _manifest_sources(folder)
    objects = []
    for q, qname in enumerate(bench.qimlist):
        cancel.raise_if_set()
        qpath = bench.query_path(q)
        region = _labelme_file_region(qpath) if qpath.exists() else None
        if region is None:
            x1, y1, x2, y2 = bench.gnd[q].bbx
            if x2 <= x1 or y2 <= y1:
                raise FormatError(qpath, "", "missing or empty, and gnd.json's bbx is empty too")
            region = _checked(Region.from_bbox(*bench.gnd[q].bbx), folder / "gnd.json", f"gnd[{q}].bbx")
        label = _first_label(qpath) if qpath.exists() else "object"
        obj = SourceObject(qname, label, _ref(qname, folder, sources), region, query_name=qname)
        e = bench.gnd[q]
        for diff, idx in (("easy", e.easy), ("hard", e.hard), ("junk", e.junk)):
            for i in idx:
                lpath = bench.label_path(q, i)
                reg = _labelme_file_region(lpath) if lpath.exists() else None
                if reg is None and diff != "junk" and e.pixel_gt:
                    raise FormatError(lpath, "", "missing (gnd.json promises this file: pixel_gt is true)")
                obj.items.append(SourceItem(_ref(bench.imlist[i], folder, sources), reg, diff))
        objects.append(obj)
        progress(q + 1, len(bench.qimlist), "reading")
    return objects


def _first_label(path: Path) -> str:
    with _guard(path):
        lm = read_labelme(path)
    return next((s.label for s in lm.shapes if s.label), "object")


def _read_revisitop(path: Path, report: ImportReport, cancel: CancelToken, progress: Progress) -> list[SourceObject]:
    if path.is_dir():
        pkls = sorted(path.glob("gnd_*.pkl"))
        if len(pkls) != 1:
            raise FormatError(path, "", f"expected one gnd_<name>.pkl in the folder, found {len(pkls)}")
        path = pkls[0]
    g = revisitop.read_gnd_pkl(path)
    folder = path.parent
    set_name = path.stem[4:] if path.stem.startswith("gnd_") else path.stem
    pair2label: dict[tuple[int, int], Path] = {}
    npys = [folder / f"{set_name}_pair2labelpath.npy"]
    if not npys[0].is_file():
        npys = sorted(folder.glob("*_pair2labelpath.npy"))
    if len(npys) == 1 and npys[0].is_file():
        for k, v in revisitop.read_pair2labelpath(npys[0]).items():
            if _climbs_out(v):
                raise FormatError(npys[0], f"{k[0]}_{k[1]}", f"label path {short_repr(v)} is absolute or climbs "
                                  "out of the dataset folder: refused")
            pair2label[k] = folder / v
    elif len(npys) > 1:
        report.warnings.append(f"{folder}: several *_pair2labelpath.npy and none named {set_name}; using labels/")
    sources = _manifest_sources(folder)
    objects = []
    for q, qname in enumerate(g.qimlist):
        cancel.raise_if_set()
        qpath = folder / "queries" / f"{q}.json"
        region = _labelme_file_region(qpath) if qpath.is_file() else None
        if region is None:
            if g.bbx[q] is None or g.bbx[q][2] <= g.bbx[q][0] or g.bbx[q][3] <= g.bbx[q][1]:
                raise FormatError(path, f"gnd[{q}].bbx", "missing or empty, and no queries/<q>.json either")
            region = Region.from_bbox(*g.bbx[q])
        obj = SourceObject(qname, _first_label(qpath) if qpath.is_file() else "object",
                           _ref(qname, folder, sources), region, query_name=qname)
        for diff, idx in (("easy", g.easy[q]), ("hard", g.hard[q]), ("junk", g.junk[q])):
            for i in idx:
                lpath = pair2label.get((q, i), folder / "labels" / f"{q}_{i}.json")
                reg = _labelme_file_region(lpath) if _is_file(lpath) else None
                if reg is None and diff != "junk" and (q, i) in pair2label:
                    raise FormatError(lpath, "", f"missing (the pair2labelpath file lists it for {q}_{i})")
                obj.items.append(SourceItem(_ref(g.imlist[i], folder, sources), reg, diff))
        objects.append(obj)
        progress(q + 1, len(g.qimlist), "reading")
    return objects


def _coco_file(path: Path) -> Path:
    """The COCO JSON of a folder: annotations/instances_<subset>.json (datumaro's and CVAT's layout,
    one subset), else annotations.json (PixRet 0.1)."""
    if not path.is_dir():
        return path
    found = sorted((path / "annotations").glob("instances_*.json"))
    if len(found) > 1:
        raise FormatError(path, "annotations", f"{len(found)} subsets ({', '.join(f.name for f in found[:4])}): "
                                               "import them one file at a time")
    if found:
        return found[0]
    if _is_file(path / "annotations.json"):
        return path / "annotations.json"
    raise FormatError(path, "", "no annotations/instances_<subset>.json (nor annotations.json) in this folder")


def _coco_image_dirs(json_path: Path) -> list[Path]:
    """Where a file_name is looked for: by datumaro's rules <root>/images/<subset>, else <root>/images,
    <root> holding annotations/; then images/ and the folder next to the JSON (other layouts)."""
    folder = json_path.parent
    dirs = []
    if folder.name == "annotations":
        stem = json_path.stem
        subset = stem.split("_", 1)[1] if "_" in stem else coco_format.SUBSET
        dirs += [folder.parent / "images" / subset, folder.parent / "images"]
    return dirs + [folder / "images", folder]


def _coco_ref(dirs: list[Path], file_name: str) -> ImageRef:
    file_name = file_name.replace("\\", "/")
    file = next((f for f in (_file_in(d, file_name) for d in dirs) if f), None)
    return ImageRef((file_name,), file)


def _refused(path: Path, where: str, name: str, report: ImportReport) -> None:
    report.warnings.append(f"{path}: {where}: {short_repr(name)} is absolute or climbs out of the dataset folder: "
                           "that file is never opened; the name is only looked for in the collection")


def _read_coco(path: Path, report: ImportReport, cancel: CancelToken, progress: Progress) -> list[SourceObject]:
    path = _coco_file(path)
    dirs = _coco_image_dirs(path)
    with _guard(path):
        cf = coco_format.read_coco(path, _json(path))
    for a in cf.annotations:
        _checked(a.region, path, f"annotations[{a.index}].segmentation")
    for k, im in enumerate(cf.images.values()):
        if _climbs_out(im.file_name):
            _refused(path, f"images[{k}].file_name", im.file_name, report)
    groups: dict[object, list[coco_format.CocoAnnotation]] = {}
    for a in cf.annotations:
        key = ("object", a.pixret["object"]) if "object" in a.pixret else a.group
        groups.setdefault(key, []).append(a)
    negatives = {int(o["id"]): [int(i) for i in o.get("negative_image_ids", [])] for o in cf.objects}
    objects = []
    for n, (key, anns) in enumerate(groups.items()):
        cancel.raise_if_set()
        query = next((a for a in anns if a.pixret.get("role") == "query"), anns[0])
        label = cf.categories.get(query.category_id, "object") if query.category_id is not None else "object"
        qimage = cf.images[query.image_id]
        obj = SourceObject(f"{label}#{n}", label, _coco_ref(dirs, qimage.file_name), query.region)
        for a in anns:
            if a is query:
                continue
            if a.region.is_empty:
                report.warnings.append(f"{path}: annotations[{a.index}]: empty outline; skipped")
                continue
            obj.items.append(SourceItem(_coco_ref(dirs, cf.images[a.image_id].file_name), a.region,
                                        a.pixret.get("difficulty", "easy")))
        if key[0] == "object":
            for iid in negatives.get(key[1], []):
                obj.items.append(SourceItem(_coco_ref(dirs, cf.images[iid].file_name), None, "easy",
                                            "rejected"))
        if obj.region.is_empty:
            raise FormatError(path, f"annotations[{query.index}].segmentation", "the query outline is empty")
        objects.append(obj)
        progress(n + 1, len(groups), "reading")
    return objects


def _labelme_shapes(path: Path) -> tuple[str, list[tuple[tuple, Region, dict]]]:
    """(imagePath, [((label, group_id), region, flags)]) of one LabelMe file, checked."""
    with _guard(path):
        lm = read_labelme(path)        # checks everything a region depends on
    _check_points(lm, path)
    out = []
    for s in lm.shapes:
        where = f"shapes[{s.index}]"
        try:
            region = shape_region(s)
        except (ValueError, ArithmeticError) as e:
            raise FormatError(path, f"{where}.points", f"not a usable outline: {e}") from None
        out.append(((s.label or "object", s.group_id), _checked(region, path, f"{where}.points"), s.flags))
    return lm.image_path, out


def _labelme_ref(path: Path, root: Path, image_path: str) -> ImageRef:
    """imagePath is relative to the LabelMe file's folder; it is opened only inside `root`."""
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.name
    names, file = [], None
    if image_path:
        image_path = image_path.replace("\\", "/")
        in_root = image_path if _climbs_out(image_path) else posixpath.join(posixpath.dirname(rel), image_path)
        if not _climbs_out(in_root):
            in_root = posixpath.normpath(in_root)
            file = _file_in(root, in_root)
            names.append(in_root)
        names.append(image_path)
    names.append(rel.rsplit(".", 1)[0])      # a.json annotates a.<image> (matched by stem)
    return ImageRef(tuple(dict.fromkeys(names)), file)


def _read_labelme(path: Path, report: ImportReport, cancel: CancelToken, progress: Progress) -> list[SourceObject]:
    root = path if path.is_dir() else path.parent
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json")
                       if p.name not in (MARKER, LEGACY_MANIFEST) and not p.name.startswith("."))
        if not files:
            raise FormatError(path, "", "no LabelMe .json files in this folder")
    else:
        files = [path]
    # object key -> list of (file order, ref, region, flags)
    groups: dict[tuple, list] = {}
    for n, f in enumerate(files):
        cancel.raise_if_set()
        if path.is_dir():
            doc = _json(f)
            if not isinstance(doc, dict) or ("shapes" not in doc and "imagePath" not in doc):
                report.warnings.append(f"{f}: not a LabelMe file (no shapes, no imagePath); skipped")
                continue
        image_path, shapes = _labelme_shapes(f)
        ref = _labelme_ref(f, root, image_path)
        if image_path and ref.file is None and _climbs_out(
                posixpath.join(posixpath.dirname(f.relative_to(root).as_posix()), image_path.replace("\\", "/"))):
            _refused(f, "imagePath", image_path, report)
        for key, region, flags in shapes:
            groups.setdefault(key, []).append((n, ref, region, flags))
        progress(n + 1, len(files), "reading")
    objects = []
    for (label, group), entries in groups.items():
        # shapes of one object in one file are one outline
        by_file: dict[int, list] = {}
        for n, ref, region, flags in entries:
            if n in by_file:
                prev = by_file[n]
                by_file[n] = [n, ref, prev[2].union(region), {**prev[3], **{k: v for k, v in flags.items() if v}}]
            else:
                by_file[n] = [n, ref, region, dict(flags)]
        outlines = list(by_file.values())
        query = next((o for o in outlines if o[3].get("query") is True), outlines[0])
        name = label if group is None else f"{label}#{group}"
        obj = SourceObject(name, label, query[1], query[2])
        for o in outlines:
            if o is query:
                continue
            diff = "junk" if o[3].get("junk") is True else "hard" if o[3].get("hard") is True else "easy"
            obj.items.append(SourceItem(o[1], o[2], diff))
        objects.append(obj)
    if not objects:
        raise FormatError(path, "shapes", "no polygon, rectangle or circle in any file")
    return objects


_READERS = {"pixbench": _read_pixbench, "coco": _read_coco, "labelme": _read_labelme, "revisitop": _read_revisitop}


def read_source(path, fmt: str, *, report: ImportReport | None = None, progress: Progress = NO_PROGRESS,
                cancel: CancelToken = NEVER) -> list[SourceObject]:
    """Read and check a source dataset into plain objects (no project involved)."""
    if fmt not in IMPORT_FORMATS:
        raise PixretError(f"unknown import format {fmt!r}: expected one of {', '.join(IMPORT_FORMATS)}")
    path = Path(path)
    try:
        if not path.exists():
            raise FormatError(path, "", "no such file or folder")
    except (OSError, ValueError) as e:
        raise FormatError(path, "", f"cannot be read: {getattr(e, 'strerror', None) or e}") from None
    report = report or ImportReport(fmt, path)
    return _READERS[fmt](path, report, cancel, progress)


# ------------------------------------------------------------------------------------------------
# matching images to the collection


class _Matcher:
    def __init__(self, project):
        self.root = project.root
        with project.catalog.session() as s:
            rows = [(r.id, r.path, r.sha256) for r in s.scalars(select(ImageRow).where(ImageRow.status != "missing"))]
        self.by_path = {p: i for i, p, _ in rows}
        self.path_of = {i: p for i, p, _ in rows}
        self.by_flat = {}
        stems: dict[str, list[int]] = {}
        self.by_sha: dict[str, list[int]] = {}
        for i, p, sha in rows:
            self.by_flat.setdefault(flat_name(p), i)
            stems.setdefault(p.rsplit("/", 1)[-1].rsplit(".", 1)[0], []).append(i)
            if sha:
                self.by_sha.setdefault(sha, []).append(i)
        self.by_stem = {k: v[0] for k, v in stems.items() if len(v) == 1}
        self._sha_cache: dict[Path, str | None] = {}

    def match(self, ref: ImageRef) -> int | None:
        for name in ref.names:
            name = name.replace("\\", "/")
            if self.root is not None and os.path.isabs(name):
                try:
                    name = Path(name).resolve().relative_to(self.root.resolve()).as_posix()
                except (ValueError, OSError):
                    pass
            parts = [p for p in name.split("/") if p not in ("", ".", "..")]
            for k in range(len(parts)):         # the path, then ever shorter trailing parts of it
                hit = self.by_path.get("/".join(parts[k:]))
                if hit is not None:
                    return hit
            if not parts:
                continue
            last = parts[-1]
            stem = last.rsplit(".", 1)[0] if "." in last and "." + last.rsplit(".", 1)[1].lower() in \
                SUPPORTED_SUFFIXES | {".json"} else last
            if stem in self.by_flat:
                return self.by_flat[stem]
            if flat_name("/".join(parts)) in self.by_flat:
                return self.by_flat[flat_name("/".join(parts))]
            if stem in self.by_stem:
                return self.by_stem[stem]
        if ref.file is not None:
            if ref.file not in self._sha_cache:
                try:
                    self._sha_cache[ref.file] = file_sha256(ref.file)
                except OSError:
                    self._sha_cache[ref.file] = None
            ids = self.by_sha.get(self._sha_cache[ref.file] or "", [])
            if len(ids) == 1:
                return ids[0]
        return None


# ------------------------------------------------------------------------------------------------
# the import


def import_annotations(project, path, fmt: str, *, progress: Progress = NO_PROGRESS,
                       cancel: CancelToken = NEVER) -> ImportReport:
    """Read a source dataset and store its objects as reviewed searches, all in one transaction."""
    path = Path(path)
    report = ImportReport(fmt, path)
    objects = read_source(path, fmt, report=report, progress=progress, cancel=cancel)
    cancel.raise_if_set()
    matcher = _Matcher(project)
    planned = []
    for n, obj in enumerate(objects):
        cancel.raise_if_set()
        qid = matcher.match(obj.query)
        if qid is None and obj.query.file is None:
            report.unmatched.append(f"{obj.query} (query image of {obj.name}; object skipped)")
            continue
        if qid is None:
            report.warnings.append(f"{obj.query}: query image of {obj.name} is not in the collection; "
                                   f"kept by its path {obj.query.file}")
        else:
            report.matched.append((obj.name, str(obj.query), matcher.path_of[qid]))
        hits: dict[int, SourceItem] = {}
        for item in obj.items:
            iid = matcher.match(item.image)
            if iid is None:
                report.unmatched.append(f"{item.image} (in {obj.name})")
                continue
            if iid == qid:
                continue
            report.matched.append((obj.name, str(item.image), matcher.path_of[iid]))
            prev = hits.get(iid)
            if prev is None:
                hits[iid] = item
            elif item.kind == "accepted" and prev.kind == "accepted":
                region = prev.region.union(item.region) if prev.region is not None and item.region is not None \
                    else prev.region or item.region
                hits[iid] = SourceItem(prev.image, region, prev.difficulty)
            elif item.kind == "accepted":
                hits[iid] = item                  # an outline wins over a negative
        planned.append((obj, qid, hits))
        progress(n + 1, len(objects), "matching")
    author = f"import:{fmt}"
    with project.catalog.session() as s:
        for n, (obj, qid, hits) in enumerate(planned):
            cancel.raise_if_set()             # inside the transaction: a cancel rolls all of it back
            qpath = s.get(ImageRow, qid).path if qid is not None else str(obj.query.file.resolve())
            row = QueryRow(image_id=qid, image_path=qpath, region=obj.region.to_json(), method=author,
                           params={"source": str(path), "name": obj.name, "label": obj.label,
                                   **({"query_name": obj.query_name} if obj.query_name else {})}, uncertainty=None)
            s.add(row)
            s.flush()
            row.object_id = new_object(s, obj.name, obj.label).id  # its label joins the project's list
            for rank, (iid, item) in enumerate(hits.items()):
                region = item.region.to_json() if item.region is not None and item.kind == "accepted" else None
                s.add(HitRow(query_id=row.id, image_id=iid, rank=rank,
                             score=1.0 if item.kind == "accepted" else 0.0, region=region,
                             evidence={_STAGE_KEY: "imported", "source": fmt}))
                s.add(AnnotationRow(query_id=row.id, image_id=iid, region=region, kind=item.kind,
                                    difficulty=item.difficulty, label=obj.label, author=author))
                if item.kind == "accepted":
                    report.n_annotations += 1
                else:
                    report.n_rejected += 1
            report.query_ids.append(row.id)
            report.n_objects += 1
            progress(n + 1, len(planned), "writing")
    report.unmatched = list(dict.fromkeys(report.unmatched))
    return report
