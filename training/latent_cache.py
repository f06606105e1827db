"""Latents of the frozen VM 3.3 analysis for every training crop, cached once.

    python -m training.latent_cache [--data ../shared/datasets/train] [--out training/cache/vm33_latents.pt]

While the analysis is frozen (stage 1 of the VM-based recipe, see training/README.md) a training step
needs only y, not the pixels through the analysis: the analysis is ~60 kMAC/px of the ~70 kMAC/px of a
forward pass, so caching it makes a CPU step several times cheaper. Crops are then cut on the latent
grid (16-pixel aligned) together with the matching pixels. The cache is rebuilt when the pool or
the analysis weights change (their fingerprint is stored with it); it lives in an ignored folder.
"""
import argparse
import hashlib
import pathlib
import time

import torch

from . import vm33
from .colour import rgb_to_yuv420
from .data import _load_rgb, pool_files

DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "cache" / "vm33_latents.pt"


def fingerprint(files, analysis_state):
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
    for k, v in sorted(analysis_state.items()):
        h.update(k.encode())
        h.update(v.detach().float().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


@torch.no_grad()
def build(files, luma_analysis, chroma_analysis, batch=4, log_every=100):
    ys, cs, ims = [], [], []
    t0 = time.time()
    for i in range(0, len(files), batch):
        rgb = torch.stack([_load_rgb(f) for f in files[i:i + batch]])
        y, uv = rgb_to_yuv420(rgb.float())
        ys.append(luma_analysis(y))
        cs.append(chroma_analysis(vm33.chroma_analysis_input(y, uv)))
        ims.append(rgb)
        if (i // batch) % max(1, log_every // batch) == 0:
            print(f"{i + len(rgb)}/{len(files)} crops, {time.time() - t0:.0f} s", flush=True)
    return torch.cat(ims), torch.cat(ys), torch.cat(cs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = pool_files(args.data)
    luma, chroma = vm33.load_graph("single_encode_y").eval(), vm33.load_graph("single_encode_uv").eval()
    state = {**{"l." + k: v for k, v in luma.state_dict().items()},
             **{"c." + k: v for k, v in chroma.state_dict().items()}}
    images, y, c = build(files, luma, chroma)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"fingerprint": fingerprint(files, state), "images": images, "y_luma": y, "y_chroma": c}, tmp)
    tmp.replace(out)
    print(f"{len(files)} crops -> {out} ({out.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()


class LatentPool:
    """Training crops with their cached frozen-analysis latents: crops are cut at multiples of 32 pixels
    (the chroma latent grid), so the latent crop is exactly the latents of those pixels' positions. The
    latents are those of the whole 512-pixel crop (context beyond the training crop included); crops at
    offset 0 or at the far edge keep the pool crop's real borders."""

    def __init__(self, path=DEFAULT_OUT):
        data = torch.load(path, map_location="cpu")
        self.images, self.y_luma, self.y_chroma = data["images"], data["y_luma"], data["y_chroma"]
        self.fingerprint = data["fingerprint"]

    def __len__(self):
        return len(self.images)

    @staticmethod
    def _offset(span, gen):
        """A crop offset in 32-pixel units in [0, span]: a third at the start, a third at the end (the crop then
        has the pool picture's real border on that side), a third anywhere.  Measured: the VM's analysis leaves
        the bottom 8 rows of Kodak at 2.9x the interior's squared error; with uniform offsets only 1/9 of the
        crops showed the synthesis a bottom border at all."""
        pick = int(torch.randint(3, (1,), generator=gen))
        if pick == 0:
            return 0
        if pick == 1:
            return span
        return int(torch.randint(span + 1, (1,), generator=gen))

    def batch(self, n, size, gen):
        """-> rgb float [n,3,size,size] 0-255, luma latents [n,128,size/16,..], chroma latents [n,64,size/32,..]."""
        if size % 32:
            raise ValueError("crop must be a multiple of 32 with cached latents")
        rgb, yl, cl = [], [], []
        for k in torch.randint(len(self.images), (n,), generator=gen).tolist():
            im = self.images[k]
            top = 32 * self._offset((im.shape[1] - size) // 32, gen)
            left = 32 * self._offset((im.shape[2] - size) // 32, gen)
            rgb.append(im[:, top:top + size, left:left + size].float())
            yl.append(self.y_luma[k, :, top // 16:(top + size) // 16, left // 16:(left + size) // 16])
            cl.append(self.y_chroma[k, :, top // 32:(top + size) // 32, left // 32:(left + size) // 32])
        return torch.stack(rgb), torch.stack(yl).float(), torch.stack(cl).float()
