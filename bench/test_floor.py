"""Compute floor vs measured decode stages (issue 12, build item 5): bench/floor.py's table as a benchmark record.

Peaks (one thread, this machine, now): ONNX Runtime fp32 (large MatMul / 3x3 Conv), ONNX Runtime int8
(MatMulInteger), jpegai_fast's int16 madd GEMM on a large layer.  Stage MACs from the model card; stage times
from ``Decoder.last_timing`` on a Kodak-size picture in the same run.

    python -m pytest bench/test_floor.py --benchmark-only
"""
from __future__ import annotations

import pytest

from bench import floor
from bench.results_writer import register_suite

SUITE = "floor"
COMMAND = "python -m pytest bench/test_floor.py --benchmark-only"
KINDS = ("fp32", "int8", "int16")
_PEAKS: dict = {}


@pytest.mark.parametrize("kind", KINDS)
def test_peak(benchmark, kind):
    fn = {"fp32": floor.peak_fp32, "int8": floor.peak_int8, "int16": floor.peak_int16}[kind]
    benchmark.group = "floor-peaks"
    result = benchmark.pedantic(fn, kwargs={"threads": 1}, rounds=1, iterations=1)
    assert result["gmacs"] > 0
    _PEAKS[kind] = result
    benchmark.extra_info.update(suite=SUITE, kind=kind, gmacs=round(result["gmacs"], 2), kernel=result["kernel"])


@pytest.mark.parametrize("model", sorted(q.parent.name for q in floor.MODELS.glob("*/model.bin")))
def test_floor_table(benchmark, model):
    if set(_PEAKS) != set(KINDS):
        pytest.skip("needs the peaks of this run (run the whole file)")
    benchmark.group = "floor-table"
    result = benchmark.pedantic(floor.floor_rows, kwargs={"model": model, "rounds": 9, "peaks": _PEAKS},
                                rounds=1, iterations=1)
    benchmark.extra_info.update(suite=SUITE, model=model, table=result)


def summarize(rows: list[dict]) -> dict:
    peaks = {r["extra_info"]["kind"]: {"GMAC/s": r["extra_info"]["gmacs"], "kernel": r["extra_info"]["kernel"]}
             for r in rows if "kind" in r["extra_info"]}
    tables = {r["extra_info"]["model"]: r["extra_info"]["table"] for r in rows if "model" in r["extra_info"]}
    out: dict = {"command": COMMAND, "peaks (one thread)": peaks}
    for model, t in tables.items():
        out[f"{model}: {t['picture']}"] = t["rows"]
    return out


register_suite(SUITE, summarize, libraries=("onnxruntime",))
