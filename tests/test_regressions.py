"""Regression tests for bugs the test suite found in csrc/ and src/ (fixed in 5a85577).

Each section names the bug as it was reported (file, function, repro); the tests failed before the
fix and must keep passing.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jpegai_fast import _core, container, entropy
from streamutil import OUR_ERRORS, valid_header

# --------------------------------------------------------------------------------------------------
# BUG 1 (memory safety, fixed): the bindings ignore buffer strides.
# csrc/bindings.cpp, decode_residual_py / parse_codestream lambda / FactorizedModel.decode lambda:
# `data.request()` asks for PyBUF_STRIDES, then the code reads buf.size * buf.itemsize bytes
# contiguously from buf.ptr.  A non-contiguous buffer (numpy view with a step, or a negative step)
# is accepted; with step -1, buf.ptr is the *last* byte of the memory, so the decoder reads
# len - 1 bytes past the end of the object (SIGSEGV next to a guard page; heap over-read otherwise).
# With step 2 it silently decodes the wrong bytes.  Fix: request a C-contiguous buffer
# (PyBUF_C_CONTIGUOUS / py::buffer_info check of strides, or copy to bytes) and raise otherwise.
# --------------------------------------------------------------------------------------------------
_NEGATIVE_STRIDE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import streamutil as su
    from jpegai_fast import container, entropy

    target = sys.argv[1]
    if target == "parse":
        data = container.write(su.valid_header(), {{"UDI": b"x"}})
        run = lambda buf: container.parse(buf)
    elif target == "residual":
        idx = np.full(100, 30, np.uint8)
        data = entropy.encode_residual(np.zeros(100, np.int16), idx)
        run = lambda buf: entropy.decode_residual(buf, idx)
    else:
        model = entropy.FactorizedModel(su.smooth_cdf(2, 9), 4)
        data = model.encode(np.zeros((2, 50), np.int16))
        run = lambda buf: model.decode(buf, [50])
    arena = su.GuardedArena(len(data))
    page = np.frombuffer(arena.map, np.uint8)[su.PAGE:2 * su.PAGE]
    page[-len(data):] = np.frombuffer(data[::-1], np.uint8)    # stored backwards, flush to the guard
    view = page[-len(data):][::-1]                              # logically == data, stride -1
    assert bytes(view) == data
    print("calling the decoder", flush=True)
    try:
        run(view)
        print("decoded")
    except (ValueError, TypeError) as e:                        # a clean refusal is fine too
        print("refused", type(e).__name__)
""")


@pytest.mark.parametrize("target", ["residual", "parse", "factorized"])
def test_regression_negative_stride_buffer_reads_out_of_bounds(target, tmp_path):
    """BUG 1: decode_residual / container.parse / FactorizedModel.decode on np_view[::-1] read past the
    buffer.  Repro: `python -c` the script below -> exit code -11 (SIGSEGV)."""
    import pathlib
    script = tmp_path / "neg_stride.py"
    script.write_text(_NEGATIVE_STRIDE_SCRIPT.format(tests=str(pathlib.Path(__file__).resolve().parent)))
    r = subprocess.run([sys.executable, str(script), target], capture_output=True, text=True, timeout=60)
    assert "calling the decoder" in r.stdout, r.stderr[-2000:]      # the setup itself worked
    assert r.returncode == 0, (f"{target}: process died with {r.returncode} (negative = signal) on a buffer "
                               f"with stride -1\n{r.stderr[-2000:]}")


def test_regression_strided_buffer_decodes_wrong_bytes():
    """BUG 1 (second face): a step-2 view whose logical bytes are a valid stream must decode to the
    original symbols (or be refused with a plain ValueError/TypeError) -- today it is read as raw
    memory and reported as a *corrupt stream*.  Repro:
        s = entropy.encode_residual(sym, idx); m = np.zeros(2*len(s), np.uint8); m[::2] = list(s)
        entropy.decode_residual(m[::2], idx)   # BitstreamError: coded symbol count does not match"""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 64, 500).astype(np.uint8)
    sym = np.clip(np.rint(rng.normal(0, entropy.SIGMA_LEVELS[idx])), -32768, 32767).astype(np.int16)
    data = entropy.encode_residual(sym, idx, substreams=2)
    backing = np.zeros(2 * len(data), np.uint8)
    backing[::2] = np.frombuffer(data, np.uint8)
    view = backing[::2]
    assert bytes(view) == data
    try:
        out = entropy.decode_residual(view, idx)
    except OUR_ERRORS as e:
        pytest.fail(f"a valid stream in a strided buffer was reported as corrupt: {e!r}")
    except (ValueError, TypeError):
        return
    np.testing.assert_array_equal(out, sym)


def test_regression_strided_buffer_container():
    """BUG 1 for container.parse: a step-2 view of a valid codestream is reported as corrupt."""
    data = container.write(valid_header(), {"SORP": b"abc"})
    backing = np.zeros(2 * len(data), np.uint8)
    backing[::2] = np.frombuffer(data, np.uint8)
    try:
        _, segs = container.parse(backing[::2])
    except OUR_ERRORS as e:
        pytest.fail(f"a valid codestream in a strided buffer was reported as corrupt: {e!r}")
    except (ValueError, TypeError):
        return
    assert segs == {"SORP": b"abc"}


# --------------------------------------------------------------------------------------------------
# BUG 2 (fixed): 0-d tensors.  src/jpegai_fast/entropy.py, _scale_index(): np.ascontiguousarray() turns a
# 0-d array into shape (1,), while _int16_symbols() keeps 0-d int16 input as is.
# --------------------------------------------------------------------------------------------------
def test_regression_zero_dim_encode():
    """BUG 2: encode_residual(np.int16(5), np.uint8(30)) raises
    'ValueError: shape mismatch: symbols () vs scale_index (1,)'."""
    data = entropy.encode_residual(np.array(5, np.int16), np.array(30, np.uint8))
    assert entropy.decode_residual(data, np.array(30, np.uint8)) == 5


def test_regression_zero_dim_decode_shape():
    """BUG 2: decode_residual(data, <0-d uint8>) returns shape (1,) although the docstring promises
    "int16 of scale_index's shape".  Repro:
        d = entropy.encode_residual(np.array([5], np.int16), np.array([30], np.uint8))
        entropy.decode_residual(d, np.array(30, np.uint8)).shape  -> (1,)"""
    data = entropy.encode_residual(np.array([5], np.int16), np.array([30], np.uint8))
    out = entropy.decode_residual(data, np.array(30, np.uint8))
    assert out.shape == ()


# --------------------------------------------------------------------------------------------------
# BUG 3 (fixed): q7_to_index overflows.  src/jpegai_fast/entropy.py, q7_to_index(): `s.astype(np.int64) + 64`
# wraps for int64 values above 2^63 - 65 and for uint64 values >= 2^63, so huge log-sigmas map to
# level 0 instead of 63 (the docstring promises "exact integer arithmetic").
# --------------------------------------------------------------------------------------------------
def test_regression_q7_to_index_int64_overflow():
    """BUG 3: entropy.q7_to_index(np.array([2**63 - 1], np.int64)) -> [0], expected [63]."""
    big = np.array([2**63 - 1, 2**63 - 64], np.int64)
    np.testing.assert_array_equal(entropy.q7_to_index(big), [63, 63])
    np.testing.assert_array_equal(entropy.q7_to_index(np.array([2**63, 2**64 - 1], np.uint64)), [63, 63])


# --------------------------------------------------------------------------------------------------
# BUG 4 (cosmetic, fixed): csrc/container.cpp, write_codestream(): the unknown-marker message prints the
# marker in decimal behind a "0x" prefix ("unknown segment marker 0x65433" for 0xFF99).
# --------------------------------------------------------------------------------------------------
def test_regression_unknown_marker_message_is_hex():
    """BUG 4: _core.write_codestream(h, [(0xFF99, b"")]) says 'unknown segment marker 0x65433'."""
    with pytest.raises(ValueError) as info:
        _core.write_codestream(valid_header(), [(0xFF99, b"")])
    assert "0xff99" in str(info.value).lower(), str(info.value)


# --------------------------------------------------------------------------------------------------
# BUG 5 (regression introduced by 5a85577): src/jpegai_fast/entropy.py, q7_to_index():
#     s = np.minimum(s, limit) if s.dtype.kind == "u" else np.clip(s, -limit, limit)
# with limit = 1 << 20 raises OverflowError for uint8 / uint16 input under NumPy 2 (NEP 50: a Python
# int that does not fit the array's dtype is an error).  Fix: clamp in int64 after converting
# (values of dtypes narrower than 64 bits cannot wrap), or only clamp 64-bit dtypes.
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_regression_q7_to_index_small_unsigned_dtypes(dtype):
    """Was BUG 5: entropy.q7_to_index(np.array([5], np.uint8)) ->
    OverflowError: Python integer 1048576 out of bounds for uint8."""
    s = np.array([0, 63, 64, 127, 128, np.iinfo(dtype).max], dtype)
    expected = [max(0, min(63, (int(v) + 64) >> 7)) for v in s]
    np.testing.assert_array_equal(entropy.q7_to_index(s), expected)
