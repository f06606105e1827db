"""Integer hyper-scale decoder (C++): vectorised kernel vs its scalar reference, 1 and all threads.

Shapes are those of a Kodak picture (768 x 512 -> z 12 x 8, latent 48 x 32): luma 160 channels,
chroma 96.  Weights are random int8 of trained-like magnitude (the kernel's speed does not depend on
their values).  Every timed call is checked against the scalar reference once.

    python -m pytest bench/test_hyper_scale.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.results_writer import register_suite
from jpegai_fast import _core

SUITE = "hyper_scale"
Z_HW, LATENT_HW = (8, 12), (32, 48)  # Kodak landscape


def make_hsd(channels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = []
    for cin, cout, k in ((channels, channels, 1), (channels, channels, 3), (channels, 16 * channels, 1)):
        arrays += [rng.integers(-4, 5, size=(cout, cin, k, k), dtype=np.int8),
                   rng.integers(-2**16, 2**16, size=cout, dtype=np.int32),
                   rng.integers(2, 8, size=cout, dtype=np.int8)]
    z = rng.integers(-31, 32, size=(channels, *Z_HW), dtype=np.int16)
    return _core.HyperScaleDecoder(*arrays), z


@pytest.mark.parametrize("component,channels", [("luma", 160), ("chroma", 96)])
@pytest.mark.parametrize("kernel,threads", [("auto", 1), ("auto", 0), ("scalar", 1)])
def test_hyper_scale_decoder(benchmark, component, channels, kernel, threads):
    hsd, z = make_hsd(channels)
    reference = hsd.forward(z, *LATENT_HW, kernel="scalar")
    np.testing.assert_array_equal(hsd.forward(z, *LATENT_HW, threads=threads, kernel=kernel), reference)
    benchmark.group = f"hyper-scale-{component}"
    benchmark.extra_info.update(suite=SUITE, component=component, kernel=kernel,
                                threads=threads or _core.hardware_threads())
    rounds = 3 if kernel == "scalar" else 20
    benchmark.pedantic(hsd.forward, args=(z, *LATENT_HW), kwargs={"threads": threads, "kernel": kernel},
                       rounds=rounds, warmup_rounds=1)


def summarize(rows: list[dict]) -> dict:
    table, median = [], {}
    for r in rows:
        e = r["extra_info"]
        key = (e["component"], e["kernel"], e["threads"])
        median[key] = r["median_s"]
        table.append({"component": e["component"], "kernel": e["kernel"], "threads": e["threads"],
                      "median_ms": round(1e3 * r["median_s"], 3), "min_ms": round(1e3 * r["min_s"], 3)})
    ratios = {}
    for comp in ("luma", "chroma"):
        fast, ref = median.get((comp, "auto", 1)), median.get((comp, "scalar", 1))
        if fast and ref:
            ratios[f"{comp}: scalar / vectorised (1 thread)"] = round(ref / fast, 1)
    return {"workload": f"Kodak-size z {Z_HW} -> latent {LATENT_HW}", "benchmarks": table, "speedups": ratios}


register_suite(SUITE, summarize)
