"""The colour stage (Y'CbCr 4:2:0 -> RGB) at Kodak size: the C++ stage against its numpy definition, side by
side in one run (bytes identical: tests/test_colour.py).

    python -m pytest bench/test_colour.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.results_writer import register_suite

SUITE = "colour"


@pytest.fixture(scope="module")
def planes():
    rng = np.random.default_rng(0)
    return (rng.random((512, 768)) * 255).astype(np.float32), (rng.random((2, 256, 384)) * 255).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("kind", ["numpy", "C++"])
def test_colour(benchmark, planes, kind, threads):
    from jpegai_fast import _core, colour

    y, uv = planes
    if kind == "numpy":
        if threads != 1:
            pytest.skip("numpy runs on one thread")
        fn = lambda: colour.yuv420_to_rgb(y, uv)  # noqa: E731
    else:
        fn = lambda: _core.yuv420_to_rgb(y, uv, threads)  # noqa: E731
    benchmark.group = "colour-kodak"
    out = benchmark.pedantic(fn, rounds=30, warmup_rounds=2)
    assert out.shape == (512, 768, 3)
    benchmark.extra_info.update(suite=SUITE, kind=kind, threads=threads or _core.hardware_threads())


def summarize(rows: list[dict]) -> dict:
    by = {(r["extra_info"]["kind"], r["extra_info"]["threads"]): r["median_s"] for r in rows}
    table = [{"kind": k, "threads": t, "median_ms": round(1e3 * v, 3)} for (k, t), v in sorted(by.items())]
    ratios = {f"numpy / C++, {t} thread(s)": round(by[("numpy", 1)] / v, 2)
              for (k, t), v in by.items() if k == "C++" and ("numpy", 1) in by}
    return {"workload": "768x512 Y + 2x384x256 UV float32 -> uint8 RGB, median of 30", "ratios": ratios,
            "rows": table}


register_suite(SUITE, summarize)
