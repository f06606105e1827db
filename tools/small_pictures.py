"""Small pictures against the same pixels inside the whole photo (issue 15: within 1 dB at the same rate point).

    python tools/small_pictures.py [--rate-point 7] [--margins 0,16,32,64]

For crops of skimage's astronaut (1x64 ... 70x50 at three places) prints PSNR-RGB of: the crop decoded from
the whole photo's stream ("inside"), and the crop coded alone after reflecting it SMALL_MARGIN-style into m more
rows/columns on the bottom/right (m = 0: coded as is, edge-extended to even sides).  The margin is applied by
hand here, with the encoder's own small-picture rule switched off (SMALL_SIDE = 0), so every margin is measured
the same way; the last column is jpegai_fast.encode as shipped.
"""
import argparse

import numpy as np
from skimage import data

import jpegai_fast
from jpegai_fast import encoder

SIZES = [(1, 64), (64, 1), (3, 3), (5, 120), (8, 8), (12, 40), (30, 30), (70, 50)]
PLACES = [(200, 150), (100, 300), (350, 50)]


def psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate-point", type=int, default=7)
    ap.add_argument("--margins", default="0,16,32,64")
    args = ap.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    img = data.astronaut()
    rp = args.rate_point
    full = jpegai_fast.decode(jpegai_fast.encode(img, rate_point=rp))
    print(f"rate point {rp}; PSNR-RGB dB of the crop; margins bottom/right, reflected")
    print("place      size      inside  " + "  ".join(f"m={m:<4d}" for m in margins) + "  shipped  worst-vs-inside")
    shipped_side = encoder.SMALL_SIDE
    worst = 0.0
    for y, x in PLACES:
        for h, w in SIZES:
            crop = np.ascontiguousarray(img[y:y + h, x:x + w])
            inside = psnr(crop, full[y:y + h, x:x + w])
            row = []
            encoder.SMALL_SIDE = 0
            try:
                for m in margins:
                    ext = np.pad(crop, ((0, m), (0, m), (0, 0)), mode="symmetric") if m else crop
                    row.append(psnr(crop, jpegai_fast.decode(jpegai_fast.encode(ext, rate_point=rp))[:h, :w]))
            finally:
                encoder.SMALL_SIDE = shipped_side
            shipped = psnr(crop, jpegai_fast.decode(jpegai_fast.encode(crop, rate_point=rp)))
            worst = min(worst, shipped - inside)
            print(f"{y:3d},{x:<3d}  {h:3d}x{w:<4d}  {inside:6.2f}  " + "  ".join(f"{v:6.2f}" for v in row)
                  + f"  {shipped:7.2f}  {shipped - inside:+.2f}")
    print(f"shipped rule: worst {worst:+.2f} dB against the same pixels inside the photo")


if __name__ == "__main__":
    main()
