"""A float ONNX graph run by torch, with fake quantisation where its QDQ int8 twin quantises (the QAT half
of training/quantize_synthesis.py).

Only the operators of the prepared synthesis graphs (Conv, Relu, LeakyRelu, Clip, Add, Sub, Mul, Div,
Concat, Slice, DepthToSpace, Shape, Gather, Unsqueeze, Identity, Cast): an unknown one raises.  Conv weights
and biases are parameters; the other initializers are constants.  Fake quantisation follows ONNX Runtime's
quantiser exactly, so the tuned graph quantises to what was trained:
- activations (``act_ranges``: tensor -> (rmin, rmax, group)): per tensor, asymmetric uint8:
  scale = (rmax - rmin) / 255 over the range widened to hold 0, zero point round(-rmin / scale), values
  round(x / scale) + zp clipped to [0, 255]; rmin, rmax are learned (straight-through rounding), one pair
  per group (tensors whose Q nodes share parameters in the QDQ graph);
- Conv weights: per output channel, symmetric, scale = max|w| / q (q = 64 with reduce_range, else 127),
  round(w / scale) clipped to [-q, q].
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper, numpy_helper


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def fake_quant_act(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, qmax: int = 255) -> torch.Tensor:
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=1e-12)
    zp = _ste_round(-lo / scale)
    q = torch.clamp(_ste_round(x / scale) + zp, 0, qmax)
    return (q - zp) * scale


def fake_quant_weight(w: torch.Tensor, qmax: int) -> torch.Tensor:
    scale = torch.clamp(w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / qmax, min=1e-12)
    return torch.clamp(_ste_round(w / scale), -qmax, qmax) * scale


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class TorchGraph(nn.Module):
    def __init__(self, proto: onnx.ModelProto, act_ranges: dict | None = None, weight_qmax: int | None = None,
                 quantized_weights=None):
        super().__init__()
        self.proto = proto
        self.nodes = list(proto.graph.node)
        self.inputs = [i.name for i in proto.graph.input]
        self.output = proto.graph.output[0].name
        conv_params = {n.input[k] for n in self.nodes if n.op_type == "Conv" for k in (1, 2) if len(n.input) > k}
        self.params = nn.ParameterDict()
        self.param_names: dict[str, str] = {}  # initializer name -> key in self.params
        self.consts: dict[str, torch.Tensor] = {}
        for init in proto.graph.initializer:
            a = numpy_helper.to_array(init)
            if init.name in conv_params and a.dtype == np.float32:
                key = f"p{len(self.param_names)}"
                self.param_names[init.name] = key
                self.params[key] = nn.Parameter(torch.from_numpy(a.copy()))
            else:
                self.consts[init.name] = torch.from_numpy(np.array(a))
        self.weight_qmax = weight_qmax
        self.weights = ({n.input[1] for n in self.nodes if n.op_type == "Conv"} if quantized_weights is None
                        else set(quantized_weights))
        self.ranges = nn.ParameterDict()
        self.act_group: dict[str, str] = {}
        group_key: dict = {}
        for t, (lo, hi, group) in (act_ranges or {}).items():
            if group not in group_key:
                group_key[group] = f"r{len(self.ranges)}"
                self.ranges[group_key[group]] = nn.Parameter(torch.tensor([float(lo), float(hi)], dtype=torch.float32))
            self.act_group[t] = group_key[group]

    # -- values --------------------------------------------------------------------------------------
    def _value(self, env, name):
        if name == "":
            return None
        if name in env:
            return env[name]
        if name in self.param_names:
            p = self.params[self.param_names[name]]
            if self.weight_qmax and name in self.weights:
                return fake_quant_weight(p, self.weight_qmax)
            return p
        return self.consts[name]

    def _fq(self, name, x):
        key = self.act_group.get(name)
        if key is None or not torch.is_floating_point(x):
            return x
        r = self.ranges[key]
        return fake_quant_act(x, r[0], r[1])

    def forward(self, **feeds):
        env = {k: self._fq(k, v) for k, v in feeds.items()}
        for n in self.nodes:
            ins = [self._value(env, i) for i in n.input]
            out = self._run(n, ins)
            env[n.output[0]] = self._fq(n.output[0], out)
        return env[self.output]

    # -- operators -----------------------------------------------------------------------------------
    @staticmethod
    def _ints(t) -> list[int]:
        return [int(v) for v in torch.as_tensor(t).reshape(-1).tolist()]

    def _run(self, n, ins):
        op, a = n.op_type, _attrs(n)
        if op == "Conv":
            x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads[0] != pads[2] or pads[1] != pads[3]:
                x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
                pad = (0, 0)
            else:
                pad = (pads[0], pads[1])
            return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=pad,
                            dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
        if op == "Relu":
            return F.relu(ins[0])
        if op == "LeakyRelu":
            return F.leaky_relu(ins[0], a.get("alpha", 0.01))
        if op == "Clip":
            lo = float(ins[1]) if len(ins) > 1 and ins[1] is not None else None
            hi = float(ins[2]) if len(ins) > 2 and ins[2] is not None else None
            return torch.clamp(ins[0], lo, hi)
        if op in ("Add", "Sub", "Mul"):
            return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul}[op](ins[0], ins[1])
        if op == "Div":
            if torch.is_floating_point(ins[0]):
                return ins[0] / ins[1]
            return torch.div(ins[0], ins[1], rounding_mode="trunc")
        if op == "Concat":
            return torch.cat(ins, dim=a["axis"])
        if op == "DepthToSpace":
            x, bs = ins[0], a["blocksize"]
            mode = a.get("mode", b"DCR")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            nb, c, h, w = x.shape
            if mode == "CRD":
                return F.pixel_shuffle(x, bs)
            x = x.reshape(nb, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
            return x.reshape(nb, c // (bs * bs), h * bs, w * bs)
        if op == "Shape":
            return torch.tensor(ins[0].shape, dtype=torch.int64)
        if op == "Gather":
            idx = ins[1]
            return torch.index_select(ins[0], a.get("axis", 0), idx.reshape(-1)).reshape(idx.shape)
        if op == "Unsqueeze":
            x = ins[0]
            for ax in sorted(self._ints(ins[1])):
                x = x.unsqueeze(ax)
            return x
        if op == "Slice":
            x = ins[0]
            starts, ends = self._ints(ins[1]), self._ints(ins[2])
            axes = self._ints(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = self._ints(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            idx = [slice(None)] * x.dim()
            for s, e, ax, st in zip(starts, ends, axes, steps):
                if st <= 0:
                    raise NotImplementedError("Slice with a non-positive step")
                dim = x.shape[ax]
                s = max(0, min(dim, s + dim if s < 0 else s))
                e = max(0, min(dim, e + dim if e < 0 else e))
                idx[ax] = slice(s, e, st)
            return x[tuple(idx)]
        if op == "Identity":
            return ins[0]
        if op == "Cast":
            to = a["to"]
            return ins[0].to({onnx.TensorProto.INT64: torch.int64, onnx.TensorProto.FLOAT: torch.float32,
                              onnx.TensorProto.INT32: torch.int32}[to])
        raise NotImplementedError(f"TorchGraph: operator {op} not supported")

    # -- back to ONNX --------------------------------------------------------------------------------
    def export_weights(self) -> onnx.ModelProto:
        """The float graph with this module's (tuned) weights."""
        p = onnx.ModelProto()
        p.CopyFrom(self.proto)
        for init in p.graph.initializer:
            key = self.param_names.get(init.name)
            if key is not None:
                init.CopyFrom(numpy_helper.from_array(self.params[key].detach().numpy().astype(np.float32),
                                                      init.name))
        return p

    def learned_ranges(self) -> dict:
        """tensor -> (rmin, rmax) of the fake quantisation (as ORT will widen them: rmin <= 0 <= rmax)."""
        out = {}
        for t, key in self.act_group.items():
            lo, hi = (float(v) for v in self.ranges[key].detach())
            out[t] = (min(lo, 0.0), max(hi, 0.0))
        return out
