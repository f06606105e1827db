"""C++ latent decoder (codestream -> z, Q7 log-sigma, indices, residuals) == the numpy reference codec.

Streams are made by the torch-free reference encoder (training/reference_decoder.py: ONNX analysis,
integer HSD in numpy, real rANS coding) from a scikit-image photo, then decoded by the C++ core in one
call; every integer must match.
"""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import _core
from shipped_model import MODELS, requires_model  # noqa: E402

pytestmark = requires_model


@pytest.fixture(scope="module")
def ref_model():
    pytest.importorskip("onnxruntime")
    from training import reference_decoder as rd

    return rd, rd.Model(MODELS[0])


@pytest.fixture(scope="module")
def latent_model():
    return _core.LatentModel((MODELS[0] / "model.bin").read_bytes())


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[100:300, 150:390])  # 200 x 240: not multiples of 16/64


@pytest.mark.parametrize("rate,substreams", [(0, 1), (3, 5)])
def test_integers_match_the_reference_encoder(ref_model, latent_model, photo, rate, substreams):
    rd, model = ref_model
    stream, enc = rd.encode_bitstream(model, photo, rate, substreams=substreams)
    for threads in (1, 2, 0):
        out = latent_model.decode(stream, threads=threads, inspect=True)
        for comp in ("luma", "chroma"):
            assert out["latent_hw"][comp] == rd.latent_size(photo.shape[:2])
            got = out[comp]
            np.testing.assert_array_equal(got["z"], enc["z_hat"][comp])
            np.testing.assert_array_equal(got["index"], enc["idx"][comp])
            np.testing.assert_array_equal(got["residual"], enc["residual"][comp])
            s = rd.hsd_forward(enc["z_hat"][comp], model.hsd_layers(comp), out["latent_hw"][comp])
            np.testing.assert_array_equal(got["log_sigma"], s + model.offset(comp, rate)[:, None, None])
            # the same call goes on to y_hat: equal to the oracle's, bit for bit
            np.testing.assert_array_equal(out["y_hat"][comp], enc["y_hat"][comp])
        # without inspect only y_hat comes back: the integer arrays are freed inside the call
        plain = latent_model.decode(stream, threads=threads)
        assert "luma" not in plain and all(np.array_equal(plain["y_hat"][c], out["y_hat"][c]) for c in out["y_hat"])


def test_bad_streams_raise_our_errors(ref_model, latent_model, photo):
    rd, model = ref_model
    stream, _ = rd.encode_bitstream(model, photo[:64, :64], 1)
    for cut in range(0, len(stream), max(1, len(stream) // 97)):
        with pytest.raises(jpegai_fast.BitstreamError):
            latent_model.decode(stream[:cut])
    rng = np.random.default_rng(0)
    for _ in range(200):
        b = bytearray(stream)
        pos = int(rng.integers(0, len(b)))
        b[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises((jpegai_fast.BitstreamError, jpegai_fast.LimitError)):
            latent_model.decode(bytes(b))  # every segment has a CRC: no flip goes unnoticed
    with pytest.raises(jpegai_fast.LimitError):
        latent_model.decode(stream, max_pixels=64 * 63)


def test_stream_must_match_the_model(latent_model):
    from jpegai_fast import container

    h = container.PictureHeader()
    h.width = h.height = 64
    h.model_id = 7
    with pytest.raises(jpegai_fast.BitstreamError, match="model_id.*made by model 7.*holds model 1"):
        latent_model.decode(container.write(h, {"SOZ": b"\x80", "SORP": b"", "SORS": b""}))
    h.model_id = latent_model.model_id
    h.latent_channels_luma = h.coded_channels_luma = 128  # the model has 160
    with pytest.raises(jpegai_fast.BitstreamError, match="latent_channels_luma"):
        latent_model.decode(container.write(h, {"SOZ": b"\x80", "SORP": b"", "SORS": b""}))
    h.latent_channels_luma = h.coded_channels_luma = 160
    h.rate_point = 200
    with pytest.raises(jpegai_fast.BitstreamError, match="rate_point"):
        latent_model.decode(container.write(h, {"SOZ": b"\x80", "SORP": b"", "SORS": b""}))
    h.rate_point = 0
    with pytest.raises(jpegai_fast.BitstreamError, match="SORS"):
        latent_model.decode(container.write(h, {"SOZ": b"\x80", "SORP": b""}))


def test_model_file_is_validated():
    data = bytearray((MODELS[0] / "model.bin").read_bytes())
    _core.LatentModel(bytes(data))
    for mutate in (lambda d: d[:-1], lambda d: d[:100], lambda d: b"XXXX" + d[4:]):
        with pytest.raises(ValueError, match="model.bin"):
            _core.LatentModel(bytes(mutate(bytes(data))))
    data[5000] ^= 0x10
    with pytest.raises(ValueError, match="CRC"):
        _core.LatentModel(bytes(data))
