"""Shared helpers for the test suite (imported by the test modules; not a test module itself).

Everything here is an *independent* re-implementation of the format pieces the tests need to build
hostile streams (docs/bitstream.md, csrc/bitio.hpp, csrc/container.hpp): a MSB-first bit writer with
Exp-Golomb ue(v)/se(v), a container segment builder/walker with zlib's CRC-32, plus test-data
generators and a guard-page buffer that turns any read outside a stream into SIGSEGV.
"""
from __future__ import annotations

import contextlib
import ctypes
import inspect
import mmap
import zlib

import numpy as np

import jpegai_fast
from jpegai_fast import container, entropy

OUR_ERRORS = (jpegai_fast.BitstreamError, jpegai_fast.LimitError)

SOC, EOC, PIH = 0xFF80, 0xFF81, 0xFF82
SOZ, SORP, SORS, UDI = 0xFF88, 0xFF89, 0xFF8A, 0xFF8C


# --------------------------------------------------------------------------------------------------
# Bits
# --------------------------------------------------------------------------------------------------
class BitWriter:
    """MSB-first bit packing, as csrc/bitio.hpp."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> BitWriter:
        for i in range(count - 1, -1, -1):
            self.bits.append((value >> i) & 1)
        return self

    def ue(self, value: int) -> BitWriter:
        v = value + 1
        k = v.bit_length() - 1
        return self.put(0, k).put(v, k + 1)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def raw_zeros(self, count: int) -> BitWriter:
        return self.put(0, count)

    def align(self, pad_bit: int = 0) -> BitWriter:
        while len(self.bits) % 8:
            self.bits.append(pad_bit)
        return self

    def bytes(self) -> bytes:
        self.align()
        out = bytearray()
        for i in range(0, len(self.bits), 8):
            byte = 0
            for b in self.bits[i:i + 8]:
                byte = (byte << 1) | b
            out.append(byte)
        return bytes(out)


def ue_bytes(value: int) -> bytes:
    return BitWriter().ue(value).bytes()


# --------------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------------
def segment(marker: int, payload: bytes, *, size: int | None = None, crc: int | None = None,
            size_bytes: bytes | None = None) -> bytes:
    """marker | ue(size) zero-padded | payload | CRC-32 (BE) of marker..payload.  Overrides build lies."""
    head = marker.to_bytes(2, "big") + (size_bytes if size_bytes is not None else
                                        ue_bytes(len(payload) if size is None else size))
    body = head + payload
    return body + ((zlib.crc32(body) if crc is None else crc) & 0xFFFFFFFF).to_bytes(4, "big")


def pih_payload(*, version: int = 1, width: int = 64, height: int = 48, bit_depth_minus8: int = 0,
                chroma_format: int = 1, colour_transform: int = 1, model_id: int = 0, operating_point: int = 1,
                rate_point: int = 0, gain_luma: int = 0, gain_chroma: int = 0, latent_luma: int = 160,
                latent_chroma: int = 96, coded_luma: int = 160, coded_chroma: int = 96, tile16: int = 0,
                overlap16: int = 0, width_minus1: int | None = None, height_minus1: int | None = None,
                extra: bytes = b"") -> bytes:
    """The PIH payload as csrc/container.cpp writes it, every field overridable (raw)."""
    w = BitWriter()
    w.put(version, 8)
    w.ue(width - 1 if width_minus1 is None else width_minus1)
    w.ue(height - 1 if height_minus1 is None else height_minus1)
    w.put(bit_depth_minus8, 3).put(chroma_format, 2).put(colour_transform, 2).put(model_id, 8)
    w.put(operating_point, 2).put(rate_point, 8)
    w.se(gain_luma).se(gain_chroma)
    w.ue(latent_luma).ue(latent_chroma).ue(coded_luma).ue(coded_chroma).ue(tile16).ue(overlap16)
    return w.bytes() + extra


def codestream(segments: list[bytes], *, pih: bytes | None = None, soc: bool = True, eoc: bool = True,
               trailing: bytes = b"") -> bytes:
    out = bytearray(b"\xff\x80" if soc else b"")
    if pih is not None:
        out += segment(PIH, pih)
    for s in segments:
        out += s
    if eoc:
        out += b"\xff\x81"
    return bytes(out) + trailing


def read_ue(data: bytes, bitpos: int) -> tuple[int, int]:
    def bit(i: int) -> int:
        return (data[i >> 3] >> (7 - (i & 7))) & 1
    zeros = 0
    while bit(bitpos) == 0:
        zeros += 1
        bitpos += 1
    bitpos += 1
    suffix = 0
    for _ in range(zeros):
        suffix = (suffix << 1) | bit(bitpos)
        bitpos += 1
    return (1 << zeros) - 1 + suffix, bitpos


def walk_codestream(data: bytes) -> list[dict]:
    """Splits a *valid* codestream into segments, independently of the C++ parser."""
    assert data[:2] == b"\xff\x80" and data[-2:] == b"\xff\x81"
    pos, segs = 2, []
    while pos < len(data) - 2:
        marker = int.from_bytes(data[pos:pos + 2], "big")
        size, bitpos = read_ue(data, (pos + 2) * 8)
        payload_at = (bitpos + 7) // 8
        end = payload_at + size
        segs.append(dict(marker=marker, begin=pos, payload_at=payload_at, size=size,
                         payload=data[payload_at:end], crc=int.from_bytes(data[end:end + 4], "big"),
                         crc_input=data[pos:end]))
        pos = end + 4
    assert pos == len(data) - 2
    return segs


def valid_header(**fields) -> container.PictureHeader:
    h = container.PictureHeader()
    h.width, h.height = 64, 48
    for k, v in fields.items():
        setattr(h, k, v)
    return h


HEADER_FIELDS = ["width", "height", "bit_depth", "chroma_format", "colour_transform", "model_id",
                 "operating_point", "rate_point", "gain_log_luma", "gain_log_chroma", "latent_channels_luma",
                 "latent_channels_chroma", "coded_channels_luma", "coded_channels_chroma", "tile_size",
                 "tile_overlap"]


def header_dict(h) -> dict:
    return {f: getattr(h, f) for f in HEADER_FIELDS}


# --------------------------------------------------------------------------------------------------
# Decoding helpers: every kernel the build offers
# --------------------------------------------------------------------------------------------------
def _has_kernel_arg() -> bool:
    try:
        return "kernel" in inspect.signature(entropy.decode_residual).parameters
    except (TypeError, ValueError):
        return False


def available_kernels() -> list[str | None]:
    """["scalar", "avx2", "auto"] as far as this build and CPU support them; [None] if no kernel choice."""
    if not _has_kernel_arg():
        return [None]
    probe_idx = np.full(3, 20, np.uint8)
    probe = entropy.encode_residual(np.zeros(3, np.int16), probe_idx)
    kernels = []
    for k in ("scalar", "avx2", "auto"):
        try:
            entropy.decode_residual(probe, probe_idx, kernel=k)
            kernels.append(k)
        except ValueError:
            pass
    return kernels


KERNELS = available_kernels()


def decode(data, scale_index, threads: int = 0, kernel: str | None = None) -> np.ndarray:
    if kernel is None:
        return entropy.decode_residual(data, scale_index, threads=threads)
    return entropy.decode_residual(data, scale_index, threads=threads, kernel=kernel)


# --------------------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------------------
def gaussian_residual(rng: np.random.Generator, shape, *, skip_fraction: float = 0.0, extremes: int = 0,
                      sigma_lo: float = 0.1, sigma_hi: float = 60.0):
    """Latent-like residual: log-uniform sigma per position, N(0, sigma) values, optional skips/extremes."""
    n = int(np.prod(shape, dtype=np.int64))
    sigma = np.exp(rng.uniform(np.log(sigma_lo), np.log(sigma_hi), n))
    idx = entropy.sigma_to_index(sigma)
    sym = np.clip(np.rint(rng.normal(0.0, sigma)), -32768, 32767).astype(np.int16)
    if extremes and n:
        where = rng.choice(n, size=min(extremes, n), replace=False)
        sym[where] = rng.choice(np.array([32767, -32768, -32767, 32766, 128, -128], np.int16), size=where.size)
    if skip_fraction and n:
        skip = rng.random(n) < skip_fraction
        idx[skip] = entropy.SKIP_INDEX
        sym[skip] = 0
    return sym.reshape(shape), idx.reshape(shape)


def smooth_cdf(channels: int, symbols: int, seed: int = 0) -> np.ndarray:
    """A valid factorized-model CDF table (uint16, channels x (symbols + 1), 0 .. 4096, strictly increasing)."""
    rng = np.random.default_rng(seed)
    cdf = np.zeros((channels, symbols + 1), np.uint16)
    for c in range(channels):
        centre = (symbols - 1) / 2 + rng.uniform(-1, 1)
        width = rng.uniform(0.7, max(0.8, symbols / 4))
        p = np.exp(-0.5 * ((np.arange(symbols) - centre) / width) ** 2) + 1e-3
        f = np.maximum(1, np.floor(p / p.sum() * (4096 - symbols)).astype(np.int64))
        f[np.argmax(f)] += 4096 - f.sum()
        assert f.min() >= 1 and f.sum() == 4096
        cdf[c, 1:] = np.cumsum(f)
    return cdf


# --------------------------------------------------------------------------------------------------
# Guard pages: a buffer whose neighbours are PROT_NONE, so an out-of-bounds read faults.
# --------------------------------------------------------------------------------------------------
PAGE = mmap.PAGESIZE
_PROT_NONE, _PROT_RW = 0, 3
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class GuardedArena:
    """Pages [guard | data ... | guard]; place() puts bytes flush against the front or back guard."""

    def __init__(self, max_size: int) -> None:
        self.data_pages = max(1, -(-max_size // PAGE))
        self.map = mmap.mmap(-1, (self.data_pages + 2) * PAGE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        for page in (0, self.data_pages + 1):
            if _libc.mprotect(ctypes.c_void_p(self.base + page * PAGE), PAGE, _PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect failed")
        self.view = memoryview(self.map)

    def place(self, data: bytes, at_end: bool = True) -> memoryview:
        lo = PAGE + (self.data_pages * PAGE - len(data) if at_end else 0)
        self.view[lo:lo + len(data)] = data
        return self.view[lo:lo + len(data)]

    def close(self) -> None:
        self.view.release()
        for page in (0, self.data_pages + 1):
            _libc.mprotect(ctypes.c_void_p(self.base + page * PAGE), PAGE, _PROT_RW)
        # the ctypes from_buffer export keeps the map alive; drop our reference and let GC do the rest


@contextlib.contextmanager
def guarded_arena(max_size: int):
    arena = GuardedArena(max_size)
    try:
        yield arena
    finally:
        arena.close()


# --------------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------------
def flip_bits(data: bytes, positions) -> bytes:
    b = bytearray(data)
    for pos in positions:
        b[pos >> 3] ^= 0x80 >> (pos & 7)
    return bytes(b)
