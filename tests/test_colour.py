"""The colour stage in C++ (csrc/colour.cpp) equals the numpy definition (src/jpegai_fast/colour.py
yuv420_to_rgb, itself tested against the whole-picture reference) byte for byte: odd sizes, values outside
0-255, exact .5 ties, every thread count, and with the forced-baseline switch (tests/test_forced_baseline.py)."""
from __future__ import annotations

import numpy as np
import pytest

from jpegai_fast import _core, colour


# widths around the AVX2 kernel's 16-pixel step exercise its scalar tail and its last chroma column
@pytest.mark.parametrize("hw", [(1, 1), (1, 64), (64, 1), (2, 3), (5, 7), (33, 17), (3, 15), (4, 16), (3, 31),
                                (2, 32), (7, 47), (6, 48), (130, 261), (512, 768)])
def test_cpp_colour_equals_numpy(hw):
    h, w = hw
    rng = np.random.default_rng(h * 1000 + w)
    y = (rng.random((h, w)) * 300 - 20).astype(np.float32)
    uv = (rng.random((2, (h + 1) // 2, (w + 1) // 2)) * 300 - 20).astype(np.float32)
    y.flat[::5] = np.float32(100.5)  # ties: round half to even
    uv.flat[::3] = np.float32(128.0)
    y.flat[1::7] = np.float32(-0.5)  # a negative tie (rint gives -0.0) and far outside the range
    y.flat[2::11] = np.float32(1e6)
    uv.flat[1::13] = np.float32(-1e6)
    want = colour.yuv420_to_rgb(y, uv)
    for threads in (1, 2, 3, 0):
        np.testing.assert_array_equal(_core.yuv420_to_rgb(y, uv, threads), want)


def test_bad_planes_are_refused():
    with pytest.raises(ValueError):
        _core.yuv420_to_rgb(np.zeros((4, 4), np.float32), np.zeros((2, 3, 2), np.float32))
    with pytest.raises(ValueError):
        _core.yuv420_to_rgb(np.zeros((4, 4), np.float64), np.zeros((2, 2, 2), np.float32))
