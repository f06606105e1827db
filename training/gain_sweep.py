"""Does a rate point climb if its quantiser gains grow?  A diagnostic for the top of the ladder.

    python -m training.gain_sweep [--checkpoint training/checkpoints/vm33.pt] [--rate -1] [--deltas 0,0.5,1,2]

Adds each delta to the log2 gains (luma and chroma) of one rate point of a vm33 checkpoint and reports the
mean PSNR-YUV and estimated bpp (torch forward, entropy-model bits, no stream) on a few Kodak images.  When the
PSNR stops rising while the bits keep growing, the networks cannot use finer latents at that point, and the
ladder has to be extended for them to learn it (training/README.md, step 50,896).
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
from PIL import Image

from . import vm_codec
from .colour import psnr, rgb_to_yuv420, yuv_mse

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load(path) -> vm_codec.VMCodec:
    ck = torch.load(path, map_location="cpu")
    return vm_codec.from_checkpoint(ck)


def psnr_yuv_bpp(model, rgb: np.ndarray, rate: int) -> tuple[float, float]:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    y, uv = rgb_to_yuv420(x)
    with torch.no_grad():
        y_rec, uv_rec, bits = model(y, uv, torch.tensor([rate]), "bop")
        p = psnr(yuv_mse(y_rec.clamp(0, 255), uv_rec.clamp(0, 255), y, uv))[0]
    return float(6 * p[0] + p[1] + p[2]) / 8, float(bits) / (y.shape[-1] * y.shape[-2])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "training/checkpoints/vm33.pt"))
    ap.add_argument("--rate", type=int, default=-1, help="rate point index (-1: the last)")
    ap.add_argument("--deltas", default="0,0.5,1,2", help="log2 gain offsets")
    ap.add_argument("--images", default="1,4,13,23", help="Kodak image numbers")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    rate = args.rate % model.luma.gain.log2_gain.shape[0]
    pictures = [np.array(Image.open(pathlib.Path(args.kodak) / f"kodim{int(i):02d}.png").convert("RGB"))
                for i in args.images.split(",")]
    base = {unit: unit.log2_gain.data[rate].clone() for unit in (model.luma.gain, model.chroma.gain)}
    for delta in (float(d) for d in args.deltas.split(",")):
        for unit, row in base.items():
            unit.log2_gain.data[rate] = row + delta
        res = [psnr_yuv_bpp(model, rgb, rate) for rgb in pictures]
        print(f"rate {rate} log2 gain {delta:+.2f}: {np.mean([r[0] for r in res]):.3f} dB PSNR-YUV, "
              f"{np.mean([r[1] for r in res]):.4f} bpp ({len(res)} images)", flush=True)


if __name__ == "__main__":
    main()
