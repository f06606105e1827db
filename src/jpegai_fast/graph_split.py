"""Split a synthesis graph around its blocks, so the CPU runs them in C++ (``_core.GatedUpsampler``,
``_core.GatedConv3x3``).

The VM synthesis graphs are (inputs ->) res -> up1 -> up2 -> mid -> tail: res is x + ReLU(Conv3x3(x)), the
others ConvTranspose k4 s2 p1 (up) or Conv 3x3 (mid), with bias, and their gate, ``u * Conv1x1(LeakyReLU(u))``.
ONNX Runtime's CPU ConvTranspose has no blocked kernel and runs at about half its Conv throughput.  In C++ the
up-sampler runs as four Winograd F(2x2, 2x2) phase convolutions (csrc/gated_upsampler.hpp), the 3x3 blocks as
Winograd F(2x2, 3x3) (csrc/gated_conv3x3.hpp), each with its gate fused, handing each other pixel-major tensors.
This module reads the shipped ``.onnx`` file itself — no copy of any weight is shipped — and writes what is left
before the first block (the chroma graphs' latent slicing; nothing for luma) and after the last (the output conv,
depth-to-space, crop and scale) as two small ONNX models that ONNX Runtime loads from bytes.

Read me first:
 * The runtime has no ``onnx`` package: this is a reader/writer of the protobuf wire format for exactly the
   fields it needs (ModelProto.graph, GraphProto.node/input/output/initializer, NodeProto, AttributeProto,
   TensorProto of float32/float16).  Every other field is copied through as raw bytes.
 * A graph that does not match the pattern exactly gives ``None``: the caller runs the whole graph, as before.
 * Equal to the whole graph to float rounding, not bit for bit (tests/test_gated_upsampler.py): the C++ block
   sums in another order than ONNX Runtime's kernels.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["GatedBlock", "SplitSynthesis", "split_gated_upsamplers"]

# protobuf wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# onnx.TensorProto.DataType
_FLOAT, _FLOAT16 = 1, 10


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _fields(buf: bytes) -> list[tuple[int, int, Any, bytes]]:
    """-> [(field number, wire type, value, the field's raw bytes)]; value: int or bytes (LEN)."""
    out: list[tuple[int, int, Any, bytes]] = []
    pos, n = 0, len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        val: Any
        if wt == _VARINT:
            val, pos = _varint(buf, pos)
        elif wt == _I64:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == _I32:
            val, pos = buf[pos:pos + 4], pos + 4
        elif wt == _LEN:
            size, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        if pos > n:
            raise ValueError("truncated protobuf message")
        out.append((num, wt, val, buf[start:pos]))
    return out


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num: int, payload: bytes) -> bytes:
    return _encode_varint((num << 3) | _LEN) + _encode_varint(len(payload)) + payload


@dataclass
class _Node:
    raw: bytes
    inputs: list[str]
    outputs: list[str]
    op_type: str
    attrs: dict = field(default_factory=dict)  # name -> [(field number, wire type, value)]


def _parse_node(raw: bytes) -> _Node:
    node = _Node(raw, [], [], "")
    for num, _, val, _ in _fields(raw):
        if num == 1:
            node.inputs.append(val.decode())
        elif num == 2:
            node.outputs.append(val.decode())
        elif num == 4:
            node.op_type = val.decode()
        elif num == 5:
            fs = _fields(val)
            name = next(v.decode() for n, _, v, _ in fs if n == 1)
            node.attrs[name] = [(n, w, v) for n, w, v, _ in fs if n != 1]
    return node


def _attr_ints(node: _Node, name: str, default=None):
    if name not in node.attrs:
        return default
    vals = []
    for n, w, v in node.attrs[name]:
        if n == 3:  # i
            vals.append(v)
        elif n == 8 and w == _LEN:  # ints, packed
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                vals.append(x)
        elif n == 8:
            vals.append(v)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in vals]


def _attr_float(node: _Node, name: str, default: float) -> float:
    for n, _, v in node.attrs.get(name, []):
        if n == 2:
            return struct.unpack("<f", v)[0]
    return default


def _name(raw: bytes, field_number: int = 1) -> str:
    """The name of a ValueInfoProto (field 1) or TensorProto (field 8)."""
    return next(v.decode() for n, _, v, _ in _fields(raw) if n == field_number)


def _tensor(raw: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, data, name, floats = None, None, "", None
    for num, wt, val, _ in _fields(raw):
        if num == 1:
            if wt == _LEN:
                pos = 0
                while pos < len(val):
                    d, pos = _varint(val, pos)
                    dims.append(d)
            else:
                dims.append(val)
        elif num == 2:
            dtype = val
        elif num == 9:
            data = val
        elif num == 8:
            name = val.decode()
        elif num == 4 and wt == _LEN:
            floats = np.frombuffer(val, "<f4")
    if dtype == _FLOAT16 and data is not None:
        arr = np.frombuffer(data, "<f2").astype(np.float32)
    elif dtype == _FLOAT and data is not None:
        arr = np.frombuffer(data, "<f4").astype(np.float32)
    elif dtype == _FLOAT and floats is not None:
        arr = floats.astype(np.float32)
    else:
        raise ValueError(f"tensor {name!r}: data type {dtype} not supported here")
    return name, arr.reshape(dims)


@dataclass
class GatedBlock:
    """One block: ``kind`` "up" (ConvTranspose k4 s2 p1, weight [Cin, Cout, 4, 4]), "conv3x3" (Conv 3x3 stride 1
    pad 1, weight [Cout, Cin, 3, 3]) — each with its gate: LeakyReLU slope, gate [Cout, Cout], gate bias [Cout] —
    or "residual" (the head: x + ReLU(Conv3x3(x) + bias), Cin = Cout, no gate); bias [Cout]."""
    kind: str
    weight: np.ndarray
    bias: np.ndarray
    alpha: float
    gate_weight: np.ndarray | None  # None: the residual head block, x + ReLU(conv(x) + b)
    gate_bias: np.ndarray | None


@dataclass
class SplitSynthesis:
    head: bytes | None          # ONNX model: the graph's inputs -> the first block's input (None: that is an input)
    head_inputs: list[str]
    blocks: list[GatedBlock]    # run in order on the head's output
    tail: bytes                 # ONNX model: (``tail_input``, the graph's other inputs it uses) -> the graph's output
    tail_input: str
    tail_inputs: list[str]      # the original graph inputs the tail reads


def _value_info(name: str) -> bytes:
    """ValueInfoProto of a float tensor of unknown shape."""
    tensor_type = _encode_varint((1 << 3) | _VARINT) + _encode_varint(_FLOAT)  # TypeProto.Tensor.elem_type
    type_proto = _len_field(1, tensor_type)  # TypeProto.tensor_type
    return _len_field(1, name.encode()) + _len_field(2, type_proto)


def _main_kind(nd: _Node) -> str | None:
    """ "up" for ConvTranspose k4 s2 p1, "conv3x3" for Conv 3x3 s1 p1, both group 1 with a bias; else None."""
    if len(nd.inputs) < 3 or _attr_ints(nd, "group", [1]) != [1] or _attr_ints(nd, "dilations", [1, 1]) != [1, 1]:
        return None
    if nd.op_type == "ConvTranspose":
        if (_attr_ints(nd, "kernel_shape") == [4, 4] and _attr_ints(nd, "strides") == [2, 2]
                and _attr_ints(nd, "pads") == [1, 1, 1, 1] and _attr_ints(nd, "output_padding", [0, 0]) == [0, 0]
                and "output_shape" not in nd.attrs and "auto_pad" not in nd.attrs):
            return "up"
    elif nd.op_type == "Conv":
        if (_attr_ints(nd, "kernel_shape") == [3, 3] and _attr_ints(nd, "strides", [1, 1]) == [1, 1]
                and _attr_ints(nd, "pads") == [1, 1, 1, 1] and "auto_pad" not in nd.attrs):
            return "conv3x3"
    return None


def _residual(nd: _Node, users: list, consumers: dict):
    """(Relu, Add) where ``nd``'s output goes only through Relu into Add(nd's input, Relu's output); else None."""
    if len(users) != 1 or users[0].op_type != "Relu":
        return None
    relu = users[0]
    adds = consumers.get(relu.outputs[0], [])
    if len(adds) != 1 or adds[0].op_type != "Add" or sorted(adds[0].inputs) != sorted([nd.inputs[0], relu.outputs[0]]):
        return None
    return relu, adds[0]


def split_gated_upsamplers(model_bytes: bytes, kinds=("residual", "up", "conv3x3")) -> SplitSynthesis | None:
    """The head / gated blocks / tail split of a synthesis graph, or None where the graph is not
    ``head -> (ConvTranspose k4 s2 p1 -> gate)+ -> (Conv 3x3 -> gate)* -> tail`` with constant weights.
    ``kinds``: the block kinds taken out of the graph (the others stay in the tail)."""
    try:
        return _split(model_bytes, tuple(kinds))
    except (ValueError, KeyError, IndexError, StopIteration, struct.error):
        return None


def _split(model_bytes: bytes, kinds: tuple) -> SplitSynthesis | None:
    model_fields = _fields(model_bytes)
    graph_raw = next(v for n, w, v, _ in model_fields if n == 7)
    graph_fields = _fields(graph_raw)
    nodes = [_parse_node(v) for n, _, v, _ in graph_fields if n == 1]
    in_raw = {_name(raw): raw for n, _, raw, _ in graph_fields if n == 11}  # ValueInfoProto by name, in order
    inputs = list(in_raw)
    outputs = [_name(raw) for n, _, raw, _ in graph_fields if n == 12]
    if len(outputs) != 1:
        return None
    # initializers by name; decoded only when a block's weight is one (other types stay undecoded bytes)
    consts = {_name(raw, 8): raw for n, _, raw, _ in graph_fields if n == 5}
    producer = {o: nd for nd in nodes for o in nd.outputs}
    consumers: dict[str, list[_Node]] = {}
    for nd in nodes:
        for i in nd.inputs:
            consumers.setdefault(i, []).append(nd)

    def constant(name: str) -> np.ndarray:
        if name in consts:
            return _tensor(consts[name])[1]
        nd = producer[name]
        if nd.op_type == "Cast":
            return constant(nd.inputs[0])
        if nd.op_type == "Constant":
            (n, _, v), = [a for a in nd.attrs["value"] if a[0] == 5]
            return _tensor(v)[1]
        raise ValueError(f"{name} is not a constant")

    blocks, block_nodes, first_input, last_output = [], set(), None, None
    for nd in nodes:
        kind = _main_kind(nd)
        if kind is None or kind not in kinds or (last_output is not None and nd.inputs[0] != last_output):
            continue
        u = nd.outputs[0]
        users = consumers.get(u, [])
        res = _residual(nd, users, consumers) if kind == "conv3x3" and "residual" in kinds else None
        if res is not None:  # the head's x + ReLU(conv(x) + b)
            relu, add = res
            w = constant(nd.inputs[1])
            if w.shape[:2] != (w.shape[0], w.shape[0]) or w.shape[2:] != (3, 3) or first_input is not None:
                return None
            first_input = nd.inputs[0]
            blocks.append(GatedBlock("residual", np.ascontiguousarray(w, np.float32),
                                     np.ascontiguousarray(constant(nd.inputs[2]), np.float32).reshape(w.shape[0]),
                                     0.0, None, None))
            block_nodes |= {id(nd), id(relu), id(add)}
            last_output = add.outputs[0]
            continue
        if sorted(x.op_type for x in users) != ["LeakyRelu", "Mul"]:
            if kind == "up":
                return None  # every up-sampler of a VM synthesis is gated
            continue  # a plain convolution (the head's): stays in ONNX Runtime
        relu = next(x for x in users if x.op_type == "LeakyRelu")
        mul = next(x for x in users if x.op_type == "Mul")
        gates = consumers.get(relu.outputs[0], [])
        if len(gates) != 1 or gates[0].op_type != "Conv" or len(gates[0].inputs) < 3:
            return None
        gate = gates[0]
        if (_attr_ints(gate, "kernel_shape", [1, 1]) != [1, 1] or _attr_ints(gate, "group", [1]) != [1]
                or any(_attr_ints(gate, "pads", [0, 0, 0, 0])) or set(mul.inputs) != {u, gate.outputs[0]}):
            return None
        w = constant(nd.inputs[1])
        gw = constant(gate.inputs[1])
        cout = w.shape[1] if kind == "up" else w.shape[0]
        if w.ndim != 4 or w.shape[2:] != ((4, 4) if kind == "up" else (3, 3)) or gw.shape[:2] != (cout, cout) \
                or gw.size != cout * cout:
            return None
        if first_input is None:
            first_input = nd.inputs[0]
        elif last_output is None or len(consumers.get(last_output, [])) != 1:
            return None  # the blocks must follow one another directly (the loop skips any other input)
        blocks.append(GatedBlock(kind, np.ascontiguousarray(w, np.float32),
                                 np.ascontiguousarray(constant(nd.inputs[2]), np.float32).reshape(cout),
                                 _attr_float(relu, "alpha", 0.01),
                                 np.ascontiguousarray(gw.reshape(cout, cout), np.float32),
                                 np.ascontiguousarray(constant(gate.inputs[2]), np.float32).reshape(cout)))
        block_nodes |= {id(nd), id(relu), id(gate), id(mul)}
        last_output = mul.outputs[0]
    if not blocks or first_input is None or last_output is None or "up" not in [b.kind for b in blocks]:
        return None

    def closure(targets, stop: set) -> list[_Node]:
        need, seen = list(targets), set()
        keep = set()
        while need:
            t = need.pop()
            if t in seen or t in stop or t not in producer:
                continue
            seen.add(t)
            nd = producer[t]
            if id(nd) in block_nodes:
                raise ValueError("the head or tail reaches into an up-sampler")
            keep.add(id(nd))
            need.extend(nd.inputs)
        return [nd for nd in nodes if id(nd) in keep]  # the original (topological) order

    head_nodes = closure([first_input], set())
    tail_nodes = closure(outputs, {last_output})
    used = lambda ns: {i for nd in ns for i in nd.inputs}  # noqa: E731
    head_inputs = [i for i in inputs if i in used(head_nodes) or i == first_input]
    if not head_nodes and first_input not in inputs:
        return None
    tail_inputs = [i for i in inputs if i in used(tail_nodes)]
    out_raw = [raw for n, _, raw, _ in graph_fields if n == 12]
    head_consts = used(head_nodes)
    tail_consts = used(tail_nodes)

    def graph(ns, ins: list[bytes], outs: list[bytes], const_names: set) -> bytes:
        body = b"".join(_len_field(1, nd.raw) for nd in ns)
        for n, _, raw, whole in graph_fields:
            if n == 2:
                body += whole
            elif n == 5 and _name(raw, 8) in const_names:
                body += whole
        body += b"".join(_len_field(11, r) for r in ins) + b"".join(_len_field(12, r) for r in outs)
        rest = b"".join(whole for n, _, _, whole in model_fields if n != 7)
        return rest + _len_field(7, body)

    # nothing before the first block (the luma graphs, whose head block reads y_hat): no head model
    head = graph(head_nodes, [in_raw[i] for i in head_inputs], [_value_info(first_input)], head_consts) \
        if head_nodes else None
    tail = graph(tail_nodes, [_value_info(last_output)] + [in_raw[i] for i in tail_inputs], out_raw, tail_consts)
    return SplitSynthesis(head, head_inputs, blocks, tail, last_output, tail_inputs)
