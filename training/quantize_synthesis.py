"""Int8 synthesis graphs: the export step that follows every new model (issue 12, build item 2).

    python -m training.quantize_synthesis --model src/jpegai_fast/models/vm33 [--ops bop,sop] [--qat-steps L,C]

For each operating point the model directory ships (synthesis_{op}_{luma,chroma}.onnx), writes
synthesis_{op}_{luma,chroma}.int8.onnx next to the float graphs and a "synthesis_int8" entry into
model_card.json (calibration set, PSNR cost per Kodak rate point, speed, the command).  The float graphs are
never modified: the runtime's default fp32 path stays bit for bit what it was.

Steps, each a function below (the float passes keep the graph equal to the exported one within float
rounding; tests/test_int8_synthesis.py checks them on small synthetic graphs):
1. ``constant_fold``: ONNX Runtime's basic (hardware-independent) optimisation offline, so shape glue
   computed from constants (the SOP up-samplers' Pad amounts) becomes initializers.
2. ``fold_pads``: a zero Pad in front of a Conv becomes the Conv's own (asymmetric) padding.
3. ``convtranspose_to_conv``: ConvTranspose k4 s2 p1 -> four 2x2 phase convolutions + Concat + DepthToSpace
   (DCR), the same MACs, or one 3x3 convolution to 4x the channels + DepthToSpace (CRD), 9/4 of the MACs.
   ORT has no int8 ConvTranspose on the CPU; with this rewrite the up-samplers run as QLinearConv.
4. ``equalise_inputs``: per-channel scaling of the latent inputs folded into the convolutions that read them
   (the latents' channels differ by two orders of magnitude in range, one per-tensor int8 scale cannot
   hold them), optionally (``--equalise-alpha``).
   ``equalise_gates`` (``--gate-alpha``): the gated products a * gate (VM 3.3's up-samplers and mid block)
   rescaled per channel, the scale folded into the gate convolution's rows and the consumers' input channels,
   so one uint8 scale per tensor fits their channels better (exact in float).
5. ``quantize``: onnxruntime.quantization.quantize_static, QDQ, per-channel int8 weights, uint8 or int8
   activations (per tensor), calibrated (min/max) on the latents of training crops at several rate points.
6. ``keep_float``: the QDQ pairs of chosen activations are removed again so those tensors stay float: always
   the tail (last convolution's output -> picture), the tensors named by ``--float-tensors``, and those
   ``select_float`` picks: each activation's measured cost alone, then the costliest per MAC moved to float
   first until the graph's cost on calibration samples is within ``--float-budget-db`` or
   ``--max-float-mac-share`` of its MACs run in float.
7. ``--qat-steps N``: quantisation-aware fine-tuning (``qat``): the prepared float graph is run in torch by a
   small interpreter (``TorchGraph``) with fake quantisation exactly where the QDQ graph quantises (per-channel
   symmetric int8 weights, per-tensor activations with the calibrated ranges as starting observers), trained
   against the crops' pictures from their frozen latents; the tuned weights and the observed ranges go back into
   the float graph, which is then quantised with those ranges (TensorQuantOverrides).
8. ``float16_conv_weights`` (``--float16-weights``, default on): the weights of the convolutions that stay float
   are rounded to float16 and stored so, as the float graphs store theirs (the int8 files were larger than the
   float ones); the Kodak evaluation measures the graph as saved.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPONENTS = ("luma", "chroma")


# ----------------------------------------------------------------------------------------------
# Float graph passes
# ----------------------------------------------------------------------------------------------
def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _set_attr(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _initializers(proto) -> dict:
    return {i.name: i for i in proto.graph.initializer}


def _consumers(proto) -> dict:
    out: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _drop_unused_initializers(proto):
    used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
    keep = [i for i in proto.graph.initializer if i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def constant_fold(proto: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's basic-level optimisation (constant folding, redundant nodes), saved offline."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        onnx.save(proto, src)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = dst
        opts.intra_op_num_threads = 1
        ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        out = onnx.load(dst)
    # ORT writes its own opset imports / producer; keep the graph's ir_version consistent for the checker
    return out


def fold_pads(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Pad (constant mode, value 0, spatial axes only, constant amounts) whose only consumer is a Conv with
    explicit pads -> the Conv's pads grow by the Pad's amounts and the Pad goes."""
    g = proto.graph
    inits = _initializers(proto)
    cons = _consumers(proto)
    drop, rename = set(), {}
    for n in g.node:
        if n.op_type != "Pad" or len(n.input) < 2 or n.input[1] not in inits:
            continue
        mode = _attrs(n).get("mode", b"constant")
        if mode not in (b"constant", "constant"):
            continue
        if len(n.input) > 2 and n.input[2]:
            if n.input[2] not in inits or np.any(numpy_helper.to_array(inits[n.input[2]]) != 0):
                continue
        if len(n.input) > 3 and n.input[3]:
            continue  # axes input: not produced by the exporters
        pads = numpy_helper.to_array(inits[n.input[1]]).astype(np.int64).ravel()
        users = cons.get(n.output[0], [])
        if pads.size != 8 or pads[[0, 1, 4, 5]].any() or (pads < 0).any() or len(users) != 1:
            continue
        conv = users[0]
        a = _attrs(conv)
        if conv.op_type != "Conv" or conv.input[0] != n.output[0] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET",
                                                                                                          "NOTSET"):
            continue
        cp = list(a.get("pads", [0, 0, 0, 0]))
        _set_attr(conv, "pads", [cp[0] + int(pads[2]), cp[1] + int(pads[3]), cp[2] + int(pads[6]),
                                 cp[3] + int(pads[7])])
        rename[n.output[0]] = n.input[0]
        drop.add(id(n))
    nodes = [n for n in g.node if id(n) not in drop]
    for n in nodes:
        for k, i in enumerate(n.input):
            if i in rename:
                n.input[k] = rename[i]
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused_initializers(proto)
    return proto


def _tap(phase: int, offset: int):
    """ConvTranspose k4 s2 p1: the kernel index that takes input offset ``offset`` (-1, 0, 1) to output
    phase ``phase`` (0, 1); None where no kernel tap connects them."""
    k = phase + 1 - 2 * offset
    return k if 0 <= k <= 3 else None


def _is_up2(node) -> bool:
    a = _attrs(node)
    return (node.op_type == "ConvTranspose" and a.get("group", 1) == 1 and list(a.get("strides", [1, 1])) == [2, 2]
            and list(a.get("kernel_shape", [4, 4])) == [4, 4] and list(a.get("pads", [0] * 4)) == [1, 1, 1, 1]
            and list(a.get("dilations", [1, 1])) == [1, 1] and not any(a.get("output_padding", [0, 0]))
            and "output_shape" not in a and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def convtranspose_to_conv(proto: onnx.ModelProto, mode: str = "phases") -> onnx.ModelProto:
    """Every ConvTranspose k4 s2 p1 (group 1) -> convolutions + DepthToSpace, the same function.

    Output sample 2i+a (phase a) of the transposed convolution reads input samples i-1, i (a = 0) or i, i+1
    (a = 1) with kernel taps 3, 1 or 2, 0 (``_tap``).  ``mode="phases"``: four 2x2 convolutions, one per
    output phase (a, b), each with the padding that aligns its two taps, concatenated in (a, b, channel)
    order and interleaved by DepthToSpace DCR — the MACs of the transposed convolution.  ``mode="conv3x3"``:
    one 3x3 convolution (pad 1) to 4·Cout channels in (channel, a, b) order (the unused taps zero) and
    DepthToSpace CRD."""
    if mode not in ("phases", "conv3x3"):
        raise ValueError(f"mode must be 'phases' or 'conv3x3', got {mode!r}")
    g = proto.graph
    inits = _initializers(proto)
    nodes = []
    for node in g.node:
        if not _is_up2(node) or node.input[1] not in inits:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # [Cin, Cout, 4, 4]
        cin, cout = w.shape[:2]
        b = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
             if len(node.input) > 2 and node.input[2] else None)
        x, y, base = node.input[0], node.output[0], node.name or node.output[0]
        if mode == "conv3x3":
            k3 = np.zeros((cout, 2, 2, cin, 3, 3), np.float32)
            for pa in range(2):
                for pb in range(2):
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ky, kx = _tap(pa, dy), _tap(pb, dx)
                            if ky is not None and kx is not None:
                                k3[:, pa, pb, :, dy + 1, dx + 1] = w[:, :, ky, kx].T
            ins = [x, base + "/w3x3"]
            g.initializer.append(numpy_helper.from_array(k3.reshape(4 * cout, cin, 3, 3), ins[1]))
            if b is not None:
                ins.append(base + "/b3x3")
                g.initializer.append(numpy_helper.from_array(np.repeat(b, 4), ins[2]))
            mid = base + "/conv3x3_out"
            nodes.append(helper.make_node("Conv", ins, [mid], name=base + "/conv3x3", kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1))
            nodes.append(helper.make_node("DepthToSpace", [mid], [y], name=base + "/d2s", blocksize=2, mode="CRD"))
            continue
        outs = []
        for pa in range(2):
            for pb in range(2):
                dys, dxs = ((-1, 0), (0, 1))[pa], ((-1, 0), (0, 1))[pb]
                k2 = np.zeros((cout, cin, 2, 2), np.float32)
                for r, dy in enumerate(dys):
                    for s, dx in enumerate(dxs):
                        k2[:, :, r, s] = w[:, :, _tap(pa, dy), _tap(pb, dx)].T
                ins = [x, f"{base}/w_phase{pa}{pb}"]
                g.initializer.append(numpy_helper.from_array(k2, ins[1]))
                if b is not None:
                    ins.append(f"{base}/b_phase{pa}{pb}")
                    g.initializer.append(numpy_helper.from_array(b, ins[2]))
                outs.append(f"{base}/phase{pa}{pb}")
                nodes.append(helper.make_node("Conv", ins, [outs[-1]], name=f"{base}/phase{pa}{pb}_conv",
                                              kernel_shape=[2, 2], pads=[1 - pa, 1 - pb, pa, pb], strides=[1, 1],
                                              dilations=[1, 1], group=1))
        nodes.append(helper.make_node("Concat", outs, [base + "/phases"], name=base + "/concat", axis=1))
        nodes.append(helper.make_node("DepthToSpace", [base + "/phases"], [y], name=base + "/d2s", blocksize=2,
                                      mode="DCR"))
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused_initializers(proto)
    return proto


def _channels(proto) -> dict:
    """tensor name -> channel count (axis 1) where shape inference knows it."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            out[vi.name] = dims[1].dim_value
    return out


def _scaled_weight(proto, node, index: int, factor: np.ndarray):
    """node.input[index] (an initializer) times ``factor`` (broadcast), as a new initializer of this node's own."""
    inits = _initializers(proto)
    w = numpy_helper.to_array(inits[node.input[index]]).astype(np.float32) * factor.astype(np.float32)
    name = f"{node.input[index]}/eq{len(proto.graph.initializer)}"
    proto.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), name))
    node.input[index] = name


def equalise_inputs(proto: onnx.ModelProto, scales: dict) -> onnx.ModelProto:
    """Per-channel equalisation of graph inputs, folded into the convolutions downstream.

    ``scales``: input name -> s [C] > 0.  The graph gets x' = x / s (one Mul after the input); every tensor
    that is then a per-channel multiple of its original (through Relu, LeakyRelu, spatial Slice, zero Pad,
    channel Concat) carries its scale, a Conv / ConvTranspose reading it absorbs the scale into its weights'
    input channels, and a residual Add(x', f(x')) gets its other branch scaled to match by scaling the rows of
    the Conv that makes it (through Relu / LeakyRelu: positively homogeneous).  Anything else gets the scale
    undone by a Mul in front of it (not reached by the shipped graphs).  The result equals the input graph
    within float rounding."""
    g = proto.graph
    channels = _channels(proto)
    inits = _initializers(proto)
    scale: dict[str, np.ndarray] = {}
    head = []
    for name, s in scales.items():
        s = np.asarray(s, np.float32).ravel()
        new = f"{name}/equalised"
        inv = f"{name}/equalise_inv"
        g.initializer.append(numpy_helper.from_array((1.0 / s).reshape(1, -1, 1, 1).astype(np.float32), inv))
        for n in g.node:
            for k, i in enumerate(n.input):
                if i == name:
                    n.input[k] = new
        head.append(helper.make_node("Mul", [name, inv], [new], name=f"{name}/equalise"))
        scale[new] = s
    nodes = list(g.node)
    producer = {o: n for n in nodes for o in n.output}
    cons = _consumers(proto)
    out_nodes = []

    def unscale(n, k):
        s = scale[n.input[k]]
        t = f"{n.input[k]}/unscaled_for_{n.name or n.output[0]}"
        sc = t + "_scale"
        g.initializer.append(numpy_helper.from_array(s.reshape(1, -1, 1, 1).astype(np.float32), sc))
        out_nodes.append(helper.make_node("Mul", [n.input[k], sc], [t], name=t))
        n.input[k] = t

    def spatial_only(n) -> bool:
        if n.op_type == "Pad":
            a = _attrs(n)
            if a.get("mode", b"constant") not in (b"constant", "constant") or len(n.input) < 2 \
                    or n.input[1] not in inits or (len(n.input) > 2 and n.input[2] and (
                        n.input[2] not in inits or np.any(numpy_helper.to_array(inits[n.input[2]]) != 0))):
                return False
            p = numpy_helper.to_array(inits[n.input[1]]).ravel()
            return p.size == 8 and not p[[0, 1, 4, 5]].any()
        if n.op_type == "Slice":
            if len(n.input) < 4 or n.input[3] not in inits:
                return False
            axes = numpy_helper.to_array(inits[n.input[3]]).ravel()
            return not np.isin(axes, (0, 1, -3, -4)).any()
        return False

    def scale_branch(tensor, s) -> bool:
        """Make ``tensor`` (unscaled, made by [Relu|LeakyRelu]* <- Conv, single consumers) carry scale s."""
        chain, t = [], tensor
        while True:
            n = producer.get(t)
            if n is None or len(cons.get(t, [])) != 1:
                return False
            chain.append(n)
            if n.op_type == "Conv":
                break
            if n.op_type not in ("Relu", "LeakyRelu"):
                return False
            t = n.input[0]
        conv, live = chain[-1], _initializers(proto)
        if conv.input[1] not in live or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in live):
            return False
        _scaled_weight(proto, conv, 1, (1.0 / s).reshape(-1, 1, 1, 1))
        if len(conv.input) > 2 and conv.input[2]:
            _scaled_weight(proto, conv, 2, 1.0 / s)
        for n in chain:
            scale[n.output[0]] = s
        return True

    for n in nodes:
        ins = [scale.get(i) for i in n.input]
        if all(x is None for x in ins):
            out_nodes.append(n)
            continue
        op, a = n.op_type, _attrs(n)
        if op in ("Relu", "LeakyRelu") or (op in ("Slice", "Pad") and ins[0] is not None and spatial_only(n)
                                           and all(x is None for x in ins[1:])):
            scale[n.output[0]] = ins[0]
        elif op == "Concat" and a.get("axis") in (1, -3) and all(x is not None or i in channels
                                                                 for x, i in zip(ins, n.input)):
            scale[n.output[0]] = np.concatenate([x if x is not None else np.ones(channels[i], np.float32)
                                                 for x, i in zip(ins, n.input)])
        elif op == "Conv" and ins[0] is not None and n.input[1] in inits and all(x is None for x in ins[1:]):
            w = numpy_helper.to_array(inits[n.input[1]])
            group = a.get("group", 1)
            cpg = w.shape[1]
            idx = (np.arange(w.shape[0]) // (w.shape[0] // group))[:, None] * cpg + np.arange(cpg)[None, :]
            _scaled_weight(proto, n, 1, ins[0][idx][:, :, None, None])
        elif op == "ConvTranspose" and ins[0] is not None and a.get("group", 1) == 1 and n.input[1] in inits:
            _scaled_weight(proto, n, 1, ins[0].reshape(-1, 1, 1, 1))
        elif op == "Add" and len(n.input) == 2 and (ins[0] is None) != (ins[1] is None) \
                and scale_branch(n.input[0 if ins[0] is None else 1], ins[1] if ins[0] is None else ins[0]):
            scale[n.output[0]] = ins[0] if ins[0] is not None else ins[1]
        elif op == "Add" and len(n.input) == 2 and ins[0] is not None and ins[1] is not None \
                and np.array_equal(ins[0], ins[1]):
            scale[n.output[0]] = ins[0]
        else:
            for k, x in enumerate(ins):
                if x is not None:
                    unscale(n, k)
        out_nodes.append(n)
    for o in g.output:
        if o.name in scale:
            raise ValueError(f"equalise_inputs: graph output {o.name} would carry a scale")
    del g.node[:]
    g.node.extend(head + out_nodes)
    _drop_unused_initializers(proto)
    return proto


def gated_products(proto: onnx.ModelProto) -> list:
    """The gated products Mul(a, gate) of the graph whose ``gate`` is made by a Conv with initializer weights
    and whose every consumer is a group-1 Conv with initializer weights: the tensors ``equalise_gates`` can
    rescale per channel without changing the float result."""
    inits = _initializers(proto)
    producer = {o: n for n in proto.graph.node for o in n.output}
    cons = _consumers(proto)
    graph_outputs = {o.name for o in proto.graph.output}
    found = []
    for n in proto.graph.node:
        if n.op_type != "Mul" or len(n.input) != 2 or n.output[0] in graph_outputs:
            continue
        gate = producer.get(n.input[1])
        users = cons.get(n.output[0], [])
        if gate is None or gate.op_type != "Conv" or gate.input[1] not in inits or not users \
                or len(cons.get(gate.output[0], [])) != 1:
            continue
        if all(u.op_type == "Conv" and u.input[0] == n.output[0] and u.input[1] in inits
               and _attrs(u).get("group", 1) == 1 for u in users):
            found.append(n)
    return found


def equalise_gates(proto: onnx.ModelProto, feeds, alpha: float = 0.5, samples: int = 24) -> onnx.ModelProto:
    """Per-channel equalisation of the gated products a * gate (cross-layer equalisation, exact in float).

    A gated product's channels differ up to ~10x in range (vm33 BOP luma: max |x| per channel 0.26 ... 2.65),
    and the QLinearConv that reads it has one uint8 scale for all of them.  Channel c is multiplied by
    s_c = (max_k r_k / r_c) ** alpha (r_c: the channel's max |x| over ``samples`` of ``feeds``) by scaling
    row c of the gate convolution (weights and bias), and the consumer convolutions' input channel c is divided
    by s_c.  alpha = 1 would flatten the ranges but moves the whole spread into the consumers' per-output-channel
    weight scales and into the gate's own (quantised) output; measured on vm33 BOP luma (PTQ cost on the
    calibration samples): alpha 0 +0.329 dB, 0.3 +0.279, **0.5 +0.239**, 0.7 +0.405, 1 +0.525 dB."""
    import onnxruntime as ort

    muls = gated_products(proto)
    if not muls or alpha <= 0:
        return proto
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for m in muls:
        probe.graph.output.append(helper.make_empty_tensor_value_info(m.output[0]))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ranges = {m.output[0]: 0.0 for m in muls}
    for f in feeds[:: max(1, len(feeds) // samples)][:samples]:
        got = dict(zip(names, sess.run(None, f)))
        for t in ranges:
            ranges[t] = np.maximum(ranges[t], np.abs(got[t][0]).max(axis=(1, 2)))
    producer = {o: n for n in proto.graph.node for o in n.output}
    cons = _consumers(proto)
    for m in muls:
        r = np.asarray(ranges[m.output[0]], np.float64)
        r = np.maximum(r, 1e-6 * r.max()) if r.max() > 0 else np.ones_like(r)
        s = ((r.max() / r) ** alpha).astype(np.float32)
        gate = producer[m.input[1]]
        _scaled_weight(proto, gate, 1, s.reshape(-1, 1, 1, 1))
        if len(gate.input) > 2 and gate.input[2]:
            _scaled_weight(proto, gate, 2, s)
        for u in cons[m.output[0]]:
            _scaled_weight(proto, u, 1, (1.0 / s).reshape(1, -1, 1, 1))
    return proto


# ----------------------------------------------------------------------------------------------
# Quantisation (ONNX Runtime's static QDQ quantiser) and the float tensors kept out of it
# ----------------------------------------------------------------------------------------------
def activation_tensors(qdq: onnx.ModelProto) -> list[str]:
    """The activations a QDQ graph quantises (inputs of its QuantizeLinear nodes that are not weights)."""
    inits = _initializers(qdq)
    return [n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]


def tail_tensors(proto: onnx.ModelProto) -> set[str]:
    """The last convolution's output and every tensor computed from it (-> the picture)."""
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    out = {convs[-1].output[0]}
    for n in proto.graph.node[list(proto.graph.node).index(convs[-1]) + 1:]:
        if any(i in out for i in n.input):
            out.update(n.output)
    return out


def keep_float(qdq: onnx.ModelProto, tensors, float_proto: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """Remove the QuantizeLinear -> DequantizeLinear pairs of these activations: they stay float, and an op
    whose inputs are then float runs in float.  With ``float_proto`` (the graph that was quantised), a Conv
    whose input is float gets its float weights back (nothing to gain from int8 weights there)."""
    tensors = set(tensors)
    inits = _initializers(qdq)
    q_out = {n.output[0]: n.input[0] for n in qdq.graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] not in inits and n.input[0] in tensors}
    dq_out = {n.output[0]: q_out[n.input[0]] for n in qdq.graph.node
              if n.op_type == "DequantizeLinear" and n.input[0] in q_out}
    graph_outputs = {o.name for o in qdq.graph.output}
    nodes = []
    for n in qdq.graph.node:
        if n.output[0] in q_out or n.output[0] in dq_out:
            if n.output[0] in graph_outputs:  # the graph's output name is kept
                nodes.append(helper.make_node("Identity", [dq_out[n.output[0]]], [n.output[0]]))
            continue
        for k, i in enumerate(n.input):
            if i in dq_out:
                n.input[k] = dq_out[i]
        nodes.append(n)
    if float_proto is not None:
        finits = _initializers(float_proto)
        dq_of = {n.output[0]: n for n in nodes if n.op_type == "DequantizeLinear"}
        restored, float_convs = set(), set()
        for n in nodes:
            if n.op_type != "Conv" or n.input[0] in dq_of:
                continue
            for k in (1, 2):
                dq = dq_of.get(n.input[k]) if len(n.input) > k else None
                name = dq.input[0][:-len("_quantized")] if dq is not None and dq.input[0].endswith("_quantized") \
                    else None
                if name in finits:
                    restored.add(id(dq))
                    float_convs.add(id(n))
                    n.input[k] = name
        still = {i for n in nodes if id(n) not in float_convs for i in n.input}
        nodes = [n for n in nodes if id(n) not in restored or n.output[0] in still]
        have = {i.name for i in qdq.graph.initializer} | {o for n in nodes for o in n.output}
        for n in nodes:
            if id(n) in float_convs:
                for i in n.input[1:]:
                    if i and i not in have:
                        qdq.graph.initializer.append(finits[i])
                        have.add(i)
    del qdq.graph.node[:]
    qdq.graph.node.extend(nodes)
    _drop_unused_initializers(qdq)
    return qdq


def quantized_weights(qdq: onnx.ModelProto) -> set[str]:
    """Float-graph names of the Conv weights a QDQ graph stores as int8."""
    inits = _initializers(qdq)
    return {n.input[0][:-len("_quantized")] for n in qdq.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.input[0].endswith("_quantized")
            and inits[n.input[0]].data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}


class _Feeds:
    """onnxruntime.quantization.CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # not needed by the MinMax calibrator
        raise NotImplementedError


def quantize(proto: onnx.ModelProto, feeds, activation: str = "uint8", reduce_range: bool = True,
             overrides: dict | None = None, calibrate: str = "minmax") -> onnx.ModelProto:
    """QDQ int8 graph of a float graph: per-channel symmetric int8 weights, per-tensor activations
    (asymmetric; ``activation`` "uint8" or "int8"), calibrated on ``feeds`` (list of input dicts).
    ``overrides``: TensorQuantOverrides (e.g. the ranges QAT learned)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation]
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibrate]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "qdq.onnx")
        onnx.save(proto, src)
        extra = {"QDQKeepRemovableActivations": True, "ActivationSymmetric": False, "WeightSymmetric": True}
        if overrides:
            extra["TensorQuantOverrides"] = overrides
        quantize_static(src, dst, _Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=act, weight_type=QuantType.QInt8,
                        calibrate_method=method, extra_options=extra)
        return onnx.load(dst)


def tensor_samples(proto: onnx.ModelProto, feeds, tensors, per_feed: int = 65536, seed: int = 0) -> dict:
    """Run the float graph on ``feeds`` and keep, per tensor: its min, max and a random sample of its values
    (``per_feed`` per feed) -> {name: (min, max, float32 values)}."""
    import onnxruntime as ort

    p = onnx.ModelProto()
    p.CopyFrom(proto)
    have = {o.name for o in p.graph.output}
    known = {o for n in p.graph.node for o in n.output} | {i.name for i in p.graph.input}
    tensors = [t for t in tensors if t in known]
    for t in tensors:
        if t not in have:
            p.graph.output.append(helper.make_empty_tensor_value_info(t))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every tensor stays observable
    sess = ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(seed)
    acc: dict = {t: [np.inf, -np.inf, []] for t in tensors}
    for f in feeds:
        for name, v in zip(names, sess.run(None, f)):
            if name in acc and v.size:
                a = acc[name]
                a[0], a[1] = min(a[0], float(v.min())), max(a[1], float(v.max()))
                flat = v.ravel()
                a[2].append(flat[rng.integers(0, flat.size, min(per_feed, flat.size))].astype(np.float32))
    return {t: (a[0], a[1], np.concatenate(a[2])) for t, a in acc.items() if a[2]}


def _qdq_mse(x: np.ndarray, lo: float, hi: float, levels: int = 255) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / levels
    if scale <= 0:
        return float(np.mean(x * x))
    zp = np.round(-lo / scale)
    q = np.clip(np.round(x / scale) + zp, 0, levels)
    return float(np.mean(((q - zp) * scale - x) ** 2))


def mse_range(lo: float, hi: float, x: np.ndarray, levels: int = 255) -> tuple[float, float]:
    """The [rmin, rmax] (shrunk from [lo, hi] on a grid) whose 8-bit asymmetric quantisation of the sample
    ``x`` has the least mean squared error: clipping a heavy tail buys resolution for the bulk."""
    best, arg = np.inf, (lo, hi)
    for fl in (1.0, 0.8, 0.6, 0.45, 0.33, 0.25, 0.18, 0.12, 0.08):
        for fh in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.42, 0.35, 0.28, 0.22, 0.17, 0.13, 0.1, 0.07, 0.05):
            e = _qdq_mse(x, lo * fl, hi * fh, levels)
            if e < best:
                best, arg = e, (lo * fl, hi * fh)
    return float(arg[0]), float(arg[1])


# ----------------------------------------------------------------------------------------------
# Calibration set: latents of training crops through the shipped model's own encoder
# ----------------------------------------------------------------------------------------------
def calibration_set(model_dir, data_root, crops: int = 96, rates_per_crop: int = 2, cache_dir=None,
                    threads: int = 1, frame_lines: float = 0.0) -> dict:
    """ŷ of ``crops`` training crops (evenly spread over the sorted pool), each encoded by the model's
    encoder at ``rates_per_crop`` rate points (spread so that every rate point is used equally) and decoded
    to the latent domain by the runtime (``Decoder.decode_latents``): exactly the decoder's synthesis input.
    -> {"luma": float32 [N,C,h,w], "chroma": [N,C',h',w'], "rate": int [N], "crop": int [N], "rgb": uint8
    [crops,H,W,3], "files": [crops]}.  Cached (npz) under ``cache_dir`` keyed by the model.bin's hash.
    ``frame_lines``: the probability per crop of thin lines painted along its borders (training.augment,
    seeded by the crop's index), so the ranges cover the activations that picture-edge lines cause.  Tried on
    vm33 at step ~27.9k (trained with such lines): no gain (+3.82 % BD-rate int8 vs fp32 with 0.25, +3.60 %
    without), so off by default."""
    import hashlib

    from PIL import Image

    import jpegai_fast

    model_dir = pathlib.Path(model_dir)
    files = sorted(pathlib.Path(data_root).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no .jpg training crops in {data_root}")
    pick = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(crops, len(files))).round()]
    key = hashlib.sha256((model_dir / "model.bin").read_bytes()).hexdigest()[:12]
    lines = f"-lines{frame_lines:g}" if frame_lines > 0 else ""
    cache = (pathlib.Path(cache_dir) / f"{model_dir.name}-{key}-{len(pick)}x{rates_per_crop}{lines}.npz") \
        if cache_dir else None
    if cache is not None and cache.is_file():
        d = np.load(cache)
        return {k: d[k] for k in d.files} | {"files": [str(f) for f in d["files"]]}
    enc = jpegai_fast.Encoder(str(model_dir), threads=threads)
    dec = jpegai_fast.Decoder(str(model_dir), threads=threads)
    rates_n = enc.model.num_rates
    out: dict = {"luma": [], "chroma": [], "rate": [], "crop": [], "rgb": []}
    t0 = time.time()
    for i, f in enumerate(pick):
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"))
        if frame_lines > 0:
            import torch

            from .augment import paint_frame_lines

            t = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float()
            if paint_frame_lines(t, torch.Generator().manual_seed(i), frame_lines):
                rgb = np.ascontiguousarray(t[0].permute(1, 2, 0).numpy().astype(np.uint8))
        out["rgb"].append(rgb)
        for j in range(rates_per_crop):
            r = (i + j * rates_n // rates_per_crop) % rates_n
            lat = dec.decode_latents(enc.encode(rgb, rate_point=r))
            out["luma"].append(lat["y_hat"]["luma"])
            out["chroma"].append(lat["y_hat"]["chroma"])
            out["rate"].append(r)
            out["crop"].append(i)
        if (i + 1) % 16 == 0:
            print(f"  calibration latents: {i + 1}/{len(pick)} crops ({time.time() - t0:.0f} s)", flush=True)
    res = {k: np.stack(v) for k, v in out.items()}
    res["files"] = np.array([f.name for f in pick])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **res)
    res["files"] = [f.name for f in pick]
    return res


def graph_feeds(comp: str, luma, chroma, image_hw) -> dict:
    ref = np.zeros((1, 0, int(image_hw[0]), int(image_hw[1])), np.float32)
    if comp == "luma":
        return {"y_hat": np.ascontiguousarray(luma[None], np.float32), "image_ref": ref}
    return {"y_hat_luma": np.ascontiguousarray(luma[None], np.float32),
            "y_hat_chroma": np.ascontiguousarray(chroma[None], np.float32), "image_ref": ref}


def calibration_feeds(cal: dict, comp: str) -> list[dict]:
    hw = cal["rgb"].shape[1:3]
    return [graph_feeds(comp, lu, ch, hw) for lu, ch in zip(cal["luma"], cal["chroma"])]


# ----------------------------------------------------------------------------------------------
# Quantisation-aware fine-tuning: the prepared float graph run by torch, fake-quantised where the QDQ
# graph quantises
# ----------------------------------------------------------------------------------------------
def qdq_activation_ranges(qdq: onnx.ModelProto) -> dict:
    """activation -> (rmin, rmax, group): the real range each QuantizeLinear of an activation represents
    (uint8/int8, from its scale and zero point); tensors whose Q nodes share one scale initializer (ORT gives
    data-movement ops their input's parameters) share a group."""
    inits = _initializers(qdq)
    out = {}
    for n in qdq.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        scale = float(numpy_helper.to_array(inits[n.input[1]]))
        zp_arr = numpy_helper.to_array(inits[n.input[2]])
        zp = float(zp_arr)
        qmin, qmax = (0, 255) if zp_arr.dtype == np.uint8 else (-128, 127)
        out[n.input[0]] = ((qmin - zp) * scale, (qmax - zp) * scale, n.input[1])
    return out


def weight_qrange(reduce_range: bool) -> int:
    """Largest magnitude of the symmetric int8 weight grid ORT's quantiser uses (reduce_range: 7 bits)."""
    return 64 if reduce_range else 127


def qat(prepared: onnx.ModelProto, qdq: onnx.ModelProto, cal: dict, comp: str, steps: int,
        reduce_range: bool = True, lr: float = 1e-5, range_lr: float = 1e-3, batch: int = 4, crop: int = 16,
        margin: int = 16, seed: int = 0, target: str = "image", decay: bool = False,
        rate_weights: dict | None = None, log=print) -> tuple[onnx.ModelProto, dict]:
    """Fine-tune the float graph ``prepared`` with fake quantisation where ``qdq`` (its PTQ graph, after
    ``keep_float``) quantises, on the calibration set's frozen latents against its crops' pictures.
    Each step: ``batch`` random (crop, rate point) samples, a ``crop`` x ``crop`` window of the luma latent
    (the chroma latent's window on its own grid), loss = mean over samples of 10·log10(MSE) of the output
    (Y, or U and V) against the crop's Y'CbCr 4:2:0 planes (``target="image"``) or against the float graph's
    own output (``target="fp32"``: distillation), ``margin`` samples of the window's border left
    out (their context lies outside the window).  Adam, ``lr`` for weights and biases, ``range_lr`` for the
    activation ranges; ``decay``: both lrs follow a cosine to 0 over the steps (at a constant lr the fine-tune
    drifts after ~1500 steps: vm33 BOP luma, 4500 steps, calibration-sample cost +0.555 dB vs +0.272 at 1500).
    ``rate_weights``: rate point -> weight of its samples in the loss (``bd_rate_weights``; default all 1).
    -> (the float graph with the tuned weights, TensorQuantOverrides of the learned ranges)."""
    import torch

    from jpegai_fast.colour import rgb_to_yuv420

    from .onnx_torch import TorchGraph

    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    ranges = qdq_activation_ranges(qdq)
    tg = TorchGraph(prepared, ranges, weight_qmax=weight_qrange(reduce_range), quantized_weights=quantized_weights(qdq))
    if target == "image":
        planes = [rgb_to_yuv420(np.ascontiguousarray(rgb)) for rgb in cal["rgb"]]
    elif target == "fp32":  # the float graph's output per calibration sample, indexed like the latents
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(prepared.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        ref = [sess.run(None, f)[0][0] for f in calibration_feeds(cal, comp)]
    else:
        raise ValueError(f"target must be 'image' or 'fp32', got {target!r}")
    luma, chroma = cal["luma"], cal["chroma"]
    ratio = luma.shape[-1] // chroma.shape[-1]  # luma latent samples per chroma latent sample
    hl, wl = luma.shape[-2:]
    crop = min(crop, hl, wl) // ratio * ratio
    opt = torch.optim.Adam([{"params": list(tg.params.values()), "lr": lr},
                            {"params": list(tg.ranges.values()), "lr": range_lr}])
    t0 = time.time()
    window = []
    for step in range(steps):
        idx = gen.integers(0, len(luma), batch)
        ys, yc, tgt = [], [], []
        for i in idx:
            oy = int(gen.integers(0, (hl - crop) // ratio + 1)) * ratio
            ox = int(gen.integers(0, (wl - crop) // ratio + 1)) * ratio
            ys.append(luma[i][:, oy:oy + crop, ox:ox + crop])
            yc.append(chroma[i][:, oy // ratio:(oy + crop) // ratio, ox // ratio:(ox + crop) // ratio])
            if target == "fp32":
                plane = ref[i]
            else:
                plane = planes[cal["crop"][i]][0][None] if comp == "luma" else planes[cal["crop"][i]][1]
            s = 16 if comp == "luma" else 8
            tgt.append(plane[:, s * oy:s * (oy + crop), s * ox:s * (ox + crop)])
        size = 16 * crop
        feeds = {"image_ref": torch.zeros(1, 0, size, size)}
        if comp == "luma":
            feeds["y_hat"] = torch.from_numpy(np.stack(ys))
        else:
            feeds["y_hat_luma"], feeds["y_hat_chroma"] = torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(yc))
        out = tg(**feeds)
        m = margin if comp == "luma" else margin // 2
        err = (out - torch.from_numpy(np.stack(tgt)))[..., m:out.shape[-2] - m, m:out.shape[-1] - m]
        mse = err.pow(2).mean(dim=(1, 2, 3))
        if rate_weights:
            w = torch.tensor([rate_weights[int(cal["rate"][i])] for i in idx], dtype=mse.dtype)
            loss = (w * 10 * torch.log10(mse)).sum() / w.sum()
        else:
            loss = (10 * torch.log10(mse)).mean()
        opt.zero_grad()
        loss.backward()
        if decay:
            f = 0.5 * (1.0 + np.cos(np.pi * step / steps))
            for group, base in zip(opt.param_groups, (lr, range_lr)):
                group["lr"] = base * f
        opt.step()
        window.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            log(f"    qat {comp} step {step + 1}/{steps}: 10·log10(MSE) {np.mean(window):.3f} dB "
                f"({time.time() - t0:.0f} s)")
            window = []
    overrides = {t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in tg.learned_ranges().items()}
    return tg.export_weights(), overrides


# ----------------------------------------------------------------------------------------------
# One graph end to end, evaluation, the model card entry
# ----------------------------------------------------------------------------------------------
def bd_rate_weights(card: dict, strength: float = 1.0, clip: float = 10.0) -> dict:
    """Rate point -> loss weight that follows what an int8 loss costs in BD-rate there.

    A small extra error D_q on top of the coding error D_c lowers PSNR by ~4.34·D_q/D_c dB, and a loss of Δ dB
    costs Δ/S of rate where the float curve's slope is S dB per e-fold of rate; so at equal D_q the BD-rate cost
    of a rate point goes as 1/(D_c·S) = 10^(PSNR/10)/S.  On vm33's flat top that is ~30x the bottom point's.
    From the card's Kodak curve (mean PSNR-YUV and bpp per rate point; S by central differences in log rate),
    raised to ``strength``, clipped to ``clip`` x the smallest, normalised to mean 1 over the rate points."""
    pts = sorted((card.get("kodak_rd") or {}).get("points") or [], key=lambda p: p["rate"])
    if len(pts) < 2:
        raise ValueError("the model card has no Kodak curve (kodak_rd.points) to weight the rate points by")
    lr = np.log([p["bpp"] for p in pts])
    q = np.array([p["psnr_yuv"] for p in pts])
    slope = np.gradient(q, lr)
    raw = (10 ** (q / 10) / np.maximum(slope, 0.05)) ** strength
    raw = np.minimum(raw, clip * raw.min())
    raw /= raw.mean()
    return {int(p["rate"]): float(w) for p, w in zip(pts, raw)}


def prepare(fp32_path, upsampler: str = "phases") -> onnx.ModelProto:
    """The exported float graph -> the float graph that gets quantised (steps 1-3)."""
    proto = fold_pads(constant_fold(onnx.load(str(fp32_path))))
    return convtranspose_to_conv(proto, upsampler) if upsampler != "none" else proto


def selection_data(cal: dict, comp: str, samples: int = 8) -> list[tuple[dict, np.ndarray]]:
    """(feeds, target planes) of ``samples`` calibration samples spread over the set (and so over the rate
    points): Y [1,H,W] for the luma graph, UV [2,H/2,W/2] for the chroma graph, from the crops' pictures."""
    from jpegai_fast.colour import rgb_to_yuv420

    feeds = calibration_feeds(cal, comp)
    out = []
    for i in np.linspace(0, len(feeds) - 1, min(samples, len(feeds))).round().astype(int):
        y, uv = rgb_to_yuv420(np.ascontiguousarray(cal["rgb"][cal["crop"][i]]))
        out.append((feeds[i], y[None] if comp == "luma" else uv))
    return out


def mean_psnr(proto: onnx.ModelProto, data) -> float:
    """Mean PSNR (dB, output clipped to 0-255 as the decoder does) of a graph over (feeds, target) pairs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    vals = []
    for f, t in data:
        o = np.clip(sess.run(None, f)[0][0], 0, 255).astype(np.float64)
        vals.append(10 * np.log10(255.0**2 / np.mean((o - t) ** 2)))
    return float(np.mean(vals))


def conv_macs(proto: onnx.ModelProto, feeds: dict) -> dict:
    """Conv node name -> MACs on ``feeds`` (output elements x input channels per group x kernel area)."""
    import onnxruntime as ort

    p = onnx.ModelProto()
    p.CopyFrom(proto)
    convs = [n for n in p.graph.node if n.op_type == "Conv"]
    have = {o.name for o in p.graph.output}
    for n in convs:
        if n.output[0] not in have:
            p.graph.output.append(helper.make_empty_tensor_value_info(n.output[0]))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    shapes = {o.name: v.shape for o, v in zip(sess.get_outputs(), sess.run(None, feeds))}
    inits = _initializers(p)
    return {n.name or n.output[0]: int(np.prod(shapes[n.output[0]])) * int(np.prod(inits[n.input[1]].dims[1:]))
            for n in convs}


def float_macs(qdq: onnx.ModelProto, floats: set, macs: dict) -> int:
    """MACs of the convolutions that run in float when ``floats`` are kept float: those whose input or output
    is then not quantised (a QLinearConv needs both)."""
    quantised = set(activation_tensors(qdq)) - set(floats)
    total = 0
    for n in qdq.graph.node:
        if n.op_type == "Conv":
            src = n.input[0][:-len("_DequantizeLinear_Output")] if n.input[0].endswith("_DequantizeLinear_Output") \
                else n.input[0]
            if src not in quantised or n.output[0] not in quantised:
                total += macs.get(n.name or n.output[0], 0)
    return total


def select_float(prepared: onnx.ModelProto, qdq: onnx.ModelProto, floats: set, data, budget_db: float,
                 max_float_share: float = 1.0, log=print) -> tuple[set, dict]:
    """Mixed precision by measurement: each activation's cost alone (only it quantised: ΔPSNR on ``data``),
    then activations are kept float one at a time, the one with the largest cost per MAC it moves to float
    first (an activation whose convolutions already run in float is free), until the whole graph's measured
    cost is within ``budget_db`` or the next one would put more than ``max_float_share`` of the MACs in float
    (int8 then buys nothing: the float convolutions dominate).  -> (float activations, {"float_db", "costs":
    {tensor: dB}, "int8_db": cost of the result, "float_mac_share": MACs in float / all MACs})."""
    def copy(p):
        return onnx.load_from_string(p.SerializeToString())

    base = mean_psnr(prepared, data)
    macs = conv_macs(prepared, data[0][0])
    total = sum(macs.values())
    acts = [t for t in activation_tensors(qdq) if t not in floats]
    costs = {t: base - mean_psnr(keep_float(copy(qdq), floats | (set(acts) - {t}), prepared), data) for t in acts}
    chosen = set(floats)
    cost = base - mean_psnr(keep_float(copy(qdq), chosen, prepared), data)
    log(f"    all int8 but the tail: {cost:+.3f} dB, {float_macs(qdq, chosen, macs) / total:.0%} of the MACs in "
        f"float (budget {budget_db} dB)")
    todo = [t for t in acts if costs[t] > 0.002]
    while cost > budget_db and todo:
        now = float_macs(qdq, chosen, macs)
        t = max(todo, key=lambda t: costs[t] / (float_macs(qdq, chosen | {t}, macs) - now + 0.01 * total))
        todo.remove(t)
        if float_macs(qdq, chosen | {t}, macs) > max_float_share * total:
            continue
        chosen.add(t)
        cost = base - mean_psnr(keep_float(copy(qdq), chosen, prepared), data)
        log(f"    + float {t} (alone {costs[t]:.3f} dB): {cost:+.3f} dB, "
            f"{float_macs(qdq, chosen, macs) / total:.0%} of the MACs in float")
    return chosen, {"float_db": round(base, 3), "costs": {t: round(v, 4) for t, v in costs.items()},
                    "int8_db": round(cost, 4), "float_mac_share": round(float_macs(qdq, chosen, macs) / total, 3)}


def _per_component(value: str, comp: str, kind):
    """"a" (both graphs) or "a,b" (luma, chroma) -> this component's value."""
    parts = str(value).split(",")
    return kind(parts[COMPONENTS.index(comp)] if len(parts) == 2 else parts[0])


def int8_graph(fp32_path, cal: dict, comp: str, args, log=print) -> tuple[onnx.ModelProto, dict]:
    """Steps 1-7 for one graph -> (QDQ graph, info for the card)."""
    import re

    g = prepare(fp32_path, args.upsampler)
    feeds = calibration_feeds(cal, comp)
    if args.equalise_alpha > 0:
        lat = {"y_hat": cal["luma"], "y_hat_luma": cal["luma"], "y_hat_chroma": cal["chroma"]}
        g = equalise_inputs(g, {i.name: np.maximum(np.abs(lat[i.name]).max(axis=(0, 2, 3)), 1e-3)
                                ** args.equalise_alpha for i in g.graph.input if i.name in lat})
    if args.gate_alpha > 0:
        g = equalise_gates(g, feeds, args.gate_alpha)
        _drop_unused_initializers(g)
    q = quantize(g, feeds, args.activation, args.reduce_range)
    every = activation_tensors(q)
    floats = tail_tensors(q) | {t for t in every if args.float_tensors and re.search(args.float_tensors, t)}
    info: dict = {}
    if args.float_budget_db is not None:
        data = selection_data(cal, comp, args.select_samples)
        floats, info["selection"] = select_float(g, q, floats, data, args.float_budget_db,
                                                 _per_component(args.max_float_mac_share, comp, float), log)
    q = keep_float(q, floats, g)
    if args.uint8_phases:  # before QAT, so that the four phases share one learned range there
        q, info["uint8_phase_interleave"] = uint8_phase_interleave(q)
    info.update(int8_activations=len(activation_tensors(q)), float_activations=sorted(floats & set(every)))
    steps = _per_component(args.qat_steps, comp, int)
    rate_weights = None
    if steps > 0 and args.qat_rate_weight > 0:
        card = json.loads((pathlib.Path(fp32_path).parent / "model_card.json").read_text())
        rate_weights = bd_rate_weights(card, args.qat_rate_weight)
        log("    qat rate weights: " + " ".join(f"{r}:{w:.2f}" for r, w in sorted(rate_weights.items())))
    if steps > 0:
        g, overrides = qat(g, q, cal, comp, steps, reduce_range=args.reduce_range, lr=args.qat_lr,
                           range_lr=args.qat_range_lr, batch=args.qat_batch, crop=args.qat_crop,
                           target=args.qat_target, decay=args.qat_decay, rate_weights=rate_weights, log=log)
        q = keep_float(quantize(g, feeds[:2], args.activation, args.reduce_range, overrides=overrides), floats, g)
        if args.uint8_phases:  # the re-quantised graph interleaves in float again (the shared range: same scales)
            q, info["uint8_phase_interleave"] = uint8_phase_interleave(q)
        info["qat"] = {"steps": steps, "lr": args.qat_lr, "target": args.qat_target, "range_lr": args.qat_range_lr,
                       "batch": args.qat_batch, "crop": args.qat_crop}
        if rate_weights:
            info["qat"]["rate_weights"] = {str(r): round(w, 4) for r, w in sorted(rate_weights.items())}
        if args.qat_decay:
            info["qat"]["lr_schedule"] = "cosine to 0"
        if "selection" in info:  # the same samples' cost after fine-tuning (vs the shipped float graph)
            info["qat"]["int8_db_after"] = round(info["selection"]["float_db"] - mean_psnr(q, data), 4)
            log(f"    after QAT: {info['qat']['int8_db_after']:+.3f} dB (before {info['selection']['int8_db']:+.3f})")
    if args.float16_weights:
        q, info["float16_storage_bytes_saved"] = float16_conv_weights(q)
    onnx.checker.check_model(q)
    return q, info


def uint8_phase_interleave(q: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Interleave an up-sampler's int8 phases in uint8: Q(s_k) -> DQ -> Concat -> DepthToSpace (float) becomes
    Q(s) -> Concat -> DepthToSpace -> DQ(s), with one scale and zero point s for the four phases.

    The selection keeps the phases' Concat and DepthToSpace outputs float (their consumers, LeakyRelu and the
    gate Mul, are float ops, so quantising them could only cost), which left ORT interleaving float32 tensors:
    4.6 ms of the 66 ms int8 BOP luma synthesis on a Zen 3 thread for up2 alone, plus its Concat.  The shared
    (s, zp) covers the union of the four calibrated / learned ranges (uint8, asymmetric, as ORT's quantiser
    computes them); data movement commutes with dequantisation, so the result is exactly the QDQ graph with
    that shared scale — the only change is the coarser step for a phase whose own range was narrower.
    -> (graph, names of the up-samplers changed)."""
    inits = _initializers(q)
    producer = {o: n for n in q.graph.node for o in n.output}
    consumers = _consumers(q)
    changed = []
    for cat in [n for n in q.graph.node if n.op_type == "Concat"]:
        dqs = [producer.get(t) for t in cat.input]
        if len(dqs) != 4 or any(d is None or d.op_type != "DequantizeLinear" for d in dqs):
            continue
        qs = [producer.get(d.input[0]) for d in dqs]
        if any(x is None or x.op_type != "QuantizeLinear" for x in qs):
            continue
        users = consumers.get(cat.output[0], [])
        if len(users) != 1 or users[0].op_type != "DepthToSpace":
            continue
        if any(len(consumers.get(d.output[0], [])) != 1 or len(consumers.get(x.output[0], [])) != 1
               for d, x in zip(dqs, qs)):
            continue  # a phase's (de)quantised value is used elsewhere too: leave it
        d2s = users[0]
        zps = [numpy_helper.to_array(inits[x.input[2]]) for x in qs]
        if any(z.dtype != np.uint8 for z in zps):
            continue
        scales = [float(numpy_helper.to_array(inits[x.input[1]])) for x in qs]
        lo = min((0 - float(z)) * sc for z, sc in zip(zps, scales))
        hi = max((255 - float(z)) * sc for z, sc in zip(zps, scales))
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = np.float32((hi - lo) / 255.0)
        zp = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
        base = cat.name.replace("/", "_").strip("_")
        s_name, z_name = f"{base}_shared_scale", f"{base}_shared_zero_point"
        q.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), s_name),
                                    numpy_helper.from_array(np.array(zp, np.uint8), z_name)])
        for x, d, j in zip(qs, dqs, range(4)):
            x.input[1], x.input[2] = s_name, z_name
            cat.input[j] = x.output[0]  # the Concat takes the uint8 phases
            q.graph.node.remove(d)
        out = d2s.output[0]
        d2s.output[0] = f"{out}_uint8"
        idx = list(q.graph.node).index(d2s)
        q.graph.node.insert(idx + 1, helper.make_node("DequantizeLinear", [d2s.output[0], s_name, z_name], [out],
                                                      name=f"{d2s.name}_DequantizeLinear"))
        changed.append(cat.name)
        stale = {cat.output[0], out}  # now uint8 / produced by the new DequantizeLinear: no float32 value_info
        keep = [v for v in q.graph.value_info if v.name not in stale]
        del q.graph.value_info[:]
        q.graph.value_info.extend(keep)
    _drop_unused_initializers(q)
    return q, changed


def float16_conv_weights(q: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Round the weights and biases of the convolutions that stay float to float16 and store them so.

    After QAT (and the gate equalisation) those tensors are float32 values that float16 does not hold, so the
    int8 graph used to store them at 4 bytes where the float graph stores 2: the int8 files were larger than the
    float ones.  Rounding moves a weight by at most 2^-11 of itself, far below the int8 noise beside it; the
    Kodak evaluation that follows measures the graph as saved.  Only Conv inputs 1 and 2 are touched: the Q/DQ
    scales, the other constants and tensors too small to be stored so stay float32 as they are.
    -> (graph, bytes saved)."""
    from .export import FLOAT16_STORAGE_MIN, store_float16_exact

    inits = {i.name: i for i in q.graph.initializer}
    conv_params = {t for n in q.graph.node if n.op_type == "Conv" for t in n.input[1:3] if t in inits}
    used_elsewhere = {t for n in q.graph.node if n.op_type != "Conv" for t in n.input}
    names = {t for t in conv_params - used_elsewhere if inits[t].data_type == onnx.TensorProto.FLOAT
             and np.prod(inits[t].dims) >= FLOAT16_STORAGE_MIN}  # a smaller one would stay float32 anyway
    for i, init in enumerate(q.graph.initializer):
        if init.name in names:
            a = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            q.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, init.name))
    return store_float16_exact(q, only=names)


def kodak_streams(model_dir, kodak, names, cache_dir=None, threads: int = 1) -> dict:
    """(name, rate point) -> BOP codestream of the Kodak picture (the latent domain does not depend on the
    operating point: the same stream decodes with either synthesis).  Cached under ``cache_dir``."""
    import hashlib
    import pickle

    from PIL import Image

    import jpegai_fast

    model_dir = pathlib.Path(model_dir)
    enc = jpegai_fast.Encoder(str(model_dir), threads=threads)
    # the streams follow the decoder's tables, the analysis graphs and the encoder's pre-emphasis
    digest = hashlib.sha256((model_dir / "model.bin").read_bytes())
    for graph in sorted(model_dir.glob("analysis_*.onnx")):
        digest.update(graph.read_bytes())
    digest.update(repr(enc.pre_emphasis).encode())
    key = digest.hexdigest()[:12]
    cache = pathlib.Path(cache_dir) / f"kodak-{model_dir.name}-{key}.pkl" if cache_dir else None
    have = pickle.loads(cache.read_bytes()) if cache is not None and cache.is_file() else {}
    todo = [n for n in names if any((n, r) not in have for r in range(enc.model.num_rates))]
    for n in todo:
        with Image.open(pathlib.Path(kodak) / f"{n}.png") as im:
            rgb = np.asarray(im.convert("RGB"))
        for r in range(enc.model.num_rates):
            have[(n, r)] = enc.encode(rgb, rate_point=r)
    if todo and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(have))
    return {(n, r): v for (n, r), v in have.items() if n in names}


def evaluate_kodak(model_dir, op: str, kodak, names, streams: dict, threads: int = 1) -> dict:
    """Decode every stream with precision fp32 and int8 through the runtime (jpegai_fast.Decoder) ->
    per rate point: mean bpp and PSNR-YUV (training/rd_eval.py's metrics) of both, and the BD-rate of int8 vs
    fp32 (PSNR-YUV, per image then the mean, as rd_eval)."""
    import math

    from PIL import Image

    import jpegai_fast

    from .bd_rate import bd_rate
    from .rd_eval import metrics

    decs = {p: jpegai_fast.Decoder(str(model_dir), operating_point=op, threads=threads, precision=p)
            for p in ("fp32", "int8")}
    per_image: dict = {p: {} for p in decs}
    rates = sorted({r for _, r in streams})
    for n in names:
        with Image.open(pathlib.Path(kodak) / f"{n}.png") as im:
            rgb = np.asarray(im.convert("RGB"))
        for p, dec in decs.items():
            per_image[p][n] = [{"rate": r, **metrics(rgb, dec.decode(streams[(n, r)]), len(streams[(n, r)]))}
                               for r in rates]
    points = []
    for k, r in enumerate(rates):
        row = {"rate": r, "bpp": float(np.mean([per_image["fp32"][n][k]["bpp"] for n in names]))}
        for p in decs:
            row[f"psnr_yuv_{p}"] = float(np.mean([per_image[p][n][k]["psnr_yuv"] for n in names]))
        row["delta_db"] = row["psnr_yuv_int8"] - row["psnr_yuv_fp32"]
        row["delta_db_worst_image"] = float(min(per_image["int8"][n][k]["psnr_yuv"]
                                                - per_image["fp32"][n][k]["psnr_yuv"] for n in names))
        points.append(row)
    bds = []
    for n in names:
        a, t = per_image["fp32"][n], per_image["int8"][n]
        v = bd_rate([x["bpp"] for x in a], [x["psnr_yuv"] for x in a], [x["bpp"] for x in t],
                    [x["psnr_yuv"] for x in t])
        if math.isfinite(v):
            bds.append(v)
    bpp_equal = all(per_image["fp32"][n][k]["bytes"] == per_image["int8"][n][k]["bytes"] for n in names
                    for k in range(len(rates)))
    return {"images": len(names), "points": points, "bd_rate_psnr_yuv_percent": float(np.mean(bds)),
            "bd_rate_images": len(bds), "bpp_identical": bpp_equal,
            "mean_delta_db": float(np.mean([p["delta_db"] for p in points]))}


def synthesis_speed(model_dir, op: str, stream: bytes, rounds: int = 7, threads: int = 1) -> dict:
    """Synthesis time (min and median of ``rounds``, after a warm-up) of one stream's latents through the
    runtime's synthesis (jpegai_fast.synthesis.synthesise), fp32 and int8, ``threads`` ORT threads."""
    import jpegai_fast
    from jpegai_fast import synthesis
    from jpegai_fast.model import Model

    lat = jpegai_fast.Decoder(str(model_dir), threads=threads).decode_latents(stream)
    hw = (lat["header"]["height"], lat["header"]["width"])
    out: dict = {"picture": f"{hw[1]}x{hw[0]}", "threads": threads}
    times = {}
    for p in ("fp32", "int8"):
        m = Model(str(model_dir), threads=threads, precision=p)
        synthesis.synthesise(m, lat["y_hat"]["luma"], lat["y_hat"]["chroma"], hw, op)
        t = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            synthesis.synthesise(m, lat["y_hat"]["luma"], lat["y_hat"]["chroma"], hw, op)
            t.append(time.perf_counter() - t0)
        times[p] = t
        out[f"{p}_ms_min"], out[f"{p}_ms_median"] = 1e3 * min(t), 1e3 * float(np.median(t))
    out["speedup_min"] = out["fp32_ms_min"] / out["int8_ms_min"]
    out["speedup_median"] = out["fp32_ms_median"] / out["int8_ms_median"]
    return out


def source_hashes(model_dir, op: str) -> dict:
    """sha256 of the float graphs an operating point's int8 graphs are made from: a re-exported model whose
    hashes differ needs this step again (tests/test_int8_synthesis.py checks it)."""
    import hashlib

    return {f"synthesis_{op}_{c}.onnx": hashlib.sha256((pathlib.Path(model_dir) / f"synthesis_{op}_{c}.onnx")
                                                       .read_bytes()).hexdigest() for c in COMPONENTS}


def _card_entry(model_dir, op, cal, args, infos, evaluation, speed, command) -> dict:
    return {
        "files": {f"synthesis_{op}_{c}.int8.onnx": (pathlib.Path(model_dir) / f"synthesis_{op}_{c}.int8.onnx"
                                                     ).stat().st_size for c in COMPONENTS},
        "source_sha256": source_hashes(model_dir, op),
        "made_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "format": "ONNX QDQ: per-channel symmetric int8 weights"
                  f"{' (7-bit range, reduce_range)' if args.reduce_range else ''}, per-tensor {args.activation} "
                  f"activations (min/max calibration), up-samplers as {args.upsampler} convolutions"
                  + (f", gated products equalised per channel (alpha {args.gate_alpha:g})"
                     if args.gate_alpha > 0 else "")
                  + (", phases interleaved in uint8 (one shared scale per up-sampler)" if args.uint8_phases else ""),
        "calibration": {"data": str(args.data), "crops": int(len(cal["rgb"])), "rates_per_crop": args.rates_per_crop,
                        "samples": int(len(cal["rate"])),
                        "rate_points": {int(r): int((cal["rate"] == r).sum()) for r in np.unique(cal["rate"])},
                        "crop_size": list(cal["rgb"].shape[1:3]), "frame_lines": args.frame_lines},
        "graphs": infos,
        "kodak": evaluation,
        "speed": speed,
    }


def report_tables(model_dirs) -> list[str]:
    """Markdown tables of the model cards' "synthesis_int8" entries: per model and operating point, the
    configuration, the Kodak PSNR-YUV per rate point fp32 vs int8, the BD-rate and the synthesis speed."""
    md = []
    for d in model_dirs:
        d = pathlib.Path(d)
        card = json.loads((d / "model_card.json").read_text())
        for op, e in (card.get("synthesis_int8") or {}).items():
            k, sp = e.get("kodak") or {}, e.get("speed") or {}
            md += [f"### {d.name} {op.upper()}", "", f"`{e['command']}` ({e['made_utc']}); {e['format']}.", ""]
            if e.get("post_processed"):
                pp = e["post_processed"]
                md += [f"Post-processed by `{pp['command']}` ({pp['made_utc']}): the evaluation and speed below are "
                       "of the graphs as shipped after it.", ""]
            if e.get("reevaluated"):
                md += [f"Re-evaluated by `{e['reevaluated']['command']}` ({e['reevaluated']['made_utc']}) on the "
                       "streams of the model's current encoder (graphs unchanged).", ""]
            cal = e["calibration"]
            md.append(f"Calibration: {cal['crops']} crops of `{pathlib.Path(cal['data']).name}` "
                      f"({cal['crop_size'][0]}x{cal['crop_size'][1]}) x {cal['rates_per_crop']} rate points = "
                      f"{cal['samples']} latent pairs (per rate point {cal['rate_points']}).")
            for comp, info in e["graphs"].items():
                sel = info.get("selection") or {}
                qat = info.get("qat") or {}
                md.append(f"- {comp}: {info['int8_activations']} int8 activations; kept float: "
                          f"{', '.join(f'`{t}`' for t in info['float_activations'])}"
                          + (f"; {sel['float_mac_share']:.0%} of the MACs in float, calibration-sample cost "
                             f"{sel['int8_db']:+.3f} dB" if sel else "")
                          + (f"; QAT {qat['steps']} steps (lr {qat['lr']}, target {qat['target']}): "
                             f"{qat.get('int8_db_after', float('nan')):+.3f} dB" if qat else ""))
            if k:
                md += ["", f"Kodak, {k['images']} images, real bytes (bpp identical: {k['bpp_identical']}); "
                       "PSNR-YUV as training/rd_eval.py (RGB out, 8 bit):", "",
                       "| rate point | bpp | PSNR-YUV fp32 | PSNR-YUV int8 | Δ dB | worst image Δ dB |",
                       "|---:|---:|---:|---:|---:|---:|"]
                md += [f"| {p['rate']} | {p['bpp']:.4f} | {p['psnr_yuv_fp32']:.3f} | {p['psnr_yuv_int8']:.3f} | "
                       f"{p['delta_db']:+.3f} | {p['delta_db_worst_image']:+.3f} |" for p in k["points"]]
                md += ["", f"BD-rate int8 vs fp32 (PSNR-YUV, per image then mean, {k['bd_rate_images']} images): "
                       f"**{k['bd_rate_psnr_yuv_percent']:+.2f} %**; mean Δ {k['mean_delta_db']:+.3f} dB."]
            if sp:
                md += ["", f"Synthesis {sp['picture']}, {sp['threads']} thread, at export: fp32 "
                       f"{sp['fp32_ms_min']:.1f} ms, int8 {sp['int8_ms_min']:.1f} ms (min of 7; int8/fp32 "
                       f"{1 / sp['speedup_min']:.2f}, median {1 / sp['speedup_median']:.2f})."]
            md.append("")
    return md


def _only_uint8_phases(model_dir, ops, args, command, interleave: bool = True) -> dict:
    """--only-uint8-phases: the pass on the shipped int8 graphs, Kodak evaluation, card entry updated in place
    (calibration and QAT details kept; the command, evaluation, speed and file sizes replaced).
    interleave=False (--reevaluate): the graphs stay as they are, only the Kodak evaluation and speed are redone,
    on the streams of the model's current encoder (a new analysis with the same decoder: tools/release_vm33.sh)."""
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text())
    entries = dict(card.get("synthesis_int8") or {})
    names = [f"kodim{i:02d}" for i in range(1, args.eval_images + 1)]
    streams = kodak_streams(model_dir, args.kodak, names, args.cache, args.threads) if names else {}
    for op in ops:
        entry = entries.get(op)
        if not entry:
            raise SystemExit(f"{model_dir.name} has no int8 {op} graphs to post-process")
        if entry.get("source_sha256") != source_hashes(model_dir, op):
            raise SystemExit(f"{model_dir.name}: the int8 {op} graphs were made from other float graphs; "
                             "remake them (no --reevaluate / --only-uint8-phases)")
        for comp in COMPONENTS if interleave else ():
            path = model_dir / f"synthesis_{op}_{comp}.int8.onnx"
            q, changed = uint8_phase_interleave(onnx.load(str(path)))
            onnx.checker.check_model(q)
            onnx.save(q, str(path))
            entry["graphs"][comp]["uint8_phase_interleave"] = changed
            print(f"  {op} {comp}: uint8 interleave of {changed or 'nothing'}", flush=True)
        if names:
            entry["kodak"] = evaluate_kodak(model_dir, op, args.kodak, names, streams, args.threads)
            entry["speed"] = synthesis_speed(model_dir, op, streams[(names[0], 4 if (names[0], 4) in streams else 0)],
                                             threads=args.threads)
            ev, sp = entry["kodak"], entry["speed"]
            print(f"  {op} Kodak ({len(names)} images): BD-rate int8 vs fp32 {ev['bd_rate_psnr_yuv_percent']:+.2f} %, "
                  f"mean {ev['mean_delta_db']:+.3f} dB; synthesis {sp['fp32_ms_min']:.0f} -> "
                  f"{sp['int8_ms_min']:.0f} ms", flush=True)
        entry["files"] = {f"synthesis_{op}_{c}.int8.onnx": (model_dir / f"synthesis_{op}_{c}.int8.onnx").stat().st_size
                          for c in COMPONENTS}
        stamp = {"command": command, "made_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")}
        if not interleave:
            entry["reevaluated"] = stamp
            entries[op] = entry
            continue
        entry["post_processed"] = stamp
        if ", phases interleaved in uint8" not in entry["format"]:
            entry["format"] += ", phases interleaved in uint8 (one shared scale per up-sampler)"
        entries[op] = entry
    if not args.no_card:
        card["synthesis_int8"] = entries
        card_path.write_text(json.dumps(card, indent=1) + "\n")
        print(f"wrote {card_path}", flush=True)
    return entries


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory (src/jpegai_fast/models/<name>)")
    ap.add_argument("--ops", default=None, help="comma list (default: every operating point the model ships)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/train"), help="training crops (calibration)")
    ap.add_argument("--crops", type=int, default=96)
    ap.add_argument("--frame-lines", type=float, default=0.0,
                    help="probability per calibration crop of painted border lines (training.augment; 0 = none; "
                         "measured on vm33 at step ~27.9k: 0.25 gave +3.82 %% BD vs +3.60 %% without)")
    ap.add_argument("--rates-per-crop", type=int, default=2)
    ap.add_argument("--activation", choices=("uint8", "int8"), default="uint8",
                    help="uint8: ORT's U8S8 kernels (AVX2: 2x the speed of S8S8)")
    ap.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=True,
                    help="7-bit weight range: x86 without VNNI multiplies u8 x s8 pairs into saturating 16-bit sums")
    ap.add_argument("--upsampler", choices=("phases", "conv3x3", "none"), default="phases")
    ap.add_argument("--equalise-alpha", type=float, default=0.0,
                    help="per-channel equalisation of the latent inputs, scale = absmax^alpha (0: off)")
    ap.add_argument("--gate-alpha", type=float, default=0.0,
                    help="per-channel equalisation of the gated products (equalise_gates), 0 = off")
    ap.add_argument("--float-tensors", default="",
                    help="regex: activations kept float besides the tail (e.g. '^y_hat|/head/')")
    ap.add_argument("--float-budget-db", type=float, default=0.05,
                    help="keep the costliest activations float until a graph's PSNR cost on calibration samples "
                         "is within this (dB); a negative value: no selection (only the tail and --float-tensors)")
    ap.add_argument("--max-float-mac-share", default="0.3,0.6",
                    help="the selection keeps at most this share of a graph's MACs in float: one value, or luma,chroma "
                         "(the chroma graph is a fifth of the MACs: more of it can stay float)")
    ap.add_argument("--select-samples", type=int, default=8)
    ap.add_argument("--qat-steps", default="0",
                    help="quantisation-aware fine-tuning steps: one value, or luma,chroma")
    ap.add_argument("--qat-lr", type=float, default=3e-5)
    ap.add_argument("--qat-target", choices=("image", "fp32"), default="image")
    ap.add_argument("--qat-decay", action="store_true", help="cosine lr decay to 0 over the QAT steps")
    ap.add_argument("--qat-range-lr", type=float, default=1e-3,
                    help="Adam lr of the learned activation ranges (0: the calibrated ranges stay)")
    ap.add_argument("--qat-rate-weight", type=float, default=0.0,
                    help="weight each QAT sample by its rate point's BD-rate sensitivity (bd_rate_weights) raised "
                         "to this power (0: equal weights)")
    ap.add_argument("--qat-batch", type=int, default=4)
    ap.add_argument("--qat-crop", type=int, default=16, help="QAT window, latent samples (x16 pixels)")
    ap.add_argument("--float16-weights", action=argparse.BooleanOptionalAction, default=True,
                    help="round the float convolutions' weights to float16 and store them so (half the bytes)")
    ap.add_argument("--uint8-phases", action=argparse.BooleanOptionalAction, default=True,
                    help="interleave int8 up-sampler phases in uint8 with one shared scale (uint8_phase_interleave)")
    ap.add_argument("--only-uint8-phases", action="store_true",
                    help="no calibration or QAT: apply uint8_phase_interleave to the int8 graphs the model already "
                         "has, then evaluate on Kodak and update their card entry")
    ap.add_argument("--reevaluate", action="store_true",
                    help="no calibration, QAT or graph change: evaluate the int8 graphs the model already has on "
                         "Kodak streams of its current encoder and update their card entry (a new analysis only)")
    ap.add_argument("--components", default="luma,chroma",
                    help="which graphs to remake (the other keeps its shipped int8 graph)")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--eval-images", type=int, default=24, help="Kodak images for the card (0: no evaluation)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "training/cache/int8_synthesis"))
    ap.add_argument("--no-card", action="store_true", help="do not write the model card entry")
    args = ap.parse_args(argv)
    if args.float_budget_db is not None and args.float_budget_db < 0:
        args.float_budget_db = None
    import torch

    torch.set_num_threads(args.threads)
    model_dir = pathlib.Path(args.model).resolve()
    from jpegai_fast.model import Model

    shipped = Model(str(model_dir), threads=args.threads).operating_points
    ops = args.ops.split(",") if args.ops else shipped
    for op in ops:
        if op not in shipped:
            raise SystemExit(f"{model_dir.name} ships no {op} synthesis (it has {shipped})")
    remake = args.components.split(",")
    if not remake or set(remake) - set(COMPONENTS):
        raise SystemExit(f"--components: a comma list of {COMPONENTS}, got {args.components!r}")
    for op in ops:  # a graph that is not remade must already exist: the card entry lists it
        for comp in set(COMPONENTS) - set(remake):
            if not (model_dir / f"synthesis_{op}_{comp}.int8.onnx").is_file():
                raise SystemExit(f"--components {args.components}: {model_dir.name} has no "
                                 f"synthesis_{op}_{comp}.int8.onnx to keep")
    command = " ".join(["python -m training.quantize_synthesis", *(sys.argv[1:] if argv is None else argv)])
    if args.only_uint8_phases or args.reevaluate:
        return _only_uint8_phases(model_dir, ops, args, command, interleave=not args.reevaluate)
    print(f"{model_dir.name}: calibration set ({args.crops} crops x {args.rates_per_crop} rate points)", flush=True)
    cal = calibration_set(model_dir, args.data, args.crops, args.rates_per_crop, args.cache, args.threads,
                          args.frame_lines)
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    entries = dict(card.get("synthesis_int8") or {})
    names = [f"kodim{i:02d}" for i in range(1, args.eval_images + 1)]
    streams = kodak_streams(model_dir, args.kodak, names, args.cache, args.threads) if names else {}
    for op in ops:
        infos = {}
        for comp in COMPONENTS:
            if comp not in remake:
                infos[comp] = dict(((entries.get(op) or {}).get("graphs") or {}).get(comp) or {})
                continue
            t0 = time.time()
            q, info = int8_graph(model_dir / f"synthesis_{op}_{comp}.onnx", cal, comp, args)
            onnx.save(q, str(model_dir / f"synthesis_{op}_{comp}.int8.onnx"))
            infos[comp] = info
            print(f"  {op} {comp}: {info['int8_activations']} int8 activations, float: {info['float_activations']} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        evaluation = speed = None
        if names:
            evaluation = evaluate_kodak(model_dir, op, args.kodak, names, streams, args.threads)
            speed = synthesis_speed(model_dir, op, streams[(names[0], 4 if (names[0], 4) in streams else 0)],
                                    threads=args.threads)
            print(f"  {op} Kodak ({len(names)} images): BD-rate int8 vs fp32 "
                  f"{evaluation['bd_rate_psnr_yuv_percent']:+.2f} %, mean {evaluation['mean_delta_db']:+.3f} dB; "
                  f"synthesis {speed['fp32_ms_min']:.0f} -> {speed['int8_ms_min']:.0f} ms "
                  f"({speed['speedup_min']:.2f}x, 1 thread)", flush=True)
            for p in evaluation["points"]:
                print(f"    rate {p['rate']}: {p['bpp']:.4f} bpp  fp32 {p['psnr_yuv_fp32']:.3f}  int8 "
                      f"{p['psnr_yuv_int8']:.3f}  ({p['delta_db']:+.3f} dB)", flush=True)
        entries[op] = _card_entry(model_dir, op, cal, args, infos, evaluation, speed, command)
    if not args.no_card:
        card["synthesis_int8"] = entries
        card_path.write_text(json.dumps(card, indent=1) + "\n")
        print(f"wrote {card_path}", flush=True)
    return entries


if __name__ == "__main__":
    main()
