"""Guardrails as tests, so the README's one test command (and .ci/run, which runs exactly it) checks them:
ruff over every Python tree, mypy over src/jpegai_fast, and src/jpegai_fast/_core.pyi against the built
extension (mypy's stubtest; what a stub cannot express is listed with its reason in .ci/stubtest_allowlist.txt).
Settings: [tool.ruff] and [tool.mypy] in pyproject.toml.  (ctest runs in tests/test_cpp_core.py.)"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_is_clean():
    pytest.importorskip("ruff")
    res = _run("ruff", "check", "src", "tests", "bench", "tools", "training")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_mypy_is_clean():
    pytest.importorskip("mypy")
    res = _run("mypy")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_core_stub_matches_the_extension():
    pytest.importorskip("mypy")
    res = _run("mypy.stubtest", "jpegai_fast._core", "--allowlist", ".ci/stubtest_allowlist.txt")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
