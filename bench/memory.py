"""Peak resident memory (RSS) of one jpegai_fast decode at 0.4, 3, 12 and 50 MP, per operating point.

    python -m bench.memory [--quick] [--sizes 0.4,3,12,50] [--ops bop,sop] [--threads 0] [--image kodim23]

Pictures: a Kodak photo (default kodim23, 768 × 512 = 0.39 MP) mirror-tiled (the photo, its left–right mirror,
its up–down mirror, … so that there are no seams) and cropped to 768 × 512, 2048 × 1536, 4096 × 3072 and
8192 × 6144 (0.39, 3.1, 12.6 and 50.3 MP).  Each is encoded once with ``jpegai_fast.encode(rgb, rate_point=R,
operating_point="bop")`` (``--rate-point``, default 3) in its own subprocess and cached in bench/.cache/memory/
(key: model + package sources + core, picture size, rate point, source image); both operating points decode that
stream (``Decoder(operating_point=op)`` picks the synthesis; the coded latents do not depend on it).  A stream
made on a bigger machine can be put in the cache under the name the run prints.

Measurement: every decode runs in a fresh Python subprocess that imports jpegai_fast, reads the stream from
the cache file, creates ``jpegai_fast.Decoder(operating_point=op, threads=...)`` and decodes once.  Peak RSS =
the child's own high-water mark ``VmHWM`` (/proc/self/status) read after the decode; baseline = the same just
before ``decode()`` (interpreter + numpy + onnxruntime + jpegai_fast imported, decoder created, stream read), so
"decode increment" = peak − baseline.  The kernel's ``ru_maxrss`` of that one child (``os.wait4``) is recorded
too: it agrees with VmHWM when the launching process is small, but Linux carries the launcher's own high-water
mark across fork + exec into the child's ``ru_maxrss`` (so from a 1 GB parent every child would read ≥ 1 GB) —
which is why ``python -m bench.report`` runs this module as its own small subprocess.  The output array alone
is H × W × 3 bytes.

Guard: each subprocess gets an address-space limit (RLIMIT_AS, ``--mem-limit-gb``, default 85 % of the memory
available when the run starts), so a size that does not fit fails with an allocation error in that child instead of
waking the kernel's OOM killer, which could hit another process on a shared machine.  A size that fails or
times out is reported as such (what was seen), and the run goes on.

Also measured for reference: the FFmpeg VVC decode of the anchor stream of the same photo (Kodak size only, the
anchor exists only at that size), same method.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIZES = {  # label -> (width, height)
    "0.4 MP": (768, 512),
    "3 MP": (2048, 1536),
    "12 MP": (4096, 3072),
    "50 MP": (8192, 6144),
}
QUICK_SIZES = ("0.4 MP", "3 MP")
OPS = ("bop", "sop")
DEFAULT_IMAGE = "kodim23"
DEFAULT_RATE_POINT = 3
ENCODE_OP = "bop"  # header of the memory streams; the decoder's operating_point picks the synthesis
VVC_QP = 37


def cache_dir() -> Path:
    base = os.environ.get("JPEGAI_BENCH_CACHE")
    return (Path(base).parent if base else Path(__file__).resolve().parent / ".cache") / "memory"


def mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def make_picture(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mirror-tile ``rgb`` to at least width × height and crop: a natural-looking picture of any size."""
    block = np.concatenate([rgb, rgb[:, ::-1]], axis=1)
    block = np.concatenate([block, block[::-1]], axis=0)
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    return np.ascontiguousarray(np.tile(block, reps)[:height, :width])


# --------------------------------------------------------------------------------------------- children

_ENCODE_CHILD = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
import jpegai_fast
sys.path.insert(0, {repo!r})
from bench.memory import make_picture
args = json.loads(sys.argv[1])
with Image.open(args["png"]) as im:
    rgb = np.asarray(im.convert("RGB"))
pic = make_picture(rgb, args["width"], args["height"])
t0 = time.perf_counter()
data = jpegai_fast.encode(pic, rate_point=args["rate_point"], operating_point=args["op"])
dt = time.perf_counter() - t0
with open(args["out"], "wb") as f:
    f.write(data)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
json.dump({{"encode_s": dt, "bytes": len(data), "hwm_kb": hwm,
           "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}, open(args["report"], "w"))
"""

_DECODE_CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
import numpy as np
data = open(args["stream"], "rb").read()
if args["codec"] == "vvc":
    sys.path.insert(0, {repo!r})
    from bench.codecs import VVC
    dec = VVC()
    run = lambda: dec.decode(data, args["threads"])
else:
    import jpegai_fast
    dec = jpegai_fast.Decoder(operating_point=args["codec"], threads=args["threads"] or None)
    run = lambda: dec.decode(data)
def status():
    d = {{}}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            d[k] = int(v.split()[0])
    return d
base = status()
t0 = time.perf_counter()
out = run()
dt = time.perf_counter() - t0
end = status()
rep = {{"decode_s": dt, "baseline_kb": base["VmHWM"], "hwm_kb": end["VmHWM"], "rss_after_kb": end["VmRSS"],
       "shape": list(out.shape), "dtype": str(out.dtype),
       "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}
if args["codec"] != "vvc":
    rep["stages_s"] = dict(dec.last_timing)
    rep["threads"] = dec.threads
json.dump(rep, open(args["report"], "w"))
"""


def _run_child(code: str, args: dict, timeout: float, mem_limit: int | None) -> dict:
    """Run one child; returns its JSON report plus the kernel's rusage of that child (peak RSS), or an error."""
    with tempfile.TemporaryDirectory() as tmp:
        args = dict(args, report=os.path.join(tmp, "report.json"))

        def limit():
            if mem_limit:
                resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code.format(repo=str(REPO)), json.dumps(args)],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "w"),
                                preexec_fn=limit, cwd=REPO)
        status, ru = None, None
        while True:
            pid, st, r = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, ru = st, r
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                _, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        wall = time.perf_counter() - t0
        out = {"child_peak_rss_mb": ru.ru_maxrss / 1024, "wall_s": wall, "exit": proc.returncode}
        if os.path.exists(args["report"]):
            out.update(json.load(open(args["report"])))
            return out
        err = open(os.path.join(tmp, "err")).read().strip().splitlines()
        timed_out = wall > timeout
        out["error"] = (f"timed out after {timeout:.0f} s" if timed_out else
                        f"exit {proc.returncode}: " + (err[-1][:300] if err else "no message"))
        return out


def _digest() -> str:
    from bench.codecs import _jpegai_digest

    return _jpegai_digest()


def stream_for(label: str, image_png: Path, rate_point: int, timeout: float, mem_limit: int | None, retry: bool,
               log=print) -> tuple[Path | None, dict]:
    """The cached stream of the picture ``label`` (encoded in a subprocess the first time).  A failed encode is
    remembered for the same code, picture and memory limit (``retry`` tries again)."""
    w, h = SIZES[label]
    key = hashlib.sha256(json.dumps([_digest(), w, h, rate_point, ENCODE_OP, hashlib.sha256(image_png.read_bytes())
                                     .hexdigest()]).encode()).hexdigest()[:20]
    path = cache_dir() / f"{image_png.stem}-{w}x{h}-r{rate_point}-{key}.jai"
    meta_path = path.with_suffix(".json")
    fail_path = path.with_suffix(f".failed-{(mem_limit or 0) >> 30}G.json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text()) | {"cached": True, "path": str(path)}
    if fail_path.exists() and not retry:
        rep = json.loads(fail_path.read_text())
        rep["error"] = f"(earlier run, --retry to try again) {rep['error']}"
        return None, rep
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"  encoding {label} ({w}x{h}) once -> {path}")
    rep = _run_child(_ENCODE_CHILD, {"png": str(image_png), "width": w, "height": h, "rate_point": rate_point,
                                     "op": ENCODE_OP, "out": str(path) + ".tmp"}, timeout, mem_limit)
    if "error" in rep:
        Path(str(path) + ".tmp").unlink(missing_ok=True)
        fail_path.write_text(json.dumps(rep))
        return None, rep
    os.replace(str(path) + ".tmp", path)
    meta = {"encode_s": rep["encode_s"], "encoder_peak_rss_mb": rep["hwm_kb"] / 1024, "bytes": rep["bytes"]}
    meta_path.write_text(json.dumps(meta))
    return path, meta | {"cached": False, "path": str(path)}


def measure(sizes=tuple(SIZES), ops=OPS, threads: int = 0, image: str = DEFAULT_IMAGE,
            rate_point: int = DEFAULT_RATE_POINT, timeout: float = 600.0, mem_limit_gb: float | None = None,
            vvc: bool = True, retry: bool = False, log=print) -> dict:
    from bench import codecs as C

    png = C.kodak_dir() / f"{image}.png"
    avail = mem_available()
    mem_limit = int(mem_limit_gb * 2**30) if mem_limit_gb else (int(0.85 * avail) if avail else None)
    tlabel = "1" if threads == 1 else f"all ({os.cpu_count()})"
    rows, encodes = [], []
    for label in sizes:
        w, h = SIZES[label]
        t0 = time.perf_counter()
        path, enc = stream_for(label, png, rate_point, timeout, mem_limit, retry, log)
        encodes.append({"size": label, "width": w, "height": h, "MP": w * h / 1e6,
                        "result": "ok" if path else "encode failed", "cached": enc.get("cached"),
                        "bytes": enc.get("bytes"), "bpp": 8 * enc["bytes"] / (w * h) if enc.get("bytes") else None,
                        "encode s": enc.get("encode_s"),
                        "encoder peak RSS MB": enc.get("encoder_peak_rss_mb", enc.get("child_peak_rss_mb")),
                        "error": enc.get("error")})
        if path is None:
            log(f"  {label}: encode failed ({enc.get('error')}; "
                f"encoder peak {enc.get('child_peak_rss_mb') or 0:.0f} MB)")
        for op in ops:
            row = {"size": label, "width": w, "height": h, "MP": w * h / 1e6, "codec": f"jpegai_fast-{op}",
                   "threads": tlabel}
            if path is None:
                row.update(result="not measured: no stream (encode failed)")
                rows.append(row)
                continue
            row.update(bytes=enc["bytes"], bpp=8 * enc["bytes"] / (w * h))
            rep = _run_child(_DECODE_CHILD, {"stream": str(path), "codec": op, "threads": threads}, timeout, mem_limit)
            row.update(_decode_fields(rep, w, h))
            rows.append(row)
            log(f"  {label} {op}: {row['result']}, peak RSS {row.get('peak RSS MB') or 0:.0f} MB, "
                f"decode {row.get('decode s') or 0:.2f} s ({time.perf_counter() - t0:.0f} s)")
    if vvc and "0.4 MP" in sizes:
        stream = C.vvc_dir() / f"{image}_qp{VVC_QP}.266"
        if stream.exists() and C.CODECS["vvc"].available() is None:
            rep = _run_child(_DECODE_CHILD, {"stream": str(stream), "codec": "vvc", "threads": threads}, timeout,
                             mem_limit)
            w, h = SIZES["0.4 MP"]
            nbytes = stream.stat().st_size
            rows.append({"size": "0.4 MP", "width": w, "height": h, "MP": w * h / 1e6, "codec": f"vvc (QP{VVC_QP})",
                         "threads": tlabel, "bytes": nbytes, "bpp": 8 * nbytes / (w * h), **_decode_fields(rep, w, h)})
    return {
        "rows": rows,
        "streams": encodes,
        "picture": f"{image} ({png.name}) mirror-tiled and cropped to each size",
        "stream": f"jpegai_fast.encode(picture, rate_point={rate_point}, operating_point='{ENCODE_OP}') once per "
                  "size, in a subprocess; both operating points decode it (Decoder(operating_point=op) chooses the "
                  "synthesis; the latents are the same)",
        "decoder": f"jpegai_fast.Decoder(operating_point=op, threads={threads or None}), every other argument at "
                   "its default (synthesis tiling as the library decides for the stream and size)",
        "threads": threads,
        "address-space limit per child (GB)": mem_limit / 2**30 if mem_limit else None,
        "memory available at start (GB)": avail / 2**30 if avail else None,
        "method": "fresh subprocess per decode; peak RSS = the child's VmHWM (/proc/self/status) after the decode; "
                  "baseline = its VmHWM after imports, Decoder creation and reading the stream, before decode(); "
                  "ru_maxrss of the child (os.wait4) recorded alongside",
    }


def _decode_fields(rep: dict, w: int, h: int) -> dict:
    out = {"peak RSS MB": None, "ru_maxrss MB (wait4)": rep.get("child_peak_rss_mb"), "wall s": rep.get("wall_s")}
    if "error" in rep:
        out["result"] = "decode failed"
        out["error"] = rep["error"]
        return out
    ok = rep.get("shape") == [h, w, 3] and rep.get("dtype") == "uint8"
    peak = rep["hwm_kb"] / 1024
    out.update({"result": "ok" if ok else f"wrong output {rep.get('shape')} {rep.get('dtype')}",
                "peak RSS MB": peak, "ru_maxrss MB (wait4)": rep["child_peak_rss_mb"],
                "decode s": rep["decode_s"], "baseline MB": rep["baseline_kb"] / 1024,
                "decode increment MB": peak - rep["baseline_kb"] / 1024,
                "peak ÷ output bytes": peak * 2**20 / (w * h * 3)})
    if rep.get("stages_s"):
        out["stages ms"] = {k: round(v * 1e3, 1) for k, v in rep["stages_s"].items()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"sizes {', '.join(QUICK_SIZES)} only")
    ap.add_argument("--sizes", help="comma list of " + ", ".join(s.split()[0] for s in SIZES))
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--threads", type=int, default=0, help="decoder threads (0: all cores, the default)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--rate-point", type=int, default=DEFAULT_RATE_POINT)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per child")
    ap.add_argument("--mem-limit-gb", type=float, default=None, help="address-space limit per child "
                    "(default 85 %% of MemAvailable)")
    ap.add_argument("--retry", action="store_true", help="try again encodes that failed in an earlier run")
    ap.add_argument("--kodak", help="Kodak PNG folder")
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args(argv)
    if args.kodak:
        os.environ["JPEGAI_BENCH_KODAK"] = os.path.abspath(args.kodak)
    sizes = QUICK_SIZES if args.quick else tuple(SIZES)
    if args.sizes:
        want = {s.strip() for s in args.sizes.split(",")}
        sizes = tuple(k for k in SIZES if k.split()[0] in want)
    launcher_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = measure(sizes, tuple(args.ops.split(",")), args.threads, args.image, args.rate_point, args.timeout,
                  args.mem_limit_gb, retry=args.retry)
    res["launcher ru_maxrss MB (floor of the children's ru_maxrss)"] = max(
        launcher_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    if not args.no_results:
        from bench.results_writer import write_results

        for p in write_results("memory", res, ("onnxruntime", "av"), args.results_dir):
            print(f"bench results written: {p}")
    return 0 if all(r["result"] == "ok" for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
