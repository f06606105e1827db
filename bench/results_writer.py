"""Write one benchmark suite's results to bench/results/<UTC date>-<commit>-<name>.{json,md}.

Generic so that every bench suite (entropy, decoder, VVC comparison, ...) uses it the same way:

    from bench.results_writer import write_results
    json_path, md_path = write_results("entropy", {"benchmarks": rows, "summary": {...}})

``write_results`` adds a ``machine`` block (date, commit, CPU, cores, library versions, SIMD level).
The Markdown file renders the payload generically: a list of dicts becomes a table, a dict becomes a
key/value table, anything else a bullet line; top-level keys become sections in insertion order.

Suites that collect pytest-benchmark results register a summary function with
:func:`register_suite`; bench/conftest.py calls it at the end of the session (see there).
"""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

DEFAULT_LIBRARIES = ("jpegai_fast", "numpy")

# suite name -> (summary function(list of benchmark rows) -> payload dict, libraries to report)
_SUITES: dict[str, tuple[Callable[[list[dict]], dict], tuple[str, ...]]] = {}


def register_suite(name: str, summarize: Callable[[list[dict]], dict], libraries: Iterable[str] = ()) -> None:
    """Register how to turn the benchmark rows whose extra_info["suite"] == name into a results payload."""
    _SUITES[name] = (summarize, tuple(libraries))


def extra_info_rows(rows: list[dict], keys: Iterable[str], order: str = "rate_point") -> list[dict]:
    """The ``keys`` of each benchmark row's extra_info, rows sorted by extra_info[``order``]: a suite's table."""
    keys = tuple(keys)
    return [{k: r["extra_info"][k] for k in keys} for r in sorted(rows, key=lambda r: r["extra_info"][order])]


def registered_suites() -> dict:
    return dict(_SUITES)


# --------------------------------------------------------------------------------------------- machine


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str:
    """Short HEAD commit, with "+dirty" when tracked files differ from it (untracked files are ignored)."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    if status:
        commit += "+dirty"
    return commit


def cpu_model() -> str:
    """CPU model line from /proc/cpuinfo (with family/model/stepping, useful under VMs that hide the name)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # first processor block is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        name += f" (family {info['cpu family']}, model {info.get('model', '?')}, stepping {info.get('stepping', '?')})"
    return name


def library_versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def simd_level() -> str | None:
    try:
        core = importlib.import_module("jpegai_fast._core")
    except ImportError:
        return None
    return core.cpu_features()


def core_build_time() -> str | None:
    """mtime (UTC) of the compiled _core extension: tells whether it may predate the commit measured."""
    try:
        core = importlib.import_module("jpegai_fast._core")
        mtime = os.path.getmtime(core.__file__)
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    return _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _busy_jiffies() -> int | None:
    """Busy jiffies over all cores from /proc/stat (None where there is none)."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle


def background_load(seconds: float = 0.5) -> dict[str, Any]:
    """How busy the machine is with other work while this process sleeps: cores' worth of busy time (0 = idle).

    Timings of one thread are only comparable between codecs when nothing else runs: FFmpeg's VVC decode measured
    1.1-1.5x slower (geo-mean) beside a training job on the second core while ours moved < 3 % (bench/README.md),
    so every results file records this next to the machine."""
    snapshot = load_snapshot()
    time.sleep(seconds)
    return {"busy_cores_other_processes": other_load_since(snapshot),
            "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def load_snapshot() -> tuple | None:
    """Start of a window for ``other_load_since``: machine busy jiffies, this process's and its waited-for
    children's CPU seconds, wall time."""
    busy = _busy_jiffies()
    if busy is None:
        return None
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()


def other_load_since(snapshot: tuple | None) -> float | None:
    """Cores' worth of busy time of *other* processes since ``snapshot`` (machine busy time minus this process
    and its waited-for children, over the wall time): 0 on a quiet machine, whatever our own work was."""
    now = load_snapshot()
    if snapshot is None or now is None or now[2] <= snapshot[2]:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    machine = (now[0] - snapshot[0]) / tick
    ours = now[1] - snapshot[1]
    return round(max(0.0, machine - ours) / (now[2] - snapshot[2]), 2)


def machine_info(libraries: Iterable[str] = ()) -> dict[str, Any]:
    now = _dt.datetime.now(_dt.timezone.utc)
    libs = list(dict.fromkeys([*DEFAULT_LIBRARIES, *libraries]))
    return {
        "date_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_features": simd_level(),
        "jpegai_fast_SIMD_env": os.environ.get("JPEGAI_FAST_SIMD"),
        "core_built_utc": core_build_time(),
        "libraries": library_versions(libs),
        "background_load": background_load(),
    }


# --------------------------------------------------------------------------------------------- writing


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict]) -> list[str]:
    columns: list[str] = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return lines


def _is_nested(v: Any) -> bool:
    return bool(v) and (isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v)))


def _md_section(title: str, value: Any, level: int = 2) -> list[str]:
    lines = [f"{'#' * level} {title}", ""]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        lines += _md_table(value)
    elif isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not _is_nested(v)}
        nested = {k: v for k, v in value.items() if k not in scalars}
        if scalars:
            lines += ["| | |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
        for k, v in nested.items():
            lines += [""] + _md_section(k, v, level + 1)
    else:
        lines.append(_fmt(value))
    lines.append("")
    return lines


def render_markdown(name: str, data: dict) -> str:
    m = data["machine"]
    lines = [
        f"# {name} benchmark — {m['date_utc']}",
        "",
        f"commit `{m['commit']}` · {m['cpu']} · {m['logical_cores']} logical cores · "
        f"SIMD {m['cpu_features']} · Python {m['python']}",
        "",
    ]
    for key, value in data.items():
        if key in ("machine", "suite"):
            continue
        lines += _md_section(key, value)
    lines += _md_section("machine", m)
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    name: str, payload: dict, libraries: Iterable[str] = (), results_dir: Path | str | None = None
) -> tuple[Path, Path]:
    """Write ``payload`` (JSON-serialisable dict) plus machine info; returns (json path, md path)."""
    results_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    results_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info(libraries)
    data = {"suite": name, "machine": machine, **payload}
    stem = f"{machine['date_utc'][:10]}-{machine['commit'].replace('+', '-')}-{name}"
    json_path = results_dir / f"{stem}.json"
    md_path = results_dir / f"{stem}.md"
    json_path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    md_path.write_text(render_markdown(name, data))
    return json_path, md_path


def _json_default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def benchmark_rows(benchmarks: Iterable[Any]) -> list[dict]:
    """pytest-benchmark Metadata objects -> plain rows (times in seconds, per call)."""
    rows = []
    for b in benchmarks:
        if not b or getattr(b, "has_error", False):
            continue
        s = b.stats
        rows.append({
            "group": b.group,
            "name": b.name,
            "min_s": s.min,
            "median_s": s.median,
            "mean_s": s.mean,
            "stddev_s": s.stddev,
            "rounds": s.rounds,
            "iterations": b.iterations,
            "extra_info": dict(b.extra_info),
        })
    return rows
