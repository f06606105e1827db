"""The 1 M-symbol latent-like workload and the entropy coders compared in bench/test_entropy.py.

Workload recipe (deterministic, ``seed``):

* shape C × H × W = 160 × 80 × 78 = 998,400 symbols (one latent of a ~1280 × 1248 image at 1/16 scale);
* channels: 70 % "active" with base log2 σ uniform in [log2 0.25, log2 6] and a spatial swing of
  1–2 octaves (per-channel amplitude, uniform); 30 % "near-dead" with base log2 σ uniform in
  [log2 0.1, log2 0.25] and a swing of 0.2–0.6 octave;
* spatial variation: log2 σ[c, y, x] = base[c] + amp[c] · (0.75 · S(y, x) + 0.25 · S_c(y, x)), where S is
  one image-structure field shared by all channels (white noise low-passed by a Gaussian of 5 px) and
  S_c a per-channel one (3 px), both normalised to zero mean and unit variance — so σ is spatially
  smooth, correlated across channels, and spans a few octaves around each channel's scale;
* σ clipped to [0.1, 60]; symbols = round(N(0, σ)), clipped to int16.

With the default seed: ≈61 % zeros, median σ ≈ 0.49, 99th percentile ≈ 15.7, max 60, ≈1.64 bits/symbol
under our tables (the exact figures are written to the results files).

Every coder gets the *same* quantised σ: σ_k = SIGMA_LEVELS[sigma_to_index(σ)].
"""
from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field

import numpy as np

from jpegai_fast import entropy as E

DEFAULT_SEED = 20240601
DEFAULT_SHAPE = (160, 80, 78)

RECIPE = (
    "160x80x78 latent; 70% active channels (base sigma log-uniform 0.25..6, 1-2 octave spatial swing), "
    "30% near-dead (0.1..0.25, 0.2-0.6 octave); log2 sigma = base + amp*(0.75*shared + 0.25*own) with "
    "Gaussian-low-passed noise fields (5 px shared, 3 px per channel); sigma clipped to [0.1, 60]; "
    "symbols = round(N(0, sigma)) as int16; sigma quantised with sigma_to_index for every coder"
)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """White noise low-passed by a Gaussian of ``radius_px`` (periodic, via FFT), normalised to N(0, 1)."""
    h, w = shape
    noise = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    lowpass = np.exp(-0.5 * (fy**2 + fx**2) * (2 * np.pi * radius_px) ** 2)
    f = np.fft.ifft2(np.fft.fft2(noise) * lowpass).real
    return (f - f.mean()) / f.std()


@dataclass
class Workload:
    seed: int
    sigma: np.ndarray  # float64, C×H×W, continuous σ before quantisation
    symbols: np.ndarray  # int16, C×H×W
    scale_index: np.ndarray  # uint8, C×H×W
    sigma_q: np.ndarray = field(init=False)  # float64, SIGMA_LEVELS[scale_index]

    def __post_init__(self):
        self.sigma_q = np.asarray(E.SIGMA_LEVELS)[self.scale_index]

    @property
    def n(self) -> int:
        return int(self.symbols.size)

    def stats(self) -> dict:
        sym = self.symbols
        pct = np.percentile(self.sigma, [1, 10, 50, 90, 99, 100])
        return {
            "recipe": RECIPE,
            "seed": self.seed,
            "shape": "x".join(map(str, sym.shape)),
            "symbols": self.n,
            "zero_fraction": float((sym == 0).mean()),
            "symbol_min": int(sym.min()),
            "symbol_max": int(sym.max()),
            "sigma_percentiles_1_10_50_90_99_100": [round(float(p), 3) for p in pct],
            "scale_index_levels_used": int(np.unique(self.scale_index).size),
        }


def latent_like_workload(seed: int = DEFAULT_SEED, shape: tuple[int, int, int] = DEFAULT_SHAPE) -> Workload:
    c, h, w = shape
    rng = np.random.default_rng(seed)
    active = rng.random(c) < 0.7
    base = np.where(active, rng.uniform(np.log2(0.25), np.log2(6.0), c), rng.uniform(np.log2(0.1), np.log2(0.25), c))
    amp = np.where(active, rng.uniform(1.0, 2.0, c), rng.uniform(0.2, 0.6, c))
    shared = smooth_field(rng, (h, w), 5.0)
    log2_sigma = np.empty(shape)
    for ch in range(c):
        log2_sigma[ch] = base[ch] + amp[ch] * (0.75 * shared + 0.25 * smooth_field(rng, (h, w), 3.0))
    sigma = np.clip(2.0**log2_sigma, 0.1, 60.0)
    symbols = np.clip(np.rint(rng.standard_normal(shape) * sigma), -32768, 32767).astype(np.int16)
    return Workload(seed=seed, sigma=sigma, symbols=symbols, scale_index=E.sigma_to_index(sigma))


def exact_gaussian_bits(symbols: np.ndarray, sigma: np.ndarray) -> float | None:
    """−Σ log2 of the exact discretised Gaussian mass Φ((x+½)/σ) − Φ((x−½)/σ): a coder-independent reference.

    Needs scipy (a dependency of the bench extras); None without it.
    """
    try:
        from scipy.special import ndtr
    except ImportError:
        return None
    a = np.abs(symbols.astype(np.float64)).ravel()
    s = np.asarray(sigma, dtype=np.float64).ravel()
    # upper-tail form keeps precision far out: P = Q((|x|-½)/σ) − Q((|x|+½)/σ), Q(t) = ndtr(−t)
    p = ndtr(-(a - 0.5) / s) - ndtr(-(a + 0.5) / s)
    return float(-np.log2(np.maximum(p, 1e-300)).sum())


# --------------------------------------------------------------------------------------------- coders
# Each coder: encode(workload) -> payload; decode(payload) -> int16-compatible array; nbytes(payload).


class OursCoder:
    name = "jpegai_fast"

    def __init__(self, wl: Workload, substreams: int = 1):
        self.wl = wl
        self.substreams = substreams

    def encode(self, threads: int = 0) -> bytes:
        return E.encode_residual(self.wl.symbols, self.wl.scale_index, substreams=self.substreams, threads=threads)

    def decode(self, data: bytes, threads: int = 0, kernel: str | None = None) -> np.ndarray:
        if kernel is None:
            return E.decode_residual(data, self.wl.scale_index, threads=threads)
        return E.decode_residual(data, self.wl.scale_index, threads=threads, kernel=kernel)

    @staticmethod
    def nbytes(data: bytes) -> int:
        return len(data)


def supports_kernel_argument() -> bool:
    import inspect

    try:
        return "kernel" in inspect.signature(E.decode_residual).parameters
    except (TypeError, ValueError):
        return False


def load_gaussian_conditional():
    """compressai.entropy_models.GaussianConditional.

    ``import compressai`` imports its whole model zoo, which needs a torchvision built for the installed
    torch.  Where that import fails (e.g. CPU-only torch and no matching CPU torchvision on the index),
    load only compressai's entropy_models / ops / C++ rANS extension, which need just torch, numpy and
    scipy: a bare ``compressai`` package object is put in sys.modules with the two functions
    entropy_models asks of it.  The coder code that runs is compressai's own either way.
    """
    try:
        from compressai.entropy_models import GaussianConditional

        return GaussianConditional, "import compressai"
    except ImportError as exc:
        first_error = exc
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("compressai is not installed") from first_error
    for name in [m for m in sys.modules if m == "compressai" or m.startswith("compressai.")]:
        del sys.modules[name]
    pkg = types.ModuleType("compressai")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__file__ = spec.origin
    pkg.available_entropy_coders = lambda: ["ans"]
    pkg.get_entropy_coder = lambda: "ans"
    sys.modules["compressai"] = pkg
    try:
        from compressai.entropy_models import GaussianConditional
    except ImportError:
        del sys.modules["compressai"]
        raise
    return GaussianConditional, f"entropy_models only (full import failed: {first_error})"


class CompressAICoder:
    """CompressAI GaussianConditional with scale_table = our 64 σ levels and indexes = our scale indices.

    means=None, so it codes exactly our symbols (its "symbols" = round(inputs)) under the same σ_k.
    """

    name = "compressai"

    def __init__(self, wl: Workload):
        import torch

        GaussianConditional, self.import_mode = load_gaussian_conditional()
        self.torch = torch
        self.wl = wl
        self.gc = GaussianConditional(scale_table=[float(s) for s in E.SIGMA_LEVELS])
        self.gc.update()
        c, h, w = wl.symbols.shape
        self.inputs = torch.from_numpy(wl.symbols.astype(np.float32)).reshape(1, c, h, w)
        self.indexes = torch.from_numpy(wl.scale_index.astype(np.int32)).reshape(1, c, h, w)

    def encode(self) -> list[bytes]:
        return self.gc.compress(self.inputs, self.indexes)

    def decode(self, strings: list[bytes]):
        return self.gc.decompress(strings, self.indexes)  # float32 tensor 1×C×H×W

    def to_int16(self, decoded) -> np.ndarray:
        return decoded[0].numpy().astype(np.int16)

    @staticmethod
    def nbytes(strings: list[bytes]) -> int:
        return sum(len(s) for s in strings)


class ConstrictionCoder:
    """constriction's stack (ANS) coder with a QuantizedGaussian on [min, max] of the symbols.

    Per-symbol means (0) and stds (our quantised σ_k) are passed at encode / decode time.
    """

    name = "constriction"

    def __init__(self, wl: Workload):
        import constriction

        self.constriction = constriction
        self.wl = wl
        lo, hi = int(wl.symbols.min()), int(wl.symbols.max())
        self.support = (lo, hi)
        self.model = constriction.stream.model.QuantizedGaussian(lo, hi)
        self.means = np.zeros(wl.n, dtype=np.float64)
        self.stds = np.ascontiguousarray(wl.sigma_q.ravel(), dtype=np.float64)
        self.symbols32 = np.ascontiguousarray(wl.symbols.ravel(), dtype=np.int32)

    def encode(self) -> np.ndarray:
        coder = self.constriction.stream.stack.AnsCoder()
        coder.encode_reverse(self.symbols32, self.model, self.means, self.stds)
        return coder.get_compressed()

    def decode(self, compressed: np.ndarray) -> np.ndarray:
        coder = self.constriction.stream.stack.AnsCoder(compressed)
        return coder.decode(self.model, self.means, self.stds)  # int32, flat

    def to_int16(self, decoded) -> np.ndarray:
        return decoded.astype(np.int16).reshape(self.wl.symbols.shape)

    @staticmethod
    def nbytes(compressed: np.ndarray) -> int:
        return int(compressed.nbytes)
