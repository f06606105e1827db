"""BD-rate against the VVC anchor of the default quality ladder (``jpegai_fast.encoder.default_ladder``): the
rate points each shipped model wins at, per Kodak image, taken from the models' 24-image ``training.rd_eval``
records (real bytes).  This is the curve ``encode(quality=...)`` users get; each model alone is printed beside it.

    python tools/ladder_bd.py            # reads training/results/rd_eval_vm33.json and training/results/rd_eval.json
    python tools/ladder_bd.py --photos   # also: encode 6 Kodak photos at qualities 20 … 90 through the ladder
                                         # and through vr_bop's own table (the mapping before the ladder)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.bd_rate import bd_rate  # noqa: E402

RECORDS = {"vm33": "training/results/rd_eval_vm33.json", "vr_bop": "training/results/rd_eval.json"}


def ladder_bd(records: dict[str, dict], ladder, metric: str) -> dict[str, float]:
    """Mean per-image BD-rate (%) vs VVC of each model's own points and of the ladder's points."""
    first = next(iter(records.values()))
    out: dict[str, list[float]] = {name: [] for name in records}
    out["ladder"] = []
    for img in first["image_names"]:
        vvc = first["vvc"]["per_image"][img]
        anchor = ([p["bpp"] for p in vvc], [p[metric] for p in vvc])
        points = {name: {p["rate"]: p for p in rec["ours"]["per_image"][img]} for name, rec in records.items()}
        curves = {name: list(pts.values()) for name, pts in points.items()}
        curves["ladder"] = [points[name][rate] for _, name, rate in ladder]
        for name, pts in curves.items():
            pts = sorted(pts, key=lambda p: p["bpp"])
            out[name].append(bd_rate(*anchor, [p["bpp"] for p in pts], [p[metric] for p in pts]))
    return {name: float(np.nanmean(v)) for name, v in out.items()}


PHOTOS = ("kodim01", "kodim04", "kodim07", "kodim13", "kodim19", "kodim23")
QUALITIES = (20, 38, 50, 60, 70, 90)


def photos_table(kodak: pathlib.Path) -> list[str]:
    """Mean bpp / PSNR-YUV of ``encode(quality=q)`` (the ladder) and of vr_bop's own quality table, 1 thread."""
    from PIL import Image

    import jpegai_fast
    from jpegai_fast.metrics import rd_metrics

    vr_bop = jpegai_fast.Encoder("vr_bop", threads=1)
    rgbs = [np.asarray(Image.open(kodak / f"{n}.png").convert("RGB")) for n in PHOTOS]
    lines = ["| quality | ladder: model | bpp | PSNR-YUV | vr_bop's table: bpp | PSNR-YUV |",
             "|---:|---|---:|---:|---:|---:|"]
    for q in QUALITIES:
        rows = {"ladder": [], "vr_bop": []}
        for rgb in rgbs:
            for key, data in (("ladder", jpegai_fast.encode(rgb, quality=q, threads=1)),
                              ("vr_bop", vr_bop.encode(rgb, quality=q))):
                m = rd_metrics(rgb, jpegai_fast.decode(data, threads=1), len(data), with_msssim=False)
                rows[key].append((m["bpp"], m["psnr_yuv"]))
        (lb, lp), (vb, vp) = (np.mean(rows[k], axis=0) for k in ("ladder", "vr_bop"))
        from jpegai_fast.encoder import default_quality

        lines.append(f"| {q} | {default_quality(q)[0]} | {lb:.3f} | {lp:.2f} | {vb:.3f} | {vp:.2f} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="bop", choices=("bop", "sop"))
    ap.add_argument("--photos", action="store_true", help="also encode 6 Kodak photos through both mappings")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    a = ap.parse_args(argv)
    from jpegai_fast.encoder import default_ladder

    records = {name: json.loads((ROOT / path).read_text()) for name, path in RECORDS.items()}
    ladder = default_ladder(a.op)
    print("ladder:", ", ".join(f"q{q} {name} r{rate}" for q, name, rate in ladder))
    for metric in ("psnr_yuv", "msssim_db"):
        bd = ladder_bd(records, ladder, metric)
        print(f"BD-rate vs VVC, {metric}: " + ", ".join(f"{k} {v:+.2f} %" for k, v in bd.items()))
    if a.photos:
        print(f"\n{len(PHOTOS)} Kodak photos ({', '.join(PHOTOS)}), means:")
        print("\n".join(photos_table(pathlib.Path(a.kodak))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
