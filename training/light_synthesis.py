"""Lighter BOP synthesis for `vr_bop`, trained against the frozen latent (issue 12, build item 6).

    python -m training.light_synthesis --cache                   # analysis latents of the pool, once (1 thread)
    python -m training.light_synthesis --minutes 60              # train the light variants (frozen codec)
    python -m training.light_synthesis --evaluate [--images 24]  # kMAC/px, ORT ms, Kodak RD -> results/light_bop.md

An experiment module: nothing in the runtime package uses it. Run it as the other CPU jobs here:
`OMP_NUM_THREADS=1 nice -n 10 python -m training.light_synthesis ...`.

Variants (luma / chroma; BOP = training/synthesis.py):
  bop_phase  BOP itself with both ConvTranspose up-samplers rewritten as PhaseUp (2x2 conv to 4·C + PixelShuffle(2)
             + crop from offset 1): the same function to float rounding, only timed (what the rewrite alone buys).
  light_a    BOP up to res2 (PhaseUp up-samplers), widen 3x3 dropped: res3 = ResAU(64), out 1x1 64 -> 16; chroma BOP
             up to res1, widen dropped: res2 = ResAU(64), out 1x1 64 -> 32.
  light_b    as light_a, but with a 3x3 64 -> 32 after res2 (luma) / res1 (chroma), a ResAU(32) and out 32 -> 16 / 32.
Initialisation (training starts near BOP): every tensor with BOP's name and shape is copied; the up-samplers are
BOP's ConvTranspose weights rearranged (exact); light_b's 3x3 and ResAU(32) are two of the 16-channel groups of
BOP's widen / res3 (chroma: widen / res2), the pair whose least-squares refit of `out` leaves the smallest
loss on a fixed sample; every `out` 1x1 is that least-squares fit (λ-weighted, the training loss's weights).
New ResAUs start as the identity (ResAU's zero 1x1).
Trained by default: light_b only. In the smoke tests light_a was dominated: no faster in ONNX Runtime (its ResAU64
at H/4 moves twice the elementwise traffic of light_b's ResAU32) and 1.1 dB further from BOP (Kodak BD-PSNR, 2
images, after initialisation); so the 60-minute budget goes to one variant, light_a is timed only (`--variants
light_a,light_b` trains both on the same batches).

Training (--minutes): the vr_bop codec is frozen (eval mode, no grad): for each batch the cached analysis latents
of random 256x256 windows (16x16 latents, cut at multiples of 16 px) go through the hyper prior and the residual
coding with real rounding at a random rate point per crop (as train.py, uniform), giving ŷ (luma, chroma) and
the bits (constant); only the light syntheses train, each on the same ŷ, with the vr recipe's loss
λ_r·MSE_yuv(6:1:1, 0-255) + bpp, Adam, linear warm-up then cosine decay to --lr-min over the --minutes budget.
Checkpoint training/checkpoints/light_bop.pt (float16, the light syntheses only); log training/logs/light_bop.tsv:
training rows (mean loss and PSNR-YUV of the last --log-every steps) and validation rows `val_<variant>` (the
last 8 crops of the pool, never trained on, whole 512², at every rate point: mean PSNR-YUV, and in the loss
column its difference to BOP's on the same crops).
"""
import argparse
import hashlib
import itertools
import json
import math
import os
import pathlib
import platform
import signal
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import CHROMA_LATENT, LUMA_LATENT
from .blocks import LightResidualBlock, ResAU, conv
from .codec import RATE_LAMBDAS, Codec
from .colour import denormalise, normalise, psnr_yuv, rgb_to_yuv420, weighted_mse, yuv_mse
from .data import _load_rgb, load_kodak, pool_files
from .synthesis import CHROMA_INFO, LightCombineBlock
from .tsv_log import TsvLog

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BOP_CKPT = HERE / "checkpoints" / "vr_bop.pt"
MODEL_DIR = ROOT / "src" / "jpegai_fast" / "models" / "vr_bop"
CACHE = HERE / "cache" / "light_bop_latents.pt"
OUT_CKPT = HERE / "checkpoints" / "light_bop.pt"
LOG = HERE / "logs" / "light_bop.tsv"
RESULTS = HERE / "results" / "light_bop.md"
LOG_COLUMNS = ("utc_time", "step", "variant", "loss", "train_psnr_yuv", "lr", "wall_s")
GROUP = 16  # ResAU channels per group

# name -> (luma mid width, chroma mid width); None = no mid 3x3 (the trunk's 64 channels go on)
VARIANTS = {"light_a": (None, None), "light_b": (32, 32)}
BOP_PHASE = (96, 128)  # BOP's own widths: the exact rewrite of BOP
# projection of the whole decode (brief of issue 12, build item 6)
NON_SYNTHESIS_MS = 30.0
VVC_MS = 25.0
# BOP synthesis in the decode benchmark, 1 thread, QP37 (docs/performance.md, decode stages table): the measured
# time ratios here (a loaded box) are scaled to it for the projection
BENCH_BOP_SYNTHESIS_MS = 130.6


def cdiv(a, b):
    """ceil(a / b) for positive ints and for traced sizes (ONNX export)."""
    return (a + b - 1) // b


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def load_codec(path=BOP_CKPT):
    """The vr_bop codec, eval mode, every parameter frozen."""
    ck = torch.load(path, map_location="cpu")
    model = Codec()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()})
    model.eval().requires_grad_(False)
    return model, ck.get("meta", {})


# ----------------------------------------------------------------------------------------------
# The light synthesis
# ----------------------------------------------------------------------------------------------
class PhaseUp(nn.Module):
    """ConvTranspose2d(k4, s2, p1) as ONNX Runtime likes it: 2x2 conv (padding 1) to 4·cout, PixelShuffle(2),
    crop from offset 1 (to h x w, default the transposed conv's 2H x 2W). Output row 2i+a of the transposed conv
    reads input rows (i-1, i) for a = 0 and (i, i+1) for a = 1: the 2x2 conv at padded row i+a sees exactly those,
    and its sub-pixel phase 1-a lands on 2i+a after the shift by one."""

    TAP = ((2, 0), (3, 1))  # [sub-pixel phase][2x2 tap] -> transposed-conv tap

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 2, padding=1)

    def forward(self, x, h=None, w=None):
        h = 2 * x.shape[-2] if h is None else h
        w = 2 * x.shape[-1] if w is None else w
        return F.pixel_shuffle(self.conv(x), 2)[..., 1:1 + h, 1:1 + w]

    @torch.no_grad()
    def load_convt(self, convt: nn.ConvTranspose2d):
        wt = convt.weight  # [cin, cout, 4, 4]
        for sh, sw, dh, dw in itertools.product(range(2), repeat=4):
            self.conv.weight[sh * 2 + sw::4, :, dh, dw] = wt[:, :, self.TAP[sh][dh], self.TAP[sw][dw]].t()
        self.conv.bias.copy_(convt.bias.repeat_interleave(4))


class LightLuma(nn.Module):
    """head -> up1 -> res1 -> crop H/8 -> up2 (crop H/4) -> res2 -> [mid 3x3 64->m] -> res3 -> out 1x1 -> PS(4)."""

    def __init__(self, mid=None):
        super().__init__()
        c = mid or 64
        self.head = LightResidualBlock(LUMA_LATENT)
        self.up1 = PhaseUp(LUMA_LATENT, 64)
        self.res1 = ResAU(64)
        self.up2 = PhaseUp(64, 64)
        self.res2 = ResAU(64)
        self.mid = conv(64, mid, 3) if mid else nn.Identity()
        self.res3 = ResAU(c)
        self.out = conv(c, 16, 1)

    def trunk(self, y_hat, hw):
        h, w = hw
        x = self.res1(self.up1(self.head(y_hat)))[..., :cdiv(h, 8), :cdiv(w, 8)]
        return self.res2(self.up2(x, cdiv(h, 4), cdiv(w, 4)))

    def tail(self, x):
        return self.res3(self.mid(x))

    def features(self, y_hat, hw):
        return self.tail(self.trunk(y_hat, hw))

    def forward(self, y_hat, hw):
        h, w = hw
        return F.pixel_shuffle(self.out(self.features(y_hat, hw)), 4)[..., :h, :w]


class LightChroma(nn.Module):
    """combine -> up (crop H/8) -> res1 -> [mid 3x3 64->m] -> res2 -> out 1x1 to 32 -> PS(4) (U, V at H/2)."""

    def __init__(self, mid=None):
        super().__init__()
        c = mid or 64
        self.combine = LightCombineBlock()
        self.up = PhaseUp(CHROMA_INFO + CHROMA_LATENT, 64)
        self.res1 = ResAU(64)
        self.mid = conv(64, mid, 3) if mid else nn.Identity()
        self.res2 = ResAU(c)
        self.out = conv(c, 32, 1)

    def trunk(self, y_luma, y_chroma, hw):
        h, w = hw
        return self.res1(self.up(self.combine(y_luma, y_chroma), cdiv(h, 8), cdiv(w, 8)))

    def tail(self, x):
        return self.res2(self.mid(x))

    def features(self, y_luma, y_chroma, hw):
        return self.tail(self.trunk(y_luma, y_chroma, hw))

    def forward(self, y_luma, y_chroma, hw):
        h, w = hw
        return F.pixel_shuffle(self.out(self.features(y_luma, y_chroma, hw)), 4)[..., :cdiv(h, 2), :cdiv(w, 2)]


class LightSynthesis(nn.Module):
    def __init__(self, luma_mid=None, chroma_mid=None):
        super().__init__()
        self.luma = LightLuma(luma_mid)
        self.chroma = LightChroma(chroma_mid)

    def forward(self, y_hat, c_hat, hw):
        """-> (Y [B,1,H,W], UV [B,2,H/2,W/2]) in 0-255, unclamped."""
        return denormalise(self.luma(y_hat, hw)), denormalise(self.chroma(y_hat, c_hat, hw))


def make_variant(name):
    return LightSynthesis(*(BOP_PHASE if name == "bop_phase" else VARIANTS[name]))


# ----------------------------------------------------------------------------------------------
# Initialisation from BOP
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def copy_matching(light: nn.Module, bop: nn.Module):
    """Copy every tensor whose name (mid = BOP's widen) and shape match; the ConvTranspose up-samplers go into
    the PhaseUps. -> names copied."""
    src, copied = bop.state_dict(), []
    for name, t in light.state_dict().items():
        bop_name = name.replace(".mid.", ".widen.")  # BOP calls its mid 3x3 `widen`
        if bop_name in src and src[bop_name].shape == t.shape:
            t.copy_(src[bop_name])
            copied.append(name)
    for name, m in light.named_modules():
        if isinstance(m, PhaseUp):
            m.load_convt(bop.get_submodule(name))
            copied += [f"{name}.conv.weight", f"{name}.conv.bias"]
    return copied


@torch.no_grad()
def slice_groups(light_part, bop_part, res, groups):
    """light_part.mid / .<res> <- BOP's widen / ResAU .<res>, keeping the 16-channel groups `groups`."""
    keep = torch.cat([torch.arange(g * GROUP, (g + 1) * GROUP) for g in groups])
    light_part.mid.weight.copy_(bop_part.widen.weight[keep])
    light_part.mid.bias.copy_(bop_part.widen.bias[keep])
    src, dst = bop_part.get_submodule(res), light_part.get_submodule(res)
    dst.spatial.weight.copy_(src.spatial.weight[keep])  # grouped conv [C, 16, 3, 3]: whole groups stay exact
    dst.mix.weight.copy_(src.mix.weight[keep][:, keep])


def weighted_lstsq(feats, targets, weights, ridge=1e-6):
    """min_W sum_n w_n |[f_n, 1] W - t_n|^2 -> (W [C,K], b [K], weighted mean squared residual per element)."""
    x = torch.cat([feats, torch.ones(feats.shape[0], 1, dtype=feats.dtype)], dim=1).double()
    t, w = targets.double(), weights.double()[:, None]
    a = x.t() @ (w * x)
    a += ridge * a.diagonal().mean() * torch.eye(a.shape[0], dtype=a.dtype)
    sol = torch.linalg.solve(a, x.t() @ (w * t))
    res = ((x @ sol - t).pow(2) * w).sum() / (w.sum() * t.shape[1])
    return sol[:-1].float(), sol[-1].float(), float(res)


def _rows(x):
    """[B,C,H,W] -> [B·H·W, C]."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


@torch.no_grad()
def fit_out(part, feats, target, weights):
    """Least-squares fit of the 1x1 `out` of a light luma/chroma on (features, pixel target) pairs."""
    wts = torch.cat([torch.full((f.shape[0] * f.shape[2] * f.shape[3],), float(w)) for f, w in zip(feats, weights)])
    wmat, b, res = weighted_lstsq(torch.cat([_rows(f) for f in feats]), torch.cat([_rows(t) for t in target]), wts)
    part.out.weight.copy_(wmat.t()[:, :, None, None])
    part.out.bias.copy_(b)
    return res


def _targets(y, uv):
    """Normalised pixels as the out layers' channel layout: Y -> [B,16,H/4,W/4], UV -> [B,32,H/8,W/8]."""
    return F.pixel_unshuffle(normalise(y), 4), F.pixel_unshuffle(normalise(uv), 4)


@torch.no_grad()
def init_variant(name, codec, samples):
    """A light synthesis initialised from codec's BOP synthesis; samples: list of (y, uv, y_hat, c_hat, rate_idx)
    -> (model, notes)."""
    bop = codec.synthesis["bop"]
    model = make_variant(name)
    copied = copy_matching(model, bop)
    notes = {"copied_tensors": len(copied)}
    lam = torch.tensor(RATE_LAMBDAS)
    per_crop = []  # (luma target, chroma target, weight) per crop
    for y, uv, _, _, r in samples:
        ty, tc = _targets(y, uv)
        per_crop += [(ty[i:i + 1], tc[i:i + 1], float(lam[r[i]])) for i in range(y.shape[0])]
    weights = [w for *_, w in per_crop]
    if name == "bop_phase":
        return model, notes
    # the trunks are BOP's exactly: their outputs once, then only tail + out per candidate
    trunks = {"luma": [model.luma.trunk(yh[i:i + 1], y.shape[-2:])
                       for y, _, yh, _, _ in samples for i in range(y.shape[0])],
              "chroma": [model.chroma.trunk(yh[i:i + 1], ch[i:i + 1], y.shape[-2:])
                         for y, _, yh, ch, _ in samples for i in range(y.shape[0])]}
    for comp, mid, res, k in (("luma", VARIANTS[name][0], "res3", 0), ("chroma", VARIANTS[name][1], "res2", 1)):
        part = getattr(model, comp)
        targets = [t[k] for t in per_crop]

        def fit(part=part, comp=comp, targets=targets):
            return fit_out(part, [part.tail(x) for x in trunks[comp]], targets, weights)

        if mid:  # pick the BOP groups whose refit fits best
            n_groups = bop[comp].widen.out_channels // GROUP
            best = None
            for groups in itertools.combinations(range(n_groups), mid // GROUP):
                slice_groups(part, bop[comp], res, groups)
                err = fit(part)
                if best is None or err < best[0]:
                    best = (err, groups)
            slice_groups(part, bop[comp], res, best[1])
            notes[f"{comp}_groups_kept"] = list(best[1])
        notes[f"{comp}_lstsq_mse_normalised"] = fit(part)
    return model, notes


# ----------------------------------------------------------------------------------------------
# Frozen latent
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def build_cache(codec, data, ckpt_sha, out=CACHE, save_every=100):
    """Analysis output (rate independent) of every training crop, float16, saved every save_every crops
    (a restarted build continues)."""
    files = pool_files(data)
    names = [f.name for f in files]
    state = None
    if out.exists():
        state = torch.load(out)
        if state["names"] != names or state["checkpoint_sha256"] != ckpt_sha:
            state = None
        elif state["done"] == len(names):
            print(f"cache {out} complete ({len(names)} crops)", flush=True)
            return state
    if state is None:
        size = _load_rgb(files[0]).shape[-2:]
        hl, wl = size[0] // 16, size[1] // 16
        state = {"names": names, "checkpoint_sha256": ckpt_sha, "done": 0, "size": tuple(size),
                 "luma": torch.zeros(len(names), LUMA_LATENT, hl, wl, dtype=torch.float16),
                 "chroma": torch.zeros(len(names), CHROMA_LATENT, hl, wl, dtype=torch.float16)}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    start = state["done"]
    for i in range(start, len(files)):
        rgb = _load_rgb(files[i])
        assert tuple(rgb.shape[-2:]) == state["size"], (files[i], rgb.shape)
        y, uv = rgb_to_yuv420(rgb[None].float())
        yn, uvn = normalise(y), normalise(uv)
        state["luma"][i] = codec.luma_analysis(yn)[0].half()
        state["chroma"][i] = codec.chroma_analysis(yn, uvn)[0].half()
        state["done"] = i + 1
        if (i + 1) % save_every == 0 or i + 1 == len(files):
            tmp = out.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(out)
            el = time.time() - t0
            print(f"cache {i + 1}/{len(files)}  {el:.0f} s  ({el / (i + 1 - start):.2f} s/crop)", flush=True)
    return state


class LatentBatches:
    """Random windows of the cached latents with their pixels (whole-crop YUV, then cut at multiples of 16)."""

    def __init__(self, cache, data, window=16, holdout=8):
        files = pool_files(data)
        if cache["names"] != [f.name for f in files]:
            raise SystemExit("latent cache stale: python -m training.light_synthesis --cache")
        if cache["done"] < len(files):  # a cache still being built: its first crops only (smoke tests)
            print(f"latent cache incomplete: {cache['done']} of {len(files)} crops used", flush=True)
            files = files[:cache["done"]]
        self.files, self.cache, self.window = files, cache, window
        self.images = [_load_rgb(f) for f in files]
        # the last `holdout` crops (sorted names) never train: the validation windows
        self.n_train = len(files) - holdout

    def __len__(self):
        return self.n_train

    def batch(self, n, gen):
        """-> y [n,1,16w,16w], uv [n,2,8w,8w] (0-255), y latents [n,160,w,w], chroma latents [n,96,w,w]."""
        hl, wl = self.cache["luma"].shape[-2:]
        picks = []
        for k in torch.randint(self.n_train, (n,), generator=gen).tolist():
            oy = int(torch.randint(hl - self.window + 1, (1,), generator=gen))
            ox = int(torch.randint(wl - self.window + 1, (1,), generator=gen))
            picks.append((k, oy, ox))
        return self.windows(picks)

    def validation(self):
        """Every held-out crop, whole (512x512)."""
        hl, wl = self.cache["luma"].shape[-2:]
        assert hl == wl, "square pool crops"
        return self.windows([(k, 0, 0) for k in range(self.n_train, len(self.images))], hl)

    def windows(self, picks, w=None):
        w = w or self.window
        ys, uvs, ls, cs = [], [], [], []
        for k, oy, ox in picks:
            y, uv = rgb_to_yuv420(self.images[k][None].float())
            ys.append(y[..., 16 * oy:16 * (oy + w), 16 * ox:16 * (ox + w)])
            uvs.append(uv[..., 8 * oy:8 * (oy + w), 8 * ox:8 * (ox + w)])
            ls.append(self.cache["luma"][k:k + 1, :, oy:oy + w, ox:ox + w].float())
            cs.append(self.cache["chroma"][k:k + 1, :, oy:oy + w, ox:ox + w].float())
        return torch.cat(ys), torch.cat(uvs), torch.cat(ls), torch.cat(cs)


@torch.no_grad()
def frozen_latents(codec, y_lat, c_lat, rate_idx):
    """The codec's decoder-side latents at real rounding (eval mode) -> (y_hat, c_hat, bits [B])."""
    y_hat, bits_y = codec._code_luma(y_lat, rate_idx)
    c_hat, bits_c = codec._code_chroma(c_lat, rate_idx)
    return y_hat, c_hat, bits_y + bits_c


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def save_light(models, meta, path):
    state = {name: {k: v.half() for k, v in m.state_dict().items()} for name, m in models.items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"meta": meta, "state_dict": state}, tmp)
    os.replace(tmp, path)


def load_light(path=OUT_CKPT):
    ck = torch.load(path, map_location="cpu")
    models = {}
    for name, state in ck["state_dict"].items():
        m = make_variant(name)
        m.load_state_dict({k: v.float() for k, v in state.items()})
        models[name] = m.eval()
    return models, ck["meta"]


def train(args, codec, bop_meta):
    cache = torch.load(CACHE if args.cache_file is None else args.cache_file)
    t0 = time.time()
    pool = LatentBatches(cache, args.data)
    print(f"pool {len(pool)} crops + latents, loaded in {time.time() - t0:.1f} s", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed + 1)
    lambdas = torch.tensor(RATE_LAMBDAS)

    # initialisation sample: fixed, every rate point represented
    samples = []
    for i in range(args.init_batches):
        y, uv, yl, cl = pool.batch(args.batch, gen)
        r = (torch.arange(args.batch) + i * args.batch) % len(RATE_LAMBDAS)
        yh, ch, _ = frozen_latents(codec, yl, cl, r)
        samples.append((y, uv, yh, ch, r))
    models, opts, notes = {}, {}, {}
    for name in args.variants:
        t = time.time()
        models[name], notes[name] = init_variant(name, codec, samples)
        models[name].train()
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=args.lr)
        print(f"{name}: initialised in {time.time() - t:.0f} s: {notes[name]}", flush=True)
    del samples

    # validation: the held-out windows at every rate point (fixed ŷ), BOP's PSNR-YUV on them as the reference
    vy, vuv, vl, vc = pool.validation()
    nv, nr = vy.shape[0], len(RATE_LAMBDAS)
    vr = torch.arange(nr).repeat_interleave(nv)
    vy, vuv = vy.repeat(nr, 1, 1, 1), vuv.repeat(nr, 1, 1, 1)
    vyh, vch, _ = frozen_latents(codec, vl.repeat(nr, 1, 1, 1), vc.repeat(nr, 1, 1, 1), vr)
    bop = codec.synthesis["bop"]

    @torch.no_grad()
    def validate(fn):
        """-> mean PSNR-YUV (clamped outputs) over the held-out windows x rate points."""
        p = []
        for i in range(0, vy.shape[0], 8):
            yr, uvr = fn(vyh[i:i + 8], vch[i:i + 8], vy.shape[-2:])
            p.append(psnr_yuv(yuv_mse(yr.clamp(0, 255), uvr.clamp(0, 255), vy[i:i + 8], vuv[i:i + 8])))
        return float(torch.cat(p).mean())

    val_bop = validate(lambda a, b, hw: (denormalise(bop["luma"](a, hw)), denormalise(bop["chroma"](a, b, hw))))

    log = TsvLog(pathlib.Path(args.log), LOG_COLUMNS)
    meta = {"variants": {n: list(VARIANTS[n]) for n in args.variants}, "init": notes, "steps": 0, "wall_s": 0.0,
            "bop_checkpoint": str(args.checkpoint), "bop_checkpoint_sha256": sha256(args.checkpoint),
            "bop_steps": bop_meta.get("steps"), "recipe": {
                "loss": "lambda_r*MSE_yuv(6:1:1) + bpp", "batch": args.batch, "crop": 16 * pool.window,
                "lr": args.lr, "lr_min": args.lr_min, "warmup_steps": args.warmup_steps, "minutes": args.minutes,
                "grad_clip": args.grad_clip, "threads": args.threads, "rate_lambdas": list(RATE_LAMBDAS)}}
    meta["command"] = args.command_line
    meta["pool_crops"] = len(pool)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def log_validation(step, wall):
        for name, m in models.items():
            m.eval()
            p = validate(m)
            m.train()
            log.row(step=step, variant=f"val_{name}", train_psnr_yuv=f"{p:.3f}", loss=f"{p - val_bop:.3f}",
                    wall_s=f"{wall:.1f}")
            print(f"step {step} validation {name}: PSNR-YUV {p:.3f} dB, {p - val_bop:+.3f} dB vs BOP", flush=True)

    meta["validation"] = {"windows": nv, "rate_points": nr, "bop_psnr_yuv": round(val_bop, 3),
                          "crops": [f.name for f in pool.files[pool.n_train:]]}
    log.row(step=0, variant="val_bop", train_psnr_yuv=f"{val_bop:.3f}", loss="0", wall_s="0")
    log_validation(0, 0.0)
    run_start = last_save = last_val = time.time()
    budget = 60.0 * args.minutes
    step, window = 0, {n: [] for n in models}
    lr = args.lr
    while stop["signal"] is None and time.time() - run_start < budget:
        progress = (time.time() - run_start) / budget
        warm = min(1.0, (step + 1) / args.warmup_steps) if args.warmup_steps > 0 else 1.0
        lr = warm * (args.lr_min + (args.lr - args.lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))
        y, uv, yl, cl = pool.batch(args.batch, gen)
        r = torch.randint(len(RATE_LAMBDAS), (args.batch,), generator=gen)
        yh, ch, bits = frozen_latents(codec, yl, cl, r)
        bpp = bits / (y.shape[-2] * y.shape[-1])
        for name, m in models.items():
            for group in opts[name].param_groups:
                group["lr"] = lr
            y_rec, uv_rec = m(yh, ch, y.shape[-2:])
            mse3 = yuv_mse(y_rec, uv_rec, y, uv)
            loss = (lambdas[r] * weighted_mse(mse3) + bpp).mean()
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(m.parameters(), args.grad_clip)
            opts[name].step()
            window[name].append((loss.item(), psnr_yuv(mse3.detach()).mean().item()))
        step += 1
        if step % args.log_every == 0:
            wall = time.time() - run_start
            for name, rows in window.items():
                loss_avg = sum(a for a, _ in rows) / len(rows)
                p = sum(b for _, b in rows) / len(rows)
                log.row(step=step, variant=name, loss=f"{loss_avg:.4f}", train_psnr_yuv=f"{p:.3f}",
                        lr=f"{lr:.3g}", wall_s=f"{wall:.1f}")
                print(f"step {step} {name} loss {loss_avg:.4f} psnr_yuv {p:.2f} lr {lr:.3g} "
                      f"({wall / step:.2f} s/step)", flush=True)
            window = {n: [] for n in models}
        if time.time() - last_val >= 60 * args.val_every_min:
            log_validation(step, time.time() - run_start)
            last_val = time.time()
        if time.time() - last_save >= 60 * args.save_every_min:
            meta.update(steps=step, wall_s=round(time.time() - run_start, 1))
            save_light(models, meta, pathlib.Path(args.out))
            last_save = time.time()
    meta.update(steps=step, wall_s=round(time.time() - run_start, 1), stopped_by=(
        f"signal {stop['signal']}" if stop["signal"] else "time budget"))
    log_validation(step, meta["wall_s"])
    save_light(models, meta, pathlib.Path(args.out))
    print(f"stopped at step {step} after {meta['wall_s']:.0f} s; {args.out} "
          f"{pathlib.Path(args.out).stat().st_size / 2**20:.2f} MiB", flush=True)


# ----------------------------------------------------------------------------------------------
# Evaluation: MACs, ORT time, Kodak RD
# ----------------------------------------------------------------------------------------------
class LumaGraph(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat, image_ref):  # -> Y [1,1,H,W] 0-255 unclamped
        return denormalise(self.m(y_hat, (image_ref.shape[-2], image_ref.shape[-1])))


class ChromaGraph(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat_luma, y_hat_chroma, image_ref):  # -> UV [1,2,ceil(H/2),ceil(W/2)]
        return denormalise(self.m(y_hat_luma, y_hat_chroma, (image_ref.shape[-2], image_ref.shape[-1])))


def export_variant(name, model, out_dir):
    """ONNX graphs synthesis_<name>_{luma,chroma}.onnx (export.py's exporter and its ORT-vs-torch check)."""
    from .export import export_onnx, synthesis_inputs, validation_inputs

    f32, _, _ = validation_inputs()
    yl, yc = synthesis_inputs(f32, LUMA_LATENT, CHROMA_LATENT)

    diffs = {
        "luma": export_onnx(f"synthesis_{name}_luma", LumaGraph(model.luma).eval(), yl,
                            lambda d: denormalise(model.luma(d["y_hat"], d["image_ref"].shape[-2:])), out_dir),
        "chroma": export_onnx(f"synthesis_{name}_chroma", ChromaGraph(model.chroma).eval(), yc,
                              lambda d: denormalise(model.chroma(d["y_hat_luma"], d["y_hat_chroma"],
                                                                 d["image_ref"].shape[-2:])), out_dir)}
    return {k: max(v["max_abs_diff"] for v in d.values()) for k, d in diffs.items()}


def graph_paths(tmp):
    """name -> (luma graph, chroma graph): shipped BOP / SOP, the exported rest."""
    out = {op: (MODEL_DIR / f"synthesis_{op}_luma.onnx", MODEL_DIR / f"synthesis_{op}_chroma.onnx")
           for op in ("bop", "sop")}
    for name in ("bop_phase", *VARIANTS):
        out[name] = (tmp / f"synthesis_{name}_luma.onnx", tmp / f"synthesis_{name}_chroma.onnx")
    return out


def measure_macs(paths, hw=(512, 768)):
    from .export import graph_macs

    h, w = hw
    z = np.zeros
    fl = {"y_hat": z((1, LUMA_LATENT, h // 16, w // 16), np.float32), "image_ref": z((1, 0, h, w), np.float32)}
    fc = {"y_hat_luma": fl["y_hat"], "y_hat_chroma": z((1, CHROMA_LATENT, h // 16, w // 16), np.float32),
          "image_ref": fl["image_ref"]}
    return {name: (graph_macs(lp, fl) / h / w / 1000, graph_macs(cp, fc) / h / w / 1000)
            for name, (lp, cp) in paths.items()}


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()  # as jpegai_fast.model.session_options(1)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_ort(paths, y_hat, c_hat, hw, rounds):
    """Alternating rounds (every graph pair once per round, order rotated), ms per luma+chroma pair."""
    ref = np.zeros((1, 0, *hw), np.float32)
    sess = {n: (ort_session(lp), ort_session(cp)) for n, (lp, cp) in paths.items()}
    feeds = ({"y_hat": y_hat, "image_ref": ref}, {"y_hat_luma": y_hat, "y_hat_chroma": c_hat, "image_ref": ref})
    times = {n: {"luma": [], "chroma": [], "total": []} for n in sess}
    names = list(sess)
    for _ in range(2):  # warm-up
        for n in names:
            for s, f in zip(sess[n], feeds):
                s.run(None, f)
    for i in range(rounds):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t = [time.perf_counter()]
            for s, f in zip(sess[n], feeds):
                s.run(None, f)
                t.append(time.perf_counter())
            times[n]["luma"].append(1e3 * (t[1] - t[0]))
            times[n]["chroma"].append(1e3 * (t[2] - t[1]))
            times[n]["total"].append(1e3 * (t[2] - t[0]))
    return {n: {k: {"median": statistics.median(v), "min": min(v)} for k, v in d.items()} for n, d in times.items()}


@torch.no_grad()
def kodak_rd(codec, light, images):
    """Per image and rate point: bpp (one latent for every synthesis) and PSNR-YUV of BOP, SOP and each light."""
    rows = []
    for name, rgb in images:
        y, uv = rgb_to_yuv420(rgb[None].float())
        yn, uvn = normalise(y), normalise(uv)
        lat_l, lat_c = codec.luma_analysis(yn), codec.chroma_analysis(yn, uvn)
        hw = y.shape[-2:]
        for r in range(len(RATE_LAMBDAS)):
            yh, ch, bits = frozen_latents(codec, lat_l, lat_c, torch.tensor([r]))
            row = {"image": name, "rate": r, "bpp": float(bits[0]) / (hw[0] * hw[1])}
            recs = {op: (denormalise(codec.synthesis[op]["luma"](yh, hw)),
                         denormalise(codec.synthesis[op]["chroma"](yh, ch, hw))) for op in ("bop", "sop")}
            recs.update({n: m(yh, ch, hw) for n, m in light.items()})
            for n, (yr, uvr) in recs.items():
                row[n] = float(psnr_yuv(yuv_mse(yr.clamp(0, 255), uvr.clamp(0, 255), y, uv))[0])
            rows.append(row)
        print(f"kodak {name}: " + " ".join(f"{k} {rows[-1][k]:.2f}" for k in ["bop", "sop", *light]), flush=True)
    return rows


def bd_tables(rows, names):
    from .bd_rate import bd_quality, bd_rate

    images = list(dict.fromkeys(r["image"] for r in rows))
    rates = sorted({r["rate"] for r in rows})
    mean = {k: [statistics.fmean(r[k] for r in rows if r["rate"] == q) for q in rates] for k in ["bpp", "bop", *names]}
    out = {}
    for n in names:
        per_image = []
        for im in images:
            rr = sorted((r for r in rows if r["image"] == im), key=lambda r: r["rate"])
            b = [r["bpp"] for r in rr]
            per_image.append(bd_rate(b, [r["bop"] for r in rr], b, [r[n] for r in rr]))
        out[n] = {"bd_rate_mean_curve": bd_rate(mean["bpp"], mean["bop"], mean["bpp"], mean[n]),
                  "bd_psnr_mean_curve": bd_quality(mean["bpp"], mean["bop"], mean["bpp"], mean[n]),
                  "bd_rate_per_image_mean": statistics.fmean(x for x in per_image if not math.isnan(x))}
    return mean, out


def cpu_name():
    """'model name (family F, model M; AVX2, ...)' from /proc/cpuinfo."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    info = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    flags = set(info.get("flags", "").split())
    isa = [f.upper() for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; "
            f"{', '.join(isa) or 'no AVX2'})")


def evaluate(args, codec):
    import onnxruntime as ort

    t_start = time.time()
    light, meta = load_light(pathlib.Path(args.out))
    light_names = list(light)
    models = dict(light)
    # variants not in the checkpoint: BOP-initialised architecture, for MACs and time only
    untrained = [n for n in VARIANTS if n not in light]
    for n in ["bop_phase", *untrained]:
        models[n] = copy_matching_model(n, codec)
    report = {"meta": meta, "command": args.command_line}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        report["export_max_abs_diff"] = {n: export_variant(n, m, tmp) for n, m in models.items()}
        paths = graph_paths(tmp)
        report["kmac"] = measure_macs(paths)
        print("kMAC/px:", json.dumps(report["kmac"]), flush=True)
        images = load_kodak(args.kodak, args.images)
        timing_image = next((im for im in images if im[0] == "kodim01"), images[0])
        y, uv = rgb_to_yuv420(timing_image[1][None].float())
        with torch.no_grad():
            lat = codec.luma_analysis(normalise(y)), codec.chroma_analysis(normalise(y), normalise(uv))
            yh, ch, _ = frozen_latents(codec, *lat, torch.tensor([4]))
            # the exact rewrite: BOP with PhaseUp up-samplers against BOP (torch)
            ref = denormalise(codec.synthesis["bop"]["luma"](yh, y.shape[-2:]))
            got = models["bop_phase"].luma.forward(yh, y.shape[-2:])
            report["bop_phase_vs_bop_max_abs_diff_0_255"] = float((denormalise(got) - ref).abs().max())
        report["timing_picture"] = f"{timing_image[0]} {tuple(y.shape[-2:])}, rate point 4"
        report["ort"] = time_ort(paths, yh.numpy(), ch.numpy(), tuple(y.shape[-2:]), args.rounds)
        report["ort_version"] = ort.__version__
        report["rounds"] = args.rounds
    print("ORT ms:", json.dumps({n: round(v["total"]["median"], 1) for n, v in report["ort"].items()}), flush=True)
    with torch.no_grad():
        for m in light.values():
            m.eval()
        report["rows"] = kodak_rd(codec, light, images)
    report["mean"], report["bd"] = bd_tables(report["rows"], ["sop", *light_names])
    report["images"] = len(images)
    report["untrained"] = untrained
    log_path = pathlib.Path(args.log).resolve()
    report["log"] = str(log_path.relative_to(ROOT)) if log_path.is_relative_to(ROOT) else args.log
    report["log_trend"] = log_trend(args.log)
    report["eval_wall_s"] = round(time.time() - t_start, 1)
    pathlib.Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.results).with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    pathlib.Path(args.results).write_text(render(report, light_names))
    print(f"wrote {args.results} ({report['eval_wall_s']:.0f} s)", flush=True)


def copy_matching_model(name, codec):
    m = make_variant(name)
    copy_matching(m, codec.synthesis["bop"])
    return m.eval()


def log_trend(path, parts=6):
    """Mean training loss and PSNR-YUV per variant over `parts` equal step ranges of the log."""
    lines = pathlib.Path(path).read_text().splitlines() if pathlib.Path(path).exists() else []
    rows = [dict(zip(LOG_COLUMNS, ln.split("\t"))) for ln in lines[1:] if ln.strip()]
    val = [r for r in rows if r["variant"].startswith("val_")]
    rows = [r for r in rows if not r["variant"].startswith("val_")]
    out = {"validation": [{"step": int(r["step"]), "wall_s": float(r["wall_s"]), "variant": r["variant"][4:],
                           "psnr": float(r["train_psnr_yuv"]), "vs_bop": float(r["loss"])} for r in val]}
    for name in dict.fromkeys(r["variant"] for r in rows):
        rr = [r for r in rows if r["variant"] == name]
        last = int(rr[-1]["step"])
        for i in range(parts):
            sel = [r for r in rr if last * i / parts < int(r["step"]) <= last * (i + 1) / parts]
            if sel:
                out.setdefault(name, []).append({
                    "steps": f"{sel[0]['step']}-{sel[-1]['step']}",
                    "loss": statistics.fmean(float(r["loss"]) for r in sel),
                    "psnr": statistics.fmean(float(r["train_psnr_yuv"]) for r in sel), "lr": sel[-1]["lr"]})
    return out


def render(rep, light_names):
    meta, kmac, ort_t, mean, bd = rep["meta"], rep["kmac"], rep["ort"], rep["mean"], rep["bd"]
    diffs = rep["export_max_abs_diff"]
    names = ["bop", "bop_phase", *VARIANTS, "sop"]
    bop_total = sum(kmac["bop"])
    md = ["# Lighter BOP synthesis for `vr_bop` (issue 12, build item 6)", "",
          f"Command: `{rep['command']}` (evaluation); training: `{meta.get('command', '')}`.", "",
          f"Machine: {cpu_name()}, {os.cpu_count()} cores shared with a training job, a fuzz campaign and builds; "
          f"torch {torch.__version__}, ONNX Runtime {rep['ort_version']}, 1 thread everywhere.", "",
          f"Trained: {meta['steps']} steps in {meta['wall_s']:.0f} s wall ({meta['wall_s'] / 60:.1f} min; "
          f"{meta['wall_s'] / max(meta['steps'], 1):.2f} s/step), batch {meta['recipe']['batch']} x "
          f"{meta['recipe']['crop']}² crops, every trained variant on the same ŷ each step, "
          f"lr {meta['recipe']['lr']:g} "
          f"(warm-up {meta['recipe']['warmup_steps']} steps) cosine to {meta['recipe']['lr_min']:g}; stopped by "
          f"{meta.get('stopped_by')}. Frozen codec: `{meta['bop_checkpoint']}` (sha256 "
          f"{meta['bop_checkpoint_sha256'][:12]}…, steps {meta['bop_steps']}). Evaluation {rep['eval_wall_s']:.0f} s.",
          "", "## Variants", "",
          f"Trained: {', '.join(light_names)}; architecture only (MACs, time; not trained, no RD): "
          f"{', '.join(rep.get('untrained', [])) or 'none'}.", "",
          "| variant | luma | chroma |", "|---|---|---|",
          "| bop | head 3x3 160, ConvT 160→64, ResAU64, ConvT 64→64, ResAU64, 3x3 64→96, ResAU96, 1x1 96→16 | "
          "combine 3x3 256→48, ConvT 144→64, ResAU64, 3x3 64→128, ResAU128, 1x1 128→32 |",
          "| bop_phase | BOP, both ConvT as PhaseUp (2x2 conv pad 1 to 4·C + PixelShuffle(2) + crop at offset 1): "
          "exact | same |",
          "| light_a | BOP to ResAU64 at H/4 (PhaseUp), ResAU64, 1x1 64→16 | BOP to ResAU64 at H/8 (PhaseUp), "
          "ResAU64, 1x1 64→32 |",
          "| light_b | BOP to ResAU64 at H/4 (PhaseUp), 3x3 64→32, ResAU32, 1x1 32→16 | BOP to ResAU64 at H/8 "
          "(PhaseUp), 3x3 64→32, ResAU32, 1x1 32→32 |",
          "| sop | head 3x3 160, Conv2x2Pxl2 160→64, ResAU64, Conv2x2Pxl2 64→32, ResAU32, 3x3 32→32, ResAU32, "
          "1x1 32→16 | combine, Conv2x2Pxl2 144→32, ResAU32, 3x3 32→32, ResAU32, 1x1 32→32 |", "",
          f"Initialisation: {json.dumps(meta['init'])}. bop_phase vs BOP (torch, kodim01 luma): max |Δ| "
          f"{rep['bop_phase_vs_bop_max_abs_diff_0_255']:.2g} on 0–255. ONNX vs torch max |Δ|: "
          f"{json.dumps({k: {c: float(f'{x:.2g}') for c, x in v.items()} for k, v in diffs.items()})}.",
          "", "## kMAC per luma pixel (Conv + ConvTranspose MACs on the ONNX graphs, 768×512; export.graph_macs)", "",
          "| variant | luma | chroma | total | ÷ BOP |", "|---|---:|---:|---:|---:|"]
    md += [f"| {n} | {kmac[n][0]:.3f} | {kmac[n][1]:.3f} | {sum(kmac[n]):.3f} | {sum(kmac[n]) / bop_total:.0%} |"
           for n in names]
    md += ["", f"## ONNX Runtime CPU time, 1 thread ({rep['timing_picture']}; {rep['rounds']} alternating rounds, "
           "ms)", "",
           f"Whole decode projected as synthesis + {NON_SYNTHESIS_MS:.0f} ms (today's other stages), against FFmpeg "
           f"VVC ≈ {VVC_MS:.0f} ms (QP37, 1 thread): ≤ 4× needs synthesis ≤ {4 * VVC_MS - NON_SYNTHESIS_MS:.0f} ms, "
           f"≤ 2× needs ≤ {2 * VVC_MS - NON_SYNTHESIS_MS:.0f} ms.", "",
           f"The box is shared (other jobs, `nice -n 10`), so absolute times here run several times the benchmark's; "
           f"the projection scales each variant's median ratio to BOP (alternating rounds) by the benchmark's BOP "
           f"synthesis, {BENCH_BOP_SYNTHESIS_MS} ms (docs/performance.md, 1 thread, QP37).", "",
           "| variant | luma median | chroma median | luma+chroma median | min | ÷ BOP (median) | projected synthesis "
           f"| projected decode (+{NON_SYNTHESIS_MS:.0f} ms) | ÷ VVC ({VVC_MS:.0f} ms) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    bop_ms = ort_t["bop"]["total"]["median"]
    for n in names:
        t = ort_t[n]
        tot = t["total"]["median"]
        proj = tot / bop_ms * BENCH_BOP_SYNTHESIS_MS
        md.append(f"| {n} | {t['luma']['median']:.1f} | {t['chroma']['median']:.1f} | {tot:.1f} | "
                  f"{t['total']['min']:.1f} | {tot / bop_ms:.2f} | {proj:.0f} | {proj + NON_SYNTHESIS_MS:.0f} | "
                  f"{(proj + NON_SYNTHESIS_MS) / VVC_MS:.2f}× |")
    md += ["", f"## Kodak ({rep['images']} images), PSNR-YUV 6:1:1 (dB), same latents (torch, real rounding) for "
           "every synthesis", "", "| rate | bpp | " + " | ".join(["bop", *light_names, "sop"]) + " |",
           "|---:|---:|" + "---:|" * (len(light_names) + 2)]
    for i in range(len(mean["bpp"])):
        md.append(f"| {i} | {mean['bpp'][i]:.4f} | " + " | ".join(
            f"{mean[n][i]:.3f}" for n in ["bop", *light_names, "sop"]) + " |")
    md += ["", "## BD-rate vs BOP (PSNR-YUV, training/bd_rate.py; positive = more bits at equal quality)", "",
           "| variant | BD-rate, mean curve | BD-rate, per image then mean | BD-PSNR (dB), mean curve |",
           "|---|---:|---:|---:|"]
    md += [f"| {n} | {bd[n]['bd_rate_mean_curve']:+.2f} % | {bd[n]['bd_rate_per_image_mean']:+.2f} % | "
           f"{bd[n]['bd_psnr_mean_curve']:+.3f} |" for n in [*light_names, "sop"]]
    trend = dict(rep.get("log_trend") or {})
    val = trend.pop("validation", [])
    if val:
        steps = sorted({v["step"] for v in val if v["variant"] != "bop"})
        bop_p = next((v["psnr"] for v in val if v["variant"] == "bop"), float("nan"))
        md += ["", f"## Validation during training (`{rep['log']}`, rows val_*: {meta['validation']['windows']} "
               f"held-out 512² crops of the pool x {meta['validation']['rate_points']} rate points, mean PSNR-YUV; "
               f"BOP {bop_p:.3f} dB on them)", "",
               "| step | wall s | " + " | ".join(f"{n} dB (vs BOP)" for n in light_names) + " |",
               "|---:|---:|" + "---:|" * len(light_names)]
        for st in steps:
            at = {v["variant"]: v for v in val if v["step"] == st}
            wall = next(iter(at.values()))["wall_s"]
            md.append(f"| {st} | {wall:.0f} | " + " | ".join(
                f"{at[n]['psnr']:.3f} ({at[n]['vs_bop']:+.3f})" if n in at else "" for n in light_names) + " |")
    if trend:
        md += ["", f"## Training log trend (`{rep['log']}`; means over sixths of the run; the rate point is random per "
               "crop, so single rows are noisy)", "", "| variant | steps | loss (λ·MSE_yuv + bpp) | train PSNR-YUV | "
               "lr at end |", "|---|---|---:|---:|---:|"]
        md += [f"| {n} | {t['steps']} | {t['loss']:.4f} | {t['psnr']:.3f} | {t['lr']} |"
               for n, ts in trend.items() for t in ts]
    md += [""]
    return "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", action="store_true", help="build the latent cache of the training pool")
    ap.add_argument("--minutes", type=float, default=0.0, help="train the light variants for this wall time")
    ap.add_argument("--evaluate", action="store_true", help="MACs, ORT time, Kodak RD of BOP, SOP and the variants")
    ap.add_argument("--variants", default="light_b", help=f"variants to train, of {','.join(VARIANTS)}")
    ap.add_argument("--checkpoint", default=str(BOP_CKPT), help="the frozen vr_bop codec")
    ap.add_argument("--cache-file", default=None)
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--kodak", default="../shared/datasets/kodak")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=30, help="ORT timing rounds")
    ap.add_argument("--out", default=str(OUT_CKPT))
    ap.add_argument("--log", default=str(LOG))
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-min", type=float, default=1e-5)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--grad-clip", type=float, default=5.0)
    ap.add_argument("--init-batches", type=int, default=8, help="batches of the least-squares initialisation")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--save-every-min", type=float, default=10.0)
    ap.add_argument("--val-every-min", type=float, default=10.0, help="validation on the held-out windows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import sys

    args.command_line = "python -m training.light_synthesis " + " ".join(sys.argv[1:])
    args.variants = [v for v in args.variants.split(",") if v]
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    codec, bop_meta = load_codec(args.checkpoint)
    if args.cache:
        build_cache(codec, args.data, sha256(args.checkpoint))
    if args.minutes > 0:
        train(args, codec, bop_meta)
    if args.evaluate:
        evaluate(args, codec)


if __name__ == "__main__":
    main()
