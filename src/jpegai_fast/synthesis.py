"""Synthesis (ŷ -> Y, UV planes in ONNX Runtime), whole or tiled, and the small latent-domain helpers the
Python side still needs (gains of displaced rate points, σ of a Q7 level).  ŷ itself comes from the C++ core
(``_core.LatentModel.decode`` / ``PreparedLatents.code``): the latent domain never crosses into Python.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .entropy import NUM_LEVELS, SIGMA_MAX, SIGMA_MIN

__all__ = ["Tiling", "gain", "synthesise", "synthesise_tiled", "tile_spans", "sigma_from_log", "LATENT_STRIDE"]

LATENT_STRIDE = 16  # luma samples per luma latent sample: the unit of tiling
LOG_STEP = float(np.log(SIGMA_MAX / SIGMA_MIN) / (NUM_LEVELS - 1))  # log-σ per level; Q7 = 1/128 of it


@dataclass(frozen=True)
class Tiling:
    """Synthesis tiling in luma samples: ``tile`` 0 = untiled, else a multiple of 16; ``overlap`` a multiple
    of 16 below the tile (docs/bitstream.md §2).  Validated once, here."""
    tile: int = 0
    overlap: int = 0

    def __post_init__(self):
        t, o = self.tile, self.overlap
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0 or t % LATENT_STRIDE:
            raise ValueError(f"tile_size must be 0 (untiled) or a multiple of {LATENT_STRIDE}, got {t!r}")
        if isinstance(o, bool) or not isinstance(o, (int, np.integer)) or o < 0 or o % LATENT_STRIDE:
            raise ValueError(f"tile_overlap must be a multiple of {LATENT_STRIDE} >= 0, got {o!r}")
        if (t == 0 and o) or (t and o >= t):
            raise ValueError(f"tile_overlap must be below tile_size (untiled: 0), got {o} for {t}")

    @property
    def tiled(self) -> bool:
        return self.tile > 0


def _ref(h, w) -> np.ndarray:
    return np.zeros((1, 0, h, w), np.float32)  # zero-channel tensor: only carries a size into the graph


def gain(model, comp: str, rate: int, displacement: int = 0) -> np.ndarray:
    """float32 [C] quantisation gain g of a rate point plus a header displacement (Q7).

    Displacement 0: the stored float32 gains (bit-equal to training).  Otherwise exp((o + d)·LOG_STEP/128)
    in float64 rounded to float32 — the reference decoder's formula; the encoder makes its residuals with it."""
    if displacement == 0:
        return model.gain_f32(comp, rate)
    o = model.gain_q7(comp, rate).astype(np.int64) + int(displacement)
    log_step = float(np.log(60.0 / 0.11) / 63)  # written as in the reference so the float64 value is identical
    return np.exp(o * (log_step / 128)).astype(np.float32)


def sigma_from_log(log_sigma: np.ndarray) -> np.ndarray:
    """Q7 log-σ (gain applied, as the C++ decoder returns it) -> σ float32 of the entropy model's level."""
    return (SIGMA_MIN * np.exp(np.asarray(log_sigma, np.float64) * (LOG_STEP / 128))).astype(np.float32)


def synthesise(model, y_hat_l, y_hat_c, image_hw, op: str = "bop"):
    """-> Y [H,W], UV [2,ceil(H/2),ceil(W/2)] float32 0-255 (unclamped; the graphs crop to the picture).
    ``y_hat_c`` None (monochrome): the luma graph only, UV None."""
    if op not in model.operating_points:
        raise ValueError(f"operating_point must be one of {model.operating_points}, got {op!r}")
    ref = _ref(*image_hw)
    yy = model.run(f"synthesis_{op}_luma", y_hat=y_hat_l[None], image_ref=ref)[0, 0]
    if y_hat_c is None:
        return yy, None
    uv = model.run(f"synthesis_{op}_chroma", y_hat_luma=y_hat_l[None], y_hat_chroma=y_hat_c[None], image_ref=ref)[0]
    return yy, uv


def tile_spans(latent_len: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Split one latent axis of ``latent_len`` samples into tiles of ``tile`` latent samples (the last
    one shorter), each extended by ``overlap`` latent samples on both sides where the picture allows.
    -> [(in_begin, in_end, core_begin, core_end)] in latent samples; the cores partition the axis."""
    spans = []
    for a in range(0, latent_len, tile):
        b = min(a + tile, latent_len)
        spans.append((max(a - overlap, 0), min(b + overlap, latent_len), a, b))
    return spans


def synthesise_tiled(model, y_hat_l, y_hat_c, image_hw, op: str = "bop", tile: int = 1024, overlap: int = 64,
                     out=None):
    """:func:`synthesise` tile by tile: the output is cut into ``tile`` x ``tile`` luma-sample tiles (a
    multiple of 16, aligned to the latent grid); each is synthesised from its latents extended by
    ``overlap`` luma samples (a multiple of 16) on every side that has picture there, and that margin is
    cropped before the tile is written out.  The graphs only ever see one extended tile, so the memory
    of synthesis is bounded by the tile, not the picture.  A tile that reaches the picture's bottom or
    right edge is given the picture's true remaining size, so the graphs' edge crops are the untiled
    ones; with one tile covering the picture this is :func:`synthesise` itself.
    A model whose chroma latent is on a coarser grid (``model.grid["chroma"]`` = 32) gets tiles and
    overlaps rounded up to that grid, so every tile starts on a chroma latent sample.
    ``out``: optional (Y float32 [H,W], UV float32 [2,ceil(H/2),ceil(W/2)]) to write into.  ``y_hat_c`` None
    (monochrome): luma only, UV None."""
    if op not in model.operating_points:
        raise ValueError(f"operating_point must be one of {model.operating_points}, got {op!r}")
    # luma latent samples per chroma latent sample (monochrome: no chroma to align to)
    ratio = 1 if y_hat_c is None else model.grid["chroma"] // LATENT_STRIDE
    if tile <= 0 or tile % LATENT_STRIDE or overlap < 0 or overlap % LATENT_STRIDE:
        raise ValueError(f"tile and overlap must be multiples of {LATENT_STRIDE} (tile > 0), got {tile}, {overlap}")
    h, w = int(image_hw[0]), int(image_hw[1])
    hl, wl = y_hat_l.shape[-2:]
    t, o = tile // LATENT_STRIDE, overlap // LATENT_STRIDE
    t, o = -(-t // ratio) * ratio, -(-o // ratio) * ratio
    if t >= hl and t >= wl:
        yy, uv = synthesise(model, y_hat_l, y_hat_c, image_hw, op)
        if out is not None:
            out[0][...] = yy
            if uv is not None:
                out[1][...] = uv
            return out
        return yy, uv
    s = LATENT_STRIDE
    if out is None:
        out = (np.empty((h, w), np.float32),
               None if y_hat_c is None else np.empty((2, -(-h // 2), -(-w // 2)), np.float32))
    yy_out, uv_out = out
    for iy0, iy1, cy0, cy1 in tile_spans(hl, t, o):
        th = min(s * iy1, h) - s * iy0  # the picture's rows under the extended tile
        for ix0, ix1, cx0, cx1 in tile_spans(wl, t, o):
            tw = min(s * ix1, w) - s * ix0
            chroma = (None if y_hat_c is None
                      else y_hat_c[:, iy0 // ratio:-(-iy1 // ratio), ix0 // ratio:-(-ix1 // ratio)])
            yt, uvt = synthesise(model, y_hat_l[:, iy0:iy1, ix0:ix1], chroma, (th, tw), op)
            # core rows/columns of the tile, in luma and in chroma samples, relative to the tile
            ly0, ly1 = s * (cy0 - iy0), min(s * cy1, h) - s * iy0
            lx0, lx1 = s * (cx0 - ix0), min(s * cx1, w) - s * ix0
            yy_out[s * cy0:s * cy0 + ly1 - ly0, s * cx0:s * cx0 + lx1 - lx0] = yt[ly0:ly1, lx0:lx1]
            if uvt is None:
                continue
            cy_0, cy_1 = ly0 // 2, -(-ly1 // 2)
            cx_0, cx_1 = lx0 // 2, -(-lx1 // 2)
            oy, ox = s * cy0 // 2, s * cx0 // 2
            uv_out[:, oy:oy + cy_1 - cy_0, ox:ox + cx_1 - cx_0] = uvt[:, cy_0:cy_1, cx_0:cx_1]
    return out
