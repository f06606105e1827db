"""Pre-emphasis of the high-rate analysis (vm33, card key ``analysis_hi_pre_emphasis``): what the second analysis
pass costs in encode time and what it buys, Kodak size (768 x 512), one thread.

At rate points 6 and 11 (the first and the last of the high-rate analysis) encodes with one pass
(``Encoder(pre_emphasis=0)``) and with the card's pre-emphasis alternate, so a load change on a shared machine hits
both alike.  Reported: min / median encode time of each and their ratio (medians), and (bpp, PSNR-YUV, MS-SSIM-Y
dB) of each stream decoded.  The RD gain on 24 Kodak images: ``python -m training.rd_eval --model
src/jpegai_fast/models/vm33 --baseline ...`` (training/README.md, "Pre-emphasis of the high-rate analysis").

    python -m pytest bench/test_pre_emphasis.py --benchmark-only
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from bench.results_writer import extra_info_rows, register_suite
from bench.test_decode_stages import kodak_size_picture

SUITE = "pre_emphasis"
ROUNDS = 3


def _has_pre_emphasis() -> bool:
    import jpegai_fast

    try:
        return jpegai_fast.Encoder("vm33", threads=1).pre_emphasis > 0
    except (OSError, ValueError):
        return False


@pytest.mark.skipif(not _has_pre_emphasis(), reason="vm33's card sets no pre-emphasis")
@pytest.mark.parametrize("rate", [6, 11])
def test_pre_emphasis_encode_time(benchmark, rate):
    import jpegai_fast
    from jpegai_fast import metrics

    name, rgb = kodak_size_picture()
    encs = {"one_pass": jpegai_fast.Encoder("vm33", threads=1, pre_emphasis=0),
            "pre_emphasis": jpegai_fast.Encoder("vm33", threads=1)}
    for enc in encs.values():
        enc.encode(rgb, rate_point=rate)  # warm-up: sessions, first allocations
    times: dict[str, list[float]] = {k: [] for k in encs}
    streams: dict[str, bytes] = {}

    def run():
        for key, enc in encs.items():
            t0 = time.perf_counter()
            streams[key] = enc.encode(rgb, rate_point=rate)
            times[key].append(time.perf_counter() - t0)

    benchmark.group = "pre_emphasis"
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=0)
    ms = {k: 1e3 * np.array(v) for k, v in times.items()}
    rd = {}
    for key, data in streams.items():
        m = metrics.rd_metrics(rgb, jpegai_fast.decode(data, threads=1), len(data))
        rd[key] = [round(m["bpp"], 4), round(m["psnr_yuv"], 3), round(m["msssim_db"], 3)]
    benchmark.extra_info.update(
        suite=SUITE, model="vm33", rate_point=rate, threads=1, picture=name, size=f"{rgb.shape[1]}x{rgb.shape[0]}",
        beta=encs["pre_emphasis"].pre_emphasis,
        one_pass_ms_min=round(float(ms["one_pass"].min()), 1),
        one_pass_ms_median=round(float(np.median(ms["one_pass"])), 1),
        pre_emphasis_ms_min=round(float(ms["pre_emphasis"].min()), 1),
        pre_emphasis_ms_median=round(float(np.median(ms["pre_emphasis"])), 1),
        time_ratio=round(float(np.median(ms["pre_emphasis"]) / np.median(ms["one_pass"])), 2),
        one_pass=rd["one_pass"], with_pre_emphasis=rd["pre_emphasis"])


def summarize(rows: list[dict]) -> dict:
    table = extra_info_rows(rows, ("rate_point", "beta", "one_pass_ms_median", "pre_emphasis_ms_median", "time_ratio",
                                   "one_pass", "with_pre_emphasis"))
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}), vm33, encode(rate_point=r) with one analysis pass vs with "
                        f"the card's pre-emphasis, 1 thread, {ROUNDS} alternating rounds; one_pass / "
                        "with_pre_emphasis = (bpp, PSNR-YUV, MS-SSIM-Y dB) of the decoded stream",
            "pre_emphasis": table}


register_suite(SUITE, summarize, libraries=("onnxruntime",))
