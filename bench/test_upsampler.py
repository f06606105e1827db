"""The synthesis with its gated blocks in C++ (graph_split.py, csrc/gated_upsampler.hpp, csrc/gated_conv3x3.hpp)
against the whole graph in ONNX Runtime, vm33 and vr_bop's BOP, Kodak size (768x512), one thread, side by side in
one run; and
each block of the BOP luma graph alone against the same block as an ORT graph (the head's Conv 3x3 + Relu + Add;
ConvTranspose or Conv 3x3 with LeakyRelu, 1x1 Conv, Mul).  GMAC/s counts the direct form's multiply-adds.

    python -m pytest bench/test_upsampler.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.results_writer import register_suite

SUITE = "upsampler"
H, W = 512, 768


def _vm33():
    from jpegai_fast.model import MODELS_DIR

    path = MODELS_DIR / "vm33"
    if not (path / "synthesis_bop_luma.onnx").is_file():
        pytest.skip("vm33 is not shipped")
    return path


def block_graph(blk) -> bytes:
    """The block as ONNX Runtime runs it inside the synthesis graph."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    cout = blk.weight.shape[1] if blk.kind == "up" else blk.weight.shape[0]
    inits = [numpy_helper.from_array(blk.weight, "w"), numpy_helper.from_array(blk.bias, "b")]
    if blk.kind == "residual":
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["u"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["u"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
    else:
        main = (helper.make_node("ConvTranspose", ["x", "w", "b"], ["u"], kernel_shape=[4, 4], pads=[1, 1, 1, 1],
                                 strides=[2, 2]) if blk.kind == "up" else
                helper.make_node("Conv", ["x", "w", "b"], ["u"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes = [main, helper.make_node("LeakyRelu", ["u"], ["l"], alpha=blk.alpha),
                 helper.make_node("Conv", ["l", "gw", "gb"], ["g"], kernel_shape=[1, 1]),
                 helper.make_node("Mul", ["u", "g"], ["y"])]
        inits += [numpy_helper.from_array(blk.gate_weight.reshape(cout, cout, 1, 1), "gw"),
                  numpy_helper.from_array(blk.gate_bias, "gb")]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _feeds(session, chroma_grid: int = 32):
    rng = np.random.default_rng(0)
    feeds = {}
    for i in session.get_inputs():
        if i.name == "image_ref":
            feeds[i.name] = np.zeros((1, 0, H, W), np.float32)
        else:
            grid = chroma_grid if i.name == "y_hat_chroma" else 16
            feeds[i.name] = (rng.normal(size=(1, i.shape[1], H // grid, W // grid)) * 0.5).astype(np.float32)
    return feeds


@pytest.mark.parametrize("kind", ["ORT whole graph", "C++ blocks"])
@pytest.mark.parametrize("model_name,graph", [
    ("vm33", "synthesis_bop_luma"), ("vm33", "synthesis_bop_chroma"), ("vm33", "synthesis_sop_luma"),
    ("vm33", "synthesis_sop_chroma"),
    # vr_bop BOP (the ladder's model above ~0.48 bpp): plain up-samplers and `widen` in C++, its ResAU blocks in ORT
    ("vr_bop", "synthesis_bop_luma"), ("vr_bop", "synthesis_bop_chroma")])
def test_synthesis(benchmark, model_name, graph, kind):
    from jpegai_fast import _core
    from jpegai_fast.model import MODELS_DIR, Model

    if not (MODELS_DIR / model_name / f"{graph}.onnx").is_file():
        pytest.skip(f"{model_name} is not shipped")
    model = Model(model_name, threads=1)
    model.cpp_upsamplers = kind.startswith("C++")
    if model.cpp_upsamplers and model.split_synthesis(graph) is None:
        pytest.skip("no AVX2 + FMA up-sampler kernel on this CPU")
    feeds = _feeds(model.session(graph), model.grid["chroma"])
    benchmark.group = f"upsampler-{model_name}-{graph}"
    out = benchmark.pedantic(lambda: model.run(graph, **feeds), rounds=15, warmup_rounds=2)
    assert out.shape[-2:] == (H, W) if graph.endswith("luma") else out.shape[-2:] == (H // 2, W // 2)
    benchmark.extra_info.update(suite=SUITE, model=model_name, graph=f"{model_name}/{graph}", kind=kind, threads=1,
                                simd=_core.cpu_features())


@pytest.mark.parametrize("kind", ["ORT block", "C++ block"])
@pytest.mark.parametrize("block", [0, 1, 2, 3])
def test_block(benchmark, block, kind):
    import onnxruntime as ort

    from jpegai_fast import _core
    from jpegai_fast.graph_split import split_gated_upsamplers

    split = split_gated_upsamplers((_vm33() / "synthesis_bop_luma.onnx").read_bytes())
    blk = split.blocks[block]
    up_kind = blk.kind == "up"
    cin, cout = blk.weight.shape[:2] if up_kind else blk.weight.shape[1::-1]
    scale = (1, 1, 2, 4)[block]  # input grid: H/16 (res, up1), H/8 (up2), H/4 (mid)
    x = (np.random.default_rng(1).normal(size=(1, cin, H // 16 * scale, W // 16 * scale)) * 0.5).astype(np.float32)
    if kind == "C++ block":
        cls = _core.GatedUpsampler if up_kind else _core.GatedConv3x3
        cpp = cls(blk.weight, blk.bias, blk.gate_weight, blk.gate_bias, blk.alpha)
        if not cpp.has_simd_kernel:
            pytest.skip("no AVX2 + FMA kernel on this CPU")
        out = np.empty((1, cout, (2 if up_kind else 1) * x.shape[2], (2 if up_kind else 1) * x.shape[3]), np.float32)
        fn = lambda: cpp.run(x, 1, out=out)  # noqa: E731  (output reused, as the runtime does)
    else:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(block_graph(blk), opts, providers=["CPUExecutionProvider"])
        fn = lambda: sess.run(None, {"x": x})[0]  # noqa: E731
    name = ("res", "up1", "up2", "mid")[block]
    benchmark.group = f"upsampler-bop-luma-{name}"
    res = benchmark.pedantic(fn, rounds=20, warmup_rounds=2)
    f = 2 if up_kind else 1
    assert res.shape == (1, cout, f * x.shape[2], f * x.shape[3])
    # direct-form MACs (the Winograd blocks execute 16/36 of the 3x3 ones and 9/16 of the up-sampler's)
    gate = 0 if blk.kind == "residual" else (4 if up_kind else 1) * cout
    macs = ((16 if up_kind else 9) * cin + gate) * cout * x.shape[2] * x.shape[3]
    benchmark.extra_info.update(suite=SUITE, graph=f"bop luma {name} block", kind=kind, threads=1, macs=macs,
                                simd=_core.cpu_features())


def summarize(rows: list[dict]) -> dict:
    by = {(r["extra_info"]["graph"], r["extra_info"]["kind"]): r for r in rows}
    table, ratios = [], {}
    for (graph, kind), r in sorted(by.items()):
        row = {"graph": graph, "kind": kind, "median_ms": round(1e3 * r["median_s"], 2)}
        if "macs" in r["extra_info"]:
            row["GMAC/s"] = round(r["extra_info"]["macs"] / r["median_s"] / 1e9, 1)
        table.append(row)
    for graph in sorted({g for g, _ in by}):
        pair = [by.get((graph, k)) for k in (("C++ blocks", "ORT whole graph") if "synthesis" in graph
                                              else ("C++ block", "ORT block"))]
        if all(pair):
            ratios[f"{graph}: C++ / ORT time"] = round(pair[0]["median_s"] / pair[1]["median_s"], 3)
    return {"workload": f"vm33 and vr_bop synthesis at {W}x{H}, 1 thread, median of 15 (graphs) / 20 (blocks)",
            "ratios": ratios, "rows": table}


register_suite(SUITE, summarize)
