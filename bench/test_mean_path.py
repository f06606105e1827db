"""The latent domain of a Kodak-size picture (768 x 512) in its one C++ call, and the share of the fixed-point
mean path in it (hyper-mean decoder + luma context loop + chroma mean -> y_hat), per shipped model.

    python -m pytest bench/test_mean_path.py --benchmark-only

(The float ONNX mean path this bench used to compare against is no longer in the runtime: its fixed-point
replacement measured BD-rate 0.00 % against it on Kodak, training/results/rd_eval.md.)  Threads: 1 and all cores.
"""
from __future__ import annotations

import pytest

from bench.results_writer import register_suite
from bench.test_decode_stages import kodak_size_picture

SUITE = "mean_path"
MODELS = ("vr_bop", "vm33")


@pytest.fixture(scope="module")
def picture():
    name, rgb = kodak_size_picture()
    return name, rgb


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("model", MODELS)
def test_latent_domain(benchmark, picture, model, threads):
    import jpegai_fast
    from jpegai_fast.model import available_models

    if model not in available_models():
        pytest.skip(f"{model} not shipped")
    name, rgb = picture
    data = jpegai_fast.Encoder(model=model, threads=1).encode(rgb, rate_point=2)
    dec = jpegai_fast.Decoder(model, threads=threads or None)
    lm = dec.model.latent_model
    seconds: list[dict] = []

    def run():
        out = lm.decode(data, dec.max_pixels, dec.threads)
        seconds.append(out["seconds"])
        return out

    run()
    benchmark.group = "latent-domain-kodak"
    out = benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    assert out["y_hat"]["luma"].ndim == 3
    med = {k: sorted(s[k] for s in seconds)[len(seconds) // 2] for k in seconds[0]}
    benchmark.extra_info.update(suite=SUITE, model=model, threads=dec.threads, picture=name,
                                size=f"{rgb.shape[1]}x{rgb.shape[0]}", stage_median_s=med)


def summarize(rows: list[dict]) -> dict:
    table = []
    for r in rows:
        e = r["extra_info"]
        st = e["stage_median_s"]
        mean_path = st["hyper_decoder"] + st["context"]
        table.append({"model": e["model"], "threads": e["threads"], "median_ms": round(1e3 * r["median_s"], 2),
                      "min_ms": round(1e3 * r["min_s"], 2), "mean_path_ms": round(1e3 * mean_path, 2),
                      "stages_ms": {k: round(1e3 * v, 2) for k, v in st.items()}})
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}), quality 2: LatentModel.decode (container -> y_hat), "
                        "median of 15; mean path = hyper decoder + context stages", "rows": table}


register_suite(SUITE, summarize)
