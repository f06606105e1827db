"""The committed ctest vectors (tests/cpp/vectors/, read by tests/cpp/test_vectors.cpp) are what the numpy
oracle makes today: `python tools/gen_ctest_vectors.py --check` regenerates them into a temp dir and compares
byte for byte, so a change of the oracle (training/reference_decoder.py) or of the shipped model that the
vectors do not follow fails here as well as (as a skip, for a new model.bin) in ctest."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ctest_vectors_match_the_oracle():
    pytest.importorskip("skimage")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("jpegai_fast._core")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_ctest_vectors.py"), "--check"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
