"""The synthesis with its gated blocks in C++ (graph_split.py, csrc/gated_upsampler.hpp, csrc/gated_conv3x3.hpp)
against the whole graph in ONNX Runtime, vm33 and vr_bop's BOP, Kodak size (768x512), one thread, side by side in
one run; and
each block of the BOP luma graph alone against the same block as an ORT graph (the head's Conv 3x3 + Relu + Add;
ConvTranspose or Conv 3x3 with LeakyRelu, 1x1 Conv, Mul).  GMAC/s counts the direct form's multiply-adds.

    python -m pytest bench/test_upsampler.py --benchmark-only
    python -m pytest bench/test_upsampler.py --benchmark-only -k interleaved   # the ratios the docs quote
"""
from __future__ import annotations

import functools
import statistics
import time

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


# every shipped synthesis graph; vr_bop (the ladder's model above ~0.48 bpp): its plain up-samplers, 3x3 convolutions
# and ResAU blocks in C++
GRAPHS = [(m, f"synthesis_{op}_{c}") for m in ("vm33", "vr_bop") for op in ("bop", "sop") for c in ("luma", "chroma")]
ROUNDS_INTERLEAVED = 15


@pytest.mark.parametrize("kind", ["ORT whole graph", "C++ blocks"])
@pytest.mark.parametrize("model_name,graph", GRAPHS)
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


def _interleaved(benchmark, group: str, cases: dict, label=lambda name: name) -> list[dict]:
    """cases: name -> {"cpp": fn, "ort": fn}; runs every case's two forms in turn for ROUNDS_INTERLEAVED rounds
    (a slow phase of the VM hits both) -> rows with the minima and the ratios of minima and of medians."""
    times = {(name, k): [] for name in cases for k in ("cpp", "ort")}

    def one_round():
        for name, fns in cases.items():
            for key in ("cpp", "ort"):
                t0 = time.perf_counter()
                fns[key]()
                times[(name, key)].append(time.perf_counter() - t0)

    benchmark.group = group
    benchmark.pedantic(one_round, rounds=ROUNDS_INTERLEAVED, warmup_rounds=0, iterations=1)
    table = []
    for name in cases:
        c, o = times[(name, "cpp")], times[(name, "ort")]
        table.append({"graph": label(name), "C++ min ms": round(1e3 * min(c), 2), "ORT min ms": round(1e3 * min(o), 2),
                      "ratio of minima": round(min(c) / min(o), 3),
                      "ratio of medians": round(statistics.median(c) / statistics.median(o), 3)})
    return table


def test_synthesis_interleaved(benchmark):
    """Each graph with the C++ blocks and whole in ORT, alternately, ROUNDS_INTERLEAVED rounds: a slow phase of the
    VM hits both sides (test_synthesis above runs them back to back, so the VM's drift goes into its ratios)."""
    from jpegai_fast import _core
    from jpegai_fast.model import MODELS_DIR, Model

    cases = {}
    for model_name, graph in GRAPHS:
        if not (MODELS_DIR / model_name / f"{graph}.onnx").is_file():
            continue
        cpp, ort_model = Model(model_name, threads=1), Model(model_name, threads=1)
        ort_model.cpp_upsamplers = False
        if cpp.split_synthesis(graph) is None:
            continue
        feeds = _feeds(cpp.session(graph), cpp.grid["chroma"])
        for m in (cpp, ort_model):
            m.run(graph, **feeds)  # sessions, first allocations: untimed
        cases[f"{model_name}/{graph}"] = {"cpp": functools.partial(cpp.run, graph, **feeds),
                                          "ort": functools.partial(ort_model.run, graph, **feeds)}
    if not cases:
        pytest.skip("no shipped graph splits on this CPU (no AVX2 + FMA)")
    table = _interleaved(benchmark, "upsampler-interleaved", cases)
    benchmark.extra_info.update(suite=SUITE, graph="interleaved", kind="interleaved", threads=1, table=table,
                                simd=_core.cpu_features())


DECODE_STREAMS = (("vm33", 4), ("vr_bop", 4))  # (model, rate point): vr_bop's 4 is encode()'s default


def test_decode_interleaved(benchmark):
    """The whole decode (bytes -> RGB, one thread) of kodim01 (or skimage's coffee) per model, with the synthesis'
    C++ blocks and with the whole ORT graphs, alternately for ROUNDS_INTERLEAVED rounds."""
    import jpegai_fast
    from bench.floor import kodak_picture
    from jpegai_fast import _core
    from jpegai_fast.model import MODELS_DIR, Model

    name, rgb = kodak_picture("kodim01")
    cases = {}
    for model_name, rate in DECODE_STREAMS:
        if not (MODELS_DIR / model_name / "model.bin").is_file():
            continue
        cpp, ort_model = Model(model_name, threads=1), Model(model_name, threads=1)
        ort_model.cpp_upsamplers = False
        if cpp.split_synthesis("synthesis_bop_luma") is None:
            continue
        data = jpegai_fast.encode(rgb, model=model_name, rate_point=rate, threads=1)
        decoders = {"cpp": jpegai_fast.Decoder(model=cpp, threads=1), "ort": jpegai_fast.Decoder(model=ort_model,
                                                                                                 threads=1)}
        for d in decoders.values():
            d.decode(data)  # sessions, first allocations: untimed
        bpp = 8 * len(data) / (rgb.shape[0] * rgb.shape[1])
        cases[f"{model_name} rate point {rate} ({bpp:.3f} bpp)"] = {
            k: functools.partial(d.decode, data) for k, d in decoders.items()}
    if not cases:
        pytest.skip("no shipped graph splits on this CPU (no AVX2 + FMA)")
    table = _interleaved(benchmark, "upsampler-decode-interleaved", cases, lambda case: f"decode {name}, {case}")
    benchmark.extra_info.update(suite=SUITE, graph="decode interleaved", kind="interleaved", threads=1, table=table,
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
    interleaved = [t for r in rows if r["extra_info"].get("kind") == "interleaved" for t in r["extra_info"]["table"]]
    rows = [r for r in rows if r["extra_info"].get("kind") != "interleaved"]
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
    out = {"workload": f"vm33 and vr_bop synthesis at {W}x{H}, 1 thread, median of 15 (graphs) / 20 (blocks); "
                       f"interleaved: C++ blocks and whole ORT graph alternately, {ROUNDS_INTERLEAVED} rounds",
           "ratios": ratios, "rows": table}
    if interleaved:
        out["interleaved"] = interleaved
    return out


register_suite(SUITE, summarize)
