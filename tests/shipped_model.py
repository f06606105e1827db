"""What the model-dependent tests share: the repository root on sys.path (for the torch-free oracle in
training/reference_decoder.py), the exported models, the skip marker when none is exported, and PSNR."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the default model first: MODELS[0] is what jpegai_fast.encode/decode use without a model argument
MODELS = sorted((p.parent for p in (ROOT / "src" / "jpegai_fast" / "models").glob("*/model.bin")),
                key=lambda d: (d.name != "vr_bop", d.name))
requires_model = pytest.mark.skipif(not MODELS, reason="no exported model under src/jpegai_fast/models/")


def psnr(a, b) -> float:
    """PSNR in dB of two 8-bit-range arrays (any dtype)."""
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))
