"""Integer hyper-scale decoder (HSD): z_hat -> Q7 log-sigma, bit-exact in integer arithmetic.

`int_forward` is THE definition that numpy and the C++ core reproduce:

    x = z_hat                                   (int, in [-31, 31])
    for conv in (conv1 1x1 C->C, conv2 3x3 C->C, conv3 1x1 C->16C):
        x   = clamp(x, -128, 127)
        acc = bias[o] + sum_{c,ky,kx} weight[o,c,ky,kx] · x[c, i+ky-k//2, j+kx-k//2]
              (zero padding; int32; cannot overflow: |bias| <= 2^30, sum|w·x| < 2^25)
        x   = acc >> shift[o]                    (arithmetic shift = floor division)
        x   = relu(x)                            (conv1, conv2 only)
    s = PixelShuffle(4)(x)    # s[c, 4i+dy, 4j+dx] = x[16c + 4dy + dx, i, j]
    s = clamp(abs(crop(s, Hl, Wl)), 0, S_MAX)   -> int32 Q7 log-sigma

Tensors (from `export_int`): convN.weight int8 [out,in,k,k] (values in [-127, 127]), convN.bias
int32 [out], convN.shift int8 [out] (0..30). There is no separate rounding term: the bias learns it.

Training is quantisation-aware: float shadow weights are fake-quantised every forward with the
same per-output-channel power-of-two scale, run in float64 (exact for these integer magnitudes),
and rounding/floor use straight-through gradients. So the training forward equals int_forward.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .entropy_model import ste_floor, ste_round
from .sigma_levels import Q7, S_MAX

W_MAX = 127
MAX_SHIFT = 30
B_MAX = 2 ** 30
ACT_MIN, ACT_MAX = -128, 127
# Hidden activations are integers representing real values x 16 (range [0, 7.94] after ReLU).
HIDDEN_SCALE = 16.0


class IntConv2d(nn.Module):
    """QAT int8 conv. Parameters live in 'natural' units (so Adam's step size suits them);
    in_scale/out_scale map them to the integer domain: w_int_domain = w · out_scale / in_scale."""

    def __init__(self, cin, cout, k, in_scale, out_scale, bias_init):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.w_mult = out_scale / in_scale
        self.b_mult = out_scale

    def quantised(self):
        """-> (w_int, b_int, shift): float64 integer-valued tensors with STE gradients."""
        w = self.weight.double() * self.w_mult
        b = self.bias.double() * self.b_mult
        with torch.no_grad():
            w_abs = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-30)
            shift = torch.floor(torch.log2(W_MAX / w_abs))
            b_abs = b.abs().clamp_min(1e-30)
            shift = torch.minimum(shift, torch.floor(torch.log2(B_MAX / b_abs)))
            shift = shift.clamp(0, MAX_SHIFT)
        scale = torch.exp2(shift)
        w_int = ste_round(w * scale[:, None, None, None]).clamp(-W_MAX, W_MAX)
        b_int = ste_round(b * scale).clamp(-B_MAX, B_MAX)
        return w_int, b_int, shift

    def forward(self, x):
        w_int, b_int, shift = self.quantised()
        acc = F.conv2d(x, w_int, b_int, padding=self.k // 2)
        return ste_floor(acc / torch.exp2(shift)[None, :, None, None])

    @torch.no_grad()
    def int_params(self):
        w_int, b_int, shift = self.quantised()
        return w_int.to(torch.int8), b_int.to(torch.int32), shift.to(torch.int8)


def _int_conv(x, w, b, shift):
    """Integer conv, int64 arithmetic (checked to stay inside int32)."""
    bsz, c, h, wd = x.shape
    k = w.shape[-1]
    if k > 1:
        p = k // 2
        xp = F.pad(x, (p, p, p, p))
        x = torch.stack([xp[:, :, dy:dy + h, dx:dx + wd] for dy in range(k) for dx in range(k)],
                        dim=2).reshape(bsz, c * k * k, h, wd)
    acc = torch.einsum("ok,bkhw->bohw", w.reshape(w.shape[0], -1).long(), x) + b.long()[:, None, None]
    assert int(acc.abs().max()) < 2 ** 31, "int32 accumulator overflow"
    return acc >> shift.long()[:, None, None]


class HyperScaleDecoderInt(nn.Module):
    """conv1x1 -> ReLU -> conv3x3 -> ReLU -> conv1x1 (16C) -> PixelShuffle(4) -> crop -> abs -> clamp."""

    def __init__(self, c, init_level=24.0):
        super().__init__()
        # Positive hidden biases keep ReLUs alive while z_hat is still all zeros at the start.
        self.conv1 = IntConv2d(c, c, 1, 1.0, HIDDEN_SCALE, bias_init=0.5)
        self.conv2 = IntConv2d(c, c, 3, HIDDEN_SCALE, HIDDEN_SCALE, bias_init=0.5)
        self.conv3 = IntConv2d(c, 16 * c, 1, HIDDEN_SCALE, float(Q7), bias_init=init_level)

    @staticmethod
    def _finish(x, latent_hw):
        s = F.pixel_shuffle(x, 4)[..., :latent_hw[0], :latent_hw[1]]
        return s.abs().clamp(0, S_MAX)

    def forward(self, z_hat, latent_hw):
        """QAT path: float64 tensor of integer Q7 values (equal to int_forward), STE gradients."""
        x = z_hat.double()
        x = F.relu(self.conv1(x.clamp(ACT_MIN, ACT_MAX)))
        x = F.relu(self.conv2(x.clamp(ACT_MIN, ACT_MAX)))
        return self._finish(self.conv3(x.clamp(ACT_MIN, ACT_MAX)), latent_hw)

    @torch.no_grad()
    def int_forward(self, z_int, latent_hw):
        """Pure integer reference: z_int (integer tensor) -> s (int32)."""
        x = z_int.long()
        for i, layer in enumerate((self.conv1, self.conv2, self.conv3)):
            x = _int_conv(x.clamp(ACT_MIN, ACT_MAX), *layer.int_params())
            if i < 2:
                x = x.clamp_min(0)
        return self._finish(x, latent_hw).to(torch.int32)

    def export_int(self):
        out = {}
        for name in ("conv1", "conv2", "conv3"):
            w, b, sh = getattr(self, name).int_params()
            out.update({f"{name}.weight": w, f"{name}.bias": b, f"{name}.shift": sh})
        return out
