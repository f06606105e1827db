"""Integer hyper-scale decoder in numpy (int64, no tricks): the definition of
training/hyper_scale_int.py (int_forward) and csrc/hyper_scale_decoder.hpp, written out plainly."""
from __future__ import annotations

import numpy as np

ACT_MIN, ACT_MAX = -128, 127
MAX_LOG_SIGMA = 63 * 128 - 1


def int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """x: C x H x W integers; w: O x C x k x k int8; b: O int32; shift: O.  Zero padding, floor shift."""
    c, h, wd = x.shape
    k = w.shape[-1]
    r = k // 2
    xp = np.pad(np.clip(x, ACT_MIN, ACT_MAX).astype(np.int64), ((0, 0), (r, r), (r, r)))
    acc = np.zeros((w.shape[0], h, wd), dtype=np.int64) + b.astype(np.int64)[:, None, None]
    for ky in range(k):
        for kx in range(k):
            acc += np.einsum("oc,chw->ohw", w[:, :, ky, kx].astype(np.int64), xp[:, ky:ky + h, kx:kx + wd])
    assert np.abs(acc).max(initial=0) < 2**31, "int32 accumulator overflow"
    return acc >> shift.astype(np.int64)[:, None, None]


def hyper_scale_decode(z: np.ndarray, layers, latent_hw: tuple[int, int]) -> np.ndarray:
    """z: C x Hz x Wz integers; layers: [(w, b, shift)] * 3 -> C x Hl x Wl int32 Q7 log-sigma."""
    x = z.astype(np.int64)
    for i, (w, b, s) in enumerate(layers):
        x = int_conv(x, w, b, s)
        if i < 2:
            x = np.maximum(x, 0)
    o, hz, wz = x.shape
    c = o // 16
    s = x.reshape(c, 4, 4, hz, wz).transpose(0, 3, 1, 4, 2).reshape(c, 4 * hz, 4 * wz)  # PixelShuffle(4)
    s = s[:, : latent_hw[0], : latent_hw[1]]
    return np.minimum(np.abs(s), MAX_LOG_SIGMA).astype(np.int32)
