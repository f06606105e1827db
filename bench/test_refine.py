"""Encoder-side latent refinement (``encode(..., refine=N)``): encode time per refinement step and what the
steps buy, Kodak size (768 x 512), one thread.

For vm33 (the model that ships picture-gradient graphs) at rate points 4 and 8: plain encodes and encodes with
STEPS refinement steps alternate (plain, refined, plain, ...) so a load change on a shared machine hits both
alike.  Reported: min / median encode time of each, the time per step ((refined − plain) / STEPS, medians), and
the refinement trace's first and best (bpp, PSNR-YUV, MS-SSIM-Y dB) on the float synthesis.  The RD gain on Kodak
is measured by ``python -m training.rd_eval --refine N`` (training/README.md, "Encoder-side latent
refinement").

    python -m pytest bench/test_refine.py --benchmark-only
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from bench.results_writer import extra_info_rows, register_suite
from bench.test_decode_stages import kodak_size_picture

SUITE = "refine"
STEPS = 10
ROUNDS = 3


def _has_graphs() -> bool:
    from jpegai_fast.model import MODELS_DIR
    return (MODELS_DIR / "vm33" / "picture_gradient_bop.onnx").is_file()


@pytest.mark.skipif(not _has_graphs(), reason="vm33 ships no picture-gradient graphs")
@pytest.mark.parametrize("rate", [4, 8])
def test_refine_encode_time(benchmark, rate):
    import jpegai_fast

    name, rgb = kodak_size_picture()
    enc = jpegai_fast.Encoder("vm33", threads=1)
    enc.encode(rgb, rate_point=rate, refine=1)  # warm-up: sessions, first allocations
    times: dict[str, list[float]] = {"plain": [], "refined": []}
    traces = []

    def run():
        for key, steps in (("plain", 0), ("refined", STEPS)):
            t0 = time.perf_counter()
            enc.encode(rgb, rate_point=rate, refine=steps)
            times[key].append(time.perf_counter() - t0)
            if steps:
                traces.append(list(enc.last_refinement))

    benchmark.group = "refine"
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=0)
    ms = {k: 1e3 * np.array(v) for k, v in times.items()}
    trace = traces[-1]
    best = min(trace, key=lambda t: t[3])
    benchmark.extra_info.update(
        suite=SUITE, model="vm33", rate_point=rate, threads=1, picture=name, size=f"{rgb.shape[1]}x{rgb.shape[0]}",
        steps=STEPS, plain_ms_min=round(float(ms["plain"].min()), 1),
        plain_ms_median=round(float(np.median(ms["plain"])), 1),
        refined_ms_min=round(float(ms["refined"].min()), 1),
        refined_ms_median=round(float(np.median(ms["refined"])), 1),
        ms_per_step=round(float(np.median(ms["refined"]) - np.median(ms["plain"])) / STEPS, 1),
        first=[round(v, 4) for v in trace[0][:3]], best=[round(v, 4) for v in best[:3]],
        best_step=trace.index(best))


def summarize(rows: list[dict]) -> dict:
    table = extra_info_rows(rows, ("rate_point", "steps", "plain_ms_median", "refined_ms_median", "ms_per_step",
                                   "first", "best", "best_step"))
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}), vm33 BOP, encode(rate_point=r) vs encode(rate_point=r, "
                        f"refine={STEPS}), 1 thread, {ROUNDS} alternating rounds; first / best = (bpp, PSNR-YUV, "
                        "MS-SSIM-Y dB) of the float synthesis at step 0 / at the lowest-loss step",
            "refine": table}


register_suite(SUITE, summarize, libraries=("onnxruntime",))
