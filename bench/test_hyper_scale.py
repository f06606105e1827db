"""Integer hyper-scale decoder (C++): the im2col + register-tiled GEMM kernel against the previous kernel (one
int8 dot product per position, output and tap) and the scalar reference, side by side in one run.

Workload: the trained HSDs of every shipped model (src/jpegai_fast/models/*/model.bin, luma and chroma) at
Kodak size (768 x 512 -> z 8 x 12 -> latent 32 x 48).  z is random in [-31, 31] (the kernels' speed does not
depend on the values).  Every configuration is checked against the scalar reference before timing.

    python -m pytest bench/test_hyper_scale.py --benchmark-only

Rows (pytest-benchmark group hyper-scale-<model>-<component>):
  new     the fast kernel (the CPU's best tile set: AVX-512BW, AVX2 or the baseline twin; JPEGAI_FAST_SIMD caps it)
  legacy  the previous fast kernel, still in csrc/hyper_scale_decoder.cpp for this comparison only
          (JPEGAI_FAST_HSD_LEGACY=1, read by the core on every call)
  scalar  forward_reference, the normative scalar definition (the exactness oracle, not a speed target)
at 1 thread (and new / legacy on all threads).  Reported: median and min per row, GMAC/s, and the speed-up
legacy / new (median, 1 thread) per model and component and for a luma + chroma decode.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from bench.results_writer import cpu_model, register_suite, simd_level
from jpegai_fast import _core

SUITE = "hyper_scale"
Z_HW, LATENT_HW = (8, 12), (32, 48)  # Kodak landscape
COMMAND = "python -m pytest bench/test_hyper_scale.py --benchmark-only"
TARGET = 5.0  # issue 12: >= 5x the previous kernel on the same machine
ROUNDS = {"new": 60, "legacy": 20, "scalar": 3}


def shipped_models():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "src" / "jpegai_fast" / "models"
    return sorted(p.parent for p in root.glob("*/model.bin"))


MODELS = shipped_models()


def load_hsd(model, component: str):
    from training import reference_decoder as rd

    sections = rd.read_blob((model / "model.bin").read_bytes())
    arrays = [sections[f"hsd.{component}.conv{i}.{n}"] for i in (1, 2, 3) for n in ("weight", "bias", "shift")]
    hsd = _core.HyperScaleDecoder(*arrays)
    z = np.random.default_rng(0).integers(-31, 32, size=(hsd.channels, *Z_HW), dtype=np.int16)
    return hsd, z


def macs(channels: int) -> int:
    """int8 multiply-accumulates of one forward at Kodak size (conv1 1x1 + conv2 3x3 + conv3 1x1 to 16C)."""
    return Z_HW[0] * Z_HW[1] * channels * channels * (1 + 9 + 16)


CONFIGS = [("new", 1), ("legacy", 1), ("scalar", 1), ("new", 0), ("legacy", 0)]


@pytest.mark.skipif(not MODELS, reason="no exported model under src/jpegai_fast/models/")
@pytest.mark.parametrize("kernel,threads", CONFIGS, ids=[f"{k}-{t or 'all'}t" for k, t in CONFIGS])
@pytest.mark.parametrize("component", ["luma", "chroma"])
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_hyper_scale_decoder(benchmark, monkeypatch, model, component, kernel, threads):
    hsd, z = load_hsd(model, component)
    monkeypatch.delenv("JPEGAI_FAST_HSD_LEGACY", raising=False)
    reference = hsd.forward(z, *LATENT_HW, kernel="scalar")
    if kernel == "legacy":
        monkeypatch.setenv("JPEGAI_FAST_HSD_LEGACY", "1")
    core_kernel = "scalar" if kernel == "scalar" else "auto"
    np.testing.assert_array_equal(hsd.forward(z, *LATENT_HW, threads=threads, kernel=core_kernel), reference)
    benchmark.group = f"hyper-scale-{model.name}-{component}"
    benchmark.extra_info.update(suite=SUITE, model=model.name, component=component, channels=hsd.channels,
                                kernel=kernel, threads=threads or _core.hardware_threads(),
                                loadavg_1min=round(os.getloadavg()[0], 2))
    benchmark.pedantic(hsd.forward, args=(z, *LATENT_HW), kwargs={"threads": threads, "kernel": core_kernel},
                       rounds=ROUNDS[kernel], warmup_rounds=2)


def cpu_name() -> str:
    """As tools/compare_decode_speed.py:cpu_name: model name with family / model (the name alone is "AMD EPYC"
    on these machines) and the SIMD level the core uses."""
    return f"{cpu_model()}, SIMD {simd_level()}"


def summarize(rows: list[dict]) -> dict:
    table, median = [], {}
    for r in rows:
        e = r["extra_info"]
        key = (e["model"], e["component"], e["kernel"], e["threads"])
        median[key] = r["median_s"]
        table.append({"model": e["model"], "component": e["component"], "channels": e["channels"],
                      "kernel": e["kernel"], "threads": e["threads"], "rounds": r["rounds"],
                      "median_ms": round(1e3 * r["median_s"], 3), "min_ms": round(1e3 * r["min_s"], 3),
                      "GMAC/s (median)": round(macs(e["channels"]) / r["median_s"] / 1e9, 1),
                      "loadavg_1min": e.get("loadavg_1min")})
    speedups, met = [], []
    threads_all = {k[3] for k in median if k[3] != 1}
    for m in dict.fromkeys(k[0] for k in median):
        for t in [1, *sorted(threads_all)]:
            per = {}
            for comp in ("luma", "chroma"):
                new, old = median.get((m, comp, "new", t)), median.get((m, comp, "legacy", t))
                if new and old:
                    per[comp] = (old, new)
            for label, (old, new) in [*per.items(),
                                      *([("luma + chroma", tuple(map(sum, zip(*per.values()))))] if len(per) == 2
                                        else [])]:
                ratio = old / new
                speedups.append({"model": m, "component": label, "threads": t, "legacy_ms": round(1e3 * old, 3),
                                 "new_ms": round(1e3 * new, 3), "legacy / new": round(ratio, 2)})
                if t == 1:
                    met.append(ratio >= TARGET)
    return {
        "command": COMMAND,
        "cpu": cpu_name(),
        "workload": f"shipped models' HSDs, Kodak size: z {Z_HW} -> latent {LATENT_HW}; medians of "
                    f"{ROUNDS['new']} (new) / {ROUNDS['legacy']} (legacy) / {ROUNDS['scalar']} (scalar) rounds",
        "target": f"legacy / new >= {TARGET} at 1 thread for every model and component: "
                  + ("met" if met and all(met) else "not met"),
        "speedups (median)": speedups,
        "benchmarks": table,
    }


register_suite(SUITE, summarize)
