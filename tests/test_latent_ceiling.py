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


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="no vm33 checkpoint committed")
def test_fixed_prior_coder_starts_where_the_model_does():
    """--rdo-fixed-prior: at the analysis' own latent the frozen-prior coder gives the model's bits and latents
    exactly, and its gradient reaches both latents (through the synthesis and the residual rates)."""
    from skimage import data

    from training import latent_ceiling
    from training.colour import rgb_to_yuv420
    from training.gain_sweep import load
    model = load(CHECKPOINT)
    rgb = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:96, :160])).permute(2, 0, 1)[None].float()
    y, uv = rgb_to_yuv420(rgb)
    with torch.no_grad():
        a, b = model.analysis(y, uv)
        want = model.code_latents(a, b, torch.tensor([5]))
    coder = latent_ceiling._fixed_prior_coder(model, a, b, 5)
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    got = coder(a, b)
    assert torch.equal(got[0].detach(), want[0]) and torch.equal(got[1].detach(), want[1])  # the latents exactly
    # the bits: the same terms summed in another order (float32: equal to rounding, not always bit for bit)
    torch.testing.assert_close(got[2].detach(), want[2], rtol=1e-6, atol=0)
    got[2].sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
