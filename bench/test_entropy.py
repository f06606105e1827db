"""rANS residual decoder throughput vs CompressAI and constriction, on one 1 M-symbol latent-like workload.

Run:  python -m pytest bench/test_entropy.py --benchmark-only
What is timed (decode): compressed bytes already in memory -> decoded symbols as an array, through each
library's public Python API (CompressAI's includes its Python-side list conversions: that is what its
users call).  The workload and the coder set-up are in bench/entropy_workload.py.
Results: bench/results/<UTC date>-<commit>-entropy.{json,md} (written by bench/conftest.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from bench import entropy_workload as W
from bench.results_writer import register_suite
from jpegai_fast import _core
from jpegai_fast import entropy as E

SUITE = "entropy"
DECODE_GROUP = "entropy-decode-1M"
ENCODE_GROUP = "entropy-encode-1M"
MULTI_SUBSTREAMS = 8
BASELINE_ROUNDS = 5  # pedantic rounds for the slow baselines (~0.1-0.2 s each)
TARGET_MSYM_S_1T = 100.0
TARGET_X_COMPRESSAI = 18.0
TARGET_SIZE_OVER_IDEAL = 1.01
ALL_THREADS = _core.hardware_threads()

# Filled by the fixtures, read by summarize() at the end of the session.
_REPORT: dict = {"workload": {}, "sizes": {}, "baselines": {}}


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def wl() -> W.Workload:
    w = W.latent_like_workload()
    stats = w.stats()
    ideal_bits = E.information_bits(w.symbols, w.scale_index)
    exact_bits = W.exact_gaussian_bits(w.symbols, w.sigma_q)
    stats["ideal_bits_per_symbol_our_tables"] = ideal_bits / w.n
    stats["ideal_bits_per_symbol_exact_gaussian"] = None if exact_bits is None else exact_bits / w.n
    _REPORT["workload"] = stats
    _REPORT["ideal_bytes_our_tables"] = ideal_bits / 8
    _REPORT["ideal_bytes_exact_gaussian"] = None if exact_bits is None else exact_bits / 8
    return w


def _record_size(label: str, nbytes: int, n: int) -> None:
    ideal = _REPORT["ideal_bytes_our_tables"]
    exact = _REPORT["ideal_bytes_exact_gaussian"]
    _REPORT["sizes"][label] = {
        "coder": label,
        "bytes": nbytes,
        "bits_per_symbol": 8 * nbytes / n,
        "vs_ideal_our_tables": nbytes / ideal,
        "vs_ideal_exact_gaussian": None if exact is None else nbytes / exact,
    }


@pytest.fixture(scope="module")
def ours(wl):
    streams = {}
    for ss in (1, MULTI_SUBSTREAMS):
        coder = W.OursCoder(wl, substreams=ss)
        data = coder.encode(threads=0)
        np.testing.assert_array_equal(coder.decode(data, threads=1), wl.symbols)
        np.testing.assert_array_equal(coder.decode(data, threads=0), wl.symbols)
        streams[ss] = (coder, data)
        _record_size(f"jpegai_fast (substreams={ss})", len(data), wl.n)
    return streams


@pytest.fixture(scope="module")
def one_torch_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # CompressAI's tensor ops: keep its rows single-threaded like its C++ coder
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def compressai(wl, one_torch_thread):
    try:
        coder = W.CompressAICoder(wl)
    except ImportError as exc:
        pytest.skip(f"compressai unavailable: {exc}")
    strings = coder.encode()
    np.testing.assert_array_equal(coder.to_int16(coder.decode(strings)), wl.symbols)
    _record_size("compressai GaussianConditional", coder.nbytes(strings), wl.n)
    _REPORT["baselines"]["compressai"] = {
        "api": "GaussianConditional(scale_table=SIGMA_LEVELS).update(); "
               "compress/decompress(indexes=scale_index, means=None)",
        "import": coder.import_mode,
        "torch_threads": 1,
    }
    return coder, strings


@pytest.fixture(scope="module")
def constriction(wl):
    try:
        coder = W.ConstrictionCoder(wl)
    except ImportError as exc:
        pytest.skip(f"constriction unavailable: {exc}")
    compressed = coder.encode()
    np.testing.assert_array_equal(coder.to_int16(coder.decode(compressed)), wl.symbols)
    _record_size("constriction AnsCoder + QuantizedGaussian", coder.nbytes(compressed), wl.n)
    _REPORT["baselines"]["constriction"] = {
        "api": "stack.AnsCoder, model.QuantizedGaussian(min, max), per-symbol means=0 / stds=sigma_k arrays",
        "support": list(coder.support),
    }
    return coder, compressed


def _info(benchmark, wl, label, coder, op, threads, substreams=None, **more):
    benchmark.extra_info.update(
        suite=SUITE, label=label, coder=coder, op=op, threads=threads, substreams=substreams, symbols=wl.n, **more
    )


def _throughput(benchmark, wl):
    stats = getattr(benchmark, "stats", None)
    if stats:  # None / empty with --benchmark-disable
        benchmark.extra_info["msym_s_median"] = wl.n / stats.stats.median / 1e6
        benchmark.extra_info["msym_s_best"] = wl.n / stats.stats.min / 1e6


# --------------------------------------------------------------------------------------------- decode


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_jpegai_fast_1thread(benchmark, wl, ours):
    coder, data = ours[1]
    _info(benchmark, wl, "jpegai_fast 1T", "jpegai_fast", "decode", 1, 1, kernel="auto")
    out = benchmark(coder.decode, data, 1)
    np.testing.assert_array_equal(out, wl.symbols)
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_jpegai_fast_1thread_8substreams(benchmark, wl, ours):
    coder, data = ours[MULTI_SUBSTREAMS]
    _info(benchmark, wl, f"jpegai_fast 1T ({MULTI_SUBSTREAMS} substreams)", "jpegai_fast", "decode", 1,
          MULTI_SUBSTREAMS, kernel="auto")
    out = benchmark(coder.decode, data, 1)
    np.testing.assert_array_equal(out, wl.symbols)
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_jpegai_fast_all_threads(benchmark, wl, ours):
    coder, data = ours[MULTI_SUBSTREAMS]
    _info(benchmark, wl, f"jpegai_fast all threads ({MULTI_SUBSTREAMS} substreams)", "jpegai_fast", "decode",
          ALL_THREADS, MULTI_SUBSTREAMS, kernel="auto")
    out = benchmark(coder.decode, data, 0)
    np.testing.assert_array_equal(out, wl.symbols)
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_jpegai_fast_1thread_scalar(benchmark, wl, ours):
    if not W.supports_kernel_argument():
        pytest.skip("this jpegai_fast has no decode_residual(kernel=...)")
    coder, data = ours[1]
    _info(benchmark, wl, "jpegai_fast 1T scalar kernel", "jpegai_fast", "decode", 1, 1, kernel="scalar")
    out = benchmark(coder.decode, data, 1, "scalar")
    np.testing.assert_array_equal(out, wl.symbols)
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_compressai(benchmark, wl, compressai):
    coder, strings = compressai
    _info(benchmark, wl, "CompressAI 1T", "compressai", "decode", 1)
    out = benchmark.pedantic(coder.decode, args=(strings,), rounds=BASELINE_ROUNDS, warmup_rounds=1)
    np.testing.assert_array_equal(coder.to_int16(out), wl.symbols)
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=DECODE_GROUP)
def test_decode_constriction(benchmark, wl, constriction):
    coder, compressed = constriction
    _info(benchmark, wl, "constriction 1T", "constriction", "decode", 1)
    out = benchmark.pedantic(coder.decode, args=(compressed,), rounds=BASELINE_ROUNDS, warmup_rounds=1)
    np.testing.assert_array_equal(coder.to_int16(out), wl.symbols)
    _throughput(benchmark, wl)


# --------------------------------------------------------------------------------------------- encode


@pytest.mark.benchmark(group=ENCODE_GROUP)
def test_encode_jpegai_fast_1thread(benchmark, wl, ours):
    coder, data = ours[1]
    _info(benchmark, wl, "jpegai_fast 1T", "jpegai_fast", "encode", 1, 1)
    assert benchmark(coder.encode, 1) == data
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=ENCODE_GROUP)
def test_encode_jpegai_fast_all_threads(benchmark, wl, ours):
    coder, data = ours[MULTI_SUBSTREAMS]
    _info(benchmark, wl, f"jpegai_fast all threads ({MULTI_SUBSTREAMS} substreams)", "jpegai_fast", "encode",
          ALL_THREADS, MULTI_SUBSTREAMS)
    assert benchmark(coder.encode, 0) == data
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=ENCODE_GROUP)
def test_encode_compressai(benchmark, wl, compressai):
    coder, strings = compressai
    _info(benchmark, wl, "CompressAI 1T", "compressai", "encode", 1)
    assert benchmark.pedantic(coder.encode, rounds=BASELINE_ROUNDS, warmup_rounds=1) == strings
    _throughput(benchmark, wl)


@pytest.mark.benchmark(group=ENCODE_GROUP)
def test_encode_constriction(benchmark, wl, constriction):
    coder, compressed = constriction
    _info(benchmark, wl, "constriction 1T", "constriction", "encode", 1)
    out = benchmark.pedantic(coder.encode, rounds=BASELINE_ROUNDS, warmup_rounds=1)
    np.testing.assert_array_equal(out, compressed)
    _throughput(benchmark, wl)


# --------------------------------------------------------------------------------------------- report


def summarize(rows: list[dict]) -> dict:
    table = []
    speed: dict[tuple[str, str], float] = {}  # median
    best: dict[tuple[str, str], float] = {}  # fastest round
    for r in rows:
        x = r["extra_info"]
        n = x["symbols"]
        table.append({
            "group": r["group"],
            "coder": x["label"],
            "threads": x["threads"],
            "substreams": x.get("substreams"),
            "min_ms": r["min_s"] * 1e3,
            "median_ms": r["median_s"] * 1e3,
            "stddev_ms": r["stddev_s"] * 1e3,
            "Msym/s (median)": n / r["median_s"] / 1e6,
            "Msym/s (best)": n / r["min_s"] / 1e6,
            "rounds": r["rounds"],
        })
        speed[(x["op"], x["label"])] = n / r["median_s"] / 1e6
        best[(x["op"], x["label"])] = n / r["min_s"] / 1e6

    def ratio(op, a, b, s=speed):
        return s[(op, a)] / s[(op, b)] if (op, a) in s and (op, b) in s else None

    ours_1t = "jpegai_fast 1T"
    ours_1t_ss = f"jpegai_fast 1T ({MULTI_SUBSTREAMS} substreams)"
    ours_all = f"jpegai_fast all threads ({MULTI_SUBSTREAMS} substreams)"
    pairs = [
        ("decode", ours_1t, "CompressAI 1T"),
        ("decode", ours_1t, "constriction 1T"),
        ("decode", ours_1t_ss, "CompressAI 1T"),
        ("decode", ours_all, "CompressAI 1T"),
        ("decode", ours_all, "constriction 1T"),
        ("decode", ours_1t, "jpegai_fast 1T scalar kernel"),
        ("encode", ours_1t, "CompressAI 1T"),
        ("encode", ours_1t, "constriction 1T"),
        ("encode", ours_all, "CompressAI 1T"),
    ]
    ratio_rows = [
        {"op": op, "ours": a, "vs": b, "x (median)": ratio(op, a, b), "x (best round)": ratio(op, a, b, best)}
        for op, a, b in pairs
        if ratio(op, a, b) is not None
    ]
    ours_size = _REPORT["sizes"].get("jpegai_fast (substreams=1)", {}).get("vs_ideal_our_tables")
    ours_speed = speed.get(("decode", ours_1t))
    x_cai = ratio("decode", ours_1t, "CompressAI 1T")
    targets = [
        _target(f"decode >= {TARGET_MSYM_S_1T:g} Msym/s on 1 thread (median)", ours_speed, ">=", TARGET_MSYM_S_1T),
        _target(f"decode >= {TARGET_X_COMPRESSAI:g}x CompressAI (1 thread vs 1 thread, median)", x_cai, ">=",
                TARGET_X_COMPRESSAI),
        _target(f"decode >= {TARGET_X_COMPRESSAI:g}x CompressAI (1 thread vs 1 thread, best round)",
                ratio("decode", ours_1t, "CompressAI 1T", best), ">=", TARGET_X_COMPRESSAI),
        _target("size <= 1.01 x ideal under our tables (1 substream)", ours_size, "<=", TARGET_SIZE_OVER_IDEAL),
    ]
    return {
        "targets": targets,
        "throughput": table,
        "ratios": ratio_rows,
        "compressed size vs ideal": list(_REPORT["sizes"].values()),
        "workload": _REPORT["workload"],
        "ideal_bytes": {
            "our_tables (information_bits / 8)": _REPORT.get("ideal_bytes_our_tables"),
            "exact discretised Gaussian at the same sigma_k": _REPORT.get("ideal_bytes_exact_gaussian"),
        },
        "baselines": _REPORT["baselines"],
        "threads": {"1T rows": 1, "all-threads rows (threads=0 -> hardware_threads())": ALL_THREADS},
        "timing": "decode: bytes in memory -> decoded array (int16 for ours; CompressAI float32 tensor; "
                  "constriction int32 array), public Python APIs; Msym/s = symbols / time (median or fastest round)",
    }


def _target(name, value, op, goal):
    met = None if value is None else (value >= goal if op == ">=" else value <= goal)
    return {"target": name, "measured": value, "goal": f"{op} {goal:g}", "met": met}


register_suite(SUITE, summarize, libraries=("compressai", "constriction", "torch", "scipy", "pytest-benchmark"))
