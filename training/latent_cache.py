"""Features of the frozen part of the VM 3.3 analysis for every training crop, cached once.

    python -m training.latent_cache [--tail 2] [--data ../shared/datasets/train] [--out training/cache/...]

While the analysis head is frozen (the CPU recipe, see training/README.md) a training step needs only the
features entering the trainable tail, not the pixels through the whole analysis: the head is ~60 kMAC/px of
the ~70 kMAC/px of a forward pass, so caching it makes a CPU step several times cheaper.
--tail k leaves the last k analysis stages trainable (vm33.Analysis.stages: 0 = everything frozen, the cache
holds the latents; 2 = the stride-2 conv and the 1x1 train, the cache holds the H/8 features; 3 = the third
gated block trains too, the cache holds the H/4 features, ~6.4 GB for the 1411-crop pool). Measured why the
tail must train: with all of the analysis frozen the top rate point saturated near 31 dB on Kodak
(unquantised VM latents decode to 31.7 dB on kodim23); with tail 2 it crept to 32 dB and a pure-
reconstruction run of tail + synthesis stalled at +0.5 dB (training/README.md), so the H/8 features of the
frozen head bound it: tail 3 from step 34,700.  The pool is memory-mapped, not read into memory.  Crops
are cut at multiples of 32 pixels together with the matching pixels. The fingerprint of the pool and of the
frozen head's weights is stored with the cache and checked by training.train; the cache lives in an ignored folder.
"""
import argparse
import hashlib
import pathlib
import time

import torch

from . import vm33
from .colour import rgb_to_yuv420
from .data import _load_rgb, pool_files

CACHE_DIR = pathlib.Path(__file__).resolve().parent / "cache"
DEFAULT_TAIL = 3  # trainable analysis stages in the CPU recipe (see the module docstring)


def default_path(tail):
    return CACHE_DIR / ("vm33_latents.pt" if tail == 0 else f"vm33_features_tail{tail}.pt")


DEFAULT_OUT = default_path(0)


def head_state(luma_analysis, chroma_analysis, tail):
    """The weights of the frozen head of both analyses (what the cached features depend on)."""
    state = {}
    for prefix, analysis in (("l", luma_analysis), ("c", chroma_analysis)):
        stages = analysis.stages()
        for i, stage in enumerate(stages[:len(stages) - tail]):
            state.update({f"{prefix}.{i}.{k}": v for k, v in stage.state_dict().items()})
    return state


def fingerprint(files, analysis_state):
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
    for k, v in sorted(analysis_state.items()):
        h.update(k.encode())
        h.update(v.detach().half().cpu().numpy().tobytes()[:4096])  # checkpoints keep float16 weights
    return h.hexdigest()[:16]


@torch.no_grad()
def build(files, luma_analysis, chroma_analysis, tail=0, batch=4, log_every=100):
    """-> (uint8 rgb crops, luma head features, chroma head features); features stored as float16 when a
    tail trains (they are 8x larger than the latents; the tail's convs see them through float32)."""
    ys, cs, ims = [], [], []
    store = torch.float16 if tail else torch.float32
    t0 = time.time()
    for i in range(0, len(files), batch):
        rgb = torch.stack([_load_rgb(f) for f in files[i:i + batch]])
        y, uv = rgb_to_yuv420(rgb.float())
        ys.append(luma_analysis.head(y, tail).to(store))
        cs.append(chroma_analysis.head(vm33.chroma_analysis_input(y, uv), tail).to(store))
        ims.append(rgb)
        if (i // batch) % max(1, log_every // batch) == 0:
            print(f"{i + len(rgb)}/{len(files)} crops, {time.time() - t0:.0f} s", flush=True)
    return torch.cat(ims), torch.cat(ys), torch.cat(cs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--tail", type=int, default=DEFAULT_TAIL, choices=range(5),
                    help="trainable analysis stages left out of the cache (0 = cache the latents)")
    ap.add_argument("--out", default=None, help="cache file (default training/cache/, named by --tail)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = pool_files(args.data)
    luma, chroma = vm33.load_graph("single_encode_y").eval(), vm33.load_graph("single_encode_uv").eval()
    with torch.no_grad():  # the committed checkpoints hold float16 weights: cache what a resumed model computes
        for p in [*luma.parameters(), *chroma.parameters()]:
            p.copy_(p.half().float())
    images, y, c = build(files, luma, chroma, args.tail)
    out = pathlib.Path(args.out) if args.out else default_path(args.tail)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"fingerprint": fingerprint(files, head_state(luma, chroma, args.tail)), "tail": args.tail,
                "images": images, "y_luma": y, "y_chroma": c}, tmp)
    tmp.replace(out)
    print(f"{len(files)} crops -> {out} ({out.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()


class LatentPool:
    """Training crops with their cached frozen-head features (or latents, tail 0): crops are cut at multiples
    of 32 pixels (the chroma latent grid), so the feature crop is exactly the features of those pixels'
    positions. The features are those of the whole 512-pixel crop (context beyond the training crop
    included); crops at offset 0 or at the far edge keep the pool crop's real borders."""

    def __init__(self, path=DEFAULT_OUT):
        data = torch.load(path, map_location="cpu", mmap=True)  # 6 GB at tail 3: page cache, not a copy
        self.images, self.y_luma, self.y_chroma = data["images"], data["y_luma"], data["y_chroma"]
        self.fingerprint, self.tail = data["fingerprint"], data.get("tail", 0)
        side = self.images.shape[-1]
        self.step_luma, self.step_chroma = side // self.y_luma.shape[-1], side // self.y_chroma.shape[-1]

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
        """-> rgb float [n,3,size,size] 0-255, luma and chroma features (tail 0: latents [n,128,size/16,..],
        [n,64,size/32,..]) as float32."""
        if size % 32:
            raise ValueError("crop must be a multiple of 32 with cached latents")
        rgb, yl, cl = [], [], []
        for k in torch.randint(len(self.images), (n,), generator=gen).tolist():
            im = self.images[k]
            top = 32 * self._offset((im.shape[1] - size) // 32, gen)
            left = 32 * self._offset((im.shape[2] - size) // 32, gen)
            rgb.append(im[:, top:top + size, left:left + size].float())
            a, b = self.step_luma, self.step_chroma
            yl.append(self.y_luma[k, :, top // a:(top + size) // a, left // a:(left + size) // a])
            cl.append(self.y_chroma[k, :, top // b:(top + size) // b, left // b:(left + size) // b])
        return torch.stack(rgb), torch.stack(yl).float(), torch.stack(cl).float()
