"""engine.ingest.imageio: every file the tests need is made here, in tmp_path, with a known right answer."""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from engine.base.errors import ImageReadError
from engine.ingest.imageio import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    file_sha256,
    image_size,
    is_supported,
    load_image,
)


def _quadrants(width: int = 64, height: int = 48) -> np.ndarray:
    """An upright RGB image with four flat coloured quadrants: any flip or turn shows."""
    img = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2] = (220, 30, 30)  # top-left red
    img[:h2, w2:] = (30, 200, 30)  # top-right green
    img[h2:, :w2] = (30, 30, 220)  # bottom-left blue
    img[h2:, w2:] = (240, 240, 40)  # bottom-right yellow
    return img


def _quadrant_colours(img: np.ndarray) -> np.ndarray:
    """Mean colour at the centre of each quadrant (robust to JPEG ringing at the edges)."""
    h, w = img.shape[:2]
    centres = [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)]
    return np.array([img[r - 2 : r + 3, c - 2 : c + 3].reshape(-1, 3).mean(0) for r, c in centres])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG written byte by byte, for what Pillow cannot save (16-bit RGB, a forged header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows))
        + _png_chunk(b"IEND", b"")
    )


def _save(img: Image.Image, path: Path, **params) -> Path:
    img.save(path, **params)
    return path


# --- good files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params",
    [
        ("photo.png", {}),
        ("photo.tif", {}),
        ("photo.tiff", {"compression": "tiff_lzw"}),
        ("photo.webp", {"lossless": True}),
        ("photo.bmp", {}),
    ],
)
def test_lossless_formats_load_exact_rgb_pixels(tmp_path, name, params):
    expected = _quadrants()
    path = _save(Image.fromarray(expected), tmp_path / name, **params)

    got = load_image(path)

    assert got.dtype == np.uint8 and got.shape == (48, 64, 3)
    np.testing.assert_array_equal(got, expected)
    assert image_size(path) == (64, 48)


def test_jpeg_loads_close_to_its_source_and_is_writable(tmp_path):
    expected = _quadrants()
    path = _save(Image.fromarray(expected), tmp_path / "photo.jpg", quality=95)

    got = load_image(path)

    assert got.shape == (48, 64, 3) and got.dtype == np.uint8
    np.testing.assert_allclose(_quadrant_colours(got), _quadrant_colours(expected), atol=12)
    got[0, 0] = 0  # callers may draw on the array: it must own writable memory


def test_suffix_is_case_insensitive_and_content_decides_the_decoder(tmp_path):
    expected = _quadrants()
    upper = _save(Image.fromarray(expected), tmp_path / "UPPER.PNG", format="PNG")
    misnamed = _save(Image.fromarray(expected), tmp_path / "really_a_png.jpg", format="PNG")

    assert is_supported(upper) and is_supported("x.JpEg") and not is_supported("x.gif")
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"} == set(SUPPORTED_SUFFIXES)
    np.testing.assert_array_equal(load_image(upper), expected)
    np.testing.assert_array_equal(load_image(misnamed), expected)


def test_grayscale_file_gives_gray_or_replicated_rgb(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    path = _save(Image.fromarray(gray, "L"), tmp_path / "gray.png")

    np.testing.assert_array_equal(load_image(path, gray=True), gray)
    rgb = load_image(path)
    assert rgb.shape == (10, 64, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


def test_rgb_file_with_gray_true_gives_luma(tmp_path):
    path = _save(Image.fromarray(_quadrants()), tmp_path / "colour.png")

    got = load_image(path, gray=True)

    assert got.shape == (48, 64)
    r, g, b = 220, 30, 30  # the top-left quadrant; ITU-R 601 luma
    assert abs(int(got[5, 5]) - round(0.299 * r + 0.587 * g + 0.114 * b)) <= 1


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535], [1000, 20000, 40000, 60000]], np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file

    got = load_image(path, gray=True)

    np.testing.assert_array_equal(got, np.round(values / 257.0).astype(np.uint8))
    assert got[0, 3] == 255 and got[0, 2] == 128


def test_16bit_rgb_png_is_scaled_not_clipped(tmp_path):
    pixels = np.array([[[65535, 0, 32896], [257, 65535, 0]]], dtype=">u2")  # 1 x 2, big-endian
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter byte 0 per row
    path = tmp_path / "deep_rgb.png"
    path.write_bytes(_png_bytes(2, 1, 16, 2, rows))

    got = load_image(path)

    np.testing.assert_array_equal(got, [[[255, 0, 128], [1, 255, 0]]])


def test_32bit_integer_and_float_tiffs_are_scaled(tmp_path):
    ints = np.array([[0, 257, 65535]], np.int32)
    floats = np.array([[0.0, 0.5, 1.0]], np.float32)
    int_path = _save(Image.fromarray(ints, "I"), tmp_path / "ints.tif")
    float_path = _save(Image.fromarray(floats, "F"), tmp_path / "floats.tif")

    np.testing.assert_array_equal(load_image(int_path, gray=True), [[0, 1, 255]])
    np.testing.assert_array_equal(load_image(float_path, gray=True), [[0, 128, 255]])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = _save(Image.new("CMYK", (32, 16), (0, 255, 255, 0)), tmp_path / "print.jpg", quality=95)

    got = load_image(path)

    assert got.shape == (16, 32, 3)
    np.testing.assert_allclose(got[8, 16], (255, 0, 0), atol=8)  # no cyan, full magenta + yellow: red


def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = np.array([[[0, 0, 0, 0], [255, 0, 0, 255], [0, 0, 255, 128]]], np.uint8)
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "alpha.png")

    got = load_image(path)

    assert got.shape == (1, 3, 3)
    np.testing.assert_array_equal(got[0, 0], (255, 255, 255))  # fully transparent: white, not black
    np.testing.assert_array_equal(got[0, 1], (255, 0, 0))
    np.testing.assert_allclose(got[0, 2], (127, 127, 255), atol=1)


def test_gray_alpha_png_is_composited_on_white(tmp_path):
    la = np.array([[[0, 0], [0, 255]]], np.uint8)
    path = _save(Image.fromarray(la, "LA"), tmp_path / "gray_alpha.png")

    np.testing.assert_array_equal(load_image(path, gray=True), [[255, 0]])


def test_palette_png_with_and_without_transparency(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    indices = np.array([[0, 1, 2]], np.uint8)
    img = Image.fromarray(indices, "P")
    img.putpalette(palette)
    plain = _save(img, tmp_path / "palette.png")
    keyed = _save(img, tmp_path / "palette_keyed.png", transparency=1)  # index 1 is transparent

    np.testing.assert_array_equal(load_image(plain), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    np.testing.assert_array_equal(load_image(keyed), [[[255, 0, 0], [255, 255, 255], [0, 0, 255]]])


def test_bilevel_image_gives_0_and_255(tmp_path):
    img = Image.new("1", (4, 1))
    img.putpixel((1, 0), 1)
    path = _save(img, tmp_path / "mono.bmp")

    np.testing.assert_array_equal(load_image(path, gray=True), [[0, 255, 0, 0]])


# EXIF orientation: the file stores the picture turned; a viewer turns it upright.
# 6: stored turned 90 degrees counter-clockwise (the viewer turns it clockwise); 3: upside down;
# 8: stored turned 90 degrees clockwise.
@pytest.mark.parametrize("orientation, stored_turns", [(6, 1), (3, 2), (8, -1)])
def test_exif_orientation_is_applied_in_pixels_and_size(tmp_path, orientation, stored_turns):
    upright = _quadrants(64, 48)
    stored = np.ascontiguousarray(np.rot90(upright, k=stored_turns))  # np.rot90: k=1 is counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(stored), tmp_path / f"turned{orientation}.jpg", quality=95, exif=exif.tobytes())

    got = load_image(path)

    assert got.shape == (48, 64, 3)
    assert image_size(path) == (64, 48)
    np.testing.assert_allclose(_quadrant_colours(got), _quadrant_colours(upright), atol=12)
    assert load_image(path, gray=True).shape == (48, 64)


def test_exif_orientation_in_png_agrees_between_size_and_pixels(tmp_path):
    upright = _quadrants(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(np.ascontiguousarray(np.rot90(upright))), tmp_path / "turned.png", exif=exif.tobytes())

    assert image_size(path) == (64, 48)
    np.testing.assert_array_equal(load_image(path), upright)


def test_image_size_reads_only_the_header(tmp_path, monkeypatch):
    path = _save(Image.fromarray(_quadrants()), tmp_path / "photo.png")

    def no_decoding(self):
        raise AssertionError("image_size decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert image_size(path) == (64, 48)


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "bytes.jpg"
    data = np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()  # several chunks
    path.write_bytes(data)

    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


# --- bad files: each must name the file and the specific reason -------------------------------------


def _read_error(path: Path, call=load_image, **kwargs) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        call(path, **kwargs)
    error = info.value
    assert error.path == str(path)
    assert str(path) in str(error)
    return error


def _valid_bytes(tmp_path: Path, fmt: str) -> bytes:
    noise = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    path = tmp_path / f"source.{fmt.lower()}"
    Image.fromarray(noise).save(path, format=fmt)
    return path.read_bytes()


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.jpg"
    assert "file not found" in _read_error(path).reason
    assert "file not found" in _read_error(path, image_size).reason
    assert "file not found" in _read_error(path, file_sha256).reason


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "empty file" in _read_error(path).reason
    assert "empty file" in _read_error(path, image_size).reason


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a picture\n")
    assert "not an image" in _read_error(path).reason


def test_random_bytes_named_jpg(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not an image" in _read_error(path).reason


def test_image_in_an_unsupported_format(tmp_path):
    path = tmp_path / "animation.png"
    Image.new("P", (8, 8)).save(path, format="GIF")
    reason = _read_error(path).reason
    assert "unsupported image format GIF" in reason


def test_folder_named_like_an_image(tmp_path):
    path = tmp_path / "album.jpg"
    path.mkdir()
    assert "folder" in _read_error(path).reason


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_truncated_file(tmp_path, fmt, suffix):
    data = _valid_bytes(tmp_path, fmt)
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])

    assert "truncated" in _read_error(path).reason


def test_corrupt_png_data(tmp_path):
    data = bytearray(_valid_bytes(tmp_path, "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 100 : start + 400] = bytes(300)  # zeros in the middle of the compressed stream
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))

    reason = _read_error(path).reason
    assert "corrupt" in reason or "truncated" in reason


def test_decompression_bomb_fails_from_the_header_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(50_000, 50_000, 8, 2, b"\x00" * 1000))  # 2.5 gigapixels claimed, 1 KB file

    def no_decoding(self):
        raise AssertionError("a decompression bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for call in (load_image, image_size):
        reason = _read_error(path, call).reason
        assert "too many pixels" in reason and "2500 megapixels" in reason


def test_pixel_limit_is_per_call(tmp_path):
    path = _save(Image.fromarray(_quadrants()), tmp_path / "small.png")  # 64 x 48 = 3072 pixels
    reason = _read_error(path, max_pixels=3000).reason
    assert "too many pixels: 64 x 48" in reason
    assert load_image(path, max_pixels=3072).shape == (48, 64, 3)


def test_image_between_one_and_two_limits_is_an_error_not_a_warning(tmp_path):
    # Pillow itself only warns in this band; here it must fail, and a caller may allow it.
    path = tmp_path / "huge.png"
    path.write_bytes(_png_bytes(12_000, 10_000, 8, 0, b""))  # 120 megapixels claimed
    assert DEFAULT_MAX_PIXELS < 120_000_000 <= 2 * DEFAULT_MAX_PIXELS

    assert "too many pixels" in _read_error(path, image_size).reason
    assert image_size(path, max_pixels=150_000_000) == (12_000, 10_000)
