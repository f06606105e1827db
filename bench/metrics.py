"""RGB-domain quality metrics and BD-rate, as ../shared/anchors/vvc/README.md ("Metrics") defines them.

Both images are 8-bit RGB; each is converted to BT.709 full-range Y'CbCr in float64 on the 0–255 scale (no
rounding, no subsampling).  ``psnr_y``, ``psnr_cb``, ``psnr_cr`` = 10 log10(255² / MSE) over all pixels;
``psnr_yuv`` = (6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8; ``msssim_y`` = MS-SSIM on Y (5 scales, weights
0.0448/0.2856/0.3001/0.2363/0.1333, scipy ``gaussian_filter`` σ 1.5 truncated at 3.5σ = 11 taps, mode
``reflect``, whole-plane means, K1 0.01, K2 0.03, L 255, 2×2 average pooling dropping an odd last
row/column, cs at scales 1–4 and full SSIM at scale 5, each term floored at 1e-12);
``msssim_db`` = −10 log10(1 − msssim_y).

BD-rate: :func:`bd_rate` wraps the ``bjontegaard`` package (FAU-LMS, PyPI) with piecewise cubic Hermite
(pchip) interpolation, the JPEG AI / CompressAI convention; when that package is not installed it falls back
to training/bd_rate.py (same method). Both are cross-checked in bench/test_metrics.py.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from bench.colour import CB_DIV, CR_DIV, KB, KG, KR

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2, _L = 0.01, 0.03, 255.0
_SIGMA, _TRUNCATE = 1.5, 3.5


def rgb_to_ycbcr_full(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB (any dtype, 0–255 scale) -> (3, H, W) float64 BT.709 full-range Y, Cb, Cr."""
    x = np.asarray(rgb, dtype=np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    return np.stack([y, (b - y) / CB_DIV + 128.0, (r - y) / CR_DIV + 128.0])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def msssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM of two float planes on the 0–255 scale (the README's definition)."""
    from scipy.ndimage import gaussian_filter

    def blur(v):
        return gaussian_filter(v, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    c1, c2 = (_K1 * _L) ** 2, (_K2 * _L) ** 2
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    terms = []
    n = len(MSSSIM_WEIGHTS)
    for scale in range(n):
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        cs_map = (2.0 * sxy + c2) / (sxx + syy + c2)
        if scale < n - 1:
            terms.append(max(float(np.mean(cs_map)), 1e-12))
            h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        else:
            l_map = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
            terms.append(max(float(np.mean(l_map * cs_map)), 1e-12))
    return float(np.prod(np.power(terms, MSSSIM_WEIGHTS)))


def quality(original: np.ndarray, decoded: np.ndarray, with_msssim: bool = True) -> dict[str, float]:
    """All anchor metrics of a decoded 8-bit RGB picture against the original 8-bit RGB picture."""
    if original.shape != decoded.shape:
        raise ValueError(f"shape mismatch {original.shape} vs {decoded.shape}")
    a = rgb_to_ycbcr_full(original)
    b = rgb_to_ycbcr_full(decoded)
    py, pcb, pcr = (_psnr(a[i], b[i]) for i in range(3))
    out = {"psnr_y": py, "psnr_cb": pcb, "psnr_cr": pcr, "psnr_yuv": (6.0 * py + pcb + pcr) / 8.0}
    if with_msssim:
        m = msssim(a[0], b[0])
        out["msssim_y"] = m
        out["msssim_db"] = math.inf if m >= 1.0 else -10.0 * math.log10(1.0 - m)
    return out


def bpp(nbytes: int, width: int, height: int) -> float:
    return 8.0 * nbytes / (width * height)


# --------------------------------------------------------------------------------------------- BD-rate


def bd_rate_backend() -> str:
    try:
        import bjontegaard  # noqa: F401
    except ImportError:
        return "training.bd_rate (pchip)"
    from importlib import metadata

    return f"bjontegaard {metadata.version('bjontegaard')} (method='pchip')"


def _clean(rate, qual):
    """Sort by quality, drop non-finite and repeated qualities (a codec saturating at its top quality)."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(qual, dtype=np.float64)
    keep = np.isfinite(q) & np.isfinite(r) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(q, kind="stable")
    r, q = r[order], q[order]
    if q.size:
        distinct = np.concatenate([[True], np.diff(q) > 0])
        r, q = r[distinct], q[distinct]
    return r, q


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """BD-rate in percent of ``test`` against ``anchor`` (negative: test needs less rate at equal quality).

    pchip on log-rate as a function of quality, integrated over the overlap of the two quality ranges;
    NaN when the ranges do not overlap or a curve has fewer than 2 usable points.
    """
    ra, qa = _clean(anchor_rate, anchor_quality)
    rt, qt = _clean(test_rate, test_quality)
    if ra.size < 2 or rt.size < 2 or not min(qa[-1], qt[-1]) > max(qa[0], qt[0]):
        return math.nan
    try:
        import bjontegaard
    except ImportError:
        from training.bd_rate import bd_rate as _bd

        return float(_bd(ra, qa, rt, qt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "small overlap" warning: the overlap is reported by the caller
        return float(bjontegaard.bd_rate(ra, qa, rt, qt, method="pchip", require_matching_points=False))


def quality_overlap(anchor_quality, test_quality) -> float:
    """Fraction of the anchor's quality range that the test curve covers (0–1)."""
    qa = np.asarray(anchor_quality, float)
    qt = np.asarray(test_quality, float)
    qa, qt = qa[np.isfinite(qa)], qt[np.isfinite(qt)]
    if qa.size < 2 or qt.size < 2 or qa.max() <= qa.min():
        return 0.0
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    return max(0.0, hi - lo) / (qa.max() - qa.min())
