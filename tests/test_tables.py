"""The frozen residual tables (csrc/sigma_tables*.{hpp,cpp,inc}) and the sigma -> index mappings."""
from __future__ import annotations

import importlib.util
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from jpegai_fast import _core, entropy

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_TABLE_HASH = 3089795567334253282  # FNV-1a 64 of the frozen tables; change only with a format bump


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_sigma_tables", ROOT / "tools" / "gen_sigma_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table_hash_golden():
    assert entropy.table_hash() == GOLDEN_TABLE_HASH


def test_table_hash_recomputed_independently():
    """FNV-1a 64 over LE bytes of radius, escape order, frequencies, then the packed decode table,
    recomputed here from the exported per-level tables: pins what table_hash() hashes."""
    levels = range(entropy.NUM_LEVELS)
    radius = [entropy.table_radius(k) for k in levels]
    order = [_core.table_escape_order(k) for k in levels]
    freqs = [entropy.table_freqs(k).astype(np.int64) for k in levels]
    decode = np.empty((entropy.NUM_LEVELS, 4096), np.uint32)
    for k in levels:
        f = freqs[k]
        start = np.concatenate([[0], np.cumsum(f)[:-1]])
        byte = np.concatenate([np.arange(-radius[k], radius[k] + 1) + 128, [0]])
        entry = f | (start << 12) | (byte << 24)
        decode[k] = np.repeat(entry, f)
    blob = (bytes(radius) + bytes(order) + np.concatenate(freqs).astype("<u2").tobytes()
            + decode.astype("<u4").tobytes())
    h = 0xCBF29CE484222325
    for b in blob:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    assert h == entropy.table_hash() == GOLDEN_TABLE_HASH


def test_frozen_file_equals_generator_output(gen):
    assert (ROOT / "csrc" / "sigma_tables_data.inc").read_text() == gen.render()


def test_generator_check_cli():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_sigma_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_core_tables_equal_generator(gen):
    for k in range(entropy.NUM_LEVELS):
        radius, order, freqs = gen.build_level(k)
        assert entropy.table_radius(k) == radius
        assert _core.table_escape_order(k) == order
        np.testing.assert_array_equal(entropy.table_freqs(k), np.array(freqs, np.uint16))


@pytest.mark.parametrize("k", range(64))
def test_level_frequencies_valid(k):
    f = entropy.table_freqs(k)
    r = entropy.table_radius(k)
    assert f.dtype == np.uint16
    assert f.size == 2 * r + 2                 # symbols -R..R, then the escape
    assert int(f.astype(np.int64).sum()) == 1 << entropy.PROB_BITS
    assert f.min() >= 1
    assert 0 <= r <= 127
    core = f[:-1].astype(np.int64)
    # zero-mean: symmetric up to the quantiser's tie-break (the greedy fix-up in
    # tools/gen_sigma_tables.py moves single units, so 20 levels differ by 1 between v and -v)
    assert np.abs(core - core[::-1]).max() <= 1
    assert core[r] == core.max()                       # mode at 0 ...
    assert np.all(np.diff(core[r:]) <= 0) and np.all(np.diff(core[:r + 1]) >= 0)  # ... and unimodal


def test_radius_and_order_monotone():
    radius = [entropy.table_radius(k) for k in range(64)]
    order = [_core.table_escape_order(k) for k in range(64)]
    assert radius == sorted(radius) and radius[-1] == 127
    assert order == sorted(order) and 0 <= order[0] and order[-1] <= 15


def test_table_accessors_reject_bad_levels():
    for bad in (-1, 64, 255):
        with pytest.raises(ValueError):
            entropy.table_freqs(bad)
        with pytest.raises(ValueError):
            entropy.table_radius(bad)


def test_constants():
    assert entropy.NUM_LEVELS == 64
    assert entropy.SIGMA_MIN == 0.11 and entropy.SIGMA_MAX == 60.0
    assert entropy.PROB_BITS == 12
    assert entropy.SKIP_INDEX == 255
    assert entropy.MAX_SUBSTREAMS == 64
    assert entropy.LOG_SIGMA_FRAC_BITS == 7


def test_sigma_levels_formula():
    k = np.arange(64)
    expected = 0.11 * (60.0 / 0.11) ** (k / 63)
    np.testing.assert_allclose(entropy.SIGMA_LEVELS, expected, rtol=1e-13, atol=0)
    assert entropy.SIGMA_LEVELS.dtype == np.float64 and entropy.SIGMA_LEVELS.shape == (64,)
    assert entropy.SIGMA_LEVELS[0] == pytest.approx(0.11, abs=1e-15)
    assert entropy.SIGMA_LEVELS[-1] == pytest.approx(60.0, rel=1e-14)
    assert np.all(np.diff(entropy.SIGMA_LEVELS) > 0)
    with pytest.raises(ValueError):
        entropy.SIGMA_LEVELS[0] = 1.0     # read-only


def test_sigma_to_index_at_levels_and_midpoints():
    levels = entropy.SIGMA_LEVELS
    np.testing.assert_array_equal(entropy.sigma_to_index(levels), np.arange(64, dtype=np.uint8))
    mid = np.sqrt(levels[:-1] * levels[1:])  # geometric midpoints: the rounding boundaries
    np.testing.assert_array_equal(entropy.sigma_to_index(mid * (1 - 1e-9)), np.arange(63))
    np.testing.assert_array_equal(entropy.sigma_to_index(mid * (1 + 1e-9)), np.arange(1, 64))


def test_sigma_to_index_clamps_and_shapes():
    out = entropy.sigma_to_index([0.0, -1.0, 1e-30, 0.05, 0.11, 60.0, 61.0, 1e300, np.inf])
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 63, 63, 63, 63])
    assert out.dtype == np.uint8
    grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 24)).reshape(2, 3, 4)
    out = entropy.sigma_to_index(grid)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    # nearest level in the log domain, by brute force
    brute = np.argmin(np.abs(np.log(grid)[..., None] - np.log(entropy.SIGMA_LEVELS)), axis=-1)
    np.testing.assert_array_equal(out, brute)
    assert entropy.sigma_to_index(3.0).shape == ()
    with pytest.raises(ValueError):
        entropy.sigma_to_index([1.0, np.nan])


def _q7_reference(s: int) -> int:
    return max(0, min(63, (s + 64) >> 7))  # Python ints: floor shift, no overflow


def test_q7_to_index_formula():
    s = np.arange(-2000, 9000, dtype=np.int32)
    np.testing.assert_array_equal(entropy.q7_to_index(s), [_q7_reference(int(v)) for v in s])
    k = np.arange(64)
    np.testing.assert_array_equal(entropy.q7_to_index(128 * k), k)            # exact levels
    np.testing.assert_array_equal(entropy.q7_to_index(128 * k + 63), k)       # round half up
    np.testing.assert_array_equal(entropy.q7_to_index(128 * k - 64), k)
    np.testing.assert_array_equal(entropy.q7_to_index(128 * k[1:] - 65), k[:-1])
    assert entropy.q7_to_index(-65) == 0 and entropy.q7_to_index(-64) == 0
    assert entropy.q7_to_index(8064 + 10**6) == 63


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32])
def test_q7_to_index_dtypes(dtype):
    info = np.iinfo(dtype)
    candidates = {info.min, info.min + 1, -65, -64, 0, 63, 64, 127, 128, 8000, 8064, info.max - 1, info.max}
    values = np.array(sorted(v for v in candidates if info.min <= v <= info.max), dtype=dtype)
    out = entropy.q7_to_index(values)
    assert out.dtype == np.uint8 and out.shape == values.shape
    np.testing.assert_array_equal(out, [_q7_reference(int(v)) for v in values])


def test_q7_to_index_rejects_floats():
    with pytest.raises(ValueError):
        entropy.q7_to_index(np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        entropy.q7_to_index(128.0)


def test_q7_and_sigma_indices_agree():
    """Q7 log-sigma of sigma_k is 128 k: both mappings land on the same level."""
    k = np.arange(64)
    q7 = np.rint(128 * np.log(entropy.SIGMA_LEVELS / 0.11) / np.log(60 / 0.11) * 63).astype(np.int64)
    np.testing.assert_array_equal(q7, 128 * k)
    np.testing.assert_array_equal(entropy.q7_to_index(q7), entropy.sigma_to_index(entropy.SIGMA_LEVELS))


def test_information_bits_matches_independent_computation():
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 64, 20000).astype(np.uint8)
    sym = np.clip(np.rint(rng.normal(0, entropy.SIGMA_LEVELS[idx] * 1.5)), -32768, 32767).astype(np.int16)
    sym[:6] = [32767, -32768, 1000, -1000, 0, 1]
    bits = 0.0
    for i, v in zip(idx.tolist(), sym.tolist()):
        f = entropy.table_freqs(i)
        r = entropy.table_radius(i)
        if -r <= v <= r:
            bits += 12 - math.log2(int(f[v + r]))
        else:
            g = _core.table_escape_order(i)
            m = abs(v) - r - 1
            prefix = ((m >> g) + 1).bit_length() - 1
            bits += 12 - math.log2(int(f[-1])) + 1 + 2 * prefix + 1 + g
    assert entropy.information_bits(sym, idx) == pytest.approx(bits, rel=1e-12)
    skip = idx.copy()
    skip[::2] = entropy.SKIP_INDEX
    sym2 = sym.copy()
    sym2[::2] = 0
    assert entropy.information_bits(sym2, skip) == pytest.approx(
        entropy.information_bits(sym2[1::2], idx[1::2]), rel=1e-12)
