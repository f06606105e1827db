"""Command line: ``jpegai-fast <command>`` (or ``python -m jpegai_fast``).

    jpegai-fast encode photo.png out.jai --bpp 0.25     (or --quality 0..100, --rate-point R; directories: every
                                                         image inside, --jobs N pictures at a time)
    jpegai-fast decode out.jai out.png                  (directories: every .jai inside; --jobs N)
    jpegai-fast info out.jai [--timing]
    jpegai-fast roundtrip [photo.png | astronaut] --bpp 0.25   (encode + decode; bpp, PSNR, decode time)
    jpegai-fast eval DIR --bpp 0.1,0.25 [--json] [--plot rd.png]   (RD figures of a folder, as training/rd_eval)
    jpegai-fast demo                                    (entropy-coding demo of the rANS core)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}
COMMANDS = {
    "encode": "image file or directory -> .jai (--bpp B, --quality 0..100 or --rate-point R)",
    "decode": ".jai file or directory -> PNG (or any Pillow format by extension)",
    "info": "header, size and bpp of .jai files (--timing: per-stage decode time)",
    "roundtrip": "encode + decode a photo; prints bpp, PSNR and decode time",
    "eval": "RD evaluation of a folder of images: mean bpp, PSNR-YUV/RGB, MS-SSIM, times per target",
    "demo": "entropy-code a real photo's DCT residual and decode it (prints size, ideal, speed)",
}


def _progress(items, desc, total: int | None = None):
    """A progress bar over ``items`` (a list, or an iterator of ``total`` items, consumed lazily)."""
    if total is None:
        items = list(items)
        total = len(items)
    if total <= 1:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a runtime dependency; a missing one only loses the bar
        return items
    return tqdm(items, desc=desc, unit="img", total=total)


def _pairs(src: pathlib.Path, dst: pathlib.Path, exts, out_ext):
    """(input, output) files: one file, or every matching file of a directory into dst/ (created)."""
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise SystemExit(f"{src}: no {'/'.join(sorted(exts))} files")
        dst.mkdir(parents=True, exist_ok=True)
        return [(p, dst / (p.stem + out_ext)) for p in files]
    if not src.is_file():
        raise SystemExit(f"{src}: no such file or directory")
    if dst.is_dir():
        dst = dst / (src.stem + out_ext)
    if not dst.parent.is_dir():  # found before any model loads or any work is done
        raise SystemExit(f"{dst.parent}: output folder does not exist")
    return [(src, dst)]


def _load_rgb(path, alpha: str = "refuse") -> np.ndarray:
    from PIL import Image

    from .images import to_rgb8

    with Image.open(path) as im:
        return to_rgb8(im, alpha)


def _load_for_encoding(path, alpha: str, keep_metadata: bool) -> tuple[np.ndarray, dict]:
    """-> (pixels, metadata): grey files as (H, W) (coded monochrome), others RGB; EXIF / ICC profile / XMP kept
    unless ``keep_metadata`` is false (the EXIF orientation, applied to the pixels, reset to 1)."""
    from PIL import Image

    from .images import source_metadata, to_array, upright_metadata

    with Image.open(path) as im:
        pixels = to_array(im, alpha)  # loads the file first: PNG chunks after the pixels are in im.info then
        return pixels, upright_metadata(im, source_metadata(im)) if keep_metadata else {}


def _photo(name: str) -> tuple[str, np.ndarray]:
    p = pathlib.Path(name)
    if p.is_file():
        return str(p), _load_rgb(p)
    try:
        from skimage import data as skdata
    except ImportError as e:
        raise SystemExit(f"{name}: not a file (scikit-image photos need: pip install 'jpegai_fast[demo]')") from e
    if not hasattr(skdata, name):
        raise SystemExit(f"{name}: not a file nor a scikit-image data photo")
    img = getattr(skdata, name)()
    if img.ndim != 3 or img.shape[2] != 3:
        raise SystemExit(f"skimage.data.{name} is not an RGB photo")
    return f"skimage.data.{name}", np.ascontiguousarray(img)


def _psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _percent(timing: dict) -> dict:
    """Stage seconds -> % of the total (stages only)."""
    total = timing["total"]
    return {k: round(100 * v / total, 1) for k, v in timing.items() if k != "total"}


def _rate_args(ap):
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--bpp", type=float, help="target bits per pixel (never exceeded; within 10 %% below when "
                   "reachable); picks the shipped model measured best at that rate")
    g.add_argument("--quality", type=float, help="0 .. 100 (as Pillow's JPEG / HEIF / AVIF plugins), about linear "
                   "in log bpp over the shipped models' best rate points (vm33 below about 0.48 bpp, vr_bop above; "
                   "jpegai_fast.encoder.default_ladder); default: vr_bop's rate point 4 = quality 70 (about 0.58 "
                   "bpp on Kodak)")
    g.add_argument("--rate-point", type=int, help="a trained rate point of the default model, 0 .. 7, exactly")
    ap.add_argument("--op", choices=("bop", "sop"), default="bop",
                    help="synthesis operating point written to the header: bop = base (quality), sop = simple "
                         "(about 2x faster decode, about 0.3 dB lower); any decoder can use either")
    ap.add_argument("--substreams", type=int, default=1, help="independently decodable substreams per tensor, 1..64")
    ap.add_argument("--threads", type=int, default=None, help="default: all cores")


def _model_for_rate_args(a, bpp: float | None = None) -> tuple[str, float | None]:
    """(the model to encode with, the quality on that model's own table) for --bpp / --quality / --rate-point,
    as ``jpegai_fast.encode`` chooses them."""
    from .encoder import default_quality
    from .model import model_for_bpp

    bpp = a.bpp if bpp is None else bpp
    if bpp is not None:
        return model_for_bpp(bpp, a.op), None
    if a.quality is not None:
        return default_quality(a.quality, a.op)
    return "default", None


def _check_rate_args(ap, a):
    """Options are checked before any model is loaded (a bad value reports at once)."""
    if a.bpp is not None and not a.bpp > 0:
        ap.error("--bpp must be positive")
    if a.quality is not None and not 0 <= a.quality <= 100:
        ap.error("--quality must be in 0 .. 100")
    if a.rate_point is not None and not 0 <= a.rate_point <= 7:  # (the default model's; others checked on encode)
        ap.error("--rate-point must be in 0 .. 7")
    if not 1 <= a.substreams <= 64:
        ap.error("--substreams must be in 1 .. 64")
    if a.threads is not None and a.threads < 0:
        ap.error("--threads must be >= 0")
    _check_jobs(ap, a)


def _check_jobs(ap, a):
    """--jobs: 0 = the hardware threads; with no --threads, each picture in flight gets cores / jobs threads
    (results do not depend on either)."""
    if getattr(a, "jobs", None) is None:
        return
    if a.jobs < 0:
        ap.error("--jobs must be >= 0")
    from . import parallel

    a.jobs = parallel.worker_threads(a.jobs)
    if a.threads is None and a.jobs > 1:
        a.threads = parallel._inner_threads(a.jobs, None)


def _batch_args(ap):
    ap.add_argument("--keep-going", action="store_true",
                    help="directories: go on after a file fails (it is named; the exit status is 1 at the end)")
    ap.add_argument("--json", action="store_true", help="one JSON line per file, then a summary line")
    ap.add_argument("--jobs", type=int, default=1,
                    help="directories: pictures in flight at once, on threads sharing one model (0 = one per core; "
                         "default 1); per-file lines stay in input order and outputs are identical")


def _run_batch(a, pairs, one, verb) -> int:
    """Run ``one(src, dst) -> dict`` over the pairs: per-file lines (text or JSON), failures named, a summary;
    exit status 0 if every file succeeded, 1 otherwise (stops at the first failure without --keep-going)."""
    import contextlib
    import json as _json

    from .errors import JpegAiError
    from .parallel import imap

    def task(pair):
        try:
            return one(*pair)
        except (JpegAiError, ValueError, OSError) as e:
            return e

    done, failed = 0, []
    # --jobs N: N files in flight on threads (the shared Encoder / Decoder releases the GIL), results in input order
    results = imap(task, pairs, getattr(a, "jobs", 1), what="file")
    with contextlib.closing(results):  # a stop without --keep-going: files not started yet are not started
        rows = zip(pairs, results)
        for (src, dst), info in _progress(rows, verb, len(pairs)) if not a.json else rows:
            if isinstance(info, BaseException):
                failed.append(str(src))
                msg = {"file": str(src), "ok": False, "error": f"{type(info).__name__}: {info}"}
                print(_json.dumps(msg) if a.json else f"{src}: error: {info}",
                      file=sys.stdout if a.json else sys.stderr)
                if not a.keep_going:
                    break
                continue
            done += 1
            if a.json:
                print(_json.dumps({"file": str(src), "ok": True, "output": str(dst), **info}))
            elif len(pairs) == 1:
                print(f"{src} -> {dst}: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if len(pairs) > 1 or a.json:
        summary = {"files": len(pairs), "ok": done, "failed": len(failed)}
        print(_json.dumps({"summary": summary, "failed_files": failed}) if a.json
              else f"{verb}: {done} of {len(pairs)} files done" + (f", {len(failed)} failed: {', '.join(failed)}"
                                                                    if failed else ""))
    return 0 if not failed and done == len(pairs) else 1


def cmd_encode(argv) -> int:
    ap = argparse.ArgumentParser(prog="jpegai-fast encode", description=COMMANDS["encode"])
    ap.add_argument("input")
    ap.add_argument("output")
    _rate_args(ap)
    ap.add_argument("--tile-size", type=int, default=None,
                    help="synthesis tile written to the header, luma samples (multiple of 16, at least 64; 0 = "
                         "untiled; default 1024 for pictures larger than one tile)")
    ap.add_argument("--tile-overlap", type=int, default=None, help="default 48")
    ap.add_argument("--drop-alpha", action="store_true", help="code pictures with alpha without it (default: refuse)")
    ap.add_argument("--strip-metadata", action="store_true",
                    help="do not keep the source's EXIF, ICC profile and XMP (default: kept, EXIF orientation reset "
                         "to 1 since the pixels are coded upright)")
    ap.add_argument("--strict", action="store_true",
                    help="a --bpp target that cannot be reached (tiny pictures, below the smallest stream) is an error "
                         "for that file (default: a warning, and the smallest stream)")
    ap.add_argument("--refine", type=int, default=0,
                    help="steps of encoder-side latent refinement (a better picture per bit, slower encoding; "
                         "10 took the whole measured gain, -5.5 %% BD-rate on Kodak; models "
                         "with picture-gradient graphs: vm33, which --bpp picks up to about 0.48 bpp)")
    ap.add_argument("--no-pre-emphasis", action="store_true",
                    help="analyse the high rate points once (default: the model card's pre-emphasis, a second "
                         "analysis pass: a better picture per bit, about twice the encode time there)")
    _batch_args(ap)
    a = ap.parse_args(argv)
    _check_rate_args(ap, a)
    pairs = _pairs(pathlib.Path(a.input), pathlib.Path(a.output), IMAGE_EXTS, ".jai")  # paths before the model
    from .encoder import Encoder

    # --bpp: the shipped model measured best at that rate (model cards); --quality: the default ladder's model
    # (encoder.default_quality); --rate-point: the default model's
    model, quality = _model_for_rate_args(a)
    enc = Encoder(model=model, threads=a.threads, pre_emphasis=0.0 if a.no_pre_emphasis else None)

    def one(src, dst):
        rgb, metadata = _load_for_encoding(src, "drop" if a.drop_alpha else "refuse", not a.strip_metadata)
        data = enc.encode(rgb, bpp=a.bpp, quality=quality, rate_point=a.rate_point, operating_point=a.op,
                          substreams=a.substreams,
                          tile_size=a.tile_size, tile_overlap=a.tile_overlap, strict=a.strict, refine=a.refine,
                          **metadata)
        dst.write_bytes(data)
        return {"bytes": len(data), "bpp": round(8 * len(data) / rgb.shape[0] / rgb.shape[1], 4),
                "model": enc.model.name}

    return _run_batch(a, pairs, one, "encode")


def cmd_decode(argv) -> int:
    ap = argparse.ArgumentParser(prog="jpegai-fast decode", description=COMMANDS["decode"])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--op", choices=("bop", "sop", "header"), default="bop",
                    help="synthesis: bop = base, sop = simple (faster), header = the one the stream names")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tile-size", type=int, default=None,
                    help="synthesis tile, luma samples (0 = untiled; default: the stream's, tiled above 4 MP)")
    ap.add_argument("--max-pixels", type=int, default=None,
                    help="refuse streams of larger pictures before decoding (default 2^26 = 67 MP, ~2 GB per decode)")
    ap.add_argument("--strip-metadata", action="store_true",
                    help="do not write the stream's EXIF, ICC profile and XMP into the output (default: written "
                         "where the output format takes them)")
    ap.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                    help="synthesis precision: fp32 (default) or int8 (CPU; the model's quantised graphs, falls back "
                         "to fp32 with a warning where a model has none; PSNR cost in the model card)")
    _batch_args(ap)
    a = ap.parse_args(argv)
    _check_jobs(ap, a)
    pairs = _pairs(pathlib.Path(a.input), pathlib.Path(a.output), {".jai"}, ".png")  # paths before the model
    from PIL import Image

    from .container import DEFAULT_MAX_PIXELS, parse
    from .decoder import decode

    def one(src, dst):
        t0 = time.perf_counter()
        rgb, metadata = decode(src, operating_point=None if a.op == "header" else a.op, threads=a.threads,
                               tile_size="auto" if a.tile_size is None else a.tile_size,
                               max_pixels=DEFAULT_MAX_PIXELS if a.max_pixels is None else a.max_pixels,
                               with_metadata=True, precision=a.precision)
        ms = 1e3 * (time.perf_counter() - t0)
        assert not isinstance(rgb, dict)  # output="rgb"
        grey = parse(src.read_bytes(), max_pixels=1 << 32)[0].chroma_format == 0  # monochrome: a grey picture out
        params: dict[str, Any] = {} if a.strip_metadata else dict(metadata)
        Image.fromarray(rgb[..., 0] if grey else rgb).save(dst, **params)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "decode_ms": round(ms, 1)}

    return _run_batch(a, pairs, one, "decode")


def cmd_info(argv) -> int:
    ap = argparse.ArgumentParser(prog="jpegai-fast info", description=COMMANDS["info"])
    ap.add_argument("input")
    ap.add_argument("--timing", action="store_true", help="decode (after one warm-up) and print the stage times")
    ap.add_argument("--op", choices=("bop", "sop"), default="bop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="synthesis precision (--timing)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from .decoder import Decoder

    src = pathlib.Path(a.input)
    files = sorted(src.glob("*.jai")) if src.is_dir() else [src]
    dec = Decoder(operating_point=a.op, threads=a.threads, precision=a.precision)
    for f in _progress(files, "info") if a.timing else files:
        d = dec.info(f)
        if a.timing:
            dec.decode(f)  # warm-up: session creation and first-run allocation are not decode time
            dec.decode(f)
            d["timing_ms"] = {k: round(1e3 * v, 2) for k, v in dec.last_timing.items()}
            d["timing_percent"] = _percent(dec.last_timing)
            d["threads"] = dec.threads
        if a.json:
            print(json.dumps({"file": str(f), **d}))
            continue
        print(f"{f}: {d['width']}x{d['height']}, {d['bytes']} B, {d['bpp']:.4f} bpp, rate point {d['rate_point']}"
              f" (gain {d['gain_log_luma']}/{d['gain_log_chroma']} Q7), {d['operating_point_name']}, "
              f"model {d['model_id']}, segments {d['segments']}")
        if a.timing:
            print(f"  decode ({d['threads']} threads, {a.op}), total {d['timing_ms']['total']:.1f} ms:")
            for k, v in d["timing_ms"].items():
                if k != "total":
                    print(f"    {k:14s} {v:9.2f} ms  {d['timing_percent'][k]:5.1f} %")
    return 0


def cmd_roundtrip(argv) -> int:
    ap = argparse.ArgumentParser(prog="jpegai-fast roundtrip", description=COMMANDS["roundtrip"])
    ap.add_argument("image", nargs="?", default="astronaut", help="a file or a scikit-image photo name")
    _rate_args(ap)
    ap.add_argument("--out", help="also write the decoded picture here")
    a = ap.parse_args(argv)
    from .decoder import Decoder
    from .encoder import Encoder

    _check_rate_args(ap, a)
    name, rgb = _photo(a.image)
    fixed = a.quality is not None or a.rate_point is not None  # else rate control, 0.25 bpp by default
    bpp = a.bpp if a.bpp is not None or fixed else 0.25
    model, quality = _model_for_rate_args(a, bpp if not fixed else None)
    enc = Encoder(model=model, threads=a.threads)
    t0 = time.perf_counter()
    data = enc.encode(rgb, bpp=bpp if not fixed else None, quality=quality, rate_point=a.rate_point,
                      operating_point=a.op, substreams=a.substreams)
    t_enc = time.perf_counter() - t0
    dec = Decoder(model=enc.model, operating_point=a.op)  # shares the sessions
    out = dec.decode(data)
    best = None
    for _ in range(3):  # the first decode above warmed the sessions; best of 3 on a shared machine
        out = dec.decode(data)
        if best is None or dec.last_timing["total"] < best["total"]:
            best = dict(dec.last_timing)
    assert best is not None  # the loop ran
    h, w = rgb.shape[:2]
    print(f"{name} {w}x{h}: {len(data)} B = {8 * len(data) / (h * w):.4f} bpp"
          + (f" (target {bpp})" if not fixed else f" (quality {a.quality})" if a.quality is not None
             else f" (rate point {a.rate_point})")
          + f", PSNR-RGB {_psnr(out, rgb):.2f} dB, {a.op.upper()}, {dec.threads} threads")
    print(f"  encode {t_enc:.2f} s (incl. rate control), decode {1e3 * best['total']:.1f} ms: "
          + ", ".join(f"{k} {1e3 * v:.1f} ({pct:.0f} %)" for (k, v), pct in zip(
              ((k, v) for k, v in best.items() if k != "total"), _percent(best).values())))
    if a.out:
        from PIL import Image

        Image.fromarray(out).save(a.out)
    return 0


def cmd_eval(argv) -> int:
    from .evaluate import main as eval_main  # RD evaluation: its own module (metrics, tables, plot)

    return eval_main(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-V", "--version"):
        from . import __version__, features

        f = features()
        print(f"jpegai-fast {__version__} (SIMD {f['simd']}, ONNX Runtime {f['onnxruntime']}, models "
              f"{', '.join(f['models'])})")
        return 0
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        print(f"jpegai-fast: unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)}; --help)", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: jpegai-fast <command> [options]   (jpegai-fast --version)\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:10s} {text}")
        return 0 if argv else 2
    if argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    from .errors import JpegAiError

    handler = {"encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "roundtrip": cmd_roundtrip,
               "eval": cmd_eval}[argv[0]]
    try:
        return handler(argv[1:])
    except KeyboardInterrupt:
        print(f"jpegai-fast {argv[0]}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `jpegai-fast info ... | head`: stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (JpegAiError, ValueError, OSError) as e:
        print(f"jpegai-fast {argv[0]}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
