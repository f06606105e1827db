"""Model directories (docs/model_format.md): locate one, load its integer half once, open ONNX Runtime sessions.

Two layers:
- the model directory's content, shared by every user in the process: ``model.bin`` parsed and checked once
  by the C++ core (``_core.LatentModel``: tables, integer networks, gains, fixed-point mean path; see
  :func:`latent_model`), and the operating points whose synthesis graphs the directory ships;
- a :class:`Model` = that directory + a runtime: device, thread count and the ORT sessions (created on first
  use, reused for every picture).  :meth:`Model.configured` gives the same directory under another runtime.
The ORT intra-op thread count is the number the C++ pool gets, and the two never run at the same time,
so the cores are not oversubscribed.
"""
from __future__ import annotations

import functools
import os
import pathlib
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from .errors import DeviceError

__all__ = ["MODELS_DIR", "available_models", "model_dir", "latent_model", "shipped_model_for_id", "model_for_bpp",
           "kodak_rate_points", "Model",
           "session_options", "providers_for", "OPERATING_POINTS", "PRECISIONS", "check_precision"]

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
# The model "default" names; another shipped model is chosen by name (the stream's header carries the model id).
DEFAULT_MODEL = "vr_bop"
COMPONENTS = ("luma", "chroma")
DEVICES = ("cpu", "cuda")


def available_models() -> list[str]:
    """Names of the model directories shipped in the package (those holding a model.bin)."""
    return sorted(p.parent.name for p in MODELS_DIR.glob("*/model.bin"))


def model_dir(model: str | os.PathLike = "default") -> pathlib.Path:
    """"default" (the first shipped model), a shipped model's name, or a path to a model directory."""
    if isinstance(model, (str, os.PathLike)) and str(model) == "default":
        names = available_models()
        if not names:
            raise FileNotFoundError(f"no model directory with a model.bin under {MODELS_DIR}")
        return MODELS_DIR / (DEFAULT_MODEL if DEFAULT_MODEL in names else names[0])
    p = pathlib.Path(model)
    if not p.is_absolute() and (MODELS_DIR / p / "model.bin").is_file():
        return MODELS_DIR / p
    if (p / "model.bin").is_file():
        return p
    raise FileNotFoundError(f"model {model!r}: not a shipped model ({available_models()}) nor a directory "
                            "with a model.bin")


# Synthesis operating points: header code -> name.  A model ships an operating point when it has both of
# its graphs; adding one (HOP) is an entry here plus its graphs.
OPERATING_POINTS = {0: "sop", 1: "bop"}

# Synthesis precision.  "fp32": the float graphs (synthesis_{op}_{comp}.onnx), the default and the reference.
# "int8": the statically quantised graphs next to them (synthesis_{op}_{comp}.int8.onnx, made by
# training/quantize_synthesis.py), on the CPU execution provider only; a model or operating point without them,
# and device="cuda", run the float graphs instead, with a warning.  The latent domain is the same either way (bpp
# identical); the int8 graphs' PSNR cost per rate point is in the model card ("synthesis_int8").
PRECISIONS = ("fp32", "int8")


# Encoder analysis: analysis_{comp}.onnx for every rate point, unless the model card names a rate point
# "analysis_hi_from" K -- then rate points K and up are analysed by analysis_{comp}_hi.onnx, a second encoder
# trained on the high rates only (one amortised analysis for every rate keeps the detail the high rates could pay
# for out of the latent; training/vm_codec.py).  The decoder and the stream are the same either way, so only the
# encoder reads this.
ANALYSIS_HI_KEY = "analysis_hi_from"


def analysis_hi_from(path: pathlib.Path, num_rates: int) -> int | None:
    """The card's first rate point of the high-rate analysis, or None (one analysis); a card naming one that
    the directory cannot serve is a broken model directory."""
    import json

    card = path / "model_card.json"
    if not card.is_file():
        return None
    k = json.loads(card.read_text()).get(ANALYSIS_HI_KEY)
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k < num_rates:
        raise ValueError(f"model {path.name}: {ANALYSIS_HI_KEY} {k!r} is not a rate point in 1..{num_rates - 1}")
    missing = [f"analysis_{c}_hi.onnx" for c in COMPONENTS if not (path / f"analysis_{c}_hi.onnx").is_file()]
    if missing:
        raise FileNotFoundError(f"model {path.name}: the card's {ANALYSIS_HI_KEY} needs {', '.join(missing)}")
    return k


# "analysis_hi_pre_emphasis" beta -- the encoder analyses the high-rate analysis' pictures twice: the second time
# the picture x plus beta times what the first latent, synthesised unquantised, misses (x + beta*(x - S(A(x)))).
# The amortised analysis leaves detail out of the latent that the synthesis could use (training/README.md,
# "Pre-emphasis"); encoder only, like the analysis itself.  Absent or 0: one pass.
PRE_EMPHASIS_KEY = "analysis_hi_pre_emphasis"


def pre_emphasis(path: pathlib.Path, analysis_hi: int | None) -> float:
    """The card's pre-emphasis factor of the high-rate analysis (0.0: none)."""
    import json

    card = path / "model_card.json"
    if not card.is_file():
        return 0.0
    beta = json.loads(card.read_text()).get(PRE_EMPHASIS_KEY, 0.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"model {path.name}: {PRE_EMPHASIS_KEY} {beta!r} is not a number in [0, 1]")
    if beta and analysis_hi is None:
        raise ValueError(f"model {path.name}: {PRE_EMPHASIS_KEY} needs {ANALYSIS_HI_KEY}")
    return float(beta)


def check_precision(precision) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@functools.cache
def _latent_model_at(path: pathlib.Path, mtime_ns: int, size: int):
    return _core.LatentModel(path.read_bytes())


@functools.cache
def _kodak_points(name: str, operating_point: str = "bop") -> list[dict]:
    """The Kodak rate points of a shipped model's card (the operating point's own curve, ``kodak_rd_sop``, when
    the card has one, else the BOP curve); empty if not measured."""
    import json

    try:
        card = json.loads((MODELS_DIR / name / "model_card.json").read_text())
        rd = (card.get(f"kodak_rd_{operating_point}") if operating_point != "bop" else None) or card.get("kodak_rd")
        return list((rd or {}).get("points") or [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _kodak_curve(name: str, operating_point: str = "bop") -> tuple[tuple[float, float], ...]:
    """(bpp, PSNR-YUV) of a shipped model's Kodak rate points, from its model card (empty if not measured)."""
    try:
        return tuple(sorted((float(p["bpp"]), float(p["psnr_yuv"])) for p in _kodak_points(name, operating_point)))
    except (ValueError, KeyError, TypeError):
        return ()


def kodak_rate_points(name: str, operating_point: str = "bop") -> tuple[tuple[int, float], ...]:
    """(rate point, Kodak bpp) of a shipped model, from its model card (empty if not measured), by rate point."""
    try:
        return tuple(sorted((int(p["rate"]), float(p["bpp"])) for p in _kodak_points(name, operating_point)))
    except (ValueError, KeyError, TypeError):
        return ()


# A target below a model's lowest measured rate point but within this factor of it is judged by the curve
# extended linearly in log bpp (the encoder reaches below rate point 0 by lowering the gain); further out, or
# above the top point (where the curves flatten), only the measured ranges count.
EXTRAPOLATE_BELOW = 2.0


def _quality_at(pts, bpp: float) -> float | None:
    """PSNR-YUV of a measured curve at ``bpp``: interpolated inside, extrapolated a little below; else None."""
    (b0, q0), (b1, q1) = pts[0], pts[1]
    if b0 <= bpp <= pts[-1][0]:
        return float(np.interp(np.log(bpp), np.log([p[0] for p in pts]), [p[1] for p in pts]))
    if bpp < b0 and b0 / bpp <= EXTRAPOLATE_BELOW and b1 > b0:
        return float(q0 + (q1 - q0) * np.log(bpp / b0) / np.log(b1 / b0))
    return None


def model_for_bpp(bpp: float, operating_point: str = "bop") -> str:
    """The shipped model to encode a ``bpp`` target with: the one whose measured Kodak curve (model card,
    real bytes, 24 images; the operating point's own curve when the card has one) has the highest PSNR-YUV at
    that rate, among the models that ship the operating point and whose measured range covers the target (or
    lies at most EXTRAPOLATE_BELOW times above it); when none does, the model whose range comes closest.
    With vm33 (from the VM 3.3 networks) and vr_bop shipped, targets up to about 0.48 bpp (where vr_bop's
    curve crosses vm33's flat top) go to vm33."""
    best, best_q = DEFAULT_MODEL if DEFAULT_MODEL in available_models() else None, -np.inf
    reach = []  # (distance in log bpp outside the measured range, name): below / above every range
    for name in available_models():
        pts = _kodak_curve(name, operating_point)
        has_op = all((MODELS_DIR / name / f"synthesis_{operating_point}_{c}.onnx").is_file() for c in COMPONENTS)
        if len(pts) < 2 or not has_op:
            continue
        q = _quality_at(pts, bpp)
        if q is None:
            lo, hi = pts[0][0], pts[-1][0]
            reach.append((abs(np.log(bpp / (lo if bpp < lo else hi))), name))
        elif q > best_q:
            best, best_q = name, q
    if best_q == -np.inf and reach:  # no measured range covers the target: the model reaching closest to it
        best = min(reach)[1]
    return best or "default"


def shipped_model_for_id(model_id: int) -> str | None:
    """The name of the shipped model whose streams carry ``model_id`` in their header (None: no such model)."""
    for name in available_models():
        if latent_model(MODELS_DIR / name).model_id == model_id:
            return name
    return None


def latent_model(directory: pathlib.Path):
    """The model directory's ``model.bin`` as the C++ LatentModel, parsed once per process (and again only if
    the file changes)."""
    f = pathlib.Path(directory).resolve() / "model.bin"
    st = f.stat()
    return _latent_model_at(f, st.st_mtime_ns, st.st_size)


def providers_for(device: str) -> list[str]:
    """ORT execution providers for ``device`` ("cpu" or "cuda"); a clear error when CUDA is missing."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError("device='cuda' needs ONNX Runtime's CUDA execution provider, which this onnxruntime "
                              f"lacks (available: {ort.get_available_providers()}); fix: pip uninstall onnxruntime "
                              "&& pip install onnxruntime-gpu", "device")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"device must be one of {DEVICES}, got {device!r}")


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1  # graphs are run one after another; parallelism is intra-op only
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle ORT workers must not spin: they would steal the cores from the C++ pool and numpy stages that
    # run between graphs (measured on the 2-core box with a busy core: Kodak decode 357 ms spinning vs 99 ms).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # ORT's memory arena: on.  With the mean path in C++ only the synthesis graphs (and the encoder's) have
    # sessions, and tiled synthesis bounds each arena's high-water mark by one tile.  Measured on an 8160 x 6120
    # stream, 1 thread (bench/results/2026-12-03-arena.md): synthesis 31.5 -> 25.9 s (1.21x), peak RSS 812 ->
    # 898 MiB.  JPEGAI_ORT_ARENA=0 turns it off.
    opts.enable_cpu_mem_arena = os.environ.get("JPEGAI_ORT_ARENA", "1") != "0"
    return opts


def resolve_threads(threads: int | None) -> int:
    if threads is None or threads == 0:
        return max(1, _core.hardware_threads())
    threads = int(threads)
    if threads < 1:
        raise ValueError("threads must be >= 1 (or None / 0 for all cores)")
    return threads


class Model:
    """One model directory under one runtime (device, threads, lazily created ORT sessions)."""

    def __init__(self, model: str | os.PathLike = "default", device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32"):
        self.precision = check_precision(precision)
        self.path = model_dir(model)
        self.device = device
        self.providers = providers_for(device)  # fail early on a missing CUDA EP
        self.threads = resolve_threads(threads)
        self.latent_model = latent_model(self.path)  # validated once; the decoder's integer half
        lm = self.latent_model
        self.channels = dict(zip(COMPONENTS, lm.channels))
        self.grid = dict(zip(COMPONENTS, lm.grid))  # luma samples per latent sample
        self.skip_threshold, self.z_offset, self.num_rates = lm.skip_below, lm.z_offset, lm.rate_points
        self._gain_q7 = {c: lm.gain_q7(k) for k, c in enumerate(COMPONENTS)}
        self._gain_f32 = {c: lm.gain_f32(k) for k, c in enumerate(COMPONENTS)}
        for table in (*self._gain_q7.values(), *self._gain_f32.values()):
            table.setflags(write=False)
        self.operating_points = [op for op in OPERATING_POINTS.values()
                                 if all((self.path / f"synthesis_{op}_{c}.onnx").is_file() for c in COMPONENTS)]
        self.int8_operating_points = [op for op in self.operating_points if all(
            (self.path / f"synthesis_{op}_{c}.int8.onnx").is_file() for c in COMPONENTS)]
        self.analysis_hi_from = analysis_hi_from(self.path, self.num_rates)
        self.pre_emphasis = pre_emphasis(self.path, self.analysis_hi_from)
        self._sessions: dict = {}
        self._lock = threading.Lock()
        # The synthesis' gated up-samplers in C++ on the CPU (graph_split.py, csrc/gated_upsampler.hpp);
        # JPEGAI_FAST_UPSAMPLER=ort (or this attribute False before the first decode) runs the whole graphs.
        self.cpp_upsamplers = os.environ.get("JPEGAI_FAST_UPSAMPLER", "cpp") != "ort"

    def configured(self, device: str | None = None, threads: int | None = None,
                   precision: str | None = None) -> Model:
        """This model directory under another runtime (``None``: keep this one's setting)."""
        device = self.device if device is None else device
        want = self.threads if threads is None else resolve_threads(threads)
        precision = self.precision if precision is None else check_precision(precision)
        if device == self.device and want == self.threads and precision == self.precision:
            return self
        return Model(self.path, device=device, threads=want, precision=precision)

    @property
    def name(self) -> str:
        return self.path.name

    def gain_q7(self, comp: str, rate: int) -> np.ndarray:
        """int32 [C] Q7 log gain offsets of a rate point."""
        return self._gain_q7[comp][rate]

    def gain_f32(self, comp: str, rate: int) -> np.ndarray:
        """float32 [C] trained quantisation gains of a rate point."""
        return self._gain_f32[comp][rate]

    def analysis_graph(self, comp: str, rate: int) -> str:
        """Name of the analysis graph that encodes rate point ``rate`` (see ANALYSIS_HI_KEY)."""
        hi = self.analysis_hi_from is not None and rate >= self.analysis_hi_from
        return f"analysis_{comp}_hi" if hi else f"analysis_{comp}"

    def latent_size(self, comp: str, image_hw) -> tuple[int, int]:
        h, w, _, _ = self.latent_model.latent_size(COMPONENTS.index(comp), int(image_hw[0]), int(image_hw[1]))
        return h, w

    def synthesis_precision(self, op: str) -> str:
        """The precision the synthesis of operating point ``op`` runs at: "int8" only when asked for, on the CPU,
        and when the model ships that operating point's int8 graphs; else "fp32"."""
        if self.precision == "int8" and self.device == "cpu" and op in self.int8_operating_points:
            return "int8"
        return "fp32"

    def _graph_file(self, name: str) -> pathlib.Path:
        if self.precision == "int8" and name.startswith("synthesis_"):
            op = name.split("_")[1]
            if self.synthesis_precision(op) == "int8":
                return self.path / f"{name}.int8.onnx"
            import warnings

            why = ("the CUDA execution provider runs the float graphs" if self.device != "cpu" else
                   f"model {self.name} ships no int8 {op} synthesis (training/quantize_synthesis.py makes it)")
            warnings.warn(f"precision='int8': {name} runs in fp32: {why}", RuntimeWarning, stacklevel=4)
        return self.path / f"{name}.onnx"

    def session(self, name: str):
        with self._lock:
            if name not in self._sessions:
                import onnxruntime as ort

                sess = ort.InferenceSession(str(self._graph_file(name)), session_options(self.threads),
                                            providers=self.providers)
                if self.providers[0] not in sess.get_providers():
                    # ORT falls back to the CPU silently when the CUDA provider's libraries fail to load
                    raise DeviceError(f"device={self.device!r}: ONNX Runtime could not use {self.providers[0]} for "
                                      f"{name} (session providers: {sess.get_providers()}); check the CUDA / cuDNN "
                                      "libraries that onnxruntime-gpu needs", "device")
                self._sessions[name] = sess
            return self._sessions[name]

    def split_synthesis(self, name: str):
        """A float synthesis graph on the CPU as ONNX Runtime segments and C++ blocks (see graph_split.py), or
        None: another device or precision, ``cpp_upsamplers`` off, a graph without an up-sampler to take out, or a
        CPU without the blocks' AVX2 + FMA kernels."""
        if not (self.cpp_upsamplers and name.startswith("synthesis_") and self.device == "cpu"):
            return None
        key = ("split", name)
        with self._lock:
            if key not in self._sessions:
                path = self._graph_file(name)
                split = None
                runner: _SplitRunner | None = None
                from .graph_split import GatedBlock, split_gated_upsamplers

                if not path.name.endswith(".int8.onnx"):
                    split = split_gated_upsamplers(path.read_bytes())
                blocks = [] if split is None else [_cpp_block(b) for b in split.blocks]
                if split is not None and all(b.has_simd_kernel for b in blocks):
                    import onnxruntime as ort

                    opts = session_options(self.threads)
                    made = iter(blocks)
                    runner = _SplitRunner(split.first_input, [
                        next(made) if isinstance(st, GatedBlock) else _Segment(
                            ort.InferenceSession(st.model, opts, providers=self.providers), st.flow_input, st.inputs)
                        for st in split.stages], functools.partial(self.session, name),
                        _output_head(split.output_head, opts, self.providers))
                # else: no AVX2 + FMA (or JPEGAI_FAST_SIMD=scalar): ORT's graph beats the scalar definition
                self._sessions[key] = runner
            return self._sessions[key]

    def run(self, name: str, **inputs) -> np.ndarray:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        split = self.split_synthesis(name)
        if split is not None:
            return split.run(feeds, self.threads)
        return self.session(name).run(None, feeds)[0]


def _output_head(spec, opts, providers):
    """graph_split.OutputHeadSpec -> (its C++ block, the session of its crop arithmetic, that session's inputs), or
    None (no spec, or channels the AVX2 tiles do not fit: the tail segment runs)."""
    if spec is None:
        return None
    head = _core.OutputHead(spec.weight, spec.bias, spec.block, spec.scale, spec.offset)
    if not head.has_simd_kernel:
        return None
    import onnxruntime as ort

    return head, ort.InferenceSession(spec.ends_model, opts, providers=providers), spec.ends_inputs


def _cpp_block(b):
    """graph_split.GatedBlock -> its C++ block."""
    if b.kind == "up":
        return _core.GatedUpsampler(b.weight, b.bias, b.gate_weight, b.gate_bias, b.alpha)  # no gate: plain
    if b.kind == "resau":
        return _core.ResAUBlock(b.weight, b.gate_weight)
    if b.kind == "shuffle_up":
        return _core.ShuffleUpsampler(b.weight, b.bias)
    plain = b.kind == "conv3x3" and b.gate_weight is None  # else gated, or the residual head (no gate either)
    return _core.GatedConv3x3(b.weight, b.bias, b.gate_weight, b.gate_bias, b.alpha, plain=plain)


# Input width below which the C++ blocks have no AVX2 tile (csrc/gated_upsampler.hpp: 6 tiles of 2 across)
BLOCK_SIMD_MIN_WIDTH = 11


@dataclass
class _Segment:
    session: Any           # ort.InferenceSession of a graph_split.GraphSegment
    flow_input: str | None
    inputs: list           # the original graph inputs it reads


@dataclass
class _SplitRunner:
    first_input: str       # the graph input the first stage reads when that stage is a block
    stages: list           # _Segment | _core.GatedUpsampler | ShuffleUpsampler | GatedConv3x3 | ResAUBlock, in order
    whole_graph: Any       # () -> the whole graph's ort.InferenceSession: pictures too narrow for the AVX2 tiles
    head: Any = None       # (_core.OutputHead, crop-ends session, its inputs): runs instead of the tail segment
    buffers: threading.local = field(default_factory=threading.local)  # per thread: the blocks' output arrays

    def run(self, feeds: dict, threads: int) -> np.ndarray:
        x: Any = feeds.get(self.first_input)  # None until the first segment when a segment comes first
        nhwc = False
        # the blocks' outputs are reused from call to call (per thread): fresh multi-megabyte arrays every decode
        # cost thousands of page faults
        cache = self.buffers.__dict__.setdefault("outputs", {})  # this thread's: stage index -> output array
        last = len(self.stages) - 1
        for k, st in enumerate(self.stages):
            if k == last and self.head is not None:
                out = self._run_head(x, nhwc, feeds, threads)
                if out is not None:
                    return out
                if nhwc:  # the tail segment reads planar
                    x, nhwc = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), False
            if isinstance(st, _Segment):
                flow = {} if st.flow_input is None else {st.flow_input: x}
                x, nhwc = st.session.run(None, {**flow, **{n: feeds[n] for n in st.inputs}})[0], False
                continue
            if k == self.first_block and x.shape[2 if nhwc else 3] < BLOCK_SIMD_MIN_WIDTH:
                # the blocks would run their scalar definition (the first block's input is the narrowest): ORT's
                # whole graph is 5-10x faster there
                return self.whole_graph().run(None, feeds)[0]
            # a block hands the next block (and the output head) its output pixel-major: no transposes between them
            nhwc_out = not isinstance(self.stages[k + 1], _Segment) or (k + 1 == last and self.head is not None)
            h, w = x.shape[1:3] if nhwc else x.shape[2:4]
            f = 2 if isinstance(st, (_core.GatedUpsampler, _core.ShuffleUpsampler)) else 1
            shape = (1, f * h, f * w, st.cout) if nhwc_out else (1, st.cout, f * h, f * w)
            out = cache.get(k)
            if out is None or out.shape != shape:
                out = cache[k] = np.empty(shape, np.float32)
            x, nhwc = st.run(x, threads, nhwc_in=nhwc, nhwc_out=nhwc_out, out=out), nhwc_out
        return x

    def _run_head(self, x, nhwc: bool, feeds: dict, threads: int):
        """The tail as the C++ output head: the crop's ends from the graph's own arithmetic (ONNX Slice semantics),
        or None where the crop is empty (the tail segment then runs)."""
        head, ends, ends_inputs = self.head
        h, w = x.shape[1:3] if nhwc else x.shape[2:4]
        crop = []
        for e, size in zip(ends.run(None, {n: feeds[n] for n in ends_inputs}), (head.block * h, head.block * w)):
            e = int(np.asarray(e).reshape(-1)[0])
            crop.append(min(max(e + size if e < 0 else e, 0), size))
        if min(crop) < 1:
            return None
        return head.run(x, crop[0], crop[1], threads, nhwc_in=nhwc)

    @functools.cached_property
    def first_block(self) -> int:
        return next(k for k, st in enumerate(self.stages) if not isinstance(st, _Segment))
