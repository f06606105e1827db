"""Kodak RD evaluation of an exported model with real bytes, against JPEG and the VVC anchor.

    python -m training.rd_eval --model src/jpegai_fast/models/vr_bop [--images 24] [--rates all]

* Ours: jpegai_fast's encoder -> real rANS codestream -> jpegai_fast's decoder -> 8-bit RGB (chroma
  up-sampled as the anchor's inverse conversion); `--codec reference`: the numpy + ONNX Runtime oracle
  instead (same bytes and integers, tested; ~10x slower). No torch needed.
* JPEG: Pillow, 4:2:0 (subsampling=2), quality sweep --jpeg-qualities, optimize=False; file bytes.
* VVC: ../shared/anchors/vvc/anchor_rgb.csv (same images).
* Metrics exactly as ../shared/anchors/vvc/README.md: RGB-domain; PSNR-YUV = (6·Y + Cb + Cr)/8 on
  BT.709 full-range 4:4:4 Y'CbCr from both RGB images (float, no rounding); MS-SSIM on that Y plane
  (5 scales, weights 0.0448 … 0.1333, Gaussian σ 1.5 truncated at 3.5σ, scipy reflect, K1 .01,
  K2 .03, L 255, 2×2 average pooling, odd last row/column dropped, cs at scales 1–4 and full SSIM
  at 5, each floored at 1e-12); msssim_db = −10·log10(1 − ms-ssim); bpp = 8·bytes / (W·H).
* BD-rate (training/bd_rate.py, pchip on log-rate): computed PER IMAGE (each image's curve of our
  rate points vs that image's JPEG / VVC curve), then the arithmetic mean over the images where the
  quality ranges overlap (the number used is reported). Quality: PSNR-YUV and MS-SSIM-Y (dB).
  RD tables: means over images of per-image values at each rate point / QP / quality.

Writes <out>.json and <out>.md (default training/results/rd_eval).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import pathlib
import time

import numpy as np
from PIL import Image

from jpegai_fast.metrics import rd_metrics

from . import reference_decoder as rd
from .bd_rate import bd_rate

ROOT = pathlib.Path(__file__).resolve().parent.parent
JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
METRICS = ("bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db")  # per point, in every rate table


def metrics(orig, rec, nbytes):
    """rd_eval's per-image figures: jpegai_fast.metrics (the one definition; tests/test_eval.py checks it against
    a scipy-filter oracle)."""
    m = rd_metrics(orig, rec, nbytes)
    return {k: m[k] for k in ("bytes", *METRICS)}


def jpeg_points(rgb, qualities):
    pts = []
    for q in qualities:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=q, subsampling=2, optimize=False)
        rec = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        pts.append({"quality": q, **metrics(rgb, rec, len(buf.getvalue()))})
    return pts


def vvc_points(csv_path, names):
    out = {n: [] for n in names}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            if row["image"] in out:
                out[row["image"]].append({"qp": int(row["qp"]), "bytes": int(row["bytes"]),
                                          **{k: float(row[k]) for k in METRICS}})
    return out


def mean_points(per_image, key):
    keys = sorted({p[key] for pts in per_image.values() for p in pts})
    res = []
    for k in keys:
        rows = [p for pts in per_image.values() for p in pts if p[key] == k]
        res.append({key: k, "images": len(rows),
                    **{m: float(np.mean([r[m] for r in rows])) for m in METRICS}})
    return res


def bd_per_image(test, anchor, quality):
    vals = {}
    for name in test:
        t, a = test[name], anchor.get(name, [])
        if len(a) < 2:
            continue
        try:
            v = bd_rate([p["bpp"] for p in a], [p[quality] for p in a], [p["bpp"] for p in t], [p[quality] for p in t])
        except ValueError:
            v = math.nan
        vals[name] = v
    finite = [v for v in vals.values() if math.isfinite(v)]
    return {"mean_percent": float(np.mean(finite)) if finite else math.nan, "images_used": len(finite),
            "images": len(vals), "per_image": vals}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "src/jpegai_fast/models/vr_bop"))
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--anchor", default=str(ROOT.parent / "shared/anchors/vvc/anchor_rgb.csv"))
    ap.add_argument("--images", type=int, default=24, help="first N of kodim01..24")
    ap.add_argument("--names", default=None, help="comma-separated image names (overrides --images)")
    ap.add_argument("--rates", default="all")
    ap.add_argument("--op", default="bop")
    ap.add_argument("--jpeg-qualities", default=",".join(map(str, JPEG_QUALITIES)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "training/results/rd_eval"))
    ap.add_argument("--codec", default="runtime", choices=["runtime", "reference"],
                    help="runtime: jpegai_fast's encoder/decoder (C++ + ORT; its integers and bytes equal the "
                         "reference's, tests/test_rate_points.py); reference: the numpy oracle (slow)")
    ap.add_argument("--refine", type=int, default=0,
                    help="runtime codec: steps of encoder-side latent refinement (encode(..., refine=N); vm33)")
    ap.add_argument("--baseline", default=None,
                    help="another rd_eval JSON of the same images: adds the per-image BD-rate of this model vs it")
    args = ap.parse_args()

    model = rd.Model(args.model, threads=args.threads)
    if args.codec == "runtime":
        import jpegai_fast

        enc = jpegai_fast.Encoder(args.model, threads=args.threads)
        dec = jpegai_fast.Decoder(args.model, operating_point=args.op, threads=args.threads)

        def code(rgb, r):
            data = enc.encode(rgb, rate_point=r, operating_point=args.op, refine=args.refine)
            return data, dec.decode(data)
    else:
        def code(rgb, r):
            data, _ = rd.encode_bitstream(model, rgb, r, args.op)
            return data, rd.decode_bitstream(model, data)["rgb"]
    names = args.names.split(",") if args.names else [f"kodim{i:02d}" for i in range(1, args.images + 1)]
    rates = list(range(model.num_rates)) if args.rates == "all" else [int(r) for r in args.rates.split(",")]
    qualities = [int(q) for q in args.jpeg_qualities.split(",")]
    ours, jpeg = {}, {}
    t0 = time.time()
    for name in names:
        rgb = np.array(Image.open(pathlib.Path(args.kodak) / f"{name}.png").convert("RGB"))
        ours[name] = []
        for r in rates:
            data, rec = code(rgb, r)
            ours[name].append({"rate": r, **metrics(rgb, rec, len(data))})
        jpeg[name] = jpeg_points(rgb, qualities)
        print(f"{name}: " + ", ".join(f"r{p['rate']} {p['bpp']:.3f} bpp {p['psnr_yuv']:.2f} dB" for p in ours[name])
              + f"  ({time.time() - t0:.0f} s)", flush=True)
    vvc = vvc_points(args.anchor, names)
    res = {"model": args.model, "op": args.op, "images": len(names), "image_names": names, "rates": rates,
           "bd_method": "per-image BD-rate (pchip on log-rate over the overlapping quality range), then the mean "
                        "over images with overlap; negative = ours needs less rate",
           "ours": {"per_image": ours, "mean_points": mean_points(ours, "rate")},
           "jpeg": {"qualities": qualities, "per_image": jpeg, "mean_points": mean_points(jpeg, "quality")},
           "vvc": {"per_image": vvc, "mean_points": mean_points(vvc, "qp")},
           "bd_rate": {f"vs_{an}_{q}": bd_per_image(ours, anc, q)
                       for an, anc in (("jpeg", jpeg), ("vvc", vvc)) for q in ("psnr_yuv", "msssim_db")}}
    res["bd_rate"]["vvc_vs_jpeg_psnr_yuv"] = bd_per_image(vvc, jpeg, "psnr_yuv")  # sanity check of the tooling
    res["codec"] = args.codec
    res["refine"] = args.refine
    if args.baseline:
        base = json.loads(pathlib.Path(args.baseline).read_text())
        res["baseline"] = base["model"]
        for q in ("psnr_yuv", "msssim_db"):
            res["bd_rate"][f"vs_baseline_{q}"] = bd_per_image(ours, base["ours"]["per_image"], q)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")

    md = [f"# Kodak RD: `{args.model}` ({args.op})", "",
          f"{len(names)} images ({', '.join(names)}); real codestream bytes; metrics as "
          "../shared/anchors/vvc/README.md (RGB domain). Means of per-image values.", "",
          "## Ours", "", "| rate point | bpp | PSNR-YUV | PSNR-Y | MS-SSIM-Y | MS-SSIM-Y (dB) |",
          "|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {p['rate']} | {p['bpp']:.4f} | {p['psnr_yuv']:.3f} | {p['psnr_y']:.3f} | {p['msssim_y']:.4f} "
           f"| {p['msssim_db']:.2f} |" for p in res["ours"]["mean_points"]]
    for label, key, col in (("JPEG (Pillow 4:2:0)", "jpeg", "quality"), ("VVC anchor (vvenc medium)", "vvc", "qp")):
        md += ["", f"## {label}", "", f"| {col} | bpp | PSNR-YUV | PSNR-Y | MS-SSIM-Y | MS-SSIM-Y (dB) |",
               "|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {p[col]} | {p['bpp']:.4f} | {p['psnr_yuv']:.3f} | {p['psnr_y']:.3f} | {p['msssim_y']:.4f} "
               f"| {p['msssim_db']:.2f} |" for p in res[key]["mean_points"]]
    md += ["", "## BD-rate (per image, then mean; negative = fewer bits than the anchor)", "",
           "| comparison | BD-rate % | images with overlap |", "|---|---:|---:|"]
    md += [f"| {k} | {v['mean_percent']:.2f} | {v['images_used']}/{v['images']} |" for k, v in res["bd_rate"].items()]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
