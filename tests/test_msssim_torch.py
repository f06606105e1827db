"""training.msssim (the differentiable MS-SSIM the loss uses) equals the reported metric (jpegai_fast.metrics)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jpegai_fast import metrics  # noqa: E402
from training import msssim as ms_torch  # noqa: E402


def _pair(h, w, noise, seed=0):
    data = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(seed)
    y, _, _ = metrics.rgb_to_ycbcr(data.astronaut()[:h, :w])
    return y, np.clip(y + rng.normal(0, noise, y.shape), 0, 255)


@pytest.mark.parametrize("h,w,noise", [(256, 256, 4.0), (200, 187, 12.0), (512, 384, 1.5)])
def test_equals_the_reported_metric(h, w, noise):
    a, b = _pair(h, w, noise)
    expect = metrics.msssim(a, b)
    got = ms_torch.msssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    assert float(got[0]) == pytest.approx(expect, abs=1e-10)
    db = ms_torch.msssim_db(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    assert float(db[0]) == pytest.approx(-10 * np.log10(1 - expect), abs=1e-7)


def test_batched_per_image_and_differentiable():
    a1, b1 = _pair(256, 256, 3.0, seed=1)
    a2, b2 = _pair(256, 256, 9.0, seed=2)
    a = torch.from_numpy(np.stack([a1, a2]))[:, None].float()
    b = torch.from_numpy(np.stack([b1, b2]))[:, None].float().requires_grad_(True)
    db = ms_torch.msssim_db(a, b)
    d = db.detach()
    assert d.shape == (2,) and float(d[0]) > float(d[1])  # less noise, higher MS-SSIM
    for i, (x, y) in enumerate([(a1, b1), (a2, b2)]):
        assert float(d[i]) == pytest.approx(-10 * np.log10(1 - metrics.msssim(x, y)), abs=2e-3)  # float32
    db.sum().backward()
    assert torch.isfinite(b.grad).all() and float(b.grad.abs().sum()) > 0


def test_identical_planes_give_one():
    a, _ = _pair(256, 256, 0.0)
    t = torch.from_numpy(a)[None, None]
    assert float(ms_torch.msssim(t, t)[0]) == pytest.approx(1.0, abs=1e-12)


def test_the_psnr_loss_adds_the_weighted_msssim_term():
    from training import train
    lambdas = torch.tensor([0.1, 0.5])
    rate_idx = torch.tensor([0, 1])
    mse3 = torch.tensor([[10.0, 4.0, 4.0], [2.0, 1.0, 1.0]])
    bpp = torch.tensor([0.2, 0.6])
    ms_db = torch.tensor([12.0, 16.0])
    base = train.rd_loss("psnr", lambdas, rate_idx, mse3, bpp)
    both = train.rd_loss("psnr", lambdas, rate_idx, mse3, bpp, ms_db, 0.5)
    p = 10 * torch.log10(255.0**2 / mse3)
    p_yuv = (6 * p[:, 0] + p[:, 1] + p[:, 2]) / 8
    assert float(base) == pytest.approx(float((bpp / lambdas[rate_idx] - p_yuv).mean()), rel=1e-6)
    expect = (bpp / lambdas[rate_idx] - (p_yuv + 0.5 * ms_db) / 1.5).mean()  # a weighted mean: rates stay put
    assert float(both) == pytest.approx(float(expect), rel=1e-6)
    assert float(train.rd_loss("psnr", lambdas, rate_idx, mse3, bpp, ms_db, 0.0)) == pytest.approx(float(base))
