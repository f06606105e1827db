"""Kodak evaluation with real rounding: bpp from the rate model (residuals + z), PSNR-YUV 6:1:1.

    python -m training.evaluate --checkpoint training/checkpoints/vr_bop.pt [--images 24] [--rates all]
    python -m training.evaluate --checkpoint training/checkpoints/vm33.pt --shared-analysis   # A/B: every rate
        point through the shared analysis, also where the checkpoint has a high-rate one
    python -m training.evaluate --checkpoint NEW.pt --baseline OLD.pt --images 6 --rates 0,1,2,3,4,5   # the gain
        at equal rate: each rate point of NEW against OLD's curve through the same rate points (log-bpp)
"""
import argparse

import numpy as np
import torch

from .codec import RATE_LAMBDAS, Codec
from .colour import psnr_yuv, rgb_to_yuv420, yuv_mse
from .data import load_kodak


@torch.no_grad()
def evaluate_kodak(model, images, rate_indices, op="bop", device="cpu"):
    """-> {rate_idx: (mean bpp, mean PSNR-YUV)} over `images` (list of (name, uint8 [3,H,W]))."""
    was_training = model.training
    model.eval()
    results = {}
    for r in rate_indices:
        bpp, psnr = [], []
        for _, rgb in images:
            y, uv = rgb_to_yuv420(rgb[None].float().to(device))
            y_rec, uv_rec, bits = model(y, uv, torch.tensor([r], device=device), op)
            mse3 = yuv_mse(y_rec.float().clamp(0, 255), uv_rec.float().clamp(0, 255), y, uv)
            bpp.append(float(bits[0]) / (y.shape[-2] * y.shape[-1]))
            psnr.append(float(psnr_yuv(mse3)[0]))
        results[r] = (sum(bpp) / len(bpp), sum(psnr) / len(psnr))
    model.train(was_training)
    return results


def gain_at_equal_rate(new: dict, base: dict) -> dict:
    """{rate: (bpp, PSNR)} of two checkpoints -> {rate: dB of ``new`` above ``base``'s curve at ``new``'s bpp}
    (``base`` interpolated linearly in log bpp, extrapolated from its end segments)."""
    pts = sorted(base.values())
    lb, q = np.log([b for b, _ in pts]), np.array([p for _, p in pts])
    out = {}
    for r, (bpp, psnr) in new.items():
        x = np.log(bpp)
        k = int(np.clip(np.searchsorted(lb, x) - 1, 0, len(lb) - 2))
        t = (x - lb[k]) / (lb[k + 1] - lb[k])
        out[r] = psnr - (q[k] + t * (q[k + 1] - q[k]))
    return out


def load_model(path: str, shared_analysis=False, pre_emphasis=None):
    """-> (model, rate lambdas) of a training checkpoint."""
    ck = torch.load(path, map_location="cpu")
    lambdas = RATE_LAMBDAS
    if ck.get("meta", {}).get("model") == "vm33":  # the VM 3.3-based model (training/vm_codec.py)
        from .vm_codec import VM_RATE_LAMBDAS, from_checkpoint

        lambdas = tuple(ck["meta"].get("rate_lambdas", VM_RATE_LAMBDAS))  # the ladder it was trained with
        model = from_checkpoint(ck, analysis_hi_from=None) if shared_analysis else from_checkpoint(ck)
        model.pre_emphasis = float(ck["meta"].get("pre_emphasis_train", 0.0) if pre_emphasis is None
                                   else pre_emphasis)
    else:
        model = Codec()
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()})
    return model, lambdas


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--kodak", default="../shared/datasets/kodak")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--rates", default="all", help="comma-separated rate indices or 'all'")
    ap.add_argument("--op", default="bop", choices=["bop", "sop"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pre-emphasis", type=float, default=None,
                    help="vm33 with a high-rate analysis: its rate points coded from the pre-emphasised picture "
                         "(β, as the runtime encoder's card sets it, e.g. 0.3); default: as the checkpoint trained")
    ap.add_argument("--shared-analysis", action="store_true",
                    help="vm33 with a high-rate analysis: code every rate point through the shared one (an A/B of it)")
    ap.add_argument("--baseline", default=None,
                    help="a second checkpoint: print each rate point's PSNR-YUV gain at equal rate against its curve")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, lambdas = load_model(args.checkpoint, args.shared_analysis, args.pre_emphasis)
    rates = range(len(lambdas)) if args.rates == "all" else [int(r) for r in args.rates.split(",")]
    images = load_kodak(args.kodak, args.images)
    res = evaluate_kodak(model, images, rates, args.op)
    for r, (bpp, psnr) in res.items():
        print(f"rate {r} lambda {lambdas[r]:g}: {bpp:.4f} bpp, PSNR-YUV {psnr:.3f} dB ({len(images)} images)")
    if args.baseline:
        base_model, _ = load_model(args.baseline, args.shared_analysis, args.pre_emphasis)
        base = evaluate_kodak(base_model, images, rates, args.op)
        gains = gain_at_equal_rate(res, base)
        for r, g in gains.items():
            print(f"rate {r}: baseline {base[r][0]:.4f} bpp {base[r][1]:.3f} dB; at equal rate {g:+.3f} dB")
        print(f"mean gain at equal rate {np.mean(list(gains.values())):+.3f} dB over rate points {list(rates)}")

if __name__ == "__main__":
    main()
