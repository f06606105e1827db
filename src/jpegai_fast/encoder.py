"""Encoder: RGB -> codestream with the exported analysis graphs and the C++ entropy coder.

Rate-independent work (colour, analysis, hyper encoder, z quantisation, hyper decoder, integer
hyper-scale decoder) is done once per picture; each rate trial only re-runs the gain-dependent part
(indices, the luma context loop that makes the residuals, entropy coding).  ``bpp=`` bisects over
``quality`` (rate point + Q7 gain displacement in the header) on the real coded size.
"""
from __future__ import annotations

import math

import numpy as np

from . import colour, container, entropy, reconstruction as rec
from .errors import LimitError
from .model import Model

__all__ = ["Encoder", "encode", "quality_to_params", "MODEL_ID"]

MODEL_ID = 1  # as the reference codec writes it
MAX_SIDE = 65536
QUALITY_BELOW, QUALITY_ABOVE = 4.0, 2.0  # how far bpp rate control may go past the trained rate points
OPS = {"sop": 0, "bop": 1}


def _ue_bytes(v: int) -> bytes:
    """ue(v) MSB-first, zero bits to a byte boundary (the SOZ luma-length prefix)."""
    v += 1
    n = v.bit_length()
    bits = "0" * (n - 1) + format(v, "b")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def quality_to_params(model: Model, quality: float, extended: bool = False) -> tuple[int, tuple[int, int]]:
    """quality in [0, R−1] -> (rate point, (gain_log_luma, gain_log_chroma)) Q7 displacements.

    Integer quality = that rate point exactly; in between, the lower rate point displaced by the
    fraction of the mean Q7 gain gap to the next one (per component).  ``extended`` (rate control only)
    also maps [QUALITY_BELOW, 0) and (R−1, R−1+QUALITY_ABOVE] by displacing the end rate points with the
    end gaps, for targets outside the trained range."""
    r_max = model.num_rates - 1
    q = float(quality)
    lo, hi = (-QUALITY_BELOW, r_max + QUALITY_ABOVE) if extended else (0.0, float(r_max))
    if not (lo <= q <= hi):
        raise ValueError(f"quality must be in [0, {r_max}], got {quality!r}")
    rate = min(max(int(math.floor(q)), 0), r_max)
    frac = q - rate
    if frac == 0.0:
        return rate, (0, 0)
    a = min(rate, r_max - 1)  # the gap used: to the next rate point, or the last gap beyond the end
    disp = tuple(int(round(frac * float(np.mean(model.gain_q7(c, a + 1).astype(np.int64)
                                                - model.gain_q7(c, a)))))
                 for c in ("luma", "chroma"))
    return rate, disp


def _validate(rgb, max_pixels: int) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"expected a numpy uint8 array (H, W, 3), got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected shape (H, W, 3), got {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty picture {rgb.shape}")
    if h > MAX_SIDE or w > MAX_SIDE or h * w > max_pixels:
        raise LimitError(f"picture {w}x{h} exceeds the limits (side <= {MAX_SIDE}, pixels <= {max_pixels})",
                         "max_pixels")
    return np.ascontiguousarray(rgb)


class _Analysis:
    """The rate-independent part of one picture."""

    def __init__(self, model: Model, rgb: np.ndarray):
        self.image_hw = rgb.shape[:2]
        h, w = self.image_hw
        # 4:2:0 needs even sides; edge padding is cropped on decode (the latent size is unchanged).
        padded = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        y, uv = colour.rgb_to_yuv420(padded)
        self.latent_hw = rec.latent_size(self.image_hw)
        lat = {"luma": model.run("analysis_luma", image_y=y[None, None])[0],
               "chroma": model.run("analysis_chroma", image_y=y[None, None], image_uv=uv[None])[0]}
        self.y, self.z_hat, self.psi, self.s = lat, {}, {}, {}
        for comp in ("luma", "chroma"):
            z = model.run(f"hyper_encoder_{comp}", y=lat[comp][None])[0]
            z_hat = np.round(np.clip(z, -model.z_offset, model.z_offset)).astype(np.int16)  # half to even
            self.z_hat[comp] = np.ascontiguousarray(z_hat)
            self.s[comp] = model.hsd(comp).forward(self.z_hat[comp], *self.latent_hw, threads=model.threads)
            self.psi[comp] = rec.hyper_decoder(model, comp, z_hat, self.latent_hw)


class Encoder:
    """Holds the model and its sessions; :meth:`encode` as the module-level :func:`encode`."""

    def __init__(self, model="default", device: str = "cpu", threads: int | None = None,
                 max_pixels: int = container.DEFAULT_MAX_PIXELS):
        self.model = model if isinstance(model, Model) else Model(model, device=device, threads=threads)
        self.max_pixels = int(max_pixels)
        self.last_trials: list[tuple[float, float]] = []  # (quality, bpp) of the latest rate control

    def _code(self, an: _Analysis, rate: int, disp, op: str, substreams: int) -> bytes:
        m = self.model
        segs_res = {}
        for k, (comp, seg) in enumerate((("luma", "SORP"), ("chroma", "SORS"))):
            idx = entropy.scale_index_map(an.s[comp], m.gain_q7(comp, rate).astype(np.int32) + disp[k],
                                          m.skip_threshold)
            g = rec.gain(m, comp, rate, disp[k])
            if comp == "luma":
                _, r = rec.luma_stages(m, an.psi[comp], idx, g, y=an.y[comp])
            else:
                _, r = rec.chroma(an.psi[comp], idx, g, y=an.y[comp])
            r = np.clip(r, -32768, 32767).astype(np.int16)
            segs_res[seg] = entropy.encode_residual(r, idx, substreams=substreams, threads=m.threads)
        zpay = [entropy.FactorizedModel(m.blob[f"zcdf.{comp}"], m.z_offset).encode(
            an.z_hat[comp], substreams=substreams, threads=m.threads) for comp in ("luma", "chroma")]
        segs = {"SOZ": _ue_bytes(len(zpay[0])) + zpay[0] + zpay[1], **segs_res}
        hd = container.PictureHeader()
        hd.height, hd.width = an.image_hw
        hd.bit_depth, hd.chroma_format, hd.colour_transform = 8, 1, 1
        hd.model_id, hd.operating_point, hd.rate_point = MODEL_ID, OPS[op], rate
        hd.gain_log_luma, hd.gain_log_chroma = int(disp[0]), int(disp[1])
        hd.latent_channels_luma = hd.coded_channels_luma = m.channels["luma"]
        hd.latent_channels_chroma = hd.coded_channels_chroma = m.channels["chroma"]
        hd.tile_size = hd.tile_overlap = 0
        return container.write(hd, segs)

    def encode(self, rgb, bpp: float | None = None, quality: float | None = None, rate_point: int | None = None,
               operating_point: str = "bop", substreams: int = 1) -> bytes:
        rgb = _validate(rgb, self.max_pixels)
        if operating_point not in OPS:
            raise ValueError(f"operating_point must be 'bop' or 'sop', got {operating_point!r}")
        if not 1 <= int(substreams) <= entropy.MAX_SUBSTREAMS:
            raise ValueError(f"substreams must be in [1, {entropy.MAX_SUBSTREAMS}]")
        if sum(v is not None for v in (bpp, quality, rate_point)) > 1:
            raise ValueError("give at most one of bpp, quality, rate_point")
        m = self.model
        if rate_point is not None:
            if int(rate_point) != rate_point or not 0 <= rate_point < m.num_rates:
                raise ValueError(f"rate_point must be an integer in [0, {m.num_rates - 1}]")
            quality = float(rate_point)
        if bpp is not None:
            bpp = float(bpp)
            if not (math.isfinite(bpp) and bpp > 0):
                raise ValueError(f"bpp must be a positive number, got {bpp!r}")
        elif quality is None:
            quality = float(min(3, m.num_rates - 1))
        an = _Analysis(m, rgb)
        code = lambda q: self._code(an, *quality_to_params(m, q, extended=bpp is not None),  # noqa: E731
                                    operating_point, int(substreams))
        if bpp is None:
            return code(quality)
        return self._rate_control(code, bpp, rgb.shape[0] * rgb.shape[1])

    def _rate_control(self, code, target: float, pixels: int) -> bytes:
        """Largest quality whose stream is at most ``target`` bpp; stops once within [0.9, 1.0]·target.
        Bisection over the extended quality range; a target below the smallest stream the model can make
        (header + z + the lowest gain) gets that smallest stream, one above the largest gets the largest."""
        trials = self.last_trials = []
        cache: dict[float, bytes] = {}

        def size(q):
            if q not in cache:
                cache[q] = code(q)
                trials.append((q, 8 * len(cache[q]) / pixels))
            return 8 * len(cache[q]) / pixels

        lo, hi = -QUALITY_BELOW, float(self.model.num_rates - 1) + QUALITY_ABOVE
        if size(hi) <= target:
            return cache[hi]
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
        return cache[lo]


_ENCODERS: dict = {}


def encode(rgb, bpp: float | None = None, quality: float | None = None, rate_point: int | None = None,
           operating_point: str = "bop", substreams: int = 1, threads: int | None = None, model="default",
           device: str = "cpu") -> bytes:
    """uint8 RGB (H, W, 3) -> codestream bytes.

    ``bpp``: target bits per pixel of the whole stream (never above it; within 10 % below when reachable);
    ``quality``: float in [0, rate points − 1] (integer = a trained rate point); ``rate_point``: an int.
    Default: quality 3.  Raises ValueError on bad input, LimitError on absurd sizes."""
    key = (str(model), device, threads)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(model, device, threads)
    return _ENCODERS[key].encode(rgb, bpp=bpp, quality=quality, rate_point=rate_point,
                                 operating_point=operating_point, substreams=substreams)
