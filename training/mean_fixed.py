"""Fixed-point mean path at export: calibrate the tensor scales, quantise the float hyper-mean decoders
and the luma context model to the integer format of docs/model_format.md ("Fixed-point mean path").

Format (the C++ core csrc/mean_path.cpp and training/reference_decoder.py MeanPathInt run it): int16
activations with one power-of-two scale per tensor, int8 weights with a power-of-two scale per output
channel, int32 bias and accumulator, per-output-channel rounding right shift to the output's scale.
Scales: from the largest |value| of every tensor on calibration pictures (training crops, never Kodak)
at every rate point, with 2x headroom; a tensor's fraction bits are then lowered where a layer could
not reach them (a shift < 0) and a channel's weight bits where its int32 accumulator could overflow for
the worst int16 input.  No fine-tuning: measured against float on Kodak (results/fixed_point_*.md).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from .colour import rgb_to_yuv420

HEADROOM = 2.0
MAX_FRAC = 15
RELU6_MAX_FRAC = 12  # 6 << 12 = 24576 still fits int16
ACC_LIMIT = 2**31
KIND_CONV, KIND_CONVT = 0, 1
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_LEAKY = 0, 1, 2, 3
FORM_PSI, FORM_MU = 0, 1  # mean.topology[0]: the hyper-mean decoder makes psi, or mu on the latent grid


def hyper_mean_layers(hd):
    """The hyper-mean decoder as the layer list the fixed-point format stores:
    -> (form, named, [(blob name, module, activation)]).  `named`: the first format's fixed names (no
    mean.topology section); otherwise layers are numbered and mean.topology describes them."""
    if hasattr(hd, "up1"):  # training/vm33.py HyperDecoder (the VM 3.3 mean decoder)
        return FORM_MU, False, [("0", hd.c1, ACT_NONE), ("1", hd.up1, ACT_LEAKY), ("2", hd.c3, ACT_NONE),
                                ("3", hd.up2, ACT_LEAKY), ("4", hd.c5, ACT_LEAKY)]
    return FORM_PSI, True, [("c1", hd.c1, ACT_NONE), ("up", hd.up, ACT_RELU6), ("c2", hd.c2, ACT_RELU6),
                            ("c3", hd.c3, ACT_NONE)]


def act_frac_bits(max_abs: float, headroom: float = HEADROOM) -> int:
    """Largest f in [0, 15] with max_abs * headroom * 2^f <= 32767."""
    if max_abs <= 0:
        return MAX_FRAC
    return int(np.clip(math.floor(math.log2(32767 / (max_abs * headroom))), 0, MAX_FRAC))


def weight_frac_bits(max_abs: float) -> int:
    if max_abs <= 0:
        return 24
    return int(math.floor(math.log2(127 / max_abs)))


class _Max:
    """max |output| of modules (forward hooks) and of named tensors."""

    def __init__(self):
        self.v = {}

    def see(self, key, t):
        self.v[key] = max(self.v.get(key, 0.0), float(t.detach().abs().max()))

    def hook(self, key):
        return lambda _m, _a, out: self.see(key, out)


@torch.no_grad()
def calibrate(model, images, rates):
    """images: uint8 RGB [H,W,3] arrays -> {tensor name: max |value|} of the float model (eval mode)."""
    mx = _Max()
    handles = []
    relu6 = []
    for comp in ("luma", "chroma"):
        for n, module, act in hyper_mean_layers(getattr(model, comp).hyper_decoder)[2]:
            handles.append(module.register_forward_hook(mx.hook(f"hd_{comp}.{n}")))
            if act == ACT_RELU6:
                relu6.append(f"hd_{comp}.{n}")
    cm = model.context_model
    for s in range(4):
        for i, n in ((0, "a"), (2, "b"), (4, "c")):
            handles.append(cm.fusion[s][i].register_forward_hook(mx.hook(f"fuse{s}.{n}")))
        if s:
            for i, n in ((0, "a"), (1, "b")):
                handles.append(cm.context[s - 1][i].register_forward_hook(mx.hook(f"ctx{s}.{n}")))
    handles.append(model.luma_analysis.register_forward_hook(mx.hook("y_luma")))
    handles.append(model.chroma_analysis.register_forward_hook(mx.hook("y_chroma")))
    model.eval()
    try:
        for rgb in images:
            y, uv = rgb_to_yuv420(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float())
            for r in rates:
                model(y, uv, torch.tensor([r]), "bop")
    finally:
        for h in handles:
            h.remove()
    for key in relu6:  # relu6 outputs never exceed 6
        mx.v[key] = min(mx.v[key], 6.0)
    return mx.v


def quantise_layer(module: nn.Module, frac_in: int, frac_out: int, act: int, exact_out: bool = False):
    """-> (sections dict without prefix, frac_out actually used).  exact_out: frac_out may not be lowered
    (returns None when it would have to be)."""
    convt = isinstance(module, nn.ConvTranspose2d)
    w = module.weight.detach().double()
    if convt:
        w = w.transpose(0, 1)  # [in, out, 4, 4] -> [out, in, 4, 4]
    w = w.numpy()
    out = w.shape[0]
    wmax = np.abs(w.reshape(out, -1)).max(axis=1)
    f_w = np.array([weight_frac_bits(v) for v in wmax], dtype=np.int64)
    if act == ACT_RELU6:
        frac_out = min(frac_out, RELU6_MAX_FRAC)
    reach = frac_in + int(f_w.min())
    if frac_out > reach:  # the layer cannot produce that many fraction bits (shift < 0)
        if exact_out:
            return None, reach
        frac_out = reach
    f_w = np.minimum(f_w, frac_out - frac_in + 31)  # shift <= 31
    b = np.zeros(out) if module.bias is None else module.bias.detach().double().numpy()
    while True:
        scale = np.ldexp(1.0, f_w)
        w_int = np.clip(np.floor(w * scale.reshape(-1, 1, 1, 1) + 0.5), -127, 127)
        b_int = np.floor(b * np.ldexp(1.0, f_w + frac_in) + 0.5)
        worst = np.abs(b_int) + 32768 * np.abs(w_int).reshape(out, -1).sum(axis=1)
        bad = worst >= ACC_LIMIT
        if not bad.any():
            break
        f_w = f_w - bad  # halve that channel's weight resolution until its worst case fits int32
        if (frac_in + f_w < frac_out).any():
            if exact_out:
                return None, int(frac_in + f_w.min())
            frac_out = int(frac_in + f_w.min())
    shift = frac_in + f_w - frac_out
    assert (shift >= 0).all() and (shift <= 31).all()
    meta = np.array([KIND_CONVT if convt else KIND_CONV, w.shape[-1], 1 if convt else module.groups,
                     frac_in, frac_out, act], np.int32)
    return {"weight": w_int.astype(np.int8), "bias": b_int.astype(np.int32), "shift": shift.astype(np.int8),
            "meta": meta}, frac_out


def mean_sections(model, calib: dict) -> dict:
    """Blob sections mean.* of the whole integer mean path (docs/model_format.md)."""
    sec = {}

    def put(prefix, d):
        for k, v in d.items():
            sec[f"{prefix}.{k}"] = v

    f_psi, last, counts = {}, {}, []
    for comp in ("luma", "chroma"):
        form, named, layers = hyper_mean_layers(getattr(model, comp).hyper_decoder)
        f = 0  # z_hat: integers
        for n, module, act in layers:
            d, f = quantise_layer(module, f, act_frac_bits(calib[f"hd_{comp}.{n}"]), act)
            put(f"mean.hd_{comp}.{n}", d)
        f_psi[comp], last[comp] = f, f"hd_{comp}.{layers[-1][0]}"
        counts.append(len(layers))
    if not named:
        residual = int(getattr(model.context_model, "residual", False))
        sec["mean.topology"] = np.array([form, residual, *counts], np.int32)
    cm = model.context_model
    f_y = act_frac_bits(max(calib["y_luma"], max(calib[f"fuse{s}.c"] for s in range(4))))
    while True:  # lower f_y until every stage's last layer reaches it exactly
        staged, ok = {}, True
        for s in range(4):
            if s:
                a, fa = quantise_layer(cm.context[s - 1][0], f_y, act_frac_bits(calib[f"ctx{s}.a"]), ACT_NONE)
                b, fb = quantise_layer(cm.context[s - 1][1], fa, act_frac_bits(calib[f"ctx{s}.b"]), ACT_NONE)
                staged[f"mean.ctx{s}.a"], staged[f"mean.ctx{s}.b"] = a, b
                f_in = min(fb, f_psi["luma"])
            else:
                f_in = f_psi["luma"]
            fus = cm.fusion[s]
            d, f1 = quantise_layer(fus[0], f_in, act_frac_bits(calib[f"fuse{s}.a"]), ACT_RELU)
            staged[f"mean.fuse{s}.a"] = d
            d, f2 = quantise_layer(fus[2], f1, act_frac_bits(calib[f"fuse{s}.b"]), ACT_RELU)
            staged[f"mean.fuse{s}.b"] = d
            d, reach = quantise_layer(fus[4], f2, f_y, ACT_NONE, exact_out=True)
            if d is None:
                f_y, ok = reach, False
                break
            staged[f"mean.fuse{s}.c"] = d
        if ok:
            break
    for prefix, d in staged.items():
        put(prefix, d)
    f_yc = act_frac_bits(max(calib["y_chroma"], calib[last["chroma"]]))
    sec["mean.y_frac"] = np.array([f_y, f_yc], np.int32)
    return sec
