"""Picture quality metrics, defined as training/rd_eval.py and ../shared/anchors/vvc/README.md define them, in numpy
only (the runtime package imports neither training/ nor scipy).

* Colour: BT.709 full-range Y'CbCr 4:4:4 from 8-bit RGB, float64, no rounding (:func:`rgb_to_ycbcr`).
* PSNR-YUV = (6·PSNR-Y + PSNR-Cb + PSNR-Cr) / 8, each component's PSNR with peak 255; PSNR-RGB: one MSE over
  the three RGB channels.
* MS-SSIM on the Y plane: 5 scales, weights 0.0448 … 0.1333, Gaussian σ 1.5 truncated at 3.5σ (an 11-tap
  kernel), edges mirrored as scipy's ``mode="reflect"`` (d c b a | a b c d), K1 0.01, K2 0.03, L 255, 2×2 average
  pooling with an odd last row / column dropped, cs at scales 1–4 and the full SSIM at scale 5, each floored at
  1e-12; ``msssim_db`` = −10·log10(1 − MS-SSIM).  The filter sums in scipy's order (centre tap, then the pairs
  of mirrored taps), so the figures equal rd_eval's to the last bits (tests/test_eval.py).
* bpp = 8·bytes / (W·H).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["rgb_to_ycbcr", "psnr", "msssim", "rd_metrics", "MS_WEIGHTS"]

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_SIGMA, _TRUNCATE = 1.5, 3.5


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB (H, W, 3) -> float64 Y, Cb, Cr planes (BT.709 full range, no rounding)."""
    x = rgb.astype(np.float64)
    y = 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]
    return y, (x[..., 2] - y) / 1.8556 + 128.0, (x[..., 0] - y) / 1.5748 + 128.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two arrays of the same shape (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def _kernel() -> np.ndarray:
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (_SIGMA * _SIGMA) * x * x)
    return k / k.sum()


_K = _kernel()


def _blur_axis(x: np.ndarray, axis: int) -> np.ndarray:
    r = len(_K) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="symmetric")  # scipy's "reflect": the edge sample repeated
    n = x.shape[axis]

    def tap(off: int) -> np.ndarray:
        sl = [slice(None), slice(None)]
        sl[axis] = slice(r + off, r + off + n)
        return p[tuple(sl)]

    out = tap(0) * _K[r]
    for j in range(r, 0, -1):  # scipy's order: the farthest pair of taps first
        out += (tap(-j) + tap(j)) * _K[r + j]
    return out


def _gauss(x: np.ndarray) -> np.ndarray:
    return _blur_axis(_blur_axis(x, 0), 1)


def msssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two float planes (0-255), as the module docstring defines it."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for scale in range(5):
        mu1, mu2 = _gauss(a), _gauss(b)
        s11, s22, s12 = _gauss(a * a) - mu1 * mu1, _gauss(b * b) - mu2 * mu2, _gauss(a * b) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        if scale < 4:
            vals.append(max(float(cs_map.mean()), 1e-12))
            h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
            a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        else:
            lum = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1)
            vals.append(max(float((lum * cs_map).mean()), 1e-12))
    return float(np.prod(np.array(vals) ** np.array(MS_WEIGHTS)))


def rd_metrics(original: np.ndarray, decoded: np.ndarray, nbytes: int | None = None,
               with_msssim: bool = True) -> dict[str, float]:
    """uint8 RGB original and decoded pictures (H, W, 3) -> {"psnr_yuv", "psnr_y", "psnr_cb", "psnr_cr",
    "psnr_rgb", "msssim_y", "msssim_db"} (+ "bytes", "bpp" when ``nbytes`` is given): rd_eval's figures."""
    if original.shape != decoded.shape:
        raise ValueError(f"pictures differ in shape: {original.shape} vs {decoded.shape}")
    yo, bo, ro = rgb_to_ycbcr(original)
    yr, br, rr = rgb_to_ycbcr(decoded)
    py, pb, pr = psnr(yo, yr), psnr(bo, br), psnr(ro, rr)
    out: dict[str, float] = {}
    if nbytes is not None:
        out.update(bytes=int(nbytes), bpp=8.0 * nbytes / (original.shape[0] * original.shape[1]))
    out.update(psnr_yuv=(6 * py + pb + pr) / 8, psnr_y=py, psnr_cb=pb, psnr_cr=pr, psnr_rgb=psnr(original, decoded))
    if with_msssim:
        ms = msssim(yo, yr)
        out.update(msssim_y=ms, msssim_db=-10 * math.log10(max(1 - ms, 1e-12)))
    return out
