"""Decode time of two builds of jpegai_fast side by side (alternating fresh processes, same streams, same threads).

    python tools/compare_decode_speed.py --baseline-site /tmp/old_site --label-baseline 9176b4f \
        [--images kodim01,kodim04,kodim08] [--rate-point 4] [--repeat 15] [--rounds 3] [--threads 1] [--out FILE.md]

The baseline is another checkout installed with `pip install --no-deps --target DIR .`; its site dir is put
first on PYTHONPATH of its worker processes.  Each round runs one worker per build, alternating, each decoding
every stream --repeat times after a warm-up; the medians per image are reported with their ratio
(candidate / baseline).  Streams are encoded once by the candidate build; the test asserts both builds decode
them to identical pixels, so the comparison is of the same work.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile

WORKER = r"""
import json, sys, time, hashlib
import numpy as np
import jpegai_fast
streams = [open(p, "rb").read() for p in sys.argv[2:]]
dec = jpegai_fast.Decoder(threads=int(sys.argv[1]))
out = {"times": [], "hashes": []}
for s in streams:
    rgb = dec.decode(s)
    out["hashes"].append(hashlib.sha256(rgb.tobytes()).hexdigest())
    t = []
    for _ in range(REPEAT):
        t0 = time.perf_counter(); dec.decode(s); t.append(time.perf_counter() - t0)
    out["times"].append(t)
print(json.dumps(out))
"""


def cpu_name():
    """Model name plus family/model (the name alone is "AMD EPYC" on these machines) and the SIMD level used."""
    info = {}
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    from jpegai_fast import _core
    name = info.get("model name") or platform.processor()
    return f"{name} (family {info.get('cpu family', '?')} model {info.get('model', '?')}, SIMD {_core.cpu_features()})"


def run_worker(site, threads, repeat, paths):
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    code = WORKER.replace("REPEAT", str(repeat))
    res = subprocess.run([sys.executable, "-c", code, str(threads), *map(str, paths)], env=env, capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(res.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-site", required=True)
    ap.add_argument("--label-baseline", default="baseline")
    ap.add_argument("--kodak", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/datasets/kodak"))
    ap.add_argument("--images", default="kodim01,kodim04,kodim08")
    ap.add_argument("--rate-point", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import numpy as np
    from PIL import Image

    import jpegai_fast

    tmp = pathlib.Path(tempfile.mkdtemp())
    names = args.images.split(",")
    paths = []
    for n in names:
        rgb = np.array(Image.open(pathlib.Path(args.kodak) / f"{n}.png").convert("RGB"))
        p = tmp / f"{n}.jai"
        p.write_bytes(jpegai_fast.encode(rgb, rate_point=args.rate_point, threads=args.threads))
        paths.append(p)
    times = {"candidate": [[] for _ in names], "baseline": [[] for _ in names]}
    hashes = {}
    for _ in range(args.rounds):
        for label, site in (("baseline", args.baseline_site), ("candidate", None)):
            out = run_worker(site, args.threads, args.repeat, paths)
            hashes[label] = out["hashes"]
            for i, t in enumerate(out["times"]):
                times[label][i] += t
    same = hashes["candidate"] == hashes["baseline"]
    import subprocess as sp
    commit = sp.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                    cwd=pathlib.Path(__file__).resolve().parent).stdout.strip()
    lines = [f"# Decode time: {commit} (candidate) vs {args.label_baseline} (baseline)", "",
             f"- Date {datetime.date.today()}, CPU {cpu_name()}, {os.cpu_count()} cores, threads {args.threads}; "
             f"Kodak {args.images} at rate point {args.rate_point}, BOP; {args.rounds} alternating rounds x "
             f"{args.repeat} decodes per image and build (fresh process per round).",
             f"- Pixels identical between the builds: {same}.",
             "- Command: `python tools/compare_decode_speed.py --baseline-site DIR "
             f"--label-baseline {args.label_baseline} "
             f"--images {args.images} --rate-point {args.rate_point} --repeat {args.repeat} --rounds {args.rounds} "
             f"--threads {args.threads}`", "",
             "| image | baseline median ms | candidate median ms | candidate / baseline | baseline min "
             "| candidate min |",
             "|---|---:|---:|---:|---:|---:|"]
    ratios = []
    for i, n in enumerate(names):
        b, c = statistics.median(times["baseline"][i]), statistics.median(times["candidate"][i])
        ratios.append(c / b)
        lines.append(f"| {n} | {1e3 * b:.1f} | {1e3 * c:.1f} | {c / b:.3f} | {1e3 * min(times['baseline'][i]):.1f} | "
                     f"{1e3 * min(times['candidate'][i]):.1f} |")
    geo = float(np.exp(np.mean(np.log(ratios))))
    lines += ["", f"Geometric mean ratio candidate / baseline: **{geo:.3f}**"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
