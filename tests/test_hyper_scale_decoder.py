"""Integer hyper-scale decoder: C++ fast kernel == C++ scalar reference == numpy oracle, bit for bit.

The fast kernel (im2col + register-tiled GEMM, csrc/hyper_scale_decoder.cpp) has three tile sets: AVX-512BW,
AVX2 and the plain C++ baseline twin.  The process's own CPU picks one; the others are reached in child
processes with JPEGAI_FAST_SIMD=avx2 (caps at AVX2) and JPEGAI_FAST_SIMD=scalar (the forced-baseline
switch).  Shapes cover 1x1 grids, rows longer than a tile (12 / 6 / 4 positions), channel counts that are
not multiples of the 16- and 32-output blocks, crops, several bands of positions, and weights, biases,
shifts and inputs at the limits that the load-time overflow check allows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpegai_fast import _core
from reference.hyper_scale_decoder import hyper_scale_decode
from shipped_model import MODELS, ROOT, requires_model

LAYER_SHAPES = lambda c: ((c, c, 1), (c, c, 3), (c, 16 * c, 1))  # noqa: E731


def random_layers(rng, c, weight_bound=127, bias_bound=2**20, shifts=(0, 12)):
    layers = []
    for cin, cout, k in LAYER_SHAPES(c):
        w = rng.integers(-weight_bound, weight_bound + 1, size=(cout, cin, k, k), dtype=np.int8)
        b = rng.integers(-bias_bound, bias_bound, size=cout, dtype=np.int32)
        s = rng.integers(*shifts, size=cout, dtype=np.int8)
        layers.append((w, b, s))
    return layers


def extreme_layers(rng, c):
    """Full int8 weights (-128 included), biases at the overflow bound |b| + 128 sum|w| = 2^31 - 1 or random,
    shifts anywhere in [0, 30] (conv3: >= 16, so that the final clamp does not hide the sums' top bits)."""
    layers = []
    for cin, cout, k in LAYER_SHAPES(c):
        w = rng.integers(-128, 128, size=(cout, cin, k, k), dtype=np.int16)
        w = np.where(rng.random(w.shape) < 0.3, rng.choice([-128, 127], size=w.shape), w)
        w = w.astype(np.int8)
        room = 2**31 - 1 - 128 * np.abs(w.astype(np.int64)).reshape(cout, -1).sum(axis=1)
        kind = rng.integers(0, 3, size=cout)
        b = np.where(kind == 0, room, np.where(kind == 1, -room, rng.integers(-room, room + 1)))
        s = rng.integers(0, 31, size=cout).astype(np.int8)
        if k == 3 or cout == cin:
            s[rng.random(cout) < 0.5] = rng.integers(0, 4)  # many small shifts: large surviving values
        else:
            s = rng.integers(16, 31, size=cout).astype(np.int8)  # conv3: the top bits of sums near 2^31, unclamped
        layers.append((w, b.astype(np.int32), s))
    return layers


def make(layers):
    flat = [a for layer in layers for a in layer]
    return _core.HyperScaleDecoder(*flat)


def case(c, hz, wz, hl, wl, flavour, seed):
    rng = np.random.default_rng(seed)
    if flavour == "extreme":
        layers = extreme_layers(rng, c)
        z = rng.integers(-32768, 32768, size=(c, hz, wz), dtype=np.int16)
        z[rng.random(z.shape) < 0.3] = 0
    elif flavour == "trained":
        layers = random_layers(rng, c, weight_bound=127, bias_bound=2**16, shifts=(3, 12))
        z = rng.integers(-40, 41, size=(c, hz, wz), dtype=np.int16)
    else:
        layers = random_layers(rng, c, weight_bound=12)
        z = rng.integers(-200, 200, size=(c, hz, wz), dtype=np.int16)  # beyond [-128, 127]: exercises the clamp
    return layers, z, (hl, wl)


# (channels, hz, wz, hl, wl): 1x1 grids, rows of 1 .. 25 positions (tile tails for 12 / 6 / 4 positions),
# channels 1 .. 96 (16-output blocks: partial, odd counts for the 32-output tiles), crops of every kind
SHAPES = [
    (1, 1, 1, 1, 1), (1, 1, 1, 4, 4), (2, 1, 1, 3, 2), (3, 2, 7, 5, 26), (4, 3, 5, 12, 20), (4, 3, 5, 1, 1),
    (5, 1, 13, 4, 52), (7, 13, 1, 50, 3), (8, 4, 4, 13, 15), (16, 1, 1, 1, 1), (16, 2, 2, 8, 5),
    (17, 4, 4, 13, 15), (24, 5, 6, 17, 21), (33, 3, 25, 9, 97), (48, 8, 12, 32, 48), (96, 2, 3, 8, 12),
    (6, 4, 6, 2, 23), (9, 7, 11, 28, 41),
]
FLAVOURS = ("random", "trained", "extreme")
CASES = [(*shape, flavour) for shape in SHAPES for flavour in FLAVOURS]


def _id(c):
    return "c{}_{}x{}_{}x{}_{}".format(*c)


@pytest.mark.parametrize("c,hz,wz,hl,wl,flavour", CASES, ids=[_id(c) for c in CASES])
def test_fast_equals_scalar_equals_numpy(c, hz, wz, hl, wl, flavour):
    layers, z, hw = case(c, hz, wz, hl, wl, flavour, seed=c * 1000 + hz * 37 + wz)
    hsd = make(layers)
    expected = hyper_scale_decode(z, layers, hw)
    assert expected.shape == (c, hl, wl)
    np.testing.assert_array_equal(hsd.forward(z, hl, wl, kernel="scalar"), expected)
    for threads in (1, 2, 3, 0):
        np.testing.assert_array_equal(hsd.forward(z, hl, wl, threads=threads, kernel="auto"), expected)


def test_several_bands_of_positions():
    """400 positions at 64 channels: the im2col panel of conv2 is built in two bands."""
    layers, z, hw = case(64, 20, 20, 77, 80, "trained", seed=5)
    hsd = make(layers)
    expected = hyper_scale_decode(z, layers, hw)
    for threads in (1, 3):
        np.testing.assert_array_equal(hsd.forward(z, *hw, threads=threads), expected)
    np.testing.assert_array_equal(hsd.forward(z, *hw, kernel="scalar"), expected)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=st.integers(1, 40), hz=st.integers(1, 6), wz=st.integers(1, 15), fh=st.floats(0, 1), fw=st.floats(0, 1),
       flavour=st.sampled_from(FLAVOURS), seed=st.integers(0, 2**32 - 1), threads=st.sampled_from([1, 2, 0]))
def test_property_fast_equals_numpy(c, hz, wz, fh, fw, flavour, seed, threads):
    hl, wl = 1 + int(fh * (4 * hz - 1)), 1 + int(fw * (4 * wz - 1))
    layers, z, hw = case(c, hz, wz, hl, wl, flavour, seed)
    np.testing.assert_array_equal(make(layers).forward(z, hl, wl, threads=threads), hyper_scale_decode(z, layers, hw))


def test_legacy_kernel_still_exact(monkeypatch):
    """The previous kernel, kept for bench/test_hyper_scale.py (JPEGAI_FAST_HSD_LEGACY=1, read per call)."""
    layers, z, hw = case(17, 4, 5, 15, 19, "extreme", seed=11)
    hsd = make(layers)
    expected = hyper_scale_decode(z, layers, hw)
    monkeypatch.setenv("JPEGAI_FAST_HSD_LEGACY", "1")
    np.testing.assert_array_equal(hsd.forward(z, *hw, threads=2), expected)
    monkeypatch.delenv("JPEGAI_FAST_HSD_LEGACY")
    np.testing.assert_array_equal(hsd.forward(z, *hw, threads=2), expected)


CHILD = r"""
import json, sys
import numpy as np
from jpegai_fast import _core
data = np.load(sys.argv[1])
out = {}
for n in range(int(data["count"])):
    arrays = [data[f"{n}_{i}"] for i in range(9)]
    hsd = _core.HyperScaleDecoder(*arrays)
    hl, wl = (int(v) for v in data[f"{n}_hw"])
    for threads in (1, 2):
        out[f"{n}_{threads}"] = hsd.forward(data[f"{n}_z"], hl, wl, threads=threads, kernel="auto")
np.savez(sys.argv[2], **out)
print(json.dumps(_core.cpu_features()))
"""

CHILD_SHAPES = [(1, 1, 1, 1, 1), (3, 2, 7, 5, 26), (5, 1, 13, 4, 52), (17, 4, 4, 13, 15), (33, 3, 25, 9, 97),
                (48, 8, 12, 32, 48), (9, 7, 11, 28, 41)]


@pytest.mark.parametrize("simd", ["scalar", "avx2"])
def test_capped_simd_levels_in_a_child(tmp_path, simd):
    """JPEGAI_FAST_SIMD=scalar runs the baseline twin, =avx2 the AVX2 tiles: both bit-exact too."""
    cases = [case(*shape, flavour, seed=i) for i, (shape, flavour) in
             enumerate((s, f) for s in CHILD_SHAPES for f in FLAVOURS)]
    arrays = {"count": np.array(len(cases))}
    for n, (layers, z, hw) in enumerate(cases):
        for i, a in enumerate(a for layer in layers for a in layer):
            arrays[f"{n}_{i}"] = a
        arrays[f"{n}_z"], arrays[f"{n}_hw"] = z, np.array(hw)
    np.savez(tmp_path / "in.npz", **arrays)
    env = dict(os.environ, JPEGAI_FAST_SIMD=simd)
    env.pop("JPEGAI_FAST_HSD_LEGACY", None)
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    features = json.loads(res.stdout)
    if simd == "scalar":
        assert features == "scalar (forced baseline)"
    else:
        assert features in ("avx2", "scalar")  # "scalar" only on a CPU without AVX2
    got = np.load(tmp_path / "out.npz")
    for n, (layers, z, hw) in enumerate(cases):
        expected = hyper_scale_decode(z, layers, hw)
        for threads in (1, 2):
            np.testing.assert_array_equal(got[f"{n}_{threads}"], expected, err_msg=f"case {n}, {threads} threads")


@requires_model
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_shipped_models_at_kodak_size(model):
    """The trained HSDs of every shipped model, z 8 x 12 -> latent 32 x 48 (Kodak landscape)."""
    from training import reference_decoder as rd

    sections = rd.read_blob((model / "model.bin").read_bytes())
    rng = np.random.default_rng(3)
    for comp in ("luma", "chroma"):
        layers = [tuple(sections[f"hsd.{comp}.conv{i}.{n}"] for n in ("weight", "bias", "shift")) for i in (1, 2, 3)]
        hsd = make(layers)
        z = rng.integers(-31, 32, size=(hsd.channels, 8, 12), dtype=np.int16)
        expected = hyper_scale_decode(z, layers, (32, 48))
        np.testing.assert_array_equal(hsd.forward(z, 32, 48, kernel="scalar"), expected)
        for threads in (1, 2):
            np.testing.assert_array_equal(hsd.forward(z, 32, 48, threads=threads), expected)


def test_jpeg_ai_size_luma_layout():
    """160 channels at Kodak's z size (8 x 12 -> latent 32 x 48), realistic weight magnitudes."""
    rng = np.random.default_rng(7)
    layers = random_layers(rng, 160, weight_bound=3, bias_bound=2**16)
    z = rng.integers(-31, 32, size=(160, 8, 12), dtype=np.int16)
    hsd = make(layers)
    out = hsd.forward(z, 32, 48)
    np.testing.assert_array_equal(out, hyper_scale_decode(z, layers, (32, 48)))
    assert out.dtype == np.int32 and out.min() >= 0 and out.max() <= _core.MAX_LOG_SIGMA


def test_rejects_overflowing_or_malformed_layers():
    rng = np.random.default_rng(1)
    layers = random_layers(rng, 4)
    w, b, s = layers[1]
    with pytest.raises(ValueError, match="overflow"):
        make([layers[0], (w, np.full_like(b, 2**31 - 1), s), layers[2]])
    with pytest.raises(ValueError, match="shift"):
        make([layers[0], (w, b, np.full_like(s, 31)), layers[2]])
    with pytest.raises(ValueError, match="conv2"):
        make([layers[0], layers[0], layers[2]])
    hsd = make(layers)
    z = np.zeros((4, 2, 2), np.int16)
    with pytest.raises(ValueError):
        hsd.forward(z, 9, 8)  # latent larger than 4 x z
    with pytest.raises(ValueError):
        hsd.forward(np.zeros((5, 2, 2), np.int16), 8, 8)  # wrong channel count


def test_matches_torch_qat_model():
    """The torch QAT forward (training/) equals the numpy oracle and the C++ core bit for bit."""
    torch = pytest.importorskip("torch")
    hyper_scale_int = pytest.importorskip("training.hyper_scale_int")
    torch.manual_seed(0)
    model = hyper_scale_int.HyperScaleDecoderInt(8).double()
    params = model.export_int()
    layers = [tuple(params[f"conv{i}.{n}"].numpy() for n in ("weight", "bias", "shift")) for i in (1, 2, 3)]
    z = torch.randint(-31, 32, (1, 8, 3, 5))
    with torch.no_grad():
        qat = model(z.double(), (11, 19))[0].numpy()
    ref = model.int_forward(z, (11, 19))[0].numpy()
    oracle = hyper_scale_decode(z[0].numpy(), layers, (11, 19))
    np.testing.assert_array_equal(qat.astype(np.int64), oracle)
    np.testing.assert_array_equal(ref, oracle)
    np.testing.assert_array_equal(make(layers).forward(z[0].numpy().astype(np.int16), 11, 19), oracle)


def test_scale_index_map_matches_the_integer_definition():
    from jpegai_fast import entropy

    rng = np.random.default_rng(3)
    s = rng.integers(0, 63 * 128, size=(6, 5, 7)).astype(np.int32)
    gain = rng.integers(-700, 700, size=6).astype(np.int32)
    idx = np.clip((s.astype(np.int64) + gain[:, None, None] + 64) >> 7, 0, 63)
    expected = np.where(idx < 4, 255, idx).astype(np.uint8)
    np.testing.assert_array_equal(entropy.scale_index_map(s, gain, skip_below=4), expected)
    np.testing.assert_array_equal(entropy.scale_index_map(s, gain, skip_below=0), idx.astype(np.uint8))
    with pytest.raises(ValueError):
        entropy.scale_index_map(s, gain[:5], 4)
    with pytest.raises(ValueError):
        entropy.scale_index_map(s.astype(np.int64), gain, 4)
