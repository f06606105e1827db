"""Encoder-side latent refinement: spend encoder time to choose a better latent for the same decoder.

Any latent makes a valid stream, so the encoder may look for one that the fixed decoder turns into a better
picture per bit than the analysis' own.  ``encode(..., refine=N)`` runs N steps of Adam on the luma and chroma
latents y for the rate point's own training loss ``bpp/λ − quality``, quality = (PSNR-YUV + w·MS-SSIM-Y dB) /
(1 + w) (λ: the model card's trained slope in bpp per dB, w its MS-SSIM weight) and keeps the stream with the
lowest loss among all it coded (step 0, the unrefined stream, included).

Read me first:
- Every step codes the current y for real (C++ ``prepare_encode`` + ``code``) and decodes the stream's latent
  domain with ``inspect`` (exact ŷ, σ, residuals): the rate in the loss is the stream's size in bytes, the
  distortion is the float synthesis of the exact ŷ.
- Gradients: distortion from ``picture_gradient_{op}.onnx`` (the synthesis' backward pass written out as a plain
  graph, training/synthesis_vjp.py) at ŷ, passed to y straight through the rounding (∂ŷ/∂y = 1); rate from the
  discretised Gaussian N(μ, σ) at the coded residual r, times the gain: ∂bits/∂y = g · ∂(−log2 P(r))/∂r.
- z stays as the analysis made it, so σ and the hyper mean are fixed; the context model's means follow the
  decoded phases but are not differentiated.  Measured in torch with the same simplification
  (``python -m training.latent_ceiling --rdo-fixed-prior``): it keeps most of the full gradient's gain.
- Needs a model that ships the graphs (vm33); the picture is synthesised whole, so the pixel count is capped
  (``MAX_PIXELS``); a monochrome picture, or one whose coded sides are below ``MIN_SIDE`` (MS-SSIM's five
  scales), is not refined.
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import container
from . import synthesis as syn

__all__ = ["MAX_PIXELS", "MIN_SIDE", "LEARNING_RATE", "available", "settings", "rate_lambda", "bits_gradient",
           "refine"]

# The gradient graph holds the whole picture's activations: ~1.3 GB at 2 MP for vm33's BOP.
MAX_PIXELS = 1 << 21
MIN_SIDE = 96  # MS-SSIM's coarsest scale (1/16) must hold its blur's 5-sample mirror: 6 samples
# Adam step on y (latent units; the analysis' latents are O(1)-O(10)): the torch probe's value.
LEARNING_RATE = 0.005
_LN2 = math.log(2.0)


def available(model, op: str) -> bool:
    return (model.path / f"picture_gradient_{op}.onnx").is_file()


def settings(model) -> dict:
    """The model card's `picture_gradient` entry (msssim_weight, ops) and its trained λ ladder."""
    card = json.loads((model.path / "model_card.json").read_text())
    return {**card.get("picture_gradient", {}), "rate_lambdas": card["training"]["rate_lambdas_bpp_per_db"]}


def rate_lambda(model, scale: float) -> float:
    """λ (bpp per dB) of a rate scale: the card's per-rate-point slopes, log-linear in between and beyond."""
    lams = np.log(np.asarray(settings(model)["rate_lambdas"], np.float64))
    r = len(lams) - 1
    k = min(max(int(math.floor(scale)), 0), r - 1)
    return float(np.exp(lams[k] + (scale - k) * (lams[k + 1] - lams[k])))


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc with fractional error < 1.2e-7 everywhere (Chebyshev fit; Numerical Recipes' erfcc), float64."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223
                                                                                    + t * 0.17087277))))))))
    ans = t * np.exp(poly)
    return np.where(x >= 0, ans, 2.0 - ans)


def bits_gradient(residual: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, float]:
    """(∂(−log2 P(r))/∂r per element, Σ −log2 P(r)) for integer residuals r under N(0, σ) discretised to unit
    bins — the training rate model (training/entropy_model.gaussian_bits) and its gradient at the coded
    values.  Symmetric: computed for |r| with upper tails (no cancellation far out), the sign put back."""
    r = np.abs(residual.astype(np.float64))
    s = sigma.astype(np.float64)
    lo, hi = (r - 0.5) / s, (r + 0.5) / s
    # P = Q(lo) - Q(hi), Q(x) = erfc(x/√2)/2;  dP/dr = (φ(hi) - φ(lo)) / σ
    p = 0.5 * (_erfc(lo / math.sqrt(2.0)) - _erfc(hi / math.sqrt(2.0)))
    phi = lambda v: np.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)  # noqa: E731
    dp = (phi(hi) - phi(lo)) / s
    tiny = p < 1e-300
    safe_p = np.where(tiny, 1.0, p)
    # far in the tail the ratio dP/P tends to -r/σ² (Gaussian), so −log2 P has slope r/(σ² ln 2)
    slope = np.where(tiny, r / (s * s * _LN2), -dp / (safe_p * _LN2))
    bits = np.where(tiny, (0.5 * lo * lo) / _LN2, -np.log2(safe_p))
    return np.sign(residual) * slope, float(bits.sum())


class _Adam:
    def __init__(self, lr: float):
        self.lr, self.t = lr, 0
        self.m: np.ndarray = np.zeros(0)
        self.v: np.ndarray = np.zeros(0)

    def step(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        if self.t == 0:
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh = self.m / (1 - 0.9 ** self.t)
        vh = self.v / (1 - 0.999 ** self.t)
        return (x - self.lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)


def refine(model, code_latents, y_latents: dict, gains: dict, target_y: np.ndarray, target_uv: np.ndarray,
           lam: float, op: str, iterations: int, lr: float = LEARNING_RATE) -> tuple[bytes, list]:
    """-> (the best stream, [(bpp, PSNR-YUV, MS-SSIM-Y dB, loss) per step]; PSNR and MS-SSIM of the float
    synthesis of the coded picture).

    code_latents(y_luma, y_chroma) -> stream bytes at the chosen rate; y_latents {"luma", "chroma"}: the
    analysis' float32 [C,h,w] latents; gains: the rate's float32 [C] quantiser gains per component; target_y
    [H,W], target_uv [2,H/2,W/2]: the coded picture (float 0-255); lam: the rate's λ (bpp per dB)."""
    npx = target_y.shape[0] * target_y.shape[1]
    session = model.session(f"picture_gradient_{op}")
    feeds_target = {"target_y": target_y[None, None].astype(np.float32),
                    "target_uv": target_uv[None].astype(np.float32),
                    "msssim_weight": np.array(settings(model).get("msssim_weight", 0.0), np.float32)}
    y = {c: y_latents[c].astype(np.float32, copy=True) for c in ("luma", "chroma")}
    opt = {c: _Adam(lr) for c in y}
    best, best_loss, trace = b"", math.inf, []
    for step in range(int(iterations) + 1):
        data = code_latents(y["luma"], y["chroma"])
        lat = model.latent_model.decode(data, container.DEFAULT_MAX_PIXELS, model.threads, True)
        quality, psnr, ms_db, g_l, g_c = session.run(None, {"y_hat_luma": lat["y_hat"]["luma"][None],
                                                            "y_hat_chroma": lat["y_hat"]["chroma"][None],
                                                            **feeds_target})
        bpp = 8.0 * len(data) / npx
        loss = bpp / lam - float(quality[0])
        trace.append((bpp, float(psnr[0]), float(ms_db[0]), loss))
        if loss < best_loss:
            best, best_loss = data, loss
        if step == iterations:
            break
        grads = {"luma": -g_l[0], "chroma": -g_c[0]}  # the loss has −quality
        for comp in y:
            info = lat[comp]
            sigma = syn.sigma_from_log(info["log_sigma"])
            coded = info["index"] >= model.skip_threshold
            slope, _ = bits_gradient(info["residual"], sigma)
            gain = gains[comp].astype(np.float64)[:, None, None]
            grads[comp] = grads[comp] + (np.where(coded, slope, 0.0) * gain / (npx * lam)).astype(np.float32)
            y[comp] = opt[comp].step(y[comp], grads[comp])
    return best, trace
