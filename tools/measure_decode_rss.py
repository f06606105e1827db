"""Decode one stream in a fresh process; print JSON with its peak RSS and decode time.

    python tools/measure_decode_rss.py STREAM.jai [--op bop|sop] [--threads N] [--tile-size T]
           [--tile-overlap O] [--out decoded.npy]

Prints one JSON line: {"peak_rss_mb", "seconds", "seconds_with_model_load", "vm_hwm_mb", "timing_ms", "width",
"height", "threads", "op", "tiling"}.  The decode runs in a child process (a fresh interpreter: imports,
model load, one decode); its peak resident set size is read by this process with
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the child has exited, so it includes the
interpreter, numpy, ONNX Runtime and the model, i.e. what a user's process needs to decode the picture.
MB are MiB.  Run this script as its own process (not :func:`measure` inside a big one): Linux records a
forked child's inherited image (the parent's RSS at fork) in the child's ru_maxrss when it execs, so a
child of a large process reads at least the parent's size.  ``vm_hwm_mb`` is the child's own VmHWM from
/proc/self/status (its post-exec peak; Linux only, else null), a cross-check that has no such effect.
``seconds`` is the decode call alone (sessions are created on first use, so it includes that too; the
model file's read is in ``seconds_with_model_load``).  ``--out``: save the decoded RGB as .npy.
Linux/macOS only (``resource``).  Used by tests/test_large_picture.py; usable from a bench.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from jpegai_fast import Decoder
args = json.loads(sys.argv[1])
tile = args["tile_size"]
dec = Decoder(operating_point=args["op"], threads=args["threads"], tile_size=tile if tile is not None else "auto",
              tile_overlap=args["tile_overlap"])
data = open(args["stream"], "rb").read()
info = dec.info(data)
t1 = time.perf_counter()
rgb = dec.decode(data)
t2 = time.perf_counter()
hwm = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm = round(int(line.split()[1]) / 1024, 1)
except OSError:
    pass
if args["out"]:
    np.save(args["out"], rgb)
print(json.dumps({"seconds": t2 - t1, "seconds_with_model_load": t2 - t0, "vm_hwm_mb": hwm,
                  "timing_ms": {k: round(1e3 * v, 1) for k, v in dec.last_timing.items()},
                  "width": info["width"], "height": info["height"], "threads": dec.threads,
                  "op": args["op"], "tiling": list(info["synthesis_tiling"])}))
"""


def measure(stream, op="bop", threads=None, tile_size=None, tile_overlap=None, out=None, timeout=1800) -> dict:
    """Run the child, return its JSON plus ``peak_rss_mb``.  Call from a small process that has had no
    other children (RUSAGE_CHILDREN is the maximum over every waited-for child, and includes the
    caller's own RSS at fork time: see the module docstring)."""
    args = {"stream": str(stream), "op": op, "threads": threads, "tile_size": tile_size,
            "tile_overlap": tile_overlap, "out": str(out) if out else None}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"decode process failed ({r.returncode}):\n{r.stderr[-4000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, bytes on macOS
    res["peak_rss_mb"] = round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("--op", choices=("bop", "sop"), default="bop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tile-size", type=int, default=None, help="default: the Decoder's 'auto'")
    ap.add_argument("--tile-overlap", type=int, default=None)
    ap.add_argument("--out", default=None, help="save the decoded RGB here (.npy)")
    a = ap.parse_args(argv)
    res = measure(a.stream, a.op, a.threads, a.tile_size, a.tile_overlap, a.out)
    print(json.dumps({"peak_rss_mb": res.pop("peak_rss_mb"), "seconds": round(res.pop("seconds"), 3), **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
