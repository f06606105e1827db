"""The mean path's GEMM kernels (csrc/mean_path.cpp on csrc/int16_gemm.hpp) layer by layer, bit for bit against the
numpy definition (training/reference_decoder.py mean_layer_forward).

Tile sets: the CPU's best (AVX-512BW with or without VNNI: 32 outputs x 12 positions, AVX2: 16 x 6), AVX2 capped,
and the plain C++ baseline twin (16 x 4), chosen in-process with kernel="auto" / "avx2" / "scalar" and, in child
processes, through JPEGAI_FAST_SIMD=avx2 / scalar / avx512 (no VNNI) (the switches the decoder itself obeys).  On
a CPU without AVX-512, tools/avx512_emulated.sh runs this file against a build whose AVX-512 tiles are emulated.

Layers cover 1x1 and 3x3 convs, grouped convs (odd group widths take the packed-panel path, several bands of
it), transposed 4x4 stride-2 convs with every crop, output counts that leave partial 16-output blocks and odd
blocks for the 32-output tiles, rows of positions that leave tail tiles, 1x1 pictures, every activation, and
weights, biases, shifts and inputs at the limits the load-time overflow check allows (|bias| + 32768 sum|w| <
2^31, inputs -32768 .. 32767).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jpegai_fast import _core
from shipped_model import MODELS, ROOT, requires_model  # noqa: F401  (repository root on sys.path)
from training import model_file
from training import reference_decoder as rd

CONV, CONVT = rd.MEAN_KIND_CONV, rd.MEAN_KIND_CONVT
NONE, RELU, RELU6, LEAKY = rd.MEAN_ACT_NONE, rd.MEAN_ACT_RELU, rd.MEAN_ACT_RELU6, rd.MEAN_ACT_LEAKY
KERNELS = ("auto", "avx2", "scalar")
LIMIT = 2**31 - 1  # |bias| + 32768 sum|w| must stay below 2^31


def make_layer(rng, kind, k, groups, cin, cout, act, flavour, frac_out=9):
    """Sections of one layer (weight, bias, shift, meta) as the export writes them."""
    cig = cin // groups
    shape = (cout, cig, k, k)
    if flavour == "extreme":
        w = rng.integers(-128, 128, size=shape)
        w = np.where(rng.random(shape) < 0.3, rng.choice([-128, 127], size=shape), w)
    else:
        w = rng.integers(-12, 13, size=shape)
    per_out = np.abs(w).reshape(cout, -1).sum(axis=1)
    if (32768 * per_out).max() >= LIMIT - 2**20:  # too many taps for full-range weights: scale them down
        w = np.sign(w) * (np.abs(w) * ((LIMIT - 2**20) // 32768) // int(per_out.max()))
        per_out = np.abs(w).reshape(cout, -1).sum(axis=1)
    room = LIMIT - 32768 * per_out
    if flavour == "extreme":
        pick = rng.integers(0, 3, size=cout)
        b = np.where(pick == 0, room, np.where(pick == 1, -room, rng.integers(-room, room + 1)))
        s = rng.integers(0, 32, size=cout)
        s[rng.random(cout) < 0.4] = rng.integers(0, 3)  # small shifts: large values that saturate
    else:
        b = rng.integers(-2**16, 2**16, size=cout)
        s = rng.integers(6, 15, size=cout)
    return {"l.weight": w.astype(np.int8), "l.bias": b.astype(np.int32), "l.shift": s.astype(np.int8),
            "l.meta": np.array([kind, k, groups, 9, frac_out, act], np.int32)}


def make_input(rng, c, h, w, flavour):
    if flavour == "extreme":
        x = rng.integers(-32768, 32768, size=(h, w, c))
        x = np.where(rng.random(x.shape) < 0.4, rng.choice([-32768, 32767, 0], size=x.shape), x)
    else:
        x = rng.integers(-3000, 3001, size=(h, w, c))
    return x.astype(np.int16)


def oracle(sections, x_hwc, out_hw):
    layer = rd.mean_layer(sections, "l")
    y = rd.mean_layer_forward(layer, x_hwc.transpose(2, 0, 1), out_hw)
    return y.transpose(1, 2, 0).astype(np.int16)


# (kind, k, groups, cin, cout, h, w, out_h, out_w, act)
CASES = [
    (CONV, 1, 1, 1, 1, 1, 1, 1, 1, NONE),            # the smallest layer
    (CONV, 1, 1, 3, 5, 2, 7, 2, 7, RELU),            # odd width: panels; 5 outputs of a 16-block
    (CONV, 1, 1, 16, 17, 3, 5, 3, 5, LEAKY),         # one output past a block
    (CONV, 1, 1, 32, 33, 1, 13, 1, 13, RELU6),       # 32-output tile + a 1-output tail; 13 = 12 + 1 positions
    (CONV, 1, 1, 40, 48, 4, 6, 4, 6, NONE),          # 3 blocks: a 32 tile and a 16 tile on AVX-512
    (CONV, 1, 4, 12, 8, 3, 3, 3, 3, LEAKY),          # grouped 1x1, 2 outputs per group
    (CONV, 3, 1, 5, 7, 3, 13, 3, 13, RELU),          # 3x3, odd width, tail positions
    (CONV, 3, 1, 8, 16, 1, 1, 1, 1, NONE),           # 3x3 on one position: 8 padded taps
    (CONV, 3, 5, 15, 10, 4, 9, 4, 9, NONE),          # grouped, odd group width 3 (panels)
    (CONV, 3, 4, 32, 32, 5, 11, 5, 11, NONE),        # the context model's form: groups of 8 in, 8 out
    (CONV, 3, 2, 64, 96, 7, 6, 7, 6, RELU6),         # 48 outputs per group: 3 blocks
    (CONV, 3, 1, 33, 20, 40, 41, 40, 41, LEAKY),     # odd width on 1640 positions: several panel bands
    (CONV, 3, 1, 48, 64, 17, 25, 17, 25, RELU),      # direct reads, many tiles
    (CONVT, 4, 1, 1, 1, 1, 1, 1, 1, LEAKY),          # transposed, cropped to one sample
    (CONVT, 4, 1, 1, 1, 1, 1, 2, 2, RELU),
    (CONVT, 4, 1, 4, 6, 2, 3, 4, 6, NONE),
    (CONVT, 4, 1, 4, 6, 2, 3, 3, 5, LEAKY),          # odd crop: the last row / column of one parity only
    (CONVT, 4, 1, 17, 33, 5, 7, 9, 14, RELU6),       # odd width (panels), 33 outputs
    (CONVT, 4, 1, 32, 16, 6, 13, 12, 25, LEAKY),
]
FLAVOURS = ("random", "extreme")
ALL = [(*c, f) for c in CASES for f in FLAVOURS]


def _id(c):
    kind, k, g, cin, cout, h, w, oh, ow, act, flavour = c
    return f"{'convT' if kind == CONVT else f'conv{k}'}_g{g}_{cin}to{cout}_{h}x{w}to{oh}x{ow}_a{act}_{flavour}"


def build(case, seed):
    kind, k, groups, cin, cout, h, w, oh, ow, act, flavour = case
    rng = np.random.default_rng(seed)
    sections = make_layer(rng, kind, k, groups, cin, cout, act, flavour)
    x = make_input(rng, cin, h, w, flavour)
    return sections, x, (oh, ow)


@pytest.mark.parametrize("case", ALL, ids=[_id(c) for c in ALL])
def test_layer_equals_numpy_for_every_tile_set_and_thread_count(case):
    sections, x, out_hw = build(case, seed=ALL.index(case))
    expected = oracle(sections, x, out_hw)
    layer = _core.MeanLayer(model_file.write_blob(sections), "l", x.shape[2])
    assert layer.out_channels == expected.shape[2]
    for kernel in KERNELS:
        for threads in (1, 2, 3):
            got = layer.forward(x, *out_hw, threads=threads, kernel=kernel)
            np.testing.assert_array_equal(got, expected, err_msg=f"kernel={kernel} threads={threads}")


def test_legacy_kernel_still_exact(monkeypatch):
    """The previous kernel, kept for bench/test_mean_path.py (JPEGAI_FAST_MEAN_LEGACY=1, read per call)."""
    for n in (3, 9, 17):
        sections, x, out_hw = build(ALL[n], seed=n)
        layer = _core.MeanLayer(model_file.write_blob(sections), "l", x.shape[2])
        expected = oracle(sections, x, out_hw)
        monkeypatch.setenv("JPEGAI_FAST_MEAN_LEGACY", "1")
        np.testing.assert_array_equal(layer.forward(x, *out_hw, threads=2), expected)
        monkeypatch.delenv("JPEGAI_FAST_MEAN_LEGACY")
        np.testing.assert_array_equal(layer.forward(x, *out_hw, threads=2), expected)


@requires_model
def test_legacy_mean_path_still_exact(monkeypatch):
    """The previous reconstruct and layer kernel together (the bench's "legacy" rows), decoder and encoder side."""
    model = MODELS[0]
    blob = (model / "model.bin").read_bytes()
    sections = rd.read_blob(blob)
    ref = rd.MeanPathInt(sections)
    channels = [int(c) for c in sections["meta.channels"]]
    core = _core.MeanPath(blob, *channels)
    rng = np.random.default_rng(8)
    monkeypatch.setenv("JPEGAI_FAST_MEAN_LEGACY", "1")
    for k, comp in enumerate(("luma", "chroma")):
        c, hl, wl = channels[k], 9, 14
        z = rng.integers(-20, 21, size=(c, 3, 4)).astype(np.int16)
        idx = rng.integers(0, 64, size=(c, hl, wl)).astype(np.uint8)
        idx[rng.random(idx.shape) < 0.4] = 255
        residual = rng.integers(-300, 301, size=idx.shape).astype(np.int16)  # also where skipped: ignored
        offsets = rng.integers(-200, 200, size=c).astype(np.int32)
        y = rng.normal(0, 3, size=idx.shape).astype(np.float32)
        gain = np.exp(offsets * (np.log(60 / 0.11) / 63 / 128)).astype(np.float32)
        want_psi = ref.psi(comp, z, (hl, wl))
        psi = core.hyper_decoder(k, z, hl, wl, 2)
        np.testing.assert_array_equal(psi.transpose(2, 0, 1), want_psi)
        got, _ = core.reconstruct(k, psi, idx, offsets, residual=residual, threads=2)
        np.testing.assert_array_equal(got, ref.reconstruct(comp, want_psi, idx, offsets, residual=residual)[0])
        got, r = core.reconstruct(k, psi, idx, offsets, y=y, gain=gain, threads=2)
        want, want_r = ref.reconstruct(comp, want_psi, idx, offsets, gain=gain, y=y)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(r, want_r)


def test_bad_layer_arguments_raise_value_error():
    sections, x, _ = build(ALL[6], seed=0)
    layer = _core.MeanLayer(model_file.write_blob(sections), "l", x.shape[2])
    with pytest.raises(ValueError):
        layer.forward(x, x.shape[0] + 1, x.shape[1])  # a conv keeps the size
    with pytest.raises(ValueError):
        layer.forward(x[:, :, :-1], x.shape[0], x.shape[1])  # channels
    with pytest.raises(ValueError):
        layer.forward(x, x.shape[0], x.shape[1], kernel="avx3")
    with pytest.raises(ValueError):
        _core.MeanLayer(model_file.write_blob(sections), "l", x.shape[2] + 1)  # in % groups, weight shape


CHILD = r"""
import json, sys
import numpy as np
from jpegai_fast import _core
data = np.load(sys.argv[1])
out = {}
for n in range(int(data["count"])):
    layer = _core.MeanLayer(data[f"{n}_blob"].tobytes(), "l", int(data[f"{n}_x"].shape[2]))
    oh, ow = (int(v) for v in data[f"{n}_hw"])
    for threads in (1, 2):
        out[f"{n}_{threads}"] = layer.forward(data[f"{n}_x"], oh, ow, threads=threads, kernel="auto")
np.savez(sys.argv[2], **out)
print(json.dumps(_core.cpu_features()))
"""


@pytest.mark.parametrize("simd", ["scalar", "avx2", "avx512"])
def test_capped_simd_levels_in_a_child(tmp_path, simd):
    """JPEGAI_FAST_SIMD=scalar runs the baseline twin, =avx2 the AVX2 tiles (on an AVX-512 machine too), =avx512
    the AVX-512 tiles without VNNI (on a VNNI machine; elsewhere the CPU's best, as without the cap)."""
    cases = [build(c, seed=i) for i, c in enumerate(ALL)]
    arrays = {"count": np.array(len(cases))}
    for n, (sections, x, out_hw) in enumerate(cases):
        arrays[f"{n}_blob"] = np.frombuffer(model_file.write_blob(sections), np.uint8)
        arrays[f"{n}_x"], arrays[f"{n}_hw"] = x, np.array(out_hw)
    np.savez(tmp_path / "in.npz", **arrays)
    env = dict(os.environ, JPEGAI_FAST_SIMD=simd)
    env.pop("JPEGAI_FAST_MEAN_LEGACY", None)
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    features = json.loads(res.stdout)
    if simd == "scalar":
        assert features == "scalar (forced baseline)"
    elif simd == "avx2":
        assert features in ("avx2", "scalar")  # "scalar" only on a CPU without AVX2
    else:
        assert features == _core.cpu_features()  # the VNNI cap does not show in the feature string
    got = np.load(tmp_path / "out.npz")
    for n, (sections, x, out_hw) in enumerate(cases):
        expected = oracle(sections, x, out_hw)
        for threads in (1, 2):
            np.testing.assert_array_equal(got[f"{n}_{threads}"], expected, err_msg=f"{_id(ALL[n])}, {threads} threads")


@requires_model
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_shipped_models_at_kodak_size_every_tile_set(model):
    """psi and y_hat of each shipped model at Kodak size (latent 32 x 48) for every tile set and 1 / 2 threads."""
    blob = (model / "model.bin").read_bytes()
    sections = rd.read_blob(blob)
    ref = rd.MeanPathInt(sections)
    channels = [int(c) for c in sections["meta.channels"]]
    grid = [int(g) for g in sections["meta.grid"]] if "meta.grid" in sections else [16, 16]
    core = _core.MeanPath(blob, *channels)
    rng = np.random.default_rng(4)
    for k, comp in enumerate(("luma", "chroma")):
        c = channels[k]
        hl, wl = 512 // grid[k], 768 // grid[k]
        z = rng.integers(-20, 21, size=(c, -(-hl // 4), -(-wl // 4))).astype(np.int16)
        idx = rng.integers(0, 64, size=(c, hl, wl)).astype(np.uint8)
        idx[rng.random(idx.shape) < 0.4] = 255
        residual = np.where(idx != 255, rng.integers(-6, 7, size=idx.shape), 0).astype(np.int16)
        offsets = rng.integers(-200, 200, size=c).astype(np.int32)
        want_psi = ref.psi(comp, z, (hl, wl))
        want, _ = ref.reconstruct(comp, want_psi, idx, offsets, residual=residual)
        for kernel in KERNELS:
            for threads in (1, 2):
                psi = core.hyper_decoder(k, z, hl, wl, threads, kernel=kernel)
                np.testing.assert_array_equal(psi.transpose(2, 0, 1), want_psi, err_msg=f"{comp} {kernel} {threads}")
                got, _ = core.reconstruct(k, psi, idx, offsets, residual=residual, threads=threads, kernel=kernel)
                np.testing.assert_array_equal(got, want, err_msg=f"{comp} {kernel} {threads}")
