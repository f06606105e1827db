"""Entropy coding of latent tensors (the C++ rANS core, zero-copy on numpy arrays).

Residuals y - mu are coded under fixed discretised Gaussians N(0, sigma_k) at 64 log-spaced levels
``SIGMA_LEVELS``; each symbol is addressed by a uint8 scale index (``SKIP_INDEX`` = 255: no symbol).
The hyper-latent z uses per-channel learned integer CDFs (:class:`FactorizedModel`).
Bitstream details: docs/bitstream.md.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._core import FactorizedModel

__all__ = [
    "SIGMA_LEVELS", "NUM_LEVELS", "SIGMA_MIN", "SIGMA_MAX", "PROB_BITS", "SKIP_INDEX", "MAX_SUBSTREAMS",
    "LOG_SIGMA_FRAC_BITS", "sigma_to_index", "q7_to_index", "scale_index_map", "encode_residual", "decode_residual",
    "information_bits", "decode_kernel", "table_freqs", "table_radius", "table_hash", "FactorizedModel",
]

NUM_LEVELS: int = _core.NUM_LEVELS
SIGMA_MIN: float = _core.SIGMA_MIN
SIGMA_MAX: float = _core.SIGMA_MAX
PROB_BITS: int = _core.PROB_BITS
SKIP_INDEX: int = _core.SKIP_INDEX
MAX_SUBSTREAMS: int = _core.MAX_SUBSTREAMS
LOG_SIGMA_FRAC_BITS: int = _core.LOG_SIGMA_FRAC_BITS
SIGMA_LEVELS: np.ndarray = _core.sigma_levels()
SIGMA_LEVELS.setflags(write=False)

_LEVELS_PER_LOG = (NUM_LEVELS - 1) / np.log(SIGMA_MAX / SIGMA_MIN)

table_freqs = _core.table_freqs
table_radius = _core.table_radius
table_hash = _core.table_hash


def sigma_to_index(sigma) -> np.ndarray:
    """Nearest sigma level (in the log domain) for each sigma, clamped to [0, 63], as uint8.

    Encoder-side helper for float sigmas; the decoder gets its indices from the integer hyper-scale
    decoder's Q7 output through :func:`q7_to_index`.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    if np.isnan(sigma).any():
        raise ValueError("sigma contains NaN")
    with np.errstate(divide="ignore"):
        level = np.log(np.maximum(sigma, 0.0) / SIGMA_MIN) * _LEVELS_PER_LOG
    return np.clip(np.floor(level + 0.5), 0, NUM_LEVELS - 1).astype(np.uint8)


def q7_to_index(s) -> np.ndarray:
    """Table index of Q7 log-sigma values: clamp((s + 64) >> 7, 0, 63) (exact integer arithmetic)."""
    s = np.asarray(s)
    if s.dtype.kind not in "iu":
        raise ValueError("Q7 log-sigma values must be integers")
    # Clamp in the input's own dtype first: any |s| beyond 2^20 is far outside [0, 63] levels, and
    # int64 arithmetic on the raw values could wrap.
    limit = 1 << 20
    if s.dtype == np.uint64:  # the one integer dtype int64 cannot hold
        s = np.minimum(s, np.uint64(limit))
    s = np.clip(s.astype(np.int64), -limit, limit)
    return np.clip((s + 64) >> 7, 0, NUM_LEVELS - 1).astype(np.uint8)


def scale_index_map(s, gain_log, skip_below: int) -> np.ndarray:
    """Scale indices of one component from the integer hyper-scale decoder's output.

    ``s``: int32 Q7 log-sigma, channels first; ``gain_log``: int32 Q7 offset per channel (the rate
    point's gain plus the header's displacement).  Index = clamp((s + gain + 64) >> 7, 0, 63), and
    ``SKIP_INDEX`` where that is below ``skip_below`` (the model's skip threshold).  Exact integers.
    """
    s = np.asarray(s)
    if s.dtype != np.int32:
        raise ValueError(f"s must be int32, got {s.dtype}")
    gain_log = np.asarray(gain_log)
    if gain_log.dtype.kind not in "iu":
        raise ValueError("gain_log must be integers")
    if gain_log.size and np.abs(gain_log.astype(np.int64)).max() >= 1 << 13:
        raise ValueError("|gain_log| must be below 2^13")
    return _core.scale_index_map(np.require(s, requirements="C"), gain_log.astype(np.int32), int(skip_below))


def _int16_symbols(symbols) -> np.ndarray:
    a = np.asarray(symbols)
    if a.dtype.kind not in "iu":
        raise ValueError(f"symbols must be integers, got dtype {a.dtype}")
    if a.dtype != np.int16 and a.size and (a.min() < -32768 or a.max() > 32767):
        raise ValueError("symbols must fit in int16")
    return np.require(a, dtype=np.int16, requirements="C")  # keeps 0-d shapes, unlike ascontiguousarray


def _scale_index(scale_index) -> np.ndarray:
    a = np.asarray(scale_index)
    if a.dtype != np.uint8:
        raise ValueError(f"scale_index must be uint8, got dtype {a.dtype}")
    return np.require(a, requirements="C")


def encode_residual(symbols, scale_index, substreams: int = 1, threads: int = 0) -> bytes:
    """Entropy-code int16 residual symbols; ``scale_index`` (uint8, same shape) picks each one's sigma level.

    Positions with index ``SKIP_INDEX`` carry no symbol and must hold 0.  ``substreams`` (1..64)
    independent rANS substreams let the decoder use that many threads.
    """
    symbols = _int16_symbols(symbols)
    scale_index = _scale_index(scale_index)
    if symbols.shape != scale_index.shape:
        raise ValueError(f"shape mismatch: symbols {symbols.shape} vs scale_index {scale_index.shape}")
    if not 1 <= int(substreams) <= MAX_SUBSTREAMS:
        raise ValueError(f"substreams must be in [1, {MAX_SUBSTREAMS}]")
    return _core.encode_residual(symbols, scale_index, int(substreams), _threads(threads))


def decode_residual(data, scale_index, threads: int = 0, kernel: str = "auto") -> np.ndarray:
    """Decode what :func:`encode_residual` made; returns int16 of ``scale_index``'s shape.

    ``threads`` = 0 uses all cores.  ``kernel`` ("auto", "scalar", "avx2") picks the decode kernel;
    all give identical output.  Raises :class:`~jpegai_fast.BitstreamError` on corrupt data.
    """
    return _core.decode_residual(data, _scale_index(scale_index), _threads(threads), kernel)


def information_bits(symbols, scale_index) -> float:
    """Ideal code length (bits) of the symbols under the same tables: -sum log2 p + escape bypass bits."""
    symbols = _int16_symbols(symbols)
    scale_index = _scale_index(scale_index)
    if symbols.shape != scale_index.shape:
        raise ValueError("shape mismatch")
    return _core.residual_information_bits(symbols, scale_index)


def decode_kernel() -> str:
    """The residual decode kernel "auto" picks on this CPU ("avx2" or "scalar")."""
    return "avx2" if _core.cpu_features() in ("avx2", "avx512") else "scalar"


def _threads(threads: int) -> int:
    threads = int(threads)
    if threads < 0:
        raise ValueError("threads must be >= 0 (0 = all cores)")
    return threads
