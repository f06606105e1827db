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


BAND_ROWS = 64  # luma rows per band (even): the conversions never hold a full-picture float64 array


def rgb_to_yuv420(rgb: np.ndarray, band_rows: int = 256):
    """uint8 [H,W,3] (H, W even) -> Y [H,W], UV [2,H/2,W/2] float32 0-255 (the encoder's input planes).

    Converted in bands of ``band_rows`` rows (even): every output sample depends on its own row pair
    only, so the result is identical for any band size and no full-picture float temporaries exist."""
    hh, ww = rgb.shape[:2]
    if hh % 2 or ww % 2 or band_rows < 2 or band_rows % 2:
        raise ValueError("rgb_to_yuv420 needs even sides and an even band size")
    y_out = np.empty((hh, ww), np.float32)
    uv_out = np.empty((2, hh // 2, ww // 2), np.float32)
    for r0 in range(0, hh, band_rows):
        r1 = min(r0 + band_rows, hh)
        y, uv = _rgb_to_yuv420_band(rgb[r0:r1])
        y_out[r0:r1] = y
        uv_out[:, r0 // 2:r1 // 2] = uv
    return y_out, uv_out


def _rgb_to_yuv420_band(rgb: np.ndarray):
    x = rgb.astype(np.float32).transpose(2, 0, 1)
    r, g, b = x[0], x[1], x[2]
    y = KR * r + KG * g + KB * b
    c = np.stack([(b - y) / CB_DIV, (r - y) / CR_DIV]) + 128.0
    w = c.shape[-1]
    p = np.pad(c, ((0, 0), (0, 0), (1, 1)), mode="edge")
    h = 0.25 * p[..., 0:w:2] + 0.5 * p[..., 1:w + 1:2] + 0.25 * p[..., 2:w + 2:2]
    uv = 0.5 * (h[:, 0::2, :] + h[:, 1::2, :])
    return y.astype(np.float32), uv.astype(np.float32)


def yuv420_to_rgb(y: np.ndarray, uv: np.ndarray, band_rows: int = BAND_ROWS,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Y [H,W], UV [2,ceil(H/2),ceil(W/2)] 0-255 full range -> uint8 RGB [H,W,3].

    Rows: 2i <- ¼C[i−1] + ¾C[i], 2i+1 <- ¾C[i] + ¼C[i+1]; columns: 2j <- C[j], 2j+1 <- ½(C[j] + C[j+1])
    (edges replicated).  Float64 so that the rounding matches the reference exactly.

    Converted in bands of ``band_rows`` luma rows (even), each with a one-row chroma halo above and
    below (edge rows replicated as in the untiled conversion): every sample goes through the same
    float64 operations in the same order as :func:`yuv420_to_rgb_reference`, so the result is bit-identical
    for any band size, and the float64 working set is a few bands, not the picture."""
    hh, ww = y.shape
    hc, wc = uv.shape[1:]
    if band_rows < 2 or band_rows % 2:
        raise ValueError("band_rows must be even and >= 2")
    if hc != -(-hh // 2) or wc != -(-ww // 2) or uv.shape[0] != 2:
        raise ValueError(f"chroma planes {uv.shape} do not match luma {y.shape} in 4:2:0")
    if out is None:
        out = np.empty((hh, ww, 3), np.uint8)
    nb = band_rows // 2  # chroma rows per band
    # scratch buffers, reused by every band (the last band may be shorter: views of them)
    c = np.empty((2, nb + 2, wc + 1))
    rows = np.empty((2, 2 * nb, wc + 1))
    s2 = np.empty((2, nb, wc + 1))
    full = np.empty((2, 2 * nb, 2 * wc))
    t = np.empty((3, 2 * nb, ww))
    u = np.empty((2 * nb, ww))
    for k0 in range(0, hc, nb):
        k1 = min(k0 + nb, hc)
        n = k1 - k0
        # chroma rows k0-1 .. k1 (edge rows replicated), and one replicated column on the right
        src = np.clip(np.arange(k0 - 1, k1 + 1), 0, hc - 1)
        cb = c[:, :n + 2]
        np.subtract(uv[:, src], 128.0, out=cb[:, :, :wc], dtype=np.float64)
        cb[:, :, wc] = cb[:, :, wc - 1]
        rb = rows[:, :2 * n]
        even, odd, a = rb[:, 0::2], rb[:, 1::2], s2[:, :n]
        np.multiply(cb[:, 1:-1], 0.75, out=a)  # ¾C[i]
        np.multiply(cb[:, :-2], 0.25, out=even)
        np.add(even, a, out=even)  # ¼C[i−1] + ¾C[i]
        np.multiply(cb[:, 2:], 0.25, out=odd)
        np.add(a, odd, out=odd)  # ¾C[i] + ¼C[i+1]
        fb = full[:, :2 * n]
        np.add(rb[:, :, :-1], rb[:, :, 1:], out=fb[:, :, 1::2])
        np.multiply(fb[:, :, 1::2], 0.5, out=fb[:, :, 1::2])
        fb[:, :, 0::2] = rb[:, :, :-1]
        r0, r1 = 2 * k0, min(2 * k1, hh)
        m = r1 - r0
        cbp, crp = fb[0, :m, :ww], fb[1, :m, :ww]
        yy = np.asarray(y[r0:r1], np.float64)
        rr, gg, bb = t[0, :m], t[1, :m], t[2, :m]
        np.multiply(crp, CR_DIV, out=rr)
        np.add(yy, rr, out=rr)  # r = y + CR_DIV·cr
        np.multiply(cbp, CB_DIV, out=bb)
        np.add(yy, bb, out=bb)  # b = y + CB_DIV·cb
        um = u[:m]
        np.multiply(rr, KR, out=gg)
        np.subtract(yy, gg, out=gg)
        np.multiply(bb, KB, out=um)
        np.subtract(gg, um, out=gg)
        np.divide(gg, KG, out=gg)  # g = (y − KR·r − KB·b) / KG
        tb = t[:, :m]
        np.rint(tb, out=tb)  # round half to even, as np.round
        np.clip(tb, 0, 255, out=tb)
        out[r0:r1] = tb.transpose(1, 2, 0)
    return out


def yuv420_to_rgb_reference(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The untiled conversion, whole-picture float64 arrays (the reference's code; tests compare to it)."""
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
