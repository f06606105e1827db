"""Which transform caps quality: the analysis or the synthesis?  A diagnostic for the flat top of the curve.

    python -m training.latent_ceiling [--checkpoint training/checkpoints/vm33.pt] [--images 1,4,8,14]
                                      [--iters 300] [--rdo-rate -1] [--rdo-iters 200]

Per Kodak image, with the checkpoint's networks fixed (torch forward, PSNR-YUV against the 4:2:0 original):
* ``analysis``: the latent the analysis makes, decoded unquantised by the BOP synthesis — the quality ceiling of
  the analysis → synthesis pair at any rate;
* ``synthesis``: the latent optimised by gradient descent (Adam) to maximise that PSNR — what the synthesis
  can decode when it gets the best latent, i.e. the ceiling of the synthesis alone;
* ``rdo``: the latent optimised for the rate point's own loss (bpp/λ − PSNR-YUV, rounded residuals with a
  straight-through gradient, entropy-model bits) — how far the amortised analysis is from the latent the
  decoder would want at that rate.  ``--rdo-fixed-prior``: the same with what an encoder can do without
  differentiating its entropy model: z (so σ and the hyper mean) taken once from the analysis' latent, the
  context model's means recomputed every step but not differentiated (encoder-side latent refinement).
A large ``synthesis − analysis`` gap says the encoder side (analysis) limits quality, not the decoder.
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .blocks import crop
from .codec import code_residual
from .colour import psnr_yuv, rgb_to_yuv420, yuv_mse
from .context_model import merge_phases, split_phases
from .gain_sweep import ROOT, load
from .vm_codec import phases_to_psi


def _psnr(model, y_lat, c_lat, y, uv):
    y_rec, uv_rec = model.synthesis["bop"](y_lat, c_lat, y.shape[-2:])
    return psnr_yuv(yuv_mse(y_rec, uv_rec, y, uv))[0]


def synthesis_ceiling(model, y, uv, iters, lr=0.01):
    """-> (PSNR-YUV of the analysis' latent unquantised, PSNR-YUV of the optimised latent).  The analysis of the
    top rate point (the high-rate one, when the model has two)."""
    with torch.no_grad():
        y_lat, c_lat = model.analysis(y, uv, torch.tensor([len(model.rate_lambdas) - 1]))
        start = float(_psnr(model, y_lat, c_lat, y, uv))
    a, b = y_lat.clone().requires_grad_(True), c_lat.clone().requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    best = start
    for _ in range(iters):
        p = _psnr(model, a, b, y, uv)
        best = max(best, float(p.detach()))
        opt.zero_grad()
        (-p).backward()
        opt.step()
    return start, best


def _fixed_prior_coder(model, y_lat, c_lat, rate):
    """A latent coder whose prior is frozen at the analysis' latent: (a, b) -> (y_hat, c_hat, bits [1]).
    z, s, the hyper means and z's bits come from (y_lat, c_lat) once; each call recomputes the context model's
    means from the decoded phases without a gradient through them."""
    r = torch.tensor([rate])
    with torch.no_grad():
        prior = {"luma": model.luma(y_lat, r), "chroma": model.chroma(c_lat, r)}

    def code(a, b):
        s, mu, gain, bits = prior["luma"]
        h, w = a.shape[-2:]
        pad = (0, w % 2, 0, h % 2)
        ys, ss = split_phases(F.pad(a, pad)), split_phases(F.pad(s, pad))
        psis = phases_to_psi(mu).chunk(4, dim=1)
        decoded = []
        for stage in range(4):
            with torch.no_grad():
                mu_s = model.context_model.stage_mean(stage, psis[stage], decoded)
            y_hat, bb = code_residual(ys[stage], mu_s, ss[stage], gain, False)
            decoded.append(y_hat)
            bits = bits + bb.sum(dim=(1, 2, 3))
        s_c, mu_c, gain_c, bits_c = prior["chroma"]
        c_hat, bc = code_residual(b, mu_c, s_c, gain_c, False)
        return crop(merge_phases(decoded), h, w), c_hat, bits + bits_c + bc.sum(dim=(1, 2, 3))
    return code


def rdo(model, y, uv, rate, iters, lr=0.005, fixed_prior=False):
    """-> ((bpp, PSNR-YUV) of the analysis' latent, (bpp, PSNR-YUV) of the latent with the lowest rate-point loss).
    fixed_prior: the encoder-side variant (module docstring)."""
    lam = model.rate_lambdas[rate]
    npx = y.shape[-2] * y.shape[-1]
    with torch.no_grad():
        y_lat, c_lat = model.analysis(y, uv, torch.tensor([rate]))
    coder = _fixed_prior_coder(model, y_lat, c_lat, rate) if fixed_prior else None
    a, b = y_lat.clone().requires_grad_(True), c_lat.clone().requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    first, best, best_loss = None, None, float("inf")
    for _ in range(iters + 1):
        if coder is None:
            y_rec, uv_rec, bits = model.forward_latents(a, b, torch.tensor([rate]), y.shape[-2:])
        else:
            y_hat, c_hat, bits = coder(a, b)
            y_rec, uv_rec = model.synthesis["bop"](y_hat, c_hat, y.shape[-2:])
        p = psnr_yuv(yuv_mse(y_rec, uv_rec, y, uv))[0]
        bpp = bits[0] / npx
        loss = bpp / lam - p
        point = (float(bpp.detach()), float(p.detach()))
        first = first or point
        if float(loss.detach()) < best_loss:
            best, best_loss = point, float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "training/checkpoints/vm33.pt"))
    ap.add_argument("--images", default="1,4,8,14", help="Kodak image numbers")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--iters", type=int, default=300, help="Adam steps of the synthesis ceiling")
    ap.add_argument("--rdo-rate", type=int, default=-1, help="rate point of the RDO probe (-1: the last)")
    ap.add_argument("--rdo-iters", type=int, default=200, help="Adam steps of the RDO probe (0: skip it)")
    ap.add_argument("--rdo-lr", type=float, default=0.005, help="Adam lr of the RDO probe")
    ap.add_argument("--rdo-fixed-prior", action="store_true",
                    help="RDO probe with the prior frozen at the analysis' latent (encoder-side refinement)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    for p in model.parameters():
        p.requires_grad_(False)
    rate = args.rdo_rate % len(model.rate_lambdas)
    rows = []
    for i in args.images.split(","):
        rgb = np.array(Image.open(pathlib.Path(args.kodak) / f"kodim{int(i):02d}.png").convert("RGB"))
        y, uv = rgb_to_yuv420(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
        start, best = synthesis_ceiling(model, y, uv, args.iters)
        line = f"kodim{int(i):02d}: analysis {start:.2f} dB, synthesis {best:.2f} dB"
        if args.rdo_iters:
            (b0, p0), (b1, p1) = rdo(model, y, uv, rate, args.rdo_iters, args.rdo_lr, args.rdo_fixed_prior)
            line += f"; rdo rate {rate}: {b0:.4f} bpp {p0:.2f} dB -> {b1:.4f} bpp {p1:.2f} dB"
            rows.append((start, best, b0, p0, b1, p1))
        else:
            rows.append((start, best))
        print(line, flush=True)
    m = np.mean(np.array(rows), axis=0)
    summary = f"mean ({len(rows)} images): analysis {m[0]:.2f} dB, synthesis {m[1]:.2f} dB"
    if args.rdo_iters:
        summary += f"; rdo rate {rate}: {m[2]:.4f} bpp {m[3]:.2f} dB -> {m[4]:.4f} bpp {m[5]:.2f} dB"
    print(summary, flush=True)


if __name__ == "__main__":
    main()
