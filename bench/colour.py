"""The VVC anchor's colour conventions (../shared/anchors/vvc/README.md, "Colour conversion"), in numpy.

* :func:`rgb_to_yuv420p10` — 8-bit R'G'B' -> BT.709 limited-range 10-bit 4:2:0, chroma siting type 0
  (horizontal [1 2 1]/4 at the even columns, then the mean of each row pair), round half to even.
* :func:`yuv420p10_to_rgb` — the inverse: bilinear type-0 chroma upsampling (vertical ¼/¾, horizontal
  copy / ½(C[j] + C[j+1]), edges replicated), BT.709 matrix, ``clip(round(255 x))`` to uint8.

All arithmetic is float64 until the final rounding, exactly as the README specifies, so that the anchor's
RGB reconstructions (and so its metrics) are reproduced.  The bench uses the same two functions for every
codec that codes 10-bit 4:2:0 (VVC, HEVC, AV1): those codecs are compared on the same YUV input and the
same inverse conversion, and :func:`yuv420p10_to_rgb` is part of their timed decode (see bench/codecs.py).
"""
from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB  # 0.7152
CB_DIV, CR_DIV = 1.8556, 1.5748


def rgb_to_yuv420p10(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB with even H, W -> (Y (H, W), Cb (H/2, W/2), Cr (H/2, W/2)) uint16 10-bit codes."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected (H, W, 3) uint8")
    h, w, _ = rgb.shape
    if h % 2 or w % 2:
        raise ValueError("4:2:0 conversion needs even width and height")
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    cb = (b - y) / CB_DIV
    cr = (r - y) / CR_DIV

    def down(c: np.ndarray) -> np.ndarray:
        left = np.concatenate([c[:, :1], c[:, 1:-1:2]], axis=1)  # column 2j-1 (edge replicated at j = 0)
        centre = c[:, 0::2]
        right = c[:, 1::2]  # column 2j+1 (exists: W even)
        hor = 0.25 * left + 0.5 * centre + 0.25 * right
        return 0.5 * (hor[0::2] + hor[1::2])

    def q(v: np.ndarray, scale: float, offset: float) -> np.ndarray:
        return np.clip(np.round(4.0 * (scale * v + offset)), 0, 1023).astype(np.uint16)

    return q(y, 219.0, 16.0), q(down(cb), 224.0, 128.0), q(down(cr), 224.0, 128.0)


def _up_vertical(c: np.ndarray) -> np.ndarray:
    """(h, w) chroma -> (2h, w): row 2i = ¼ C[i-1] + ¾ C[i], row 2i+1 = ¾ C[i] + ¼ C[i+1] (edges replicated)."""
    h, w = c.shape
    prev = np.empty_like(c)
    prev[0] = c[0]
    prev[1:] = c[:-1]
    nxt = np.empty_like(c)
    nxt[-1] = c[-1]
    nxt[:-1] = c[1:]
    out = np.empty((2 * h, w), dtype=c.dtype)
    out[0::2] = 0.25 * prev + 0.75 * c
    out[1::2] = 0.75 * c + 0.25 * nxt
    return out


def _up_horizontal(c: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, 2w): column 2j = C[j], column 2j+1 = ½ (C[j] + C[j+1]) (last column replicated)."""
    h, w = c.shape
    out = np.empty((h, 2 * w), dtype=c.dtype)
    out[:, 0::2] = c
    out[:, 1:-1:2] = 0.5 * (c[:, :-1] + c[:, 1:])
    out[:, -1] = c[:, -1]
    return out


def yuv420p10_to_rgb(y10: np.ndarray, cb10: np.ndarray, cr10: np.ndarray) -> np.ndarray:
    """10-bit limited-range BT.709 4:2:0 planes -> (H, W, 3) uint8 RGB, as the anchor README's inverse."""
    h, w = y10.shape
    if cb10.shape != ((h + 1) // 2, (w + 1) // 2) or cr10.shape != cb10.shape:
        raise ValueError(f"chroma planes {cb10.shape}/{cr10.shape} do not match luma {y10.shape} in 4:2:0")
    yf = (y10 / 4.0 - 16.0) / 219.0
    cbf = _up_horizontal(_up_vertical((cb10 / 4.0 - 128.0) / 224.0))[:h, :w]
    crf = _up_horizontal(_up_vertical((cr10 / 4.0 - 128.0) / 224.0))[:h, :w]
    out = np.empty((h, w, 3), dtype=np.float64)
    r = out[..., 0]
    b = out[..., 2]
    np.multiply(crf, CR_DIV, out=r)
    r += yf
    np.multiply(cbf, CB_DIV, out=b)
    b += yf
    out[..., 1] = (yf - KR * r - KB * b) / KG
    out *= 255.0
    np.round(out, out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)
