"""`pixret`: the command-line contract (index, search, objects, bench, status, export, import, eval).

Exit codes: 0 success, 1 the work ran but something failed (e.g. images that could not be read),
2 bad input or usage (the message names the file and the problem), 130 cancelled by Ctrl+C.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from engine.base.atomic import atomic_write_text
from engine.base.errors import DiskFullError, PixretError, shown
from engine.base.progress import Cancelled, CancelToken

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class TqdmProgress:
    """A Progress that drives one tqdm bar per stage, on stderr."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._stage = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        key = stage.split(" ")[0] if stage.startswith("query") else stage
        if key != self._stage or self._bar is None:
            self.close()
            self._stage = key
            self._bar = tqdm(total=total, desc=key, unit="", leave=False, file=sys.stderr, dynamic_ncols=True)
        self._bar.total = total
        self._bar.n = done
        if stage != key:
            self._bar.set_postfix_str(stage[len(key):].strip(), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def cancel_on_interrupt():
    """First Ctrl+C sets the token (a clean stop between steps); a second one kills."""
    token = CancelToken()

    def handler(signum, frame):
        if token.is_set:
            raise KeyboardInterrupt
        token.cancel()
        print("\ncancelling... (Ctrl+C again to abort at once)", file=sys.stderr)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def project_job(args, create: bool = False):
    """The project, a progress bar and a Ctrl+C cancel token for one command; all closed after.

    create: a project this command made and then failed in before storing any feature is removed
    again (a folder that existed before keeps exactly what it held)."""
    from engine.project import Project

    progress = TqdmProgress(not args.quiet)
    with cancel_on_interrupt() as cancel:
        project = (Project.open_or_create if create else Project.open)(args.project, db_url=args.db)
        if project.read_only:
            print(f"note: {args.project} is open read-only ({project.read_only}): nothing can be saved",
                  file=sys.stderr)
        try:
            yield project, progress, cancel
        except Exception:
            progress.close()
            if project.created_now and project.holds_no_features():
                project.remove_created()
            raise
        finally:
            progress.close()
            project.close()


def cmd_index(args) -> int:
    if not Path(args.images_dir).is_dir():  # before a project is made for it
        raise PixretError(f"{args.images_dir}: no such folder" if not Path(args.images_dir).exists()
                          else f"{args.images_dir}: not a folder")
    if args.features is not None:
        from engine.features.learned import check_feature_kind

        check_feature_kind(args.features)  # a missing extra: said before a project is made
    with project_job(args, create=True) as (project, progress, cancel), index_runner(args) as runner:
        if args.features is not None:
            project.choose_features(args.features)
        report = project.index_folder(args.images_dir, graph=not args.no_graph, progress=progress, cancel=cancel,
                                      runner=runner)
    print(report.summary())
    if runner is not None:
        print(f"ran on {report.ran_on}")
    for path, reason in report.failed:
        print(f"  skipped {shown(path)}: {reason}", file=sys.stderr)
    for folder in report.unreadable_dirs:
        print(f"  could not read the folder {shown(Path(args.images_dir) / folder)} (permission denied?): "
              "its images were left as they were", file=sys.stderr)
    t = report.seconds
    print(f"time: scan {t.get('scan', 0):.1f}s, features {t.get('features', 0):.1f}s, index {t.get('index', 0):.1f}s")
    return EXIT_FAILED if report.failed or report.unreadable_dirs else EXIT_OK


def features_option(sp) -> None:
    from engine.features.learned import FEATURE_KINDS

    sp.add_argument("--features", choices=FEATURE_KINDS, default=None,
                    help="the local features of a new project (default rootsift; xfeat and aliked need the "
                         "'learned' extra); an indexed project keeps its own (another type is refused)")


@contextmanager
def index_runner(args):
    """A Dask cluster for `index --workers N | --scheduler ADDR` (engine.parallel.cluster), else None."""
    if args.workers is None and args.scheduler is None:
        yield None
        return
    from engine.parallel.cluster import open_cluster

    with open_cluster(workers=args.workers, scheduler=args.scheduler) as runner:
        yield runner


def parse_bbox(text: str):
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise PixretError(f"--bbox {text!r}: expected four numbers X1,Y1,X2,Y2") from None
    if x2 <= x1 or y2 <= y1:
        raise PixretError(f"--bbox {text!r}: X2 must exceed X1 and Y2 must exceed Y1")
    return x1, y1, x2, y2


def query_region_from_args(args):
    """The region of --polygon, --mask or --bbox, and the mask's (width, height) (else None)."""
    from engine.base.regions import Region

    if args.polygon:
        from engine.formats.labelme import labelme_region, read_labelme

        region = labelme_region(read_labelme(args.polygon))
        if region.is_empty:
            raise PixretError(f"{args.polygon}: no polygon or rectangle shape in this file")
        return region, None
    if args.mask:
        from engine.ingest import imageio

        mask = imageio.load_image(args.mask, gray=True) > 0
        if not mask.any():
            raise PixretError(f"{args.mask}: the mask is empty (no nonzero pixel)")
        return Region.from_mask(mask), (mask.shape[1], mask.shape[0])
    return Region.from_bbox(*parse_bbox(args.bbox)), None


def query_file(given: str, root: Path | None) -> Path:
    """--query as an absolute path: relative to the working directory, else to the collection.

    Absolute, so that the query image is recognized as the collection image it is (and left out of
    its own results), and a saved search names a file that later commands find wherever they run."""
    path = Path(given).expanduser()
    if not path.is_absolute() and not path.exists() and root is not None and (root / path).exists():
        return root / path
    return path.absolute()


def search_config(args):
    """The SearchConfig of --budget, --thorough-features and --tilted-views (the thorough method's)."""
    from engine.pipeline import SearchConfig
    from engine.verify.thorough import ThoroughConfig

    kind = None if args.thorough_features == "none" else args.thorough_features
    return SearchConfig(thorough=ThoroughConfig(budget_s=args.budget, kind=kind, affine_views=args.tilted_views,
                                                reach=args.thorough_reach))


def budget_seconds(text: str) -> float | None:
    if text.lower() in ("none", "inf", "unlimited"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds (a number) or 'none'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the budget cannot be negative")
    return value


def thorough_options(sp) -> None:
    from engine.features.learned import KINDS
    from engine.verify.thorough import AFFINE_VIEWS, ThoroughConfig

    sp.add_argument("--budget", type=budget_seconds, default=ThoroughConfig().budget_s, metavar="SECONDS",
                    help="--method thorough: seconds its slow stage may take per query, after the fast search "
                         "('none': every candidate; default %(default)s)")
    sp.add_argument("--thorough-features", choices=(*KINDS, "none"), default=ThoroughConfig().kind,
                    help="--method thorough: the learned features it matches directly and with LightGlue (the "
                         "'learned' extra); none: tilted query views only (default %(default)s)")
    sp.add_argument("--tilted-views", choices=AFFINE_VIEWS, default=ThoroughConfig().affine_views,
                    help="--method thorough: RootSIFT of simulated tilted views of the query (extreme viewpoints): "
                         "always (default), auto = when the fast search verified nothing, off")
    sp.add_argument("--thorough-reach", type=int, default=None, metavar="N",
                    help="--method thorough: verify again only images the initial ranking puts in its first N "
                         "(default: as far as the budget goes; with --budget none, a reproducible run)")


def cmd_search(args) -> int:
    from engine.annotate import objects, review
    from engine.base.types import Query
    from engine.ingest import imageio
    from engine.pipeline import prepare, search

    if args.object is None and (args.query is None or not (args.polygon or args.mask or args.bbox)):
        raise PixretError("search: give --query with --polygon, --mask or --bbox, or --object NAME")
    region, mask_size = query_region_from_args(args) if args.query else (None, None)
    with project_job(args) as (project, progress, cancel):
        query = None
        if args.query:
            query_path = query_file(args.query, project.root)
            size = imageio.image_size(query_path)
            if mask_size is not None and mask_size != size:
                raise PixretError(f"{args.mask}: the mask is {mask_size[0]}x{mask_size[1]} pixels, but the query "
                                  f"image {query_path} is {size[0]}x{size[1]}")
            query = Query(query_path, region)
        key, context, config = args.object, None, search_config(args)
        if key is None and not args.no_recall:
            context = prepare(project, query, config)
            seen = objects.recall(project, query, context)
            if seen is not None:
                key = seen.object.id
                print(f"seen before: object {seen.object.name!r} ({len(seen.object.reviewed)} reviewed views, "
                      f"{seen.how}); searching as that object (--no-recall for a fresh search)", file=sys.stderr)
        if key is not None:
            result = objects.search_object(project, key, query=query, context=context, method=args.method,
                                           top_k=args.top, config=config, progress=progress, cancel=cancel)
        else:
            result = search(project, query, method=args.method, top_k=args.top, config=config, progress=progress,
                            cancel=cancel, context=context)
        name = objects.load_object(project, result.object_id).name if result.object_id is not None else None
        if args.save:
            qid = review.save_search(project, result)
            print(f"saved as search {qid}" + (f" of object {name!r}" if name else ""), file=sys.stderr)
    doc = {"query": Path(str(result.query.image)).name, "method": result.method, "object": name,
           "uncertainty": result.uncertainty, "timings": result.timings,
           "results": [{"image": h.path, "score": h.score, "stage": h.stage,
                        "polygons": h.region.polygons() if h.region is not None else [],
                        "evidence": h.evidence} for h in result.hits]}
    out = Path(args.out)
    atomic_write_text(out, json.dumps(doc, indent=1, default=float))
    n_verified = sum(h.stage == "verified" for h in result.hits)
    n_reviewed = sum(h.stage == "reviewed" for h in result.hits)
    print(f"{len(result.hits)} results ({n_reviewed} reviewed, {n_verified} verified) in "
          f"{result.timings['total']:.2f}s -> {out}")
    return EXIT_OK


def cmd_objects(args) -> int:
    from engine.annotate import objects

    with project_job(args) as (project, _, _):
        if args.action == "list":
            rows = objects.list_objects(project)
            for o in rows:
                print(f"{o.id:4d}  {o.name:30s}  {len(o.queries)} searches · {o.status}")
            if not rows:
                print("no objects yet: a search becomes an object on its first review decision")
        elif args.action == "show":
            o = objects.load_object(project, _one(args, 1))
            print(f"{o.id}  {o.name}: {len(o.queries)} searches · {o.status}")
            for v in o.views:
                print(f"  {v.kind:9s} {shown(v.image_path or v.image)}")
            for i in o.negatives:
                print(f"  rejected  {shown(project.image_info(i).path)}")
        elif args.action == "rename":
            old, new = _one(args, 2)
            objects.rename_object(project, old, new)
            print(f"renamed {old!r} to {new!r}")
        elif args.action == "forget":
            key = _one(args, 1)
            objects.forget_object(project, key)
            print(f"forgot {key!r} (its searches and decisions stay)")
        elif args.action == "adapt":
            n = objects.adapt_graph(project, _one(args, 1) if args.names else None)
            print(f"{n} reviewed pairs added to the collection graph")
    return EXIT_OK


def _one(args, n: int):
    """The action's object name(s): exactly n of them."""
    if len(args.names) != n:
        raise PixretError(f"objects {args.action}: expected {n} name{'s' if n > 1 else ''}, got {len(args.names)}")
    return args.names[0] if n == 1 else args.names


def cmd_bench(args) -> int:
    from engine.evaluate.bench import run_bench

    progress = TqdmProgress(not args.quiet)
    with cancel_on_interrupt() as cancel:
        try:
            config = search_config(args)
            config = replace(config, outline=replace(config.outline, top=args.outline_top,
                                                     guesses=args.outline_guesses))
            doc = run_bench(args.pixbench_dir, args.out, method=args.method, project_dir=args.project,
                            config=config, graph=not args.no_graph, progress=progress, cancel=cancel,
                            features=args.features)
        finally:
            progress.close()
    print_metrics(doc)
    return EXIT_OK


def print_metrics(doc: dict) -> None:
    print(f"method {doc['method']}")
    keys = ("mAP", "mAP@50:5:95_mask", "mAP@50:5:95_box", "mIoU_mask", "mIoU_box")
    print(f"{'protocol':10s}" + "".join(f"{k:>18s}" for k in keys))
    for protocol, m in doc["metrics"].items():
        print(f"{protocol:10s}" + "".join(f"{m[k]:18.2f}" if m.get(k) is not None else f"{'-':>18s}"
                                          for k in keys))
    for protocol, m in doc["metrics"].items():
        if m.get("per_kind"):  # meta.json's query kinds: a gain on one kind is not hidden by another
            print(f"{protocol + ', by kind':18s}" + "".join(f"{k:>18s}" for k in keys))
            for kind, km in m["per_kind"].items():
                print(f"{'  ' + kind + ' (' + str(km['n_queries']) + ')':18s}"
                      + "".join(f"{km[k]:18.2f}" if km.get(k) is not None else f"{'-':>18s}" for k in keys))
    t = doc.get("timing", {})
    qs = sorted(t.get("query_s", []))
    if qs:
        print(f"index {t['index_s']:.1f}s; query median {qs[len(qs) // 2] * 1000:.0f} ms, "
              f"p90 {qs[min(len(qs) - 1, int(0.9 * len(qs)))] * 1000:.0f} ms")


def cmd_status(args) -> int:
    with project_job(args) as (project, _, _):
        images = project.images()
        counts: dict[str, int] = {}
        for im in images:
            counts[im.status] = counts.get(im.status, 0) + 1
        stats = project.stats()
        bad = [im for im in images if im.status in ("error", "missing")]
        if args.json:
            print(json.dumps({"project": str(project.folder), "collection": str(project.root), "images": counts,
                              **stats, "problems": [{"path": shown(im.path), "status": im.status, "error": im.error}
                                                    for im in bad]}, indent=1))
            return EXIT_FAILED if any(im.status == "error" for im in images) else EXIT_OK
        print(f"project {project.folder}  collection {project.root}")
        print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no images")
        print(f"{stats['features']} {stats['feature_kind']} features ({stats['descriptor']} descriptors); store {stats['feature_store_bytes'] / 1e6:.1f} MB "
              f"({stats['store_bytes_per_feature']:.1f} B/feature searched, {stats['cold_bytes_per_feature']:.1f} "
              f"B/feature of full descriptors), index {stats['index_bytes'] / 1e6:.1f} MB "
              f"({stats['index_bytes_per_feature']:.1f} B/feature)")
        if stats["index_form"] == "sharded":
            print(f"index: sharded, memory-mapped ({stats['index_shards']} shard"
                  f"{'s' if stats['index_shards'] != 1 else ''}, {stats['index_bytes'] / 1e6:.1f} MB)")
        elif stats["index_form"] == "single":
            print(f"index: one in-RAM inverted file ({stats['index_bytes'] / 1e6:.1f} MB)")
        if stats["needs_upgrade"]:
            print("made by an earlier PixRet: `pixret index` upgrades its feature store and index in place "
                  "(searches work meanwhile)")
        for im in bad:
            print(f"  {im.status:8s} {shown(im.path)}: {im.error}")
    return EXIT_FAILED if any(im.status == "error" for im in images) else EXIT_OK


def cmd_export(args) -> int:
    from engine.evaluate.official import PEER_FORMATS, export_results
    from engine.formats.export import export_project

    if args.format in PEER_FORMATS:
        if not (args.dataset and args.results):
            raise PixretError(f"--format {args.format} exports a run for the official scripts: give --dataset "
                              "PIXBENCH_DIR and --results RUN_DIR (a `pixret bench` output)")
        progress = TqdmProgress(not args.quiet)
        with cancel_on_interrupt() as cancel:
            try:
                warnings = export_results(args.dataset, args.results, args.out, args.format,
                                          name=args.name or "roxford5k", method=args.method, overwrite=args.overwrite,
                                          progress=progress, cancel=cancel)
            finally:
                progress.close()
        print(f"{args.format}: the official scripts' inputs for {args.results} in {args.out}")
        for w in warnings:
            print(f"  warning: {w}", file=sys.stderr)
        return EXIT_OK
    if not args.project:
        raise PixretError(f"--format {args.format} exports a project's reviews: give --project PROJECT_DIR")
    with project_job(args) as (project, progress, cancel):
        report = export_project(project, args.out, args.format, overwrite=args.overwrite, name=args.name,
                                include_unreviewed=args.include_unreviewed, progress=progress, cancel=cancel)
    print(report.summary())
    for w in report.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    return EXIT_OK


def cmd_import(args) -> int:
    from engine.formats.importers import import_annotations

    with project_job(args) as (project, progress, cancel):
        report = import_annotations(project, args.path, args.format, progress=progress, cancel=cancel)
    print(report.summary())
    for w in report.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    for u in report.unmatched:
        print(f"  not in the collection: {u}", file=sys.stderr)
    return EXIT_FAILED if report.unmatched else EXIT_OK


def cmd_eval(args) -> int:
    from engine.evaluate.official import official_report
    from engine.evaluate.report import eval_report

    progress = TqdmProgress(not args.quiet)
    with cancel_on_interrupt() as cancel:
        try:
            doc = eval_report(args.dataset, args.results, args.out, names=args.name or None, progress=progress,
                              cancel=cancel)
        finally:
            progress.close()
    for m in doc["methods"]:
        print_metrics({"method": m["name"], "metrics": m["metrics"]})
    if args.protocol == "proxford":
        official = official_report(args.dataset, args.results, args.out, names=[m["name"] for m in doc["methods"]],
                                   name=args.proxford_set)
        print(f"\nPROxford's official scripts (evaluation_code/mious.py, mAP@k.py), {official['n_queries']} "
              "pixel-labelled queries; their definitions, quirks in engine/evaluate/official.py:")
        keys = ("mAP", "mAP@50:5:95", "mIoU_box", "mIoU_mask")
        for m in official["methods"]:
            print(f"method {m['name']}")
            print(f"{'protocol':10s}" + "".join(f"{k:>18s}" for k in keys))
            for protocol, v in m["metrics"].items():
                print(f"{protocol:10s}" + "".join(f"{v[k]:18.2f}" if v.get(k) is not None else f"{'nan':>18s}"
                                                  for k in keys))
        print(f"official numbers: {Path(args.out) / 'proxford.json'}")
    print(f"report: {Path(args.out) / 'report.html'}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from engine.pipeline import METHODS, method_title

    method_help = "the method, by its technical name; the app's plain names: " + ", ".join(
        f"{m} = {method_title(m)}" for m in METHODS)

    from engine import __version__

    p = argparse.ArgumentParser(prog="pixret", description="Pixel retrieval: find and outline an object "
                                "across a photo collection.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, project_required=True):
        sp.add_argument("--project", required=project_required, help="project folder")
        sp.add_argument("--db", default=None, help="catalog database URL (default: SQLite in the project folder)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    no_graph_help = "skip the collection graph this time (only diffusion, hypergraph and full use it)"
    sp = sub.add_parser("index", help="add/refresh images, extract features, index (incremental)")
    sp.add_argument("images_dir")
    sp.add_argument("--no-graph", action="store_true", help=no_graph_help)
    features_option(sp)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N", help="run the batches on a local Dask cluster of N worker "
                   "processes (needs the dask extra: pip install 'pixret-desktop[dask]')")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the batches on the Dask cluster of this "
                   "scheduler (the collection and the project on a folder every worker sees at the same path)")
    common(sp)
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("search", help="find and outline the query object in the collection")
    common(sp)
    sp.add_argument("--query", help="query image (a file, or a path inside the collection)")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--polygon", help="LabelMe JSON with the query polygon(s)")
    g.add_argument("--mask", help="PNG mask of the query region (nonzero = inside)")
    g.add_argument("--bbox", help="query box X1,Y1,X2,Y2 in pixels")
    sp.add_argument("--object", help="search for a remembered object with all its reviewed views "
                    "(name or id; `pixret objects` lists them)")
    sp.add_argument("--no-recall", action="store_true",
                    help="do not check the region against remembered objects first")
    sp.add_argument("--save", action="store_true",
                    help="store the search in the project (to review it in the app; an object search joins its object)")
    sp.add_argument("--method", default="sv", choices=sorted(METHODS), help=method_help)
    thorough_options(sp)
    sp.add_argument("--top", type=int, default=100)
    sp.add_argument("--out", required=True, help="RESULT.json")
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("objects", help="remembered objects: list, show, rename, forget, adapt the graph")
    common(sp)
    sp.add_argument("action", nargs="?", default="list", choices=("list", "show", "rename", "forget", "adapt"))
    sp.add_argument("names", nargs="*", help="show/forget/adapt NAME, rename NAME NEW_NAME")
    sp.set_defaults(func=cmd_objects)

    sp = sub.add_parser("bench", help="run a PixBench set and compute its metrics")
    sp.add_argument("pixbench_dir")
    sp.add_argument("--out", required=True)
    sp.add_argument("--method", default="sv", choices=sorted(METHODS), help=method_help)
    thorough_options(sp)
    sp.add_argument("--project", default=None, help="project folder to (re)use (default: OUT/project)")
    features_option(sp)
    sp.add_argument("--no-graph", action="store_true", help=no_graph_help)
    from engine.segment.outline import OutlineConfig

    outline = OutlineConfig()
    sp.add_argument("--outline-top", type=int, default=outline.top, metavar="N",
                    help="the segment stage outlines the verified and propagated hits among the first N "
                         f"(0: no segment stage, the verifiers' own regions, as before it existed; default {outline.top})")
    sp.add_argument("--outline-guesses", type=int, default=outline.guesses, metavar="N",
                    help="... and guesses one for the unverified hits among the first N, flagged as a guess: "
                         "carried by matches too few to verify the photo, else from colour (default %(default)s)")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.set_defaults(func=cmd_bench)

    from engine.evaluate.official import PEER_FORMATS, SETS
    from engine.formats.export import EXPORT_FORMATS
    from engine.formats.importers import IMPORT_FORMATS

    sp = sub.add_parser("export", help="write the reviewed annotations as a dataset (PixBench, COCO, LabelMe, "
                        "masks), or a run as the official revisitop/PROxford scripts' inputs")
    common(sp, project_required=False)
    sp.add_argument("--format", required=True, choices=EXPORT_FORMATS + PEER_FORMATS)
    sp.add_argument("--out", required=True, help="export folder: a new or empty one, or an earlier PixRet export")
    sp.add_argument("--overwrite", action="store_true",
                    help="replace OUT when it holds an earlier PixRet export (any other non-empty folder is refused)")
    sp.add_argument("--name", default=None, help="dataset name (gnd_<name>.pkl; default: the project's; "
                    f"proxford/revisitop: {' or '.join(SETS)}, the names their scripts know, default roxford5k)")
    sp.add_argument("--dataset", help="proxford/revisitop: the PixBench set the run was made on")
    sp.add_argument("--results", help="proxford/revisitop: the run (a `pixret bench` output: ranking/, pairs/)")
    sp.add_argument("--method", default=None, help="proxford: the method's folder name (default: the run's folder)")
    sp.add_argument("--include-unreviewed", action="store_true",
                    help="also export searches nobody has reviewed yet (as queries without positives)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("import", help="import existing labels as reviewed searches")
    common(sp)
    sp.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    sp.add_argument("path", help="LabelMe file or folder, COCO JSON, PixBench folder, or revisitop gnd .pkl")
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("eval", help="score result folders on a PixBench set and write a comparison report")
    sp.add_argument("dataset", help="PixBench folder")
    sp.add_argument("results", nargs="+", help="result folders (ranking/<q>.json, pairs/<q>.json)")
    sp.add_argument("--out", required=True, help="report folder (metrics.json, plots/, report.html)")
    sp.add_argument("--name", action="append", help="method name, once per results folder, in order "
                    "(default: the run's metrics.json method, else the folder name)")
    sp.add_argument("--protocol", choices=("pixret", "proxford"), default="pixret",
                    help="proxford: also the numbers PROxford's official scripts give (their definitions, quirks "
                    "included), beside PixRet's own")
    sp.add_argument("--proxford-set", choices=tuple(SETS), default="roxford5k",
                    help="the set name the official scripts would see (it decides which queries they skip)")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("status", help="the project's images, and those that could not be read")
    common(sp)
    sp.add_argument("--json", action="store_true", help="print it as JSON (sizes in bytes and bytes per feature)")
    sp.set_defaults(func=cmd_status)
    return p


def main(argv=None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8 is printed, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe is found here, inside the handlers below, not at exit
        return code
    except Cancelled:
        print("cancelled; everything finished before the cancel is saved", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return EXIT_CANCELLED
    except DiskFullError as e:  # not bad input: the work ran out of room
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except PixretError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `pixret status | head`: the reader has what it wanted
        # Python flushes stdout again at exit; point it at devnull so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
