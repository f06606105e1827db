"""Training pool (decoded once into RAM as uint8), a portable pool subset, and Kodak loading.

    python -m training.data --out DIR [--per-photo 1] [--size 320]   # ~44 MB subset
"""
import argparse
import collections
import pathlib

import numpy as np
import torch
from PIL import Image

# Eval subset: varied content, two portrait images (04, 19); the rest of Kodak follows in order.
KODAK_EVAL_ORDER = ("kodim01", "kodim04", "kodim08", "kodim14", "kodim19", "kodim23")


def _load_rgb(path):
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def photo_id(name: str) -> str:
    """Crop file names are <source>__<photo>__<hash>__y<Y>x<X>.jpg; crops of one photo share the prefix."""
    return name.rsplit("__", 1)[0]


def pool_files(root, per_photo=0):
    """Sorted training crops; with per_photo > 0 only the first `per_photo` crops of each photo."""
    files = sorted(pathlib.Path(root).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no .jpg training crops in {root}")
    if per_photo > 0:
        by_photo = collections.defaultdict(list)
        for f in files:
            by_photo[photo_id(f.name)].append(f)
        files = [f for group in by_photo.values() for f in group[:per_photo]]
    return files


def detail_rms(rgb: torch.Tensor) -> float:
    """RMS of the 5-point Laplacian of BT.709 luma (0-255) over a uint8 [3,H,W] picture: how much fine detail it
    holds.  Kodak's photos read 18-49; a third of the training pool reads below 18 (sky, bokeh, wallpapers)."""
    y = (0.2126 * rgb[0].float() + 0.7152 * rgb[1].float() + 0.0722 * rgb[2].float())
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.square().mean().sqrt())


class TrainPool:
    """All (or `per_photo` crops per source photo of) the training crops, decoded to uint8 in RAM
    so a training step never pays for JPEG decoding.  min_detail > 0 keeps only the crops whose `detail_rms`
    reaches it (the high-rate analysis learns detail; flat crops teach it little)."""

    def __init__(self, root, per_photo=0, min_detail=0.0):
        files = pool_files(root, per_photo)
        images = [_load_rgb(f) for f in files]
        if min_detail > 0:
            kept = [i for i, im in enumerate(images) if detail_rms(im) >= min_detail]
            if not kept:
                raise ValueError(f"no training crop in {root} reaches detail {min_detail}")
            files, images = [files[i] for i in kept], [images[i] for i in kept]
        self.images = images
        self.photos = len({photo_id(f.name) for f in files})

    def __len__(self):
        return len(self.images)

    def nbytes(self):
        return sum(im.numel() for im in self.images)

    def batch(self, n, size, gen):
        """n random size x size crops with random horizontal/vertical flips -> float [n,3,size,size], 0-255."""
        out = torch.empty(n, 3, size, size)
        for i, k in enumerate(torch.randint(len(self.images), (n,), generator=gen).tolist()):
            im = self.images[k]
            top = int(torch.randint(im.shape[1] - size + 1, (1,), generator=gen))
            left = int(torch.randint(im.shape[2] - size + 1, (1,), generator=gen))
            patch = im[:, top:top + size, left:left + size]
            flips = [d for d, f in ((2, torch.rand(1, generator=gen) < 0.5),
                                    (1, torch.rand(1, generator=gen) < 0.5)) if f]
            out[i] = (patch.flip(flips) if flips else patch).float()
        return out


def load_kodak(root, count):
    """The first `count` Kodak images in KODAK_EVAL_ORDER, then kodim01..24 -> list of (name, uint8 [3,H,W])."""
    root = pathlib.Path(root)
    names = list(KODAK_EVAL_ORDER) + sorted(p.stem for p in root.glob("kodim*.png")
                                            if p.stem not in KODAK_EVAL_ORDER)
    return [(name, _load_rgb(root / f"{name}.png")) for name in names[:count]]


def write_subset(root, out, per_photo, size):
    """Centre size x size crops of `per_photo` crops per photo, re-encoded as JPEG q95 4:4:4, so a
    pool that fits a small transfer (the whole pool is 173 MB) keeps every source photo."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = pool_files(root, per_photo)
    for f in files:
        with Image.open(f) as im:
            left, top = (im.width - size) // 2, (im.height - size) // 2
            im.convert("RGB").crop((left, top, left + size, top + size)).save(
                out / f.name, quality=95, subsampling=0)
    return len(files), sum((out / f.name).stat().st_size for f in files)


def main():
    ap = argparse.ArgumentParser(description="Write a portable subset of the training pool.")
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-photo", type=int, default=1)
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args()
    n, nbytes = write_subset(args.data, args.out, args.per_photo, args.size)
    print(f"{n} crops, {nbytes / 1e6:.1f} MB in {args.out}")


if __name__ == "__main__":
    main()
