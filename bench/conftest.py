"""Bench-only pytest configuration (never loaded by the CI suite: pyproject's testpaths = ["tests"]).

At the end of a benchmark session, the pytest-benchmark results are grouped by
``benchmark.extra_info["suite"]``; every suite registered with
:func:`bench.results_writer.register_suite` gets bench/results/<UTC date>-<commit>-<suite>.{json,md}.
"""
from __future__ import annotations

from bench import results_writer


def pytest_addoption(parser):
    group = parser.getgroup("jpegai_fast bench")
    group.addoption("--results-dir", default=None, help="where to write results (default bench/results/)")
    group.addoption("--no-results", action="store_true", help="do not write bench/results/ files")
    # bench/test_codecs.py (codec comparison on Kodak)
    group.addoption("--quick", action="store_true", help="test_codecs: 3 images x 2 VVC QPs instead of 8 x 6")
    group.addoption("--kodak", default=None, help="Kodak PNG folder (default ../shared/datasets/kodak; "
                    "or $JPEGAI_BENCH_KODAK)")
    group.addoption("--vvc-dir", default=None, help="VVC anchor folder (default ../shared/anchors/vvc; "
                    "or $JPEGAI_BENCH_VVC)")
    group.addoption("--decode-rounds", type=int, default=None, help="test_codecs: timed rounds per row")
    group.addoption("--precision", choices=("fp32", "int8"), default=None,
                    help="test_codecs: jpegai_fast's synthesis precision (Decoder(precision=...); default fp32, "
                         "or $JPEGAI_BENCH_PRECISION); an int8 run writes the suite codecs-int8")
    group.addoption("--images", default=None, help="test_codecs: 'all' or a comma list of Kodak names (default: "
                    "3 with --quick, else the 8 of bench/streams.py FULL_BENCH_IMAGES)")


def pytest_configure(config):
    import os

    for opt, env in (("--kodak", "JPEGAI_BENCH_KODAK"), ("--vvc-dir", "JPEGAI_BENCH_VVC")):
        value = config.getoption(opt, default=None)
        if value:
            os.environ[env] = os.path.abspath(value)
    precision = config.getoption("--precision", default=None)
    if precision:
        os.environ["JPEGAI_BENCH_PRECISION"] = precision


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    config._jpegai_results_written = []
    if config.getoption("--no-results"):
        return
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or getattr(bs, "disabled", False):
        return
    rows = results_writer.benchmark_rows(getattr(bs, "benchmarks", []))
    for suite, (summarize, libraries) in results_writer.registered_suites().items():
        suite_rows = [r for r in rows if r["extra_info"].get("suite") == suite]
        if not suite_rows:
            continue
        payload = summarize(suite_rows)
        payload["pytest_exitstatus"] = int(exitstatus)
        paths = results_writer.write_results(suite, payload, libraries, config.getoption("--results-dir"))
        config._jpegai_results_written.extend(paths)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for path in getattr(config, "_jpegai_results_written", []):
        terminalreporter.write_line(f"bench results written: {path}")

