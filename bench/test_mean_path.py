"""The fixed-point mean path (hyper-mean decoder + luma context model + chroma mean -> y_hat) inside the latent
domain's one C++ call, per shipped model: the register-tiled int16 GEMM kernel against the previous kernel, side
by side in one run.

    python -m pytest bench/test_mean_path.py --benchmark-only

Workload: a Kodak-size picture (768 x 512) encoded at rate point 2, decoded by LatentModel.decode (container ->
y_hat); the core's steady_clock times of its stages give the two of the mean path, "hyper_decoder" (z -> psi,
both components) and "context" (the luma context loop, the chroma mean, y_hat).

Rows (pytest-benchmark group latent-domain-kodak-<model>-<threads>t):
  new     the GEMM kernel (csrc/mean_path.cpp on csrc/int16_gemm.hpp: the CPU's best tile set, AVX-512BW(+VNNI),
          AVX2 or the baseline twin; JPEGAI_FAST_SIMD caps it)
  legacy  the previous kernel (one int16 dot product per pixel and output, 4 pixels per weight row) and
          reconstruct loops, still in csrc/mean_path.cpp for this comparison only (JPEGAI_FAST_MEAN_LEGACY=1,
          read by the core on every call)
at 1 and 2 threads.  So that a busy machine slows both alike, each test alternates legacy and new decodes
(ROUNDS pairs, the stage medians of both kernels recorded), then times its own kernel with pytest-benchmark;
the speed-ups are those of the paired medians.  Every configuration's y_hat is checked against the legacy
kernel's first.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from bench.results_writer import cpu_model, register_suite, simd_level
from bench.test_decode_stages import kodak_size_picture

SUITE = "mean_path"
MODELS = ("vr_bop", "vm33")
COMMAND = "python -m pytest bench/test_mean_path.py --benchmark-only"
TARGET = 3.0  # issue 12: hyper decoder + context >= 3x the previous kernel at 1 thread
ROUNDS = 15
LEGACY_ENV = "JPEGAI_FAST_MEAN_LEGACY"
CONFIGS = [(m, t, k) for m in MODELS for t in (1, 2) for k in ("legacy", "new")]


@pytest.fixture(scope="module")
def picture():
    name, rgb = kodak_size_picture()
    return name, rgb


@pytest.fixture(scope="module")
def streams():
    return {}  # model -> the picture's stream, encoded once


def _median(values):
    return float(np.median(values))


@pytest.mark.parametrize("model,threads,kernel", CONFIGS, ids=[f"{m}-{t}t-{k}" for m, t, k in CONFIGS])
def test_latent_domain(benchmark, monkeypatch, picture, streams, model, threads, kernel):
    import jpegai_fast
    from jpegai_fast.model import available_models

    if model not in available_models():
        pytest.skip(f"{model} not shipped")
    name, rgb = picture
    if model not in streams:
        streams[model] = jpegai_fast.Encoder(model=model, threads=1).encode(rgb, rate_point=2)
    data = streams[model]
    dec = jpegai_fast.Decoder(model, threads=threads)
    lm = dec.model.latent_model

    def decode(legacy: bool) -> dict:
        if legacy:
            monkeypatch.setenv(LEGACY_ENV, "1")
        else:
            monkeypatch.delenv(LEGACY_ENV, raising=False)
        return lm.decode(data, dec.max_pixels, dec.threads)

    reference = decode(True)["y_hat"]
    got = decode(kernel == "legacy")["y_hat"]
    for comp in reference:
        np.testing.assert_array_equal(got[comp], reference[comp])
    # paired: legacy and new alternate, so that load on the machine hits both
    paired: dict[str, list[dict]] = {"legacy": [], "new": []}
    for _ in range(ROUNDS):
        for k in ("legacy", "new"):
            paired[k].append(decode(k == "legacy")["seconds"])
    paired_ms = {k: {s: round(1e3 * _median([x[s] for x in v]), 3) for s in v[0]} for k, v in paired.items()}

    seconds: list[dict] = []

    def run():
        out = decode(kernel == "legacy")
        seconds.append(out["seconds"])
        return out

    benchmark.group = f"latent-domain-kodak-{model}-{threads}t"
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    med = {k: _median([s[k] for s in seconds]) for k in seconds[0]}
    benchmark.extra_info.update(suite=SUITE, model=model, threads=dec.threads, kernel=kernel, picture=name,
                                size=f"{rgb.shape[1]}x{rgb.shape[0]}", stage_median_s=med, paired_ms=paired_ms,
                                loadavg_1min=round(os.getloadavg()[0], 2))
    monkeypatch.delenv(LEGACY_ENV, raising=False)


def summarize(rows: list[dict]) -> dict:
    table, paired = [], {}
    for r in rows:
        e = r["extra_info"]
        st = e["stage_median_s"]
        table.append({"model": e["model"], "threads": e["threads"], "kernel": e["kernel"],
                      "median_ms": round(1e3 * r["median_s"], 2), "min_ms": round(1e3 * r["min_s"], 2),
                      "hyper_decoder_ms": round(1e3 * st["hyper_decoder"], 2),
                      "context_ms": round(1e3 * st["context"], 2),
                      "mean_path_ms": round(1e3 * (st["hyper_decoder"] + st["context"]), 2),
                      "stages_ms": {k: round(1e3 * v, 2) for k, v in st.items()},
                      "loadavg_1min": e.get("loadavg_1min")})
        # the paired medians of the two kernels, from both tests of a (model, threads): their mean
        key = (e["model"], e["threads"])
        for k, st_ms in e["paired_ms"].items():
            paired.setdefault(key, {}).setdefault(k, []).append(st_ms)
    speedups, met = [], []
    for (model, threads), kinds in paired.items():
        if set(kinds) != {"legacy", "new"}:
            continue
        avg = {k: {s: float(np.mean([m[s] for m in v])) for s in v[0]} for k, v in kinds.items()}
        old, new = avg["legacy"], avg["new"]
        row = {"model": model, "threads": threads}
        for label, stages in (("hyper_decoder", ("hyper_decoder",)), ("context", ("context",)),
                              ("hyper_decoder + context", ("hyper_decoder", "context"))):
            o, n = sum(old[s] for s in stages), sum(new[s] for s in stages)
            row[f"{label}: legacy_ms"] = round(o, 2)
            row[f"{label}: new_ms"] = round(n, 2)
            row[f"{label}: legacy / new"] = round(o / n, 2)
        speedups.append(row)
        if threads == 1:
            met.append(row["hyper_decoder + context: legacy / new"] >= TARGET)
    e0 = rows[0]["extra_info"]
    return {
        "command": COMMAND,
        "cpu": f"{cpu_model()}, SIMD {simd_level()}",
        "workload": f"{e0['picture']} ({e0['size']}), rate point 2: LatentModel.decode (container -> y_hat); "
                    f"stage times from the core; speed-ups from {ROUNDS} alternating legacy / new decodes per test "
                    "(median per stage, averaged over the two tests of a model and thread count)",
        "target": f"hyper decoder + context: legacy / new >= {TARGET} at 1 thread for every model: "
                  + ("met" if met and all(met) else "not met"),
        "speedups (paired medians)": speedups,
        "benchmarks": table,
    }


register_suite(SUITE, summarize)
