"""Export a project's reviewed annotations as a dataset: PixBench (+ revisitop/PROxford files),
COCO, LabelMe, PNG masks.

What is exported. Each saved search is an object: its query image and region. Saved searches with
the same query image and region are one object (their decisions merge, the latest wins). An object
is exported once someone decided at least one of its hits. Its current decisions: accepted and
corrected outlines are the object's regions (difficulty easy, hard or junk as set in review);
rejected images are its negatives, where the format has negatives (PixBench: every database image
that is not easy, hard or junk; COCO: listed in the top-level `pixret` field). An accepted decision
without a region (imported from image-level ground truth) counts as a positive in PixBench and as
nothing in the pixel formats.

Where. Only into a new folder, an empty one, or one an earlier PixRet export made (its marker
file, pixret.json, lists the files it wrote; replacing it needs overwrite=True): see
engine.formats.destination, whose `check_export_destination` the GUI asks first. Any other folder
is refused and nothing in it is touched.

How. Everything is written into a hidden staging folder next to OUT, each file atomically; only
when all of it is written does the staging folder replace OUT. A cancel or an error removes the
staging folder: OUT is either the old export or the new one, never half of each. Nothing to export
(no reviewed search) is an error (NothingToExport), not an empty dataset.

Labels. Every exporter writes the label of the object (`ExportObject.label`), decided in one
place, `object_label`.

Layouts (the file and field names each format's own tools expect):

pixbench   jpg/<name>.jpg, gnd.json, queries/<q>.json, labels/<q>_<i>.json, SOURCES.md
           (../shared/bench/FORMAT.md), plus gnd_<set>.pkl (revisitop's pickle) and
           <set>_pair2labelpath.npy (PROxford: {"<q>_<i>": "labels/<q>_<i>.json"}, paths relative
           to OUT: PROxford's GND_folder), and pixret.json (the marker: each name's source).
           Names are the collection paths flattened ("a/b/c.jpg" -> "a__b__c"); the database is
           the whole collection except query images nobody decided on; a query image that is
           in the database is junk for its own query (it would match itself). A query imported
           from a PixBench or revisitop set keeps its name there (stable through import and
           export, even when its photo matched a database photo by content).
coco       annotations/instances_default.json and images/default/<collection path> (datumaro's and
           CVAT's COCO layout; queries from outside the collection under images/default/queries/):
           every annotation decodes with pycocotools to exactly PixRet's mask (engine.formats.coco).
labelme    <path>.json next to a copy of each annotated image <path>; every object's shapes
           carry group_id = the object's index, flags {"query", "hard", "junk"}. A part of a
           region with holes is a `mask` shape (LabelMe 5.3; its exact pixels), the rest polygons.

What a format cannot carry is said in the report's warnings: negatives (LabelMe, masks), accepted
images without an outline (COCO, LabelMe, masks), holes (PixBench labels, which FORMAT.md and
PROxford's scripts read as polygons only: the hole is filled).
masks      masks/<name>__obj<k>.png, 8-bit, 255 inside, one per image and object, and masks.json.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import func, select

from engine.base.atomic import atomic_copy, atomic_write_bytes, atomic_write_text
from engine.base.errors import ImageReadError, PixretError
from engine.base.progress import NEVER, NO_PROGRESS, CancelToken, Progress
from engine.annotate.labels import object_labels
from engine.base.regions import Region
from engine.catalog.tables import AnnotationRow, ImageRow, ProjectRow, QueryRow
from engine.formats import coco as coco_format
from engine.formats import revisitop
from engine.formats.destination import ensure_export_allowed, new_stage, swap_in, write_marker
from engine.formats.labelme import labelme_doc, region_shapes, write_labelme
from engine.ingest import imageio

__all__ = ["EXPORT_FORMATS", "ExportReport", "ReviewedSet", "ExportObject", "ExportImage", "Reviewed",
           "reviewed_set", "export_project", "flat_name", "publish_modes", "NothingToExport",
           "object_label", "DEFAULT_LABEL"]

EXPORT_FORMATS = ("pixbench", "coco", "labelme", "masks")
DEFAULT_LABEL = "object"
_KINDS = ("accepted", "corrected", "rejected", "unreviewed")   # engine.annotate.review's decision kinds
_POSITIVE = ("accepted", "corrected")


@dataclass(frozen=True)
class ExportImage:
    id: int | None          # catalog id; None for a query image outside the collection
    rel: str                # collection-relative path ('/' separators); the file name when outside
                            # (what metadata may say: never an absolute path)
    source: Path            # the file
    width: int
    height: int


class NothingToExport(PixretError):
    """No search has a reviewed result: an export would be an empty dataset."""


@dataclass(frozen=True)
class Reviewed:
    image_id: int
    kind: str               # accepted | corrected | rejected
    region: Region | None
    difficulty: str         # easy | hard | junk


@dataclass(frozen=True)
class ExportObject:
    index: int
    query_ids: tuple[int, ...]
    query: ExportImage
    region: Region
    label: str                       # what every exporter writes as its label: see object_label
    decisions: dict[int, Reviewed]   # image id -> current decision (never the query image itself)
    query_name: str | None = None    # the query's name in the PixBench/revisitop set it was imported from

    def positives(self) -> list[Reviewed]:
        return [d for d in self.decisions.values() if d.kind in _POSITIVE]

    def negatives(self) -> list[int]:
        return sorted(i for i, d in self.decisions.items() if d.kind == "rejected")


@dataclass
class ReviewedSet:
    name: str
    images: dict[int, ExportImage]           # every exportable collection image
    objects: list[ExportObject]
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExportReport:
    format: str
    out: Path
    n_objects: int = 0
    n_images: int = 0
    n_regions: int = 0
    n_negatives: int = 0
    files: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.format}: {self.n_objects} objects, {self.n_regions} regions, {self.n_negatives} "
                f"negatives, {self.n_images} images; {self.files} files in {self.out}")


_MAX_NAME_BYTES = 200     # a file name holds 255 bytes; room for ".jpg", "__q12", "~2"


def flat_name(rel: str) -> str:
    """A collection path as a flat PixBench name: folders joined by '__', no extension; a name too
    long for a file name keeps its start and gets a hash of the whole."""
    rel = rel.replace("\\", "/").strip("/")
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    name = re.sub(r"[\x00-\x1f:*?\"<>|]", "_", stem.replace("/", "__")) or "image"
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = name.encode("utf-8", "surrogateescape")[:_MAX_NAME_BYTES - 13].decode("utf-8", "ignore") + "~" + digest
    return name


def _unique(name: str, used: set[str]) -> str:
    out, k = name, 2
    while out in used:
        out, k = f"{name}~{k}", k + 1
    used.add(out)
    return out


# ------------------------------------------------------------------------------------------------
# what to export, read from the catalog


def object_label(decided: list[AnnotationRow], label: str | None = None) -> str:
    """The label exporters write for an object: the one place it is decided. The label of the
    remembered object its search belongs to (`label`: engine.annotate.labels, one of the project's
    list, else the object's name); for a search of no object, the label of its latest positive
    decision that carries one (an imported dataset's category), else DEFAULT_LABEL."""
    if label:
        return label
    for r in sorted(decided, key=lambda r: r.id, reverse=True):
        if r.kind in _POSITIVE and r.label:
            return r.label
    return DEFAULT_LABEL


def _current_rows(s) -> list[AnnotationRow]:
    latest = (select(func.max(AnnotationRow.id)).where(AnnotationRow.kind.in_(_KINDS))
              .group_by(AnnotationRow.query_id, AnnotationRow.image_id))
    return list(s.scalars(select(AnnotationRow).where(AnnotationRow.id.in_(latest)).order_by(AnnotationRow.id)))


def _size_of(path: Path, width, height) -> tuple[int, int]:
    if width and height:
        return int(width), int(height)
    return imageio.image_size(path)


def reviewed_set(project, *, include_unreviewed: bool = False) -> ReviewedSet:
    """The objects (queries) and their current decisions, as plain data."""
    root = project.root
    warnings: list[str] = []
    with project.catalog.session() as s:
        name = (s.scalar(select(ProjectRow.name)) or project.folder.name)
        image_rows = {r.id: (r.path, r.width, r.height, r.status) for r in s.scalars(select(ImageRow))}
        queries = list(s.scalars(select(QueryRow).order_by(QueryRow.id)))
        rows = _current_rows(s)
        labels = object_labels(s)
    by_query: dict[int, list[AnnotationRow]] = {}
    for r in rows:
        if r.query_id is not None:
            by_query.setdefault(r.query_id, []).append(r)

    images: dict[int, ExportImage] = {}
    for iid, (rel, w, h, status) in sorted(image_rows.items(), key=lambda t: t[1][0]):
        if status not in ("ok", "new") or root is None:
            continue
        src = root / rel
        try:
            w, h = _size_of(src, w, h)
        except ImageReadError as e:
            warnings.append(f"{rel}: left out ({e.reason})")
            continue
        images[iid] = ExportImage(iid, rel, src, w, h)

    groups: dict[tuple, dict] = {}
    for q in queries:
        key = (q.image_id if q.image_id is not None else q.image_path,
               json.dumps(q.region, sort_keys=True))
        g = groups.setdefault(key, {"ids": [], "row": q, "rows": [], "label": None})
        g["ids"].append(q.id)
        g["label"] = g["label"] or labels.get(q.object_id, (None,))[0]
        g["rows"].extend(by_query.get(q.id, []))

    objects: list[ExportObject] = []
    for g in groups.values():
        q = g["row"]
        latest: dict[int, AnnotationRow] = {}
        for r in sorted(g["rows"], key=lambda r: r.id):
            latest[r.image_id] = r
        decided = {i: r for i, r in latest.items() if r.kind in ("accepted", "corrected", "rejected")}
        if not decided and not include_unreviewed:
            continue
        if q.image_id is not None:
            qimage = images.get(q.image_id)
            if qimage is None:
                rel = image_rows.get(q.image_id, (str(q.image_id),))[0]
                warnings.append(f"search #{q.id}: its query image {rel} is missing or unreadable; left out")
                continue
        else:
            src = Path(q.image_path)
            if not src.is_absolute() and root is not None:
                src = root / src
            try:
                w, h = imageio.image_size(src)
            except ImageReadError as e:
                warnings.append(f"search #{q.id}: its query image {q.image_path}: {e.reason}; left out")
                continue
            qimage = ExportImage(None, src.name, src, w, h)
        try:
            region = Region.from_json(q.region)
        except ValueError as e:
            warnings.append(f"search #{q.id}: unreadable query region ({e}); left out")
            continue
        decisions: dict[int, Reviewed] = {}
        for iid, r in sorted(decided.items(), key=lambda t: t[1].id):
            if iid == q.image_id:
                continue
            if iid not in images:
                warnings.append(f"search #{q.id}: decision on image {image_rows.get(iid, (iid,))[0]}, "
                                "which is missing or unreadable; left out")
                continue
            reg = None
            if r.region is not None and r.kind != "rejected":
                try:
                    reg = Region.from_json(r.region)
                except ValueError as e:
                    warnings.append(f"search #{q.id}: unreadable region on {images[iid].rel} ({e}); left out")
                    continue
                if reg.is_empty:
                    reg = None
            decisions[iid] = Reviewed(iid, r.kind, reg, r.difficulty if r.difficulty in ("easy", "hard", "junk")
                                      else "easy")
        query_name = (q.params or {}).get("query_name")
        objects.append(ExportObject(len(objects), tuple(g["ids"]), qimage, region,
                                    object_label(list(decided.values()), g["label"]), decisions,
                                    query_name if isinstance(query_name, str) and query_name else None))
    return ReviewedSet(name, images, objects, warnings)


# ------------------------------------------------------------------------------------------------
# the export folder: staged, then swapped in


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def publish_modes(path: Path) -> None:
    """Give a finished file, or a folder and all in it, the permissions of ordinary files: temporary
    files and folders are created private (0600/0700), which a dataset meant for others must not keep."""
    mask = _umask()
    path = Path(path)
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _write_json(path: Path, doc, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(doc, indent=indent))


def _is_plain_jpeg(path: Path) -> bool:
    """A JPEG whose pixels are as stored (no EXIF rotation): copied byte for byte."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format in ("JPEG", "MPO") and int(im.getexif().get(0x0112, 1) or 1) == 1
    except Exception:  # noqa: BLE001 - decided by load_image below, with its clear error
        return False


def _write_jpeg(src: Path, dst: Path) -> None:
    """jpg/<name>.jpg of FORMAT.md: the image as a person sees it (EXIF orientation applied)."""
    if _is_plain_jpeg(src):
        atomic_copy(src, dst)
        return
    rgb = imageio.load_image(src)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise PixretError(f"{src}: JPEG encoding failed")
    atomic_write_bytes(dst, buf.tobytes())


def _write_png(dst: Path, mask: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise PixretError(f"{dst}: PNG encoding failed")
    atomic_write_bytes(dst, buf.tobytes())


def _safe_rel(rel: str) -> str:
    """A collection path to write under OUT: no absolute paths, no '..'."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "image"


def export_project(project, out, fmt: str, *, overwrite: bool = False, name: str | None = None,
                   include_unreviewed: bool = False, copy_images: bool = True,
                   progress: Progress = NO_PROGRESS, cancel: CancelToken = NEVER) -> ExportReport:
    """Write the project's reviewed annotations to OUT in one of EXPORT_FORMATS."""
    if fmt not in EXPORT_FORMATS:
        raise PixretError(f"unknown export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    ensure_export_allowed(project, out, overwrite)
    progress(0, 1, "collecting reviews")
    rs = reviewed_set(project, include_unreviewed=include_unreviewed)
    if not rs.objects:
        raise NothingToExport(_nothing_to_export(project, rs, include_unreviewed))
    if name:
        rs.name = name
    rs.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", rs.name).strip("._") or "pixret"
    cancel.raise_if_set()
    stage = new_stage(out)
    report = ExportReport(fmt, out, warnings=list(rs.warnings))
    try:
        writer = {"pixbench": _pixbench, "coco": _coco, "labelme": _labelme, "masks": _masks}[fmt]
        extra = writer(rs, stage, report, copy_images, progress, cancel) or {}
        report.warnings += _not_carried(rs, fmt)
        cancel.raise_if_set()
        write_marker(stage, _manifest(rs, fmt, **extra))
        report.files = sum(1 for p in stage.rglob("*") if p.is_file())
        publish_modes(stage)
        report.warnings += swap_in(project, stage, out, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    report.n_objects = len(rs.objects)
    return report


def _not_carried(rs: ReviewedSet, fmt: str) -> list[str]:
    """What the format has no place for (holes are counted by the writers)."""
    out = []
    negatives = sum(len(o.negatives()) for o in rs.objects)
    if negatives and fmt in ("labelme", "masks"):
        out.append(f"{fmt} has no place for negatives: {negatives} rejected images are not in this export "
                   "(PixBench and COCO keep them)")
    no_outline = sum(1 for o in rs.objects for d in o.positives() if d.region is None)
    if no_outline and fmt != "pixbench":
        out.append(f"{no_outline} accepted images without an outline (image-level labels) are not in this {fmt} "
                   "export (PixBench keeps them as positives)")
    return out


def _nothing_to_export(project, rs: ReviewedSet, include_unreviewed: bool) -> str:
    with project.catalog.session() as s:
        n_searches = s.scalar(select(func.count()).select_from(QueryRow)) or 0
    if n_searches == 0:
        what = ("the project has no saved searches. Search for an object, save the search and review its "
                "results (accept, correct or reject) first")
    elif include_unreviewed:
        what = f"none of the {n_searches} saved searches could be exported"
    else:
        what = (f"none of the {n_searches} saved searches has a reviewed result. Review some results "
                "(accept, correct or reject) first, or export them unreviewed (--include-unreviewed)")
    left_out = f" ({rs.warnings[0]}{'; ...' if len(rs.warnings) > 1 else ''})" if rs.warnings else ""
    return f"nothing to export: {what}{left_out}"


def _manifest(rs: ReviewedSet, fmt: str, **extra) -> dict:
    return {"format": fmt, "set": rs.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "objects": [{"index": o.index, "searches": list(o.query_ids), "label": o.label,
                         "query_image": o.query.rel} for o in rs.objects], **extra}


# ------------------------------------------------------------------------------------------------
# PixBench (+ revisitop / PROxford)


def _pixbench(rs: ReviewedSet, stage: Path, report: ExportReport, copy_images: bool, progress: Progress,
              cancel: CancelToken) -> None:
    decided_anywhere = {i for o in rs.objects for i in o.decisions}
    query_ids = {o.query.id for o in rs.objects if o.query.id is not None}
    db = [im for im in rs.images.values() if im.id not in query_ids or im.id in decided_anywhere]
    used: set[str] = set()
    db_name = {im.id: _unique(flat_name(im.rel), used) for im in db}
    index_of = {im.id: k for k, im in enumerate(db)}
    imlist = [db_name[im.id] for im in db]
    qimlist, gnd, pair2label = [], [], {}
    qnames: list[str] = []
    for o in rs.objects:
        if o.query_name:                  # imported from a set: its own name, whatever image it matched
            qname = _unique(flat_name(o.query_name), used)
        else:
            qname = _unique(flat_name(o.query.rel) if o.query.id is None or o.query.id not in index_of
                            else f"{flat_name(o.query.rel)}__q{o.index}", used)
        qnames.append(qname)
    total = len(rs.objects) + len(db) + len(rs.objects)
    done = 0
    filled: list[str] = []
    # queries and labels
    for o, qname in zip(rs.objects, qnames):
        cancel.raise_if_set()
        lists = {"easy": [], "hard": [], "junk": []}
        pixel_gt = True
        for d in o.positives():
            i = index_of[d.image_id]
            lists[d.difficulty].append(i)
            if d.difficulty == "junk":
                continue
            if d.region is None:
                pixel_gt = False
                continue
            im = rs.images[d.image_id]
            label = f"labels/{len(qimlist)}_{i}.json"
            if write_labelme(stage / label, f"../jpg/{db_name[d.image_id]}.jpg", im.width, im.height, d.region,
                             label=o.label):
                filled.append(label)
            pair2label[(len(qimlist), i)] = label
            report.n_regions += 1
        if o.query.id in index_of and o.query.id not in o.decisions:
            lists["junk"].append(index_of[o.query.id])   # its own image: it would find itself
        report.n_negatives += len(o.negatives())
        if write_labelme(stage / "queries" / f"{len(qimlist)}.json", f"../jpg/{qname}.jpg", o.query.width,
                         o.query.height, o.region, label=o.label):
            filled.append(f"queries/{len(qimlist)}.json")
        x1, y1, x2, y2 = o.region.bounds or (0.0, 0.0, 0.0, 0.0)
        gnd.append({"bbx": [x1, y1, x2, y2], **{k: sorted(v) for k, v in lists.items()}, "pixel_gt": pixel_gt})
        qimlist.append(qname)
        done += 1
        progress(done, total, "export labels")
    # images
    for im in db:
        cancel.raise_if_set()
        _write_jpeg(im.source, stage / "jpg" / f"{db_name[im.id]}.jpg")
        done += 1
        progress(done, total, "export images")
    for o, qname in zip(rs.objects, qnames):
        cancel.raise_if_set()
        _write_jpeg(o.query.source, stage / "jpg" / f"{qname}.jpg")
        done += 1
        progress(done, total, "export images")
    report.n_images = len(db) + len(qimlist)
    if filled:
        report.warnings.append(f"{len(filled)} outlines have holes, which PixBench labels cannot hold (polygons "
                               f"only: FORMAT.md, PROxford): their holes are filled in {', '.join(filled[:5])}"
                               f"{' ...' if len(filled) > 5 else ''}. COCO, LabelMe and masks keep them")
    _write_json(stage / "gnd.json", {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, indent=None)
    revisitop.write_gnd_pkl(stage / f"gnd_{rs.name}.pkl", imlist, qimlist, gnd)
    revisitop.write_pair2labelpath(stage / f"{rs.name}_pair2labelpath.npy", pair2label)
    sources = {n: im.rel for im in db for n in (db_name[im.id],)}
    sources.update({qname: o.query.rel for o, qname in zip(rs.objects, qnames)})   # never an absolute path
    lines = [f"# {rs.name}: sources", "",
             "Exported by PixRet from the collection below; every image keeps the license of its source.", "",
             "| name | source (collection path) |", "|---|---|"]
    lines += [f"| {n} | {src} |" for n, src in sources.items()]
    atomic_write_text(stage / "SOURCES.md", "\n".join(lines) + "\n")
    return {"sources": sources}


# ------------------------------------------------------------------------------------------------
# COCO


def _coco(rs: ReviewedSet, stage: Path, report: ExportReport, copy_images: bool, progress: Progress,
          cancel: CancelToken) -> None:
    images: dict[object, dict] = {}
    files: dict[object, ExportImage] = {}
    used: set[str] = set()

    def image_entry(im: ExportImage) -> int:
        key = im.id if im.id is not None else str(im.source)
        if key not in images:
            rel = _safe_rel(im.rel) if im.id is not None else f"queries/{_safe_rel(im.rel)}"
            stem, dot, ext = rel.rpartition(".") if "." in rel.rsplit("/", 1)[-1] else (rel, "", "")
            rel = _unique(stem, used) + dot + ext
            images[key] = {"id": len(images) + 1, "file_name": rel, "width": im.width, "height": im.height}
            files[key] = im
        return images[key]["id"]

    labels = sorted({o.label for o in rs.objects})
    cat_id = {lab: k + 1 for k, lab in enumerate(labels)}
    anns, objects = [], []
    for o in rs.objects:
        cancel.raise_if_set()
        entries = [(o.query, o.region, "query", "easy", o.label)]
        entries += [(rs.images[d.image_id], d.region, "positive", d.difficulty, o.label) for d in o.positives()
                    if d.region is not None]
        query_ann = None
        for im, region, role, difficulty, label in entries:
            seg, area, bbox = coco_format.segmentation(region, im.height, im.width)
            if not seg:
                report.warnings.append(f"object {o.index}: its outline on {im.rel} covers no pixel of the image; "
                                       "left out of COCO")
                continue
            ann = {"id": len(anns) + 1, "image_id": image_entry(im), "category_id": cat_id[label],
                   "segmentation": seg, "area": area, "bbox": bbox, "iscrowd": 0,
                   "pixret": {"object": o.index, "role": role, "difficulty": difficulty}}
            anns.append(ann)
            query_ann = query_ann or ann["id"]
            report.n_regions += role == "positive"
        negatives = [image_entry(rs.images[i]) for i in o.negatives()]
        report.n_negatives += len(negatives)
        objects.append({"id": o.index, "label": o.label, "query_annotation_id": query_ann,
                        "negative_image_ids": negatives, "searches": list(o.query_ids)})
        progress(o.index + 1, len(rs.objects), "export annotations")
    doc = {
        "info": {"description": f"{rs.name}: reviewed annotations exported by PixRet",
                 "date_created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "version": "1.0"},
        "licenses": [],
        "images": list(images.values()),
        "annotations": anns,
        "categories": [{"id": cat_id[lab], "name": lab, "supercategory": "object"} for lab in labels],
        "pixret": {"version": 1, "objects": objects},
    }
    _write_json(coco_format.instances_path(stage), doc, indent=None)
    report.n_images = len(images)
    if copy_images:
        for k, (key, im) in enumerate(files.items()):
            cancel.raise_if_set()
            atomic_copy(im.source, stage / "images" / coco_format.SUBSET / images[key]["file_name"])
            progress(k + 1, len(files), "export images")


# ------------------------------------------------------------------------------------------------
# LabelMe


def _labelme(rs: ReviewedSet, stage: Path, report: ExportReport, copy_images: bool, progress: Progress,
             cancel: CancelToken) -> None:
    per_image: dict[object, tuple[ExportImage, list]] = {}

    def add(im: ExportImage, obj: ExportObject, region: Region, role: str, difficulty: str, label: str) -> None:
        key = im.id if im.id is not None else str(im.source)
        per_image.setdefault(key, (im, []))[1].append((obj.index, region, role, difficulty, label))

    for o in rs.objects:
        add(o.query, o, o.region, "query", "easy", o.label)
        for d in o.positives():
            if d.region is not None:
                add(rs.images[d.image_id], o, d.region, "positive", d.difficulty, o.label)
                report.n_regions += 1
        report.n_negatives += len(o.negatives())
    used: set[str] = set()
    for k, (im, shapes) in enumerate(per_image.values()):
        cancel.raise_if_set()
        rel = _safe_rel(im.rel) if im.id is not None else f"queries/{_safe_rel(im.rel)}"
        stem = _unique(rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel, used)
        json_path = stage / f"{stem}.json"
        if copy_images:
            image_file = stage / f"{stem}{im.source.suffix}"
            atomic_copy(im.source, image_file)
            image_path = image_file.name
        else:
            try:
                image_path = os.path.relpath(im.source, json_path.parent).replace(os.sep, "/")
            except ValueError:          # another drive (Windows): no relative path exists
                image_path = im.source.as_posix()
        written = []
        for index, region, role, difficulty, label in shapes:
            written += region_shapes(region, im.height, im.width, label=label, group_id=index,
                                     flags={"query": role == "query", "hard": difficulty == "hard",
                                            "junk": difficulty == "junk"})[0]
        _write_json(json_path, labelme_doc(written, image_path, im.width, im.height))
        progress(k + 1, len(per_image), "export labelme")
    report.n_images = len(per_image)


# ------------------------------------------------------------------------------------------------
# PNG masks


def _masks(rs: ReviewedSet, stage: Path, report: ExportReport, copy_images: bool, progress: Progress,
           cancel: CancelToken) -> None:
    items = []
    for o in rs.objects:
        items.append((o.query, o, o.region, "query", "easy"))
        items += [(rs.images[d.image_id], o, d.region, "positive", d.difficulty) for d in o.positives()
                  if d.region is not None]
        report.n_negatives += len(o.negatives())
    index, used, seen = [], set(), set()
    for k, (im, o, region, role, difficulty) in enumerate(items):
        cancel.raise_if_set()
        base = flat_name(im.rel) if im.id is not None else f"query__{flat_name(im.rel)}"
        rel = "masks/" + _unique(f"{base}__obj{o.index}", used) + ".png"
        _write_png(stage / rel, region.to_mask(im.height, im.width))
        index.append({"mask": rel, "image": im.rel, "object": o.index,
                      "label": o.label, "role": role, "difficulty": difficulty,
                      "width": im.width, "height": im.height})
        seen.add(im.id if im.id is not None else str(im.source))
        report.n_regions += role == "positive"
        progress(k + 1, len(items), "export masks")
    report.n_images = len(seen)
    _write_json(stage / "masks.json", {"set": rs.name, "masks": index,
                                        "objects": _manifest(rs, "masks")["objects"]})
