"""One command for the codec comparison: RD evaluation, BD-rates vs VVC, decode-time benchmark, memory, plots, docs.

    python -m bench.report [--quick] [--kodak DIR] [--vvc-dir DIR] [--results-dir DIR] [--images all|LIST]
                           [--no-bench] [--no-memory] [--no-docs]

Steps (all numbers come from this run; nothing is typed in by hand):

1. RD evaluation on the Kodak photos (all 24; ``--quick``: kodim01, kodim04, kodim23): every available codec of
   bench/codecs.py encodes its whole ladder (cached in bench/.cache), each stream is decoded (1 thread,
   bytes -> RGB, timed: median of ``--timing-rounds``) and scored with bench/metrics.py against the PNG.
   jpegai_fast (BOP and SOP decoders): the knots of its default quality ladder (``quality=k``, each a trained rate
   point of the shipped model measured best there: ``encoder.default_ladder``) and, as a second series,
   ``jpegai_fast.encode(rgb, bpp=<VVC bpp>)`` at each VVC QP's bpp of the image (the matched streams).
   VVC: the anchor's ``anchor_rgb.csv`` points (the BD-rate anchor) and, for the same images, every stream
   re-decoded and re-scored here, to show the metrics reproduce the CSV (max |Δ| reported).
2. BD-rate of each codec against VVC per image (pchip, bench/metrics.bd_rate), mean over images; quality
   PSNR-YUV (6:1:1), PSNR-Y and MS-SSIM-Y (dB).
3. The decode-time benchmark ``python -m pytest bench/test_codecs.py --benchmark-only [--quick]`` in a
   subprocess (ratio table: codec decode ÷ VVC decode at matched bpp, side by side in that run; the goal check;
   jpegai_fast's per-stage times from ``Decoder.last_timing``).
4. Peak RSS of a jpegai_fast decode at 0.4 / 3 / 12 / 50 MP (``--quick``: 0.4 and 3 MP), each in a fresh
   subprocess (bench/memory.py).
5. Plots into bench/results/<date>-<commit>-*.png, results into bench/results/<date>-<commit>-report.{json,md},
   and docs/performance.md regenerated from them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import codecs as C
from bench import metrics as M
from bench import results_writer as RW
from bench import streams as S

REPO = RW.REPO_ROOT
DOCS = REPO / "docs" / "performance.md"
QUALITIES = (("psnr_yuv", "PSNR-YUV (6:1:1)"), ("psnr_y", "PSNR-Y"), ("msssim_db", "MS-SSIM-Y (dB)"))
LIBS = ("onnxruntime", "av", "pillow", "pillow-jxl-plugin", "bjontegaard", "scipy", "matplotlib", "pytest-benchmark")
OURS = tuple(n for n in C.CODECS if n.startswith("jpegai_fast"))
BPP_SERIES = " @ VVC bpp"  # suffix of the series of our rate-controlled streams (targets = the image's VVC bpps)


def _median_time(fn, *args, rounds: int) -> float:
    """Median of ``rounds`` timed calls (the caller's untimed decode for the quality check is the warm-up)."""
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# --------------------------------------------------------------------------------------------- RD evaluation


def _rd_streams(name: str, codec: C.Codec, image: str) -> list[tuple[str, object, S.Stream]]:
    """(series, group, stream) of one codec on one image; group = what is averaged over images."""
    if name == C.ANCHOR:
        return [(name, qp, S.vvc_stream(image, qp)) for qp in C.VVC_QPS]
    out = [(name, s.param, s) for s in S.ladder(codec, image)]
    if codec.match_param(1.0) is not None:  # rate control: a stream at each VVC bpp of this image
        out += [(name + BPP_SERIES, f"VVC QP{qp}", S.matched(codec, image, S.vvc_stream(image, qp).bpp))
                for qp in C.VVC_QPS]
    return out


def evaluate_rd(images: list[str], rounds: int, log=print) -> dict:
    points: list[dict] = []  # one per (series, image, stream), measured here
    vvc_check: list[dict] = []
    codecs = C.available_codecs()
    csv = S.anchor_csv()
    for i, image in enumerate(images):
        t_img = time.perf_counter()
        ref = S.image_rgb(image)
        h, w, _ = ref.shape
        for name, codec in codecs.items():
            for series, group, s in _rd_streams(name, codec, image):
                out = codec.decode(s.data, 1)
                q = M.quality(ref, out)
                log_ = getattr(codec, "stage_log", None)
                if log_ is not None:
                    log_.clear()
                t = _median_time(codec.decode, s.data, 1, rounds=rounds)
                p = {"codec": name, "series": series, "group": group, "image": image, "param": s.param,
                     "bytes": len(s.data), "bpp": s.bpp, **q, "decode_ms": t * 1e3}
                if log_:
                    p["stages_ms"] = {k: statistics.median(d[k] for d in log_ if k in d) * 1e3
                                      for k in dict.fromkeys(k for d in log_ for k in d)}
                points.append(p)
                if name == C.ANCHOR:
                    row = csv[(image, s.param)]
                    vvc_check.append({"image": image, "qp": s.param, "bytes": len(s.data) - row["bytes"],
                                      "bpp": s.bpp - row["bpp"],
                                      **{k: q[k] - row[k] for k in ("psnr_yuv", "psnr_y", "msssim_y", "msssim_db")}})
        log(f"  RD {image} ({i + 1}/{len(images)}, {w}x{h}): {time.perf_counter() - t_img:.1f} s")
    return {"points": points, "vvc_check": vvc_check}


def anchor_points(images: list[str]) -> list[dict]:
    csv = S.anchor_csv()
    return [dict(csv[(im, qp)], codec="vvc (anchor_rgb.csv)") for im in images for qp in C.VVC_QPS]


def bd_rates(points: list[dict], images: list[str]) -> list[dict]:
    anchor = {im: [r for r in anchor_points([im])] for im in images}
    rows = []
    series_all = list(dict.fromkeys(p["series"] for p in points if p["codec"] != C.ANCHOR))
    for name in C.CODECS:
        if name == C.ANCHOR:
            continue
        reason = C.CODECS[name].available()
        if reason:
            if name in OURS:
                rows.append({"codec": name, "note": reason})
            continue
        for series in [x for x in series_all if x == name or x.startswith(name + " ")]:
            row: dict = {"codec": series}
            for key, label in QUALITIES:
                per_image, overlaps, fallback = [], [], []
                for im in images:
                    test = [p for p in points if p["series"] == series and p["image"] == im]
                    a = anchor[im]
                    bd = M.bd_rate([p["bpp"] for p in a], [p[key] for p in a],
                                   [p["bpp"] for p in test], [p[key] for p in test])
                    overlaps.append(M.quality_overlap([p[key] for p in a], [p[key] for p in test]))
                    if math.isfinite(bd):
                        per_image.append(bd)
                    if key == "psnr_yuv":
                        from training.bd_rate import bd_rate as train_bd

                        ra, qa = M._clean([p["bpp"] for p in a], [p[key] for p in a])
                        rt, qt = M._clean([p["bpp"] for p in test], [p[key] for p in test])
                        fb = train_bd(ra, qa, rt, qt)
                        if math.isfinite(bd) and math.isfinite(fb):
                            fallback.append(abs(fb - bd))
                row[f"BD-rate {label} %"] = statistics.fmean(per_image) if per_image else None
                row[f"images ({label})"] = len(per_image)
                row[f"mean overlap ({label})"] = statistics.fmean(overlaps) if overlaps else None
                if key == "psnr_yuv":
                    row["max |Δ| vs training.bd_rate (PSNR-YUV)"] = max(fallback) if fallback else None
            rows.append(row)
    return rows


def mean_curves(points: list[dict]) -> dict[str, list[dict]]:
    """Per series and group (ladder parameter, or VVC QP for the rate-controlled series): means over images of
    bpp and qualities, median decode time, median per-stage times where the codec reports them."""
    out: dict[str, list[dict]] = {}
    for series in dict.fromkeys(p["series"] for p in points):
        groups = list(dict.fromkeys(p["group"] for p in points if p["series"] == series))
        rows = []
        for g in groups:
            ps = [p for p in points if p["series"] == series and p["group"] == g]
            rec = {"codec": series, "param": g, "images": len(ps)}
            for k in ("bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db"):
                rec[k] = statistics.fmean(p[k] for p in ps)
            rec["decode_ms (median over images)"] = statistics.median(p["decode_ms"] for p in ps)
            stages = [p["stages_ms"] for p in ps if p.get("stages_ms")]
            if stages:
                rec["stages_ms (median over images)"] = {
                    k: statistics.median(d[k] for d in stages if k in d)
                    for k in dict.fromkeys(k for d in stages for k in d)}
            rows.append(rec)
        out[series] = sorted(rows, key=lambda r: r["bpp"])
    return out


# --------------------------------------------------------------------------------------------- benchmark


def run_benchmark(quick: bool, results_dir: Path, extra: list[str], log=print) -> tuple[dict | None, float, str]:
    # test_goal_interleaved runs after the rows: the goal once more, VVC / BOP / SOP in turn per image and round, so
    # that a VM whose speed drifts between rows does not enter the ratio (bench/README.md)
    cmd = [sys.executable, "-m", "pytest", "bench/test_codecs.py", "bench/test_goal_interleaved.py", "--benchmark-only",
           "-q", "-p", "no:cacheprovider", "--results-dir", str(results_dir), *extra]
    if quick:
        cmd.append("--quick")
    log("  " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    load0 = RW.load_snapshot()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    others = RW.other_load_since(load0)  # other processes while the decode times were taken
    dt = time.perf_counter() - t0
    tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
    written = [line.split(": ", 1)[1] for line in proc.stdout.splitlines()
               if line.startswith("bench results written: ")]
    js = [p for p in written if p.endswith(".json") and not p.endswith("-goal_interleaved.json")]
    if proc.returncode != 0 or not js:
        log(proc.stdout[-4000:] + proc.stderr[-2000:])
        return None, dt, tail
    interleaved = [p for p in written if p.endswith("-goal_interleaved.json")]
    extra_goal = {"goal_interleaved": json.loads(Path(interleaved[0]).read_text())} if interleaved else {}
    return (json.loads(Path(js[0]).read_text()) | {"_path": js[0], "other_processes_busy_cores": others}
            | extra_goal), dt, tail


def run_memory(quick: bool, results_dir: Path, log=print) -> tuple[dict | None, float]:
    """``python -m bench.memory`` in a subprocess: a small launcher, so that its children's ru_maxrss is not
    raised by this process's own (see bench/memory.py); its log lines are passed through."""
    cmd = [sys.executable, "-m", "bench.memory", "--results-dir", str(results_dir)] + (["--quick"] if quick else [])
    log("  " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    js = None
    for line in proc.stdout:
        if line.startswith("bench results written: ") and line.strip().endswith(".json"):
            js = line.split(": ", 1)[1].strip()
        elif not line.startswith("bench results written: "):
            log("  " + line.rstrip())
    proc.wait()
    dt = time.perf_counter() - t0
    return (json.loads(Path(js).read_text()) if js else None), dt


# --------------------------------------------------------------------------------------------- plots


STYLE = {"vvc": ("tab:red", "o"), "hevc": ("tab:orange", "s"), "av1": ("tab:green", "^"),
         "jpeg": ("tab:gray", "v"), "j2k": ("tab:purple", "D"), "jxl": ("tab:blue", "P"),
         "jpegai_fast-bop": ("tab:brown", "*"), "jpegai_fast-sop": ("tab:pink", "X")}


def _base(series: str) -> str:
    return series.split(" ")[0]


def _style(series: str) -> tuple:
    color, marker = STYLE.get(_base(series), (None, "x"))
    return color, marker, ("--" if series.endswith(BPP_SERIES) else "-")


def _label(series: str) -> str:
    base = _base(series)
    lab = C.CODECS[base].label if base in C.CODECS else base
    return lab + (" (rate control to the VVC bpps)" if series.endswith(BPP_SERIES) else
                  " (quality ladder knots)" if base in OURS else "")


def _missing_ours() -> list[str]:
    return [n for n in OURS if C.CODECS[n].available()]


def _note() -> str:
    miss = _missing_ours()
    return f"; not run: {', '.join(miss)} ({C.CODECS[miss[0]].available()})" if miss else ""


def _bench_stage_rows(bench: dict, qp) -> list[tuple[str, dict[str, float]]]:
    """(bar label, {stage: ms}) per codec, 1 thread, median over images at ``qp``: ours from Decoder.last_timing,
    FFmpeg codecs split codec-only / colour conversion, the others one block."""
    rows = [r for r in bench.get("rows", []) if r["QP"] == qp and r["threads"] == "1"]
    bars = []
    for n in C.CODECS:
        tot = [r["median_ms"] for r in rows if r["codec"] == n and r["op"] == "decode"]
        if not tot:
            continue
        stages = [r["stages_ms"] for r in rows if r["codec"] == n and r["op"] == "decode" and r.get("stages_ms")]
        nat = [r["median_ms"] for r in rows if r["codec"] == n and r["op"] == "codec-only"]
        if stages:
            keys = [k for k in dict.fromkeys(k for d in stages for k in d) if k != "total"]
            bars.append((n, {k: statistics.median(d[k] for d in stages if k in d) for k in keys}))
        elif nat:
            t, c = statistics.median(tot), statistics.median(nat)
            bars.append((n, {"decoder (to its own output planes)": c,
                             "10-bit 4:2:0 -> RGB conversion (numpy)": max(t - c, 0.0)}))
        else:
            bars.append((n, {"decode (not separable)": statistics.median(tot)}))
    return bars


def plots(curves: dict, bench: dict | None, memory: dict | None, stem: str, results_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, str] = {}

    def save(fig, key):
        p = results_dir / f"{stem}-{key}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths[key] = str(p)

    n_img = max((r["images"] for rows in curves.values() for r in rows), default=0)
    for key, label in (("psnr_yuv", "PSNR-YUV 6:1:1 (dB)"), ("psnr_y", "PSNR-Y (dB)"),
                       ("msssim_db", "MS-SSIM-Y (dB)")):
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        for series, rows in curves.items():
            color, marker, ls = _style(series)
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], marker=marker, color=color, ls=ls,
                    label=_label(series), mfc="none" if ls == "--" else None)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (mean over images)")
        ax.set_ylabel(label + " (mean over images)")
        ax.set_title(f"Rate–distortion, Kodak ({n_img} images){_note()}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, f"rd-{key}")

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for series, rows in curves.items():
        color, marker, ls = _style(series)
        ax.plot([r["bpp"] for r in rows], [r["decode_ms (median over images)"] for r in rows], marker=marker,
                color=color, ls=ls, label=_label(series), mfc="none" if ls == "--" else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bits per pixel (mean over images)")
    ax.set_ylabel("decode ms, bytes -> RGB uint8, 1 thread (median over images)")
    ax.set_title(f"Decode time vs rate, Kodak ({n_img} images){_note()}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "decode-time-vs-bpp")

    if bench:
        head_qp = _headline_qp(bench)
        bars = _bench_stage_rows(bench, head_qp)
        stages = list(dict.fromkeys(k for _, d in bars for k in d))
        cmap = plt.get_cmap("tab20")
        fig, ax = plt.subplots(figsize=(8, 5))
        x = np.arange(len(bars))
        bottom = np.zeros(len(bars))
        for i, st in enumerate(stages):
            vals = np.array([d.get(st, 0.0) for _, d in bars])
            ax.bar(x, vals, bottom=bottom, color=cmap(i % 20), label=st)
            bottom += vals
        ax.set_xticks(x, [n for n, _ in bars], rotation=20)
        ax.set_ylabel("ms, 1 thread (median over images)")
        ax.set_title(f"Decode stages at VVC QP{head_qp}, matched bpp (jpegai_fast: Decoder.last_timing; "
                     f"JPEG/J2K/JXL not separable){_note()}", fontsize=8)
        ax.legend(fontsize=7)
        save(fig, "stage-breakdown")

        # thread scaling: time(1 thread) / time(all threads), geo-mean over all groups
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        labels, speedups = [], []
        for n in C.CODECS:
            for op in ("decode", "codec-only"):
                one = {(r["image"], r["QP"]): r["median_ms"] for r in bench.get("rows", [])
                       if r["codec"] == n and r["op"] == op and r["threads"] == "1"}
                many = {(r["image"], r["QP"]): r["median_ms"] for r in bench.get("rows", [])
                        if r["codec"] == n and r["op"] == op and r["threads"] != "1"}
                common = [k for k in one if k in many]
                if common:
                    labels.append(f"{n} {op}")
                    speedups.append(math.exp(statistics.fmean(math.log(one[k] / many[k]) for k in common)))
        ax.bar(range(len(labels)), speedups, color=[STYLE.get(lab.split()[0], ("tab:green",))[0] for lab in labels])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"speed-up, all {os.cpu_count()} threads vs 1 (geo-mean)")
        ax.set_title(f"Thread scaling (decode-time benchmark groups){_note()}", fontsize=9)
        save(fig, "thread-scaling")

    if memory and memory.get("rows"):
        rows = [r for r in memory["rows"] if r["codec"] in ("jpegai_fast-bop", "jpegai_fast-sop")]
        sizes = list(dict.fromkeys(r["size"] for r in rows))
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        width = 0.38
        for j, n in enumerate(("jpegai_fast-bop", "jpegai_fast-sop")):
            for i, sz in enumerate(sizes):
                r = next((r for r in rows if r["codec"] == n and r["size"] == sz), None)
                xi = i + (j - 0.5) * width
                if r and r.get("result") == "ok":
                    ax.bar(xi, r["peak RSS MB"], width, color=STYLE[n][0], label=n if i == 0 else None)
                    ax.text(xi, r["peak RSS MB"], f"{r['peak RSS MB']:.0f}", ha="center", va="bottom", fontsize=7)
                elif r:
                    ax.text(xi, 1, r.get("result", "?"), rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(sizes)), sizes)
        ax.set_ylabel("peak RSS of one decode, MB (whole fresh process)")
        ax.set_title(f"Decode memory, threads {memory['threads'] or 'all'}; picture: {memory['picture']}",
                     fontsize=8)
        handles, labs = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=8)
        save(fig, "memory")
    return paths


def _default_model() -> str:
    from jpegai_fast.model import DEFAULT_MODEL

    return DEFAULT_MODEL


HEADLINE_BPP = 0.2  # VVC QP37 on Kodak: the decode goal's rate


def _floor_model() -> str:
    """The model whose stages the floor table measures: the one bpp targets pick at the headline rate, i.e.
    the model the goal's decode-time rows actually run (vm33 there, while the ladder default is vr_bop)."""
    from jpegai_fast.model import model_for_bpp

    return model_for_bpp(HEADLINE_BPP, "bop")


def _headline_qp(bench: dict):
    head = bench.get("headline") or []
    return head[0]["QP"] if head else None


# --------------------------------------------------------------------------------------------- docs


def _f(v, nd=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def model_info() -> dict:
    """The shipped models' cards (name, checkpoint, training steps per operating point): what the RD numbers are
    of.  The rate-point ladder rows are the default model's; the streams rate-controlled to a bpp target (the
    "@ VVC bpp" rows and the decode benchmark) use the model measured best at that rate (model_for_bpp)."""
    try:
        from jpegai_fast.model import DEFAULT_MODEL, available_models, model_dir, model_for_bpp

        models = []
        for name in available_models():
            card = json.loads((model_dir(name) / "model_card.json").read_text())
            tr = card.get("training", {})
            models.append({"name": card.get("name", name), "checkpoint": card.get("checkpoint"),
                           "training steps": tr.get("steps"), "exported_utc": card.get("exported_utc"),
                           "sop_beside_bop_from_step": card.get("sop_beside_bop_from_step")})
        picks = {op: {f"{b:g}": model_for_bpp(b, op) for b in (0.035, 0.09, 0.2, 0.43, 0.79, 1.27)}
                 for op in ("bop", "sop")}
        return {"default": DEFAULT_MODEL, "models": models, "bpp_target_picks": picks}
    except Exception as exc:  # noqa: BLE001 — informative only
        return {"error": f"{type(exc).__name__}: {exc}"}


def model_lines(mi: dict) -> list[str]:
    if "error" in mi:
        return [f"- Models: not read ({mi['error']})"]
    lines = [f"- Model `{m['name']}`{' (default: the rate-point ladder rows)' if m['name'] == mi['default'] else ''}: "
             f"{m['checkpoint']}, training steps {m['training steps']}"
             + (f", SOP trained beside BOP from step {m['sop_beside_bop_from_step']:,}"
                if m.get("sop_beside_bop_from_step") is not None else "") for m in mi["models"]]
    picks = "; ".join(f"{op.upper()} " + ", ".join(f"{b} → {n}" for b, n in p.items())
                      for op, p in mi["bpp_target_picks"].items())
    lines.append(f"- Streams made for a bpp target (`@ VVC bpp` rows, decode benchmark) use the model measured best "
                 f"at that rate (`model_for_bpp`): {picks}")
    return lines


def write_docs(path: Path, data: dict, plot_paths: dict, quick: bool, cmd: str) -> None:
    m = data["machine"]
    bench = data.get("benchmark")
    memory = data.get("memory")
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    n_rd = len(data["images"])
    bench_imgs = sorted({r["image"] for r in (bench or {}).get("rows", [])})
    mode = (f"{'quick' if quick else 'full'}: RD and BD-rate on {n_rd} Kodak images, decode-time benchmark on "
            f"{len(bench_imgs)} images × {len({r['QP'] for r in (bench or {}).get('rows', [])})} VVC QPs")
    mi = data["model"]
    rt = data["runtime_s"]
    L = [
        "# Performance: jpegai_fast vs VVC and other image codecs",
        "",
        "<!-- GENERATED by `python -m bench.report` — do not edit by hand; every number below comes from that run. -->",
        "",
        f"Generated {m['date_utc']} at commit `{m['commit']}` by `{cmd}` — mode **{mode}**.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), {m['platform']}; "
        f"jpegai_fast SIMD level {m.get('cpu_features')}, core built {m.get('core_built_utc')}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v),
        "- FFmpeg (PyAV): " + ", ".join(f"{k} {v}" for k, v in C.ffmpeg_versions().items()),
        *model_lines(mi),
        *([f"- Other processes while the decode times were taken: {bench['other_processes_busy_cores']} cores' worth "
           "of busy time on average (0 = a quiet machine; a busy second core slows FFmpeg's VVC decode more than "
           "ours, see bench/README.md)"] if bench and bench.get("other_processes_busy_cores") is not None else []),
        "",
        "## Commands",
        "",
        "```sh",
        'pip install -e ".[bench]"                      # the bench extra of pyproject.toml',
        "python -m bench.report                         # full: this page, plots, bench/results/* "
        "(budget 30 min, 2 cores)",
        "python -m bench.report --quick                 # 3 images, 2 QPs, memory at 0.4 and 3 MP (budget 3 min)",
        "python -m pytest bench/test_codecs.py --benchmark-only [--quick] [--images all]   # decode time alone",
        "python -m bench.memory [--quick]               # peak RSS alone",
        "```",
        "",
        f"This page: `{cmd}`. Run times: RD evaluation {rt['rd']:.0f} s, decode benchmark {rt['benchmark']:.0f} s, "
        f"memory {rt['memory']:.0f} s, total {rt['total']:.0f} s (encoded streams are cached in bench/.cache; a first "
        "run also encodes).",
        "Kodak: `--kodak DIR` or `$JPEGAI_BENCH_KODAK`; VVC anchor: `--vvc-dir DIR` or `$JPEGAI_BENCH_VVC`; "
        "decode-benchmark images: `--images all` or a comma list.",
        "",
    ]

    L += ["## Goal: decode time on one thread vs FFmpeg VVC", ""]
    goal = (bench or {}).get("goal (1 thread, decode ÷ FFmpeg VVC decode)")
    if goal:
        L += ["| decoder | goal | VVC QP (~0.25 bpp) | VVC mean bpp | decode ÷ VVC | result | worst QP | at every QP |",
              "|---|---|---:|---:|---:|---|---:|---|"]
        for g in goal:
            L.append(f"| {g['codec']} | ≤ {g['goal (≤ × VVC)']}× | {g.get('QP (~0.25 bpp)', '—')} | "
                     f"{_f(g.get('VVC mean bpp'), 3)} | {_f(g.get('÷ VVC at that QP'), 2)} | **{g['result']}** | "
                     f"{_f(g.get('worst QP ÷ VVC'), 2)} | {g.get('at every QP', g.get('note', '—'))} |")
        L += ["", "Goal of the issue: BOP within 4× and SOP within 2.5× of the FFmpeg VVC decode, one thread, bytes "
              "-> RGB (geo-mean over the benchmark's images of the per-image ratio, our stream rate-controlled to the "
              "VVC stream's bpp).", ""]
        inter = (bench or {}).get("goal_interleaved") or {}
        if inter.get("goal"):
            L += [f"The same goal interleaved (`bench/test_goal_interleaved.py`: {inter.get('workload', '')}):", "",
                  "| decoder | goal | decode ÷ VVC (medians) | decode ÷ VVC (minimum times) | result |",
                  "|---|---|---:|---:|---|"]
            for g in inter["goal"]:
                L.append(f"| {g['decoder']} | {g['goal']} | {_f(g['÷ VVC (medians)'], 2)} | "
                         f"{_f(g['÷ VVC (minimum times)'], 2)} | {g['result']} |")
            vvc_ms = [r["vvc median ms"] for r in inter.get("per_image", [])]
            if vvc_ms:
                L += ["", f"FFmpeg VVC in that run: {min(vvc_ms):.1f}–{max(vvc_ms):.1f} ms per image (median of its "
                      "rounds); compare with a quiet run's before trusting the ratios (bench/README.md).", ""]
    else:
        L += ["(decode-time benchmark not run)", ""]

    L += ["## Headline: decode time ÷ FFmpeg VVC decode time near 0.25 bpp", ""]
    if bench and bench.get("headline"):
        L += ["| codec | threads | VVC QP | VVC mean bpp | codec mean bpp | decode time ÷ VVC (geo-mean over images) "
              "| note |", "|---|---|---:|---:|---:|---:|---|"]
        for r in bench["headline"]:
            L.append(f"| {r['codec']} | {r['threads']} | {r['QP']} | {_f(r['VVC mean bpp'], 3)} | "
                     f"{_f(r.get('codec mean bpp'), 3)} | {_f(r.get('÷ VVC (decode, geo-mean)'), 3)} | "
                     f"{r.get('note') or ''} |")
    else:
        L.append("(benchmark not run: `--no-bench`)")
    L += ["", "Decode = compressed bytes in memory -> RGB uint8 array, colour conversion included for every codec; "
          "the VVC stream is the anchor's; jpegai_fast's is `jpegai_fast.encode(rgb, bpp=<VVC bpp>)`; every other "
          "codec's is its ladder point nearest in bpp.", ""]

    if bench:
        rtab = bench["ratio table (codec decode time ÷ VVC decode time, same op and threads, matched bpp)"]
        qps = sorted({r["QP"] for r in rtab if r["QP"] != "all"})
        L += ["## Ratio table: decode time ÷ VVC decode time (geo-mean over images, same op and threads)", ""]
        L += ["| codec | op | threads | " + " | ".join(f"QP{q}" for q in qps) + " |",
              "|---|---|---|" + "---:|" * len(qps)]
        keys = list(dict.fromkeys((r["codec"], r["op"], r["threads"]) for r in rtab if r["QP"] != "all"))
        for k in keys:
            cells = []
            for q in qps:
                r = next((r for r in rtab if r["QP"] == q and (r["codec"], r["op"], r["threads"]) == k), None)
                cells.append(_f(r and r["÷ VVC (geo-mean over images)"], 3) +
                             (f" ({_f(r['codec mean bpp'], 3)} bpp)" if r else ""))
            L.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " |")
        for r in rtab:
            if r["QP"] == "all":
                L.append(f"| {r['codec']} | decode | 1 / all | " + " | ".join([r.get("note", "")] * len(qps)) + " |")
        vb = {r["QP"]: r["VVC mean bpp"] for r in rtab if r["QP"] != "all" and r["codec"] == C.ANCHOR}
        L += ["", "VVC mean bpp per QP: " + ", ".join(f"QP{q} {_f(vb.get(q), 3)}" for q in qps) +
              f". In parentheses: the codec's mean bpp of its matched streams. Images: {', '.join(bench_imgs)}.", ""]

        L += ["## jpegai_fast decode stages (`Decoder.last_timing`, median ms over images)", ""]
        ours_rows = [r for r in bench.get("rows", []) if r["codec"] in OURS and r.get("stages_ms")]
        if ours_rows:
            stages = [k for k in dict.fromkeys(k for r in ours_rows for k in r["stages_ms"]) if k != "total"]
            L += ["| decoder | threads | QP | " + " | ".join(stages) + " | total |",
                  "|---|---|---:|" + "---:|" * (len(stages) + 1)]
            for n in OURS:
                for t in dict.fromkeys(r["threads"] for r in ours_rows):
                    for q in qps:
                        rs = [r for r in ours_rows if r["codec"] == n and r["threads"] == t and r["QP"] == q]
                        if not rs:
                            continue
                        cells = [_f(statistics.median(r["stages_ms"].get(k, 0.0) for r in rs), 1) for k in stages]
                        tot = _f(statistics.median(r["stages_ms"].get("total", r["median_ms"]) for r in rs), 1)
                        L.append(f"| {n} | {t} | {q} | " + " | ".join(cells) + f" | {tot} |")
            L.append("")
        else:
            L += ["(no stage times: jpegai_fast not run)", ""]

        if data.get("compute floor"):
            from bench import floor as F

            L += ["## Compute floor per stage (MACs × this machine's measured peak) beside the measured time", "",
                  "`python -m bench.floor` (this run's figures; `bench/test_floor.py` records the same as a "
                  "benchmark). The floor is what the stage's arithmetic would take at the best one-thread throughput "
                  "measured here for its kind of kernel.", ""] + F.markdown(data["compute floor"]) + [""]

        vt = bench["VVC decode time per image (median ms, 1 thread; decode = bytes -> RGB, "
                   "codec-only = bytes -> yuv planes)"]
        L += ["## FFmpeg VVC decode time per Kodak image (median ms, 1 thread)", "",
              "Each cell: bytes -> RGB uint8 (codec-only: bytes -> yuv420p10le planes).", "",
              "| image | " + " | ".join(f"QP{q}" for q in qps) + " |", "|---|" + "---:|" * len(qps)]
        for r in vt:
            L.append(f"| {r['image']} | " + " | ".join(
                f"{_f(r.get(f'QP{q} ms'), 1)} ({_f(r.get(f'QP{q} codec-only ms'), 1)})" for q in qps) + " |")
        L.append("")

    L += ["## BD-rate against the VVC anchor", "",
          f"Per image (the image's VVC points from anchor_rgb.csv vs the codec's points), then the mean over images; "
          f"{data['bd_rate_backend']}, over the overlap of the quality ranges (negative = fewer bits than VVC at "
          f"equal quality). Images: {n_rd}. jpegai_fast has two series: the knots of its default quality ladder "
          f"(each a trained rate point of "
          f"the shipped model measured best there, `encoder.default_ladder`) "
          f"and its rate control aimed at the image's six VVC bpps (`{BPP_SERIES.strip()}`).", "",
          "| codec | " + " | ".join(f"BD-rate {lab} %" for _, lab in QUALITIES) +
          " | mean quality-range overlap (PSNR-YUV) |",
          "|---|" + "---:|" * (len(QUALITIES) + 1)]
    for r in data["bd_rate vs VVC"]:
        if r.get("note"):
            L.append(f"| {r['codec']} | " + " | ".join([r["note"]] * len(QUALITIES)) + " | — |")
        else:
            L.append(f"| {r['codec']} | " + " | ".join(_f(r[f"BD-rate {lab} %"], 1) for _, lab in QUALITIES) +
                     f" | {_f(r['mean overlap (PSNR-YUV (6:1:1))'], 2)} |")
    L.append("")

    ours_curves = [r for r in data["RD mean curves (means over images per ladder point)"]
                   if _base(r["codec"]) in OURS]
    if ours_curves:
        L += ["## jpegai_fast RD points (means over images)", "",
              "| series | point | bpp | PSNR-Y | PSNR-YUV | MS-SSIM-Y (dB) | decode ms (1 thread) |",
              "|---|---|---:|---:|---:|---:|---:|"]
        for r in ours_curves:
            L.append(f"| {r['codec']} | {r['param']} | {_f(r['bpp'], 3)} | {_f(r['psnr_y'])} | {_f(r['psnr_yuv'])} | "
                     f"{_f(r['msssim_db'])} | {_f(r['decode_ms (median over images)'], 1)} |")
        L.append("")

    L += ["## Memory: peak RSS of one decode", ""]
    if memory and memory.get("rows"):
        L += [f"Picture: {memory['picture']}. Stream: {memory['stream']}. Decoder: "
              f"{memory.get('decoder', '')}. {memory['method']}. Each child runs under an address-space limit of "
              f"{_f(memory.get('address-space limit per child (GB)'), 1)} GB (85 % of the memory available at the "
              "start), so a size that does not fit fails in its own process.", "",
              "| size | pixels | decoder | result | bpp | peak RSS MB | baseline MB | decode increment MB | "
              "peak ÷ RGB output bytes | decode s (first decode, incl. session creation) |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in memory["rows"]:
            res = r["result"] + (f" ({r['error']})" if r.get("error") else "")
            L.append(f"| {r['size']} | {r['width']}×{r['height']} | {r['codec']} | {res} | {_f(r.get('bpp'), 3)} | "
                     f"{_f(r.get('peak RSS MB'), 0)} | {_f(r.get('baseline MB'), 0)} | "
                     f"{_f(r.get('decode increment MB'), 0)} | {_f(r.get('peak ÷ output bytes'), 1)} | "
                     f"{_f(r.get('decode s'), 2)} |")
        L += ["", "Streams (encoded once per size in a subprocess, cached in bench/.cache/memory):", "",
              "| size | result | bytes | encode s | encoder peak RSS MB | note |", "|---|---|---:|---:|---:|---|"]
        for e in memory.get("streams", []):
            L.append(f"| {e['size']} | {e['result']} | {_f(e.get('bytes'))} | {_f(e.get('encode s'), 1)} | "
                     f"{_f(e.get('encoder peak RSS MB'), 0)} | {('cached' if e.get('cached') else '') or ''}"
                     f"{e.get('error') or ''} |")
        L.append("")
    else:
        L += ["(not run: `--no-memory`)", ""]

    L += ["## Plots", ""]
    for key, title in (("rd-psnr_yuv", "RD, PSNR-YUV"), ("rd-psnr_y", "RD, PSNR-Y"),
                       ("rd-msssim_db", "RD, MS-SSIM-Y (dB)"), ("decode-time-vs-bpp", "Decode time vs bpp (1 thread)"),
                       ("stage-breakdown", "Decode stages"), ("thread-scaling", "Thread scaling"),
                       ("memory", "Decode memory")):
        if key in plot_paths:
            L += [f"![{title}]({rel(plot_paths[key])})", ""]

    chk = data["VVC metrics re-measured vs anchor_rgb.csv"]
    L += ["## Metric check: VVC re-decoded here vs anchor_rgb.csv", "",
          f"{chk['streams']} anchor streams decoded with PyAV's vvc decoder, inverse-converted and scored with "
          "bench/metrics.py; max |difference| to the CSV (which has 4–7 significant decimals):", "",
          "| | max abs diff |", "|---|---:|"]
    for k in ("bytes", "bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db"):
        L.append(f"| {k} | {chk['max |Δ| ' + k]:.3g} |")
    L.append("")

    L += ["## What each decode timing includes", "", "| codec | decode (bytes -> RGB uint8) | codec-only | stream |",
          "|---|---|---|---|"]
    for c in C.CODECS.values():
        L.append(f"| {c.name} | {c.timing} | {c.native_timing or 'not separable'} | {c.stream} |")
    L += ["", "Encoders: " + "; ".join(f"**{c.name}**: {c.encoder_settings}" for c in C.CODECS.values()
                                       if c.encoder_settings), ""]
    skipped = C.skipped_codecs()
    if skipped:
        L += ["Skipped codecs: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]

    L += ["## What the numbers do not say", "",
          "- They are from one machine whose core count and CPU are listed above, measured side by side in one "
          "run; absolute times move with machine load (anything else running on the machine shows up in them), the "
          "ratios less so. Other machines (more cores, other SIMD) can order the codecs differently; the "
          "all-threads rows use every core listed.",
          "- The models are early checkpoints (training steps above): their RD numbers, BD-rates and the SOP "
          "syntheses' quality say where training stands, not what the architecture can do. Decode time does not "
          "depend on how far the weights are trained (it does on which model a bpp target picks: vm33's synthesis "
          "is lighter than vr_bop's).",
          "- Our matched streams come from the encoder's rate control (at most the target, within 10 % below when "
          "reachable); the other codecs' from the nearest ladder point: compare the bpp columns, decode time depends "
          "on the rate (see the decode-time plot).",
          "- The decode time of VVC, HEVC and AV1 includes a float64 numpy 4:2:0 -> RGB conversion "
          "(the anchor's exact convention); a production decoder would use an integer SIMD conversion, so the "
          "codec-only columns bound what those codecs could reach. JPEG/J2K/JXL convert inside their libraries; "
          "jpegai_fast's colour stage is numpy as well (see the stage table).",
          "- jpegai_fast's decoder object and its ONNX Runtime sessions are created once and reused (outside the "
          "timing); FFmpeg decoders are created per picture (creation is included). BOP and SOP decode the same "
          "streams (the encoder writes the operating point into the header only; `Decoder(operating_point=...)` "
          "picks the synthesis), so their rows differ by the decoder alone.",
          "- The memory rows use the decoder's defaults, including its automatic synthesis tiling of large pictures: "
          "they describe this version of the library, and a picture whose stream asks for other tiling can differ.",
          "- Quality is PSNR/MS-SSIM on Kodak (small, old scanned photos). Neither metric is a subjective test.",
          "- BD-rates are per-image means over the overlapping quality range only; the overlap column shows how much "
          "of VVC's range was compared (our rate points may not reach VVC's lowest or highest quality).",
          "- Memory is the peak RSS of a whole process (interpreter, numpy, ONNX Runtime, the model) that decodes "
          "one picture with the threads listed; the baseline column is that process before decode(). Pictures are "
          "mirror-tiled Kodak photos, so their bpp is Kodak-like. The decode seconds there include ORT session "
          "creation (first decode of a fresh process) and are not decode-speed numbers. A size whose stream could "
          "not be encoded on this machine is listed with what happened.",
          "- The VVC anchor is vvenc `medium` (4:2:0, 10 bit), not VTM; HEVC is x265 `medium`, AV1 is SVT-AV1 "
          "preset 6 — encoder effort changes the RD numbers, not the decoder's work much.",
          "- Encode times are not measured (except the memory streams' encode, as information).",
          ""]
    if quick:
        L += ["**This page was generated by a `--quick` run (3 images, 2 QPs, memory up to 3 MP): the numbers are "
              "indicative only; `python -m bench.report` without `--quick` regenerates it.**", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L).rstrip() + "\n")


# --------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 images, 2 QPs, memory at 0.4 and 3 MP (< 3 min)")
    ap.add_argument("--kodak", help="Kodak PNG folder (default ../shared/datasets/kodak)")
    ap.add_argument("--vvc-dir", help="VVC anchor folder (default ../shared/anchors/vvc)")
    ap.add_argument("--images", help="decode-benchmark images: 'all' or a comma list (default: 3 quick, 8 full)")
    ap.add_argument("--results-dir", default=str(RW.RESULTS_DIR))
    ap.add_argument("--docs", default=str(DOCS), help="where to write performance.md")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--no-bench", action="store_true", help="skip the pytest-benchmark decode-time run")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS measurement")
    ap.add_argument("--no-floor", action="store_true", help="skip the compute-floor table (bench/floor.py)")
    ap.add_argument("--timing-rounds", type=int, default=None,
                    help="timed decodes per RD point after the untimed one, median (default 1; the decode-time "
                         "benchmark is where the compared timings come from)")
    ap.add_argument("--decode-rounds", type=int, default=None, help="benchmark rounds per row (default 5)")
    args = ap.parse_args(argv)
    cmd = "python -m bench.report" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    if args.kodak:
        os.environ["JPEGAI_BENCH_KODAK"] = os.path.abspath(args.kodak)
    if args.vvc_dir:
        os.environ["JPEGAI_BENCH_VVC"] = os.path.abspath(args.vvc_dir)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    rounds = args.timing_rounds or 1
    t0 = time.perf_counter()

    print("codecs:", ", ".join(C.available_codecs()))
    for k, v in C.skipped_codecs().items():
        print(f"  skipped {k}: {v}")
    images = C.kodak_images(S.QUICK_IMAGES if args.quick else None)
    if not images:
        print(f"no Kodak images in {C.kodak_dir()}", file=sys.stderr)
        return 2
    if C.CODECS[C.ANCHOR].available():
        print(f"VVC anchor unavailable: {C.CODECS[C.ANCHOR].available()}", file=sys.stderr)
        return 2

    print(f"RD evaluation on {len(images)} images ({rounds} timed decodes per point)")
    rd = evaluate_rd(images, rounds)
    t_rd = time.perf_counter() - t0
    bd = bd_rates(rd["points"], images)
    curves = mean_curves(rd["points"])
    chk = rd["vvc_check"]
    check = {"streams": len(chk), **{f"max |Δ| {k}": max(abs(c[k]) for c in chk)
                                     for k in ("bytes", "bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db")}}

    bench, t_bench, tail = (None, 0.0, "")
    if not args.no_bench:
        print("decode-time benchmark")
        extra = []
        if args.kodak:
            extra += ["--kodak", os.environ["JPEGAI_BENCH_KODAK"]]
        if args.vvc_dir:
            extra += ["--vvc-dir", os.environ["JPEGAI_BENCH_VVC"]]
        if args.images:
            extra += ["--images", args.images]
        if args.decode_rounds:
            extra += ["--decode-rounds", str(args.decode_rounds)]
        bench, t_bench, tail = run_benchmark(args.quick, results_dir, extra)
        print("  " + tail.replace("\n", "\n  ") + f"\n  ({t_bench:.0f} s)")

    memory, t_mem = None, 0.0
    if not args.no_memory and C.CODECS[OURS[0]].available() is None:
        print("decode memory (fresh subprocess per decode)")
        memory, t_mem = run_memory(args.quick, results_dir)
        print(f"  ({t_mem:.0f} s)")

    floor_table, t_floor = None, 0.0
    if not args.no_floor and C.CODECS[OURS[0]].available() is None:
        print("compute floor (MACs per stage x this machine's measured peaks, beside measured stage times)")
        t1 = time.perf_counter()
        from bench import floor as F

        floor_table = F.floor_rows(_floor_model(), rounds=5 if args.quick else 15)
        t_floor = time.perf_counter() - t1
        print(f"  ({t_floor:.0f} s)")

    machine = RW.machine_info(LIBS)
    stem = f"{machine['date_utc'][:10]}-{machine['commit'].replace('+', '-')}"
    plot_paths = plots(curves, bench, memory, stem, results_dir)
    total = time.perf_counter() - t0
    payload = {
        "mode": "quick" if args.quick else "full",
        "command": cmd,
        "model": model_info(),
        "images": images,
        "goal (1 thread, decode ÷ FFmpeg VVC decode)": (bench or {}).get("goal (1 thread, decode ÷ FFmpeg VVC decode)"),
        "headline (decode ÷ VVC near 0.25 bpp)": (bench or {}).get("headline"),
        "bd_rate_backend": M.bd_rate_backend(),
        "bd_rate vs VVC": bd,
        "memory (peak RSS of one decode)": memory,
        "compute floor": floor_table,
        "VVC metrics re-measured vs anchor_rgb.csv": check,
        "RD mean curves (means over images per ladder point)": [r for rows in curves.values() for r in rows],
        "benchmark_results": bench.get("_path") if bench else None,
        "plots": plot_paths,
        "runtime_s": {"rd": t_rd, "benchmark": t_bench, "memory": t_mem, "floor": t_floor, "total": total},
        "codecs": [c.describe() for c in C.CODECS.values()],
        "RD points": rd["points"],
        "VVC re-measured minus anchor_rgb.csv": chk,
    }
    json_path, md_path = RW.write_results("report", payload, LIBS, results_dir)
    print(f"results: {json_path}\n         {md_path}")
    for p in plot_paths.values():
        print(f"plot: {p}")
    for g in payload["goal (1 thread, decode ÷ FFmpeg VVC decode)"] or []:
        print(f"goal {g['codec']}: ≤ {g['goal (≤ × VVC)']}× VVC at QP{g.get('QP (~0.25 bpp)')} "
              f"(~{_f(g.get('VVC mean bpp'), 3)} bpp): {_f(g.get('÷ VVC at that QP'), 2)}× -> {g['result']}")
    for r in bd:
        if not r.get("note"):
            print(f"BD-rate vs VVC {r['codec']}: " + ", ".join(f"{lab} {_f(r[f'BD-rate {lab} %'], 1)} %"
                                                             for _, lab in QUALITIES))
    if memory:
        for r in memory["rows"]:
            print(f"memory {r['size']} {r['codec']}: {r['result']}, peak RSS {_f(r.get('peak RSS MB'), 0)} MB")
    if not args.no_docs:
        data = {"machine": machine, **payload, "benchmark": bench, "memory": memory}
        write_docs(Path(args.docs), data, plot_paths, args.quick, cmd)
        print(f"docs: {args.docs}")
    print(f"total {time.perf_counter() - t0:.0f} s (RD {t_rd:.0f} s, benchmark {t_bench:.0f} s, memory {t_mem:.0f} s)")
    return 0 if (bench is not None or args.no_bench) else 1


if __name__ == "__main__":
    sys.exit(main())
