"""API misuse raises ValueError -- never BitstreamError/LimitError (those mean "bad stream")."""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import entropy
from streamutil import OUR_ERRORS, smooth_cdf

SKIP = entropy.SKIP_INDEX


def misuse(fn, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    assert not isinstance(info.value, OUR_ERRORS), f"API misuse reported as a stream error: {info.value!r}"
    return info.value


@pytest.fixture
def ok():
    sym = np.array([0, 1, -2, 3, 0, 0], np.int16)
    idx = np.array([10, 20, 30, 40, 50, SKIP], np.uint8)
    return sym, idx, entropy.encode_residual(sym, idx)


def test_error_classes():
    assert issubclass(jpegai_fast.BitstreamError, ValueError)
    assert issubclass(jpegai_fast.LimitError, ValueError)
    assert issubclass(jpegai_fast.BitstreamError, jpegai_fast.JpegAiError)
    assert issubclass(jpegai_fast.LimitError, jpegai_fast.JpegAiError)
    e = jpegai_fast.BitstreamError("msg", "width")
    assert e.field == "width" and str(e) == "msg"
    assert jpegai_fast.LimitError("m").field is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, bool, object])
def test_symbol_dtypes_rejected(ok, dtype):
    sym, idx, _ = ok
    misuse(entropy.encode_residual, sym.astype(dtype), idx)
    misuse(entropy.information_bits, sym.astype(dtype), idx)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint16, np.float32, np.int64])
def test_scale_index_dtypes_rejected(ok, dtype):
    sym, idx, data = ok
    misuse(entropy.encode_residual, sym, idx.astype(dtype))
    misuse(entropy.decode_residual, data, idx.astype(dtype))
    misuse(entropy.information_bits, sym, idx.astype(dtype))


@pytest.mark.parametrize("bad", [32768, -32769, 40000, 2**31 - 1, -2**31])
def test_out_of_int16_values_rejected(ok, bad):
    sym, idx, _ = ok
    wide = sym.astype(np.int32 if -2**31 <= bad < 2**31 else np.int64)
    wide[1] = bad
    misuse(entropy.encode_residual, wide, idx)
    misuse(entropy.information_bits, wide, idx)


def test_uint16_above_int16_rejected(ok):
    sym, idx, _ = ok
    u = np.abs(sym).astype(np.uint16)
    u[1] = 40000
    misuse(entropy.encode_residual, u, idx)


def test_in_range_wider_ints_accepted(ok):
    sym, idx, data = ok
    assert entropy.encode_residual(sym.astype(np.int32), idx) == data
    assert entropy.encode_residual(sym.astype(np.int64), idx) == data


@pytest.mark.parametrize("shapes", [((6,), (5,)), ((2, 3), (3, 2)), ((6,), (6, 1)), ((2, 3), (6,))])
def test_shape_mismatch(shapes):
    s, i = shapes
    misuse(entropy.encode_residual, np.zeros(s, np.int16), np.full(i, 3, np.uint8))
    misuse(entropy.information_bits, np.zeros(s, np.int16), np.full(i, 3, np.uint8))


@pytest.mark.parametrize("substreams", [0, 65, -1, 1000])
def test_substreams_out_of_range(ok, substreams):
    sym, idx, _ = ok
    misuse(entropy.encode_residual, sym, idx, substreams=substreams)


@pytest.mark.parametrize("level", [64, 65, 100, 200, 254])
def test_reserved_scale_indices(ok, level):
    sym, idx, data = ok
    bad = idx.copy()
    bad[2] = level
    e = misuse(entropy.encode_residual, sym, bad)
    assert "255" in str(e) or "63" in str(e)
    misuse(entropy.decode_residual, data, bad)
    misuse(entropy.information_bits, sym, bad)


def test_nonzero_symbol_at_skip(ok):
    sym, idx, _ = ok
    bad = sym.copy()
    bad[5] = 1
    e = misuse(entropy.encode_residual, bad, idx)
    assert "skip" in str(e).lower()


def test_negative_threads(ok):
    sym, idx, data = ok
    misuse(entropy.encode_residual, sym, idx, threads=-1)
    misuse(entropy.decode_residual, data, idx, threads=-1)


def test_bad_kernel_name(ok):
    import inspect
    if "kernel" not in inspect.signature(entropy.decode_residual).parameters:
        pytest.skip("no kernel argument in this build")
    sym, idx, data = ok
    misuse(entropy.decode_residual, data, idx, kernel="sse9")


def test_decode_non_buffer_rejected(ok):
    sym, idx, data = ok
    for bad in ("a string", 12345, None, [1, 2, 3]):
        with pytest.raises((TypeError, ValueError)) as info:
            entropy.decode_residual(bad, idx)
        assert not isinstance(info.value, OUR_ERRORS)


def test_sigma_to_index_nan():
    misuse(entropy.sigma_to_index, np.array([np.nan]))


# --------------------------------------------------------------------------------------------------
# FactorizedModel
# --------------------------------------------------------------------------------------------------
def test_factorized_model_properties():
    cdf = smooth_cdf(3, 9)
    m = entropy.FactorizedModel(cdf, 4)
    assert (m.channels, m.symbols, m.offset) == (3, 9, 4)


def test_factorized_model_bad_cdfs():
    good = smooth_cdf(2, 6)
    for mutate in [
        lambda c: c.__setitem__((0, 0), 1),            # does not start at 0
        lambda c: c.__setitem__((1, -1), 4095),        # does not end at 4096
        lambda c: c.__setitem__((0, 3), c[0, 2]),      # not strictly increasing (zero frequency)
        lambda c: c.__setitem__((0, 3), c[0, 2] - 1),  # decreasing
    ]:
        c = good.copy()
        mutate(c)
        misuse(entropy.FactorizedModel, c, 2)
    misuse(entropy.FactorizedModel, good.astype(np.int32), 2)           # dtype
    misuse(entropy.FactorizedModel, good[0], 2)                         # 1-D
    misuse(entropy.FactorizedModel, good, -1)                           # offset
    misuse(entropy.FactorizedModel, good, 6)                            # offset == symbols
    misuse(entropy.FactorizedModel, np.zeros((0, 7), np.uint16), 0)     # no channels
    misuse(entropy.FactorizedModel, np.array([[0, 4096]], np.uint16), 0)  # 1 symbol
    wide = np.zeros((1, 258), np.uint16)
    wide[0, 1:] = np.arange(1, 258)
    wide[0, -1] = 4096
    misuse(entropy.FactorizedModel, wide, 0)                            # 257 symbols
    for shape in [(3, 0), (0, 0), (5000, 3), (1, 1)]:                   # degenerate tables
        misuse(entropy.FactorizedModel, np.zeros(shape, np.uint16), 0)


def test_factorized_encode_misuse():
    m = entropy.FactorizedModel(smooth_cdf(3, 9), 4)
    v = np.zeros((3, 4, 4), np.int16)
    misuse(m.encode, v[:2])                    # channel count
    misuse(m.encode, v.astype(np.int32))       # dtype
    hi = v.copy()
    hi[1, 2, 3] = 5                            # index 9 = symbols: outside
    misuse(m.encode, hi)
    lo = v.copy()
    lo[0, 0, 0] = -5
    misuse(m.encode, lo)
    misuse(m.encode, v, substreams=0)
    misuse(m.encode, v, substreams=65)
    data = m.encode(v)
    misuse(m.decode, data, [4, -1])
