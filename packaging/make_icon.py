"""Draw the application icon, packaging/pixret.png (256x256 RGBA), with OpenCV and numpy.

The committed PNG is what the build uses; run this only to change the icon:
    python packaging/make_icon.py            (from the repository root, in the dev venv)
Deterministic: the same code writes the same pixels. The picture: a photo (a rounded tile with a
landscape), an object in it outlined by a polygon (the query region), and a magnifying glass.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

SIZE = 256
SS = 4  # drawn at 4x and scaled down: smooth anti-aliased edges, also in the alpha channel


def draw(size: int = SIZE) -> np.ndarray:
    n = size * SS
    s = n / 256.0  # design units are on a 256 grid

    def p(x, y):
        return int(round(x * s)), int(round(y * s))

    img = np.zeros((n, n, 4), np.uint8)  # BGRA
    # Rounded tile, dark blue-grey background.
    tile = np.zeros((n, n), np.uint8)
    r = int(40 * s)
    m = int(8 * s)
    cv2.rectangle(tile, (m + r, m), (n - m - r, n - m), 255, -1)
    cv2.rectangle(tile, (m, m + r), (n - m, n - m - r), 255, -1)
    for cx, cy in ((m + r, m + r), (n - m - r, m + r), (m + r, n - m - r), (n - m - r, n - m - r)):
        cv2.circle(tile, (cx, cy), r, 255, -1)
    yy = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    top, bottom = np.array([96, 62, 38], np.float32), np.array([66, 38, 22], np.float32)  # BGR
    grad = (top * (1 - yy[..., None]) + bottom * yy[..., None]).repeat(n, axis=1)
    img[..., :3] = grad.astype(np.uint8)
    img[..., 3] = tile
    # The "photo": hills and a sun.
    photo = img[..., :3].copy()
    cv2.circle(photo, p(70, 72), int(18 * s), (90, 200, 250), -1, cv2.LINE_AA)
    hills = np.array([p(8, 200), p(60, 150), p(100, 175), p(150, 120), p(210, 170), p(248, 140), p(248, 248),
                      p(8, 248)], np.int32)
    cv2.fillPoly(photo, [hills], (92, 120, 60), cv2.LINE_AA)
    img[..., :3] = np.where(tile[..., None] > 0, photo, img[..., :3])
    # The object, outlined: a tilted quadrilateral (a poster seen at an angle) with a bright outline.
    quad = np.array([p(104, 58), p(190, 74), p(182, 160), p(96, 146)], np.int32)
    cv2.fillPoly(img, [quad], (200, 170, 120, 255), cv2.LINE_AA)
    for i, (a, b) in enumerate(((112, 80), (150, 90), (128, 118), (165, 128))):
        cv2.circle(img, p(a, b), int((9 + 3 * (i % 2)) * s), (60 + 40 * i, 90, 210 - 30 * i, 255), -1, cv2.LINE_AA)
    cv2.polylines(img, [quad], True, (40, 220, 255, 255), int(7 * s), cv2.LINE_AA)
    for q in quad:  # vertex handles
        cv2.circle(img, tuple(int(v) for v in q), int(9 * s), (255, 255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(img, tuple(int(v) for v in q), int(9 * s), (40, 220, 255, 255), int(3 * s), cv2.LINE_AA)
    # Magnifying glass over the lower left.
    c, rad = p(92, 178), int(40 * s)
    cv2.line(img, p(122, 208), p(176, 240), (40, 40, 40, 255), int(22 * s), cv2.LINE_AA)
    cv2.line(img, p(122, 208), p(174, 239), (230, 230, 230, 255), int(14 * s), cv2.LINE_AA)
    lens = img.copy()
    cv2.circle(lens, c, rad, (255, 240, 220, 255), -1, cv2.LINE_AA)
    img = cv2.addWeighted(img, 0.65, lens, 0.35, 0)
    cv2.circle(img, c, rad, (245, 245, 245, 255), int(10 * s), cv2.LINE_AA)
    # Keep the tile's silhouette (the handle may reach its corner) and scale down.
    alpha = np.maximum(tile, cv2.inRange(img[..., 3], 250, 255))
    img[..., 3] = alpha
    img[alpha == 0] = 0  # fully transparent pixels carry no colour
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().with_name("pixret.png")
    ok, buf = cv2.imencode(".png", draw(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise SystemExit("PNG encoding failed")
    out.write_bytes(buf.tobytes())
    print(f"wrote {out} ({SIZE}x{SIZE}, {len(buf)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
