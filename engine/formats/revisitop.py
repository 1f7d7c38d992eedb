"""The revisitop / PROxford ground-truth files: `gnd_<name>.pkl` and `<name>_pair2labelpath.npy`.

The published evaluation code of Revisited Oxford/Paris (revisitop) loads `gnd_<name>.pkl`:
a pickled dict `{"imlist": [...], "qimlist": [...], "gnd": [{"bbx", "easy", "hard", "junk"}, ...]}`
with zero-based index lists; PROxford/PRParis (An et al., ICCV 2023) add
`<name>_pair2labelpath.npy` (np.save of a dict `{"<q>_<i>": "<label path>"}`, paths relative to
the folder holding it) pointing at one LabelMe file per query-positive pair. We write both in that
layout, with plain Python lists (no numpy objects) so any reader loads them.

Reading is for untrusted files: a pickle can run arbitrary code while it loads, and a few hundred
bytes of one can ask for gigabytes or hours (shared sub-lists whose repr or hash doubles at every
level, memo indices of 2**31, numpy.ndarray((10**9,))). `SafeUnpickler` runs the pure-Python
unpickler with its dangerous opcodes replaced: only the builtin containers and what numpy needs to
rebuild arrays and scalars resolve, each allowed callable is checked before it is called, dict keys
and set members must be flat values (no tuples to hash), arrays are size-checked before they are
filled. Its work and memory are bounded by the file's size (MAX_PICKLE_BYTES). Every failure is a
FormatError naming the file and the field; error messages show values through `short_repr`, which
never walks a structure.
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
           "read_gnd_pkl", "read_pair2labelpath", "RevisitopGnd", "MAX_PICKLE_BYTES", "short_repr"]

MAX_PICKLE_BYTES = 64 << 20   # a million image names fit in half of this
_MAX_ARRAY_ITEMS = 1 << 26


def short_repr(v, limit: int = 60) -> str:
    """A value for an error message, built in constant time: scalars and the start of a string as
    they are, anything else by its type (and length); never the repr of a structure."""
    if v is None or isinstance(v, (bool, int, float, complex, np.generic)) and not isinstance(v, np.void):
        text = repr(v) if not isinstance(v, int) or abs(v) < 10 ** 30 else f"<int of {v.bit_length()} bits>"
    elif isinstance(v, (str, bytes)):
        text = repr(v[:limit]) + ("..." if len(v) > limit else "")
    elif isinstance(v, (list, tuple, dict, set, frozenset, np.ndarray)):
        text = f"<{type(v).__name__} of {len(v) if not isinstance(v, np.ndarray) else v.size} items>"
    else:
        text = f"<{type(v).__name__}>"
    return text[: limit + 20]


class _NdarrayRef:
    """What a pickle's `numpy.ndarray` resolves to: accepted only as the first argument of numpy's
    _reconstruct. Calling it (numpy.ndarray((10**9,)) would allocate 8 GB) is refused."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray(...) is not allowed")


def _flat(values) -> None:
    """Dict keys and set members: flat values only (hashing nested shared tuples takes forever)."""
    for v in values:
        if not (v is None or isinstance(v, (str, bytes, int, float, complex))
                or isinstance(v, np.generic) and not isinstance(v, np.void)):
            raise pickle.UnpicklingError(f"a dict key or set member that is a {type(v).__name__}")


def _reconstruct(cls, shape, dtype):
    # numpy's ndarray.__reduce__ rebuilds an empty array of the right type, then BUILD fills it
    if cls is not _NdarrayRef:
        raise pickle.UnpicklingError("array reconstruction of something that is not a numpy.ndarray")
    if not isinstance(dtype, (np.dtype, bytes, str)):
        raise pickle.UnpicklingError("array reconstruction with a bad dtype")
    return np.ndarray.__new__(np.ndarray, (0,), np.dtype(dtype) if isinstance(dtype, np.dtype) else "b")


def _check_array_state(state) -> None:
    """The state ndarray.__setstate__ gets: its size must match its data, within _MAX_ARRAY_ITEMS."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, data)")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError("array shape is not a tuple of sizes")
    n = math.prod(shape)
    if n > _MAX_ARRAY_ITEMS:
        raise pickle.UnpicklingError(f"array of {n} items is too large")
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("array dtype is not a numpy.dtype")
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != n:
            raise pickle.UnpicklingError("object array whose items do not match its shape")
    elif not isinstance(data, (bytes, bytearray, str)) or len(data) != n * dtype.itemsize:
        raise pickle.UnpicklingError("array whose data does not match its shape")


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


def _dtype(obj, align=False, copy=False):
    if not isinstance(obj, str) or len(obj) > 16:
        raise pickle.UnpicklingError("numpy dtype from something that is not a short type code")
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles from Python 3 carry bytes as _codecs.encode(text, "latin1")
    if not isinstance(obj, str) or not isinstance(encoding, str) or not isinstance(errors, str) \
            or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError("_codecs.encode of something other than text to latin-1")
    return _codecs.encode(obj, "latin1", errors)


def _only(kind, check):
    def make(*args):
        check(args)
        return kind(*args)
    make.__name__ = kind.__name__
    return make


def _text_args(args) -> None:
    # str(x) of a structure would build its repr (exponential for shared sub-lists)
    if not all(isinstance(a, (str, bytes, bytearray)) for a in args):
        raise pickle.UnpicklingError("str() of something that is not text")


def _no_size(args) -> None:
    # bytes(n) / bytearray(n) would allocate n zero bytes: a one-line memory bomb
    if args and isinstance(args[0], int):
        raise pickle.UnpicklingError("bytes(<int>) / bytearray(<int>) is not allowed")


def _members(args) -> None:
    if args:
        if not isinstance(args[0], (list, tuple, set, frozenset, str, bytes)):
            raise pickle.UnpicklingError("a set built from something that is not a list")
        _flat(args[0])


def _dict_args(args) -> None:
    if args:
        if isinstance(args[0], dict):
            return
        if not isinstance(args[0], (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                              for p in args[0]):
            raise pickle.UnpicklingError("a dict built from something that is not a list of pairs")
        _flat(p[0] for p in args[0])


def _any(args) -> None:
    pass


_BUILTINS = {
    "list": _only(list, _any), "tuple": _only(tuple, _any), "int": _only(int, _any), "float": _only(float, _any),
    "complex": _only(complex, _any), "bool": _only(bool, _any), "slice": _only(slice, _any),
    "str": _only(str, _text_args), "bytes": _only(bytes, _no_size), "bytearray": _only(bytearray, _no_size),
    "set": _only(set, _members), "frozenset": _only(frozenset, _members), "dict": _only(dict, _dict_args),
}
_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct, ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar, ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer, ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "dtype"): _dtype, ("numpy", "ndarray"): _NdarrayRef, ("_codecs", "encode"): _latin1_encode,
}
_CALLABLE = {id(f) for f in [*_BUILTINS.values(), *_NUMPY.values()] if f is not _NdarrayRef}


def _keys_checked(load, every: bool):
    """An opcode that inserts the items since the last MARK into a dict (key, value, ...) or a set
    (every item), with the keys checked first."""
    def checked(self):
        _flat(self.stack if every else self.stack[0::2])
        load(self)
    return checked


class SafeUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, restricted to containers and numpy arrays and scalars.

    Globals resolve only to: builtins (or Python 2's __builtin__) list, dict, tuple, set, frozenset,
    str, bytes, bytearray, int, float, complex, bool, slice, each wrapped to refuse what explodes
    (str of a structure, bytes(n), sets and dict keys of anything but flat values); numpy's
    _reconstruct, scalar, dtype (type codes only), _frombuffer (never object dtypes), and
    numpy.ndarray as a reference that cannot be called; _codecs.encode to latin-1 only. REDUCE calls
    only those; BUILD fills only arrays (size-checked first) and dtypes; NEWOBJ, OBJ, INST, EXT and
    persistent ids are refused. Anything else raises pickle.UnpicklingError before it runs.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if (module, name) in _NUMPY:
            return _NUMPY[(module, name)]
        raise pickle.UnpicklingError(f"refused to load {short_repr(module)}.{short_repr(name)} (only containers "
                                     "and numpy arrays may appear in a ground-truth pickle)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent references are not allowed")

    def _refuse(self):
        raise pickle.UnpicklingError("object construction (NEWOBJ, OBJ, INST, EXT) is not allowed")

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in _CALLABLE or not isinstance(args, tuple):
            raise pickle.UnpicklingError(f"a call of {short_repr(func)} is not allowed")
        self.stack[-1] = func(*args)

    def _load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state)
        elif not isinstance(inst, np.dtype):
            raise pickle.UnpicklingError(f"setting the state of a {type(inst).__name__} is not allowed")
        pickle._Unpickler.load_build(self)

    def _load_setitem(self):
        _flat(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)

    for _op in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ, pickle.INST, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.SETITEM[0]] = _load_setitem
    for _op in (pickle.SETITEMS, pickle.DICT, pickle.ADDITEMS, pickle.FROZENSET):
        dispatch[_op[0]] = _keys_checked(pickle._Unpickler.dispatch[_op[0]], every=_op in (pickle.ADDITEMS,
                                                                                            pickle.FROZENSET))
    del _op


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise FormatError(path, "", f"{size} bytes: too large for a ground-truth file "
                                        f"(at most {MAX_PICKLE_BYTES >> 20} MiB)")
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
        raise FormatError(path, where, f"damaged or not a pickle ({type(e).__name__}: "
                                       f"{short_repr(str(e)[:200], 120)})") from None
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
        raise FormatError(path, "header", f"not a .npy file ({short_repr(str(e)[:200], 120)})") from None
    if dtype.hasobject:
        arr = _unpickle(f, path, "data")
        if not isinstance(arr, np.ndarray):
            raise FormatError(path, "data", "the pickled data is not an array")
        return arr
    n = math.prod(shape)                      # Python ints: a shape cannot overflow the check
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
            raise FormatError(path, f"{where}.{key}[{k}]", f"not an integer index: {short_repr(i)}")
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
            raise FormatError(path, short_repr(key), "keys must read '<q>_<i>'")
        if not isinstance(value, str) or not value:
            raise FormatError(path, str(key), "not a label path")
        out[(int(parts[0]), int(parts[1]))] = value
    return out
