"""training.synthesis_vjp: the hand-written backward pass of the VM synthesis equals torch autograd, and its ONNX
export equals the torch module in ONNX Runtime at sizes other than the example's (dynamic shapes)."""
from __future__ import annotations

import numpy as np
import pytest

from shipped_model import ROOT

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
CHECKPOINT = ROOT / "training" / "checkpoints" / "vm33.pt"
pytestmark = pytest.mark.skipif(not CHECKPOINT.exists(), reason="no vm33 checkpoint committed")


@pytest.fixture(scope="module")
def model():
    from training.gain_sweep import load
    return load(CHECKPOINT)


def _photo(h, w):
    """A real photo's crop as 4:2:0 YUV (h, w even)."""
    from skimage import data

    from training.colour import rgb_to_yuv420
    rgb = np.ascontiguousarray(data.astronaut()[40:40 + h, 100:100 + w])
    return rgb_to_yuv420(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())


@pytest.mark.parametrize("op", ["bop", "sop"])
@pytest.mark.parametrize("hw", [(96, 128), (98, 146), (130, 96)])
@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_picture_gradient_equals_autograd(model, op, hw, weight):
    """quality = (PSNR-YUV + w·MS-SSIM-Y dB) / (1 + w) and its gradient w.r.t. both latents, against autograd
    through training.colour and training.msssim (the metric's definition)."""
    from training.colour import psnr_yuv, yuv_mse
    from training.msssim import msssim_db
    from training.synthesis_vjp import PictureGradient
    y, uv = _photo(*hw)
    with torch.no_grad():
        a0, b0 = model.analysis(y, uv)
    a = a0.double().clone().requires_grad_(True)
    b = b0.double().clone().requires_grad_(True)
    syn = model.synthesis[op].double()
    try:
        y_rec, uv_rec = syn(a, b, hw)
        p = psnr_yuv(yuv_mse(y_rec, uv_rec, y.double(), uv.double()))[0]
        ms = msssim_db(y_rec, y.double(), floor=1e-12)[0]
        ((p + weight * ms) / (1 + weight)).backward()
        with torch.no_grad():
            q, pg, mg, da, db = PictureGradient(syn)(a.detach(), b.detach(), y.double(), uv.double(),
                                                     torch.tensor(weight, dtype=torch.float64))
    finally:
        model.synthesis[op].float()
    assert float(pg) == pytest.approx(float(p), abs=1e-9)
    assert float(mg) == pytest.approx(float(ms), abs=1e-9)
    assert float(q) == pytest.approx((float(p) + weight * float(ms)) / (1 + weight), abs=1e-9)
    for got, want in ((da, a.grad), (db, b.grad)):
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= 1e-9 * float(want.abs().max())


def test_onnx_export_matches_torch_at_other_sizes(model, tmp_path):
    from training.synthesis_vjp import PictureGradient, export_picture_gradient
    path = tmp_path / "picture_gradient_bop.onnx"
    export_picture_gradient(model.synthesis["bop"], path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in ((112, 144), (98, 226)):
        y, uv = _photo(*hw)
        with torch.no_grad():
            a, b = model.analysis(y, uv)
            want = PictureGradient(model.synthesis["bop"])(a, b, y, uv, torch.tensor(0.5))
        got = session.run(None, {"y_hat_luma": a.numpy(), "y_hat_chroma": b.numpy(), "target_y": y.numpy(),
                                 "target_uv": uv.numpy(), "msssim_weight": np.array(0.5, np.float32)})
        for g, w in zip(got, want):
            w = w.numpy()
            assert g.shape == w.shape
            assert np.abs(g - w).max() <= 5e-4 * max(np.abs(w).max(), 1e-6)  # float32, two accumulation orders
