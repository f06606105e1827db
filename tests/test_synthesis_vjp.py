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
@pytest.mark.parametrize("hw", [(64, 96), (50, 34), (82, 130)])
def test_picture_gradient_equals_autograd(model, op, hw):
    from training.colour import psnr_yuv, yuv_mse
    from training.synthesis_vjp import PictureGradient
    y, uv = _photo(*hw)
    with torch.no_grad():
        a0, b0 = model.analysis(y, uv)
    a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    y_rec, uv_rec = model.synthesis[op](a, b, hw)
    p = psnr_yuv(yuv_mse(y_rec, uv_rec, y, uv))[0]
    p.backward()
    with torch.no_grad():
        q, da, db, mse = PictureGradient(model.synthesis[op])(a0, b0, y, uv)
    assert abs(float(q) - float(p)) < 1e-4
    for got, want in ((da, a.grad), (db, b.grad)):
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    assert torch.allclose(mse, yuv_mse(y_rec, uv_rec, y, uv)[0].detach(), rtol=1e-5)


def test_onnx_export_matches_torch_at_other_sizes(model, tmp_path):
    from training.synthesis_vjp import PictureGradient, export_picture_gradient
    path = tmp_path / "picture_gradient_bop.onnx"
    export_picture_gradient(model.synthesis["bop"], path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in ((48, 80), (70, 118)):
        y, uv = _photo(*hw)
        with torch.no_grad():
            a, b = model.analysis(y, uv)
            want = PictureGradient(model.synthesis["bop"])(a, b, y, uv)
        got = session.run(None, {"y_hat_luma": a.numpy(), "y_hat_chroma": b.numpy(), "target_y": y.numpy(),
                                 "target_uv": uv.numpy()})
        for g, w in zip(got, want):
            w = w.numpy()
            assert g.shape == w.shape
            assert np.abs(g - w).max() <= 1e-4 * max(np.abs(w).max(), 1e-6)
