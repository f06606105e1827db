"""What would a fixed-point mean path cost?  Post-training fixed-point simulation of the hyper-mean
decoders (z -> psi) and the luma context model, measured on Kodak against the float model.

    python -m training.fixed_point_eval --checkpoint training/checkpoints/vr_bop.pt [--images 24]

The integer format simulated is the one the model issue asks for (and the one the integer hyper-scale
decoder already uses): per-output-channel int8 weights with a power-of-two scale, int16 activations
with a power-of-two scale per tensor (calibrated on --calib-images Kodak pictures that are then *not*
used for the measurement, with 2x headroom), int32 accumulation with the bias at the accumulator's
scale, and a rounding right shift back to int16 after each layer.  Simulated by fake quantisation:
every conv input, weight, bias and output is put on its integer grid (exact in float32 for 16-bit
values); the convolution sums themselves run in float32, whose relative error (~1e-7) is far below
the quantisation steps.  No quantisation-aware training: this is the cost before any fine-tuning.

Reports per rate point: bpp and PSNR-YUV for float and fixed, and the BD-rate / BD-PSNR of fixed
against float; the model issue's rule: keep these parts float if fixed loses more than 0.1 dB at
equal rate.  Writes training/results/fixed_point_eval.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn as nn

from .bd_rate import bd_rate
from .codec import RATE_LAMBDAS, Codec
from .data import load_kodak
from .evaluate import evaluate_kodak

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEIGHT_BITS, ACT_BITS = 8, 16
HEADROOM = 2.0  # calibrated max |x| times this must fit the int16 range


def pow2_frac_bits(max_abs: float, bits: int) -> int:
    """Largest f with max_abs * 2^f <= 2^(bits-1) - 1 (the power-of-two scale 2^-f)."""
    if max_abs <= 0:
        return bits - 1
    return int(math.floor(math.log2((2 ** (bits - 1) - 1) / max_abs)))


def quantise(x: torch.Tensor, frac_bits, bits: int) -> torch.Tensor:
    """floor(x * 2^f + 0.5) (what a rounding integer shift gives), clamped to `bits`, back on the float scale."""
    lim = 2 ** (bits - 1)
    q = torch.floor(x * 2.0 ** frac_bits + 0.5).clamp(-lim, lim - 1)
    return q * 2.0 ** (-frac_bits)


def mean_path_convs(model: Codec) -> dict[str, nn.Module]:
    mods = {}
    for comp in ("luma", "chroma"):
        for name, m in getattr(model, comp).hyper_decoder.named_modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                mods[f"{comp}.hyper_decoder.{name}"] = m
    for name, m in model.context_model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            mods[f"context_model.{name}"] = m
    return mods


class FixedPointSimulation:
    """Forward hooks on every conv of the mean path: calibrate, then quantise inputs/weights/outputs."""

    def __init__(self, model: Codec):
        self.model = model
        self.convs = mean_path_convs(model)
        self.in_max = {k: 0.0 for k in self.convs}
        self.out_max = {k: 0.0 for k in self.convs}
        self.mode = "off"
        self.float_weights = {k: (m.weight.data.clone(), None if m.bias is None else m.bias.data.clone())
                              for k, m in self.convs.items()}
        self.frac = {}
        for key, m in self.convs.items():
            m.register_forward_pre_hook(self._pre(key))
            m.register_forward_hook(self._post(key))

    def _pre(self, key):
        def hook(_m, args):
            x = args[0]
            if self.mode == "calibrate":
                self.in_max[key] = max(self.in_max[key], float(x.abs().max()))
            elif self.mode == "fixed":
                return (quantise(x.double(), self.frac[key][0], ACT_BITS).to(x.dtype),)
            return None
        return hook

    def _post(self, key):
        def hook(_m, _args, out):
            if self.mode == "calibrate":
                self.out_max[key] = max(self.out_max[key], float(out.abs().max()))
            elif self.mode == "fixed":
                return quantise(out.double(), self.frac[key][2], ACT_BITS).to(out.dtype)
            return None
        return hook

    def freeze(self):
        """Calibration done: choose the scales and put int8 weights (and int32-grid biases) in place."""
        for key, m in self.convs.items():
            f_in = pow2_frac_bits(self.in_max[key] * HEADROOM, ACT_BITS)
            f_out = pow2_frac_bits(self.out_max[key] * HEADROOM, ACT_BITS)
            w, b = self.float_weights[key]
            # per output channel: Conv2d weight [out, in/g, k, k]; ConvTranspose2d [in, out/g, k, k]
            out_dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
            wmax = w.abs().amax(dim=tuple(d for d in range(w.dim()) if d != out_dim)).double()
            f_w = torch.tensor([pow2_frac_bits(float(v), WEIGHT_BITS) for v in wmax], dtype=torch.float64)
            shape = [1] * w.dim()
            shape[out_dim] = -1
            m.weight.data = quantise(w.double(), f_w.view(shape), WEIGHT_BITS).to(w.dtype)
            if b is not None:  # bias on the accumulator grid 2^-(f_in + f_w), int32
                m.bias.data = quantise(b.double(), (f_in + f_w), 32).to(b.dtype)
            self.frac[key] = (f_in, f_w, f_out)

    def accumulator_bound(self) -> dict[str, float]:
        """Worst-case |accumulator| in int32 units per conv (sum of |w_int| * max |x_int| + |bias|), as a
        fraction of 2^31 - 1: > 1 would mean an int32 overflow is possible."""
        worst = {}
        for key, m in self.convs.items():
            f_in, f_w, _ = self.frac[key]
            w = m.weight.data.double()
            out_dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
            w_int = (w * 2.0 ** f_w.view([-1 if d == out_dim else 1 for d in range(w.dim())])).abs()
            fan = w_int.sum(dim=tuple(d for d in range(w.dim()) if d != out_dim))
            worst[key] = float(fan.max() * 2 ** (ACT_BITS - 1)) / (2 ** 31 - 1)
        return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "training/checkpoints/vr_bop.pt"))
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--images", type=int, default=24, help="Kodak images in total (calibration + test)")
    ap.add_argument("--calib-images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "training/results/fixed_point_eval"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ckpt = torch.load(args.checkpoint, map_location="cpu")
    model = Codec()
    model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    images = load_kodak(args.kodak, args.images)
    calib, test = images[:args.calib_images], images[args.calib_images:]
    rates = list(range(len(RATE_LAMBDAS)))

    sim = FixedPointSimulation(model)
    sim.mode = "calibrate"
    evaluate_kodak(model, calib, rates)
    sim.mode = "off"
    flt = evaluate_kodak(model, test, rates)
    sim.freeze()
    sim.mode = "fixed"
    fix = evaluate_kodak(model, test, rates)

    fb, fp = [flt[r][0] for r in rates], [flt[r][1] for r in rates]
    xb, xp = [fix[r][0] for r in rates], [fix[r][1] for r in rates]
    bdr = bd_rate(fb, fp, xb, xp)
    # BD-PSNR: mean PSNR difference over the overlapping log-rate range (pchip, as bd_rate)
    from scipy.interpolate import PchipInterpolator
    lf, lx = np.log(fb), np.log(xb)
    lo, hi = max(lf.min(), lx.min()), min(lf.max(), lx.max())
    grid = np.linspace(lo, hi, 200)
    of, ox = np.argsort(lf), np.argsort(lx)
    bd_psnr = float(np.mean(PchipInterpolator(lx[ox], np.asarray(xp)[ox])(grid)
                            - PchipInterpolator(lf[of], np.asarray(fp)[of])(grid)))
    acc = sim.accumulator_bound()
    result = {
        "checkpoint": args.checkpoint, "steps": ckpt.get("meta", {}).get("steps"),
        "calibration_images": [n for n, _ in calib], "test_images": [n for n, _ in test],
        "format": {"weights": "int8 per output channel, power-of-two scale", "activations": "int16, power-of-two "
                   "scale per tensor", "accumulator": "int32", "headroom": HEADROOM},
        "per_rate": {r: {"float_bpp": flt[r][0], "float_psnr_yuv": flt[r][1], "fixed_bpp": fix[r][0],
                         "fixed_psnr_yuv": fix[r][1]} for r in rates},
        "bd_rate_fixed_vs_float_pct": bdr, "bd_psnr_fixed_vs_float_db": bd_psnr,
        "worst_accumulator_fraction_of_int32": max(acc.values()),
        "decision": "fixed-point" if bd_psnr >= -0.1 else "keep float (loss > 0.1 dB)",
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [f"# Fixed-point mean path (PTQ simulation): `{args.checkpoint}` steps {result['steps']}", "",
             f"{len(test)} Kodak test images ({len(calib)} others for calibration); int8 weights per output channel, "
             "int16 activations, int32 accumulators, power-of-two scales; no quantisation-aware training.", "",
             "| rate | float bpp | float PSNR-YUV | fixed bpp | fixed PSNR-YUV |", "|---:|---:|---:|---:|---:|"]
    for r in rates:
        lines.append(f"| {r} | {flt[r][0]:.4f} | {flt[r][1]:.3f} | {fix[r][0]:.4f} | {fix[r][1]:.3f} |")
    lines += ["", f"BD-rate fixed vs float: {bdr:+.2f} %; BD-PSNR: {bd_psnr:+.3f} dB; worst-case accumulator "
              f"{max(acc.values()):.3f} of int32 range. Decision (rule: > 0.1 dB loss keeps float): "
              f"**{result['decision']}**."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
