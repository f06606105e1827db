"""Train the variable-rate codec (BOP synthesis first, then SOP against the frozen latent).

    python -m training.train --resume [--crop 256] [--batch 8] [--time-limit-min 140]
    python -m training.train --resume --op sop      # SOP synthesis only, everything else frozen

Checkpoints: training/checkpoints/<name>.pt (float16 weights + step; committed, overwritten) and
<name>.opt.pt (float32 weights + Adam state; ignored by git, used when its step matches).
Log: one TSV row per --log-every steps and per Kodak evaluation, appended to training/logs/.
"""
import argparse
import datetime
import math
import os
import pathlib
import signal
import time

import torch

from .codec import RATE_LAMBDAS, Codec, parameter_counts
from .colour import psnr_yuv, rgb_to_yuv420, weighted_mse, yuv_mse
from .data import TrainPool, load_kodak
from .evaluate import evaluate_kodak

HERE = pathlib.Path(__file__).resolve().parent
LOG_COLUMNS = ("utc_time", "step", "device", "threads", "rate_point", "loss", "train_bpp",
               "train_psnr_yuv", "kodak_bpp", "kodak_psnr_yuv", "kodak_images", "wall_s")
GAIN_LR_MULT = 10.0  # gain units move whole rate points; at the base lr they would take ~1e5 steps


def parse_args():
    ap = argparse.ArgumentParser(description="Train the jpegai_fast codec.")
    ap.add_argument("--name", default="vr_bop", help="model name: checkpoint and log file stem")
    ap.add_argument("--op", default="bop", choices=["bop", "sop"])
    ap.add_argument("--checkpoint", default=None,
                    help="checkpoint file (default checkpoints/<name>.pt); a SOP run beside a BOP run uses its "
                         "own copy, merged back with `python -m training.merge_sop`")
    ap.add_argument("--data", default="../shared/datasets/train")
    ap.add_argument("--subset-per-photo", type=int, default=0, help="crops per source photo (0 = all)")
    ap.add_argument("--kodak", default="../shared/datasets/kodak")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
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
    ap.add_argument("--eval-rates", default="0,3,7", help="rate indices evaluated on Kodak")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


class TsvLog:
    def __init__(self, path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("\t".join(LOG_COLUMNS) + "\n")

    def row(self, **fields):
        fields["utc_time"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path, "a") as f:
            f.write("\t".join(str(fields.get(c, "")) for c in LOG_COLUMNS) + "\n")


def _atomic_save(obj, path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(model, opt, op, meta, ckpt, opt_path):
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    _atomic_save({"meta": meta, "state_dict": half}, ckpt)
    _atomic_save({"meta": meta, "state_dict": model.state_dict(), "op": op, "optimizer": opt.state_dict()},
                 opt_path)


def adapt_rate_points(state_dict, meta):
    """A checkpoint trained with other rate points: each gain row of a lambda that is still in
    RATE_LAMBDAS is kept; a new lambda's row is inter-/extrapolated linearly in log(lambda) from the two
    nearest old rows (log2 gain grows about linearly in log lambda). Returns True when rows changed."""
    old = [float(x) for x in meta.get("rate_lambdas", RATE_LAMBDAS)]
    if old == [float(x) for x in RATE_LAMBDAS]:
        return False
    log_old = torch.tensor(old, dtype=torch.float64).log()
    for key in [k for k in state_dict if k.endswith("gain.log2_gain")]:
        rows = state_dict[key].double()
        new_rows = []
        for lam in RATE_LAMBDAS:
            if float(lam) in old:
                new_rows.append(rows[old.index(float(lam))])
                continue
            a, b = sorted(range(len(old)), key=lambda i: abs(log_old[i] - math.log(lam)))[:2]
            t = (math.log(lam) - log_old[a]) / (log_old[b] - log_old[a])
            new_rows.append(rows[a] + t * (rows[b] - rows[a]))
        state_dict[key] = torch.stack(new_rows).to(state_dict[key].dtype)
    print(f"rate points {old} -> {list(RATE_LAMBDAS)}: gain rows adapted", flush=True)
    meta["rate_lambdas"] = list(RATE_LAMBDAS)
    return True


def load_checkpoint(model, opt, op, ckpt, opt_path, device):
    """Prefer the full-precision local state when it belongs to the same steps; else the committed file.
    Adam state is reused only by the stage (bop/sop) that wrote it and only for the same rate points."""
    committed = torch.load(ckpt, map_location=device)
    initial_lrs = [group["lr"] for group in opt.param_groups]
    if adapt_rate_points(committed["state_dict"], committed["meta"]):
        model.load_state_dict(committed["state_dict"])
        return committed["meta"], "float16 weights, rate points adapted, fresh optimizer"
    if opt_path.exists():
        full = torch.load(opt_path, map_location=device)
        if full["meta"]["steps"] == committed["meta"]["steps"]:
            model.load_state_dict(full["state_dict"])
            if full["op"] != op:
                return full["meta"], "float32 weights, fresh optimizer"
            opt.load_state_dict(full["optimizer"])
            for group, lr in zip(opt.param_groups, initial_lrs):  # the saved state carries its own lr:
                group["lr"] = lr                                    # --lr of this run wins
            return full["meta"], "float32 weights + optimizer state"
    model.load_state_dict(committed["state_dict"])
    return committed["meta"], "float16 weights, fresh optimizer"


def make_optimizer(model, op, lr):
    if op == "sop":
        trainable = {id(p) for p in model.synthesis["sop"].parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        return torch.optim.Adam(model.synthesis["sop"].parameters(), lr=lr)
    gains = [model.luma.gain.log2_gain, model.chroma.gain.log2_gain]
    ids = {id(p) for p in gains}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": rest, "lr": lr}, {"params": gains, "lr": lr * GAIN_LR_MULT}])


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    amp = device.type == "cuda"  # bfloat16 autocast; the entropy path runs in float32/float64 regardless

    model = Codec().to(device)
    opt = make_optimizer(model, args.op, args.lr)
    ckpt_dir = HERE / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    ckpt = pathlib.Path(args.checkpoint) if args.checkpoint else ckpt_dir / f"{args.name}.pt"
    opt_path = ckpt.with_name(ckpt.stem + ".opt.pt")
    meta = {"steps": {"bop": 0, "sop": 0}, "wall_s": 0.0, "rate_lambdas": list(RATE_LAMBDAS)}
    if args.resume and ckpt.exists():
        meta, how = load_checkpoint(model, opt, args.op, ckpt, opt_path, device)
        print(f"resumed {ckpt} at steps {meta['steps']} ({how})", flush=True)
    # wall time per stage, so a SOP run trained beside BOP (its own --checkpoint, merged afterwards by
    # training.merge_sop) adds its own time to the record
    meta.setdefault("wall_s_by_op", {"bop": meta["wall_s"], "sop": 0.0})  # older checkpoints: all BOP
    log = TsvLog(HERE / "logs" / (f"{args.name}.tsv" if args.op == "bop" else f"{args.name}_{args.op}.tsv"))

    for part, n in parameter_counts(model).items():
        print(f"params {part:30s} {n:10,d}", flush=True)
    t0 = time.time()
    pool = TrainPool(args.data, args.subset_per_photo)
    print(f"pool: {len(pool)} crops from {pool.photos} photos, {pool.nbytes() / 2**20:.0f} MiB, "
          f"loaded in {time.time() - t0:.1f} s", flush=True)
    kodak = load_kodak(args.kodak, args.eval_images)
    eval_rates = [int(r) for r in args.eval_rates.split(",")]
    lambdas = torch.tensor(RATE_LAMBDAS, device=device)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    start_step = meta["steps"][args.op]
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + start_step)  # no replay after resume
    torch.manual_seed(args.seed * 1_000_003 + start_step + 1)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    common = {"device": dev_name, "threads": args.threads}
    run_start = last_save = last_eval = time.time()
    wall0, op_wall0 = meta["wall_s"], meta["wall_s_by_op"].get(args.op, 0.0)
    step, window = start_step, []

    def wall():
        return round(wall0 + time.time() - run_start, 1)

    def save():
        meta["steps"][args.op] = step
        meta["wall_s"] = wall()
        meta["wall_s_by_op"][args.op] = round(op_wall0 + time.time() - run_start, 1)
        save_checkpoint(model, opt, args.op, meta, ckpt, opt_path)

    def evaluate():
        t = time.time()
        for r, (bpp, psnr) in evaluate_kodak(model, kodak, eval_rates, args.op, device).items():
            log.row(step=step, rate_point=f"{r}:{RATE_LAMBDAS[r]:g}", kodak_bpp=f"{bpp:.4f}",
                    kodak_psnr_yuv=f"{psnr:.3f}", kodak_images=len(kodak), wall_s=wall(), **common)
            print(f"step {step} kodak rate {r}: {bpp:.4f} bpp {psnr:.2f} dB", flush=True)
        print(f"kodak eval took {time.time() - t:.1f} s", flush=True)

    model.train()
    while stop["signal"] is None:
        elapsed = time.time() - run_start
        if (args.time_limit_min and elapsed >= 60 * args.time_limit_min) or \
                (args.steps and step - start_step >= args.steps):
            break
        rgb = pool.batch(args.batch, args.crop, gen).to(device)
        y, uv = rgb_to_yuv420(rgb)
        rate_idx = torch.randint(len(RATE_LAMBDAS), (args.batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            y_rec, uv_rec, bits = model(y, uv, rate_idx, args.op)
        mse3 = yuv_mse(y_rec.float(), uv_rec.float(), y, uv)
        bpp = bits / (y.shape[-2] * y.shape[-1])
        loss = (lambdas[rate_idx] * weighted_mse(mse3) + bpp).mean()
        if not torch.isfinite(loss):
            print(f"step {step}: non-finite loss, batch skipped", flush=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step += 1
        window.append((loss.item(), bpp.mean().item(), psnr_yuv(mse3.detach()).mean().item()))
        if step % args.log_every == 0:
            n = len(window)
            l, b, p = (sum(w[i] for w in window) / n for i in range(3))
            log.row(step=step, rate_point="mix", loss=f"{l:.4f}", train_bpp=f"{b:.4f}",
                    train_psnr_yuv=f"{p:.3f}", wall_s=wall(), **common)
            print(f"step {step} loss {l:.4f} bpp {b:.4f} psnr_yuv {p:.2f} "
                  f"({(time.time() - run_start) / max(step - start_step, 1):.2f} s/step)", flush=True)
            window = []
        if args.eval_every_min and time.time() - last_eval >= 60 * args.eval_every_min:
            evaluate()
            last_eval = time.time()
        if time.time() - last_save >= 60 * args.save_every_min:
            save()
            last_save = time.time()

    if stop["signal"] is None:
        evaluate()
    save()
    print(f"stopped at step {step} ({'signal ' + str(stop['signal']) if stop['signal'] else 'limit'}), "
          f"checkpoint {ckpt} {ckpt.stat().st_size / 2**20:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
