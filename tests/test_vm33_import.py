"""The VM 3.3 import (training/vm33.py): each torch mirror equals ONNX Runtime on the shipped graph.

Inputs are realistic, not random: pixels of a real photo (skimage) through the analysis graphs, the
resulting latents through the hyper graphs, rounded latents through the synthesis — the synthesis'
multiplicative gates blow random inputs up to 1e14, where a tolerance means nothing.
"""
from __future__ import annotations

import numpy as np
import pytest

import shipped_model  # noqa: F401  (repository root on sys.path)

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from training import vm33  # noqa: E402

pytestmark = pytest.mark.skipif(not (vm33.VM33_DIR / "decoder_y.onnx").exists(),
                                reason=f"VM 3.3 graphs not at {vm33.VM33_DIR}")


def _session(stem):
    """ORT session of a graph with its spatial dimensions made symbolic (declared for 1024x1024)."""
    model = onnx.load(str(vm33.VM33_DIR / f"{stem}.onnx"))
    for t in list(model.graph.input) + list(model.graph.output):
        dims = t.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "h", "w"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run_both(stem, x):
    sess = _session(stem)
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        out = vm33.load_graph(stem).eval()(x).numpy()
    assert out.shape == ref.shape
    return out, ref


@pytest.fixture(scope="module")
def latents():
    from skimage import data
    rgb = torch.from_numpy(data.astronaut()[:192, 64:320].copy()).permute(2, 0, 1)[None].float()
    from training.colour import rgb_to_yuv420
    y, uv = rgb_to_yuv420(rgb)
    out = {}
    for stem, x in (("single_encode_y", y), ("single_encode_uv", vm33.chroma_analysis_input(y, uv))):
        got, ref = _run_both(stem, x)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))
        out[stem] = torch.from_numpy(ref)
    return out


def test_analysis_graphs_match(latents):
    assert latents["single_encode_y"].shape == (1, 128, 12, 16)  # H/16
    assert latents["single_encode_uv"].shape == (1, 64, 6, 8)    # H/32: chroma resolution / 16


@pytest.mark.parametrize("comp,latent", [("y", "single_encode_y"), ("uv", "single_encode_uv")])
def test_hyper_graphs_match(latents, comp, latent):
    y = latents[latent]
    z, z_ref = _run_both(f"hyper_encoder_{comp}", y)
    np.testing.assert_allclose(z, z_ref, rtol=0, atol=1e-4 * max(1.0, np.abs(z_ref).max()))
    z_hat = torch.from_numpy(np.round(z_ref))
    for stem in (f"hyper_decoder_{comp}", f"hyper_scale_decoder_{comp}"):
        got, ref = _run_both(stem, z_hat)
        # 4x the z grid: at least the latent grid (the codec crops to it)
        assert got.shape[-2] >= y.shape[-2] and got.shape[-1] >= y.shape[-1]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_synthesis_graphs_match(latents):
    y_hat = torch.round(latents["single_encode_y"])
    c_hat = torch.round(latents["single_encode_uv"])
    got, ref = _run_both("decoder_y", y_hat)
    assert got.shape == (1, 16, 48, 64)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))
    got, ref = _run_both("decoder_uv", vm33.chroma_synthesis_input(y_hat, c_hat))
    assert got.shape == (1, 32, 24, 32)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_glue_reconstructs_the_photo(latents):
    """The README's glue — z = round(hyper_encoder(y)), mu = hyper_decoder(z), y_hat = round(y - mu) + mu,
    PixelShuffle(4), ×128 + 127.5 — gives the photo back at the VM's quality, and mu matters."""
    from skimage import data

    from training.colour import psnr, rgb_to_yuv420
    rgb = torch.from_numpy(data.astronaut()[:192, 64:320].copy()).permute(2, 0, 1)[None].float()
    y, _ = rgb_to_yuv420(rgb)
    lat = latents["single_encode_y"]
    with torch.no_grad():
        z_hat = torch.round(vm33.load_graph("hyper_encoder_y")(lat))
        mu = vm33.load_graph("hyper_decoder_y")(z_hat)[..., :lat.shape[-2], :lat.shape[-1]]
        synthesis = vm33.load_graph("decoder_y")

        def luma_psnr(y_hat):
            y_rec = torch.nn.functional.pixel_shuffle(synthesis(y_hat), 4) * 128 + 127.5
            return float(psnr(((y_rec.clamp(0, 255) - y) ** 2).mean()))
        with_mean, without = luma_psnr(torch.round(lat - mu) + mu), luma_psnr(torch.round(lat))
    assert with_mean > 28.5 and with_mean > without + 3.0  # measured 29.4 / 24.0 dB, (with_mean, without)


def test_a_changed_graph_is_refused(tmp_path):
    """Weights are assigned by node order; a graph of another structure must fail loudly, not load."""
    model = onnx.load(str(vm33.VM33_DIR / "hyper_encoder_uv.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "Conv")
    model.graph.node.remove(node)
    onnx.save(model, str(tmp_path / "hyper_encoder_uv.onnx"))
    with pytest.raises(ValueError):
        vm33.load_graph("hyper_encoder_uv", tmp_path)
