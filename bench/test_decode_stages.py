"""Per-stage decode time of a Kodak-size picture (768 x 512), BOP and SOP, 1 thread.

Picture: kodim01 when the Kodak set is there (``--kodak`` / $JPEGAI_BENCH_KODAK, default
../shared/datasets/kodak), else scikit-image's "coffee" photo resized to 768 x 512 (bicubic), so the
suite runs anywhere.  Encoded once at rate point 4 (λ 0.0113; rate point 3 of the older 6-point model) (untiled: the
picture fits one synthesis tile).
Each round is one ``Decoder.decode`` (RGB out); the stage times are ``Decoder.last_timing`` (the C++
latent call's own steady_clock timers for parse / z / hyper-scale / residual, perf_counter around
the rest).  Reported: median ms and % of the median total per stage, and whether every latent-domain
stage (everything before synthesis) is below 15 % of the total — an acceptance point of the decoder.

    python -m pytest bench/test_decode_stages.py --benchmark-only
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from bench.results_writer import register_suite

SUITE = "decode_stages"
KODAK_DEFAULT = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "kodak"
LATENT_DOMAIN = ("parse", "z", "hyper-scale", "residual", "hyper decoder", "context")
LIMIT_PERCENT = 15.0
ROUNDS = 15


def kodak_size_picture() -> tuple[str, np.ndarray]:
    from PIL import Image

    path = pathlib.Path(os.environ.get("JPEGAI_BENCH_KODAK", KODAK_DEFAULT)) / "kodim01.png"
    if path.is_file():
        with Image.open(path) as im:
            return "kodim01", np.ascontiguousarray(np.asarray(im.convert("RGB")))
    skdata = pytest.importorskip("skimage.data")
    img = Image.fromarray(skdata.coffee()).resize((768, 512), Image.BICUBIC)
    return "skimage coffee resized to 768x512", np.ascontiguousarray(np.asarray(img))


@pytest.fixture(scope="module")
def stream():
    import jpegai_fast

    name, rgb = kodak_size_picture()
    return name, rgb, jpegai_fast.encode(rgb, rate_point=4, threads=1)


@pytest.mark.parametrize("op", ["bop", "sop"])
def test_decode_stages(benchmark, stream, op):
    from jpegai_fast import Decoder

    name, rgb, data = stream
    dec = Decoder(operating_point=op, threads=1)
    out = dec.decode(data)  # warm-up: ORT session creation is not decode time
    assert out.shape == rgb.shape
    timings = []

    def run():
        dec.decode(data)
        timings.append(dict(dec.last_timing))

    benchmark.group = "decode-stages-kodak"
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    timings = timings[-ROUNDS:]
    median = {k: float(np.median([t[k] for t in timings])) for k in timings[0]}
    total = median["total"]
    percent = {k: 100 * v / total for k, v in median.items() if k != "total"}
    benchmark.extra_info.update(
        suite=SUITE, op=op, threads=1, picture=name, size=f"{rgb.shape[1]}x{rgb.shape[0]}",
        bpp=8 * len(data) / (rgb.shape[0] * rgb.shape[1]),
        stage_median_ms={k: round(1e3 * v, 3) for k, v in median.items()},
        stage_percent={k: round(v, 1) for k, v in percent.items()},
        latent_stages_below_15_percent=all(percent[k] < LIMIT_PERCENT for k in LATENT_DOMAIN),
        over_15_percent=[k for k in LATENT_DOMAIN if percent[k] >= LIMIT_PERCENT])


def summarize(rows: list[dict]) -> dict:
    table, flags = [], {}
    for r in sorted(rows, key=lambda r: r["extra_info"]["op"]):
        e = r["extra_info"]
        for stage, ms in e["stage_median_ms"].items():
            table.append({"op": e["op"], "stage": stage, "median_ms": ms,
                          "percent_of_total": e["stage_percent"].get(stage, 100.0),
                          "latent_domain": stage in LATENT_DOMAIN})
        flags[f"{e['op']}: every latent-domain stage < 15 % of the total"] = e["latent_stages_below_15_percent"]
        if e["over_15_percent"]:
            flags[f"{e['op']}: stages at or above 15 %"] = ", ".join(e["over_15_percent"])
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}), rate point 4 ({e0['bpp']:.3f} bpp), RGB out, 1 thread, "
                        f"median of {ROUNDS} decodes per operating point",
            "acceptance": flags, "stages": table}


register_suite(SUITE, summarize)
