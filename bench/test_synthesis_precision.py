"""Synthesis time, fp32 vs int8 (``Model(precision=...)``), one ORT thread, Kodak size (768 x 512).

For every shipped model and operating point that has int8 graphs (synthesis_{op}_{luma,chroma}.int8.onnx,
made by training/quantize_synthesis.py): the latents of kodim01 (or scikit-image's "coffee" resized, when the
Kodak set is not there) at rate point 4, through ``jpegai_fast.synthesis.synthesise`` — the luma and chroma
graphs, what ``Decoder.decode`` times as its "synthesis" stage — with each precision.  The rounds of the two
precisions alternate (fp32, int8, fp32, ...) so a load change on a shared machine hits both alike.
Reported: min / median ms per precision, int8 / fp32 time ratios (median and min), and the card's measured
PSNR cost of the int8 graphs (Kodak, per rate point) next to them.

    python -m pytest bench/test_synthesis_precision.py --benchmark-only
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bench.results_writer import register_suite
from bench.test_decode_stages import kodak_size_picture

SUITE = "synthesis_precision"
ROUNDS = 15


def _cases():
    from jpegai_fast.model import MODELS_DIR, Model, available_models

    out = []
    for name in available_models():
        m = Model(str(MODELS_DIR / name), threads=1)
        out += [(name, op) for op in m.int8_operating_points]
    return out


@pytest.fixture(scope="module")
def latents():
    import jpegai_fast

    name, rgb = kodak_size_picture()
    out = {}
    for model in {m for m, _ in _cases()}:
        data = jpegai_fast.Encoder(model, threads=1).encode(rgb, rate_point=4)
        lat = jpegai_fast.Decoder(model, threads=1).decode_latents(data)
        out[model] = (lat["y_hat"]["luma"], lat["y_hat"]["chroma"], rgb.shape[:2], 8 * len(data) / rgb[..., 0].size)
    return name, out


@pytest.mark.parametrize("model,op", _cases() or [pytest.param(None, None, marks=pytest.mark.skip("no int8 graphs"))])
def test_synthesis_precision(benchmark, latents, model, op):
    from jpegai_fast import synthesis
    from jpegai_fast.model import MODELS_DIR, Model

    picture, lat = latents
    y_l, y_c, hw, bpp = lat[model]
    models = {p: Model(str(MODELS_DIR / model), threads=1, precision=p) for p in ("fp32", "int8")}
    for m in models.values():  # warm-up: session creation and the first run's allocations
        synthesis.synthesise(m, y_l, y_c, hw, op)
    times: dict[str, list[float]] = {p: [] for p in models}

    def run():
        for p, m in models.items():
            t0 = time.perf_counter()
            synthesis.synthesise(m, y_l, y_c, hw, op)
            times[p].append(time.perf_counter() - t0)

    benchmark.group = "synthesis-precision"
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    ms = {p: 1e3 * np.array(t[-ROUNDS:]) for p, t in times.items()}
    card = json.loads((MODELS_DIR / model / "model_card.json").read_text()).get("synthesis_int8", {}).get(op, {})
    kodak = card.get("kodak") or {}
    benchmark.extra_info.update(
        suite=SUITE, model=model, op=op, threads=1, picture=picture, size=f"{hw[1]}x{hw[0]}", bpp=round(bpp, 4),
        fp32_ms_min=round(float(ms["fp32"].min()), 2), fp32_ms_median=round(float(np.median(ms["fp32"])), 2),
        int8_ms_min=round(float(ms["int8"].min()), 2), int8_ms_median=round(float(np.median(ms["int8"])), 2),
        int8_over_fp32_median=round(float(np.median(ms["int8"]) / np.median(ms["fp32"])), 3),
        int8_over_fp32_min=round(float(ms["int8"].min() / ms["fp32"].min()), 3),
        card_bd_rate_percent=kodak.get("bd_rate_psnr_yuv_percent"),
        card_delta_db={p["rate"]: round(p["delta_db"], 3) for p in kodak.get("points", [])})


def summarize(rows: list[dict]) -> dict:
    table = []
    for r in sorted(rows, key=lambda r: (r["extra_info"]["model"], r["extra_info"]["op"])):
        e = r["extra_info"]
        table.append({k: e[k] for k in ("model", "op", "fp32_ms_min", "fp32_ms_median", "int8_ms_min",
                                        "int8_ms_median", "int8_over_fp32_median", "int8_over_fp32_min",
                                        "card_bd_rate_percent")})
    e0 = rows[0]["extra_info"]
    return {"workload": f"{e0['picture']} ({e0['size']}) latents at rate point 4, luma + chroma synthesis graphs "
                        f"(jpegai_fast.synthesis.synthesise), 1 ORT thread, {ROUNDS} alternating rounds per precision",
            "synthesis": table,
            "psnr_cost_per_rate_point_db": {f"{r['extra_info']['model']}/{r['extra_info']['op']}":
                                            r["extra_info"]["card_delta_db"] for r in rows}}


register_suite(SUITE, summarize, libraries=("onnxruntime",))
