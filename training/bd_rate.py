"""Bjøntegaard delta rate (VCEG-M33 with piecewise cubic Hermite interpolation, as in the common
"pchip" variant used by JPEG AI / CompressAI tooling).

    bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> percent

log(rate) is interpolated as a function of quality with scipy's PchipInterpolator for each curve,
integrated over the overlap of the two quality ranges, and the mean log-rate difference d gives
BD-rate = (exp(d) − 1)·100 %. Negative = the test codec needs less rate at equal quality. Returns
NaN when the quality ranges do not overlap. Points are sorted by quality; each curve needs ≥ 2
points with distinct qualities (quality must be monotone in rate for the result to mean anything).
"""
from __future__ import annotations

import math

import numpy as np


def _curve(rate, quality):
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1 or r.size < 2:
        raise ValueError("rate and quality must be 1-D of equal length >= 2")
    if (r <= 0).any() or not np.isfinite(q).all():
        raise ValueError("rates must be > 0 and qualities finite")
    order = np.argsort(q, kind="stable")
    q, lr = q[order], np.log(r[order])
    if (np.diff(q) <= 0).any():
        raise ValueError("qualities must be distinct")
    return q, lr


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    from scipy.interpolate import PchipInterpolator

    qa, la = _curve(anchor_rate, anchor_quality)
    qt, lt = _curve(test_rate, test_quality)
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not hi > lo:
        return math.nan
    ia = PchipInterpolator(qa, la).integrate(lo, hi)
    it = PchipInterpolator(qt, lt).integrate(lo, hi)
    return (math.exp((it - ia) / (hi - lo)) - 1.0) * 100.0


def bd_quality(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """BD-PSNR style: mean quality difference over the overlapping log-rate range (test − anchor)."""
    from scipy.interpolate import PchipInterpolator

    ra = np.log(np.asarray(anchor_rate, float)), np.asarray(anchor_quality, float)
    rt = np.log(np.asarray(test_rate, float)), np.asarray(test_quality, float)
    oa, ot = np.argsort(ra[0]), np.argsort(rt[0])
    xa, ya, xt, yt = ra[0][oa], ra[1][oa], rt[0][ot], rt[1][ot]
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if not hi > lo:
        return math.nan
    area = PchipInterpolator(xt, yt).integrate(lo, hi) - PchipInterpolator(xa, ya).integrate(lo, hi)
    return float(area / (hi - lo))


if __name__ == "__main__":
    a_r, a_q = [0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0]
    print("shifted x0.8:", bd_rate(a_r, a_q, [0.8 * r for r in a_r], a_q))
