"""One command for the codec comparison: RD evaluation, BD-rates vs VVC, decode-time benchmark, plots, docs.

    python -m bench.report [--quick] [--kodak DIR] [--vvc-dir DIR] [--results-dir DIR] [--no-bench] [--no-docs]

Steps (all numbers come from this run; nothing is typed in by hand):

1. RD evaluation on the Kodak photos (``--quick``: kodim01, kodim04, kodim23): every available codec of
   bench/codecs.py encodes its whole ladder (cached in bench/.cache), each stream is decoded (1 thread,
   bytes -> RGB, timed: median of ``--timing-rounds``) and scored with bench/metrics.py against the PNG.
   VVC: the anchor's ``anchor_rgb.csv`` points (the BD-rate anchor) and, for the same images, every stream
   re-decoded and re-scored here, to show the metrics reproduce the CSV (max |Δ| reported).
2. BD-rate of each codec against VVC per image (pchip, bench/metrics.bd_rate), mean over images; quality
   PSNR-YUV (6:1:1), PSNR-Y and MS-SSIM-Y (dB).
3. The decode-time benchmark ``python -m pytest bench/test_codecs.py --benchmark-only [--quick]`` in a
   subprocess (ratio table: codec decode ÷ VVC decode at matched bpp, side by side in that run).
4. Plots into bench/results/<date>-<commit>-*.png, results into bench/results/<date>-<commit>-report.{json,md},
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
PLACEHOLDER = "decoder not yet available (issue 4)"
LIBS = ("av", "pillow", "pillow-jxl-plugin", "bjontegaard", "scipy", "matplotlib", "pytest-benchmark")


def _median_time(fn, *args, rounds: int) -> float:
    fn(*args)  # warm-up
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# --------------------------------------------------------------------------------------------- RD evaluation


def evaluate_rd(images: list[str], rounds: int, log=print) -> dict:
    points: list[dict] = []  # one per (codec, image, param), measured here
    vvc_check: list[dict] = []
    codecs = C.available_codecs()
    csv = S.anchor_csv()
    for i, image in enumerate(images):
        t_img = time.perf_counter()
        ref = S.image_rgb(image)
        h, w, _ = ref.shape
        for name, codec in codecs.items():
            if name == C.ANCHOR:
                streams = [S.vvc_stream(image, qp) for qp in C.VVC_QPS]
            else:
                streams = S.ladder(codec, name=image)
            for s in streams:
                out = codec.decode(s.data, 1)
                q = M.quality(ref, out)
                t = _median_time(codec.decode, s.data, 1, rounds=rounds)
                points.append({"codec": name, "image": image, "param": s.param, "bytes": len(s.data),
                               "bpp": s.bpp, **q, "decode_ms": t * 1e3})
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
    for name in C.CODECS:
        codec = C.CODECS[name]
        reason = codec.available()
        if name == C.ANCHOR:
            continue
        if reason:
            if name.startswith("jpegai_fast"):
                rows.append({"codec": name, "note": PLACEHOLDER})
            continue
        row: dict = {"codec": name}
        for key, label in QUALITIES:
            per_image, overlaps, fallback = [], [], []
            for im in images:
                test = [p for p in points if p["codec"] == name and p["image"] == im]
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
    """Per codec and ladder parameter: means over images of bpp, qualities and decode time."""
    out: dict[str, list[dict]] = {}
    for name in dict.fromkeys(p["codec"] for p in points):
        params = list(dict.fromkeys(p["param"] for p in points if p["codec"] == name))
        rows = []
        for prm in params:
            ps = [p for p in points if p["codec"] == name and p["param"] == prm]
            rec = {"codec": name, "param": prm, "images": len(ps)}
            for k in ("bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db"):
                rec[k] = statistics.fmean(p[k] for p in ps)
            rec["decode_ms (median over images)"] = statistics.median(p["decode_ms"] for p in ps)
            rows.append(rec)
        out[name] = sorted(rows, key=lambda r: r["bpp"])
    return out


# --------------------------------------------------------------------------------------------- benchmark


def run_benchmark(quick: bool, results_dir: Path, extra: list[str], log=print) -> tuple[dict | None, float, str]:
    cmd = [sys.executable, "-m", "pytest", "bench/test_codecs.py", "--benchmark-only", "-q", "-p", "no:cacheprovider",
           "--results-dir", str(results_dir), *extra]
    if quick:
        cmd.append("--quick")
    log("  " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
    written = [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("bench results written: ")]
    js = [p for p in written if p.endswith(".json")]
    if proc.returncode != 0 or not js:
        log(proc.stdout[-4000:] + proc.stderr[-2000:])
        return None, dt, tail
    return json.loads(Path(js[0]).read_text()) | {"_path": js[0]}, dt, tail


# --------------------------------------------------------------------------------------------- plots


STYLE = {"vvc": ("tab:red", "o"), "hevc": ("tab:orange", "s"), "av1": ("tab:green", "^"),
         "jpeg": ("tab:gray", "v"), "j2k": ("tab:purple", "D"), "jxl": ("tab:blue", "P")}


def _ours_note() -> str:
    ours = [n for n in C.CODECS if n.startswith("jpegai_fast")]
    return "" if all(C.CODECS[n].available() is None for n in ours) else f"; jpegai_fast: {PLACEHOLDER}"


def _label(name: str) -> str:
    return C.CODECS[name].label if name in C.CODECS else name


def plots(curves: dict, bench: dict | None, stem: str, results_dir: Path) -> dict[str, str]:
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
    for key, label in (("psnr_yuv", "PSNR-YUV 6:1:1 (dB)"), ("msssim_db", "MS-SSIM-Y (dB)")):
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, rows in curves.items():
            color, marker = STYLE.get(name, (None, "x"))
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], marker=marker, color=color, label=_label(name))
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (mean over images)")
        ax.set_ylabel(label + " (mean over images)")
        ax.set_title(f"Rate–distortion, Kodak ({n_img} images){_ours_note()}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, f"rd-{key}")

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, rows in curves.items():
        color, marker = STYLE.get(name, (None, "x"))
        ax.plot([r["bpp"] for r in rows], [r["decode_ms (median over images)"] for r in rows], marker=marker,
                color=color, label=_label(name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bits per pixel (mean over images)")
    ax.set_ylabel("decode ms, bytes -> RGB uint8, 1 thread (median over images)")
    ax.set_title(f"Decode time vs rate, Kodak ({n_img} images){_ours_note()}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "decode-time-vs-bpp")

    if bench:
        head_qp = _headline_qp(bench)
        rows = [r for r in bench.get("rows", []) if r["QP"] == head_qp]
        # stage breakdown: codec-only vs colour conversion (decode - codec-only), 1 thread, median over images
        names = [n for n in C.CODECS if any(r["codec"] == n for r in rows)]
        codec_ms, conv_ms, total_ms = [], [], []
        for n in names:
            tot = [r["median_ms"] for r in rows if r["codec"] == n and r["op"] == "decode" and r["threads"] == "1"]
            nat = [r["median_ms"] for r in rows if r["codec"] == n and r["op"] == "codec-only" and r["threads"] == "1"]
            t = statistics.median(tot) if tot else 0.0
            c = statistics.median(nat) if nat else None
            total_ms.append(t)
            codec_ms.append(c if c is not None else t)
            conv_ms.append(max(t - c, 0.0) if c is not None else 0.0)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        missing = [C.CODECS[n].label for n in C.CODECS if n.startswith("jpegai_fast") and C.CODECS[n].available()]
        x = np.arange(len(names) + len(missing))
        ax.bar(x[: len(names)], codec_ms, color="tab:blue", label="decoder (to its own output planes)")
        ax.bar(x[: len(names)], conv_ms, bottom=codec_ms, color="tab:orange",
               label="10-bit 4:2:0 -> RGB conversion (numpy)")
        for xi in x[len(names):]:
            ax.text(xi, 0.02 * max(total_ms or [1]), PLACEHOLDER, rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names + missing, rotation=20)
        ax.set_ylabel("ms, 1 thread (median over images)")
        ax.set_title(f"Decode stages at VVC QP{head_qp} and matched bpp (JPEG, J2K, JXL: not separable)", fontsize=9)
        ax.legend(fontsize=8)
        save(fig, "stage-breakdown")

        # thread scaling: time(1 thread) / time(all threads), geo-mean over all groups
        fig, ax = plt.subplots(figsize=(7, 4.5))
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
        ax.bar(range(len(labels)), speedups, color="tab:green")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"speed-up, all {os.cpu_count()} threads vs 1 (geo-mean)")
        ax.set_title(f"Thread scaling{_ours_note()}", fontsize=9)
        save(fig, "thread-scaling")
    return paths


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


def write_docs(path: Path, data: dict, plot_paths: dict, quick: bool) -> None:
    m = data["machine"]
    bench = data.get("benchmark")
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    mode = "quick (`--quick`: 3 images × VVC QP 32 and 37)" if quick else "full (24 images × 6 VVC QPs)"
    L = [
        "# Performance: jpegai_fast vs VVC and other image codecs",
        "",
        "<!-- GENERATED by `python -m bench.report` — do not edit by hand; every number below comes from that run. -->",
        "",
        f"Generated {m['date_utc']} at commit `{m['commit']}`, mode: **{mode}**.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), {m['platform']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v),
        f"- FFmpeg (PyAV): " + ", ".join(f"{k} {v}" for k, v in C.ffmpeg_versions().items()),
        "",
        "## Commands",
        "",
        "```sh",
        'pip install ".[bench]"            # or the packages of the bench extra',
        f"python -m bench.report{' --quick' if quick else ''}      # this page, the plots and bench/results/*",
        f"python -m pytest bench/test_codecs.py --benchmark-only{' --quick' if quick else ''}   # the decode-time part alone",
        "```",
        "",
        f"Run times in this run: RD evaluation {data['runtime_s']['rd']:.0f} s, decode benchmark "
        f"{data['runtime_s']['benchmark']:.0f} s, total {data['runtime_s']['total']:.0f} s.",
        "Kodak: `--kodak DIR` or `$JPEGAI_BENCH_KODAK`; VVC anchor: `--vvc-dir DIR` or `$JPEGAI_BENCH_VVC`.",
        "",
    ]
    L += ["## Headline: decode time ÷ FFmpeg VVC decode time near 0.25 bpp", ""]
    if bench and bench.get("headline"):
        L += ["| codec | threads | VVC QP | VVC mean bpp | decode time ÷ VVC (geo-mean over images) | note |",
              "|---|---|---:|---:|---:|---|"]
        for r in bench["headline"]:
            L.append(f"| {r['codec']} | {r['threads']} | {r['QP']} | {_f(r['VVC mean bpp'], 3)} | "
                     f"{_f(r.get('÷ VVC (decode, geo-mean)'), 3)} | {r.get('note') or ''} |")
    else:
        L.append("(benchmark not run: `--no-bench`)")
    L += ["", "Decode = compressed bytes in memory -> RGB uint8 array, colour conversion included for every codec; "
          "the VVC stream is the anchor's, every other codec's stream is its ladder point nearest in bpp to it.", ""]

    if bench:
        rt = bench["ratio table (codec decode time ÷ VVC decode time, same op and threads, matched bpp)"]
        qps = sorted({r["QP"] for r in rt if r["QP"] != "all"})
        L += ["## Ratio table: decode time ÷ VVC decode time (geo-mean over images, same op and threads)", ""]
        L += ["| codec | op | threads | " + " | ".join(f"QP{q}" for q in qps) + " |",
              "|---|---|---|" + "---:|" * len(qps)]
        keys = list(dict.fromkeys((r["codec"], r["op"], r["threads"]) for r in rt if r["QP"] != "all"))
        for k in keys:
            cells = []
            for q in qps:
                r = next((r for r in rt if r["QP"] == q and (r["codec"], r["op"], r["threads"]) == k), None)
                cells.append(_f(r and r["÷ VVC (geo-mean over images)"], 3) +
                             (f" ({_f(r['codec mean bpp'], 3)} bpp)" if r else ""))
            L.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " |")
        for r in rt:
            if r["QP"] == "all":
                L.append(f"| {r['codec']} | decode | 1 / all | " + " | ".join([PLACEHOLDER] * len(qps)) + " |")
        vb = {r["QP"]: r["VVC mean bpp"] for r in rt if r["QP"] != "all" and r["codec"] == C.ANCHOR}
        L += ["", "VVC mean bpp per QP: " + ", ".join(f"QP{q} {_f(vb.get(q), 3)}" for q in qps) +
              ". In parentheses: the codec's mean bpp of its matched streams.", ""]
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
          f"Per image (the image's VVC points from anchor_rgb.csv vs the codec's ladder), then the mean over images; "
          f"{data['bd_rate_backend']}, over the overlap of the quality ranges (negative = fewer bits than VVC at "
          f"equal quality). Images: {len(data['images'])}.", "",
          "| codec | " + " | ".join(f"BD-rate {lab} %" for _, lab in QUALITIES) + " | mean quality-range overlap (PSNR-YUV) |",
          "|---|" + "---:|" * (len(QUALITIES) + 1)]
    for r in data["bd_rate vs VVC"]:
        if r.get("note"):
            L.append(f"| {r['codec']} | " + " | ".join([r["note"]] * len(QUALITIES)) + " | — |")
        else:
            L.append(f"| {r['codec']} | " + " | ".join(_f(r[f"BD-rate {lab} %"], 1) for _, lab in QUALITIES) +
                     f" | {_f(r['mean overlap (PSNR-YUV (6:1:1))'], 2)} |")
    L.append("")

    L += ["## Plots", ""]
    for key, title in (("rd-psnr_yuv", "RD, PSNR-YUV"), ("rd-msssim_db", "RD, MS-SSIM-Y (dB)"),
                       ("decode-time-vs-bpp", "Decode time vs bpp (1 thread)"),
                       ("stage-breakdown", "Decode stages"), ("thread-scaling", "Thread scaling")):
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

    L += ["## Not measured yet (placeholders)", ""]
    if _ours_note():
        L.append(f"- jpegai_fast SOP/BOP decode time, RD points, BD-rate, stage breakdown and thread scaling: "
                 f"{PLACEHOLDER}.")
    L += [
          "- Peak RSS of a decode at 0.4, 3, 12 and 50 MP per operating point: needs the decoder (issue 4); "
          "the VVC anchor exists only at Kodak size.",
          ""]
    L += ["## What the numbers do not say", "",
          "- They are from one shared machine whose core count and CPU are listed above, measured side by side in "
          "one run; absolute times move with machine load, the ratios less so. Other machines (more cores, other "
          "SIMD) can order the codecs differently.",
          "- The decode time of VVC, HEVC and AV1 includes a float64 numpy 4:2:0 -> RGB conversion "
          "(the anchor's exact convention); a production decoder would use an integer SIMD conversion, so the "
          "codec-only columns bound what those codecs could reach. JPEG/J2K/JXL convert inside their libraries.",
          "- Matched bitrates are the nearest ladder point, not equal rates: compare the bpp columns; decode time "
          "depends on the rate (see the decode-time plot).",
          "- Quality is PSNR/MS-SSIM on Kodak (small, old scanned photos). Neither metric is a subjective "
          "test, and Kodak says little about large modern photos or about memory use.",
          "- BD-rates are per-image means over the overlapping quality range only; where a codec's ladder does "
          "not reach VVC's lowest or highest quality (JPEG at low rates) the overlap column shows how much of the "
          "range was compared.",
          "- The VVC anchor is vvenc `medium` (4:2:0, 10 bit), not VTM; HEVC is x265 `medium`, AV1 is SVT-AV1 "
          "preset 6 — encoder effort changes the RD numbers, not the decoder's work much.",
          "- Encode times are not measured; FFmpeg decoders are created per picture (creation is included).",
          ""]
    if quick:
        L += ["**This page was generated by a `--quick` run (3 images): the numbers are indicative only; "
              "`python -m bench.report` without `--quick` regenerates it on the whole Kodak set.**", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L).rstrip() + "\n")


# --------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 images; benchmark 3 images x 2 QPs (< 3 min)")
    ap.add_argument("--kodak", help="Kodak PNG folder (default ../shared/datasets/kodak)")
    ap.add_argument("--vvc-dir", help="VVC anchor folder (default ../shared/anchors/vvc)")
    ap.add_argument("--results-dir", default=str(RW.RESULTS_DIR))
    ap.add_argument("--docs", default=str(DOCS), help="where to write performance.md")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--no-bench", action="store_true", help="skip the pytest-benchmark decode-time run")
    ap.add_argument("--timing-rounds", type=int, default=3, help="timed decodes per RD point (median)")
    args = ap.parse_args(argv)
    if args.kodak:
        os.environ["JPEGAI_BENCH_KODAK"] = os.path.abspath(args.kodak)
    if args.vvc_dir:
        os.environ["JPEGAI_BENCH_VVC"] = os.path.abspath(args.vvc_dir)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
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

    print(f"RD evaluation on {len(images)} images")
    rd = evaluate_rd(images, args.timing_rounds)
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
        bench, t_bench, tail = run_benchmark(args.quick, results_dir, extra)
        print("  " + tail.replace("\n", "\n  "))

    machine = RW.machine_info(LIBS)
    stem = f"{machine['date_utc'][:10]}-{machine['commit'].replace('+', '-')}"
    plot_paths = plots(curves, bench, stem, results_dir)
    total = time.perf_counter() - t0
    payload = {
        "mode": "quick" if args.quick else "full",
        "images": images,
        "bd_rate_backend": M.bd_rate_backend(),
        "bd_rate vs VVC": bd,
        "VVC metrics re-measured vs anchor_rgb.csv": check,
        "RD mean curves (means over images per ladder point)": [r for rows in curves.values() for r in rows],
        "benchmark_results": bench.get("_path") if bench else None,
        "plots": plot_paths,
        "runtime_s": {"rd": t_rd, "benchmark": t_bench, "total": total},
        "codecs": [c.describe() for c in C.CODECS.values()],
        "RD points": rd["points"],
        "VVC re-measured minus anchor_rgb.csv": chk,
    }
    json_path, md_path = RW.write_results("report", payload, LIBS, results_dir)
    print(f"results: {json_path}\n         {md_path}")
    for p in plot_paths.values():
        print(f"plot: {p}")
    if not args.no_docs:
        data = {"machine": machine, **payload, "benchmark": bench}
        write_docs(Path(args.docs), data, plot_paths, args.quick)
        print(f"docs: {args.docs}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0 if (bench is not None or args.no_bench) else 1


if __name__ == "__main__":
    sys.exit(main())
