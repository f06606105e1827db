"""Latent reconstruction and synthesis: psi (hyper decoder), μ (context model), ŷ = r / g + μ, pixels.

Operation for operation the reference codec's float path (training/reference_decoder.py
``_hyper`` / ``_luma_stages`` / ``_chroma`` / ``synthesise``) in float32, so the encoder (which makes r
from y) and the decoder (which reads r) run the very same loop and graphs.
"""
from __future__ import annotations

import numpy as np

from .entropy import SIGMA_MAX, SIGMA_MIN, NUM_LEVELS, SKIP_INDEX

__all__ = ["latent_size", "gain", "hyper_decoder", "luma_stages", "chroma", "synthesise", "sigma_from_log",
           "split_phases", "merge_phases", "STAGE_PHASES", "OPERATING_POINTS"]

STAGE_PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))  # luma context stages: anchors first, then the two diagonals
OPERATING_POINTS = {0: "sop", 1: "bop"}  # header operating_point -> synthesis graph (HOP not exported)
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
    """z_hat int [C,hz,wz] -> psi float32 [4C, ceil(Hl/2), ceil(Wl/2)]."""
    return model.run(f"hyper_decoder_{comp}", z_hat=z_hat[None].astype(np.float32), latent_ref=_ref(*latent_hw))[0]


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
    -> (ŷ float32 [C,Hl,Wl], residual float32 [C,Hl,Wl] (integer-valued))."""
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
        residuals.append(r)
    return merge_phases(decoded)[:, :hl, :wl], merge_phases(residuals)[:, :hl, :wl]


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
