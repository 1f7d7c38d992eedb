"""Exports read by the formats' own tools, on a real set: how many annotations come back exactly.

    python benchmarks/formats_exact.py ../shared/bench/dev --project RUN/project --work /tmp/fx
    python benchmarks/formats_exact.py --datumaro /tmp/fx/coco      # in a venv with datumaro installed

The first form copies the project (an indexed project of the set's database, e.g. the one
`pixret bench` leaves in RUN/project), imports the set into the copy, then
- exports COCO and decodes every annotation with pycocotools (annToMask, area, toBbox) against
  PixRet's own mask of the region;
- exports LabelMe, imports it into a second copy, compares every region's pixels;
- exports PixBench and compares it with the set: names, easy/hard/junk lists, label pixels.
The second form imports the COCO export with datumaro (the library CVAT uses) and compares its
polygons and masks, rasterized by pycocotools, with annToMask. Needs only datumaro, pycocotools
and numpy (no PixRet), so it runs in datumaro's own environment.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def coco_check(coco_dir: Path, want: dict) -> str:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    gt = COCO(str(coco_dir / "annotations" / "instances_default.json"))
    n = exact = polys = area = bbox = 0
    for ann in gt.loadAnns(gt.getAnnIds()):
        key = (gt.loadImgs(ann["image_id"])[0]["file_name"], ann["pixret"]["object"], ann["pixret"]["role"])
        m = gt.annToMask(ann).astype(bool)
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        n += 1
        exact += np.array_equal(m, want[key])
        polys += isinstance(ann["segmentation"], list)
        area += ann["area"] == mask_utils.area(rle)
        bbox += ann["bbox"] == mask_utils.toBbox(rle).tolist()
    return (f"COCO: {n} annotations ({polys} polygons, {n - polys} RLE); pycocotools annToMask equal to PixRet's "
            f"mask: {exact} of {n}; area as maskUtils.area: {area}; bbox as toBbox: {bbox}")


def datumaro_check(coco_dir: Path) -> str:
    import datumaro as dm
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    detected = dm.Environment().detect_dataset(str(coco_dir))
    ds = dm.Dataset.import_from(str(coco_dir), "coco_instances")
    gt = COCO(str(coco_dir / "annotations" / "instances_default.json"))
    by_id = {Path(im["file_name"]).with_suffix("").as_posix(): im for im in gt.loadImgs(gt.getImgIds())}
    items = anns = differ = 0
    for item in ds:
        items += 1
        im = by_id[item.id]
        assert Path(item.media.path).is_file() and item.media.size == (im["height"], im["width"]), item.id
        got: dict = {}
        for a in item.annotations:
            if a.type == dm.AnnotationType.polygon:
                m = mask_utils.decode(mask_utils.frPyObjects([a.points], im["height"], im["width"]))[:, :, 0]
            elif a.type == dm.AnnotationType.mask:
                m = a.image
            else:
                continue
            got[a.id] = got.get(a.id, np.zeros((im["height"], im["width"]), bool)) | m.astype(bool)
        for ann in gt.loadAnns(gt.getAnnIds(imgIds=[im["id"]])):
            anns += 1
            differ += not np.array_equal(got.get(ann["id"]), gt.annToMask(ann).astype(bool))
    return (f"datumaro {dm.__version__}: detected as {detected}; {items} items in subsets {sorted(ds.subsets())}, "
            f"every image found; {anns} annotations, {differ} with other pixels than pycocotools' annToMask")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", type=Path)
    ap.add_argument("--project", type=Path)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--datumaro", type=Path, metavar="COCO_DIR")
    args = ap.parse_args()
    if args.datumaro:
        print(datumaro_check(args.datumaro))
        return 0
    if not (args.dataset and args.project and args.work):
        ap.error("give DATASET --project P --work DIR (or --datumaro COCO_DIR)")
    sys.path.insert(0, str(ROOT))
    from engine.formats.export import export_project, reviewed_set
    from engine.formats.importers import import_annotations
    from engine.formats.pixbench import load_pixbench
    from engine.project import Project

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    shutil.copytree(args.project, args.work / "p1")
    shutil.copytree(args.project, args.work / "p2")
    with Project.open(args.work / "p1") as p:
        print(import_annotations(p, args.dataset, "pixbench").summary())
        export_project(p, args.work / "coco", "coco")
        export_project(p, args.work / "labelme", "labelme")
        export_project(p, args.work / "pixbench", "pixbench", name="again")
        rs = reviewed_set(p)
    want, regions = {}, {}
    for o in rs.objects:
        qrel = o.query.rel if o.query.id is not None else f"queries/{o.query.rel}"
        want[(qrel, o.index, "query")] = o.region.to_mask(o.query.height, o.query.width)
        for d in o.positives():
            if d.region is not None:
                im = rs.images[d.image_id]
                want[(im.rel, o.index, "positive")] = d.region.to_mask(im.height, im.width)
                regions[(o.query.rel, im.rel)] = (d.region, im.height, im.width)
    print(coco_check(args.work / "coco", want))
    with Project.open(args.work / "p2") as p:
        import_annotations(p, args.work / "labelme", "labelme")
        rs2 = reviewed_set(p)
    back = {(o.query.rel, rs2.images[d.image_id].rel): d.region for o in rs2.objects for d in o.positives()
            if d.region is not None}
    same = sum(k in back and np.array_equal(back[k].to_mask(h, w), r.to_mask(h, w)) for k, (r, h, w) in regions.items())
    print(f"LabelMe export, imported again: {same} of {len(regions)} outlines with the same pixels")
    a, b = load_pixbench(args.dataset), load_pixbench(args.work / "pixbench")
    lists = sum({k: sorted(a.imlist[i] for i in getattr(a.gnd[q], k)) for k in ("easy", "hard", "junk")}
                == {k: sorted(b.imlist[i] for i in getattr(b.gnd[q], k)) for k in ("easy", "hard", "junk")}
                for q in range(len(a.qimlist)))
    labels = exact = 0
    for q, e in enumerate(a.gnd):
        if e.pixel_gt:
            for i in e.easy + e.hard:
                w, h = a.image_size(a.imlist[i])
                labels += 1
                exact += np.array_equal(a.label_region(q, i).to_mask(h, w),
                                        b.label_region(q, b.index_of(a.imlist[i])).to_mask(h, w))
    print(f"PixBench imported and exported again: qimlist {'identical' if a.qimlist == b.qimlist else 'CHANGED'}, "
          f"imlist {'the same names' if set(a.imlist) == set(b.imlist) else 'CHANGED'}; easy/hard/junk identical "
          f"for {lists} of {len(a.qimlist)} queries; {exact} of {labels} labels with the same pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
