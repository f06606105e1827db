"""``jpegai-fast eval DIR``: rate-distortion figures of a folder of images, as training/rd_eval.py computes them.

    jpegai-fast eval ../shared/datasets/kodak                      # every trained rate point (rd_eval's default)
    jpegai-fast eval photos/ --bpp 0.1,0.25 --json                 # rate control to each target
    jpegai-fast eval photos/ --quality 30,68,90 --plot rd.png      # quality 0..100; an RD plot (matplotlib)

For each target every image is encoded and decoded (the encoder's and decoder's own bytes and pixels: real
codestreams), and the means over the images of the per-image bpp, PSNR-YUV (6:1:1), PSNR-Y, PSNR-RGB, MS-SSIM-Y
(:mod:`jpegai_fast.metrics`, rd_eval's definitions) and encode / decode times are reported.  Targets:
``--rate-point`` (a list, or ``all``: what rd_eval's ``--rates`` takes, and its default), ``--quality``
(0–100) or ``--bpp`` (rate control; with the default model, the shipped model measured best at each target,
as ``encode --bpp``).  ``--model`` names the model (rd_eval's ``--model``; default vr_bop).  Timing: one untimed
warm-up picture first (session creation), then each encode (with its rate control) and decode is timed alone.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from typing import Any

import numpy as np

__all__ = ["main", "evaluate", "parse_targets"]

_FIGURES = ("bpp", "psnr_yuv", "psnr_y", "psnr_rgb", "msssim_y", "msssim_db", "encode_s", "decode_s")


def parse_targets(kind: str, text: str, num_rates: int) -> list[tuple[str, float]]:
    """"0.1,0.25" -> [(kind, 0.1), (kind, 0.25)]; rate points: ints, or "all"."""
    if kind == "rate_point" and text.strip() == "all":
        return [("rate_point", r) for r in range(num_rates)]
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise ValueError(f"--{kind.replace('_', '-')}: a comma-separated list of numbers, got {text!r}") from e
    if not values:
        raise ValueError(f"--{kind.replace('_', '-')}: no values")
    for v in values:
        if kind == "rate_point" and (v != int(v) or not 0 <= v < num_rates):
            raise ValueError(f"--rate-point: integers in 0 .. {num_rates - 1} (or all), got {v:g}")
        if kind == "quality" and not 0 <= v <= 100:
            raise ValueError(f"--quality: values in 0 .. 100, got {v:g}")
        if kind == "bpp" and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--bpp: positive values, got {v:g}")
    return [(kind, int(v) if kind == "rate_point" else v) for v in values]


def _label(kind: str, value: float) -> str:
    return {"rate_point": f"rate point {value}", "quality": f"quality {value:g}", "bpp": f"{value:g} bpp"}[kind]


def evaluate(images: list[tuple[str, np.ndarray]], targets: list[tuple[str, float]], model: str = "default",
             operating_point: str = "bop", threads: int | None = None, progress=None) -> list[dict]:
    """For each (kind, value) target: encode + decode every (name, uint8 RGB) image -> [{"target": {kind: value},
    "model": name, "mean": {figure: mean over the images}, "per_image": [{"image": name, "bytes", figures...}]}].
    ``model="default"``: with ``bpp`` targets the shipped model measured best at each (``model_for_bpp``), with
    ``quality`` the default ladder's model (``encoder.default_quality``, as ``encode`` picks it), with
    ``rate_point`` the default model."""
    from .decoder import Decoder
    from .encoder import Encoder, default_quality
    from .metrics import rd_metrics
    from .model import model_for_bpp

    coders: dict[str, tuple[Encoder, Decoder]] = {}

    def coder(name: str) -> tuple[Encoder, Decoder]:
        if name not in coders:
            enc = Encoder(name, threads=threads)
            dec = Decoder(model=enc.model, operating_point=operating_point)  # shares the sessions
            warm = images[0][1][:64, :64]  # untimed: session creation and first-run allocation are not coding time
            dec.decode(enc.encode(np.ascontiguousarray(warm), rate_point=0, operating_point=operating_point))
            coders[name] = enc, dec
        return coders[name]

    results = []
    for kind, value in targets:
        name, coded = model, value
        if kind == "bpp" and model == "default":
            name = model_for_bpp(float(value), operating_point)
        elif kind == "quality" and model == "default":  # the default ladder, as encode() picks it
            name, coded = default_quality(float(value), operating_point)
        enc, dec = coder(name)
        rows = []
        for img_name, rgb in images:
            t0 = time.perf_counter()
            kwargs: dict[str, Any] = {kind: coded}
            data = enc.encode(rgb, operating_point=operating_point, **kwargs)
            t1 = time.perf_counter()
            rec = dec.decode(data)
            t2 = time.perf_counter()
            rows.append({"image": img_name, **rd_metrics(rgb, rec, len(data)), "encode_s": t1 - t0,
                         "decode_s": t2 - t1})
            if progress is not None:
                progress(f"{_label(kind, value)}: {img_name}")
        mean = {k: float(np.mean([r[k] for r in rows])) for k in _FIGURES}
        results.append({"target": {kind: value}, "model": enc.model.name, "images": len(rows), "mean": mean,
                        "per_image": rows})
    return results


def _table(results: list[dict]) -> str:
    head = ("| target | model | images | bpp | PSNR-YUV | PSNR-Y | PSNR-RGB | MS-SSIM-Y | MS-SSIM-Y (dB) | encode s "
            "| decode ms |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        (kind, value), m = next(iter(r["target"].items())), r["mean"]
        lines.append(f"| {_label(kind, value)} | {r['model']} | {r['images']} | {m['bpp']:.4f} | {m['psnr_yuv']:.3f} "
                     f"| {m['psnr_y']:.3f} | {m['psnr_rgb']:.3f} | {m['msssim_y']:.4f} | {m['msssim_db']:.2f} "
                     f"| {m['encode_s']:.2f} | {1e3 * m['decode_s']:.1f} |")
    return "\n".join(lines)


def plot(results: list[dict], path: str, title: str) -> None:
    """RD curves (mean bpp vs mean PSNR-YUV and MS-SSIM-Y dB), one line per model; needs matplotlib."""
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in dict.fromkeys(r["model"] for r in results):
        pts = sorted((r["mean"]["bpp"], r["mean"]["psnr_yuv"], r["mean"]["msssim_db"])
                     for r in results if r["model"] == model)
        for ax, k in zip(axes, (1, 2)):
            ax.plot([p[0] for p in pts], [p[k] for p in pts], "o-", label=model)
    for ax, ylabel in zip(axes, ("PSNR-YUV 6:1:1 (dB)", "MS-SSIM-Y (dB)")):
        ax.set_xlabel("bpp")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    from .__main__ import IMAGE_EXTS, _load_rgb

    ap = argparse.ArgumentParser(prog="jpegai-fast eval", description="RD evaluation of a folder of images "
                                 "(bpp, PSNR-YUV 6:1:1, PSNR-RGB, MS-SSIM-Y as training/rd_eval.py; encode / "
                                 "decode times)")
    ap.add_argument("input", help="a folder of images (every file with an image extension) or one image")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--rate-point", help="comma-separated trained rate points, or all (the default; rd_eval --rates)")
    g.add_argument("--quality", help="comma-separated qualities, 0..100")
    g.add_argument("--bpp", help="comma-separated bpp targets (rate control; the best shipped model per target "
                   "unless --model)")
    ap.add_argument("--model", default="default", help="a shipped model's name or a model directory (default: "
                    "vr_bop; with --bpp, the shipped model measured best at each target)")
    ap.add_argument("--op", choices=("bop", "sop"), default="bop", help="synthesis operating point (encode + decode)")
    ap.add_argument("--threads", type=int, default=None, help="default: all cores (results do not depend on it)")
    ap.add_argument("--limit", type=int, default=None, help="the first N images only (sorted by name)")
    ap.add_argument("--drop-alpha", action="store_true", help="code pictures with alpha without it")
    ap.add_argument("--json", action="store_true", help="print one JSON document (means and per-image figures)")
    ap.add_argument("--plot", metavar="PNG", help="write an RD plot here (needs matplotlib)")
    a = ap.parse_args(argv)
    src = pathlib.Path(a.input)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    elif src.is_file():
        files = [src]
    else:
        raise SystemExit(f"{src}: no such file or directory")
    if a.limit is not None:
        files = files[:max(a.limit, 0)]
    if not files:
        raise SystemExit(f"{src}: no images")
    from .model import Model

    num_rates = Model("default" if a.model == "default" else a.model).num_rates
    kind, text = next(((k, v) for k, v in (("bpp", a.bpp), ("quality", a.quality), ("rate_point", a.rate_point))
                       if v is not None), ("rate_point", "all"))
    try:
        targets = parse_targets(kind, text, num_rates)
    except ValueError as e:
        ap.error(str(e))
    images = [(p.stem, _load_rgb(p, "drop" if a.drop_alpha else "refuse")) for p in files]
    say = None if a.json else (lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    results = evaluate(images, targets, a.model, a.op, a.threads, progress=say)
    doc = {"input": str(src), "images": [n for n, _ in images], "op": a.op, "results": results,
           "metrics": "as training/rd_eval.py: BT.709 full-range Y'CbCr 4:4:4 from RGB (float, no rounding); "
                      "PSNR-YUV = (6 Y + Cb + Cr) / 8; MS-SSIM on Y; means over the images of per-image values",
           "seconds": time.perf_counter() - t0}
    if a.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{src}: {len(images)} images, {a.op.upper()}, means of per-image values")
        print(_table(results))
    if a.plot:
        plot(results, a.plot, f"{src.name}: {len(images)} images, {a.op.upper()}")
    return 0
