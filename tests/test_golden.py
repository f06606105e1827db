"""Golden bitstreams (CompressAI style): fixed inputs -> sha256 of the encoder output, pinned in
tests/golden/bitstreams.json.  Any change of the coded bytes (tables, directory layout, lane
interleaving, substream split, container) fails here: bump the format version, then regenerate with

    JPEGAI_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

The inputs come from an integer-only generator (splitmix64, no numpy RNG, no libm), so they are
identical on every machine and numpy version; their sha256 is pinned too, so a generator change is
reported as such and not as a codec change.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np
import pytest

from jpegai_fast import container, entropy

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "bitstreams.json"
REGEN = os.environ.get("JPEGAI_REGEN_GOLDEN") == "1"
SKIP = entropy.SKIP_INDEX

# round(256 * sigma_k), written out so that no floating point enters the inputs
AMP = [28, 31, 34, 38, 42, 46, 51, 57, 63, 69, 77, 85, 94, 103, 114, 126, 140, 154, 170, 188, 208, 230, 254,
       281, 311, 343, 379, 419, 463, 512, 566, 626, 691, 764, 845, 933, 1032, 1140, 1260, 1393, 1539, 1701,
       1880, 2078, 2296, 2538, 2805, 3100, 3426, 3786, 4185, 4625, 5111, 5649, 6243, 6900, 7626, 8428, 9315,
       10295, 11378, 12575, 13898, 15360]
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def residual_input(seed: int, shape, *, skip_every: int = 0, extremes: bool = False):
    """Approximately N(0, sigma_k) integers: Irwin-Hall sum of four 16-bit uniforms, scaled by AMP."""
    rng = SplitMix64(seed)
    n = int(np.prod(shape))
    idx = np.empty(n, np.uint8)
    sym = np.empty(n, np.int16)
    for i in range(n):
        r = rng.next()
        k = r % 64
        z = sum((r >> (16 * j)) & 0xFFFF for j in range(4)) - 2 * 65535     # std ~ 37837
        v = (z * AMP[k]) // (37837 * 256)
        if skip_every and rng.next() % skip_every == 0:
            k, v = SKIP, 0
        idx[i], sym[i] = k, max(-32768, min(32767, v))
    if extremes and n >= 8:
        sym[:4] = [32767, -32768, -32767, 1000]
        idx[:4] = [0, 63, 5, 40]
    return sym.reshape(shape), idx.reshape(shape)


def factorized_input(seed: int, channels: int, symbols: int, plane):
    rng = SplitMix64(seed)
    cdf = np.zeros((channels, symbols + 1), np.uint16)
    for c in range(channels):
        f = [1 + (rng.next() % 50) * (1 + (abs(i - symbols // 2) < 3) * 20) for i in range(symbols)]
        total = sum(f)
        f = [max(1, x * 4096 // total) for x in f]
        f[symbols // 2] += 4096 - sum(f)
        cdf[c, 1:] = np.cumsum(f)
    offset = symbols // 2
    n = channels * int(np.prod(plane))
    vals = np.array([(rng.next() % 9) - 4 for _ in range(n)], np.int16).reshape(channels, *plane)
    return cdf, offset, vals


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def case_residual(seed, shape, substreams, **kw):
    sym, idx = residual_input(seed, shape, **kw)
    data = entropy.encode_residual(sym, idx, substreams=substreams)
    np.testing.assert_array_equal(entropy.decode_residual(data, idx), sym)
    return sha(sym.tobytes() + idx.tobytes()), data


def case_factorized(seed, substreams):
    cdf, offset, vals = factorized_input(seed, 4, 15, (6, 7))
    model = entropy.FactorizedModel(cdf, offset)
    data = model.encode(vals, substreams=substreams)
    np.testing.assert_array_equal(model.decode(data, (6, 7)), vals)
    return sha(cdf.tobytes() + vals.tobytes() + bytes([offset])), data


def case_container():
    sym, idx = residual_input(7, (4, 8, 8), skip_every=5)
    cdf, offset, vals = factorized_input(8, 4, 15, (2, 2))
    h = container.PictureHeader()
    h.width, h.height, h.model_id, h.rate_point, h.gain_log_luma, h.gain_log_chroma = 1920, 1080, 3, 2, -200, 77
    h.tile_size, h.tile_overlap, h.coded_channels_chroma = 512, 64, 40
    segs = {"SOZ": entropy.FactorizedModel(cdf, offset).encode(vals),
            "SORP": entropy.encode_residual(sym, idx, substreams=2), "SORS": b"", "UDI": b"golden"}
    data = container.write(h, segs)
    assert container.parse(data)[1] == segs
    return sha(sym.tobytes() + idx.tobytes() + cdf.tobytes() + vals.tobytes()), data


CASES = {
    "residual_1_substream": lambda: case_residual(1, (8, 16, 16), 1),
    "residual_8_substreams_skips_extremes": lambda: case_residual(2, (8, 16, 16), 8, skip_every=4, extremes=True),
    "residual_64_substreams_40_symbols": lambda: case_residual(3, (40,), 64, skip_every=3),
    "residual_empty": lambda: case_residual(4, (0,), 1),
    "factorized_1_substream": lambda: case_factorized(5, 1),
    "factorized_8_substreams": lambda: case_factorized(5, 8),
    "container": case_container,
}


def load() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_bitstream(name):
    input_sha, data = CASES[name]()
    entry = {"input_sha256": input_sha, "output_sha256": sha(data), "output_bytes": len(data),
             "output_head_hex": data[:24].hex()}
    if REGEN:
        golden = load()
        golden[name] = entry
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=2) + "\n")
        return
    golden = load()
    assert name in golden, f"no golden entry for {name}: run JPEGAI_REGEN_GOLDEN=1 pytest tests/test_golden.py"
    want = golden[name]
    assert entry["input_sha256"] == want["input_sha256"], "the test-input generator changed (not the codec)"
    assert entry == want, (f"{name}: the encoder output changed ({len(data)} bytes, head {data[:24].hex()}); "
                           "if intended, bump the format version and regenerate the golden file")


def test_golden_file_covers_every_case():
    if REGEN:
        pytest.skip("regenerating")
    assert set(load()) == set(CASES)


def test_splitmix64_reference_values():
    # published splitmix64 outputs for seed 0 (Vigna's reference implementation)
    g = SplitMix64(0)
    assert [g.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
