"""The synthesis' vector-Jacobian product as a plain forward graph: groundwork for encoder-side latent refinement.

Why: an encoder that refines the analysis' latent for the rate point's own loss (bpp/λ − PSNR-YUV) gains
quality at the same rate (training/README.md, "Encoder-side latent refinement": measured with
`python -m training.latent_ceiling --rdo-fixed-prior`).  The runtime has no autograd (no torch), so the
gradient of the picture loss with respect to the decoded latent has to be a graph ONNX Runtime can run.  This
module writes that backward pass out by hand for the VM-style synthesis (`vm33.Synthesis`: residual 3x3 +
ReLU, two gated ConvTranspose up-samplers, a gated 3x3, a 1x1 head) and for the luma / chroma wrapper
(`vm_codec.VMSynthesis`: PixelShuffle(4), crop, ×128 + 127.5, luma latent subsampled into the chroma input),
using only ops that export to ONNX (convolutions, their transposes, masks, products).

Read me first:
- Adjoint pairs: Conv2d(k, s, p) <-> conv_transpose2d(same weight, s, p) and the reverse; a ConvTranspose
  k4 s2 p1 on an h x w input gives exactly 2h x 2w, so its adjoint conv2d(k4, s2, p1) returns h x w.
- Gated block x_out = u · G(LeakyReLU(u)): du = dx·g + LeakyReLU'(u) · Gᵀ(dx·u).  LeakyReLU'(0) and
  ReLU'(0) follow torch's autograd (LeakyReLU: slope at 0; ReLU: 0), so the graph equals autograd.
- Not bit-exact and need not be: any latent makes a valid stream; the refinement only chooses which one.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vm33

DENORM = 128.0  # vm_codec.denormalise: x·128 + 127.5


def _lrelu_grad(u):
    return torch.where(u > 0, torch.ones_like(u), torch.full_like(u, vm33.LEAK))


def _gated_forward(block, x):
    u = block.up(x)
    g = block.gate(F.leaky_relu(u, vm33.LEAK))
    return u * g, (u, g)


def _gated_backward(block, saved, d):
    u, g = saved
    gate = block.gate  # a 1x1 conv
    du = d * g + _lrelu_grad(u) * F.conv_transpose2d(d * u, gate.weight)
    up = block.up
    if isinstance(up, nn.ConvTranspose2d):
        return F.conv2d(du, up.weight, stride=up.stride, padding=up.padding)
    return F.conv_transpose2d(du, up.weight, stride=up.stride, padding=up.padding)


def synthesis_vjp(m: vm33.Synthesis, x: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (m(x), ∂⟨m(x), grad_out⟩/∂x) for one vm33.Synthesis, by hand (no autograd)."""
    r = m.res(x)
    x1 = x + F.relu(r)
    x2, s1 = _gated_forward(m.up1, x1)
    x3, s2 = _gated_forward(m.up2, x2)
    x4, s3 = _gated_forward(m.mid, x3)
    out = m.out(x4)
    d = F.conv_transpose2d(grad_out, m.out.weight)
    d = _gated_backward(m.mid, s3, d)
    d = _gated_backward(m.up2, s2, d)
    d = _gated_backward(m.up1, s1, d)
    dx = d + F.conv_transpose2d(d * (r > 0).to(d.dtype), m.res.weight, padding=m.res.padding)
    return out, dx


class PictureGradient(nn.Module):
    """(ŷ luma, ŷ chroma, target Y, target UV) -> (PSNR-YUV of the decoded picture, its gradient w.r.t. both
    latents, the three component MSEs).  Sizes: target Y h x w, UV (h/2) x (w/2) (both even), latents on the
    codec's grids (luma ceil(h/16), chroma ceil(h/32)); the decoded picture is cropped as the decoder crops it.
    PSNR-YUV = (6·PSNR_Y + PSNR_U + PSNR_V) / 8 on the unclamped 0-255 output."""

    def __init__(self, synthesis):
        super().__init__()
        self.luma, self.chroma = synthesis.luma, synthesis.chroma

    def forward(self, y_hat, c_hat, target_y, target_uv):
        h, w = target_y.shape[-2:]
        hc, wc = target_uv.shape[-2:]
        c_in = vm33.chroma_synthesis_input(y_hat, c_hat)
        # forward to the pictures (the decoder's crop), then the loss gradient on the picture
        ly = F.pixel_shuffle(self.luma(y_hat), 4)
        lc = F.pixel_shuffle(self.chroma(c_in), 4)
        py = ly[..., :h, :w] * DENORM + 127.5
        pc = lc[..., :hc, :wc] * DENORM + 127.5
        ey, ec = py - target_y, pc - target_uv
        mse_y = (ey * ey).mean()
        mse_c = (ec * ec).mean(dim=(0, 2, 3))
        # d PSNR / d MSE = -10 / (ln 10 · MSE); weights 6/8, 1/8, 1/8; d MSE / d p = 2 e / N
        k = -10.0 / 2.302585092994046
        gy = (6.0 / 8.0) * k / mse_y * 2.0 * ey / (h * w)
        gc = (1.0 / 8.0) * k / mse_c[None, :, None, None] * 2.0 * ec / (hc * wc)
        # back through ×128, the crop (zero outside) and PixelShuffle (PixelUnshuffle is its adjoint)
        gy = F.pad(gy * DENORM, (0, ly.shape[-1] - w, 0, ly.shape[-2] - h))
        gc = F.pad(gc * DENORM, (0, lc.shape[-1] - wc, 0, lc.shape[-2] - hc))
        _, dy = synthesis_vjp(self.luma, y_hat, F.pixel_unshuffle(gy, 4))
        _, dcin = synthesis_vjp(self.chroma, c_in, F.pixel_unshuffle(gc, 4))
        nl = y_hat.shape[1]
        # the chroma input took luma[..., ::2, ::2]: its gradient goes back onto those positions
        dy = dy + _scatter_even(dcin[:, :nl], y_hat.shape[-2:])
        psnr_yuv = (6.0 * (10.0 * torch.log10(255.0 ** 2 / mse_y))
                    + (10.0 * torch.log10(255.0 ** 2 / mse_c)).sum()) / 8.0
        return psnr_yuv.reshape(1), dy, dcin[:, nl:], torch.cat([mse_y[None], mse_c])


def _scatter_even(sub, hw):
    """Adjoint of x[..., ::2, ::2] for an x of spatial size hw: sub's values at the even positions, zeros elsewhere
    (written with pad + reshape so it exports as plain ONNX ops)."""
    h, w = hw
    b, c, hs, ws = sub.shape
    z = torch.zeros_like(sub)
    rows = torch.stack([sub, z], dim=-1).reshape(b, c, hs, 2 * ws)[..., :w]           # interleave columns
    full = torch.stack([rows, torch.zeros_like(rows)], dim=-2).reshape(b, c, 2 * hs, rows.shape[-1])
    return full[..., :h, :]


def export_picture_gradient(synthesis, path, example_hw=(64, 96)) -> None:
    """Write PictureGradient(synthesis) as an ONNX graph (opset 17, float32, dynamic sizes) to ``path``.
    Inputs y_hat_luma [1,Cl,hl,wl], y_hat_chroma [1,Cc,hc,wc], target_y [1,1,h,w], target_uv [1,2,h/2,w/2];
    outputs psnr_yuv [1], grad_luma, grad_chroma (the latents' shapes), mse [3]."""
    module = PictureGradient(synthesis).eval()
    h, w = example_hw
    hl, wl = -(-h // 16), -(-w // 16)
    cl = synthesis.luma.res.in_channels
    cc = synthesis.chroma.res.in_channels - cl
    example = (torch.zeros(1, cl, hl, wl), torch.zeros(1, cc, -(-hl // 2), -(-wl // 2)),
               torch.full((1, 1, h, w), 128.0), torch.full((1, 2, h // 2, w // 2), 128.0))
    names = ["y_hat_luma", "y_hat_chroma", "target_y", "target_uv"]
    dyn = {n: {2: f"{n}_h", 3: f"{n}_w"} for n in names}
    dyn.update({"grad_luma": {2: "gl_h", 3: "gl_w"}, "grad_chroma": {2: "gc_h", 3: "gc_w"}})
    with torch.no_grad():
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["psnr_yuv", "grad_luma", "grad_chroma", "mse"], dynamic_axes=dyn)
