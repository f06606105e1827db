"""Latent reconstruction and synthesis: psi (hyper decoder), μ (context model), ŷ = r / g + μ, pixels.

Models with the fixed-point mean path (model.bin sections mean.*) run psi, μ and ŷ in the C++ core
(:func:`hyper_decoder`, :func:`reconstruct`).  The float path below is, operation for operation, the
reference codec's float path (training/reference_decoder.py
``_hyper`` / ``_luma_stages`` / ``_chroma`` / ``synthesise``) in float32, so the encoder (which makes r
from y) and the decoder (which reads r) run the very same loop and graphs.
"""
from __future__ import annotations

import numpy as np

from .entropy import SIGMA_MAX, SIGMA_MIN, NUM_LEVELS, SKIP_INDEX

__all__ = ["latent_size", "gain", "hyper_decoder", "reconstruct", "luma_stages", "chroma", "synthesise", "synthesise_tiled",
           "tile_spans", "sigma_from_log", "split_phases", "merge_phases", "STAGE_PHASES", "OPERATING_POINTS",
           "LATENT_STRIDE"]

COMPONENT_INDEX = {"luma": 0, "chroma": 1}
STAGE_PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))  # luma context stages: anchors first, then the two diagonals
OPERATING_POINTS = {0: "sop", 1: "bop"}  # header operating_point -> synthesis graph (HOP not exported)
LATENT_STRIDE = 16  # luma samples per latent sample
LOG_STEP = float(np.log(SIGMA_MAX / SIGMA_MIN) / (NUM_LEVELS - 1))  # log-σ per level; Q7 = 1/128 of it


def latent_size(image_hw) -> tuple[int, int]:
    return -(-int(image_hw[0]) // 16), -(-int(image_hw[1]) // 16)


def _ref(h, w) -> np.ndarray:
    return np.zeros((1, 0, h, w), np.float32)  # zero-channel tensor: only carries a size into the graph


def gain(model, comp: str, rate: int, displacement: int = 0) -> np.ndarray:
    """float32 [C] quantisation gain g of a rate point plus a header displacement (Q7).

    Displacement 0: the stored float32 gains (bit-equal to training).  Otherwise exp((o + d)·LOG_STEP/128)
    in float64 rounded to float32 — the reference decoder's formula; encoder and decoder both call this."""
    if displacement == 0:
        return model.blob[f"gain.{comp}.f32"][rate]
    o = model.gain_q7(comp, rate).astype(np.int64) + int(displacement)
    log_step = float(np.log(60.0 / 0.11) / 63)  # written as in the reference so the float64 value is identical
    return np.exp(o * (log_step / 128)).astype(np.float32)


def sigma_from_log(log_sigma: np.ndarray) -> np.ndarray:
    """Q7 log-σ (gain applied, as the C++ decoder returns it) -> σ float32 of the entropy model's level."""
    return (SIGMA_MIN * np.exp(np.asarray(log_sigma, np.float64) * (LOG_STEP / 128))).astype(np.float32)


def hyper_decoder(model, comp: str, z_hat: np.ndarray, latent_hw) -> np.ndarray:
    """z_hat int [C,hz,wz] -> psi: fixed-point model: int16 [ceil(Hl/2), ceil(Wl/2), 4C] (C++ layout, passed
    back to :func:`reconstruct`); float model: float32 [4C, ceil(Hl/2), ceil(Wl/2)] from the ONNX graph."""
    if model.mean_path is not None:
        return model.mean_path.hyper_decoder(COMPONENT_INDEX[comp], np.ascontiguousarray(z_hat, dtype=np.int16),
                                             int(latent_hw[0]), int(latent_hw[1]), model.threads)
    return model.run(f"hyper_decoder_{comp}", z_hat=z_hat[None].astype(np.float32), latent_ref=_ref(*latent_hw))[0]


def reconstruct(model, comp: str, psi, idx, rate: int, displacement: int = 0, y=None, residual=None):
    """ŷ of one component from psi, the scale indices and either the residual (decoder) or y (encoder,
    which also makes the residual).  -> (ŷ float32 [C,Hl,Wl], residual).

    Fixed-point model: the C++ mean path (context model, μ, ŷ = μ + r/g all integer, ŷ = q · 2^-frac
    exactly), so encoder and decoder rebuild the very same ŷ on any machine; residual int16.
    Float model: :func:`luma_stages` / :func:`chroma` with the ONNX graphs."""
    g = gain(model, comp, rate, displacement)
    mp = model.mean_path
    if mp is None:
        if comp == "luma":
            return luma_stages(model, psi, idx, g, y=y, residual=residual)
        return chroma(psi, idx, g, y=y, residual=residual)
    k = COMPONENT_INDEX[comp]
    offsets = (model.gain_q7(comp, rate).astype(np.int64) + int(displacement)).astype(np.int32)
    if y is not None:
        yq, r = mp.reconstruct(k, psi, idx, offsets, y=np.ascontiguousarray(y, dtype=np.float32),
                               gain=np.ascontiguousarray(g, dtype=np.float32), threads=model.threads)
    else:
        yq, _ = mp.reconstruct(k, psi, idx, offsets, residual=np.ascontiguousarray(residual, dtype=np.int16),
                               threads=model.threads)
        r = residual
    y_hat = yq.astype(np.float32)
    y_hat *= np.float32(2.0 ** -mp.y_frac(k))
    return y_hat, r


def split_phases(x: np.ndarray) -> list[np.ndarray]:
    return [x[:, dy::2, dx::2] for dy, dx in STAGE_PHASES]


def merge_phases(parts) -> np.ndarray:
    c, h, w = parts[0].shape
    out = np.empty((c, 2 * h, 2 * w), dtype=parts[0].dtype)
    for (dy, dx), p in zip(STAGE_PHASES, parts):
        out[:, dy::2, dx::2] = p
    return out


def _pad_even(x, value=0):
    h, w = x.shape[-2:]
    return np.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), constant_values=value)


def luma_stages(model, psi, idx, g, y=None, residual=None):
    """The 4-stage luma context loop.  Decoder: ``residual`` given.  Encoder: ``y`` given, residual made.
    -> (ŷ float32 [C,Hl,Wl], residual float32 [C,Hl,Wl] (integer-valued; the decoder gets its input back))."""
    hl, wl = idx.shape[-2:]
    coded = _pad_even(idx != SKIP_INDEX, False)  # padded positions are skipped, as in training
    cph = split_phases(coded)
    psis = np.split(psi, 4, axis=0)
    g = g.astype(np.float32)[:, None, None]
    src = split_phases(_pad_even(y if y is not None else residual.astype(np.float32)))
    decoded, residuals = [], []
    for stage in range(4):
        if stage == 0:
            mu = model.run("context_luma_stage0", psi_chunk=psis[0][None])[0]
        else:
            mu = model.run(f"context_luma_stage{stage}", psi_chunk=psis[stage][None],
                           prev=np.concatenate(decoded, axis=0)[None])[0]
        if y is not None:
            r = np.round((src[stage] - mu) * g) * cph[stage]
        else:
            r = src[stage] * cph[stage]
        decoded.append((r / g + mu).astype(np.float32))
        if y is not None:
            residuals.append(r)
    y_hat = merge_phases(decoded)[:, :hl, :wl]
    if y is None:  # decoder: the residual is the input; not merging a float copy of it saves a latent's memory
        return y_hat, residual
    return y_hat, merge_phases(residuals)[:, :hl, :wl]


def chroma(psi, idx, g, y=None, residual=None):
    """Chroma: μ = psi's four chunks merged as phases (no context net); ŷ = r / g + μ."""
    hl, wl = idx.shape[-2:]
    mu = merge_phases(np.split(psi, 4, axis=0))[:, :hl, :wl]
    g = g.astype(np.float32)[:, None, None]
    coded = idx != SKIP_INDEX
    r = np.round((y - mu) * g) * coded if y is not None else residual.astype(np.float32) * coded
    return (r / g + mu).astype(np.float32), r


def synthesise(model, y_hat_l, y_hat_c, image_hw, op: str = "bop"):
    """-> Y [H,W], UV [2,ceil(H/2),ceil(W/2)] float32 0-255 (unclamped; the graphs crop to the picture)."""
    if op not in ("bop", "sop"):
        raise ValueError(f"operating_point must be 'bop' or 'sop', got {op!r}")
    ref = _ref(*image_hw)
    yy = model.run(f"synthesis_{op}_luma", y_hat=y_hat_l[None], image_ref=ref)[0, 0]
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
    ``out``: optional (Y float32 [H,W], UV float32 [2,ceil(H/2),ceil(W/2)]) to write into."""
    if op not in ("bop", "sop"):
        raise ValueError(f"operating_point must be 'bop' or 'sop', got {op!r}")
    if tile <= 0 or tile % LATENT_STRIDE or overlap < 0 or overlap % LATENT_STRIDE:
        raise ValueError(f"tile and overlap must be multiples of {LATENT_STRIDE} (tile > 0), got {tile}, {overlap}")
    h, w = int(image_hw[0]), int(image_hw[1])
    hl, wl = y_hat_l.shape[-2:]
    t, o = tile // LATENT_STRIDE, overlap // LATENT_STRIDE
    if t >= hl and t >= wl:
        yy, uv = synthesise(model, y_hat_l, y_hat_c, image_hw, op)
        if out is not None:
            out[0][...] = yy
            out[1][...] = uv
            return out
        return yy, uv
    s = LATENT_STRIDE
    if out is None:
        out = (np.empty((h, w), np.float32), np.empty((2, -(-h // 2), -(-w // 2)), np.float32))
    yy_out, uv_out = out
    for iy0, iy1, cy0, cy1 in tile_spans(hl, t, o):
        th = min(s * iy1, h) - s * iy0  # the picture's rows under the extended tile
        for ix0, ix1, cx0, cx1 in tile_spans(wl, t, o):
            tw = min(s * ix1, w) - s * ix0
            yt, uvt = synthesise(model, y_hat_l[:, iy0:iy1, ix0:ix1], y_hat_c[:, iy0:iy1, ix0:ix1], (th, tw), op)
            # core rows/columns of the tile, in luma and in chroma samples, relative to the tile
            ly0, ly1 = s * (cy0 - iy0), min(s * cy1, h) - s * iy0
            lx0, lx1 = s * (cx0 - ix0), min(s * cx1, w) - s * ix0
            yy_out[s * cy0:s * cy0 + ly1 - ly0, s * cx0:s * cx0 + lx1 - lx0] = yt[ly0:ly1, lx0:lx1]
            cy_0, cy_1 = ly0 // 2, -(-ly1 // 2)
            cx_0, cx_1 = lx0 // 2, -(-lx1 // 2)
            oy, ox = s * cy0 // 2, s * cx0 // 2
            uv_out[:, oy:oy + cy_1 - cy_0, ox:ox + cx_1 - cx_0] = uvt[:, cy_0:cy_1, cx_0:cx_1]
    return out
