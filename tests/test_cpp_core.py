"""Builds tests/cpp/test_core.cpp with CMake (no sanitizers) in a temp dir and runs it via ctest.

Skipped when cmake or a C++ compiler is missing.  The ASan + UBSan variant of the same program is a
manual step documented in docs/testing.md (too slow for every CI run on two cores).
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _compiler() -> str | None:
    for cxx in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cxx and shutil.which(cxx):
            return shutil.which(cxx)
    return None


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    if shutil.which("cmake") is None or _compiler() is None:
        pytest.skip("needs cmake and a C++ compiler")
    build = tmp_path_factory.mktemp("cpp") / "build"
    env = dict(os.environ, CXX=_compiler())
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *gen, "-DJPEGAI_BUILD_TESTS=ON",
                          "-DJPEGAI_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    bld = subprocess.run(["cmake", "--build", str(build), "-j2", "--target", "test_core"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bld.returncode == 0, bld.stdout[-5000:] + bld.stderr[-5000:]
    return build


def test_cpp_core_builds_and_passes(build):
    run = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure", "-V"],
                         capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    assert m, out[-3000:]
    assert int(m.group(2)) == 0 and int(m.group(1)) > 1000, m.group(0)
    print("\n" + m.group(0))


def test_regression_cpp_bitwriter_unrepresentable_values(build):
    """Was a bug (csrc/bitio.hpp, BitWriter::put_se / put_ue): put_se(INT32_MIN) wrote 0 and
    put_ue(0xFFFFFFFF) a code BitReader refuses; now both throw.  See test_known_bugs() in test_core.cpp."""
    exe = next(p for p in (build / "test_core", build / "Release" / "test_core.exe", build / "test_core.exe")
               if p.exists())
    run = subprocess.run([str(exe), "--known-bugs"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
