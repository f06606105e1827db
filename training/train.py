"""Train the variable-rate codec (BOP synthesis first, then SOP against the frozen latent).

    python -m training.train --resume [--time-limit-min 140]          # the VM 3.3-based model (vm33)
    python -m training.train --model vr --name vr_bop --resume --crop 128 --loss mse   # the older model
    python -m training.train --resume --op sop      # SOP synthesis only, everything else frozen

Models: `vm33` (training/vm_codec.py, starts from the JPEG AI VM 3.3 networks; default) and `vr`
(training/codec.py, trained from scratch). Recipe (vm33 defaults): loss = bpp/lambda_r - PSNR-YUV per
image (the metric we report, normalised per rate point), crop 256, linear warm-up after every optimizer
reset, cosine decay to --lr-min over the planned run (--time-limit-min or --steps), lr logged. The whole
analysis trains end to end by default, on the CPU too: a full step measured 1.7 s on one EPYC (Zen 4,
AVX-512) thread on 2026-12-04 (the luma analysis' forward + backward: 1.2 s of a crop-256 batch of 8), so
the frozen-head recipe (--frozen-analysis on: features of the head from training/latent_cache.py, only the
last --analysis-tail stages train) saved little and capped the top rate point (31 dB with the whole
analysis frozen, 32 dB with its last three stages training; see training/README.md).  Resuming with more
stages unfrozen keeps the Adam state of everything that trained before and warms up.

Checkpoints: training/checkpoints/<name>.pt (float16 weights + step; committed, overwritten) and
<name>.opt.pt (float32 weights + Adam state; ignored by git, used when its step matches).
Log: one TSV row per --log-every steps and per Kodak evaluation, appended to training/logs/.
"""
import argparse
import math
import os
import pathlib
import signal
import statistics
import time

import torch

from . import codec as vr_codec
from . import vm33, vm_codec
from .augment import LINE_PROBABILITY, paint_frame_lines
from .colour import psnr, psnr_yuv, rgb_to_yuv420, weighted_mse, yuv_mse
from .data import TrainPool, load_kodak
from .evaluate import evaluate_kodak
from .msssim import msssim_db
from .tsv_log import TsvLog

HERE = pathlib.Path(__file__).resolve().parent
LOG_COLUMNS = ("utc_time", "step", "device", "threads", "rate_point", "loss", "train_bpp",
               "train_psnr_yuv", "kodak_bpp", "kodak_psnr_yuv", "kodak_images", "wall_s", "lr")
MODELS = {"vr": (vr_codec.Codec, vr_codec.RATE_LAMBDAS, "vr_bop"),
          "vm33": (vm_codec.VMCodec, vm_codec.VM_RATE_LAMBDAS, "vm33")}
# Per-image MSE floor (0-255 domain) before the log: a flat chroma crop must not dominate the
# log-domain loss (MSE 0.05 = 61 dB).
MSE_FLOOR = 0.05
# MS-SSIM-Y (dB) beside PSNR-YUV in the vm33 loss, from step 64,307: trained on PSNR-YUV alone from step 41,061 to
# 64,201 the model gained 6.2 % BD-rate in PSNR-YUV but lost 4.6 % in MS-SSIM (rd_eval, 24 Kodak images, real
# bytes), and issue 11 asks for both; 0.5: PSNR-YUV two thirds of the quality (both slopes ~4 dB per e-fold
# of rate).  As a weighted mean from step 68,392 (a plain sum moved every rate point up, see rd_loss).
MSSSIM_WEIGHT_VM33 = 0.5
GAIN_LR_MULT = 10.0  # gain units move whole rate points; at the base lr they would take ~1e5 steps
# z priors: a factorised density has to follow z's whole distribution; at the base lr a fresh one still
# spent 0.15 bpp on luma z after 850 steps (kodim01, vm33), ~10x what a fitted one does
PRIOR_LR_MULT = 10.0
LEGACY_TRAINABLE_STAGES = 2  # checkpoints written before the meta recorded it: the CPU tail-2 recipe
ALL_ANALYSIS_STAGES = 5  # vm33.Analysis.stages(): three gated blocks, the stride-2 conv, the 1x1


def parse_args():
    ap = argparse.ArgumentParser(description="Train the jpegai_fast codec.")
    ap.add_argument("--model", default="vm33", choices=sorted(MODELS))
    ap.add_argument("--name", default=None, help="checkpoint and log file stem (default: vm33 / vr_bop)")
    ap.add_argument("--op", default="bop", choices=["bop", "sop"])
    ap.add_argument("--checkpoint", default=None,
                    help="checkpoint file (default checkpoints/<name>.pt); a SOP run beside a BOP run uses its "
                         "own copy, merged back with `python -m training.merge_sop`")
    ap.add_argument("--log-dir", default=None, help="folder of the TSV log (default training/logs)")
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--subset-per-photo", type=int, default=0, help="crops per source photo (0 = all)")
    ap.add_argument("--min-detail", type=float, default=0.0,
                    help="keep only training crops with at least this much fine detail (data.detail_rms; 0 = all)")
    ap.add_argument("--kodak", default="../shared/datasets/kodak")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    ap.add_argument("--lr-min", type=float, default=1e-5, help="learning rate at the end of the planned run")
    ap.add_argument("--analysis-lr-mult", type=float, default=1.0,
                    help="the analysis (encoder) at this multiple of the lr, in a parameter group of its own: "
                         "latent optimisation shows the analysis, not the synthesis, limits quality (README)")
    ap.add_argument("--analysis-hi-from", type=int, default=None,
                    help="vm33: rate points from this index up get an analysis of their own (encoder only; starts as "
                         "a copy of the shared one); default: as the checkpoint has it (none for a fresh model)")
    ap.add_argument("--train-only", default="all", choices=["all", "analysis-hi", "analysis-lo"],
                    help="analysis-hi (vm33 with a high-rate analysis): only the high-rate analysis trains, on its "
                         "rate points only; everything else stays fixed (README: measured 2026-12-07, +0.019 dB at "
                         "equal rate in 835 steps where the full recipe had flattened).  analysis-lo: the same for "
                         "the shared analysis on the rate points below --analysis-hi-from (encoder only: streams "
                         "of the new encoder decode with the shipped decoder).  Each keeps its own Adam state: "
                         "another choice starts a fresh optimizer with a warm-up")
    ap.add_argument("--pre-emphasis", type=float, default=None,
                    help="vm33 with a high-rate analysis: train it on the pre-emphasised picture x + β·(x − S(A(x))) "
                         "that the runtime encoder's second pass shows it (vm_codec.VMCodec._analysis_hi; one more "
                         "analysis + synthesis forward per high-rate picture); default: as the checkpoint has it "
                         "(0 = off)")
    ap.add_argument("--warmup-steps", type=int, default=300, help="linear warm-up after an optimizer reset")
    ap.add_argument("--loss", default=None, choices=["psnr", "mse"],
                    help="psnr: bpp/lambda - PSNR-YUV (vm33 default); mse: lambda·MSE_yuv(6:1:1) + bpp (vr)")
    ap.add_argument("--frozen-analysis", default="off", choices=["on", "off"],
                    help="on: keep the analysis head fixed and train its last --analysis-tail stages on cached "
                         "features (the CPU recipe up to step 45,415); off: the whole analysis trains")
    ap.add_argument("--latent-cache", default=None, help="cache file of training.latent_cache")
    ap.add_argument("--analysis-tail", type=int, default=None, choices=range(5),
                    help="with a frozen analysis: its last N stages still train on cached features "
                         "(default training.latent_cache.DEFAULT_TAIL)")
    ap.add_argument("--distill-steps", type=int, default=400,
                    help="fresh vm33 model: steps distilling the VM scale decoder into the integer HSD first")
    ap.add_argument("--prior-fit-steps", type=int, default=600,
                    help="vm33: steps fitting the z priors alone before training (once per model)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="bfloat16 autocast of the networks (the entropy path stays float32); default: on CUDA and "
                         "on CPUs with native bf16 (AVX512-BF16 / AMX: 1.6x faster steps measured on a Zen 4), "
                         "off elsewhere (emulated bf16 is slower)")
    ap.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm (0 = off)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:n]")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint if present")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps in this run (0 = no limit)")
    ap.add_argument("--time-limit-min", type=float, default=0.0, help="stop after this wall time (0 = no limit)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every-min", type=float, default=10.0)
    ap.add_argument("--eval-every-min", type=float, default=40.0)
    ap.add_argument("--eval-images", type=int, default=6)
    ap.add_argument("--eval-rates", default=None,
                    help="rate indices evaluated on Kodak (default: the first two, the last and two between: "
                         "vm33 0,1,4,8,11 = lambda 0.011, 0.017, 0.065, 0.28, 0.9)")
    ap.add_argument("--frame-lines", type=float, default=LINE_PROBABILITY,
                    help="probability per crop of thin constant lines along its borders (training.augment; 0 = off)")
    ap.add_argument("--msssim-weight", type=float, default=None,
                    help="psnr loss: weight of MS-SSIM-Y (dB) beside PSNR-YUV in each rate point's quality "
                         f"(default {MSSSIM_WEIGHT_VM33} for vm33, 0 = PSNR-YUV alone)")
    ap.add_argument("--sop-weight", type=float, default=None,
                    help="BOP runs of vm33: the SOP synthesis trains in the same steps on the same latent (detached: "
                         "it never moves the latent), its -PSNR-YUV weighted by this (default 1 for vm33, 0 = off)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def bf16_autocast(device) -> bool:
    """Default for --bf16: CUDA, or a CPU whose oneDNN runs bf16 natively (measured 2026-12-04 on one Zen 4
    thread: a crop-256 batch-8 vm33 step 1.39 s with bf16 autocast vs 2.28 s in float32, both beside a
    2-thread training run)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _atomic_save(obj, path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(model, opt, op, meta, ckpt, opt_path):
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    _atomic_save({"meta": meta, "state_dict": half}, ckpt)
    _atomic_save({"meta": meta, "state_dict": model.state_dict(), "op": op, "optimizer": opt.state_dict()},
                 opt_path)


def adapt_rate_points(state_dict, meta, rate_lambdas):
    """A checkpoint trained with other rate points: each gain row of a lambda that is still in
    rate_lambdas is kept; a new lambda's row is inter-/extrapolated linearly in log(lambda) from the two
    nearest old rows (log2 gain grows about linearly in log lambda). Returns True when rows changed."""
    old = [float(x) for x in meta.get("rate_lambdas", rate_lambdas)]
    if old == [float(x) for x in rate_lambdas]:
        return False
    log_old = torch.tensor(old, dtype=torch.float64).log()
    for key in [k for k in state_dict if k.endswith("gain.log2_gain")]:
        rows = state_dict[key].double()
        new_rows = []
        for lam in rate_lambdas:
            if float(lam) in old:
                new_rows.append(rows[old.index(float(lam))])
                continue
            a, b = sorted(range(len(old)), key=lambda i: abs(log_old[i] - math.log(lam)))[:2]
            t = (math.log(lam) - log_old[a]) / (log_old[b] - log_old[a])
            new_rows.append(rows[a] + t * (rows[b] - rows[a]))
        state_dict[key] = torch.stack(new_rows).to(state_dict[key].dtype)
    print(f"rate points {old} -> {list(rate_lambdas)}: gain rows adapted", flush=True)
    meta["rate_lambdas"] = list(rate_lambdas)
    return True


def load_checkpoint(model, opt, op, ckpt, opt_path, device, rate_lambdas, trainable_stages=ALL_ANALYSIS_STAGES,
                    train_only="all"):
    """Prefer the full-precision local state when it belongs to the same steps; else the committed file.
    Adam state is reused only by the stage (bop/sop) that wrote it, only for the same rate points and only by
    the --train-only choice that wrote it (the two analyses have the same shapes: their states would load into
    each other).  -> (meta, how, optimizer_state_kept)."""
    committed = torch.load(ckpt, map_location=device)
    initial_lrs = [group["lr"] for group in opt.param_groups]
    if adapt_rate_points(committed["state_dict"], committed["meta"], rate_lambdas):
        model.load_state_dict(committed["state_dict"])
        return committed["meta"], "float16 weights, rate points adapted, fresh optimizer", False
    if opt_path.exists():
        full = torch.load(opt_path, map_location=device)
        if full["meta"]["steps"] == committed["meta"]["steps"] and not same_weights(full["state_dict"],
                                                                                    committed["state_dict"]):
            # the committed file was edited (a graft, a hand-made checkpoint) after the local state was saved:
            # its weights win, and Adam starts afresh with a warm-up
            model.load_state_dict(committed["state_dict"])
            return committed["meta"], "float16 weights (they differ from the local float32 state), fresh optimizer", \
                False
        if full["meta"]["steps"] == committed["meta"]["steps"]:
            model.load_state_dict(full["state_dict"])
            if full["op"] != op:
                return full["meta"], "float32 weights, fresh optimizer", False
            # written before the key existed: "all", or "analysis-hi" where hi-only steps were the last ones
            saved_over = full["meta"].get("optimizer_over")
            if saved_over is None:
                saved_over = "analysis-hi" if full["meta"].get("analysis_hi_only_steps") else "all"
            if saved_over != train_only:
                return full["meta"], f"float32 weights, fresh optimizer (it was over {saved_over})", False
            try:
                opt.load_state_dict(full["optimizer"])
            except ValueError:  # the recipe changed the parameter groups: keep what state there is, warm up
                old_stages = full["meta"].get("analysis_trainable_stages", LEGACY_TRAINABLE_STAGES)
                try:
                    old_groups = param_groups(model, op, old_stages, *saved_group_layout(full["optimizer"]))
                    kept, total = transfer_optimizer_state(opt, full["optimizer"], old_groups)
                except (ValueError, IndexError):
                    return full["meta"], "float32 weights, fresh optimizer (parameter groups changed)", False
                return (full["meta"], f"float32 weights, Adam state kept for {kept} of {total} tensors "
                        f"(trained analysis stages {old_stages} -> {trainable_stages}, parameter groups "
                        f"{len(full['optimizer']['param_groups'])} -> {len(opt.param_groups)}), warm-up", False)
            for group, lr in zip(opt.param_groups, initial_lrs):  # the saved state carries its own lr:
                group["lr"] = lr                                    # --lr of this run wins
            return full["meta"], "float32 weights + optimizer state", True
    model.load_state_dict(committed["state_dict"])
    return committed["meta"], "float16 weights, fresh optimizer", False


def same_weights(full_state, committed_state) -> bool:
    """Whether the committed (float16) state is the local float32 state as save_checkpoint rounds it."""
    if full_state.keys() != committed_state.keys():
        return False
    return all(torch.equal(v.to(committed_state[k].dtype), committed_state[k]) for k, v in full_state.items())


def saved_group_layout(saved_optimizer):
    """-> (joint_sop, analysis_group) of a saved BOP optimizer: [rest, gains, priors] + [SOP] + [analysis];
    the analysis group is the one whose lr_mult is not 1."""
    mults = [g.get("lr_mult", 1.0) for g in saved_optimizer["param_groups"]]
    extra = mults[3:]
    return (1.0 in extra[:1]), (len(extra) == 2 or (len(extra) == 1 and extra[0] != 1.0))


def trainable_analysis_stages(frozen_analysis, analysis_tail):
    """How many of the last analysis stages train: all of them unless the head is frozen (vm33 on the CPU)."""
    return analysis_tail if frozen_analysis else ALL_ANALYSIS_STAGES


def param_groups(model, op, trainable_stages=ALL_ANALYSIS_STAGES, joint_sop=False, analysis_group=False):
    """The optimizer's parameter lists, in order: [rest, gains, priors] for BOP (the frozen analysis head and
    any SOP synthesis left out), + [SOP synthesis] when it trains beside BOP, + [trainable analysis] when
    analysis_group (its own learning rate); [synthesis] for SOP alone.
    Pure: requires_grad is set by make_optimizer."""
    if op == "sop":
        return [list(model.synthesis["sop"].parameters())]
    # vm33's SOP synthesis stays out of the BOP groups (it trains beside BOP or not at all); vr's BOP optimizer
    # has always held its idle SOP synthesis in `rest`, which its saved Adam states index
    sop = list(model.synthesis["sop"].parameters()) if getattr(model, "sop_trains_beside_bop", False) else []
    frozen = {id(p) for p in sop}
    if trainable_stages < ALL_ANALYSIS_STAGES and hasattr(model, "luma_analysis"):
        for m in (model.luma_analysis, model.chroma_analysis):
            for stage in m.stages()[:len(m.stages()) - trainable_stages]:
                frozen.update(id(p) for p in stage.parameters())
    gains = [model.luma.gain.log2_gain, model.chroma.gain.log2_gain]
    priors = list(model.luma.z_prior.parameters()) + list(model.chroma.z_prior.parameters())
    ids = {id(p) for p in gains + priors} | frozen
    analysis = []
    if analysis_group and hasattr(model, "luma_analysis"):
        analysis = [p for m in model.encoder_modules() for p in m.parameters() if id(p) not in ids]
        ids |= {id(p) for p in analysis}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [rest, gains, priors] + ([sop] if joint_sop else []) + ([analysis] if analysis else [])


def make_optimizer(model, op, lr, frozen_analysis=False, analysis_tail=0, joint_sop=False, analysis_lr_mult=1.0):
    """Adam; SOP trains only its synthesis, a frozen analysis head (all but its last analysis_tail stages) is
    left out; gain units get GAIN_LR_MULT, z priors PRIOR_LR_MULT; joint_sop: the SOP synthesis trains in
    the same steps on the same (detached) latent; analysis_lr_mult != 1 puts the trainable analysis in a
    group of its own at that multiple of the base lr."""
    groups = param_groups(model, op, trainable_analysis_stages(frozen_analysis, analysis_tail), joint_sop,
                          analysis_group=analysis_lr_mult != 1.0)
    trainable = {id(p) for g in groups for p in g}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    if op == "sop":
        return torch.optim.Adam(groups[0], lr=lr)
    mults = [1.0, GAIN_LR_MULT, PRIOR_LR_MULT] + ([1.0] if joint_sop else [])
    mults += [analysis_lr_mult] * (len(groups) - len(mults))
    return torch.optim.Adam([{"params": g, "lr": lr * m, "lr_mult": m} for g, m in zip(groups, mults)])


def make_analysis_only_optimizer(model, lr, which="hi"):
    """Adam over one analysis alone — the high-rate one (--train-only analysis-hi) or the shared one that serves
    the rate points below it (which="lo", --train-only analysis-lo); every other tensor is fixed."""
    parts = (model.luma_analysis_hi, model.chroma_analysis_hi) if which == "hi" else \
        (model.luma_analysis, model.chroma_analysis)
    params = [p for m in parts for p in m.parameters()]
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return torch.optim.Adam([{"params": params, "lr": lr, "lr_mult": 1.0}])


def transfer_optimizer_state(opt, saved, old_groups):
    """Adam state saved under other parameter groups (e.g. more analysis stages unfrozen): each tensor that
    had state keeps it, the newly trained ones start fresh.  saved indexes its state by position in the old
    groups' concatenation.  -> (tensors with state kept, tensors in the new optimizer)."""
    old_params = [p for g in old_groups for p in g]
    if [len(g["params"]) for g in saved["param_groups"]] != [len(g) for g in old_groups]:
        raise ValueError("saved optimizer does not match the old parameter groups")
    new_ids = {id(p) for g in opt.param_groups for p in g["params"]}
    kept = 0
    for index, state in saved["state"].items():
        p = old_params[int(index)]
        if id(p) in new_ids:
            opt.state[p] = {k: v.to(p.device) if torch.is_tensor(v) and k != "step" else v
                            for k, v in state.items()}
            kept += 1
    return kept, len(new_ids)


def lr_factor(steps_since_reset, warmup_steps, progress):
    """Linear warm-up over warmup_steps after an optimizer reset, times a cosine from 1 to 0 over the
    planned run (progress in [0, 1]; None = no plan, no decay). The caller maps 0 to --lr-min."""
    warm = min(1.0, (steps_since_reset + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    decay = 1.0 if progress is None else 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warm, decay


def rd_loss(kind, lambdas, rate_idx, mse3, bpp, msssim_db=None, msssim_weight=0.0):
    """Per-batch training loss. psnr: mean of bpp/lambda_r - PSNR-YUV (6:1:1 of the per-image component
    PSNRs, MSE floored at MSE_FLOOR), the quality being (PSNR-YUV + msssim_weight·MS-SSIM-Y dB) / (1 +
    msssim_weight) when msssim_db is given (both metrics we report, in dB); mse: mean of
    lambda_r·MSE_yuv(6:1:1) + bpp (the older recipe)."""
    if kind == "psnr":
        p = psnr(mse3.clamp_min(MSE_FLOOR))
        p_yuv = (6.0 * p[:, 0] + p[:, 1] + p[:, 2]) / 8.0
        # the weighted mean, not the sum: a sum raises every point's quality slope (~1.5x at 0.5) and with it
        # every rate (measured: lambda 0.011 went 0.041 -> 0.067 bpp on 6 Kodak images in 3,900 steps)
        quality = p_yuv if msssim_db is None else (p_yuv + msssim_weight * msssim_db) / (1.0 + msssim_weight)
        return (bpp / lambdas[rate_idx] - quality).mean()
    return (lambdas[rate_idx] * weighted_mse(mse3) + bpp).mean()


def distill_hsd(model, teacher, batches, steps, lr, log_every=50):
    """Fit our integer HSD (QAT) to the VM's float scale decoder before the joint training starts."""
    params = list(model.luma.hyper_scale.parameters()) + list(model.chroma.hyper_scale.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    t0 = time.time()
    for i in range(steps):
        y_lat, c_lat = batches()
        loss = vm_codec.distillation_loss(model, teacher, y_lat, c_lat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (i + 1) % log_every == 0:
            print(f"distill {i + 1}/{steps}: {float(loss):.4f} (sigma levels^2) {time.time() - t0:.0f} s", flush=True)


def fit_z_priors(model, batches, steps, lr, log_every=100):
    """Fit the factorised z priors alone to the (fixed) hyper encoders' z: maximum likelihood of z + noise."""
    params = list(model.luma.z_prior.parameters()) + list(model.chroma.z_prior.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    t0 = time.time()
    for i in range(steps):
        y_lat, c_lat = batches()
        bits = 0.0
        for comp, lat in ((model.luma, y_lat), (model.chroma, c_lat)):
            with torch.no_grad():
                z, _ = comp.z_hat(lat)
            bits = bits + comp.z_prior.bits(z + torch.empty_like(z).uniform_(-0.5, 0.5)).sum()
        loss = bits / y_lat.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (i + 1) % log_every == 0:
            print(f"z prior fit {i + 1}/{steps}: {float(loss):.1f} bits per crop, {time.time() - t0:.0f} s", flush=True)


def main():
    args = parse_args()
    model_cls, rate_lambdas, default_name = MODELS[args.model]
    args.name = args.name or default_name
    loss_kind = args.loss or ("psnr" if args.model == "vm33" else "mse")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    amp = bf16_autocast(device) if args.bf16 is None else args.bf16  # the entropy path stays float32/float64
    frozen = args.frozen_analysis == "on"
    if frozen and args.model != "vm33":
        raise SystemExit("--frozen-analysis needs the vm33 model (latent cache)")

    ckpt_dir = HERE / "checkpoints"
    ckpt = pathlib.Path(args.checkpoint) if args.checkpoint else ckpt_dir / f"{args.name}.pt"
    resuming = args.resume and ckpt.exists()
    # a resumed vm33 model takes every weight from its checkpoint, so the VM ONNX files are not needed
    hi_from = args.analysis_hi_from
    if args.model != "vm33" and hi_from is not None:
        raise SystemExit("--analysis-hi-from needs the vm33 model")
    if args.model == "vm33" and hi_from is None and resuming:
        hi_from = torch.load(ckpt, map_location="cpu")["meta"].get("analysis_hi_from")
    if hi_from is not None and frozen:
        raise SystemExit("--analysis-hi-from and --frozen-analysis on do not go together (one feature cache)")
    model = (model_cls(pretrained=not resuming, analysis_hi_from=hi_from) if args.model == "vm33"
             else model_cls()).to(device)
    if frozen:
        from .latent_cache import DEFAULT_TAIL, LatentPool, default_path, fingerprint, head_state
        tail = DEFAULT_TAIL if args.analysis_tail is None else args.analysis_tail
    else:
        tail = 0
    sop_weight = (1.0 if args.model == "vm33" else 0.0) if args.sop_weight is None else args.sop_weight
    ms_weight = (MSSSIM_WEIGHT_VM33 if args.model == "vm33" else 0.0) if args.msssim_weight is None \
        else args.msssim_weight
    if ms_weight and loss_kind != "psnr":
        raise SystemExit("--msssim-weight needs --loss psnr")
    joint_sop = args.op == "bop" and sop_weight > 0 and getattr(model, "sop_trains_beside_bop", False)
    hi_only, lo_only = args.train_only == "analysis-hi", args.train_only == "analysis-lo"
    if hi_only or lo_only:
        if hi_from is None or args.op != "bop" or frozen:
            raise SystemExit(f"--train-only {args.train_only} needs a vm33 BOP model with a high-rate analysis "
                             "(--analysis-hi-from) and --frozen-analysis off")
        joint_sop = False  # the SOP synthesis is fixed like everything else
        opt = make_analysis_only_optimizer(model, args.lr, "hi" if hi_only else "lo")
    else:
        opt = make_optimizer(model, args.op, args.lr, frozen, tail, joint_sop, args.analysis_lr_mult)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    opt_path = ckpt.with_name(ckpt.stem + ".opt.pt")
    meta = {"steps": {"bop": 0, "sop": 0}, "wall_s": 0.0, "rate_lambdas": list(rate_lambdas), "model": args.model}
    opt_kept = False
    if resuming:
        meta, how, opt_kept = load_checkpoint(model, opt, args.op, ckpt, opt_path, device, rate_lambdas,
                                              trainable_analysis_stages(frozen, tail), args.train_only)
        print(f"resumed {ckpt} at steps {meta['steps']} ({how})", flush=True)
    # wall time per stage, so a SOP run trained beside BOP (its own --checkpoint, merged afterwards by
    # training.merge_sop) adds its own time to the record
    meta.setdefault("wall_s_by_op", {"bop": meta["wall_s"], "sop": 0.0})  # older checkpoints: all BOP
    meta.setdefault("model", args.model)
    meta["analysis_trainable_stages"] = trainable_analysis_stages(frozen, tail)
    meta["min_detail"] = args.min_detail  # the training crops this run drew from (data.detail_rms)
    if args.model == "vm33":
        meta["analysis_hi_from"] = hi_from
        if hi_from is not None:
            meta.setdefault("analysis_hi_since_step", meta["steps"]["bop"])
        beta = float(meta.get("pre_emphasis_train", 0.0)) if args.pre_emphasis is None else args.pre_emphasis
        if not 0.0 <= beta <= 1.0 or (beta and hi_from is None):
            raise SystemExit("--pre-emphasis: a number in [0, 1], for a model with a high-rate analysis")
        model.pre_emphasis = meta["pre_emphasis_train"] = beta
        if beta and args.pre_emphasis is not None and meta.get("pre_emphasis_since_step") is None:
            meta["pre_emphasis_since_step"] = meta["steps"]["bop"]
    if joint_sop:
        meta.setdefault("sop_beside_bop_from_step", meta["steps"]["bop"])
    log_name = f"{args.name}.tsv" if args.op == "bop" else f"{args.name}_{args.op}.tsv"
    log = TsvLog(pathlib.Path(args.log_dir or HERE / "logs") / log_name, LOG_COLUMNS)

    counts = vm_codec.parameter_counts(model) if args.model == "vm33" else vr_codec.parameter_counts(model)
    for part, n in counts.items():
        print(f"params {part:30s} {n:10,d}", flush=True)
    t0 = time.time()
    if frozen:
        from .data import pool_files
        pool = LatentPool(args.latent_cache or default_path(tail))
        want = fingerprint(pool_files(args.data), head_state(model.luma_analysis, model.chroma_analysis, tail))
        if pool.tail != tail or pool.fingerprint != want:
            raise SystemExit(f"feature cache is stale (tail {pool.tail}, fingerprint {pool.fingerprint}; the model "
                             f"needs tail {tail}, {want}): python -m training.latent_cache --tail {tail}")
        print(f"feature pool: {len(pool)} crops (analysis head frozen, last {tail} stages train), "
              f"loaded in {time.time() - t0:.1f} s", flush=True)
    else:
        pool = TrainPool(args.data, args.subset_per_photo, args.min_detail)
        print(f"pool: {len(pool)} crops from {pool.photos} photos, {pool.nbytes() / 2**20:.0f} MiB, "
              f"loaded in {time.time() - t0:.1f} s", flush=True)
    kodak = load_kodak(args.kodak, args.eval_images) if args.eval_images > 0 else []
    n_rates = len(rate_lambdas)
    eval_rates = ([int(r) for r in args.eval_rates.split(",")] if args.eval_rates
                  else sorted({0, min(1, n_rates - 1), n_rates // 3, 2 * n_rates // 3, n_rates - 1}))
    lambdas = torch.tensor(rate_lambdas, device=device)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    start_step = meta["steps"][args.op]
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + start_step)  # no replay after resume
    torch.manual_seed(args.seed * 1_000_003 + start_step + 1)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if amp and device.type == "cpu":
        dev_name = "cpu bf16"  # the log says which CPU rows ran with bf16 autocast
    print(f"bf16 autocast: {'on' if amp else 'off'}", flush=True)
    common = {"device": dev_name, "threads": args.threads}

    def next_batch():
        """-> (y, uv, latents or None) on the device."""
        if frozen:
            rgb, y_feat, c_feat = pool.batch(args.batch, args.crop, gen)
            changed = paint_frame_lines(rgb, gen, args.frame_lines) if args.frame_lines > 0 else []
            y, uv = rgb_to_yuv420(rgb.to(device))
            y_feat, c_feat = y_feat.to(device), c_feat.to(device)
            if changed:  # the cached head features are those of the unpainted pixels: recompute these crops'
                with torch.no_grad():
                    y_feat[changed] = model.luma_analysis.head(y[changed], tail)
                    c_feat[changed] = model.chroma_analysis.head(vm33.chroma_analysis_input(y[changed], uv[changed]),
                                                                 tail)
            return y, uv, (model.luma_analysis.tail(y_feat, tail), model.chroma_analysis.tail(c_feat, tail))
        rgb = pool.batch(args.batch, args.crop, gen)
        if args.frame_lines > 0:
            paint_frame_lines(rgb, gen, args.frame_lines)
        y, uv = rgb_to_yuv420(rgb.to(device))
        return y, uv, None

    def latents():
        y, uv, lat = next_batch()
        if lat is None:
            with torch.no_grad():
                lat = model.analysis(y, uv)
        return lat

    if args.model == "vm33" and args.op == "bop" and start_step == 0 and args.distill_steps > 0:
        teacher = vm_codec.ScaleTeacher().to(device)
        distill_hsd(model, teacher, latents, args.distill_steps, lr=3e-4)
        del teacher
    if args.model == "vm33" and args.op == "bop" and not meta.get("z_prior_fitted") and args.prior_fit_steps > 0:
        fit_z_priors(model, latents, args.prior_fit_steps, lr=1e-2)
        meta["z_prior_fitted"] = True

    run_start = last_save = last_eval = time.time()
    wall0, op_wall0 = meta["wall_s"], meta["wall_s_by_op"].get(args.op, 0.0)
    step, window, window_sop, window_grad = start_step, [], [], []
    warmup = 0 if opt_kept else args.warmup_steps
    current_lr = args.lr

    def wall():
        return round(wall0 + time.time() - run_start, 1)

    only_key = "analysis_hi_only_steps" if hi_only else "analysis_lo_only_steps"
    only_steps0 = meta.get(only_key, 0)
    # hi_only / lo_only: the rate points the high-rate / the shared analysis serves
    lowest_rate = hi_from if hi_only else 0
    rate_end = hi_from if lo_only else len(rate_lambdas)

    def save():
        meta["steps"][args.op] = step
        meta["optimizer_over"] = args.train_only
        if hi_only or lo_only:  # steps in which nothing but that analysis trained (they count in steps too)
            meta[only_key] = only_steps0 + step - start_step
        meta["wall_s"] = wall()
        meta["wall_s_by_op"][args.op] = round(op_wall0 + time.time() - run_start, 1)
        save_checkpoint(model, opt, args.op, meta, ckpt, opt_path)

    def evaluate():
        t = time.time()
        for op in [args.op] + (["sop"] if joint_sop else []):
            tag = "" if op == args.op else f"{op} "
            for r, (bpp, psnr_) in evaluate_kodak(model, kodak, eval_rates, op, device).items():
                log.row(step=step, rate_point=f"{tag}{r}:{rate_lambdas[r]:g}", kodak_bpp=f"{bpp:.4f}",
                        kodak_psnr_yuv=f"{psnr_:.3f}", kodak_images=len(kodak), wall_s=wall(), **common)
                print(f"step {step} kodak {tag}rate {r}: {bpp:.4f} bpp {psnr_:.2f} dB", flush=True)
        print(f"kodak eval took {time.time() - t:.1f} s", flush=True)

    def progress():
        if args.time_limit_min:
            return (time.time() - run_start) / (60 * args.time_limit_min)
        if args.steps:
            return (step - start_step) / args.steps
        return None

    model.train()
    while stop["signal"] is None:
        elapsed = time.time() - run_start
        if (args.time_limit_min and elapsed >= 60 * args.time_limit_min) or \
                (args.steps and step - start_step >= args.steps):
            break
        warm, decay = lr_factor(step - start_step, warmup, progress())
        current_lr = warm * (args.lr_min + (args.lr - args.lr_min) * decay)
        for group in opt.param_groups:
            group["lr"] = current_lr * group.get("lr_mult", 1.0)
        y, uv, lat = next_batch()
        rate_idx = torch.randint(lowest_rate, rate_end, (args.batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if joint_sop:
                if lat is None:
                    lat = model.analysis(y, uv, rate_idx)
                y_hat, c_hat, bits = model.code_latents(*lat, rate_idx)
                y_rec, uv_rec = model.synthesis["bop"](y_hat, c_hat, y.shape[-2:])
                y_sop, uv_sop = model.synthesis["sop"](y_hat.detach(), c_hat.detach(), y.shape[-2:])
            elif lat is not None:
                y_rec, uv_rec, bits = model.forward_latents(*lat, rate_idx, y.shape[-2:], args.op)
            else:
                y_rec, uv_rec, bits = model(y, uv, rate_idx, args.op)
        mse3 = yuv_mse(y_rec.float(), uv_rec.float(), y, uv)
        bpp = bits / (y.shape[-2] * y.shape[-1])
        ms_db = msssim_db(y_rec.float(), y) if ms_weight else None
        loss = rd_loss(loss_kind, lambdas, rate_idx, mse3, bpp, ms_db, ms_weight)
        if joint_sop:  # distortion only: the SOP decodes the BOP's latent, it has no say in the rate
            mse3_sop = yuv_mse(y_sop.float(), uv_sop.float(), y, uv)
            ms_db_sop = msssim_db(y_sop.float(), y) if ms_weight else None
            loss = loss + sop_weight * rd_loss(loss_kind, lambdas, rate_idx, mse3_sop, torch.zeros_like(bpp),
                                               ms_db_sop, ms_weight)
            window_sop.append(psnr_yuv(mse3_sop.detach()).mean().item())
        if not torch.isfinite(loss):
            print(f"step {step}: non-finite loss, batch skipped", flush=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        trainable = [p for p in model.parameters() if p.requires_grad]
        if args.grad_clip > 0:  # returns the pre-clip norm: logged so the log shows how often the clip bites
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in trainable if p.grad is not None])
        opt.step()
        step += 1
        window_grad.append(float(grad_norm))
        window.append((loss.item(), bpp.mean().item(), psnr_yuv(mse3.detach()).mean().item(),
                       ms_db.mean().item() if ms_db is not None else float("nan")))
        if step % args.log_every == 0:
            n = len(window)
            loss_avg, b, p = (sum(w[i] for w in window) / n for i in range(3))
            mix = "mix hi-analysis" if hi_only else "mix lo-analysis" if lo_only else "mix"
            log.row(step=step, rate_point=mix, loss=f"{loss_avg:.4f}",
                    train_bpp=f"{b:.4f}", train_psnr_yuv=f"{p:.3f}", wall_s=wall(), lr=f"{current_lr:.3g}", **common)
            if window_sop:
                log.row(step=step, rate_point="mix sop", train_psnr_yuv=f"{sum(window_sop) / len(window_sop):.3f}",
                        wall_s=wall(), lr=f"{current_lr:.3g}", **common)
            sop_note = f" sop {sum(window_sop) / len(window_sop):.2f}" if window_sop else ""
            if ms_weight:
                sop_note += f" msssim_db {sum(w[3] for w in window) / n:.2f}"
            clip_note = f"clip {args.grad_clip:g}" if args.grad_clip > 0 else "no clip"
            print(f"step {step} loss {loss_avg:.4f} bpp {b:.4f} psnr_yuv {p:.2f}{sop_note} lr {current_lr:.3g} "
                  f"grad_norm {statistics.median(window_grad):.3g} (median; {clip_note}) "
                  f"({(time.time() - run_start) / max(step - start_step, 1):.2f} s/step)", flush=True)
            window, window_sop, window_grad = [], [], []
        if kodak and args.eval_every_min and time.time() - last_eval >= 60 * args.eval_every_min:
            evaluate()
            last_eval = time.time()
        if time.time() - last_save >= 60 * args.save_every_min:
            save()
            last_save = time.time()

    if stop["signal"] is None and kodak:
        evaluate()
    save()
    print(f"stopped at step {step} ({'signal ' + str(stop['signal']) if stop['signal'] else 'limit'}), "
          f"checkpoint {ckpt} {ckpt.stat().st_size / 2**20:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
