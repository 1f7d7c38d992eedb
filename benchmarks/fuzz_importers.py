"""Reliability: every importer against malformed and hostile files, each case in its own process.

    python benchmarks/fuzz_importers.py --cases 500 [--seed 1] [--keep OUT]

For each importer (COCO, LabelMe, PixBench, revisitop .pkl) it builds valid files for a generated,
indexed collection, then damages them: a field replaced by a random or hostile value (huge and
non-finite numbers, names over 255 bytes, absolute and '../' paths, NUL bytes, deep nesting),
bytes overwritten, inserted or cut, and (pickles) hand-made bombs and code-running payloads. Each
case is imported by a forked child with 3 GB of address space and 30 s; it counts as

- imported: the import worked (the damage left a valid file);
- clear error: FormatError naming the file, and the project's rows unchanged;
- crash: anything else (another exception, a signal, a timeout, running out of memory, rows
  changed after an error, a payload's code running). Crashes are saved under --keep.

Prints a table per importer; BENCHMARKS.md's Reliability section records it.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.base.regions import Region, encode_rle  # noqa: E402
from engine.demo import make_collection  # noqa: E402
from engine.project import Project  # noqa: E402

W, H = 200, 160
EXIT_OK, EXIT_CLEAR, EXIT_CRASH = 0, 3, 4
MARKER = "PWNED"

HOSTILE_VALUES = [None, True, [], {}, "", -1, 0, 2**63, -2**63, 2**200, 1e308, -1e308, float("nan"), float("inf"),
                  "x" * 300, "n" * 300 + ".jpg", "/etc/passwd", "../../../../etc/passwd", "..", "a\x00b.jpg",
                  "C:\\Windows\\win.ini", "\\\\server\\share\\x.jpg", "images/../../x.jpg", "\udcff.jpg",
                  [[0, 0]], [1, 2, 3], {"size": [1, 1]}, {"size": [100000, 100000], "counts": "0"},
                  {"size": [H, W], "counts": [2**62, 2**62, 2**62, 2**62 + H * W]}, [[1e7, 1e7] * 3],
                  [[0.5, 0.5]] * 100000, "0" * 10000]


def deep(n: int) -> str:
    """A list nested n deep, as a placeholder that json_bytes writes out ([[[...]]])."""
    return f"\x00DEEP{n}\x00"


def valid_docs(col) -> dict:
    (rel1, p1), (rel2, p2) = col.views["object1"][:2]
    labelme = {"version": "5.3.1", "flags": {}, "imagePath": rel1.split("/")[-1], "imageData": None,
               "imageWidth": W, "imageHeight": H,
               "shapes": [{"label": "o", "shape_type": "polygon", "points": p1, "group_id": 1,
                           "flags": {"query": True}},
                          {"label": "o", "shape_type": "mask", "points": [[2, 3], [9, 7]], "group_id": 1,
                           "flags": {}, "mask": png_b64(np.ones((5, 8), bool))}]}
    coco = {"images": [{"id": 1, "file_name": rel1, "width": W, "height": H},
                       {"id": 2, "file_name": rel2, "width": W, "height": H},
                       {"id": 3, "file_name": col.distractors[0], "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [np.ravel(p1).tolist()], "bbox": [1, 2, 3, 4], "area": 5,
                             "pixret": {"object": 0, "role": "query", "difficulty": "easy"}},
                            {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 0,
                             "segmentation": encode_rle(Region.from_polygons([p2]).to_mask(H, W)),
                             "pixret": {"object": 0, "role": "positive", "difficulty": "hard"}}],
            "categories": [{"id": 1, "name": "o"}],
            "pixret": {"objects": [{"id": 0, "negative_image_ids": [3]}]}}
    flat = lambda rel: rel.rsplit(".", 1)[0].replace("/", "__")  # noqa: E731
    gnd = {"imlist": [flat(col.views["object1"][1][0]), flat(col.views["object1"][2][0]), flat(col.distractors[0])],
           "qimlist": [flat(rel1)],
           "gnd": [{"bbx": [10.0, 10.0, 90.0, 80.0], "easy": [0], "hard": [1], "junk": [2], "pixel_gt": False}]}
    return {"labelme": labelme, "coco": coco, "gnd": gnd}


def png_b64(mask) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def paths_of(doc, prefix=()):
    yield prefix
    if len(prefix) >= 8:
        return
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(doc, list):
        for k, v in enumerate(doc):
            yield from paths_of(v, prefix + (k,))


def fresh(value):
    """A copy that shares nothing (JSON has no references): a shared sub-list, replaced inside
    itself, would make the generated file, not the importer, explode."""
    return json.loads(json.dumps(value))


def replaced(doc, path, value, delete=False):
    value = fresh(value)
    if not path:
        return value
    doc = fresh(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def random_value(rng: random.Random):
    r = rng.random()
    if r < 0.55:
        return rng.choice(HOSTILE_VALUES)
    if r < 0.7:
        return deep(rng.choice([10, 1000, 100000]))
    if r < 0.85:
        return rng.uniform(-1e9, 1e9) if rng.random() < 0.5 else rng.randint(-2**40, 2**40)
    return "".join(rng.choice("ab/.\\\x00é ") for _ in range(rng.randint(0, 20)))


# fields whose damage matters most, and values aimed at them
TARGETS = {"file_name": "name", "imagePath": "name", "imlist": "name", "qimlist": "name",
           "segmentation": "rle", "counts": "rle", "size": "rle", "points": "points", "bbx": "points",
           "easy": "index", "hard": "index", "junk": "index", "image_id": "index", "width": "index",
           "height": "index", "imageWidth": "index", "imageHeight": "index", "mask": "png"}
AIMED = {"name": ["n" * 300, "n" * 300 + ".jpg", "/etc/passwd", "../../../../etc/passwd", "..", "a\x00b.jpg",
                  "C:\\Windows\\win.ini", "images/../../x.jpg", "\udcff.jpg", "a/" * 200 + "b.jpg", ""],
         "rle": [{"size": [H, W], "counts": [2**62, 2**62, 2**62, 2**62 + H * W]},
                 {"size": [H, W], "counts": "0" + "o" * 11 + "1" + "o" * 11 + "1"},
                 {"size": [100000, 100000], "counts": "0"}, {"size": [H, W], "counts": [-1, H * W + 1]},
                 {"size": [H, W], "counts": "\u00ff"}, {"size": [2**40, 2**40], "counts": [2**80]}],
         "points": [[[1e7, 1e7]] * 3, [[0.5, 0.5]] * 100000, [[1e300, -1e300], [0, 0], [1, 1]], [[0, 0]] * 2],
         "index": [2**63, -1, 10**9, 1e308, float("nan"), True, "0"],
         "png": ["", "not base64!", "aGVsbG8=", "iVBORw0KGgo" + "A" * 40,            # not PNGs
                 png_b64(np.ones((1, 1), bool)), png_b64(np.ones((4000, 3), bool))]}      # the wrong size


def mutate_doc(doc, rng: random.Random):
    if rng.random() < 0.05:
        return fresh(doc)         # a valid file now and then: the harness must import those
    for _ in range(rng.randint(1, 3)):
        paths = list(paths_of(doc))
        aimed = [p for p in paths if p and any(isinstance(k, str) and k in TARGETS for k in p[-2:])]
        if aimed and rng.random() < 0.5:
            path = rng.choice(aimed)
            kind = next(TARGETS[k] for k in reversed(path[-2:]) if isinstance(k, str) and k in TARGETS)
            doc = replaced(doc, path, rng.choice(AIMED[kind]))
        else:
            doc = replaced(doc, rng.choice(paths), random_value(rng), delete=rng.random() < 0.15)
    return doc


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.05:
        return data
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(len(b) + 1)
        op = rng.random()
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        if op < 0.4:
            b[k:k + len(junk)] = junk
        elif op < 0.7:
            b[k:k] = junk
        elif op < 0.85:
            del b[k:]
        else:
            del b[k:k + rng.randint(1, 8)]
    return bytes(b)


def json_bytes(doc) -> bytes:
    text = json.dumps(doc)
    for n in (10, 1000, 100000):
        text = text.replace(json.dumps(deep(n)), "[" * n + "]" * n)
    return text.encode("utf-8", "surrogatepass")


class Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile_pickles(marker: Path) -> list[bytes]:
    import builtins
    import subprocess

    cmd = f"touch {marker}"
    shared: list = []
    for _ in range(40):
        shared = [shared, shared]
    key = b"\x80\x02})q\x000"
    for k in range(60):
        key += b"h" + bytes([k]) + b"h" + bytes([k]) + b"\x86q" + bytes([k + 1]) + (b"0" if k < 59 else b"")
    out = [pickle.dumps(Reduce(os.system, cmd), protocol=p) for p in range(6)]
    out += [pickle.dumps(Reduce(builtins.eval, f"__import__('os').system('{cmd}')")),
            pickle.dumps(Reduce(subprocess.call, ["touch", str(marker)])),
            b"cposix\nsystem\n(S'" + cmd.encode() + b"'\ntR.",
            b"(S'" + cmd.encode() + b"'\nios\nsystem\n.",
            b"cnumpy\nndarray\n((I1000000000\ntS'f8'\ntR.",
            b"c__builtin__\nbytearray\n(I4000000000000\ntR.",
            b"\x80\x04]r\xff\xff\xff\x7f.",
            key + b"K\x01s.",
            pickle.dumps({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": [0, 0, 1, 1], "easy": [shared]}]}),
            pickle.dumps(Reduce(str, shared)),
            b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b"."]          # lists nested 100,000 deep
    return out


def make_case(fmt: str, docs: dict, rng: random.Random, case_dir: Path, marker: Path) -> Path:
    """Write one damaged source into case_dir; returns the path to import."""
    byte_level = rng.random() < 0.35
    if fmt in ("labelme", "coco"):
        doc = mutate_doc(docs[fmt], rng) if not byte_level else docs[fmt]
        data = json_bytes(doc)
        data = mutate_bytes(data, rng) if byte_level else data
        path = case_dir / ("a.json" if fmt == "labelme" else "c.json")
        path.write_bytes(data)
        return path
    if fmt == "pixbench":
        which = rng.choice(["gnd", "query", "label"])
        files = {"gnd": (case_dir / "gnd.json", docs["gnd"]), "query": (case_dir / "queries" / "0.json", docs["labelme"]),
                 "label": (case_dir / "labels" / "0_0.json", docs["labelme"])}
        for key, (path, doc) in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if key == which:
                data = json_bytes(mutate_doc(doc, rng)) if not byte_level else mutate_bytes(json_bytes(doc), rng)
            else:
                data = json_bytes(doc)
            path.write_bytes(data)
        return case_dir
    # revisitop: a pickle, sometimes with a pair2labelpath .npy
    r = rng.random()
    if r < 0.15:
        blob = rng.choice(hostile_pickles(marker))
    else:
        doc = fresh(docs["gnd"]) if r < 0.5 else mutate_doc(docs["gnd"], rng)
        if rng.random() < 0.3 and isinstance(doc, dict) and isinstance(doc.get("gnd"), list) and doc["gnd"]:
            e = doc["gnd"][0]
            if isinstance(e, dict) and isinstance(e.get("easy"), list) and all(type(i) is int for i in e["easy"]):
                e["easy"] = np.asarray(e["easy"], dtype=np.int64)
        try:
            blob = pickle.dumps(doc, protocol=rng.randint(0, 5))
        except (RecursionError, ValueError, pickle.PicklingError):
            blob = b"\x80\x04]."
        if r < 0.5:
            blob = mutate_bytes(blob, rng)
    path = case_dir / "gnd_x.pkl"
    path.write_bytes(blob)
    if rng.random() < 0.2:
        np.save(case_dir / "x_pair2labelpath.npy",
                np.array(rng.choice([{"0_0": "labels/0_0.json"}, {"0_0": "/etc/passwd"}, {"x": 1},
                                     [Reduce(os.system, f"touch {marker}")]]), dtype=object), allow_pickle=True)
    return path


def child(project_dir: Path, path: Path, fmt: str, log: Path) -> None:
    """Runs in the forked process: import, classify, exit."""
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    signal.alarm(30)
    from sqlalchemy import func, select

    from engine.base.errors import FormatError
    from engine.catalog.tables import AnnotationRow, HitRow, QueryRow
    from engine.formats.importers import import_annotations

    def counts(p):
        with p.catalog.session() as s:
            return tuple(s.scalar(select(func.count()).select_from(t)) for t in (QueryRow, HitRow, AnnotationRow))

    try:
        with Project.open(project_dir) as p:
            before = counts(p)
            try:
                import_annotations(p, path, fmt)
            except FormatError as e:
                named = Path(e.path).name in str(e) and bool(e.path)
                unchanged = counts(p) == before
                if named and unchanged:
                    os._exit(EXIT_CLEAR)
                log.write_text(f"FormatError but named={named} unchanged={unchanged}: {e}")
                os._exit(EXIT_CRASH)
            with p.catalog.session() as s:       # no file from outside the dataset kept as a query image
                case = path if path.is_dir() else path.parent
                outside = [q.image_path for q in s.scalars(select(QueryRow)) if q.image_path
                           and Path(q.image_path).is_absolute() and not Path(q.image_path).is_relative_to(case)]
            if outside:
                log.write_text(f"kept a file outside the dataset: {outside[:3]}")
                os._exit(EXIT_CRASH)
        os._exit(EXIT_OK)
    except BaseException:  # noqa: BLE001 - the point is to catch everything
        log.write_text(traceback.format_exc()[-4000:])
        os._exit(EXIT_CRASH)


def run_case(project_dir: Path, path: Path, fmt: str, log: Path) -> str:
    pid = os.fork()
    if pid == 0:
        child(project_dir, path, fmt, log)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        log.write_text(f"killed by signal {os.WTERMSIG(status)} (SIGALRM = timeout)")
        return "crash"
    code = os.WEXITSTATUS(status)
    return {EXIT_OK: "imported", EXIT_CLEAR: "clear error"}.get(code, "crash")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500, help="cases per importer")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="folder to save crashing cases in")
    ap.add_argument("--formats", default="coco,labelme,pixbench,revisitop", help="importers to try (comma-separated)")
    args = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))     # this process too: the machine is shared
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="pixret-fuzz-bench-"))
    try:
        col = make_collection(work / "collection", n_objects=1, views=3, n_distractors=1, size=(W, H), seed=5)
        with Project.create(work / "project", root=col.root) as p:
            p.index_folder(col.root)
        docs = valid_docs(col)
        marker = work / MARKER
        results: dict[str, dict[str, int]] = {}
        t0 = time.time()
        formats = args.formats.split(",")
        for fmt in formats:
            tally = {"imported": 0, "clear error": 0, "crash": 0}
            for k in range(args.cases):
                case_dir = work / "case"
                shutil.rmtree(case_dir, ignore_errors=True)
                case_dir.mkdir()
                path = make_case(fmt, docs, rng, case_dir, marker)
                log = work / "last.log"
                log.unlink(missing_ok=True)
                outcome = run_case(work / "project", path, fmt, log)
                if marker.exists():
                    outcome = "crash"
                    log.write_text("a payload's code ran")
                    marker.unlink()
                tally[outcome] += 1
                if outcome == "crash" and args.keep:
                    dst = args.keep / f"{fmt}-{k}"
                    shutil.copytree(case_dir, dst)
                    if log.exists():
                        shutil.copy(log, dst / "why.txt")
            results[fmt] = tally
            print(f"{fmt:10s} {args.cases} cases: {tally['imported']} imported, {tally['clear error']} clear errors, "
                  f"{tally['crash']} crashes", flush=True)
        total = {k: sum(r[k] for r in results.values()) for k in ("imported", "clear error", "crash")}
        print(f"{'all':10s} {len(formats) * args.cases} cases: {total['imported']} imported, {total['clear error']} clear errors, "
              f"{total['crash']} crashes; {time.time() - t0:.0f} s")
        return 1 if total["crash"] else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
