"""training.gain_sweep: the top-of-ladder diagnostic runs on the committed checkpoint, and more gain costs bits."""
from __future__ import annotations

import re

import numpy as np
import pytest

from shipped_model import ROOT

torch = pytest.importorskip("torch")
CHECKPOINT = ROOT / "training" / "checkpoints" / "vm33.pt"


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="no vm33 checkpoint committed")
def test_gain_sweep_more_gain_more_bits(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from training import gain_sweep
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:128, :192])).save(tmp_path / "kodim01.png")
    gain_sweep.main(["--checkpoint", str(CHECKPOINT), "--deltas", "0,1", "--images", "1", "--kodak", str(tmp_path)])
    rows = re.findall(r"log2 gain ([+-][\d.]+): ([\d.]+) dB PSNR-YUV, ([\d.]+) bpp", capsys.readouterr().out)
    assert [r[0] for r in rows] == ["+0.00", "+1.00"]
    (_, p0, b0), (_, p1, b1) = rows
    assert float(b1) > float(b0) > 0 and 15 < float(p0) < 60 and 15 < float(p1) < 60
