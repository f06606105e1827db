"""Float16 storage of float graphs (training.export.store_float16_exact, training/compact_models.py): weights
that float16 holds exactly are stored at half the size and computed with the very same float32 values."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # training.export imports torch

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from training.export import store_float16_exact  # noqa: E402


def _conv_graph(weight, bias):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 5, 6])],
                              initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(proto, x):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_exact_weights_shrink_and_compute_the_same():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 8, 3, 3)).astype(np.float16).astype(np.float32)  # what a float16 checkpoint gives
    w[0, 0, 0, 0] = -0.0
    b = rng.normal(size=16).astype(np.float32)  # 16 elements: below the size worth a Cast
    x = rng.normal(size=(1, 8, 5, 6)).astype(np.float32)
    original = _conv_graph(w, b)
    want = _run(original, x)
    compact, saved = store_float16_exact(_conv_graph(w, b))
    onnx.checker.check_model(compact)
    assert saved == 2 * w.size and len(compact.SerializeToString()) < 0.6 * len(original.SerializeToString())
    assert {i.name: i.data_type for i in compact.graph.initializer} == {"w.f16": TensorProto.FLOAT16,
                                                                         "b": TensorProto.FLOAT}
    assert np.array_equal(_run(compact, x), want)


def test_weights_float16_would_change_stay_float32():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 8, 3, 3)).astype(np.float32)  # full float32 mantissas
    compact, saved = store_float16_exact(_conv_graph(w, np.zeros(16, np.float32)))
    assert saved == 0 and not any(n.op_type == "Cast" for n in compact.graph.node)
    assert np.array_equal(numpy_helper.to_array(compact.graph.initializer[0]), w)
