"""Decoder: codestream -> ŷ (compressed domain) -> RGB / YUV pixels, with per-stage timings.

The pipeline is three hops (docs/architecture.md): the whole latent domain in one C++ call
(``_core.LatentModel.decode``: container, z, hyper-scale decoder, indices, residuals, fixed-point hyper-mean
decoder, context model, ŷ), the synthesis graphs in ONNX Runtime (sessions created once per Decoder), and
the colour conversion in numpy.
"""
from __future__ import annotations

import os
import pathlib
import time
from typing import Literal, TypeAlias, TypedDict, overload

import numpy as np
from numpy.typing import NDArray

from . import _core, container, synthesis
from .errors import BitstreamError
from .model import OPERATING_POINTS, Model, check_precision, providers_for, shipped_model_for_id

__all__ = ["Decoder", "Latents", "Metadata",
           "decode", "header_dict", "read_input", "synthesis_tiling", "STAGES", "DEFAULT_TILE_SIZE",
           "DEFAULT_TILE_OVERLAP", "AUTO_TILE_PIXELS"]

# Stage names of ``Decoder.last_timing`` (seconds), in decode order; "total" is the whole call.
# The latent stages run inside the one C++ call (steady_clock); key in its "seconds" -> stage name.
_LATENT_TIMERS = {"parse": "parse", "z": "z", "hyper_scale": "hyper-scale", "residual": "residual",
                  "hyper_decoder": "hyper decoder", "context": "context"}
LATENT_STAGES = tuple(_LATENT_TIMERS.values())
# "other": the Python glue between the timed stages (tiling set-up, array hand-over), so the stages add up to the
# total exactly instead of leaving an unexplained remainder that grows when the machine is busy
STAGES = LATENT_STAGES + ("synthesis", "colour", "other")

# Synthesis tiling (docs/bitstream.md §2): luma samples, multiples of 16.  The overlap covers the
# synthesis graphs' receptive field (about 4 latent samples each way): measured on kodim01 with 256-sample
# tiles, 48 gives the untiled 8-bit pixels exactly (16: within 0.002 dB; docs/stages.md, row 6).
DEFAULT_TILE_SIZE = 1024
DEFAULT_TILE_OVERLAP = 48
AUTO_TILE_PIXELS = 1 << 22  # untiled streams above ~4 MP are tiled anyway (bounded decoder memory)
MIN_TILE_SIZE = 64  # the smallest tile that holds the default overlap (48) plus one latent row

COMPONENTS = ("luma", "chroma")

# What decode() reads a codestream from (:func:`read_input`): bytes-like, a 1-D uint8 array, or a file path.
StreamInput: TypeAlias = "bytes | bytearray | memoryview | NDArray[np.uint8] | str | os.PathLike[str]"
# Decoder.decode(output="yuv"): {"Y": float32 [H,W], "UV": float32 [2,ceil(H/2),ceil(W/2)]}
YuvPlanes: TypeAlias = "dict[str, NDArray[np.float32]]"
# decode(..., with_metadata=True) -> (pixels, {"exif" / "icc_profile" / "xmp": bytes}), only the entries the stream has
Metadata: TypeAlias = "dict[str, bytes]"


class Latents(TypedDict):
    """What :meth:`Decoder.decode_latents` returns; every per-component dict has keys "luma" and "chroma" (a
    monochrome stream, header chroma_format 0: "luma" only, since it codes no chroma)."""

    header: dict
    y_hat: dict[str, NDArray[np.float32]]       # [C, Hl, Wl], the synthesis input
    sigma: dict[str, NDArray[np.float32]]       # σ of the entropy model per latent sample (gain applied)
    index: dict[str, NDArray[np.uint8]]         # scale index per sample, 255 = skipped
    z: dict[str, NDArray[np.int16]]             # hyper-latent z_hat [C, hz, wz]
    residual: dict[str, NDArray[np.int16]]      # decoded residual symbols
    gain: dict[str, NDArray[np.float32]]        # quantisation gain per channel
    latent_hw: dict[str, tuple[int, int]]
    z_hw: dict[str, tuple[int, int]]
HEADER_FIELDS = ("width", "height", "bit_depth", "chroma_format", "colour_transform", "model_id", "operating_point",
                 "rate_point", "gain_log_luma", "gain_log_chroma", "latent_channels_luma", "latent_channels_chroma",
                 "coded_channels_luma", "coded_channels_chroma", "tile_size", "tile_overlap")


def header_dict(h) -> dict:
    return {k: getattr(h, k) for k in HEADER_FIELDS}


def _check_tiling(tile_size, tile_overlap):
    """Decoder arguments: "auto" or a :class:`synthesis.Tiling`-valid size; overlap None or valid."""
    if tile_size != "auto":
        synthesis.Tiling(tile_size, 0 if tile_overlap is None or not tile_size else tile_overlap)
        if 0 < tile_size < MIN_TILE_SIZE:
            raise ValueError(f"tile_size must be 0 (untiled) or at least {MIN_TILE_SIZE}, got {tile_size}")
    elif tile_overlap is not None:
        synthesis.Tiling(1 << 30, tile_overlap)  # checks the overlap's own form


def synthesis_tiling(header, tile_size="auto", tile_overlap=None) -> tuple[int, int]:
    """-> (tile, overlap) in luma samples that synthesis uses for a stream (tile 0 = untiled).

    ``tile_size="auto"``: the header's tiling; an untiled stream larger than AUTO_TILE_PIXELS gets
    DEFAULT_TILE_SIZE.  An int overrides the header (0 = untiled whatever the header says).
    ``tile_overlap``: None = the header's overlap when the header's tiling is used, else
    DEFAULT_TILE_OVERLAP (below the tile)."""
    h = header if isinstance(header, dict) else header_dict(header)
    if tile_size == "auto":
        if h["tile_size"]:
            # a stream's tiling is the encoder's suggestion; below what the overlap rule needs (48 samples of
            # context: pixels equal to untiled) it would cost quality silently, so it is raised to that
            tile = max(h["tile_size"], MIN_TILE_SIZE)
            overlap = max(h["tile_overlap"], DEFAULT_TILE_OVERLAP) if tile_overlap is None else tile_overlap
            return tile, min(overlap, tile - 16)
        if h["width"] * h["height"] <= AUTO_TILE_PIXELS:
            return 0, 0
        tile = DEFAULT_TILE_SIZE
    else:
        tile = tile_size
    if tile == 0:
        return 0, 0
    overlap = DEFAULT_TILE_OVERLAP if tile_overlap is None else tile_overlap
    return tile, min(overlap, tile - 16)


def read_input(data: StreamInput) -> bytes:
    """bytes-like or a path -> bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        return pathlib.Path(data).read_bytes()
    if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1:
        return data.tobytes()
    raise TypeError(f"expected bytes or a path, got {type(data).__name__}")


class Decoder:
    """``Decoder(model="default", operating_point="bop", device="cpu", threads=None, tile_size="auto")``.

    ``operating_point``: "bop" or "sop" (either synthesis decodes any stream) or None = the stream's
    header.  ``threads``: None = all cores, used by both the C++ pool and ORT (never at the same time).
    ``device``: "cpu" or "cuda" (ONNX Runtime's CUDA provider for the float graphs; needs
    onnxruntime-gpu).  ``tile_size`` / ``tile_overlap``: synthesis tiling (:func:`synthesis_tiling`):
    "auto" follows the stream and tiles untiled pictures above ~4 MP, so memory stays bounded.
    ``precision``: "fp32" (default) or "int8": the synthesis graphs quantised to int8 (CPU only; a model
    without them, or device="cuda", runs fp32 with a RuntimeWarning; cost in the model card, "synthesis_int8").
    ``last_timing`` holds the seconds per stage of the latest decode (keys :data:`STAGES`, "total").
    """

    def __init__(self, model: str | os.PathLike[str] | Model = "default", operating_point: str | None = "bop",
                 device: str = "cpu", threads: int | None = None, max_pixels: int = container.DEFAULT_MAX_PIXELS,
                 tile_size: int | str = "auto", tile_overlap: int | None = None, precision: str = "fp32"):
        check_precision(precision)
        if operating_point not in (*OPERATING_POINTS.values(), None):
            raise ValueError(f"operating_point must be 'bop', 'sop' or None, got {operating_point!r}")
        _check_tiling(tile_size, tile_overlap)
        # a Model instance brings its directory; device and threads given here still apply
        self.model = (model.configured(device, threads, precision) if isinstance(model, Model)
                      else Model(model, device=device, threads=threads, precision=precision))
        if operating_point is not None and operating_point not in self.model.operating_points:
            raise ValueError(f"model {self.model.name} has no {operating_point!r} synthesis "
                             f"(it has {self.model.operating_points})")
        self.operating_point = operating_point
        self.max_pixels = int(max_pixels)
        self.tile_size, self.tile_overlap = tile_size, tile_overlap
        self.last_timing: dict[str, float] = {}
        self._requested_threads = threads
        # model="default": any shipped model's stream decodes (the one its header names); a named model or a
        # Model instance refuses streams of other models
        self._follow_stream_model = isinstance(model, str) and model == "default"
        self._models = {self.model.latent_model.model_id: self.model}

    # Picklable (Ray, Dask, multiprocessing): the state is the constructor's arguments; the worker re-opens the
    # model directory (model.bin parsed once per process) and makes its ORT sessions on first use.
    def __getstate__(self) -> dict:
        return {"model": str(self.model.path), "operating_point": self.operating_point, "device": self.model.device,
                "threads": self._requested_threads, "max_pixels": self.max_pixels, "tile_size": self.tile_size,
                "tile_overlap": self.tile_overlap, "precision": self.model.precision}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def threads(self) -> int:
        return self.model.threads

    # -- compressed domain ------------------------------------------------------------------------
    def _latents(self, data: StreamInput, timing: dict, inspect: bool) -> tuple[dict, Model]:
        """The one call into the C++ core: codestream -> (ŷ (and, with ``inspect``, the integer arrays), the
        model it decoded with).  The model is chosen per call and handed back, not read again from
        ``self.model``: threads sharing one Decoder may decode streams of different models at once."""
        data = read_input(data)
        t0 = time.perf_counter()
        model = self.model
        try:
            lat = model.latent_model.decode(data, self.max_pixels, model.threads, inspect)
        except BitstreamError as e:
            switched = self._follow_stream_model and e.field == "model_id" and self._switch_model(data)
            if not switched:
                raise
            model = switched
            lat = model.latent_model.decode(data, self.max_pixels, model.threads, inspect)
        elapsed = time.perf_counter() - t0
        sec = lat.pop("seconds")
        for key, stage in _LATENT_TIMERS.items():
            timing[stage] = sec[key]
        timing["parse"] += max(0.0, elapsed - sum(sec.values()))  # the binding's own overhead (small)
        return lat, model

    def _switch_model(self, data: bytes) -> Model | None:
        """Bind to the shipped model the stream names (model="default" only) and return it; None if none ships."""
        h, _ = container.parse(data, self.max_pixels)
        if h.model_id not in self._models:
            name = shipped_model_for_id(h.model_id)
            if name is None:
                return None
            self._models[h.model_id] = Model(name, device=self.model.device, threads=self._requested_threads,
                                             precision=self.model.precision)
        model = self._models[h.model_id]
        if self.operating_point is not None and self.operating_point not in model.operating_points:
            raise BitstreamError(f"the stream's model {model.name} has no {self.operating_point!r} synthesis "
                                 f"(it has {model.operating_points})", "operating_point")
        self.model = model  # the latest stream's model (what info() and threads report)
        return model

    def decode_latents(self, data: StreamInput) -> Latents:
        """Codestream -> compressed-domain representation, without synthesis.

        Returns ``{"header": dict, "y_hat": {comp: float32 [C,Hl,Wl]}, "sigma": {comp: float32 σ of the
        entropy model}, "index": {comp: uint8}, "z": {comp: int16}, "residual": {comp: int16},
        "gain": {comp: float32 [C]}, "latent_hw": {comp: (Hl, Wl)}, "z_hw": {comp: (hz, wz)}}`` with comp in
        ("luma", "chroma"); a monochrome stream (header chroma_format 0) has "luma" entries only."""
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        lat, model = self._latents(data, timing, inspect=True)
        timing["total"] = time.perf_counter() - t0
        self.last_timing = timing
        h = lat["header"]
        disp = (h.gain_log_luma, h.gain_log_chroma)
        comps = COMPONENTS[:1] if h.chroma_format == 0 else COMPONENTS
        def per_comp(key):
            return {comp: lat[comp][key] for comp in comps}

        display_h, display_w = lat["display_hw"]  # the display window (DWS); the latents are the coded picture's
        return Latents(header={**header_dict(h), "display_width": display_w, "display_height": display_h},
                       y_hat=lat["y_hat"],
                       sigma={comp: synthesis.sigma_from_log(lat[comp]["log_sigma"]) for comp in comps},
                       index=per_comp("index"), z=per_comp("z"), residual=per_comp("residual"),
                       gain={comp: synthesis.gain(model, comp, h.rate_point, disp[k])
                             for k, comp in enumerate(comps)},
                       latent_hw=lat["latent_hw"], z_hw=lat["z_hw"])

    # -- pixels -----------------------------------------------------------------------------------
    @overload
    def decode(self, data: StreamInput, output: Literal["rgb"] = "rgb",
               with_metadata: Literal[False] = False) -> NDArray[np.uint8]: ...
    @overload
    def decode(self, data: StreamInput, output: Literal["yuv"], with_metadata: Literal[False] = False) -> YuvPlanes: ...
    @overload
    def decode(self, data: StreamInput, output: str, with_metadata: Literal[False] = False
               ) -> NDArray[np.uint8] | YuvPlanes: ...
    @overload
    def decode(self, data: StreamInput, output: str = "rgb", *, with_metadata: Literal[True]
               ) -> tuple[NDArray[np.uint8] | YuvPlanes, Metadata]: ...

    def decode(self, data: StreamInput, output: str = "rgb", with_metadata: bool = False
               ) -> NDArray[np.uint8] | YuvPlanes | tuple[NDArray[np.uint8] | YuvPlanes, Metadata]:
        """Codestream (bytes or path) -> uint8 RGB [H, W, 3]; ``output="yuv"``: {"Y": [H,W], "UV": [2,⌈H/2⌉,⌈W/2⌉]}
        float32 0-255 planes (clamped) instead.  A monochrome stream (4:0:0) decodes to R = G = B = the luma
        sample rounded half to even (YUV: UV = 128).  ``with_metadata``: -> (pixels, {"exif", "icc_profile",
        "xmp": bytes}) with the entries of the stream's MDS segment.  Raises BitstreamError / LimitError on bad
        streams."""
        if output not in ("rgb", "yuv"):
            raise ValueError("output must be 'rgb' or 'yuv'")
        if with_metadata:
            data = read_input(data)
            metadata = container.read_metadata(data, self.max_pixels)
            return self.decode(data, output), metadata
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        lat, model = self._latents(data, timing, inspect=False)
        h = lat["header"]
        if output == "rgb" and h.colour_transform == 0:
            raise BitstreamError("the stream's colour_transform is 0 (Y'CbCr planes out, no RGB conversion): decode "
                                 "it with output='yuv'", "colour_transform")
        op = self.operating_point
        if op is None:
            op = OPERATING_POINTS.get(h.operating_point)
            if op not in model.operating_points:
                raise BitstreamError("this model has no synthesis for the stream's operating point "
                                     f"{h.operating_point}; pass operating_point='bop' or 'sop'", "operating_point")
        t1 = time.perf_counter()
        tile, overlap = synthesis_tiling(h, self.tile_size, self.tile_overlap)
        y_hat = lat.pop("y_hat")
        # y_hat has no "chroma" for a monochrome stream: synthesis then runs the luma graph only, UV is None
        if tile:
            yy, uv = synthesis.synthesise_tiled(model, y_hat["luma"], y_hat.get("chroma"), (h.height, h.width),
                                                op, tile, overlap)
        else:
            yy, uv = synthesis.synthesise(model, y_hat["luma"], y_hat.get("chroma"), (h.height, h.width), op)
        del y_hat
        t2 = time.perf_counter()
        timing["synthesis"] = t2 - t1
        np.clip(yy, 0, 255, out=yy)
        if uv is None:
            out = _monochrome_output(yy, output)
        else:
            np.clip(uv, 0, 255, out=uv)
            # the colour stage in C++ (bit-identical to colour.yuv420_to_rgb, the numpy definition; 3x faster)
            out = {"Y": yy, "UV": uv} if output == "yuv" else _core.yuv420_to_rgb(yy, uv, model.threads)
        out = _display_window(out, lat["display_hw"])
        timing["colour"] = time.perf_counter() - t2
        timing["total"] = time.perf_counter() - t0
        timing["other"] = max(0.0, timing["total"] - sum(v for k, v in timing.items() if k != "total"))
        self.last_timing = {k: timing[k] for k in (*STAGES, "total")}
        return out

    def info(self, data: StreamInput) -> dict:
        """Header fields, size, bpp and segment sizes (parses the container only; no decoding)."""
        data = read_input(data)
        h, segs = container.parse(data, self.max_pixels)
        d = header_dict(h)
        display_w, display_h = container.display_size(h, segs)
        d.update(coded_width=h.width, coded_height=h.height, width=display_w, height=display_h)
        d.update(bytes=len(data), bpp=8 * len(data) / (display_w * display_h),
                 segments={k: len(v) for k, v in segs.items()},
                 operating_point_name={0: "sop", 1: "bop", 2: "hop"}.get(h.operating_point, "reserved"),
                 latent_hw={c: self.model.latent_size(c, (h.height, h.width)) for c in COMPONENTS},
                 synthesis_tiling=synthesis_tiling(h, self.tile_size, self.tile_overlap))
        return d


def _display_window(out, display_hw):
    """Crop the decoded picture to the stream's display window (DWS; the whole coded picture without one)."""
    dh, dw = display_hw
    if isinstance(out, dict):
        if out["Y"].shape == (dh, dw):
            return out
        return {"Y": np.ascontiguousarray(out["Y"][:dh, :dw]),
                "UV": np.ascontiguousarray(out["UV"][:, :-(-dh // 2), :-(-dw // 2)])}
    return out if out.shape[:2] == (dh, dw) else np.ascontiguousarray(out[:dh, :dw])


def _monochrome_output(yy: np.ndarray, output: str) -> NDArray[np.uint8] | YuvPlanes:
    """A 4:0:0 picture's clamped luma -> RGB with R = G = B = rint(Y) (round half to even, as the colour stage),
    or the YUV planes with neutral chroma (128)."""
    if output == "yuv":
        return {"Y": yy, "UV": np.full((2, -(-yy.shape[0] // 2), -(-yy.shape[1] // 2)), 128.0, np.float32)}
    out = np.empty((*yy.shape, 3), np.uint8)
    out[...] = np.rint(yy).astype(np.uint8)[..., None]
    return out


_DECODERS: dict = {}


def _cached_decoder(model, operating_point, device, threads, tile_size="auto", tile_overlap=None,
                    max_pixels: int = container.DEFAULT_MAX_PIXELS, precision: str = "fp32") -> Decoder:
    key = (str(model), operating_point, device, threads, tile_size, tile_overlap, int(max_pixels), precision)
    if key not in _DECODERS:  # convenience functions reuse the sessions of earlier calls
        _DECODERS[key] = Decoder(model, operating_point, device, threads, max_pixels=max_pixels, tile_size=tile_size,
                                 tile_overlap=tile_overlap, precision=precision)
    return _DECODERS[key]


@overload
def decode(data: StreamInput, model: str | os.PathLike[str] | Model = ..., operating_point: str | None = ...,
           device: str = ..., threads: int | None = ..., output: Literal["rgb"] = ..., tile_size: int | str = ...,
           tile_overlap: int | None = ..., max_pixels: int = ..., with_metadata: Literal[False] = ...,
           precision: str = ...) -> NDArray[np.uint8]: ...
@overload
def decode(data: StreamInput, model: str | os.PathLike[str] | Model = ..., operating_point: str | None = ...,
           device: str = ..., threads: int | None = ..., *, output: Literal["yuv"], tile_size: int | str = ...,
           tile_overlap: int | None = ..., max_pixels: int = ..., with_metadata: Literal[False] = ...,
           precision: str = ...) -> YuvPlanes: ...
@overload
def decode(data: StreamInput, model: str | os.PathLike[str] | Model = ..., operating_point: str | None = ...,
           device: str = ..., threads: int | None = ..., output: str = ..., tile_size: int | str = ...,
           tile_overlap: int | None = ..., max_pixels: int = ..., with_metadata: Literal[False] = ...,
           precision: str = ...) -> NDArray[np.uint8] | YuvPlanes: ...
@overload
def decode(data: StreamInput, model: str | os.PathLike[str] | Model = ..., operating_point: str | None = ...,
           device: str = ..., threads: int | None = ..., output: str = ..., tile_size: int | str = ...,
           tile_overlap: int | None = ..., max_pixels: int = ..., *, with_metadata: Literal[True],
           precision: str = ...) -> tuple[NDArray[np.uint8] | YuvPlanes, Metadata]: ...


def decode(data: StreamInput, model: str | os.PathLike[str] | Model = "default", operating_point: str | None = "bop",
           device: str = "cpu", threads: int | None = None, output: str = "rgb", tile_size: int | str = "auto",
           tile_overlap: int | None = None, max_pixels: int = container.DEFAULT_MAX_PIXELS, with_metadata: bool = False,
           precision: str = "fp32") -> NDArray[np.uint8] | YuvPlanes | tuple[NDArray[np.uint8] | YuvPlanes, Metadata]:
    """One-shot decode (the Decoder and its sessions are cached per argument set).  ``model="default"``: the
    shipped model whose id the stream's header carries, so streams of every shipped model decode.
    ``max_pixels``: streams of larger pictures raise LimitError before anything is allocated (the default,
    container.DEFAULT_MAX_PIXELS, keeps one decode under about 2 GB: docs/stages.md).  ``with_metadata``:
    -> (pixels, {"exif", "icc_profile", "xmp": bytes}) as :meth:`Decoder.decode`.  ``precision``: as
    :class:`Decoder`."""
    providers_for(device)  # a missing CUDA provider is named before the stream is looked at
    check_precision(precision)
    data = read_input(data)
    if isinstance(model, str) and model == "default":
        h, _ = container.parse(data, max_pixels)
        model = shipped_model_for_id(h.model_id) or "default"  # unknown id: the default model refuses it
    dec = _cached_decoder(model, operating_point, device, threads, tile_size, tile_overlap, max_pixels, precision)
    if with_metadata:
        return dec.decode(data, output, with_metadata=True)
    return dec.decode(data, output)
