"""Importers against random, truncated and hostile input: a clear FormatError (file and field), never
another exception, never a half-written project; a pickle that would run code is refused unrun."""
from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.base.errors import FormatError
from engine.base.regions import Region, encode_rle
from engine.catalog.tables import AnnotationRow, HitRow, QueryRow
from engine.demo import make_collection
from engine.formats import revisitop
from engine.formats.importers import import_annotations
from engine.project import Project

W, H = 200, 160
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzcol")
    col = make_collection(root, n_objects=1, views=3, n_distractors=1, size=(W, H), seed=5)
    with Project.create(tmp_path_factory.mktemp("fuzzproj") / "p", root=root) as p:
        p.index_folder(root)
        p.col = col
        yield p


def counts(project) -> tuple[int, int, int]:
    with project.catalog.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (QueryRow, HitRow, AnnotationRow))


def attempt(project, path, fmt) -> bool:
    """Import; True if it worked. Any failure must be a FormatError naming the file, with nothing written."""
    before = counts(project)
    try:
        import_annotations(project, path, fmt)
    except FormatError as e:
        assert e.path and Path(e.path).name in str(e), str(e)
        assert counts(project) == before
        return False
    return True


# -- valid documents to damage ---------------------------------------------------------------------


def labelme_doc(project) -> dict:
    (rel1, p1), (rel2, p2) = project.col.views["object1"][:2]
    return {"version": "5.0.1", "flags": {}, "imagePath": rel1.split("/")[-1], "imageData": None,
            "imageWidth": W, "imageHeight": H,
            "shapes": [{"label": "o", "shape_type": "polygon", "points": p1, "group_id": 1,
                        "flags": {"query": True}}]}


def coco_doc(project) -> dict:
    (rel1, p1), (rel2, p2) = project.col.views["object1"][:2]
    return {"images": [{"id": 1, "file_name": rel1, "width": W, "height": H},
                       {"id": 2, "file_name": rel2, "width": W, "height": H},
                       {"id": 3, "file_name": project.col.distractors[0], "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [np.ravel(p1).tolist()], "bbox": [1, 2, 3, 4], "area": 5,
                             "pixret": {"object": 0, "role": "query", "difficulty": "easy"}},
                            {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 0,
                             "segmentation": encode_rle(Region.from_polygons([p2]).to_mask(H, W)),
                             "pixret": {"object": 0, "role": "positive", "difficulty": "hard"}}],
            "categories": [{"id": 1, "name": "o"}],
            "pixret": {"objects": [{"id": 0, "negative_image_ids": [3]}]}}


def gnd_doc(project) -> dict:
    return {"imlist": ["object1__view02", "object1__view03", "other__scene001"], "qimlist": ["object1__view01"],
            "gnd": [{"bbx": [10.0, 10.0, 90.0, 80.0], "easy": [0], "hard": [1], "junk": [2], "pixel_gt": False}]}


def test_the_documents_the_fuzzers_damage_are_valid(project, tmp_path):
    """So that a mutation is one fault in an otherwise good file."""
    (tmp_path / "a.json").write_text(json.dumps(labelme_doc(project)))
    (tmp_path / "c.json").write_text(json.dumps(coco_doc(project)))
    (tmp_path / "pb" / "queries").mkdir(parents=True)
    (tmp_path / "pb" / "gnd.json").write_text(json.dumps(gnd_doc(project)))
    (tmp_path / "pb" / "queries" / "0.json").write_text(json.dumps(labelme_doc(project)))
    for path, fmt in ((tmp_path / "a.json", "labelme"), (tmp_path / "c.json", "coco"), (tmp_path / "pb", "pixbench"),
                      (write_pkl(tmp_path, pickle.dumps(gnd_doc(project))), "revisitop")):
        r = import_annotations(project, path, fmt)
        assert r.n_objects == 1 and not r.unmatched, fmt


def json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
    return st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=5),
                                                      st.dictionaries(st.text(max_size=10), c, max_size=5)),
                        max_leaves=30)


def paths_of(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(doc, list):
        for k, v in enumerate(doc):
            yield from paths_of(v, prefix + (k,))


def replaced(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


KEYS = ("imagePath", "imageWidth", "imageHeight", "shapes", "label", "points", "shape_type", "group_id", "flags",
        "images", "annotations", "categories", "segmentation", "counts", "size", "bbox", "file_name", "id",
        "image_id", "category_id", "pixret", "object", "role", "difficulty", "imlist", "qimlist", "gnd", "bbx",
        "easy", "hard", "junk", "pixel_gt")


def mutated(doc_fn):
    """A valid document with one field (anywhere in it) replaced, or a key renamed away."""
    @st.composite
    def make(draw, project):
        doc = doc_fn(project)
        paths = list(paths_of(doc))
        path = draw(st.sampled_from(paths))
        value = draw(st.one_of(json_values(), st.sampled_from([None, [], {}, "", -1, 0, 1e308, [[0, 0]],
                                                               "x" * 40, [1, 2, 3], {"size": [1, 1]}])))
        return replaced(doc, path, value)
    return make


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="pixret-fuzz-"))


# -- JSON importers ----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_labelme_random_and_mutated_json(project, data):
    d = scratch()
    try:
        doc = data.draw(st.one_of(json_values(), mutated(labelme_doc)(project)))
        (d / "a.json").write_text(json.dumps(doc))
        attempt(project, d / "a.json", "labelme")
    finally:
        shutil.rmtree(d)


@FUZZ
@given(data=st.data())
def test_coco_random_and_mutated_json(project, data):
    d = scratch()
    try:
        doc = data.draw(st.one_of(json_values(), mutated(coco_doc)(project)))
        (d / "c.json").write_text(json.dumps(doc))
        attempt(project, d / "c.json", "coco")
    finally:
        shutil.rmtree(d)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["gnd", "query", "label"]))
def test_pixbench_random_and_mutated_files(project, data, which):
    d = scratch()
    try:
        gnd = gnd_doc(project)
        (d / "queries").mkdir()
        (d / "labels").mkdir()
        lm = labelme_doc(project)
        files = {"gnd": d / "gnd.json", "query": d / "queries" / "0.json", "label": d / "labels" / "0_0.json"}
        docs = {"gnd": gnd, "query": lm, "label": lm}
        docs[which] = data.draw(st.one_of(json_values(), mutated({"gnd": gnd_doc, "query": labelme_doc,
                                                                   "label": labelme_doc}[which])(project)))
        for k, f in files.items():
            f.write_text(json.dumps(docs[k]))
        attempt(project, d, "pixbench")
    finally:
        shutil.rmtree(d)


@FUZZ
@given(fmt=st.sampled_from(["labelme", "coco", "pixbench"]), cut=st.floats(0.0, 0.999),
       junk=st.sampled_from(["", "\x00", "\ufffd", "]]]]", "{", "NaN"]))
def test_truncated_json_is_a_format_error_and_writes_nothing(project, fmt, cut, junk):
    d = scratch()
    try:
        doc = {"labelme": labelme_doc, "coco": coco_doc, "pixbench": gnd_doc}[fmt](project)
        text = json.dumps(doc, indent=1)
        name = {"labelme": "a.json", "coco": "c.json", "pixbench": "gnd.json"}[fmt]
        (d / name).write_text(text[: int(len(text) * cut)] + junk)
        assert not attempt(project, d if fmt == "pixbench" else d / name, fmt)
    finally:
        shutil.rmtree(d)


def test_deeply_nested_json_is_a_format_error(project, tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for fmt in ("labelme", "coco"):
        assert not attempt(project, tmp_path / "deep.json", fmt)


def test_binary_and_non_utf8_files(project, tmp_path):
    (tmp_path / "b.json").write_bytes(os.urandom(64) + b"\xff\xfe")
    for fmt in ("labelme", "coco"):
        assert not attempt(project, tmp_path / "b.json", fmt)


# -- pickles -------------------------------------------------------------------------------------------


def write_pkl(d: Path, payload: bytes) -> Path:
    path = d / "gnd_x.pkl"
    path.write_bytes(payload)
    return path


@FUZZ
@given(blob=st.binary(max_size=300))
def test_random_bytes_as_a_gnd_pickle(project, blob):
    d = scratch()
    try:
        attempt(project, write_pkl(d, blob), "revisitop")
    finally:
        shutil.rmtree(d)


def pickle_values():
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(), st.text(max_size=8),
                       st.binary(max_size=8),
                       st.lists(st.integers(-5, 5), max_size=4).map(lambda v: np.asarray(v, dtype=np.int64)),
                       st.lists(st.floats(-1e3, 1e3), max_size=4).map(np.asarray))
    return st.recursive(leaves, lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c),
                                                     st.dictionaries(st.sampled_from(KEYS), c, max_size=5)),
                        max_leaves=25)


@FUZZ
@given(data=st.data(), protocol=st.integers(0, 5))
def test_random_and_mutated_gnd_pickles(project, data, protocol):
    d = scratch()
    try:
        value = data.draw(st.one_of(pickle_values(), st.builds(
            lambda path, v: with_arrays(replaced_obj(gnd_doc(project), path, v)),
            st.sampled_from(list(paths_of(gnd_doc(project)))), pickle_values())))
        attempt(project, write_pkl(d, pickle.dumps(value, protocol=protocol)), "revisitop")
    finally:
        shutil.rmtree(d)


def with_arrays(doc):
    """Index lists as numpy arrays, as revisitop's own files may hold them."""
    try:
        e = doc["gnd"][0]
        if isinstance(e["easy"], list) and all(type(i) is int for i in e["easy"]):
            e["easy"] = np.asarray(e["easy"], dtype=np.int64)
    except (KeyError, IndexError, TypeError):
        pass
    return doc


def replaced_obj(doc, path, value):
    if not path:
        return value
    import copy

    doc = copy.deepcopy(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


@FUZZ
@given(protocol=st.integers(0, 5), cut=st.floats(0.0, 0.999))
def test_truncated_gnd_pickles(project, protocol, cut):
    d = scratch()
    try:
        blob = pickle.dumps(gnd_doc(project), protocol=protocol)
        assert not attempt(project, write_pkl(d, blob[: int(len(blob) * cut)]), "revisitop")
    finally:
        shutil.rmtree(d)


def test_a_valid_gnd_pickle_with_numpy_arrays_imports(project, tmp_path):
    g = gnd_doc(project)
    g["gnd"][0] = {k: (np.asarray(v) if k != "pixel_gt" else v) for k, v in g["gnd"][0].items()}
    g["imlist"] = np.asarray(g["imlist"])
    for protocol in (2, 4, 5):
        before = counts(project)
        d = tmp_path / f"p{protocol}"
        d.mkdir()
        r = import_annotations(project, write_pkl(d, pickle.dumps(g, protocol=protocol)), "revisitop")
        assert r.n_objects == 1 and r.n_annotations == 3 and not r.unmatched
        assert counts(project)[0] == before[0] + 1


# -- hostile pickles: refused, and their code never runs -------------------------------------------------


class Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile_payloads(marker: Path) -> list[bytes]:
    import builtins
    import subprocess

    cmd = f"touch {marker}"
    gnd_with = lambda evil: {"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": evil, "easy": [], "hard": [],  # noqa: E731
                                                                      "junk": []}]}
    payloads = [pickle.dumps(Reduce(os.system, cmd), protocol=p) for p in range(6)]
    payloads += [
        pickle.dumps(gnd_with(Reduce(os.system, cmd))),                       # deep inside valid data
        pickle.dumps(Reduce(builtins.eval, f"__import__('os').system('{cmd}')")),
        pickle.dumps(Reduce(builtins.exec, f"open('{marker}', 'w').close()")),
        pickle.dumps(Reduce(subprocess.call, ["touch", str(marker)])),
        pickle.dumps(Reduce(builtins.getattr, Reduce(builtins.__import__, "os"), "system")),
        pickle.dumps(Reduce(builtins.__import__, "os")),
        pickle.dumps(Reduce(np.load, str(marker))),
        # hand-written opcodes: GLOBAL, STACK_GLOBAL, INST, OBJ; python 2 module names
        b"cposix\nsystem\n(S'" + cmd.encode() + b"'\ntR.",
        b"c__builtin__\neval\n(S'__import__(\"os\").system(\"" + cmd.encode() + b"\")'\ntR.",
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(cmd)])
        + cmd.encode() + b"\x85R.",
        b"(S'" + cmd.encode() + b"'\nios\nsystem\n.",
        b"(cos\nsystem\nS'" + cmd.encode() + b"'\no.",
        # numpy's own reconstruct asked to build something that is not an array
        b"cnumpy.core.multiarray\n_reconstruct\n(cos\nsystem\n(I0\ntS'b'\ntR.",
        # _codecs.encode is allowed only as latin-1 (how protocol 2 carries bytes)
        b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.",
        # persistent ids are refused too
        b"P" + cmd.encode() + b"\n.",
    ]
    return payloads


def test_hostile_pickles_are_refused_and_never_run(project, tmp_path):
    marker = tmp_path / "PWNED"
    for k, payload in enumerate(hostile_payloads(marker)):
        d = tmp_path / f"h{k}"
        d.mkdir()
        path = write_pkl(d, payload)
        with pytest.raises(FormatError) as e:
            revisitop.safe_load(path)
        assert "gnd_x.pkl" in str(e.value)
        assert not attempt(project, path, "revisitop")
        assert not marker.exists(), f"payload {k} ran: {pickletools.dis(io.BytesIO(payload)) or payload!r}"


def test_hostile_object_array_in_pair2labelpath_npy_is_refused(project, tmp_path):
    marker = tmp_path / "PWNED"
    d = tmp_path / "set"
    d.mkdir()
    g = gnd_doc(project)
    revisitop.write_gnd_pkl(d / "gnd_s.pkl", g["imlist"], g["qimlist"], g["gnd"])
    with open(d / "s_pair2labelpath.npy", "wb") as f:
        np.save(f, np.array([Reduce(os.system, f"touch {marker}")], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="s_pair2labelpath.npy"):
        revisitop.load_npy(d / "s_pair2labelpath.npy")
    assert not attempt(project, d / "gnd_s.pkl", "revisitop")
    assert not marker.exists()


def test_memory_bombs_in_pickles_are_refused(project, tmp_path):
    bombs = [b"c__builtin__\nbytearray\n(I4000000000000\ntR.",       # bytearray(4 TB)
             b"c__builtin__\nbytes\n(I4000000000000\ntR."]
    for k, payload in enumerate(bombs):
        with pytest.raises(FormatError):
            revisitop.safe_load(write_pkl(tmp_path, payload))


# -- the failures of the reliability run (issue 12), each reproduced --------------------------------------


@contextmanager
def within(seconds: float):
    """Fail (instead of hanging the suite) when Python code in the block runs longer than `seconds`."""
    def timeout(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


READER = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from engine.base.errors import FormatError
from engine.formats import coco, revisitop
from engine.formats.labelme import load_json
read = {"pickle": revisitop.safe_load, "gnd": revisitop.read_gnd_pkl,
        "coco": lambda p: coco.read_coco(p, load_json(p))}[sys.argv[1]]
for path in sys.argv[2:]:
    try:
        read(path)
        print("read", flush=True)
    except FormatError as e:
        print("FormatError", e.where, "|", e.problem, flush=True)
"""


def read_in_child(kind: str, paths, seconds: float = 60) -> list[str]:
    """Read hostile files in a child process (3 GB of address space): a hang, a crash or a memory
    blow-up fails the test instead of taking the suite down. One line per file."""
    r = subprocess.run([sys.executable, "-c", READER, kind, *map(str, paths)], capture_output=True, text=True,
                       timeout=seconds)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == len(paths), (r.returncode, r.stdout, r.stderr[-2000:])
    return lines


def test_rle_counts_that_wrap_int64_are_a_format_error(project, tmp_path):
    """Runs of 2**62 summed to H*W modulo 2**64: the size check passed and np.repeat overran (segfault)."""
    paths = []
    for k, counts in enumerate(([2**62, 2**62, 2**62, 2**62 + H * W], [0, 2**63 - 1, 2**63 - 1, 2 + H * W],
                                "0" + "o" * 11 + "1" + "o" * 11 + "1")):     # compressed: deltas of 2**59 and more
        doc = coco_doc(project)
        doc["annotations"][1]["segmentation"] = {"size": [H, W], "counts": counts}
        paths.append(tmp_path / f"c{k}.json")
        paths[-1].write_text(json.dumps(doc))
    for line in read_in_child("coco", paths):
        assert line.startswith("FormatError annotations[1].segmentation"), line
    assert not attempt(project, paths[0], "coco")


def shared_lists(levels: int) -> list:
    node: list = []
    for _ in range(levels):
        node = [node, node]      # pickled once per level (memo), 2**levels leaves when walked
    return node


def test_gnd_pickle_of_shared_nested_lists_is_refused_at_once(project, tmp_path):
    """400 bytes whose repr (built for the error message, then cut) doubles at every level."""
    g = gnd_doc(project)
    g["gnd"][0]["easy"] = [shared_lists(40)]
    blob = pickle.dumps(g, protocol=4)
    assert len(blob) < 600
    path = write_pkl(tmp_path, blob)
    assert read_in_child("gnd", [path]) == ["FormatError gnd[0].easy[0] | not an integer index: <list of 2 items>"]
    assert not attempt(project, path, "revisitop")


def test_pickles_whose_hash_or_str_explodes_are_refused(tmp_path):
    key = b"\x80\x02})q\x000"                          # {}, then a tuple key built from shared halves
    for k in range(60):
        key += b"h" + bytes([k]) + b"h" + bytes([k]) + b"\x86q" + bytes([k + 1]) + (b"0" if k < 59 else b"")
    members = key[:3] + b"c__builtin__\nset\n" + key[7:-3] + b"\x85\x85R."      # set([tuple])
    payloads = [key + b"K\x01s.", members, pickle.dumps(Reduce(str, shared_lists(60)), protocol=4)]
    paths = []
    for k, payload in enumerate(payloads):
        (tmp_path / str(k)).mkdir()
        paths.append(write_pkl(tmp_path / str(k), payload))
    for line in read_in_child("pickle", paths):
        assert line.startswith("FormatError  | not a safe pickle"), line


def test_pickles_that_ask_for_gigabytes_are_refused(tmp_path):
    """73 bytes: numpy.ndarray((10**9,)) was an allowed call (8 GB); an array state claiming 10**9
    items for 24 bytes of data. A memo index of 2**31 (the C unpickler sized its memo to it) reads."""
    big_array = b"cnumpy\nndarray\n((I1000000000\ntS'f8'\ntR."
    assert len(big_array) < 80
    state = pickle.dumps(np.zeros(3))
    claim = state.replace(b"K\x03\x85", b"J\x00\xca\x9a;\x85")   # shape (3,) -> (10**9,), data still 24 bytes
    assert claim != state
    paths = []
    for k, payload in enumerate((big_array, claim, b"\x80\x04]r\xff\xff\xff\x7f.")):
        (tmp_path / str(k)).mkdir()
        paths.append(write_pkl(tmp_path / str(k), payload))
    lines = read_in_child("pickle", paths)
    assert all(line.startswith("FormatError  | not a safe pickle") for line in lines[:2]), lines
    assert lines[2] == "read"


LONG = "n" * 300                                      # file names hold 255 bytes at most


def test_names_over_255_bytes_are_names_that_match_nothing(project, tmp_path):
    coco = coco_doc(project)
    coco["images"][1]["file_name"] = f"images/{LONG}.jpg"
    (tmp_path / "c.json").write_text(json.dumps(coco))
    r = import_annotations(project, tmp_path / "c.json", "coco")
    assert any(LONG in u for u in r.unmatched)
    lm = labelme_doc(project)
    lm["imagePath"] = LONG + ".jpg"
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text(json.dumps(lm))
    assert any(LONG in u for u in import_annotations(project, tmp_path / "lm", "labelme").unmatched)
    g = gnd_doc(project)
    g["imlist"][2] = LONG
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "gnd.json").write_text(json.dumps(g))
    assert any(LONG in u for u in import_annotations(project, tmp_path / "pb", "pixbench").unmatched)
    (tmp_path / "rv").mkdir()
    assert any(LONG in u for u in import_annotations(project, write_pkl(tmp_path / "rv", pickle.dumps(g)),
                                                      "revisitop").unmatched)
    assert not attempt(project, tmp_path / LONG, "coco")
    revisitop.write_pair2labelpath(tmp_path / "rv" / "x_pair2labelpath.npy", {(0, 0): f"labels/{LONG}.json"})
    with pytest.raises(FormatError, match="missing"):                  # a clear error, not ENAMETOOLONG
        import_annotations(project, tmp_path / "rv" / "gnd_x.pkl", "revisitop")


def outside_image(project, tmp_path) -> Path:
    """A photo outside the collection and outside the dataset (a user's private file)."""
    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    shutil.copy(project.root / project.col.distractors[0], secret)
    with open(secret, "ab") as f:
        f.write(b"not the collection's bytes")
    return secret


def no_trace_of(project, secret: Path, tmp_path) -> None:
    with project.catalog.session() as s:
        assert not any("secret" in (q.image_path or "") for q in s.scalars(select(QueryRow)))


@pytest.mark.parametrize("how", ["absolute", "climbing"])
def test_coco_file_names_out_of_the_dataset_are_never_opened(project, tmp_path, how):
    secret = outside_image(project, tmp_path)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    doc = coco_doc(project)
    doc["images"][0]["file_name"] = str(secret) if how == "absolute" else "../private/secret.jpg"
    (dataset / "c.json").write_text(json.dumps(doc))
    r = import_annotations(project, dataset / "c.json", "coco")
    assert r.n_objects == 0 and any("secret.jpg" in u for u in r.unmatched)       # not kept by its path
    assert any("images[0].file_name" in w and "never opened" in w for w in r.warnings)
    no_trace_of(project, secret, tmp_path)


@pytest.mark.parametrize("how", ["absolute", "climbing"])
def test_labelme_image_paths_out_of_the_dataset_are_never_opened(project, tmp_path, how):
    secret = outside_image(project, tmp_path)
    folder = tmp_path / "dataset" / "sub"
    folder.mkdir(parents=True)
    lm = labelme_doc(project)
    lm["imagePath"] = str(secret) if how == "absolute" else "../../private/secret.jpg"
    (folder / "secret.json").write_text(json.dumps(lm))
    r = import_annotations(project, tmp_path / "dataset", "labelme")
    assert r.n_objects == 0 and r.unmatched
    assert any("imagePath" in w and "never opened" in w for w in r.warnings)
    no_trace_of(project, secret, tmp_path)


def test_a_label_path_out_of_the_dataset_is_an_error(project, tmp_path):
    g = gnd_doc(project)
    (tmp_path / "set").mkdir()
    revisitop.write_gnd_pkl(tmp_path / "set" / "gnd_s.pkl", g["imlist"], g["qimlist"], g["gnd"])
    revisitop.write_pair2labelpath(tmp_path / "set" / "s_pair2labelpath.npy", {(0, 0): "/etc/passwd"})
    with pytest.raises(FormatError, match="0_0.*climbs out"):
        import_annotations(project, tmp_path / "set" / "gnd_s.pkl", "revisitop")


def hostile_names():
    return st.sampled_from([LONG, LONG + ".jpg", "/etc/passwd", "../../../../etc/passwd", "..", ".", "",
                            "a\x00b.jpg", "C:\\Windows\\win.ini", "\\\\server\\share\\x.jpg", "images/../../x.jpg",
                            "~/x.jpg", "jpg/" + "../" * 50, "x" * 5000, "\udcff.jpg", "a/" * 200 + "b.jpg"])


NAME_FIELDS = {"coco": [("images", 0, "file_name"), ("images", 1, "file_name")],
               "labelme": [("imagePath",)], "pixbench": [("imlist", 0), ("qimlist", 0), ("imlist", 2)]}


@FUZZ
@given(fmt=st.sampled_from(sorted(NAME_FIELDS)), name=hostile_names(), data=st.data())
def test_hostile_names_in_every_name_field(project, fmt, name, data):
    d = scratch()
    try:
        doc = {"coco": coco_doc, "labelme": labelme_doc, "pixbench": gnd_doc}[fmt](project)
        field = data.draw(st.sampled_from(NAME_FIELDS[fmt]))
        doc = replaced(doc, field, name)
        target = {"coco": d / "c.json", "labelme": d / "a.json", "pixbench": d / "gnd.json"}[fmt]
        target.write_text(json.dumps(doc))
        attempt(project, d if fmt == "pixbench" else target, fmt)
        with project.catalog.session() as s:
            assert all(q.image_path is None or not Path(q.image_path).is_absolute()
                       or Path(q.image_path).is_relative_to(d) for q in s.scalars(select(QueryRow)))
    finally:
        shutil.rmtree(d)


@FUZZ
@given(protocol=st.integers(0, 5), edits=st.lists(st.tuples(st.floats(0, 0.999), st.binary(min_size=0, max_size=3)),
                                                  min_size=1, max_size=4))
def test_byte_edited_gnd_pickles(project, protocol, edits):
    """Valid pickles with bytes overwritten or inserted: refused or read, never anything else."""
    d = scratch()
    try:
        blob = bytearray(pickle.dumps(with_arrays(gnd_doc(project)), protocol=protocol))
        for where, junk in edits:
            k = int(len(blob) * where)
            blob[k:k + (len(junk) % 2)] = junk
        with within(10):
            attempt(project, write_pkl(d, bytes(blob)), "revisitop")
    finally:
        shutil.rmtree(d)
