"""Residual / factorized entropy coding: exact round trips, determinism, compression efficiency."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jpegai_fast import entropy
from streamutil import KERNELS, decode, gaussian_residual, smooth_cdf

THREADS = [1, 2, 3, 8, 0]
SKIP = entropy.SKIP_INDEX


def roundtrip(sym, idx, substreams=1, threads=0, kernel=None):
    data = entropy.encode_residual(sym, idx, substreams=substreams, threads=threads)
    assert isinstance(data, bytes)
    out = decode(data, idx, threads=threads, kernel=kernel)
    assert out.dtype == np.int16 and out.shape == np.shape(idx)
    np.testing.assert_array_equal(out, sym)
    return data


# --------------------------------------------------------------------------------------------------
# Random data
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("substreams", [1, 2, 7, 8, 64])
@pytest.mark.parametrize("kernel", KERNELS)
def test_random_latent_like(substreams, kernel):
    rng = np.random.default_rng(substreams)
    sym, idx = gaussian_residual(rng, (16, 40, 24), skip_fraction=0.2, extremes=50)
    roundtrip(sym, idx, substreams, kernel=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_uniform_int16_everything_escapes(kernel):
    rng = np.random.default_rng(1)
    sym = rng.integers(-32768, 32768, 5000).astype(np.int16)
    idx = rng.integers(0, 64, 5000).astype(np.uint8)
    roundtrip(sym, idx, 5, kernel=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_extremes_at_every_level(kernel):
    k = np.repeat(np.arange(64, dtype=np.uint8), 8)
    v = np.tile(np.array([32767, -32768, -32767, 0, 1, -1, 127, -128], np.int16), 64)
    for substreams in (1, 3, 64):
        roundtrip(v, k, substreams, kernel=kernel)
    r = np.array([entropy.table_radius(int(i)) for i in range(64)])
    edge = np.stack([r, -r, r + 1, -r - 1], axis=1).reshape(-1).astype(np.int16)  # escape boundaries
    roundtrip(edge, np.repeat(np.arange(64, dtype=np.uint8), 4), 2, kernel=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_empty_and_single_element(kernel):
    for shape in [(0,), (0, 5), (3, 0, 2), (1,), (1, 1, 1, 1)]:
        for substreams in (1, 2, 64):
            for value, level in [(0, 0), (-32768, 0), (32767, 63), (5, 20), (0, SKIP)]:
                sym = np.full(shape, value, np.int16)
                idx = np.full(shape, level, np.uint8)
                roundtrip(sym, idx, substreams, kernel=kernel)


def test_all_skipped():
    idx = np.full((4, 9), SKIP, np.uint8)
    sym = np.zeros((4, 9), np.int16)
    for substreams in (1, 9, 64):
        data = roundtrip(sym, idx, substreams)
        assert len(data) == len(entropy.encode_residual(sym[:0], idx[:0], substreams=substreams))


def test_skip_positions_decode_to_zero_and_do_not_cost():
    rng = np.random.default_rng(3)
    sym, idx = gaussian_residual(rng, (50, 50))
    skip = rng.random(sym.shape) < 0.5
    sym[skip] = 0
    idx_skip = idx.copy()
    idx_skip[skip] = SKIP
    data = roundtrip(sym, idx_skip, 4)
    out = entropy.decode_residual(data, idx_skip)
    assert np.all(out[skip] == 0)
    # skipping positions removes exactly those symbols: same bytes as coding the kept ones alone
    assert data == entropy.encode_residual(sym[~skip], idx[~skip], substreams=4)


def test_more_substreams_than_symbols():
    rng = np.random.default_rng(5)
    for n in range(0, 20):
        sym, idx = gaussian_residual(rng, (n,), skip_fraction=0.3)
        for substreams in (n + 1, 33, 64):
            if substreams <= 64:
                roundtrip(sym, idx, substreams)


def test_every_substream_count_thread_count_and_kernel():
    rng = np.random.default_rng(11)
    sym, idx = gaussian_residual(rng, (3, 37, 11), skip_fraction=0.1, extremes=20)
    for substreams in range(1, 65):
        data = entropy.encode_residual(sym, idx, substreams=substreams, threads=1)
        for t in THREADS:
            assert entropy.encode_residual(sym, idx, substreams=substreams, threads=t) == data
            for kernel in KERNELS:
                np.testing.assert_array_equal(decode(data, idx, threads=t, kernel=kernel), sym)


def test_non_contiguous_and_other_int_inputs():
    rng = np.random.default_rng(9)
    sym, idx = gaussian_residual(rng, (20, 30))
    ref = entropy.encode_residual(sym, idx, substreams=3)
    # Fortran order / strided views are copied to C order first: same bytes
    assert entropy.encode_residual(np.asfortranarray(sym), np.asfortranarray(idx), substreams=3) == \
        entropy.encode_residual(np.ascontiguousarray(sym), idx, substreams=3)
    big_s = np.zeros((20, 60), np.int16)
    big_s[:, ::2] = sym
    big_i = np.zeros((20, 60), np.uint8)
    big_i[:, ::2] = idx
    assert entropy.encode_residual(big_s[:, ::2], big_i[:, ::2], substreams=3) == ref
    # in-range values of wider integer dtypes are accepted
    assert entropy.encode_residual(sym.astype(np.int32), idx, substreams=3) == ref
    assert entropy.encode_residual(sym.astype(np.int64).tolist(), idx, substreams=3) == ref
    # bytes-like inputs for the decoder
    for buf in (ref, bytearray(ref), memoryview(ref), np.frombuffer(ref, np.uint8)):
        np.testing.assert_array_equal(entropy.decode_residual(buf, idx), sym)


# --------------------------------------------------------------------------------------------------
# Property-based
# --------------------------------------------------------------------------------------------------
EXTREMES = [32767, -32768, -32767, 32766, 0, 1, -1]


@st.composite
def residual_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=11))
    n = int(np.prod(shape))
    idx = draw(hnp.arrays(np.uint8, n, elements=st.one_of(st.integers(0, 63), st.just(SKIP))))
    mode = draw(st.sampled_from(["gauss", "int16", "extreme"]))
    if mode == "int16":
        sym = draw(hnp.arrays(np.int16, n, elements=st.integers(-32768, 32767)))
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        sigma = entropy.SIGMA_LEVELS[np.minimum(idx, 63)] * draw(st.sampled_from([0.5, 1.0, 3.0]))
        sym = np.clip(np.rint(rng.normal(0, sigma)), -32768, 32767).astype(np.int16)
        if mode == "extreme" and n:
            where = rng.random(n) < 0.3
            sym[where] = rng.choice(EXTREMES, size=int(where.sum()))
    sym = np.where(idx == SKIP, 0, sym).astype(np.int16)
    substreams = draw(st.integers(1, 64))
    threads = draw(st.sampled_from(THREADS))
    return sym.reshape(shape), idx.reshape(shape), substreams, threads


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(residual_case())
def test_property_roundtrip(case):
    sym, idx, substreams, threads = case
    data = entropy.encode_residual(sym, idx, substreams=substreams, threads=threads)
    for kernel in KERNELS:
        out = decode(data, idx, threads=threads, kernel=kernel)
        assert out.shape == sym.shape and out.dtype == np.int16
        np.testing.assert_array_equal(out, sym)
    # the encoder is deterministic: thread count never changes the bytes
    assert entropy.encode_residual(sym, idx, substreams=substreams, threads=1) == data


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_factorized_roundtrip(data):
    channels = data.draw(st.integers(1, 6))
    symbols = data.draw(st.integers(2, 40))
    offset = data.draw(st.integers(0, symbols - 1))
    plane = data.draw(st.lists(st.integers(0, 6), min_size=0, max_size=3))
    model = entropy.FactorizedModel(smooth_cdf(channels, symbols, seed=channels * 100 + symbols), offset)
    values = data.draw(hnp.arrays(np.int16, (channels, *plane),
                                  elements=st.integers(-offset, symbols - 1 - offset)))
    substreams = data.draw(st.integers(1, 64))
    threads = data.draw(st.sampled_from(THREADS))
    stream = model.encode(values, substreams=substreams, threads=threads)
    out = model.decode(stream, plane, threads=threads)
    assert out.shape == values.shape and out.dtype == np.int16
    np.testing.assert_array_equal(out, values)


# --------------------------------------------------------------------------------------------------
# Determinism across thread counts, substream splits and kernels
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def medium_case():
    rng = np.random.default_rng(2024)
    return gaussian_residual(rng, (24, 48, 48), skip_fraction=0.15, extremes=200)


@pytest.mark.parametrize("substreams", [1, 2, 3, 5, 8, 13, 31, 64])
def test_identical_for_every_thread_count_and_kernel(medium_case, substreams):
    sym, idx = medium_case
    streams = {t: entropy.encode_residual(sym, idx, substreams=substreams, threads=t) for t in THREADS}
    assert len(set(streams.values())) == 1, "encoder output depends on the thread count"
    data = streams[1]
    for t in THREADS:
        for kernel in KERNELS:
            np.testing.assert_array_equal(decode(data, idx, threads=t, kernel=kernel), sym)


def test_factorized_identical_for_every_thread_count():
    rng = np.random.default_rng(4)
    model = entropy.FactorizedModel(smooth_cdf(8, 31, seed=4), 15)
    values = np.clip(np.rint(rng.normal(0, 3, (8, 20, 30))), -15, 15).astype(np.int16)
    for substreams in (1, 4, 8, 64):
        streams = {t: model.encode(values, substreams=substreams, threads=t) for t in THREADS}
        assert len(set(streams.values())) == 1
        for t in THREADS:
            np.testing.assert_array_equal(model.decode(streams[1], (20, 30), threads=t), values)


def test_substream_split_is_contiguous_and_near_equal():
    """Substream j holds coded symbols [j*M/S, (j+1)*M/S): decoding a payload made from one
    prefix of the tensor must agree with the split rule (checked through the directory)."""
    from streamutil import read_ue
    rng = np.random.default_rng(8)
    sym, idx = gaussian_residual(rng, (1000,), skip_fraction=0.25)
    coded = int(np.sum(idx != SKIP))
    for substreams in (1, 3, 7, 64):
        data = entropy.encode_residual(sym, idx, substreams=substreams)
        s_minus1, pos = read_ue(data, 0)
        count, pos = read_ue(data, pos)
        assert s_minus1 + 1 == substreams and count == coded
        total = 0
        for j in range(substreams):
            words, pos = read_ue(data, pos)
            bypass, pos = read_ue(data, pos)
            run = (j + 1) * coded // substreams - j * coded // substreams
            assert 16 <= words <= run + 16
            total += 2 * words + bypass
        assert (pos + 7) // 8 + total == len(data)


# --------------------------------------------------------------------------------------------------
# A real photo's quantised residual
# --------------------------------------------------------------------------------------------------
def _dct_matrix(n=8):
    k = np.arange(n)
    m = np.sqrt(2 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] /= np.sqrt(2)
    return m


def photo_residual(name: str, step: float):
    """Luma -> 8x8 block DCT -> uniform quantiser; per-band sigma from the band's std (in steps).
    Bands with std < 0.4 are zeroed and skipped (SKIP_INDEX), the rest get sigma_to_index(std)."""
    import skimage.data
    img = getattr(skimage.data, name)().astype(np.float64)
    if img.ndim == 3:
        img = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    y = img - 128.0
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    d = _dct_matrix()
    coef = d @ blocks @ d.T                                  # (bh, bw, 8, 8)
    q = np.rint(coef / step).astype(np.int16)
    bands = q.reshape(-1, 64)
    std = bands.std(axis=0)
    idx_band = entropy.sigma_to_index(np.maximum(std, 1e-3))
    dead = std < 0.4                     # near-empty bands: zeroed and skipped, as a codec would
    bands[:, dead] = 0
    q = bands.reshape(q.shape)
    idx_band[dead] = SKIP
    sym = np.ascontiguousarray(bands.T.reshape(64, h // 8, w // 8))  # band-major, like latent channels
    idx = np.ascontiguousarray(np.broadcast_to(idx_band[:, None, None], sym.shape))
    return sym, idx


@pytest.mark.parametrize("name,step", [("astronaut", 4.0), ("coffee", 12.0), ("chelsea", 1.0),
                                       ("camera", 24.0)])
def test_photo_dct_residual(name, step):
    sym, idx = photo_residual(name, step)
    assert np.any(sym != 0)
    ideal = entropy.information_bits(sym, idx)
    for substreams in (1, 8, 64):
        data = entropy.encode_residual(sym, idx, substreams=substreams)
        for t in (1, 0):
            for kernel in KERNELS:
                np.testing.assert_array_equal(decode(data, idx, threads=t, kernel=kernel), sym)
        # overhead: < 1 % of the ideal size plus the fixed per-substream flush/directory bytes
        assert len(data) * 8 <= ideal * 1.01 + 8 * (40 * substreams + 16)


def test_photo_wavelet_residual_with_q7_indices():
    """One-level Haar of camera's luma; per-subband sigma as Q7 log-sigma through q7_to_index."""
    import skimage.data
    y = skimage.data.camera().astype(np.float64) - 128.0
    a, b = y[0::2], y[1::2]
    lo, hi = (a + b) / 2, (a - b) / 2
    ll, lh = (lo[:, 0::2] + lo[:, 1::2]) / 2, (lo[:, 0::2] - lo[:, 1::2]) / 2
    hl, hh = (hi[:, 0::2] + hi[:, 1::2]) / 2, (hi[:, 0::2] - hi[:, 1::2]) / 2
    sub = np.stack([ll, lh, hl, hh])
    sym = np.rint(sub / 3.0).astype(np.int16)
    log_sigma = np.log(np.maximum(sym.reshape(4, -1).std(axis=1), 0.01) / 0.11) / np.log(60 / 0.11) * 63
    q7 = np.rint(log_sigma * 128).astype(np.int32)
    idx = np.ascontiguousarray(np.broadcast_to(entropy.q7_to_index(q7)[:, None, None], sym.shape))
    for substreams in (1, 4):
        roundtrip(sym, idx, substreams)


# --------------------------------------------------------------------------------------------------
# Compression efficiency
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def million_latent():
    rng = np.random.default_rng(12345)
    return gaussian_residual(rng, (1_000_000,), sigma_lo=0.1, sigma_hi=60.0)


@pytest.mark.parametrize("substreams", [1, 8])
def test_size_within_one_percent_of_ideal(million_latent, substreams):
    sym, idx = million_latent
    ideal = entropy.information_bits(sym, idx)
    data = entropy.encode_residual(sym, idx, substreams=substreams)
    ratio = len(data) * 8 / ideal
    assert 1.0 <= ratio <= 1.01, f"coded size is {ratio:.5f} x ideal"
    np.testing.assert_array_equal(entropy.decode_residual(data, idx), sym)


def test_size_overhead_with_64_substreams_is_bounded(million_latent):
    sym, idx = million_latent
    ideal = entropy.information_bits(sym, idx)
    one = len(entropy.encode_residual(sym, idx, substreams=1))
    many = len(entropy.encode_residual(sym, idx, substreams=64))
    # each extra substream costs its 8 lane flushes (32 bytes) plus a few directory bytes
    assert many - one <= 63 * 40
    assert many * 8 <= ideal * 1.01 + 8 * 64 * 40


def test_concurrent_calls_from_python_threads():
    """The GIL is released around encode/decode and the pool is shared: concurrent callers must
    neither deadlock nor disturb each other's results."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(77)
    cases = [gaussian_residual(rng, (20000,), skip_fraction=0.1, extremes=20) for _ in range(4)]
    streams = [entropy.encode_residual(s, i, substreams=8) for s, i in cases]

    def work(j):
        s, i = cases[j % 4]
        data = entropy.encode_residual(s, i, substreams=8, threads=0)
        out = entropy.decode_residual(data, i, threads=0)
        return data == streams[j % 4] and np.array_equal(out, s)

    with ThreadPoolExecutor(max_workers=6) as ex:
        assert all(ex.map(work, range(48), timeout=120))
