"""Decode image files into numpy arrays the way every stage expects them, or say why not.

Every stage sees the same pixels: uint8, RGB (H, W, 3) or gray (H, W), with the EXIF orientation
applied (the image as a person sees it, so regions drawn in the GUI and features agree), alpha
composited on white, 16-bit and float data scaled (not clipped) to 8 bits. Any failure is an
`ImageReadError(path, reason)` whose reason a user can act on.

The pixel limit is checked from the header, before any pixel is decoded, so a small file that
claims a huge canvas (a decompression bomb) costs nothing.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.base.errors import ImageReadError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DEFAULT_MAX_PIXELS",
    "is_supported",
    "load_image",
    "image_size",
    "file_sha256",
]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})
DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: beyond any camera photo, well below a bomb

# Pillow formats we decode, those of the suffixes above ("JPEG" also opens the multi-picture
# JPEGs many cameras write, as MPO). The decoder is chosen by content, not by suffix: a PNG saved
# as .jpg still loads.
_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
_FORMAT_NAMES = "JPEG, PNG, TIFF, WebP, BMP"

# Pillow's own guard (checked inside Image.open, process-wide) raises above 2 x MAX_IMAGE_PIXELS
# but only *warns* between 1x and 2x. We make that warning an error everywhere in the process
# (_strict_pillow_guard), and keep Pillow's limit at or above every limit asked of this module
# (_allow), so that for our calls the precise per-call check in _open decides, and for any other
# Pillow user nothing over the limit is ever just a warning.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
_limit_lock = threading.Lock()
_BOMB_FILTER = ("error", None, Image.DecompressionBombWarning, None, 0)  # as warnings.filters holds it


def _strict_pillow_guard() -> None:
    # The warnings filter list is process-wide state that others reset (warnings.catch_warnings
    # restores the list it saved, as test runners do), so check it on every open, not once.
    if _BOMB_FILTER not in warnings.filters:
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


_strict_pillow_guard()

# EXIF orientation -> the transpose that shows the image upright (the table ImageOps.exif_transpose uses).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


def is_supported(path: str | os.PathLike) -> bool:
    """True when the file name has one of SUPPORTED_SUFFIXES (any case)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def _allow(max_pixels: int) -> None:
    # Only ever raises Pillow's limit (under a lock, so concurrent callers cannot lower it again):
    # a caller who explicitly allows bigger images must not be refused by Pillow first.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        with _limit_lock:
            if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
                Image.MAX_IMAGE_PIXELS = max_pixels


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.4g} megapixels"


def _check_file(path: Path) -> None:
    """Fail early, with the plain reason, for what is not a readable non-empty file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access the file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device named x.jpg would block or never end
        raise ImageReadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def _unidentified_reason(path: Path) -> str:
    """Word 'cannot identify': an image in a format we do not take, or no image at all."""
    try:
        with Image.open(path) as im:  # every format Pillow knows, only to name it
            return f"unsupported image format {im.format} (supported: {_FORMAT_NAMES})"
    except Exception:  # noqa: BLE001 - any failure here just means "not an image we recognise"
        return f"not an image file, or a damaged header (supported: {_FORMAT_NAMES})"


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = _mp(int(found.group(1))) if found else "more pixels than allowed"
    return f"too many pixels: {size}, the limit is {_mp(max_pixels)} (refused before decoding)"


def _declares_more_bytes(path: Path) -> bool:
    """A RIFF (WebP) file states its length up front: shorter on disk means cut off.

    libwebp only says "could not create decoder object" for a cut-off file, so this lets us name
    the real reason.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    return size < int.from_bytes(head[4:8], "little") + 8


def _decode_error_reason(exc: Exception, path: Path) -> str:
    text = str(exc) or type(exc).__name__
    if "truncated" in text.lower() or isinstance(exc, EOFError) or _declares_more_bytes(path):
        return "truncated file: the image data ends early"
    return f"corrupt image data ({text})"


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) and check the pixel limit; the caller must close the image."""
    _check_file(path)
    _strict_pillow_guard()
    _allow(max_pixels)
    try:
        im = Image.open(path, formats=_FORMATS)
    except UnidentifiedImageError:
        raise ImageReadError(path, _unidentified_reason(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(path, _bomb_reason(exc, max_pixels)) from None
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        raise ImageReadError(path, _decode_error_reason(exc, path)) from None
    width, height = im.size
    if width <= 0 or height <= 0:
        im.close()
        raise ImageReadError(path, f"corrupt header: image size {width} x {height}")
    if width * height > max_pixels:
        im.close()
        raise ImageReadError(
            path,
            f"too many pixels: {width} x {height} = {_mp(width * height)}, the limit is "
            f"{_mp(max_pixels)} (refused before decoding)",
        )
    return im


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) from the header; 1 when absent or unreadable.

    Same source as ImageOps.exif_transpose (EXIF, then XMP tiff:Orientation), but read without
    decoding: Pillow's PngImageFile.getexif decodes the whole image to look for an eXIf chunk
    placed after the pixel data, so for PNG only chunks before it count (writers put it there).
    This keeps image_size header-only and always equal to load_image's shape.
    """
    try:
        if im.format == "PNG":
            exif = Image.Image.getexif(im)  # the base class: no decode
        else:
            exif = im.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make a good image unreadable
        return 1
    return value if value in _TRANSPOSE else 1


def image_size(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as load_image will return it (after EXIF orientation), from the header only.

    Raises ImageReadError for the same header-level problems as load_image (missing, empty, not an
    image, too many pixels); a file truncated inside its pixel data passes here and fails there.
    """
    path = Path(path)
    with _open(path, max_pixels) as im:
        width, height = im.size
        if _orientation(im) in (5, 6, 7, 8):  # the four orientations that turn the image a quarter
            width, height = height, width
    return width, height


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    # Rounded v * 255 / 65535 (= v / 257): 0 -> 0, 65535 -> 255, linear in between.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Integer/float data of no known range (scientific TIFF): map its min..max onto 0..255."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """Single-channel 16-bit, 32-bit integer or float image -> 8-bit 'L', scaled, never clipped."""
    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        out = _scale_16bit(values)
    elif im.mode == "I":
        # Pillow opens some 16-bit files as 'I'; values inside 0..65535 are 16-bit data.
        lo, hi = int(values.min()), int(values.max())
        out = _scale_16bit(values) if lo >= 0 and hi <= 65535 else _stretch(values)
    else:  # 'F'
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            out = np.round(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0) * 255.0).astype(np.uint8)
        else:
            out = _stretch(values)
    return Image.fromarray(np.ascontiguousarray(out), "L")


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any decoded mode -> 'RGB' or 'L', 8 bits, transparency composited on white."""
    mode = im.mode
    if mode in ("RGB", "L"):
        if "transparency" in im.info:  # tRNS colour key of an RGB/gray PNG
            return _on_white(im.convert("RGBA"))
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return _on_white(im.convert("RGBA")) if has_alpha else im.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La"):
        return _on_white(im.convert("RGBA"))
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(im)
    # CMYK (Pillow undoes Adobe's inverted CMYK JPEGs), YCbCr, LAB, HSV, RGBX.
    return im.convert("RGB")


def _on_white(rgba: Image.Image) -> Image.Image:
    # Transparent pixels would otherwise show whatever colour they hold (often black).
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def load_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, gray: bool = False,
               max_side: int | None = None) -> np.ndarray:
    """Decode an image: uint8 (H, W, 3) RGB, or (H, W) luma when gray=True; upright per EXIF.

    max_side: downscale (never upscale) to this longer side; a JPEG is then decoded at a reduced
    scale directly (libjpeg's DCT scaling), which is several times faster on a phone photo.
    Multi-frame files (TIFF pages, animated WebP) give their first frame. Raises ImageReadError
    naming the file and the reason (missing, empty, not an image, unsupported format, truncated,
    corrupt, too many pixels).
    """
    path = Path(path)
    # Everything happens inside the `with`: closing a Pillow image also drops its decoded pixels.
    with _open(path, max_pixels) as im:
        orientation = _orientation(im)
        try:
            size = None
            if max_side and max(im.size) > max_side:
                s = max_side / max(im.size)
                size = (max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s)))
                im.draft(None, size)  # JPEG only (a no-op for other formats): decodes at >= size
            im.load()
            out = _to_8bit(im)
            if size is not None and out.size != size:
                out = out.resize(size, Image.Resampling.BOX)
            if orientation in _TRANSPOSE:
                out = out.transpose(_TRANSPOSE[orientation])
            if gray and out.mode != "L":
                out = out.convert("L")  # ITU-R 601-2 luma, the same weights as OpenCV's RGB2GRAY
            elif not gray and out.mode != "RGB":
                out = out.convert("RGB")
            return np.array(out, dtype=np.uint8)  # a writable array that owns its memory
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(path, _bomb_reason(exc, max_pixels)) from None
        except MemoryError:
            raise ImageReadError(path, f"not enough memory to decode {im.size[0]} x {im.size[1]} pixels") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, zlib.error) as exc:
            raise ImageReadError(path, _decode_error_reason(exc, path)) from None


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes, read in chunks (constant memory). ImageReadError if unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                digest.update(chunk)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image file") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot read the file ({exc.strerror or exc})") from None
    return digest.hexdigest()
