"""training.latent_ceiling: the analysis-vs-synthesis diagnostic runs on the committed checkpoint, and gradient
descent on the latent never ends below where it started."""
from __future__ import annotations

import re

import numpy as np
import pytest

from shipped_model import ROOT

torch = pytest.importorskip("torch")
CHECKPOINT = ROOT / "training" / "checkpoints" / "vm33.pt"


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="no vm33 checkpoint committed")
def test_latent_ceiling_reports_analysis_synthesis_and_rdo(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from training import latent_ceiling
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:128, :192])).save(tmp_path / "kodim01.png")
    latent_ceiling.main(["--checkpoint", str(CHECKPOINT), "--images", "1", "--kodak", str(tmp_path),
                         "--iters", "5", "--rdo-iters", "3", "--rdo-rate", "4"])
    out = capsys.readouterr().out
    m = re.search(r"kodim01: analysis ([\d.]+) dB, synthesis ([\d.]+) dB; rdo rate 4: ([\d.]+) bpp ([\d.]+) dB -> "
                  r"([\d.]+) bpp ([\d.]+) dB", out)
    assert m, out
    start, best, b0, p0, b1, p1 = map(float, m.groups())
    assert 15 < start <= best < 60
    assert b0 > 0 and b1 > 0 and 15 < p0 < 60 and 15 < p1 < 60
    assert b1 / 0.065 - p1 <= b0 / 0.065 - p0 + 0.01  # best loss kept (lambda 0.065; printed rounded)
    assert "mean (1 images)" in out
