"""Colour stage: BT.709 full-range Y'CbCr 4:2:0 <-> RGB, on 0-255 floats.

A copy of training/reference_decoder.py's conversion (the runtime package must not import training/);
the decoder side is the VVC anchor's inverse (bilinear type-0 chroma up-sampling, round half to even),
so decoded pixels equal the reference decoder's for equal Y/UV planes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_yuv420", "yuv420_to_rgb"]

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
CB_DIV, CR_DIV = 2.0 * (1.0 - KB), 2.0 * (1.0 - KR)


def rgb_to_yuv420(rgb: np.ndarray):
    """uint8 [H,W,3] (H, W even) -> Y [H,W], UV [2,H/2,W/2] float32 0-255 (the encoder's input planes)."""
    x = rgb.astype(np.float32).transpose(2, 0, 1)
    r, g, b = x[0], x[1], x[2]
    y = KR * r + KG * g + KB * b
    c = np.stack([(b - y) / CB_DIV, (r - y) / CR_DIV]) + 128.0
    w = c.shape[-1]
    p = np.pad(c, ((0, 0), (0, 0), (1, 1)), mode="edge")
    h = 0.25 * p[..., 0:w:2] + 0.5 * p[..., 1:w + 1:2] + 0.25 * p[..., 2:w + 2:2]
    uv = 0.5 * (h[:, 0::2, :] + h[:, 1::2, :])
    return y.astype(np.float32), uv.astype(np.float32)


def yuv420_to_rgb(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Y [H,W], UV [2,ceil(H/2),ceil(W/2)] 0-255 full range -> uint8 RGB [H,W,3].

    Rows: 2i <- ¼C[i−1] + ¾C[i], 2i+1 <- ¾C[i] + ¼C[i+1]; columns: 2j <- C[j], 2j+1 <- ½(C[j] + C[j+1])
    (edges replicated).  Float64 so that the rounding matches the reference exactly."""
    hh, ww = y.shape
    c = uv.astype(np.float64) - 128.0
    p = np.pad(c, ((0, 0), (1, 1), (0, 0)), mode="edge")
    rows = np.empty((2, 2 * c.shape[1], c.shape[2]))
    rows[:, 0::2] = 0.25 * p[:, :-2] + 0.75 * p[:, 1:-1]
    rows[:, 1::2] = 0.75 * p[:, 1:-1] + 0.25 * p[:, 2:]
    q = np.pad(rows, ((0, 0), (0, 0), (0, 1)), mode="edge")
    full = np.empty((2, rows.shape[1], 2 * rows.shape[2]))
    full[:, :, 0::2] = q[:, :, :-1]
    full[:, :, 1::2] = 0.5 * (q[:, :, :-1] + q[:, :, 1:])
    cb, cr = full[0, :hh, :ww], full[1, :hh, :ww]
    yy = y.astype(np.float64)
    r = yy + CR_DIV * cr
    b = yy + CB_DIV * cb
    g = (yy - KR * r - KB * b) / KG
    return np.clip(np.round(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)
