"""Border artefact measure: squared error of the outermost 8 columns / rows on each side divided by the
interior's, per picture and rate point, through the runtime codec (real bytes); reports the median per side.

    python tools/border_error.py [--model vr_bop] [--rates 1,4,6] [--images 24] [--out FILE.json]

Issue 11's acceptance: median <= 1.25 on every side (JPEG at matched rates: bottom 1.16, right 1.08)."""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics

import numpy as np
from PIL import Image

BAND = 8


def side_ratios(orig: np.ndarray, rec: np.ndarray) -> dict[str, float]:
    err = ((orig.astype(np.float64) - rec.astype(np.float64)) ** 2).mean(axis=2)
    interior = err[BAND:-BAND, BAND:-BAND].mean()
    sides = {"top": err[:BAND], "bottom": err[-BAND:], "left": err[:, :BAND], "right": err[:, -BAND:]}
    return {k: float(v.mean() / max(interior, 1e-12)) for k, v in sides.items()}


def main():
    import jpegai_fast

    root = pathlib.Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vr_bop")
    ap.add_argument("--kodak", default=str(root.parent / "shared/datasets/kodak"))
    ap.add_argument("--rates", default="1,4,6")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    enc = jpegai_fast.Encoder(model=args.model, threads=args.threads)
    dec = jpegai_fast.Decoder(model=args.model, threads=args.threads)
    rows = []
    for i in range(1, args.images + 1):
        rgb = np.array(Image.open(pathlib.Path(args.kodak) / f"kodim{i:02d}.png").convert("RGB"))
        for r in (int(x) for x in args.rates.split(",")):
            stream = enc.encode(rgb, rate_point=r)
            rows.append({"image": f"kodim{i:02d}", "rate": r, "bpp": 8 * len(stream) / rgb[..., 0].size,
                         **side_ratios(rgb, dec.decode(stream))})
    med = {s: statistics.median(r[s] for r in rows) for s in ("top", "bottom", "left", "right")}
    out = {"model": args.model, "rates": args.rates, "images": args.images, "median": med, "rows": rows}
    print(json.dumps({"model": args.model, "median": {k: round(v, 3) for k, v in med.items()}}))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
