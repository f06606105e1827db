"""One command for a borrowed GPU machine: smoke test, then a timed end-to-end training run of the vm33 model.

    python -m training.gpu_run --prepare                      # here: write the data subset to carry
    python -m training.gpu_run --minutes 7 --out "$OUT"       # there: smoke test + bf16 training run
    python -m training.gpu_run --minutes 7 --out "$OUT" --train-only analysis-hi --min-detail 16   # the CPU recipe
    python -m training.gpu_run --device cpu --minutes 1 --out /tmp/x --data DIR   # the suite's CPU check

The GPU machine receives only the repository's working tree plus the carried paths (64 MiB in all), not
../shared: so the run resumes from the committed checkpoint training/checkpoints/vm33.pt (every weight is in
it; the VM ONNX files are not needed) and trains on `training/pool_subset/` (git-ignored), which --prepare
writes from the pool at the size the 64 MiB budget leaves beside the tracked files. The run trains the whole
model end to end (`--train-only analysis-hi`: the high-rate analysis alone, as the CPU recipe does now),
bf16 autocast on CUDA, crop 256, batch 16, warm-up and cosine decay to 1e-5 within the minutes given, and
writes to --out:
    vm33.pt (float16 weights + step counters, < 16 MB), vm33.tsv (the log), smoke.json, run.log.
Back here: copy vm33.pt over training/checkpoints/vm33.pt and append vm33.tsv's rows to training/logs/vm33.tsv
(`python -m training.gpu_run --merge DIR` does both).
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
SUBSET = HERE / "pool_subset"
CARRY_BUDGET = 64 * 2**20
CARRY_MARGIN = 3 * 2**20  # what git-untracked but unignored files and growth may add


def tracked_bytes():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return sum((REPO / f).stat().st_size for f in out.decode().split("\0") if f and (REPO / f).is_file())


def prepare(data, out, budget, size=288, quality=92):
    """Write one centre crop per source photo (JPEG 4:4:4) until `budget` bytes; -> (files, bytes)."""
    from PIL import Image

    from .data import pool_files
    out = pathlib.Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    total, n = 0, 0
    for f in pool_files(data, per_photo=1):
        with Image.open(f) as im:
            left, top = (im.width - size) // 2, (im.height - size) // 2
            dst = out / f.name
            im.convert("RGB").crop((left, top, left + size, top + size)).save(dst, quality=quality, subsampling=0)
        if total + dst.stat().st_size > budget:
            dst.unlink()
            break
        total += dst.stat().st_size
        n += 1
    return n, total


def smoke_test(device, steps=3):
    """A few bf16 training steps of the vm33 model on random pixels: finite loss, gradients, device named."""
    from .colour import rgb_to_yuv420, weighted_mse, yuv_mse
    from .vm_codec import VMCodec
    t0 = time.time()
    model = VMCodec(pretrained=False).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    losses = []
    for _ in range(steps):
        rgb = torch.rand(2, 3, 64, 64, device=device) * 255
        y, uv = rgb_to_yuv420(rgb)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            y_rec, uv_rec, bits = model(y, uv, torch.tensor([0, 7], device=device))
        loss = weighted_mse(yuv_mse(y_rec.float(), uv_rec.float(), y, uv)).mean() * 1e-3 + bits.mean() / 4096
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    ok = all(map(lambda v: v == v and abs(v) != float("inf"), losses))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "steps": steps, "losses": losses, "finite": ok,
            "seconds": round(time.time() - t0, 2)}


def merge(run_dir):
    run_dir = pathlib.Path(run_dir)
    shutil.copyfile(run_dir / "vm33.pt", HERE / "checkpoints" / "vm33.pt")
    rows = (run_dir / "vm33.tsv").read_text().splitlines()[1:]
    with open(HERE / "logs" / "vm33.tsv", "a") as f:
        f.write("".join(r + "\n" for r in rows))
    print(f"merged {run_dir}: checkpoint + {len(rows)} log rows")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare", action="store_true", help="write the carried data subset and exit")
    ap.add_argument("--merge", default=None, help="take a finished run's checkpoint and log into training/")
    ap.add_argument("--pool", default="../shared/datasets/train", help="--prepare: the full pool")
    ap.add_argument("--budget-mb", type=float, default=0,
                    help="--prepare: subset size (0: what the 64 MiB leaves, <= 25)")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", default=str(SUBSET), help="training crops (--prepare: where to write them)")
    ap.add_argument("--checkpoint", default=str(HERE / "checkpoints" / "vm33.pt"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--analysis-lr-mult", type=float, default=1.0, help="passed to training.train")
    ap.add_argument("--train-only", default="all", choices=["all", "analysis-hi", "analysis-lo"],
                    help="passed to training.train: analysis-hi trains the high-rate analysis alone (the CPU "
                         "recipe since step 106,971), analysis-lo the shared one (rate points below it) alone")
    ap.add_argument("--min-detail", type=float, default=0.0,
                    help="passed to training.train: only crops whose data.detail_rms reaches it")
    args = ap.parse_args()

    if args.merge:
        return merge(args.merge)
    if args.prepare:
        budget = args.budget_mb * 2**20 or min(25 * 2**20, CARRY_BUDGET - CARRY_MARGIN - tracked_bytes())
        n, nbytes = prepare(args.pool, args.data, budget)
        print(f"{n} crops, {nbytes / 2**20:.1f} MiB in {args.data} (carry it: training/pool_subset)")
        return
    if not args.out:
        ap.error("--out is required")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA requested but torch sees no GPU")
    smoke = smoke_test(device)
    (out / "smoke.json").write_text(json.dumps(smoke, indent=1))
    print("smoke test:", smoke, flush=True)
    if not smoke["finite"]:
        raise SystemExit("smoke test: non-finite loss")
    ckpt = out / "vm33.pt"
    shutil.copyfile(args.checkpoint, ckpt)
    budget_min = max(args.minutes - smoke["seconds"] / 60.0 - 0.3, 0.2)  # leave time to save
    argv = ["--model", "vm33", "--resume", "--checkpoint", str(ckpt), "--log-dir", str(out),
            "--data", args.data, "--crop", str(args.crop), "--batch", str(args.batch), "--lr", str(args.lr),
            "--device", args.device, "--threads", str(args.threads), "--frozen-analysis", "off",
            "--time-limit-min", f"{budget_min:.3f}", "--eval-images", "0", "--save-every-min", "2",
            "--warmup-steps", "200", "--log-every", "25", "--analysis-lr-mult", str(args.analysis_lr_mult),
            "--train-only", args.train_only, "--min-detail", str(args.min_detail)]
    if device.type == "cuda":
        argv.append("--bf16")
    from . import train
    sys.argv = ["training.train"] + argv
    train.main()
    opt_state = ckpt.with_name(ckpt.stem + ".opt.pt")  # float32 + Adam state: too big to bring back
    if opt_state.exists():
        opt_state.unlink()
    print(f"wrote {ckpt} ({ckpt.stat().st_size / 2**20:.1f} MiB) and {out / 'vm33.tsv'}")


if __name__ == "__main__":
    main()
