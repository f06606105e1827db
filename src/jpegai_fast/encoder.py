"""Encoder: RGB -> codestream with the exported analysis graphs and the C++ latent domain.

Rate-independent work is done once per picture: colour and the analysis / hyper encoder graphs here, then
one C++ call (``LatentModel.prepare_encode``: integer hyper-scale decoder, hyper-mean decoder).  Each rate
trial is one more C++ call (``PreparedLatents.code``: indices, the luma context loop that makes the
residuals, entropy coding, the SOZ payload) and the container writer.  ``bpp=`` bisects over the rate
scale (rate point + Q7 gain displacement in the header) on the real coded size.

Rate scale and quality: the encoder's own scale is a float in [0, R−1] (R trained rate points; an integer is
that rate point, a fraction displaces the lower one's gains, :func:`scale_to_params`).  The public
``quality`` is 0–100 (the Pillow convention), mapped onto that scale piecewise linearly through one knot per
rate point (:func:`quality_table`): the knot of rate point r is round(100·ln(bpp_r / bpp_0) / ln(bpp_R−1 /
bpp_0)) with bpp_r the model card's measured Kodak mean, so quality is about linear in log bpp (each 10
points ≈ ×1.41 bpp on vr_bop).  Knots of the shipped models:

    rate point   0   1   2   3   4   5   6   7   8   9  10  11
    vr_bop       0  18  38  55  68  78  87 100                 (the default model)
    vm33         0  14  32  49  60  68  75  80  86  90  95 100

A model whose card has no Kodak figures gets knots linear in the rate point, round(100·r / (R−1)).  A knot
quality gives that trained rate point's stream exactly; ``rate_point=`` (an int) names one directly.

``encode(quality=...)`` with ``model="default"`` (also the CLI, ``encode_many`` and ``Image.save``) runs over
the shipped models together (:func:`default_ladder`): the rate points that ``model_for_bpp`` picks at their
own Kodak bpp, knots the same log-bpp rule over all of them —

    BOP   quality  0   9  23  35  44  49  58  61 | 70  79  88 100
          model    vm33 rate points 0 … 7       | vr_bop 4 … 7

(SOP adds vm33's rate point 8 at 66) — so quality below 70 encodes with vm33 (on 6 Kodak photos, quality 20:
0.097 bpp at 29.97 dB PSNR-YUV against vr_bop's 0.121 bpp at 27.85 dB; quality 50: 0.280 bpp / 32.42 dB
against 0.332 / 31.03).  An ``Encoder`` object holds one model and maps ``quality`` on that model's own table.
Default (no ``bpp`` / ``quality`` / ``rate_point``): rate point 4 (:data:`DEFAULT_RATE_POINT`) of the default
model vr_bop, quality 68 on its own table and 70 on the default ladder.
"""
from __future__ import annotations

import functools
import json
import math
import os
import pathlib
import warnings

import numpy as np
from numpy.typing import NDArray

from . import colour, container, entropy
from . import refine as refinement
from . import synthesis as syn
from .decoder import AUTO_TILE_PIXELS, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, MIN_TILE_SIZE
from .errors import LimitError, RateError, RateWarning
from .model import (
    COMPONENTS,
    DEFAULT_MODEL,
    MODELS_DIR,
    Model,
    available_models,
    kodak_rate_points,
    latent_model,
    model_for_bpp,
)

__all__ = ["Encoder", "encode", "scale_to_params", "quality_table", "quality_to_scale", "default_ladder",
           "default_quality", "header_tiling", "MODEL_ID",
           "ANALYSIS_OVERLAP", "DEFAULT_RATE_POINT"]

MODEL_ID = 1  # the header model id of the first model (vr_bop); each model's own is LatentModel.model_id
MAX_SIDE = 65536
QUALITY_BELOW, QUALITY_ABOVE = 4.0, 2.0  # how far bpp rate control may go past the trained rate points (scale)
DEFAULT_RATE_POINT = 4  # lambda 0.0113, about 0.58 bpp on Kodak (vr_bop); capped at the model's last rate point
OPS = {"sop": 0, "bop": 1}
MAX_REFINE = 10000  # refinement steps (each codes, decodes and differentiates the picture once)
# Analysis tiling (encoder memory): the analysis graphs see a stride-16 grid with a receptive field of
# about 60 luma samples, so 64 samples of overlap cover it (docs/stages.md, "Encoder").  Used whenever the
# synthesis is tiled, and for untiled streams above AUTO_TILE_PIXELS.
ANALYSIS_OVERLAP = 64
# Pictures with a side below SMALL_SIDE are coded SMALL_MARGIN samples larger on both sides (reflected) and cropped
# by the display window.  Measured (tools/small_pictures.py, rate point 7, 24 astronaut crops 1x64 ... 70x50):
# coded as is, down to 11.6 dB (1x64) against 41.0 dB for the same pixels inside the photo; with a margin of
# 16 / 32 / 64 the worst case is 0.64 / 0.68 / 0.55 dB below it (32: thin strips 0.6-0.8 dB better than 16).
SMALL_SIDE = 64
SMALL_MARGIN = 32


def scale_to_params(model: Model, scale: float, extended: bool = False) -> tuple[int, tuple[int, int]]:
    """Rate scale in [0, R−1] -> (rate point, (gain_log_luma, gain_log_chroma)) Q7 displacements.

    Integer scale = that rate point exactly; in between, the lower rate point displaced by the
    fraction of the mean Q7 gain gap to the next one (per component).  ``extended`` (rate control only)
    also maps [QUALITY_BELOW, 0) and (R−1, R−1+QUALITY_ABOVE] by displacing the end rate points with the
    end gaps, for targets outside the trained range."""
    r_max = model.num_rates - 1
    q = float(scale)
    lo, hi = (-QUALITY_BELOW, r_max + QUALITY_ABOVE) if extended else (0.0, float(r_max))
    if not (lo <= q <= hi):
        raise ValueError(f"rate scale must be in [0, {r_max}], got {scale!r}")
    rate = min(max(int(math.floor(q)), 0), r_max)
    frac = q - rate
    if frac == 0.0:
        return rate, (0, 0)
    a = min(rate, r_max - 1)  # the gap used: to the next rate point, or the last gap beyond the end
    disp_luma, disp_chroma = (int(round(frac * float(np.mean(model.gain_q7(c, a + 1).astype(np.int64)
                                                             - model.gain_q7(c, a)))))
                              for c in ("luma", "chroma"))
    return rate, (disp_luma, disp_chroma)


@functools.cache
def _card_knots(path: pathlib.Path, num_rates: int) -> tuple[int, ...]:
    linear = tuple(round(100 * r / (num_rates - 1)) for r in range(num_rates)) if num_rates > 1 else (100,)
    try:
        card = json.loads((path / "model_card.json").read_text())
        points = sorted((card.get("kodak_rd") or {}).get("points") or [], key=lambda p: int(p["rate"]))
        bpp = [float(p["bpp"]) for p in points]
        if [int(p["rate"]) for p in points] != list(range(num_rates)) or num_rates < 2 \
                or not all(0 < a < b for a, b in zip(bpp, bpp[1:])):
            return linear
    except (OSError, ValueError, KeyError, TypeError):
        return linear
    span = math.log(bpp[-1] / bpp[0])
    knots = tuple(round(100 * math.log(b / bpp[0]) / span) for b in bpp)
    return knots if all(a < b for a, b in zip(knots, knots[1:])) else linear


def quality_table(model: Model) -> tuple[int, ...]:
    """The quality (0–100) of each trained rate point of ``model``: knot r = round(100·ln(bpp_r / bpp_0) /
    ln(bpp_R−1 / bpp_0)) from its model card's Kodak figures (linear in r when it has none); starts at 0,
    ends at 100, strictly increasing.  vr_bop: (0, 18, 38, 55, 68, 78, 87, 100)."""
    return _card_knots(model.path, int(model.num_rates))


def quality_to_scale(model: Model, quality: float) -> float:
    """quality 0–100 -> the rate scale [0, R−1]: piecewise linear between the knots of :func:`quality_table`
    (monotone; a knot maps to its rate point exactly)."""
    q = _check_quality(quality)
    knots = quality_table(model)
    if len(knots) < 2:
        return 0.0
    r = int(np.searchsorted(knots, q, side="right")) - 1
    if r >= len(knots) - 1:
        return float(len(knots) - 1)
    return r + (q - knots[r]) / (knots[r + 1] - knots[r])


def _check_quality(quality) -> float:
    if isinstance(quality, (bool, np.bool_)) or not isinstance(quality, (int, float, np.integer, np.floating)):
        raise ValueError(f"quality must be a number in [0, 100], got {quality!r}")
    q = float(quality)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"quality must be in [0, 100], got {quality!r}")
    return q


def default_ladder(operating_point: str = "bop") -> tuple[tuple[int, str, int], ...]:
    """The quality ladder of ``model="default"``: (quality knot, model, rate point), by rate — every trained
    rate point of the shipped models that :func:`jpegai_fast.model.model_for_bpp` picks at its own Kodak bpp
    (the envelope of the measured curves: vm33 below about 0.48 bpp, vr_bop above), knots round(100·ln(bpp /
    bpp_first) / ln(bpp_last / bpp_first)) as in :func:`quality_table`.  Empty when fewer than two shipped
    rate points are measured or the knots do not increase (``quality`` then names the default model's own)."""
    if operating_point not in OPS:
        raise ValueError(f"operating_point must be 'bop' or 'sop', got {operating_point!r}")
    cards = tuple((n, (MODELS_DIR / n / "model_card.json").stat().st_mtime_ns
                   if (MODELS_DIR / n / "model_card.json").is_file() else 0) for n in available_models())
    return _default_ladder(operating_point, str(MODELS_DIR), cards)


@functools.lru_cache(maxsize=8)
def _default_ladder(operating_point: str, models_dir: str, cards: tuple) -> tuple[tuple[int, str, int], ...]:
    points = []  # (bpp, model, rate point)
    for name, _ in cards:
        if not all((MODELS_DIR / name / f"synthesis_{operating_point}_{c}.onnx").is_file() for c in COMPONENTS):
            continue
        points += [(b, name, r) for r, b in kodak_rate_points(name, operating_point)
                   if b > 0 and model_for_bpp(b, operating_point) == name]
    points.sort()
    if len(points) < 2 or not all(a[0] < b[0] for a, b in zip(points, points[1:])):
        return ()
    span = math.log(points[-1][0] / points[0][0])
    ladder = tuple((round(100 * math.log(b / points[0][0]) / span), n, r) for b, n, r in points)
    knots = [k for k, _, _ in ladder]
    return ladder if all(a < b for a, b in zip(knots, knots[1:])) else ()


def default_quality(quality: float, operating_point: str = "bop") -> tuple[str, float]:
    """``quality`` 0–100 of ``model="default"`` -> (the shipped model to encode with, the same target as a
    quality of that model's own table).  Piecewise linear in quality between the knots of
    :func:`default_ladder`, so each knot gives its (model, rate point) stream exactly; between two knots of one
    model, that model's rate scale in between; between the last knot of one model and the first of the next,
    the rate interpolated in log bpp, the model :func:`~jpegai_fast.model.model_for_bpp` picks there and its
    scale at that rate on its own card's curve.  Without a ladder: the default model, ``quality`` unchanged."""
    q = _check_quality(quality)
    ladder = default_ladder(operating_point)
    if not ladder:
        return DEFAULT_MODEL, q
    knots = [k for k, _, _ in ladder]
    i = min(max(int(np.searchsorted(knots, q, side="right")) - 1, 0), len(ladder) - 2)
    (qa, ma, ra), (qb, mb, rb) = ladder[i], ladder[i + 1]
    frac = (q - qa) / (qb - qa)
    if ma == mb:
        name, scale = ma, ra + frac * (rb - ra)
    else:
        curve = {n: dict((r, b) for r, b in kodak_rate_points(n, operating_point)) for n in (ma, mb)}
        ba, bb = curve[ma][ra], curve[mb][rb]
        bpp = math.exp(math.log(ba) + frac * math.log(bb / ba))
        name = model_for_bpp(bpp, operating_point)
        if name not in (ma, mb):
            name = ma if frac < 0.5 else mb
        rates = sorted(curve[name].items())
        scale = float(np.interp(math.log(bpp), [math.log(b) for _, b in rates], [r for r, _ in rates]))
        if frac == 0.0:
            name, scale = ma, float(ra)
    model_knots = _card_knots(MODELS_DIR / name, int(latent_model(MODELS_DIR / name).rate_points))
    r = min(int(math.floor(scale)), len(model_knots) - 1)
    if r >= len(model_knots) - 1:
        return name, float(model_knots[-1])
    return name, float(model_knots[r] + (scale - r) * (model_knots[r + 1] - model_knots[r]))


def _validate(rgb, max_pixels: int) -> np.ndarray:
    """-> the picture, C-contiguous: uint8 (H, W, 3) RGB, or (H, W) grey (also given as (H, W, 1))."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"expected a numpy uint8 array (H, W, 3) or grey (H, W), got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB or grey, got dtype {rgb.dtype}")
    if rgb.ndim == 3 and rgb.shape[2] == 1:
        rgb = rgb[:, :, 0]
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"expected shape (H, W, 3) or grey (H, W), got {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty picture {rgb.shape}")
    if h > MAX_SIDE or w > MAX_SIDE or h * w > max_pixels:
        raise LimitError(f"picture {w}x{h} exceeds the limits (side <= {MAX_SIDE}, pixels <= {max_pixels})",
                         "max_pixels")
    return np.ascontiguousarray(rgb)


def _analyse(model: Model, y: np.ndarray, uv: np.ndarray | None, latent_hw, tile: int = 0,
             overlap: int = ANALYSIS_OVERLAP, rate: int = 0):
    """Analysis graphs (those of rate point ``rate``: Model.analysis_graph) -> y latents {comp: float32
    [C,Hl,Wl]} (``uv`` None: monochrome, luma only);
    ``tile`` > 0 (luma samples, multiple of 16):
    tile by tile on the latent grid, each tile's input extended by ``overlap`` samples on every side
    with picture there and the extension's latents cropped (bounded memory for large pictures).  The
    analysis is the encoder's choice (any latent makes a valid stream); measured on kodim01 with 256-sample
    tiles, an overlap of 32 or 64 gives a stream of the same size and PSNR as the untiled analysis."""
    hl, wl = latent_hw
    hp, wp = y.shape
    t = tile // syn.LATENT_STRIDE
    comps = ("luma",) if uv is None else ("luma", "chroma")
    if not tile or (t >= hl and t >= wl) or (uv is not None and model.grid["chroma"] != syn.LATENT_STRIDE):
        # (a model whose chroma latent is on a coarser grid is analysed whole: tiles not yet supported)
        whole = {"luma": model.run(model.analysis_graph("luma", rate), image_y=y[None, None])[0]}
        if uv is not None:
            whole["chroma"] = model.run(model.analysis_graph("chroma", rate), image_y=y[None, None],
                                        image_uv=uv[None])[0]
        return whole
    s, o = syn.LATENT_STRIDE, overlap // syn.LATENT_STRIDE
    out = {comp: np.empty((model.channels[comp], hl, wl), np.float32) for comp in comps}
    for iy0, iy1, cy0, cy1 in syn.tile_spans(hl, t, o):
        py0, py1 = s * iy0, min(s * iy1, hp)
        for ix0, ix1, cx0, cx1 in syn.tile_spans(wl, t, o):
            px0, px1 = s * ix0, min(s * ix1, wp)
            yt = y[py0:py1, px0:px1][None, None]
            core = (slice(None), slice(cy0 - iy0, cy1 - iy0), slice(cx0 - ix0, cx1 - ix0))
            out["luma"][:, cy0:cy1, cx0:cx1] = model.run(model.analysis_graph("luma", rate), image_y=yt)[0][core]
            if uv is not None:
                uvt = uv[:, py0 // 2:py1 // 2, px0 // 2:px1 // 2][None]
                out["chroma"][:, cy0:cy1, cx0:cx1] = model.run(model.analysis_graph("chroma", rate), image_y=yt,
                                                               image_uv=uvt)[0][core]
    return out


def pre_emphasise(model: Model, y: np.ndarray, uv: np.ndarray | None, lat: dict,
                   beta: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The picture the second analysis pass sees: x + beta * (x - S(A(x))), per plane, where S(A(x)) is the first
    pass' latent ``lat`` synthesised unquantised (BOP, clamped to 0-255).  The amortised analysis leaves detail out
    of the latent that the synthesis could use; the picture with that detail boosted gets more of it in.  Encoder
    only: any latent makes a valid stream.  Measured (training/README.md, "Pre-emphasis"): vm33's high-rate points
    +0.05 ... +0.12 dB PSNR-YUV at 1-2 % less rate, beta 0.3; two passes gain nothing more, beta 0.5 less."""
    op = "bop" if "bop" in model.operating_points else model.operating_points[0]
    rec_y, rec_uv = syn.synthesise_tiled(model, lat["luma"], lat.get("chroma") if uv is not None else None,
                                         y.shape, op)
    y2 = (y + np.float32(beta) * (y - np.clip(rec_y, 0, 255))).astype(np.float32)
    if uv is None:
        return y2, None
    uv2 = (uv + np.float32(beta) * (uv - np.clip(rec_uv, 0, 255))).astype(np.float32)
    return y2, uv2


class _Analysis:
    """The rate-independent part of one picture (for the rate points of one analysis graph: ``rate``'s, see
    Model.analysis_graph): the float graphs here, the integer part in C++.  A grey (H, W) picture is monochrome
    (4:0:0): its samples are the luma plane, and no chroma is analysed or coded."""

    def __init__(self, model: Model, rgb: np.ndarray, analysis_tile: int = 0, keep: bool = False, rate: int = 0,
                 pre_emphasis: float = 0.0):
        """keep: hold the coded picture's planes, latents and z for latent refinement (``refine=``).
        pre_emphasis: beta of :func:`pre_emphasise` for the high-rate analysis' rate points (0: one pass)."""
        self.image_hw = rgb.shape[:2]
        self.monochrome = rgb.ndim == 2
        h, w = self.image_hw
        # A picture with a side below SMALL_SIDE lies wholly on the codec's border: it is coded reflected into
        # SMALL_MARGIN more rows and columns (bottom/right) and the stream's display window (DWS) crops it back.
        # Both sides, not only the short one: with a 5x120 crop the right border alone cost 2.3-4.7 dB.
        small = min(h, w) < SMALL_SIDE
        ch, cw = (h + SMALL_MARGIN, w + SMALL_MARGIN) if small else (h, w)
        self.coded_hw = (ch, cw)
        pad = ((0, ch - h), (0, cw - w)) + ((0, 0),) * (rgb.ndim - 2)
        padded = np.pad(rgb, pad, mode="symmetric") if (ch, cw) != (h, w) else rgb
        if ch % 2 or cw % 2:  # 4:2:0 needs even sides: one more edge sample, cropped by the decoder
            padded = np.pad(padded, ((0, ch % 2), (0, cw % 2)) + ((0, 0),) * (rgb.ndim - 2), mode="edge")
        y, uv = (padded.astype(np.float32), None) if self.monochrome else colour.rgb_to_yuv420(padded)
        del padded
        latent_hw = model.latent_size("luma", self.coded_hw)
        lat = _analyse(model, y, uv, latent_hw, analysis_tile, rate=rate)
        if pre_emphasis and model.analysis_hi_from is not None and rate >= model.analysis_hi_from:
            y_e, uv_e = pre_emphasise(model, y, uv, lat, pre_emphasis)
            lat = _analyse(model, y_e, uv_e, latent_hw, analysis_tile, rate=rate)
            del y_e, uv_e
        self.planes: tuple[np.ndarray, np.ndarray | None] | None = (y, uv) if keep else None
        del y, uv
        z_hat: dict[str, np.ndarray] = {}
        for comp in lat:
            z = model.run(f"hyper_encoder_{comp}", y=lat[comp][None])[0]
            z_hat[comp] = np.round(np.clip(z, -model.z_offset, model.z_offset)).astype(np.int16)  # half to even
        self.latents: dict[str, np.ndarray] = lat if keep else {}
        self.z_hat: dict[str, np.ndarray] = z_hat if keep else {}
        self.prepared = model.latent_model.prepare_encode(ch, cw, z_hat["luma"], z_hat.get("chroma"), lat["luma"],
                                                          lat.get("chroma"), threads=model.threads)

    def with_latents(self, model: Model, y_luma: np.ndarray, y_chroma: np.ndarray):
        """The C++ preparation of other luma / chroma latents under this picture's z (latent refinement)."""
        return model.latent_model.prepare_encode(*self.coded_hw, self.z_hat["luma"], self.z_hat["chroma"],
                                                 y_luma, y_chroma, threads=model.threads)


def header_tiling(image_hw, tile_size: int | None = None, tile_overlap: int | None = None) -> tuple[int, int]:
    """(tile_size, tile_overlap) the encoder writes into the header (luma samples; 0 = untiled).

    ``tile_size=None``: DEFAULT_TILE_SIZE / DEFAULT_TILE_OVERLAP when the picture is larger than one
    such tile, else untiled (so small pictures' streams are unchanged); 0: untiled; else a multiple of
    16 in [64, 65536] (a smaller tile cannot hold the overlap synthesis needs: tile 16 lost ~6 dB).
    ``tile_overlap=None``: DEFAULT_TILE_OVERLAP, reduced below the tile if needed."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if tile_size is None:
        if max(h, w) <= DEFAULT_TILE_SIZE:
            return 0, 0
        tile_size = DEFAULT_TILE_SIZE
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 0 \
            or tile_size % 16 or tile_size > MAX_SIDE or 0 < tile_size < MIN_TILE_SIZE:
        raise ValueError(f"tile_size must be 0 or a multiple of 16 in [{MIN_TILE_SIZE}, {MAX_SIDE}], "
                         f"got {tile_size!r}")
    if tile_size == 0:
        if tile_overlap:
            raise ValueError("tile_overlap needs a tile_size")
        return 0, 0
    if tile_overlap is None:
        tile_overlap = min(DEFAULT_TILE_OVERLAP, tile_size - 16)
    if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, (int, np.integer)) or tile_overlap < 0 \
            or tile_overlap % 16 or tile_overlap >= tile_size:
        raise ValueError(f"tile_overlap must be a multiple of 16 below tile_size, got {tile_overlap!r}")
    return int(tile_size), int(tile_overlap)


class Encoder:
    """Holds one model and its sessions; :meth:`encode` as the module-level :func:`encode`, within that model:
    ``quality`` maps onto its own table (:func:`quality_table`) and ``bpp`` rate control stays in it, where
    ``encode(model="default")`` picks the shipped model per target (:func:`default_quality`,
    :func:`jpegai_fast.model.model_for_bpp`)."""

    def __init__(self, model: str | os.PathLike[str] | Model = "default", device: str = "cpu",
                 threads: int | None = None, max_pixels: int = container.DEFAULT_MAX_PIXELS,
                 pre_emphasis: float | None = None):
        """pre_emphasis: beta of the high-rate analysis' second pass (:func:`pre_emphasise`); None: the model
        card's (``analysis_hi_pre_emphasis``), 0: one pass."""
        self.model = model if isinstance(model, Model) else Model(model, device=device, threads=threads)
        self.max_pixels = int(max_pixels)
        if pre_emphasis is not None and (isinstance(pre_emphasis, bool) or not isinstance(pre_emphasis, (int, float))
                                         or not 0.0 <= pre_emphasis <= 1.0):
            raise ValueError(f"pre_emphasis must be a number in [0, 1] or None, got {pre_emphasis!r}")
        self.pre_emphasis = self.model.pre_emphasis if pre_emphasis is None else float(pre_emphasis)
        self._requested_pre_emphasis = pre_emphasis
        self.last_trials: list[tuple[float, float]] = []  # (rate scale, bpp) of the latest rate control
        self.last_refinement: list[tuple[float, ...]] = []  # (bpp, PSNR-YUV, MS-SSIM dB, loss) per refinement step
        self._last_scale = 0.0
        self._requested_threads = threads

    def __getstate__(self) -> dict:  # picklable: constructor arguments; sessions are re-made in the worker
        return {"model": str(self.model.path), "device": self.model.device, "threads": self._requested_threads,
                "max_pixels": self.max_pixels, "pre_emphasis": self._requested_pre_emphasis}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _code(self, an: _Analysis, rate: int, disp, op: str, substreams: int, tiling=(0, 0), prepared=None) -> bytes:
        m = self.model
        if an.monochrome:
            disp = (disp[0], 0)  # 4:0:0: the header's chroma fields are 0
        gains = [None if d == 0 else syn.gain(m, comp, rate, d) for comp, d in zip(("luma", "chroma"), disp)]
        soz, sorp, sors = (prepared or an.prepared).code(rate, int(disp[0]), int(disp[1]), gains[0], gains[1],
                                                         substreams=substreams, threads=m.threads)
        segs = {"SOZ": soz, "SORP": sorp} if an.monochrome else {"SOZ": soz, "SORP": sorp, "SORS": sors}
        hd = container.PictureHeader()
        hd.height, hd.width = an.coded_hw
        hd.bit_depth, hd.chroma_format, hd.colour_transform = 8, 0 if an.monochrome else 1, 1
        hd.model_id, hd.operating_point, hd.rate_point = m.latent_model.model_id, OPS[op], rate
        hd.gain_log_luma, hd.gain_log_chroma = int(disp[0]), int(disp[1])
        hd.latent_channels_luma = hd.coded_channels_luma = m.channels["luma"]
        hd.latent_channels_chroma = m.channels["chroma"]
        hd.coded_channels_chroma = 0 if an.monochrome else m.channels["chroma"]
        hd.tile_size, hd.tile_overlap = tiling
        if an.coded_hw != an.image_hw:
            segs["DWS"] = container.write_display_window(hd, an.image_hw[1], an.image_hw[0])
        return container.write(hd, segs)

    def encode(self, rgb: NDArray[np.uint8], bpp: float | None = None, quality: float | None = None,
               rate_point: int | None = None, operating_point: str = "bop", substreams: int = 1,
               tile_size: int | None = None, tile_overlap: int | None = None, strict: bool = False,
               exif: bytes | None = None, icc_profile: bytes | None = None, xmp: bytes | str | None = None,
               refine: int = 0) -> bytes:
        """See the module-level :func:`encode`.  ``strict``: a ``bpp`` target the model cannot reach (tiny
        pictures, targets below its smallest stream) raises :class:`RateError` instead of warning."""
        rgb = _validate(rgb, self.max_pixels)
        refine = self._check_refine(rgb, refine, operating_point)
        mds = container.write_metadata({"exif": exif, "icc_profile": icc_profile, "xmp": xmp})
        data = self._encode(rgb, bpp, quality, rate_point, operating_point, substreams, tile_size, tile_overlap, strict,
                            refine)
        if mds is None:
            return data
        # the metadata segment comes right after the header; it is not counted by the rate control (bpp)
        header, segs = container.parse(data, self.max_pixels)
        return container.write(header, {"MDS": mds, **segs})

    def _check_refine(self, rgb: np.ndarray, refine, op) -> int:
        if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or not 0 <= refine <= MAX_REFINE:
            raise ValueError(f"refine must be an int in [0, {MAX_REFINE}] (refinement steps), got {refine!r}")
        if not refine:
            return 0
        if not refinement.available(self.model, op):
            raise ValueError(f"refine: model {self.model.name} ships no picture_gradient_{op}.onnx (encoder-side "
                             "refinement needs a VM-style synthesis; training/synthesis_vjp.py writes it)")
        if rgb.shape[0] * rgb.shape[1] > refinement.MAX_PIXELS:
            raise LimitError(f"refine: the picture has {rgb.shape[0] * rgb.shape[1]} pixels, more than the "
                             f"{refinement.MAX_PIXELS} that latent refinement synthesises at once", "refine")
        if rgb.ndim == 2:
            warnings.warn("refine: monochrome pictures are not refined", RuntimeWarning, stacklevel=3)
            return 0
        if min(rgb.shape[:2]) < refinement.MIN_SIDE:  # (a small picture's coded margin keeps it below, too)
            warnings.warn(f"refine: pictures with a side below {refinement.MIN_SIDE} are not refined",
                          RuntimeWarning, stacklevel=3)
            return 0
        return int(refine)

    def _refined(self, an: _Analysis, scale: float, extended: bool, op: str, substreams: int, tiling,
                 steps: int) -> bytes:
        """The stream of rate scale ``scale`` with ``steps`` steps of latent refinement (jpegai_fast.refine)."""
        m = self.model
        rate, disp = scale_to_params(m, scale, extended=extended)
        gains = {comp: syn.gain(m, comp, rate, d) for comp, d in zip(("luma", "chroma"), disp)}
        code = lambda y_l, y_c: self._code(an, rate, disp, op, substreams, tiling,  # noqa: E731
                                           prepared=an.with_latents(m, y_l, y_c))
        assert an.planes is not None  # kept for refinement (colour pictures only)
        y, uv = an.planes
        assert uv is not None
        data, self.last_refinement = refinement.refine(m, code, an.latents, gains, y, uv,
                                                       refinement.rate_lambda(m, scale), op, steps)
        return data

    def _encode(self, rgb: np.ndarray, bpp, quality, rate_point, operating_point, substreams, tile_size,
                tile_overlap, strict, refine=0) -> bytes:
        tiling = header_tiling(rgb.shape[:2], tile_size, tile_overlap)
        if operating_point not in OPS:
            raise ValueError(f"operating_point must be 'bop' or 'sop', got {operating_point!r}")
        if not 1 <= int(substreams) <= entropy.MAX_SUBSTREAMS:
            raise ValueError(f"substreams must be in [1, {entropy.MAX_SUBSTREAMS}]")
        if sum(v is not None for v in (bpp, quality, rate_point)) > 1:
            raise ValueError("give at most one of bpp, quality, rate_point")
        m = self.model
        scale = float(min(DEFAULT_RATE_POINT, m.num_rates - 1))  # the rate scale (module docstring)
        if rate_point is not None:
            if int(rate_point) != rate_point or not 0 <= rate_point < m.num_rates:
                raise ValueError(f"rate_point must be an integer in [0, {m.num_rates - 1}]")
            scale = float(rate_point)
        elif quality is not None:
            scale = quality_to_scale(m, quality)
        if bpp is not None:
            bpp = float(bpp)
            if not (math.isfinite(bpp) and bpp > 0):
                raise ValueError(f"bpp must be a positive number, got {bpp!r}")
        big = rgb.shape[0] * rgb.shape[1] > AUTO_TILE_PIXELS
        analyses: dict[str, _Analysis] = {}  # one per analysis graph the rate control visits

        def analysed(s: float) -> _Analysis:
            rate = scale_to_params(m, s, extended=bpp is not None)[0]
            graph = m.analysis_graph("luma", rate)
            if graph not in analyses:
                analyses[graph] = _Analysis(m, rgb, analysis_tile=tiling[0] or (DEFAULT_TILE_SIZE if big else 0),
                                            keep=bool(refine), rate=rate, pre_emphasis=self.pre_emphasis)
            return analyses[graph]

        code = lambda s: self._code(analysed(s), *scale_to_params(m, s, extended=bpp is not None),  # noqa: E731
                                    operating_point, int(substreams), tiling)
        if bpp is None:
            if refine:
                return self._refined(analysed(scale), scale, False, operating_point, int(substreams), tiling, refine)
            return code(scale)
        data = self._rate_control(code, bpp, rgb.shape[0] * rgb.shape[1])
        if refine:  # refined at the scale the rate control chose; kept only when it still meets the target
            refined = self._refined(analysed(self._last_scale), self._last_scale, True, operating_point,
                                    int(substreams), tiling, refine)
            if 8 * len(refined) / (rgb.shape[0] * rgb.shape[1]) <= bpp:
                data = refined
        got = 8 * len(data) / (rgb.shape[0] * rgb.shape[1])
        if got > bpp:  # the rate control never exceeds a reachable target: say so when it cannot reach it
            msg = (f"bpp target {bpp:g} cannot be reached for this {rgb.shape[1]}x{rgb.shape[0]} picture: the smallest "
                   f"stream of model {m.name} is {got:.4g} bpp (header, z and the lowest gain)")
            if strict:
                raise RateError(msg, "bpp")
            warnings.warn(msg, RateWarning, stacklevel=3)
        return data

    def _rate_control(self, code, target: float, pixels: int) -> bytes:
        """Largest rate scale whose stream is at most ``target`` bpp; stops once within [0.9, 1.0]·target.
        Bisection over the extended rate scale; a target below the smallest stream the model can make
        (header + z + the lowest gain) gets that smallest stream, one above the largest gets the largest."""
        trials = self.last_trials = []
        cache: dict[float, bytes] = {}

        def size(q):
            if q not in cache:
                cache[q] = code(q)
                trials.append((q, 8 * len(cache[q]) / pixels))
            return 8 * len(cache[q]) / pixels

        lo, hi = -QUALITY_BELOW, float(self.model.num_rates - 1) + QUALITY_ABOVE
        self._last_scale = hi
        if size(hi) <= target:
            return cache[hi]
        self._last_scale = lo
        if size(lo) > target:
            return cache[lo]
        for _ in range(16):  # bpp is close to linear in log gain: a dozen halvings reach the 10 % window
            if size(lo) >= 0.9 * target:
                break
            mid = 0.5 * (lo + hi)
            if size(mid) <= target:
                lo = mid
            else:
                hi = mid
        self._last_scale = lo
        return cache[lo]


_ENCODERS: dict = {}


def encode(rgb: NDArray[np.uint8], bpp: float | None = None, quality: float | None = None,
           rate_point: int | None = None, operating_point: str = "bop", substreams: int = 1,
           threads: int | None = None, model: str | os.PathLike[str] | Model = "default", device: str = "cpu",
           tile_size: int | None = None, tile_overlap: int | None = None, strict: bool = False,
           exif: bytes | None = None, icc_profile: bytes | None = None, xmp: bytes | str | None = None,
           refine: int = 0) -> bytes:
    """uint8 RGB (H, W, 3) -> codestream bytes; a grey uint8 (H, W) array is coded monochrome (4:0:0: luma only,
    decoded with R = G = B).

    ``bpp``: target bits per pixel of the whole stream (never above it when reachable, within 10 % below; an
    unreachable target gives the smallest stream with a :class:`RateWarning`, or :class:`RateError` with
    ``strict=True``);
    ``quality``: 0–100 (Pillow's convention), monotone in the rate, about linear in log bpp; each trained rate
    point sits at a knot (``model="default"``: the shipped models' ladder, vm33 at 0, 9, 23, 35, 44, 49, 58, 61
    and vr_bop at 70, 79, 88, 100, :func:`default_ladder`; a named model: its own, :func:`quality_table`);
    ``rate_point``: an int, a trained rate point exactly.  Default: vr_bop's rate point 4 (quality 70).
    ``tile_size`` / ``tile_overlap``: the synthesis tiling written into the header
    (:func:`header_tiling`; default 1024 / 48 for pictures larger than one tile, else untiled); the
    analysis is tiled the same way.  ``model="default"`` with ``bpp``: the shipped model measured best at that
    rate (:func:`jpegai_fast.model.model_for_bpp`); with ``quality``: the default ladder's model and rate
    (:func:`default_quality`); with ``rate_point``: the default model's rate point.  ``exif`` / ``icc_profile``
    / ``xmp``: metadata stored unchanged in the MDS
    segment (each at most 16 MiB; XMP as bytes or str), returned by ``decode(..., with_metadata=True)``; it is
    not counted by ``bpp`` rate control.  ``refine``: steps of encoder-side latent refinement
    (:mod:`jpegai_fast.refine`; 0 = off; 10 steps took the whole measured gain, −5.5 % BD-rate PSNR-YUV on 6 Kodak
    photos): a better picture per bit from the same decoder, each step about one
    more synthesis forward and backward pass plus a latent code/decode (vm33 only; pictures up to
    ``refine.MAX_PIXELS``; with ``bpp`` the refined stream is kept only when it still meets the target).
    Raises ValueError on bad input, LimitError on absurd sizes."""
    if isinstance(model, str) and model == "default" and bpp is not None:
        model = model_for_bpp(float(bpp), operating_point)
    elif isinstance(model, str) and model == "default" and quality is not None and rate_point is None:
        model, quality = default_quality(quality, operating_point)  # the default ladder spans the shipped models
    key = (str(model), device, threads)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(model, device, threads)
    return _ENCODERS[key].encode(rgb, bpp=bpp, quality=quality, rate_point=rate_point,
                                 operating_point=operating_point, substreams=substreams, tile_size=tile_size,
                                 tile_overlap=tile_overlap, strict=strict, exif=exif, icc_profile=icc_profile, xmp=xmp,
                                 refine=refine)
