"""The synthesis' blocks in C++ — the up-sampler (csrc/gated_upsampler.hpp), the Winograd 3x3 block
(csrc/gated_conv3x3.hpp), each gated or not, vr_bop's ResAU block (csrc/resau_block.hpp) and SOP up-sampler
(csrc/shuffle_upsampler.hpp) — and the graph split
that feeds them (src/jpegai_fast/graph_split.py): each AVX2 kernel
equals its scalar definition bit for bit, any thread count gives the same bytes, both equal a float64 numpy
definition and ONNX Runtime's graph to float rounding, and a decode through the split equals the whole-graph
decode to ±1 level on a few pixels."""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import _core
from jpegai_fast.graph_split import split_gated_upsamplers
from shipped_model import MODELS

ALPHA = 0.01


def _weights(cin, cout, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.normal(size=(cin, cout, 4, 4)) / np.sqrt(4 * cin)).astype(np.float32),
            (rng.normal(size=cout) * 0.1).astype(np.float32),
            (rng.normal(size=(cout, cout)) / np.sqrt(cout)).astype(np.float32),
            (rng.normal(size=cout) * 0.1 + 1.0).astype(np.float32))


def _gate(u, gw, gb, alpha):
    lr = np.where(u >= 0, u, u * alpha)
    g = np.einsum("oc,chw->ohw", gw.astype(np.float64), lr) + gb.astype(np.float64)[:, None, None]
    return (u * g)[None]


def conv3x3_f64(x, w, b):
    """float64 [Cout, H, W]: Conv 3x3 stride 1 pad 1 (+ bias) of x [1, Cin, H, W]."""
    x, w = x[0].astype(np.float64), w.astype(np.float64)
    _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    return sum(np.einsum("ihw,oi->ohw", xp[:, ky:ky + h, kx:kx + wd], w[:, :, ky, kx]) for ky in range(3)
               for kx in range(3)) + b.astype(np.float64)[:, None, None]


def conv3x3_definition(x, w, b, gw, gb, alpha):
    """float64: Conv 3x3 stride 1 pad 1, then the gate."""
    return _gate(conv3x3_f64(x, w, b), gw, gb, alpha)


def numpy_definition(x, w, b, gw, gb, alpha):
    """float64: ConvTranspose k4 s2 p1 by scattering each input sample, then u * (Wg . LeakyReLU(u) + bg)."""
    x, w = x[0].astype(np.float64), w.astype(np.float64)
    cin, h, wd = x.shape
    cout = w.shape[1]
    full = np.zeros((cout, 2 * h + 2, 2 * wd + 2))  # output padded by 1 on each side (p1 crops it)
    for ky in range(4):
        for kx in range(4):
            contrib = np.einsum("ihw,io->ohw", x, w[:, :, ky, kx])
            full[:, ky:ky + 2 * h:2, kx:kx + 2 * wd:2] += contrib
    u = full[:, 1:2 * h + 1, 1:2 * wd + 1] + b.astype(np.float64)[:, None, None]
    return _gate(u, gw, gb, alpha)


@pytest.mark.parametrize("cin,cout,h,w", [(32, 16, 5, 7), (16, 32, 3, 6), (48, 16, 4, 13), (8, 16, 1, 20),
                                          (16, 16, 6, 3), (24, 12, 4, 9), (16, 16, 2, 2), (32, 32, 9, 61)])
def test_kernel_equals_definition(cin, cout, h, w):
    wt, b, gw, gb = _weights(cin, cout)
    up = _core.GatedUpsampler(wt, b, gw, gb, ALPHA)
    x = np.random.default_rng(1).normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = up.run(x, 1), up.run(x, 1, reference=True)
    assert fast.shape == (1, cout, 2 * h, 2 * w)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))  # bit for bit, SIMD tile or not
    want = numpy_definition(x, wt, b, gw, gb, ALPHA)
    assert np.abs(fast - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("cin,cout,h,w", [(64, 64, 20, 30), (32, 32, 13, 17), (16, 16, 7, 13), (8, 16, 12, 12),
                                          (16, 16, 5, 5), (12, 16, 6, 14), (16, 20, 9, 12), (8, 32, 1, 40),
                                          (16, 16, 2, 2), (16, 16, 6, 70)])
def test_conv3x3_equals_definition(cin, cout, h, w):
    rng = np.random.default_rng(5)
    wt = (rng.normal(size=(cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    _, b, gw, gb = _weights(cin, cout, seed=6)
    blk = _core.GatedConv3x3(wt, b, gw, gb, ALPHA)
    x = rng.normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = blk.run(x, 1), blk.run(x, 1, reference=True)
    assert fast.shape == (1, cout, h, w)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))  # Winograd tiles: SIMD == scalar definition
    want = conv3x3_definition(x, wt, b, gw, gb, ALPHA)
    assert np.abs(fast - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    for threads in (2, 3, 0):
        assert np.array_equal(blk.run(x, threads).view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("c,h,w", [(32, 12, 20), (16, 7, 13), (8, 5, 4)])
def test_residual_block_equals_definition(c, h, w):
    """gate_weight None: x + ReLU(Conv3x3(x) + b), the synthesis head."""
    rng = np.random.default_rng(11)
    wt = (rng.normal(size=(c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = (rng.normal(size=c) * 0.1).astype(np.float32)
    blk = _core.GatedConv3x3(wt, b)
    assert blk.residual
    x = rng.normal(size=(1, c, h, w)).astype(np.float32)
    fast, ref = blk.run(x, 1), blk.run(x, 1, reference=True)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(blk.run(x, 2, nhwc_out=True), fast.transpose(0, 2, 3, 1))
    want = x[0].astype(np.float64) + np.maximum(conv3x3_f64(x, wt, b), 0)
    assert np.abs(fast[0] - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    with pytest.raises(ValueError):
        _core.GatedConv3x3(wt[:, : c // 2].copy(), b)  # a residual block needs Cin = Cout
    with pytest.raises(ValueError):
        _core.GatedConv3x3(wt, b, gate_weight=np.zeros((c, c), np.float32))  # gate_bias missing


@pytest.mark.parametrize("cin,cout,h,w", [(64, 96, 9, 14), (16, 16, 5, 5), (8, 32, 1, 40), (12, 20, 6, 9)])
def test_plain_conv3x3_equals_definition(cin, cout, h, w):
    """plain=True: Conv 3x3 + bias alone (vr_bop's `widen`)."""
    rng = np.random.default_rng(12)
    wt = (rng.normal(size=(cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    b = (rng.normal(size=cout) * 0.1).astype(np.float32)
    blk = _core.GatedConv3x3(wt, b, plain=True)
    assert not blk.gated and not blk.residual
    x = rng.normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = blk.run(x, 1), blk.run(x, 1, reference=True)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(blk.run(x, 3, nhwc_out=True), fast.transpose(0, 2, 3, 1))
    want = conv3x3_f64(x, wt, b)
    assert np.abs(fast[0] - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    with pytest.raises(ValueError):
        _core.GatedConv3x3(wt, b, *_weights(cin, cout)[2:], ALPHA, plain=True)  # plain has no gate


@pytest.mark.parametrize("cin,cout,h,w", [(160, 64, 6, 13), (64, 64, 5, 7), (144, 64, 3, 12), (24, 12, 4, 9)])
def test_plain_upsampler_equals_definition(cin, cout, h, w):
    """No gate: ConvTranspose k4 s2 p1 + bias alone (vr_bop's up-samplers)."""
    wt, b, _, _ = _weights(cin, cout, seed=13)
    up = _core.GatedUpsampler(wt, b)
    assert not up.gated
    x = np.random.default_rng(14).normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = up.run(x, 1), up.run(x, 1, reference=True)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(up.run(x, 2, nhwc_out=True), fast.transpose(0, 2, 3, 1))
    # the gated definition with gate weight 0 and gate bias 1 is the transposed convolution alone
    want = numpy_definition(x, wt, b, np.zeros((cout, cout), np.float32), np.ones(cout, np.float32), ALPHA)
    assert np.abs(fast - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    with pytest.raises(ValueError):
        _core.GatedUpsampler(wt, b, gate_weight=np.zeros((cout, cout), np.float32))  # gate_bias missing


def resau_definition(x, spatial, mix):
    """float64: x * (1 + Wmix . GConv3x3(ReLU6(x))), 16 channels per group, zero padding 1, no biases."""
    x64 = x[0].astype(np.float64)
    c, h, w = x64.shape
    rp = np.pad(np.clip(x64, 0, 6), ((0, 0), (1, 1), (1, 1)))
    s = np.zeros_like(x64)
    for g in range(c // 16):
        grp = slice(16 * g, 16 * g + 16)
        s[grp] = sum(np.einsum("ihw,oi->ohw", rp[grp, ky:ky + h, kx:kx + w], spatial[grp, :, ky, kx].astype(np.float64))
                     for ky in range(3) for kx in range(3))
    return (x64 * (1 + np.einsum("oi,ihw->ohw", mix.astype(np.float64), s)))[None]


@pytest.mark.parametrize("c,h,w", [(64, 9, 14), (96, 5, 7), (16, 3, 4), (32, 6, 6), (128, 4, 20)])
def test_resau_block_equals_definition(c, h, w):
    rng = np.random.default_rng(15)
    spatial = (rng.normal(size=(c, 16, 3, 3)) / 12).astype(np.float32)
    mix = (rng.normal(size=(c, c)) / np.sqrt(c)).astype(np.float32)
    x = (rng.normal(size=(1, c, h, w)) * 3).astype(np.float32)  # beyond both clip points of ReLU6
    blk = _core.ResAUBlock(spatial, mix)
    assert blk.cin == blk.cout == c
    fast, ref = blk.run(x, 1), blk.run(x, 1, reference=True)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))  # SIMD == scalar definition, bit for bit
    for threads in (2, 3, 0):
        assert np.array_equal(blk.run(x, threads).view(np.uint32), ref.view(np.uint32))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert np.array_equal(blk.run(nhwc, 2, nhwc_in=True, nhwc_out=True), fast.transpose(0, 2, 3, 1))
    want = resau_definition(x, spatial, mix)
    assert np.abs(fast - want).max() <= 2e-5 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("cin,cout,h,w", [(160, 64, 7, 11), (64, 32, 5, 9), (144, 32, 3, 6), (16, 4, 6, 7),
                                          (8, 8, 1, 1)])
def test_shuffle_upsampler_equals_definition(cin, cout, h, w):
    """Pad bottom/right by 1, Conv 2x2 to 4 Cout, depth-to-space by 2 in CRD order (vr_bop's SOP up-sampler)."""
    rng = np.random.default_rng(16)
    wt = (rng.normal(size=(4 * cout, cin, 2, 2)) / np.sqrt(4 * cin)).astype(np.float32)
    b = (rng.normal(size=4 * cout) * 0.1).astype(np.float32)
    up = _core.ShuffleUpsampler(wt, b)
    assert (up.cin, up.cout) == (cin, cout)
    x = rng.normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = up.run(x, 1), up.run(x, 1, reference=True)
    assert fast.shape == (1, cout, 2 * h, 2 * w)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
    for threads in (2, 3, 0):
        assert np.array_equal(up.run(x, threads).view(np.uint32), ref.view(np.uint32))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert np.array_equal(up.run(nhwc, 2, nhwc_in=True, nhwc_out=True), fast.transpose(0, 2, 3, 1))
    xp = np.pad(x[0].astype(np.float64), ((0, 0), (0, 1), (0, 1)))
    conv = sum(np.einsum("ihw,oi->ohw", xp[:, r:r + h, s:s + w], wt[:, :, r, s].astype(np.float64))
               for r in range(2) for s in range(2)) + b.astype(np.float64)[:, None, None]
    want = conv.reshape(cout, 2, 2, h, w).transpose(0, 3, 1, 4, 2).reshape(cout, 2 * h, 2 * w)  # CRD
    assert np.abs(fast[0] - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    with pytest.raises(ValueError):
        _core.ShuffleUpsampler(wt[:6].copy(), b[:6].copy())  # not 4 Cout outputs


def test_resau_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        _core.ResAUBlock(np.zeros((24, 16, 3, 3), np.float32), np.zeros((24, 24), np.float32))  # not 16k channels
    with pytest.raises(ValueError):
        _core.ResAUBlock(np.zeros((32, 8, 3, 3), np.float32), np.zeros((32, 32), np.float32))  # 8 per group
    with pytest.raises(ValueError):
        _core.ResAUBlock(np.zeros((32, 16, 3, 3), np.float32), np.zeros((16, 16), np.float32))
    blk = _core.ResAUBlock(np.zeros((32, 16, 3, 3), np.float32), np.zeros((32, 32), np.float32))
    for bad in (np.zeros((1, 16, 4, 4), np.float32), np.zeros((1, 32, 0, 4), np.float32)):
        with pytest.raises(ValueError):
            blk.run(bad)


def test_conv3x3_bad_arguments_raise_value_error():
    wt = np.zeros((16, 16, 3, 3), np.float32)
    _, b, gw, gb = _weights(16, 16)
    with pytest.raises(ValueError):
        _core.GatedConv3x3(wt[:, :, :2], b, gw, gb, ALPHA)
    with pytest.raises(ValueError):
        _core.GatedConv3x3(wt, b, gw[:8], gb, ALPHA)
    blk = _core.GatedConv3x3(wt, b, gw, gb, ALPHA)
    for bad in (np.zeros((1, 8, 4, 4), np.float32), np.zeros((1, 16, 4, 0), np.float32)):
        with pytest.raises(ValueError):
            blk.run(bad)


def test_simd_kernel_applies_to_the_vm_channel_counts():
    for cin, cout in ((128, 96), (96, 64), (192, 64), (64, 32)):
        up = _core.GatedUpsampler(*_weights(cin, cout), ALPHA)
        assert up.cin == cin and up.cout == cout
        if "avx2" in _core.cpu_features() or "avx512" in _core.cpu_features():
            assert up.has_simd_kernel
    assert not _core.GatedUpsampler(*_weights(8, 12), ALPHA).has_simd_kernel  # not a multiple of 16


def test_pixel_major_hand_over_is_the_same_function():
    """An up-sampler's nhwc_out output fed to a 3x3 block's nhwc_in gives the planar chain's bytes."""
    up = _core.GatedUpsampler(*_weights(32, 32, seed=8), ALPHA)
    rng = np.random.default_rng(9)
    wt = (rng.normal(size=(16, 32, 3, 3)) / np.sqrt(288)).astype(np.float32)
    blk = _core.GatedConv3x3(wt, *_weights(32, 16, seed=10)[1:], ALPHA)
    x = rng.normal(size=(1, 32, 7, 9)).astype(np.float32)
    planar = up.run(x, 1)
    nhwc = up.run(x, 1, nhwc_out=True)
    assert nhwc.shape == (1, 14, 18, 32) and np.array_equal(nhwc, planar.transpose(0, 2, 3, 1))
    assert np.array_equal(up.run(x, 1, reference=True, nhwc_out=True), nhwc)
    assert np.array_equal(blk.run(nhwc, 2, nhwc_in=True), blk.run(planar, 1))
    assert np.array_equal(blk.run(nhwc, 1, reference=True, nhwc_in=True), blk.run(planar, 1))
    with pytest.raises(ValueError):
        blk.run(planar, 1, nhwc_in=True)  # [1, C, H, W] is not [1, H, W, C] here (W = 18 != Cin)


@pytest.mark.parametrize("threads", [1, 2, 3, 0])
def test_thread_count_does_not_change_bytes(threads):
    wt, b, gw, gb = _weights(32, 32, seed=3)
    up = _core.GatedUpsampler(wt, b, gw, gb, ALPHA)
    x = np.random.default_rng(4).normal(size=(1, 32, 9, 14)).astype(np.float32)
    assert np.array_equal(up.run(x, threads).view(np.uint32), up.run(x, 1, reference=True).view(np.uint32))


def test_bad_arguments_raise_value_error():
    wt, b, gw, gb = _weights(16, 16)
    with pytest.raises(ValueError):
        _core.GatedUpsampler(wt[:, :, :3], b, gw, gb, ALPHA)
    with pytest.raises(ValueError):
        _core.GatedUpsampler(wt, b[:8], gw, gb, ALPHA)
    up = _core.GatedUpsampler(wt, b, gw, gb, ALPHA)
    for bad in (np.zeros((1, 8, 4, 4), np.float32), np.zeros((16, 4, 4), np.float32),
                np.zeros((1, 16, 4, 4), np.float64), np.zeros((1, 16, 0, 4), np.float32)):
        with pytest.raises(ValueError):
            up.run(bad)


# ---- the graph split on the shipped synthesis graphs ---------------------------------------------------------

def _synthesis_graphs():
    return [p for m in MODELS for p in sorted(m.glob("synthesis_*.onnx")) if not p.name.endswith(".int8.onnx")]


def _feeds(session, rng, hw=(200, 280)):
    feeds = {}
    for i in session.get_inputs():
        if i.name == "image_ref":
            feeds[i.name] = np.zeros((1, 0) + tuple(hw), np.float32)
        else:
            grid = 32 if i.name == "y_hat_chroma" and i.shape[1] == 64 else 16
            size = (1, i.shape[1], -(-hw[0] // grid), -(-hw[1] // grid))
            feeds[i.name] = (rng.normal(size=size) * 0.5).astype(np.float32)
    return feeds


# the blocks each shipped synthesis graph gives up to C++ (None: it runs whole in ONNX Runtime)
SPLIT_BLOCKS = {
    ("vm33", "bop"): ["residual", "up", "up", "conv3x3"], ("vm33", "sop"): ["residual", "up", "up", "conv3x3"],
    # vr_bop: the plain up-samplers (BOP: ConvTranspose; SOP: pad + 2x2 conv + depth-to-space), `widen` / `mid` and
    # the ResAU blocks (the crops between them stay in ONNX Runtime)
    ("vr_bop", "bop"): ["residual", "up", "resau", "up", "resau", "conv3x3", "resau"],
    ("vr_bop", "sop"): ["residual", "shuffle_up", "resau", "shuffle_up", "resau", "conv3x3", "resau"],
}


def _run_stages(split, feeds, opts, head=False):
    """The split graph stage by stage, planar hand-overs (the runtime's pixel-major ones are tested above); head:
    the tail as the C++ output head, its crop from the graph's own arithmetic."""
    import onnxruntime as ort

    from jpegai_fast.graph_split import GraphSegment

    x = feeds.get(split.first_input)
    for k, st in enumerate(split.stages):
        if head and k == len(split.stages) - 1:
            spec = split.output_head
            ends = ort.InferenceSession(spec.ends_model, opts, providers=["CPUExecutionProvider"])
            oh, ow = (int(e.reshape(-1)[0]) for e in ends.run(None, {n: feeds[n] for n in spec.ends_inputs}))
            return _core.OutputHead(spec.weight, spec.bias, spec.block, spec.scale, spec.offset).run(x, oh, ow, 1)
        if isinstance(st, GraphSegment):
            sess = ort.InferenceSession(st.model, opts, providers=["CPUExecutionProvider"])
            flow = {} if st.flow_input is None else {st.flow_input: x}
            x = sess.run(None, {**flow, **{k: feeds[k] for k in st.inputs}})[0]
        elif st.kind == "resau":
            x = _core.ResAUBlock(st.weight, st.gate_weight).run(x, 1)
        elif st.kind == "shuffle_up":
            x = _core.ShuffleUpsampler(st.weight, st.bias).run(x, 1)
        elif st.kind == "up":
            x = _core.GatedUpsampler(st.weight, st.bias, st.gate_weight, st.gate_bias, st.alpha).run(x, 1)
        else:
            plain = st.kind == "conv3x3" and st.gate_weight is None
            x = _core.GatedConv3x3(st.weight, st.bias, st.gate_weight, st.gate_bias, st.alpha, plain=plain).run(x, 1)
    return x


@pytest.mark.parametrize("path", _synthesis_graphs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_split_equals_whole_graph(path):
    import onnxruntime as ort

    split = split_gated_upsamplers(path.read_bytes())
    op, comp = path.stem.split("_")[1:3]
    want = SPLIT_BLOCKS.get((path.parent.name, op), "unknown model")
    if want is None:
        assert split is None
        return
    assert split is not None
    kinds = [b.kind for b in split.blocks]
    if path.parent.name == "vr_bop" and comp == "chroma":  # its head, a plain 3x3 at the latent grid between two
        want = ["conv3x3", want[1], "resau", "conv3x3", "resau"]  # concatenations, then one up-sampler
    assert kinds == want
    assert split.tail_inputs == ["image_ref"] and (split.head is None) == (comp == "luma")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    whole = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = _feeds(whole, np.random.default_rng(0))
    out = _run_stages(split, feeds, opts)
    ref = whole.run(None, feeds)[0]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-3
    # the tail as the C++ output head (every shipped graph ends in its pattern), on the image_ref's odd size
    assert split.output_head is not None
    headed = _run_stages(split, feeds, opts, head=True)
    assert headed.shape == ref.shape and np.abs(headed - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-3


@pytest.mark.parametrize("change", ["pads", "mode", "pad_value"])
def test_shuffle_up_pattern_is_exact(change):
    """vr_bop's SOP up-sampler is taken only for pad (0, 1, 0, 1) with zeros, Conv 2x2, DepthToSpace CRD: another
    pad amount, the DCR order or a pad value leaves that up-sampler in an ONNX Runtime segment."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = next((p for p in _synthesis_graphs() if p.parent.name == "vr_bop" and p.name == "synthesis_sop_luma.onnx"),
                None)
    if path is None:
        pytest.skip("no vr_bop SOP graph")
    assert [b.kind for b in split_gated_upsamplers(path.read_bytes()).blocks].count("shuffle_up") == 2
    model = onnx.load(str(path))  # the first up-sampler's nodes are changed below; the second stays a block
    pad = next(n for n in model.graph.node if n.op_type == "Pad")
    if change == "pads":  # the pad amounts come from index arithmetic on constants: change its [0, 1, 0, 1]
        const = next(n for n in model.graph.node if n.op_type == "Constant" and n.output[0] in
                     {i for m in model.graph.node for i in m.input} and
                     list(numpy_helper.to_array(n.attribute[0].t).reshape(-1)) == [0, 1, 0, 1])
        const.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([0, 2, 0, 2], np.int64)))
    elif change == "mode":
        d2s = next(n for n in model.graph.node if n.op_type == "DepthToSpace")
        next(a for a in d2s.attribute if a.name == "mode").s = b"DCR"
    else:
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "pad_value"))
        while len(pad.input) < 3:
            pad.input.append("")
        pad.input[2] = "pad_value"
    changed = split_gated_upsamplers(model.SerializeToString())
    assert changed is not None and [b.kind for b in changed.blocks].count("shuffle_up") == 1
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    whole = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = _feeds(whole, np.random.default_rng(3))
    out, ref = _run_stages(changed, feeds, opts), whole.run(None, feeds)[0]  # the changed graph's own function
    assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-3


def output_head_definition(x, w, b, block, scale, offset, oh, ow):
    """float64: Conv 1x1 + bias, DepthToSpace CRD, crop to (oh, ow), then x scale + offset."""
    v = np.einsum("oc,chw->ohw", w.astype(np.float64), x[0].astype(np.float64)) + b.astype(np.float64)[:, None, None]
    co, h, wd = v.shape
    img = v.reshape(co // block**2, block, block, h, wd).transpose(0, 3, 1, 4, 2).reshape(co // block**2, h * block,
                                                                                        wd * block)
    return img[:, :oh, :ow] * scale + offset


@pytest.mark.parametrize("cin,cout,block,h,w,oh,ow", [(64, 16, 4, 32, 48, 128, 192), (64, 32, 4, 9, 14, 35, 53),
                                                      (32, 32, 4, 5, 7, 17, 28), (96, 16, 4, 3, 6, 12, 21),
                                                      (16, 16, 4, 2, 3, 5, 9), (12, 8, 2, 6, 9, 11, 17)])
def test_output_head_equals_definition(cin, cout, block, h, w, oh, ow):
    rng = np.random.default_rng(21)
    wt = (rng.normal(size=(cout, cin)) / np.sqrt(cin)).astype(np.float32)
    b = (rng.normal(size=cout) * 0.1).astype(np.float32)
    head = _core.OutputHead(wt, b, block, 128.0, 127.5)
    assert head.channels == cout // block**2
    x = rng.normal(size=(1, cin, h, w)).astype(np.float32)
    fast, ref = head.run(x, oh, ow, 1), head.run(x, oh, ow, 1, reference=True)
    assert fast.shape == (1, cout // block**2, oh, ow)
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))  # the AVX2 tiles == the scalar definition
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for threads in (2, 3, 0):
        assert np.array_equal(head.run(nhwc, oh, ow, threads, nhwc_in=True).view(np.uint32), ref.view(np.uint32))
    want = output_head_definition(x, wt, b, block, 128.0, 127.5, oh, ow)
    assert np.abs(fast[0] - want).max() <= 1e-5 * np.abs(want).max()
    assert np.array_equal(_core.OutputHead(wt, None, block).run(x, oh, ow, 1),
                          _core.OutputHead(wt, np.zeros(cout, np.float32), block).run(x, oh, ow, 1))
    with pytest.raises(ValueError):
        head.run(x, block * h + 1, ow)  # the crop lies outside the up-sampled picture
    with pytest.raises(ValueError):
        _core.OutputHead(wt[:, : cin // 2].copy(), b, 3)  # cout not a multiple of block²


@pytest.mark.parametrize("change", ["mode", "start", "bias"])
def test_output_head_pattern_is_exact(change):
    """The tail becomes the C++ output head only for Conv 1x1 -> DepthToSpace CRD -> Slices from 0 -> x c -> + c: the
    DCR order or a crop that does not start at 0 keeps the tail segment; a conv bias is part of the head."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = next((p for p in _synthesis_graphs() if p.parent.name == "vm33" and p.name == "synthesis_bop_luma.onnx"),
                None)
    if path is None:
        pytest.skip("no vm33 graph")
    model = onnx.load(str(path))
    d2s = next(n for n in model.graph.node if n.op_type == "DepthToSpace")
    conv = next(n for n in model.graph.node if n.output[0] == d2s.input[0])
    if change == "mode":
        next(a for a in d2s.attribute if a.name == "mode").s = b"DCR"
    elif change == "start":
        sl = next(n for n in model.graph.node if n.op_type == "Slice" and n.input[0] == d2s.output[0])
        model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "start_one"))
        sl.input[1] = "start_one"
    else:
        model.graph.initializer.append(numpy_helper.from_array(np.linspace(-0.2, 0.3, 16).astype(np.float32), "b_out"))
        conv.input.append("b_out")
    changed = split_gated_upsamplers(model.SerializeToString())
    assert changed is not None and (changed.output_head is None) == (change != "bias")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    whole = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = _feeds(whole, np.random.default_rng(4), (70, 190))
    ref = whole.run(None, feeds)[0]
    out = _run_stages(changed, feeds, opts, head=changed.output_head is not None)
    assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-3


def test_narrow_picture_runs_the_whole_graph():
    """Below 11 latent samples across the blocks have no AVX2 tile: the runtime runs ORT's whole graph, not the
    blocks' scalar definition (5-10x slower there)."""
    from jpegai_fast.model import BLOCK_SIMD_MIN_WIDTH, Model

    if not _has_simd():
        pytest.skip("no AVX2: the split is not used")
    for name in [m.name for m in MODELS if m.name in ("vm33", "vr_bop")]:
        model = Model(name, threads=1)
        whole = Model(name, threads=1)
        whole.cpp_upsamplers = False
        for width in (16 * (BLOCK_SIMD_MIN_WIDTH - 1), 16 * BLOCK_SIMD_MIN_WIDTH + 8):
            feeds = _feeds(model.session("synthesis_bop_luma"), np.random.default_rng(2), (48, width))
            a = model.run("synthesis_bop_luma", **feeds)
            b = whole.run("synthesis_bop_luma", **feeds)
            if width < 16 * BLOCK_SIMD_MIN_WIDTH:
                assert np.array_equal(a, b)  # the same session
            else:
                assert not np.array_equal(a, b) and np.abs(a - b).max() <= 1e-5 * np.abs(b).max() + 1e-3


@pytest.mark.parametrize("garbage", [b"", b"\x08", b"\xff" * 64, b"\x3a\x05abc"])
def test_split_of_garbage_is_none(garbage):
    assert split_gated_upsamplers(garbage) is None


def test_split_of_truncated_graph_is_none():
    vm = [p for p in _synthesis_graphs() if p.parent.name == "vm33"]
    if not vm:
        pytest.skip("no vm33 model")
    raw = vm[0].read_bytes()
    for cut in (10, len(raw) // 3, len(raw) - 7):
        assert split_gated_upsamplers(raw[:cut]) is None


def _has_simd():
    return any(k in _core.cpu_features() for k in ("avx2", "avx512"))


def test_model_uses_the_split_on_the_cpu():
    from jpegai_fast.model import Model

    if not any(m.name == "vm33" for m in MODELS):
        pytest.skip("no vm33 model")
    model = Model("vm33", threads=1)
    assert (model.split_synthesis("synthesis_bop_luma") is not None) == _has_simd()
    assert model.split_synthesis("analysis_luma") is None
    off = Model("vm33", threads=1)
    off.cpp_upsamplers = False
    assert off.split_synthesis("synthesis_bop_luma") is None
    assert Model("vm33", threads=1, precision="int8").split_synthesis("synthesis_bop_luma") is None


@pytest.mark.parametrize("model,rate,op", [("vm33", 6, "bop"), ("vr_bop", 4, "bop"), ("vr_bop", 4, "sop")])
def test_decode_through_the_split_matches_the_whole_graphs(tmp_path, model, rate, op):
    """In-process decode (split, C++ blocks) vs a child process with JPEGAI_FAST_UPSAMPLER=ort."""
    import os
    import subprocess
    import sys

    if not any(m.name == model for m in MODELS):
        pytest.skip(f"no {model} model")
    skdata = pytest.importorskip("skimage.data")
    photo = np.ascontiguousarray(skdata.astronaut()[100:292, 120:376])
    stream = jpegai_fast.encode(photo, model=model, rate_point=rate)
    fast = jpegai_fast.Decoder(threads=2, operating_point=op).decode(stream).astype(np.int16)
    (tmp_path / "s.jai").write_bytes(stream)
    code = ("import sys, numpy as np, jpegai_fast; d = open(sys.argv[1], 'rb').read(); "
            f"np.save(sys.argv[2], jpegai_fast.Decoder(threads=2, operating_point={op!r}).decode(d))")
    env = dict(os.environ, JPEGAI_FAST_UPSAMPLER="ort")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.jai"), str(tmp_path / "o.npy")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    diff = np.abs(fast - np.load(tmp_path / "o.npy").astype(np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size
