"""The model-file writer (model.bin, docs/model_format.md) and the z-CDF construction: export-side code.

Kept apart from the oracle (training/reference_decoder.py), which only reads model files, so the reference
decoder stays off the production path; the format constants come from the oracle (the reader defines the
format)."""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .reference_decoder import _DTYPE_CODE, _ENTRY, _HEADER, ALIGN, BLOB_VERSION, MAGIC, MAX_DIMS, NAME_BYTES

__all__ = ["write_blob", "pmf_to_cdf", "BLOB_VERSION"]


def write_blob(sections: dict[str, np.ndarray]) -> bytes:
    """Serialise named arrays (int8/uint8/int16/uint16/int32/uint32/float32, ndim <= 4) to a blob."""
    n = len(sections)
    table_end = _HEADER.size + n * _ENTRY.size
    offset = -(-table_end // ALIGN) * ALIGN
    entries, chunks = [], []
    for name, arr in sections.items():
        arr = np.asarray(arr)
        if arr.dtype not in _DTYPE_CODE:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        if arr.ndim > MAX_DIMS or len(name.encode()) >= NAME_BYTES:
            raise ValueError(f"{name}: too many dims or name too long")
        data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        shape = list(arr.shape) + [0] * (MAX_DIMS - arr.ndim)
        entries.append(_ENTRY.pack(name.encode(), _DTYPE_CODE[arr.dtype], arr.ndim, *shape, offset, len(data)))
        pad = -(-len(data) // ALIGN) * ALIGN - len(data)
        chunks.append((offset, data + b"\0" * pad))
        offset += len(data) + pad
    total = offset + 4
    out = bytearray(_HEADER.pack(MAGIC, BLOB_VERSION, n, total) + b"".join(entries))
    out += b"\0" * (-(-table_end // ALIGN) * ALIGN - table_end)
    for off, chunk in chunks:
        assert len(out) == off
        out += chunk
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


def pmf_to_cdf(pmf: np.ndarray, total: int = 4096) -> np.ndarray:
    """[C, S] probabilities -> [C, S+1] uint16 CDF from 0 to `total`, every frequency >= 1.

    Deterministic integer quantiser: f = 1 + floor(p·(total − S)) (p renormalised in float64), then
    the remaining counts go one each to the symbols with the largest fractional parts (ties: lower
    symbol first)."""
    p = np.clip(np.asarray(pmf, dtype=np.float64), 0.0, None)
    c, s = p.shape
    p = p / p.sum(axis=1, keepdims=True)
    raw = p * (total - s)
    base = np.floor(raw)
    freq = base.astype(np.int64) + 1
    frac = raw - base
    for i in range(c):
        rem = total - int(freq[i].sum())
        assert 0 <= rem <= s
        order = np.argsort(-frac[i], kind="stable")
        freq[i, order[:rem]] += 1
    cdf = np.zeros((c, s + 1), dtype=np.int64)
    cdf[:, 1:] = np.cumsum(freq, axis=1)
    assert (cdf[:, -1] == total).all() and (freq >= 1).all()
    return cdf.astype(np.uint16)

