"""BD-rate against the VVC anchor of the default quality ladder (``jpegai_fast.encoder.default_ladder``): the
rate points each shipped model wins at, per Kodak image, taken from the models' 24-image ``training.rd_eval``
records (real bytes).  This is the curve ``encode(quality=...)`` users get; each model alone is printed beside it.

    python tools/ladder_bd.py            # reads training/results/rd_eval_vm33.json and training/results/rd_eval.json
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="bop", choices=("bop", "sop"))
    a = ap.parse_args(argv)
    from jpegai_fast.encoder import default_ladder

    records = {name: json.loads((ROOT / path).read_text()) for name, path in RECORDS.items()}
    ladder = default_ladder(a.op)
    print("ladder:", ", ".join(f"q{q} {name} r{rate}" for q, name, rate in ladder))
    for metric in ("psnr_yuv", "msssim_db"):
        bd = ladder_bd(records, ladder, metric)
        print(f"BD-rate vs VVC, {metric}: " + ", ".join(f"{k} {v:+.2f} %" for k, v in bd.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
