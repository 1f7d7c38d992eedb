"""The revisitop / PROxford ground-truth files: `gnd_<name>.pkl` and `<name>_pair2labelpath.npy`.

The published evaluation code of Revisited Oxford/Paris (revisitop) loads `gnd_<name>.pkl`:
a pickled dict `{"imlist": [...], "qimlist": [...], "gnd": [{"bbx", "easy", "hard", "junk"}, ...]}`
with zero-based index lists; PROxford/PRParis (An et al., ICCV 2023) add
`<name>_pair2labelpath.npy` (np.save of a dict `{"<q>_<i>": "<label path>"}`, paths relative to
the folder holding it) pointing at one LabelMe file per query-positive pair. We write both in that
layout, with plain Python lists (no numpy objects) so any reader loads them.

Reading is for untrusted files: a pickle can run arbitrary code while it loads, so it goes through
`SafeUnpickler`, which resolves only the builtin containers and what numpy needs to rebuild arrays
and scalars; any other global (os.system, eval, subprocess...) raises FormatError before anything
is called. Every other failure of a damaged file is a FormatError naming the file and the field.
"""
from __future__ import annotations

import _codecs
import io
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_write
from engine.base.errors import FormatError

__all__ = ["SafeUnpickler", "safe_load", "load_npy", "write_gnd_pkl", "write_pair2labelpath",
           "read_gnd_pkl", "read_pair2labelpath", "RevisitopGnd", "MAX_PICKLE_BYTES"]

MAX_PICKLE_BYTES = 1 << 30   # a ground-truth file of 1 GiB is not a ground-truth file
_MAX_ARRAY_ITEMS = 1 << 28

_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool",
                       "slice"})
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")


def _reconstruct(cls, shape, dtype):
    # numpy's ndarray.__reduce__ rebuilds an empty array of the right type, then __setstate__ fills it
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("array reconstruction of something that is not a numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("numpy scalar of an object dtype")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar with data of the wrong size")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _frombuffer(buf, dtype, shape, order):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("numpy buffer of an object dtype")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _no_size(kind):
    # bytes(n) / bytearray(n) would allocate n zero bytes: a one-line memory bomb
    def make(*args):
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}(<int>) is not allowed")
        return kind(*args)
    return make


_SIZED = {"bytes": _no_size(bytes), "bytearray": _no_size(bytearray)}


def _dtype(obj, align=False, copy=False):
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles from Python 3 carry bytes as _codecs.encode(text, "latin1")
    if str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return _codecs.encode(obj, "latin1", errors)


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only containers and numpy array/scalar reconstruction.

    Allowed: builtins (or Python 2's __builtin__) list, dict, tuple, set, frozenset, bytearray,
    bytes, str, int, float, complex, bool, slice; numpy.core/_core.multiarray._reconstruct and
    .scalar, numpy.ndarray, numpy.dtype, numpy.core/_core.numeric._frombuffer (protocol 5); and
    _codecs.encode restricted to latin-1 (how Python 3 writes bytes in protocol 2). The numpy
    callables are wrapped: _reconstruct builds nothing but a numpy.ndarray, scalar and _frombuffer
    only non-object dtypes (the items of an object array come through this same filter); bytes(n)
    and bytearray(n) are refused (memory bombs). Anything else raises pickle.UnpicklingError, before
    it is looked up, let alone called.
    """

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(__import__("builtins"), name)
        if module in ("builtins", "__builtin__") and name in _SIZED:
            return _SIZED[name]
        if module in _NUMPY_CORE and name == "_reconstruct":
            return _reconstruct
        if module in _NUMPY_CORE and name == "scalar":
            return _scalar
        if module in _NUMPY_NUMERIC and name == "_frombuffer":
            return _frombuffer
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _dtype
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only containers and numpy arrays "
                                     "may appear in a ground-truth pickle)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent references are not allowed")


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise FormatError(path, "", f"{size} bytes: too large for a ground-truth file")
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "", "no such file") from None
    except IsADirectoryError:
        raise FormatError(path, "", "a folder, not a file") from None
    except OSError as e:
        raise FormatError(path, "", f"cannot read: {e.strerror or e}") from None


def _unpickle(stream, path: Path, where: str = ""):
    try:
        obj = SafeUnpickler(stream, encoding="latin1").load()
    except FormatError:
        raise
    except pickle.UnpicklingError as e:
        raise FormatError(path, where, f"not a safe pickle: {e}") from None
    except RecursionError:
        raise FormatError(path, where, "not a pickle we can read: nested too deeply") from None
    except MemoryError:
        raise FormatError(path, where, "not a pickle we can read: asks for more memory than there is") from None
    except Exception as e:  # noqa: BLE001 - any failure to decode an untrusted file is a format error
        raise FormatError(path, where, f"damaged or not a pickle ({type(e).__name__}: {e})") from None
    if stream.read(1):
        raise FormatError(path, where, "trailing data after the pickle")
    return obj


def safe_load(path) -> object:
    """Unpickle a file through SafeUnpickler; FormatError for anything refused or damaged."""
    path = Path(path)
    return _unpickle(io.BytesIO(_read_limited(path)), path)


def load_npy(path) -> np.ndarray:
    """np.load for untrusted .npy files: object arrays are unpickled through SafeUnpickler."""
    path = Path(path)
    f = io.BytesIO(_read_limited(path))
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises many kinds of errors
        raise FormatError(path, "header", f"not a .npy file ({e})") from None
    if dtype.hasobject:
        arr = _unpickle(f, path, "data")
        if not isinstance(arr, np.ndarray):
            raise FormatError(path, "data", "the pickled data is not an array")
        return arr
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n > _MAX_ARRAY_ITEMS:
        raise FormatError(path, "header", f"shape {shape} is too large")
    data = f.read()
    if len(data) != n * dtype.itemsize:
        raise FormatError(path, "data", f"{len(data)} bytes for shape {shape} of {dtype}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


# ------------------------------------------------------------------------------------------------
# writing


def write_gnd_pkl(path, imlist, qimlist, gnd) -> None:
    """revisitop's gnd_<name>.pkl: gnd entries with bbx [x1, y1, x2, y2] and easy/hard/junk index lists."""
    doc = {
        "imlist": [str(n) for n in imlist],
        "qimlist": [str(n) for n in qimlist],
        "gnd": [{"bbx": [float(v) for v in e["bbx"]],
                 "easy": [int(i) for i in e["easy"]],
                 "hard": [int(i) for i in e["hard"]],
                 "junk": [int(i) for i in e["junk"]]} for e in gnd],
    }
    atomic_write(Path(path), lambda f: pickle.dump(doc, f, protocol=4))


def write_pair2labelpath(path, mapping: dict[tuple[int, int], str]) -> None:
    """PROxford's <name>_pair2labelpath.npy: np.save of {"<q>_<i>": label path} (read with
    np.load(path, allow_pickle=True).item())."""
    d = {f"{q}_{i}": str(p) for (q, i), p in sorted(mapping.items())}
    atomic_write(Path(path), lambda f: np.save(f, np.array(d, dtype=object), allow_pickle=True))


# ------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class RevisitopGnd:
    path: Path
    imlist: tuple[str, ...]
    qimlist: tuple[str, ...]
    bbx: tuple[tuple[float, float, float, float] | None, ...]
    easy: tuple[tuple[int, ...], ...]
    hard: tuple[tuple[int, ...], ...]
    junk: tuple[tuple[int, ...], ...]


def _as_list(v):
    if isinstance(v, np.ndarray):
        return v.reshape(-1).tolist() if v.dtype != object else list(v.reshape(-1))
    if isinstance(v, (list, tuple)):
        return list(v)
    return None


def _name_list(d: dict, key: str, path: Path) -> tuple[str, ...]:
    v = _as_list(d.get(key))
    if v is None:
        raise FormatError(path, key, "missing or not a list of image names")
    out = []
    for k, n in enumerate(v):
        if isinstance(n, bytes):
            n = n.decode("utf-8", errors="replace")
        if isinstance(n, np.ndarray) and n.size == 1:
            n = n.item()
        if not isinstance(n, str) or not n.strip():
            raise FormatError(path, f"{key}[{k}]", "not a non-empty image name")
        out.append(n.strip())
    return tuple(out)


def _index_list(e: dict, key: str, where: str, n: int, path: Path) -> tuple[int, ...]:
    if key not in e:
        return ()
    v = _as_list(e[key])
    if v is None:
        raise FormatError(path, f"{where}.{key}", "not a list of indices")
    out = []
    for k, i in enumerate(v):
        if isinstance(i, (np.integer,)):
            i = int(i)
        elif isinstance(i, (float, np.floating)) and math.isfinite(i) and float(i).is_integer():
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, int):
            raise FormatError(path, f"{where}.{key}[{k}]", f"not an integer index: {i!r}"[:200])
        if not 0 <= i < n:
            raise FormatError(path, f"{where}.{key}[{k}]", f"index {i} out of range for imlist of {n}")
        out.append(i)
    return tuple(dict.fromkeys(out))


def _bbx(e: dict, where: str, path: Path):
    if "bbx" not in e or e["bbx"] is None:
        return None
    v = _as_list(e["bbx"])
    if v is None or len(v) != 4:
        raise FormatError(path, f"{where}.bbx", "not [x1, y1, x2, y2]")
    try:
        vals = [float(x) for x in v]
    except (TypeError, ValueError):
        raise FormatError(path, f"{where}.bbx", "not four numbers") from None
    if not all(math.isfinite(x) and abs(x) < 1e7 for x in vals):
        raise FormatError(path, f"{where}.bbx", "coordinates must be finite pixel values")
    if vals[2] < vals[0] or vals[3] < vals[1]:
        raise FormatError(path, f"{where}.bbx", f"x2 < x1 or y2 < y1: {vals}")
    return tuple(vals)


def read_gnd_pkl(path) -> RevisitopGnd:
    """Read a revisitop/PROxford gnd .pkl safely and check its structure."""
    path = Path(path)
    d = safe_load(path)
    if not isinstance(d, dict):
        raise FormatError(path, "", "not a dict with 'imlist', 'qimlist' and 'gnd'")
    imlist = _name_list(d, "imlist", path)
    qimlist = _name_list(d, "qimlist", path)
    gnd = _as_list(d.get("gnd"))
    if gnd is None:
        raise FormatError(path, "gnd", "missing or not a list")
    if len(gnd) != len(qimlist):
        raise FormatError(path, "gnd", f"{len(gnd)} entries for {len(qimlist)} queries in qimlist")
    bbx, easy, hard, junk = [], [], [], []
    for k, e in enumerate(gnd):
        where = f"gnd[{k}]"
        if not isinstance(e, dict):
            raise FormatError(path, where, "not a dict")
        bbx.append(_bbx(e, where, path))
        lists = {key: _index_list(e, key, where, len(imlist), path) for key in ("easy", "hard", "junk")}
        for a, b in (("easy", "hard"), ("easy", "junk"), ("hard", "junk")):
            both = sorted(set(lists[a]) & set(lists[b]))
            if both:
                raise FormatError(path, where, f"index {both[0]} is in both {a} and {b}")
        easy.append(lists["easy"])
        hard.append(lists["hard"])
        junk.append(lists["junk"])
    return RevisitopGnd(path, imlist, qimlist, tuple(bbx), tuple(easy), tuple(hard), tuple(junk))


def read_pair2labelpath(path) -> dict[tuple[int, int], str]:
    """PROxford's pair2labelpath .npy -> {(q, i): label path as written (relative to its folder)}."""
    path = Path(path)
    arr = load_npy(path)
    d = arr.item() if arr.shape == () else None
    if not isinstance(d, dict):
        raise FormatError(path, "", "not a dict {'<q>_<i>': label path}")
    out = {}
    for key, value in d.items():
        parts = str(key).split("_")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise FormatError(path, repr(key)[:80], "keys must read '<q>_<i>'")
        if not isinstance(value, str) or not value:
            raise FormatError(path, str(key), "not a label path")
        out[(int(parts[0]), int(parts[1]))] = value
    return out
