"""The mean path of a Kodak-size picture (768 x 512): fixed-point C++ (the shipped model) against the float
ONNX Runtime graphs of the same checkpoint, side by side in one run.

Each round is psi for both components (hyper-mean decoder) + the luma 4-stage context loop + the chroma
mean, i.e. z_hat and residuals -> y_hat, decoder side (``reconstruction.hyper_decoder`` + ``reconstruct``).
The float side needs a float-mean export of the same checkpoint:

    python -m training.export --float-mean --out /tmp/vr_bop_float
    JPEGAI_FLOAT_MODEL=/tmp/vr_bop_float python -m pytest bench/test_mean_path.py --benchmark-only

Without $JPEGAI_FLOAT_MODEL only the fixed-point rows run.  Threads: 1 and all cores.
"""
from __future__ import annotations

import os

import pytest

from bench.results_writer import register_suite
from bench.test_decode_stages import kodak_size_picture

SUITE = "mean_path"


def _models():
    out = {"fixed (C++)": "default"}
    if os.environ.get("JPEGAI_FLOAT_MODEL"):
        out["float (ORT)"] = os.environ["JPEGAI_FLOAT_MODEL"]
    return out


@pytest.fixture(scope="module")
def latents():
    import jpegai_fast

    name, rgb = kodak_size_picture()
    data = jpegai_fast.encode(rgb, quality=4, threads=1)
    return name, rgb, data


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("kind", sorted(_models()))
def test_mean_path(benchmark, latents, kind, threads):
    from jpegai_fast import Decoder
    from jpegai_fast import reconstruction as rec

    name, rgb, data = latents
    dec = Decoder(_models()[kind], threads=threads or None)
    m = dec.model
    lat = m.latent_model.decode(data, dec.max_pixels, dec.threads)
    h = lat["header"]
    hw = lat["latent_hw"]

    def run():
        out = {}
        for k, comp in enumerate(("luma", "chroma")):
            psi = rec.hyper_decoder(m, comp, lat[comp]["z"], hw)
            disp = (h.gain_log_luma, h.gain_log_chroma)[k]
            out[comp], _ = rec.reconstruct(m, comp, psi, lat[comp]["index"], h.rate_point, disp,
                                           residual=lat[comp]["residual"])
        return out

    run()  # warm-up: session creation is not decode time
    benchmark.group = "mean-path-kodak"
    y_hat = benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    assert y_hat["luma"].shape[1:] == tuple(hw)
    benchmark.extra_info.update(suite=SUITE, kind=kind, threads=dec.threads, picture=name,
                                size=f"{rgb.shape[1]}x{rgb.shape[0]}", model=str(m.path),
                                fixed_point=m.mean_path is not None)


def summarize(rows: list[dict]) -> dict:
    table = []
    by = {}
    for r in rows:
        e = r["extra_info"]
        by[(e["kind"], e["threads"])] = r["median_s"]
        table.append({"kind": e["kind"], "threads": e["threads"], "median_ms": round(1e3 * r["median_s"], 2),
                      "min_ms": round(1e3 * r["min_s"], 2), "model": e["model"]})
    ratios = {f"float / fixed, {t} thread(s)": round(by[("float (ORT)", t)] / by[("fixed (C++)", t)], 3)
              for (k, t) in by if k == "fixed (C++)" and ("float (ORT)", t) in by}
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}), quality 4: psi (both components) + luma context loop + "
                        "chroma mean -> y_hat, decoder side, median of 15",
            "ratios (>1: fixed-point faster)": ratios, "rows": table}


register_suite(SUITE, summarize)
