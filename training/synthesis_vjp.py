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

import pathlib

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


def _axis_weight(k, dim):
    return k.view(1, 1, -1, 1) if dim == 2 else k.view(1, 1, 1, -1)


def _mirror(x, r, dim):
    """training.msssim's edge mirroring (d c b a | a b c d); planes at least r samples long."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 0, r).flip(dim), x, x.narrow(dim, n - r, r).flip(dim)], dim)


def _mirror_adjoint(p, r, dim, n):
    """Adjoint of _mirror: the padded samples' gradients folded back onto the samples they copied."""
    mid = p.narrow(dim, r, n)
    head = p.narrow(dim, 0, r).flip(dim)
    tail = p.narrow(dim, n + r, r).flip(dim)
    pad_head = [0, 0, 0, 0]
    pad_tail = [0, 0, 0, 0]
    side = 0 if dim == 3 else 2
    pad_head[side + 1] = n - r
    pad_tail[side] = n - r
    return mid + F.pad(head, pad_head) + F.pad(tail, pad_tail)


def _blur(x, k):
    """Separable Gaussian of [N,1,H,W] with mirrored edges (as training.msssim._gauss)."""
    r = k.numel() // 2
    for dim in (2, 3):
        x = F.conv2d(_mirror(x, r, dim), _axis_weight(k, dim))
    return x


def _blur_adjoint(g, k):
    r = k.numel() // 2
    for dim in (3, 2):
        n = g.shape[dim]
        g = _mirror_adjoint(F.conv_transpose2d(g, _axis_weight(k, dim)), r, dim, n)
    return g


def _pool_adjoint(g, h, w):
    """Adjoint of avg_pool2d(x[..., :h//2*2, :w//2*2], 2) for an x of h x w."""
    up = F.conv_transpose2d(g, torch.full((1, 1, 2, 2), 0.25, dtype=g.dtype), stride=2)
    return F.pad(up, (0, w - up.shape[-1], 0, h - up.shape[-2]))


def msssim_db_and_gradient(a, b):
    """MS-SSIM-Y in dB of picture a against b ([1,1,H,W], 0-255; training.msssim's definition, floor left out)
    and its gradient w.r.t. a, by hand.  Needs every scale at least 6 samples on each side (H, W >= 96)."""
    from .msssim import C1, C2, MS_WEIGHTS, _kernel
    k = _kernel(a.dtype, a.device)
    planes, vals, partials = [], [], []
    for scale in range(5):
        planes.append((a, b))
        mu1, mu2, e11, e22, e12 = _blur(torch.cat([a, b, a * a, b * b, a * b], dim=0), k).unbind(0)
        s11, s22, s12 = e11 - mu1 * mu1, e22 - mu2 * mu2, e12 - mu1 * mu2
        num, den = 2 * s12 + C2, s11 + s22 + C2
        cs = num / den
        d_e12, d_e11 = 2 / den, -num / (den * den)
        d_mu1 = -2 * mu2 / den + 2 * mu1 * num / (den * den)
        if scale < 4:
            vals.append(cs.mean())
            h, w = a.shape[-2] // 2 * 2, a.shape[-1] // 2 * 2
            a = F.avg_pool2d(a[..., :h, :w], 2)
            b = F.avg_pool2d(b[..., :h, :w], 2)
        else:
            pn, qd = 2 * mu1 * mu2 + C1, mu1 * mu1 + mu2 * mu2 + C1
            lum = pn / qd
            vals.append((lum * cs).mean())
            d_lum = 2 * mu2 / qd - 2 * mu1 * pn / (qd * qd)
            d_mu1, d_e11, d_e12 = lum * d_mu1 + cs * d_lum, lum * d_e11, lum * d_e12
        partials.append((d_mu1, d_e11, d_e12))
    ms = torch.ones_like(vals[0])
    for v, wgt in zip(vals, MS_WEIGHTS):
        ms = ms * v.pow(wgt)
    one_minus = (1.0 - ms).clamp_min(1e-12)
    db = -10.0 * torch.log10(one_minus)
    d_ms = 10.0 / (2.302585092994046 * one_minus)
    grad = None
    for scale in range(4, -1, -1):
        a_s, b_s = planes[scale]
        d_mu1, d_e11, d_e12 = (t[None] for t in partials[scale])
        coef = d_ms * ms * MS_WEIGHTS[scale] / vals[scale] / (a_s.shape[-2] * a_s.shape[-1])
        g = coef * (_blur_adjoint(d_mu1, k) + 2 * a_s * _blur_adjoint(d_e11, k) + b_s * _blur_adjoint(d_e12, k))
        grad = g if grad is None else g + _pool_adjoint(grad, a_s.shape[-2], a_s.shape[-1])
    return db, grad


class PictureGradient(nn.Module):
    """(ŷ luma, ŷ chroma, target Y, target UV, MS-SSIM weight w) -> (quality, PSNR-YUV, MS-SSIM-Y dB, the
    quality's gradient w.r.t. both latents).  quality = (PSNR-YUV + w·MS-SSIM-Y dB) / (1 + w), the figure the
    vm33 loss trains on (training/train.py; w 0.5).  Sizes: target Y h x w, UV (h/2) x (w/2) (both even; h, w
    >= 96 for the MS-SSIM scales), latents on the codec's grids (luma ceil(h/16), chroma ceil(h/32)); the
    decoded picture is cropped as the decoder crops it.  PSNR-YUV = (6·PSNR_Y + PSNR_U + PSNR_V) / 8 and MS-SSIM
    on the unclamped 0-255 output."""

    def __init__(self, synthesis):
        super().__init__()
        self.luma, self.chroma = synthesis.luma, synthesis.chroma

    def forward(self, y_hat, c_hat, target_y, target_uv, msssim_weight):
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
        wq = 1.0 / (1.0 + msssim_weight)
        ms_db, g_ms = msssim_db_and_gradient(py, target_y)
        gy = wq * ((6.0 / 8.0) * k / mse_y * 2.0 * ey / (h * w) + msssim_weight * g_ms)
        gc = wq * (1.0 / 8.0) * k / mse_c[None, :, None, None] * 2.0 * ec / (hc * wc)
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
        quality = wq * (psnr_yuv + msssim_weight * ms_db)
        return quality.reshape(1), psnr_yuv.reshape(1), ms_db.reshape(1), dy, dcin[:, nl:]


def _scatter_even(sub, hw):
    """Adjoint of x[..., ::2, ::2] for an x of spatial size hw: sub's values at the even positions, zeros elsewhere
    (written with pad + reshape so it exports as plain ONNX ops)."""
    h, w = hw
    b, c, hs, ws = sub.shape
    z = torch.zeros_like(sub)
    rows = torch.stack([sub, z], dim=-1).reshape(b, c, hs, 2 * ws)[..., :w]           # interleave columns
    full = torch.stack([rows, torch.zeros_like(rows)], dim=-2).reshape(b, c, 2 * hs, rows.shape[-1])
    return full[..., :h, :]


def export_picture_gradient(synthesis, path, example_hw=(96, 128)) -> None:
    """Write PictureGradient(synthesis) as an ONNX graph (opset 17, float32, dynamic sizes) to ``path``.
    Inputs y_hat_luma [1,Cl,hl,wl], y_hat_chroma [1,Cc,hc,wc], target_y [1,1,h,w], target_uv [1,2,h/2,w/2],
    msssim_weight []; outputs quality, psnr_yuv, msssim_db [1], grad_luma, grad_chroma (the latents' shapes)."""
    module = PictureGradient(synthesis).eval()
    h, w = example_hw
    hl, wl = -(-h // 16), -(-w // 16)
    cl = synthesis.luma.res.in_channels
    cc = synthesis.chroma.res.in_channels - cl
    gen = torch.Generator().manual_seed(0)
    example = (torch.zeros(1, cl, hl, wl), torch.zeros(1, cc, -(-hl // 2), -(-wl // 2)),
               128.0 + 20 * torch.randn(1, 1, h, w, generator=gen), torch.full((1, 2, h // 2, w // 2), 128.0),
               torch.tensor(0.5))
    names = ["y_hat_luma", "y_hat_chroma", "target_y", "target_uv", "msssim_weight"]
    dyn = {n: {2: f"{n}_h", 3: f"{n}_w"} for n in names[:4]}
    dyn.update({"grad_luma": {2: "gl_h", 3: "gl_w"}, "grad_chroma": {2: "gc_h", 3: "gc_w"}})
    with torch.no_grad():
        torch.onnx.export(module, example, path if hasattr(path, "write") else str(path), dynamo=False,
                          opset_version=17, input_names=names,
                          output_names=["quality", "psnr_yuv", "msssim_db", "grad_luma", "grad_chroma"],
                          dynamic_axes=dyn)


# --- the export step: picture_gradient_{op}.onnx beside a model's float synthesis graphs ------------------------

def synthesis_from_graphs(model_dir, op: str):
    """The torch VMSynthesis of a model directory's float graphs synthesis_{op}_{luma,chroma}.onnx (weights read
    from their `m.<parameter>.f16` initializers, so the gradient graph uses exactly the shipped weights)."""
    import onnx
    from onnx import numpy_helper

    from .vm_codec import VMSynthesis
    syn = VMSynthesis(pretrained=False, op="bop")
    for comp in ("luma", "chroma"):
        graph = onnx.load(str(pathlib.Path(model_dir) / f"synthesis_{op}_{comp}.onnx")).graph
        state = {}
        for init in graph.initializer:
            name = init.name.removesuffix(".f16")
            if name.startswith("m."):
                state[name[2:]] = torch.from_numpy(numpy_helper.to_array(init).astype("float32"))
        if not state:
            raise ValueError(f"synthesis_{op}_{comp}.onnx: no m.* weights (not a VM-style synthesis)")
        module = vm33.Synthesis(state["res.weight"].shape[0], state["up1.up.weight"].shape[1],
                                state["up2.up.weight"].shape[1], state["out.weight"].shape[0])
        module.load_state_dict(state)
        setattr(syn, comp, module)
    return syn.eval()


def _check_against_graphs(model_dir, op, syn, hw=(96, 160)) -> float:
    """Max |torch − ONNX Runtime| of the synthesis output (0-255) on a small test latent, relative to the output's
    range; raises when the torch rebuild does not reproduce the shipped graphs."""
    import numpy as np
    import onnxruntime as ort
    h, w = hw
    gen = torch.Generator().manual_seed(0)
    a = 0.5 * torch.randn(1, syn.luma.res.in_channels, h // 16, w // 16, generator=gen)
    b = 0.5 * torch.randn(1, syn.chroma.res.in_channels - a.shape[1], h // 32, w // 32, generator=gen)
    with torch.no_grad():
        y_rec, uv_rec = syn(a, b, (h, w))
    worst = 0.0
    for comp, want, feeds in (("luma", y_rec, {"y_hat": a.numpy()}),
                              ("chroma", uv_rec, {"y_hat_luma": a.numpy(), "y_hat_chroma": b.numpy()})):
        sess = ort.InferenceSession(str(pathlib.Path(model_dir) / f"synthesis_{op}_{comp}.onnx"),
                                    providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        feeds = dict(zip([n for n in names if n != "image_ref"], feeds.values()))
        if "image_ref" in names:
            feeds["image_ref"] = np.zeros((1, 0, h, w), np.float32)  # as jpegai_fast.synthesis feeds it
        got = sess.run(None, feeds)[0]
        want = want.numpy().reshape(-1)
        worst = max(worst, float(np.abs(got.reshape(-1) - want).max() / max(1.0, np.abs(want).max())))
    if worst > 1e-4:
        raise ValueError(f"{model_dir}: the torch rebuild of synthesis_{op} differs from its graphs by {worst:.3g}")
    return worst


def export_model_dir(model_dir) -> dict:
    """Write picture_gradient_{op}.onnx (weights stored as exact float16) for every VM-style operating point of
    a model directory and its card entry `picture_gradient`: -> that entry."""
    import hashlib
    import io
    import json

    import onnx

    from .export import store_float16_exact
    model_dir = pathlib.Path(model_dir)
    from .train import MSSSIM_WEIGHT_VM33
    entry = {"what": "encoder-side latent refinement (jpegai_fast.refine): quality (PSNR-YUV + w·MS-SSIM-Y dB) / "
                     "(1 + w) of the decoded picture and its gradient w.r.t. the latents, training/synthesis_vjp.py",
             "msssim_weight": MSSSIM_WEIGHT_VM33, "ops": {}}
    for op in ("bop", "sop"):
        if not all((model_dir / f"synthesis_{op}_{c}.onnx").is_file() for c in ("luma", "chroma")):
            continue
        syn = synthesis_from_graphs(model_dir, op)
        diff = _check_against_graphs(model_dir, op, syn)
        buf = io.BytesIO()
        export_picture_gradient(syn, buf)
        proto, _ = store_float16_exact(onnx.load_from_string(buf.getvalue()))
        out = model_dir / f"picture_gradient_{op}.onnx"
        onnx.save(proto, str(out))
        entry["ops"][op] = {"file": out.name, "bytes": out.stat().st_size, "rebuild_max_abs_diff": diff,
                            "synthesis_sha256": {c: hashlib.sha256((model_dir / f"synthesis_{op}_{c}.onnx")
                                                                   .read_bytes()).hexdigest()
                                                 for c in ("luma", "chroma")}}
        print(f"{out}: {out.stat().st_size / 2**20:.2f} MiB (rebuild vs graphs max |diff| {diff:.2e} of the range)",
              flush=True)
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text())
    card["picture_gradient"] = entry
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return entry


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description="Write a model's picture-gradient graphs (encoder-side refinement).")
    ap.add_argument("--model", default=str(pathlib.Path(__file__).resolve().parents[1] / "src/jpegai_fast/models/vm33"))
    args = ap.parse_args(argv)
    export_model_dir(args.model)


if __name__ == "__main__":
    main()
