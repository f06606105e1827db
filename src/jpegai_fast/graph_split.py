"""Split a synthesis graph into ONNX Runtime segments and C++ blocks, so the CPU runs the blocks in C++
(``_core.GatedUpsampler``, ``GatedConv3x3``, ``ShuffleUpsampler``, ``ResAUBlock``, and the tail as ``OutputHead``).

The VM synthesis graphs (vm33) are (inputs ->) res -> up1 -> up2 -> mid -> tail: res is x + ReLU(Conv3x3(x)), the
others ConvTranspose k4 s2 p1 (up) or Conv 3x3 (mid), with bias, and their gate, ``u * Conv1x1(LeakyReLU(u))``.
vr_bop's are head -> up1 -> ResAU -> crop -> up2 -> crop -> ResAU -> Conv 3x3 -> ResAU -> tail, with plain
up-samplers (BOP: ConvTranspose; SOP: pad + Conv 2x2 + depth-to-space) and ResAU blocks
x * (1 + Conv1x1(GroupedConv3x3(ReLU6(x)))).  ONNX Runtime's CPU ConvTranspose has no blocked kernel and runs at
about half its Conv throughput, and every element-wise op between its NCHWc convolutions costs a reorder.  In C++
the up-sampler runs as four Winograd F(4x4, 2x2) phase convolutions (csrc/gated_upsampler.hpp), the 3x3 blocks as
Winograd F(4x4, 3x3) (csrc/gated_conv3x3.hpp), each with its gate fused, the ResAU and SOP up-samplers as direct
row passes (csrc/resau_block.hpp, csrc/shuffle_upsampler.hpp); consecutive blocks hand each other pixel-major
tensors.  This module reads the shipped ``.onnx`` file itself — no copy of any weight is shipped — and writes what
lies before, between and after the blocks (latent slicing and concatenation, crops, the output conv,
depth-to-space, crop and scale) as small ONNX models that ONNX Runtime loads from bytes; the tail (output conv
1x1, depth-to-space CRD, crop, scale) is also described as ``OutputHeadSpec`` for the C++ ``OutputHead``
(csrc/output_head.hpp), its crop size computed by the graph's own shape arithmetic.

Read me first:
 * The runtime has no ``onnx`` package: this is a reader/writer of the protobuf wire format for exactly the
   fields it needs (ModelProto.graph, GraphProto.node/input/output/initializer, NodeProto, AttributeProto,
   TensorProto of float32/float16).  Every other field is copied through as raw bytes.
 * A graph without an up-sampler to take out, or whose weights cannot be read, gives ``None``: the caller runs
   the whole graph.  A node that does not match a block's pattern exactly stays in a segment.
 * Equal to the whole graph to float rounding, not bit for bit (tests/test_gated_upsampler.py): the C++ block
   sums in another order than ONNX Runtime's kernels.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["GatedBlock", "GraphSegment", "OutputHeadSpec", "SplitSynthesis", "split_gated_upsamplers"]

# protobuf wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# onnx.TensorProto.DataType
_FLOAT, _INT64, _FLOAT16 = 1, 7, 10


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


def _attr_str(node: _Node, name: str, default: str) -> str:
    for n, _, v in node.attrs.get(name, []):
        if n == 4:
            return v.decode()
    return default


def _name(raw: bytes, field_number: int = 1) -> str:
    """The name of a ValueInfoProto (field 1) or TensorProto (field 8)."""
    return next(v.decode() for n, _, v, _ in _fields(raw) if n == field_number)


def _tensor(raw: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, data, name, floats, ints = None, None, "", None, None
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
        elif num == 7:  # int64_data, packed or one varint
            ints = ints or []
            if wt == _LEN:
                pos = 0
                while pos < len(val):
                    x, pos = _varint(val, pos)
                    ints.append(x - (1 << 64) if x >= 1 << 63 else x)
            else:
                ints.append(val - (1 << 64) if val >= 1 << 63 else val)
    if dtype == _INT64 and (data is not None or ints is not None):
        arr = np.frombuffer(data, "<i8").astype(np.int64) if data is not None else np.array(ints, np.int64)
    elif dtype == _FLOAT16 and data is not None:
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
    pad 1, weight [Cout, Cin, 3, 3]) — each with its gate (LeakyReLU slope, gate [Cout, Cout], gate bias [Cout]) or
    without one (``gate_weight`` None: the convolution alone, as vr_bop's up-samplers and ``widen``) — or
    "residual" (the head: x + ReLU(Conv3x3(x) + bias), Cin = Cout, no gate); bias [Cout] — or "shuffle_up" (vr_bop's
    SOP up-sampler, pad bottom/right, Conv 2x2 to 4 Cout, depth-to-space CRD: weight [4 Cout, Cin, 2, 2], bias
    [4 Cout]) — or "resau" (vr_bop's
    x * (1 + Wmix · GConv3x3(ReLU6(x))): ``weight`` the grouped convolution's [C, 16, 3, 3], ``gate_weight`` Wmix
    [C, C], no bias)."""
    kind: str
    weight: np.ndarray
    bias: np.ndarray
    alpha: float
    gate_weight: np.ndarray | None  # None: no gate (the residual head block, or a plain convolution)
    gate_bias: np.ndarray | None

    @property
    def scale(self) -> int:
        """Output samples per input sample along each axis."""
        return 2 if self.kind in ("up", "shuffle_up") else 1


@dataclass
class GraphSegment:
    """The part of the graph between two blocks (or before the first, or after the last) as an ONNX model."""
    model: bytes
    flow_input: str | None  # the previous block's output it reads (None: the segment before the first block)
    inputs: list[str]       # the original graph inputs it reads
    output: str


@dataclass
class OutputHeadSpec:
    """The tail of every shipped synthesis graph, for ``_core.OutputHead``: Conv 1x1 (weight [Cout, Cin], bias or
    None) -> DepthToSpace CRD (``block``) -> Slice rows [0, end_h) -> Slice columns [0, end_w) -> × ``scale`` ->
    + ``offset``.  The two ends are computed from the graph's inputs' shapes (``image_ref``: the picture size;
    chroma: its half, rounded up) by ``ends_model``, the graph's own arithmetic as a small ONNX model that reads
    ``ends_inputs`` and returns (end_h, end_w) as int64 (ONNX Slice semantics: negative ends count from the end,
    every end clamped to the size)."""
    weight: np.ndarray
    bias: np.ndarray | None
    block: int
    scale: float
    offset: float
    ends_model: bytes
    ends_inputs: list[str]


@dataclass
class SplitSynthesis:
    """The graph as ``stages``: ONNX Runtime segments and C++ blocks in order, the last a segment (the tail);
    ``output_head``: that tail as ``_core.OutputHead``'s parameters, where it has exactly its pattern (else None:
    the tail segment runs)."""
    stages: list            # GraphSegment | GatedBlock
    first_input: str        # the tensor the first stage reads: a graph input when that stage is a block
    output_head: OutputHeadSpec | None = None

    @property
    def blocks(self) -> list[GatedBlock]:
        return [s for s in self.stages if isinstance(s, GatedBlock)]

    # the head / blocks / tail view of a graph whose blocks follow one another directly (the VM graphs)
    @property
    def head(self) -> bytes | None:
        return self.stages[0].model if isinstance(self.stages[0], GraphSegment) else None

    @property
    def head_inputs(self) -> list[str]:
        return self.stages[0].inputs if isinstance(self.stages[0], GraphSegment) else [self.first_input]

    @property
    def tail(self) -> bytes:
        return self.stages[-1].model

    @property
    def tail_input(self) -> str:
        return self.stages[-1].flow_input

    @property
    def tail_inputs(self) -> list[str]:
        return self.stages[-1].inputs


def _value_info(name: str, elem_type: int = _FLOAT) -> bytes:
    """ValueInfoProto of a tensor of unknown shape (float unless told)."""
    tensor_type = _encode_varint((1 << 3) | _VARINT) + _encode_varint(elem_type)  # TypeProto.Tensor.elem_type
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


def _resau(clip: _Node, consumers: dict, constant):
    """(nodes, spatial weight, mix weight, output) where ``clip`` starts vr_bop's ResAU block
    Mul(x, Add(Conv1x1(GroupedConv3x3(Clip(x, 0, 6))), 1)); else None."""
    def only(name, op):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    if len(clip.inputs) != 3 or float(constant(clip.inputs[1])) != 0.0 or float(constant(clip.inputs[2])) != 6.0:
        return None
    x = clip.inputs[0]
    spatial = only(clip.outputs[0], "Conv")
    mix = spatial and only(spatial.outputs[0], "Conv")
    add = mix and only(mix.outputs[0], "Add")
    mul = add and only(add.outputs[0], "Mul")
    if (mul is None or len(spatial.inputs) != 2 or len(mix.inputs) != 2
            or sorted(mul.inputs) != sorted([x, add.outputs[0]])):
        return None
    one = next(i for i in add.inputs if i != mix.outputs[0])
    sw, mw = constant(spatial.inputs[1]), constant(mix.inputs[1])
    c = sw.shape[0]
    if (float(np.asarray(constant(one)).reshape(-1)[0]) != 1.0 or np.asarray(constant(one)).size != 1
            or sw.shape != (c, 16, 3, 3) or _attr_ints(spatial, "group") != [c // 16] or c % 16
            or _attr_ints(spatial, "pads") != [1, 1, 1, 1] or _attr_ints(spatial, "strides", [1, 1]) != [1, 1]
            or _attr_ints(spatial, "dilations", [1, 1]) != [1, 1] or mw.size != c * c
            or _attr_ints(mix, "kernel_shape", [1, 1]) != [1, 1] or any(_attr_ints(mix, "pads", [0, 0, 0, 0]))
            or _attr_ints(mix, "group", [1]) != [1]):
        return None
    return [clip, spatial, mix, add, mul], np.ascontiguousarray(sw, np.float32), \
        np.ascontiguousarray(mw.reshape(c, c), np.float32), mul.outputs[0]


def _shuffle_up(pad: _Node, consumers: dict, constant, evaluate):
    """(nodes, weight, bias, output) where ``pad`` starts vr_bop's SOP up-sampler
    DepthToSpace(Conv2x2(Pad(x, bottom/right 1)), 2, CRD); else None.  ``evaluate(name)``: a constant tensor
    computed by the graph's own nodes (the pad amounts are made by Shape-free index arithmetic)."""
    users = consumers.get(pad.outputs[0], [])
    if len(users) != 1 or users[0].op_type != "Conv" or len(pad.inputs) < 2:
        return None
    if any(i for i in pad.inputs[2:]) or _attr_str(pad, "mode", "constant") != "constant":
        return None  # a pad value or another mode
    conv = users[0]
    d2s = consumers.get(conv.outputs[0], [])
    if len(d2s) != 1 or d2s[0].op_type != "DepthToSpace" or len(conv.inputs) < 3:
        return None
    d2s = d2s[0]
    if (_attr_str(d2s, "mode", "DCR") != "CRD" or _attr_ints(d2s, "blocksize") != [2]
            or _attr_ints(conv, "kernel_shape") != [2, 2]
            or _attr_ints(conv, "strides", [1, 1]) != [1, 1] or any(_attr_ints(conv, "pads", [0, 0, 0, 0]))
            or _attr_ints(conv, "group", [1]) != [1] or _attr_ints(conv, "dilations", [1, 1]) != [1, 1]):
        return None
    if [int(v) for v in np.asarray(evaluate(pad.inputs[1])).reshape(-1)] != [0, 0, 0, 0, 0, 0, 1, 1]:
        return None
    w = constant(conv.inputs[1])
    if w.ndim != 4 or w.shape[0] % 4 or w.shape[2:] != (2, 2):
        return None
    return [pad, conv, d2s], np.ascontiguousarray(w, np.float32), \
        np.ascontiguousarray(constant(conv.inputs[2]), np.float32).reshape(w.shape[0]), d2s.outputs[0]


def _output_head(flow: str, output: str, consumers: dict, constant):
    """The tail's Conv 1x1 -> DepthToSpace CRD -> Slice (rows from 0) -> Slice (columns from 0) -> Mul -> Add (both
    by a scalar constant) -> the graph output, read from ``flow`` (the last block's output), as
    (weight [Cout, Cin], bias | None, block, scale, offset, (end_h name, end_w name)); else None."""
    def only(name, op):
        users = consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op:
            raise ValueError(f"{name} is not read by one {op} alone")
        return users[0]

    conv = only(flow, "Conv")
    if (_attr_ints(conv, "group", [1]) != [1] or _attr_ints(conv, "strides", [1, 1]) != [1, 1]
            or _attr_ints(conv, "dilations", [1, 1]) != [1, 1] or any(_attr_ints(conv, "pads", [0, 0, 0, 0]))
            or "auto_pad" in conv.attrs or conv.inputs[0] != flow):
        return None
    w = constant(conv.inputs[1])
    if w.ndim != 4 or w.shape[2:] != (1, 1):
        return None
    cout, cin = w.shape[:2]
    bias = constant(conv.inputs[2]).reshape(cout) if len(conv.inputs) > 2 and conv.inputs[2] else None
    d2s = only(conv.outputs[0], "DepthToSpace")
    block = _attr_ints(d2s, "blocksize", [0])[0]
    if _attr_str(d2s, "mode", "DCR") != "CRD" or block < 1 or cout % (block * block):
        return None
    ends, x = {}, d2s.outputs[0]
    for _ in range(2):
        sl = only(x, "Slice")
        if sl.inputs[0] != x or len(sl.inputs) < 4:
            return None
        starts = [int(v) for v in np.asarray(constant(sl.inputs[1])).reshape(-1)]
        axes = [int(v) for v in np.asarray(constant(sl.inputs[3])).reshape(-1)]
        steps = ([int(v) for v in np.asarray(constant(sl.inputs[4])).reshape(-1)]
                 if len(sl.inputs) > 4 and sl.inputs[4] else [1])
        if starts != [0] or steps != [1] or len(axes) != 1 or axes[0] % 4 not in (2, 3) or axes[0] % 4 in ends:
            return None
        ends[axes[0] % 4] = sl.inputs[2]
        x = sl.outputs[0]
    scalars = []
    for op in ("Mul", "Add"):
        nd = only(x, op)
        other = [i for i in nd.inputs if i != x]
        if len(other) != 1:
            return None
        c = np.asarray(constant(other[0]), np.float32)
        if c.size != 1:
            return None
        scalars.append(float(c.reshape(())))
        x = nd.outputs[0]
    if x != output:
        return None
    return (np.ascontiguousarray(w.reshape(cout, cin), np.float32),
            None if bias is None else np.ascontiguousarray(bias, np.float32), block, scalars[0], scalars[1],
            (ends[2], ends[3]))


def _simd_channels(cin: int, cout: int) -> bool:
    """The blocks' AVX2 tiles: Cin a multiple of 8, Cout of 16 (csrc/float_tiles.hpp)."""
    return cin % 8 == 0 and cout % 16 == 0


def split_gated_upsamplers(model_bytes: bytes,
                           kinds=("residual", "up", "shuffle_up", "conv3x3", "resau")) -> SplitSynthesis | None:
    """The stages of a synthesis graph — ONNX Runtime segments and C++ blocks — or None where the graph has no
    up-sampler to take out or its constant weights cannot be read.  Taken out, in the graph's order: the head's
    residual block when it is the first, every ConvTranspose k4 s2 p1 (gated or not) and Pad + Conv 2x2 +
    DepthToSpace up-sampler, every gated Conv 3x3 and every plain one whose channels fit the AVX2 tiles, and
    vr_bop's ResAU blocks after the first up-sampler.  The segments between blocks are the graph's own nodes
    (latent slicing and concatenation, crops, the output convolution, depth-to-space).
    ``kinds``: the block kinds taken out of the graph (the others stay in the segments)."""
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

    def vector(name: str, n: int) -> np.ndarray:
        return np.ascontiguousarray(constant(name), np.float32).reshape(n)

    # the blocks, in the graph's (topological) order: (block, input tensor, output tensor)
    found: list[tuple[GatedBlock, str, str]] = []
    nodes_of: dict[str, set[int]] = {}  # block output -> the ids of the block's nodes
    block_nodes: set[int] = set()  # every block's nodes, once they are found

    def closure(targets, stop: set) -> list[_Node]:
        """The nodes that compute ``targets`` from the graph inputs and ``stop``, in the graph's order."""
        need, seen = list(targets), set()
        keep = set()
        while need:
            t = need.pop()
            if t in seen or t in stop or t not in producer:
                continue
            seen.add(t)
            nd = producer[t]
            if id(nd) in block_nodes:
                raise ValueError("a segment reaches into a block other than the one before it")
            keep.add(id(nd))
            need.extend(nd.inputs)
        return [nd for nd in nodes if id(nd) in keep]

    used = lambda ns: {i for nd in ns for i in nd.inputs}  # noqa: E731

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

    def evaluate(name: str) -> np.ndarray:
        """An int64 tensor the graph computes from constants alone (no graph input), run once in ONNX Runtime."""
        import onnxruntime as ort

        ns = closure([name], set())
        if {i for nd in ns for i in nd.inputs} & set(inputs):
            raise ValueError(f"{name} depends on a graph input")
        model = graph(ns, [], [_value_info(name, _INT64)], {i for nd in ns for i in nd.inputs})
        return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {})[0]

    upsampled = lambda: any(b.kind in ("up", "shuffle_up") for b, _, _ in found)  # noqa: E731
    for nd in nodes:
        if nd.op_type == "Pad" and "shuffle_up" in kinds:
            try:
                res = _shuffle_up(nd, consumers, constant, evaluate)
            except Exception:  # noqa: BLE001 — a probe: whatever fails (ONNX Runtime's own errors too), no block
                res = None
            if res is not None:
                ns, w, b, y = res
                found.append((GatedBlock("shuffle_up", w, b, 0.0, None, None), nd.inputs[0], y))
                nodes_of[y] = {id(n) for n in ns}
            continue
        if nd.op_type == "Clip" and "resau" in kinds and upsampled():
            try:
                res = _resau(nd, consumers, constant)
            except (ValueError, KeyError, StopIteration):  # a Clip that is not the block's: stays in a segment
                res = None
            if res is not None:  # at the up-sampled resolutions, as the plain 3x3 convolutions
                ns, sw, mw, y = res
                found.append((GatedBlock("resau", sw, np.zeros(0, np.float32), 0.0, mw, None), nd.inputs[0], y))
                nodes_of[y] = {id(n) for n in ns}
            continue
        kind = _main_kind(nd)
        if kind is None or kind not in kinds:
            continue
        u = nd.outputs[0]
        users = consumers.get(u, [])
        res = _residual(nd, users, consumers) if kind == "conv3x3" and "residual" in kinds else None
        if res is not None:  # the head's x + ReLU(conv(x) + b), taken only as the first block
            if found:
                continue
            relu, add = res
            w = constant(nd.inputs[1])
            if w.shape[:2] != (w.shape[0], w.shape[0]) or w.shape[2:] != (3, 3):
                return None
            found.append((GatedBlock("residual", np.ascontiguousarray(w, np.float32), vector(nd.inputs[2], w.shape[0]),
                                     0.0, None, None), nd.inputs[0], add.outputs[0]))
            nodes_of[add.outputs[0]] = {id(nd), id(relu), id(add)}
            continue
        w = constant(nd.inputs[1])
        if w.ndim != 4 or w.shape[2:] != ((4, 4) if kind == "up" else (3, 3)):
            return None
        cin, cout = (w.shape[0], w.shape[1]) if kind == "up" else (w.shape[1], w.shape[0])
        gated = sorted(x.op_type for x in users) == ["LeakyRelu", "Mul"]
        if not gated:
            # a plain convolution: every up-sampler; a 3x3 one where its channels fit the AVX2 tiles
            if kind == "conv3x3" and not _simd_channels(cin, cout):
                continue
            found.append((GatedBlock(kind, np.ascontiguousarray(w, np.float32), vector(nd.inputs[2], cout), 0.0,
                                     None, None), nd.inputs[0], u))
            nodes_of[u] = {id(nd)}
            continue
        relu = next(x for x in users if x.op_type == "LeakyRelu")
        mul = next(x for x in users if x.op_type == "Mul")
        gates = consumers.get(relu.outputs[0], [])
        if len(gates) != 1 or gates[0].op_type != "Conv" or len(gates[0].inputs) < 3:
            return None
        gate = gates[0]
        if (_attr_ints(gate, "kernel_shape", [1, 1]) != [1, 1] or _attr_ints(gate, "group", [1]) != [1]
                or any(_attr_ints(gate, "pads", [0, 0, 0, 0])) or set(mul.inputs) != {u, gate.outputs[0]}):
            return None
        gw = constant(gate.inputs[1])
        if gw.shape[:2] != (cout, cout) or gw.size != cout * cout:
            return None
        found.append((GatedBlock(kind, np.ascontiguousarray(w, np.float32), vector(nd.inputs[2], cout),
                                 _attr_float(relu, "alpha", 0.01),
                                 np.ascontiguousarray(gw.reshape(cout, cout), np.float32),
                                 vector(gate.inputs[2], cout)), nd.inputs[0], mul.outputs[0]))
        nodes_of[mul.outputs[0]] = {id(nd), id(relu), id(gate), id(mul)}
    if not upsampled():
        return None
    block_nodes = set().union(*nodes_of.values())

    def segment(flow: str | None, target: str, out_raw: bytes) -> GraphSegment | None:
        """The segment from ``flow`` (the previous block's output; None: the graph inputs only) to ``target``, or
        None where there is nothing to compute (``target`` is ``flow`` or a graph input)."""
        ns = closure([target], set() if flow is None else {flow})
        if not ns:
            if target != flow and (flow is not None or target not in inputs):
                raise ValueError(f"{target} is neither computed nor an input")
            return None
        if flow is not None and flow not in used(ns):
            raise ValueError(f"{target} does not depend on the block before it")
        ins = [i for i in inputs if i in used(ns)]
        model = graph(ns, ([_value_info(flow)] if flow is not None else []) + [in_raw[i] for i in ins], [out_raw],
                      used(ns))
        return GraphSegment(model, flow, ins, target)

    def _output_head_spec(flow: str | None, output: str) -> OutputHeadSpec | None:
        if flow is None:
            return None
        try:
            res = _output_head(flow, output, consumers, constant)
            if res is None:
                return None
            w, b, block, scale, offset, (end_h, end_w) = res
            ns = closure([end_h, end_w], {flow})
            ins = [i for i in inputs if i in used(ns)]
            if flow in used(ns) or not ins:  # the crop must come from the inputs' shapes alone
                return None
            model = graph(ns, [in_raw[i] for i in ins], [_value_info(end_h, _INT64), _value_info(end_w, _INT64)],
                          used(ns))
            return OutputHeadSpec(w, b, block, scale, offset, model, ins)
        except (ValueError, KeyError, IndexError, StopIteration, struct.error):
            return None

    stages: list = []
    flow: str | None = None
    for blk, x_in, x_out in found:
        seg = segment(flow, x_in, _value_info(x_in))
        if seg is not None:
            stages.append(seg)
        elif flow is not None and not {id(nd) for nd in consumers.get(flow, [])} <= nodes_of[x_out]:
            return None  # a block's output read by the next block and by anything else
        stages.append(blk)
        flow = x_out
    out_raw = next(raw for n, _, raw, _ in graph_fields if n == 12)
    tail = segment(flow, outputs[0], out_raw)
    if tail is None:
        return None
    stages.append(tail)
    return SplitSynthesis(stages, found[0][1], _output_head_spec(flow, outputs[0]))

