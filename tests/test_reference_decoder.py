"""The torch-free reference codec (training/reference_decoder.py), the model blob and BD-rate.

None of these tests import torch. Tests that need an exported model use the first directory under
src/jpegai_fast/models/ that holds a model.bin and skip when there is none; the ONNX ones skip
without onnxruntime, the BD-rate ones without scipy.
"""
from __future__ import annotations

import pathlib
import struct
import sys
import zlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reference.hyper_scale_decoder import hyper_scale_decode  # noqa: E402  (tests/reference oracle)
from shipped_model import MODELS  # noqa: E402
from shipped_model import requires_model as needs_model  # noqa: E402
from training import model_file  # noqa: E402
from training import reference_decoder as rd  # noqa: E402


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("onnxruntime")
    return rd.Model(MODELS[0])


# ----------------------------------------------------------------------------------------------
# Blob format
# ----------------------------------------------------------------------------------------------
def _sections():
    rng = np.random.default_rng(3)
    return {"a.int8": rng.integers(-128, 128, (3, 5, 1, 1)).astype(np.int8),
            "b.int32": rng.integers(-2**31, 2**31, (7,)).astype(np.int32),
            "c.uint16": rng.integers(0, 2**16, (2, 64)).astype(np.uint16),
            "d.f32": rng.standard_normal((2, 3)).astype(np.float32),
            "e.scalar": np.array(5, np.int16)}


def test_blob_round_trip():
    secs = _sections()
    blob = model_file.write_blob(secs)
    assert blob[:8] == rd.MAGIC and len(blob) % 16 == 4
    assert struct.unpack_from("<I", blob, len(blob) - 4)[0] == zlib.crc32(blob[:-4])
    back = rd.read_blob(blob)
    assert list(back) == list(secs)
    for k, v in secs.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)


@pytest.mark.parametrize("where", [0, 9, 30, -10, -1])
def test_blob_rejects_any_flipped_byte(where):
    blob = bytearray(model_file.write_blob(_sections()))
    blob[where] ^= 0x40
    with pytest.raises(rd.BlobError):
        rd.read_blob(bytes(blob))


def test_blob_rejects_truncation_version_and_bad_table():
    blob = model_file.write_blob(_sections())
    for cut in (0, 10, len(blob) - 1):
        with pytest.raises(rd.BlobError):
            rd.read_blob(blob[:cut])

    def resign(b):
        b = bytes(b[:-4])
        return b + struct.pack("<I", zlib.crc32(b))

    bad = bytearray(blob)
    struct.pack_into("<I", bad, 8, 2)  # version 2, CRC fixed up
    with pytest.raises(rd.BlobError, match="version"):
        rd.read_blob(resign(bad))
    bad = bytearray(blob)
    struct.pack_into("<Q", bad, 24 + 48 + 24 + 8, 10**6)  # nbytes of the first section
    with pytest.raises(rd.BlobError):
        rd.read_blob(resign(bad))


def test_pmf_to_cdf():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(63, 0.05), size=20)
    p[0] = 0.0
    p[0, 31] = 1.0  # a degenerate channel still gets every frequency >= 1
    cdf = model_file.pmf_to_cdf(p)
    assert cdf.dtype == np.uint16 and cdf.shape == (20, 64)
    f = np.diff(cdf.astype(np.int64), axis=1)
    assert (cdf[:, 0] == 0).all() and (cdf[:, -1] == 4096).all() and (f >= 1).all()
    assert np.array_equal(model_file.pmf_to_cdf(p), cdf)
    assert f[0, 31] == 4096 - 62


# ----------------------------------------------------------------------------------------------
# Integer HSD, sigma index, colour
# ----------------------------------------------------------------------------------------------
def _random_layers(c, rng):
    return [(rng.integers(-127, 128, (o, i, k, k)).astype(np.int8), rng.integers(-2**12, 2**12, o).astype(np.int32),
             rng.integers(4, 12, o).astype(np.int8)) for o, i, k in ((c, c, 1), (c, c, 3), (16 * c, c, 1))]


def test_hsd_equals_oracle_random_weights():
    rng = np.random.default_rng(1)
    layers = _random_layers(8, rng)
    z = rng.integers(-31, 32, (8, 3, 4))
    s = rd.hsd_forward(z, layers, (11, 13))
    assert s.dtype == np.int32 and s.shape == (8, 11, 13)
    assert np.array_equal(s, hyper_scale_decode(z, layers, (11, 13)))


def test_scale_indices():
    s = np.array([0, 63, 64, 447, 448, 8063, 100000], np.int32).reshape(1, 1, -1)
    assert rd.scale_indices(s, [0], 4).ravel().tolist() == [255, 255, 255, 255, 4, 63, 63]
    assert rd.scale_indices(s, [-512], 4).ravel().tolist() == [255] * 5 + [59, 63]


def test_phases_round_trip():
    x = np.arange(2 * 6 * 8).reshape(2, 6, 8)
    parts = rd.split_phases(x)
    assert np.array_equal(parts[1], x[:, 1::2, 1::2])
    assert np.array_equal(rd.merge_phases(parts), x)


def test_colour_grey_round_trip():
    rgb = np.full((8, 10, 3), 77, np.uint8)
    y, uv = rd.rgb_to_yuv420(rgb)
    assert y.shape == (8, 10) and uv.shape == (2, 4, 5)
    assert np.allclose(uv, 128.0, atol=1e-4)
    assert np.array_equal(rd.yuv420_to_rgb(y, uv), rgb)


# ----------------------------------------------------------------------------------------------
# The exported model
# ----------------------------------------------------------------------------------------------
@needs_model
def test_model_blob_contents():
    b = rd.read_blob((MODELS[0] / "model.bin").read_bytes())
    cl, cc = (int(v) for v in b["meta.channels"])
    skip, zoff, zsym, rates = (int(v) for v in b["meta.consts"][:4])
    assert (skip, zoff, zsym) == (4, 31, 63)
    for comp, c in (("luma", cl), ("chroma", cc)):
        assert b[f"hsd.{comp}.conv1.weight"].shape == (c, c, 1, 1) and b[f"hsd.{comp}.conv1.weight"].dtype == np.int8
        assert b[f"hsd.{comp}.conv2.weight"].shape == (c, c, 3, 3)
        assert b[f"hsd.{comp}.conv3.weight"].shape == (16 * c, c, 1, 1)
        assert b[f"hsd.{comp}.conv3.bias"].dtype == np.int32 and b[f"hsd.{comp}.conv3.shift"].dtype == np.int8
        cdf = b[f"zcdf.{comp}"].astype(np.int64)
        assert cdf.shape == (c, zsym + 1) and (cdf[:, 0] == 0).all() and (cdf[:, -1] == 4096).all()
        assert (np.diff(cdf, axis=1) >= 1).all()
        assert b[f"gain.{comp}.q7"].shape == (rates, c) == b[f"gain.{comp}.f32"].shape
        log_step = np.log(60.0 / 0.11) / 63
        assert np.allclose(b[f"gain.{comp}.f32"], np.exp(b[f"gain.{comp}.q7"] * log_step / 128), rtol=1e-6)


@needs_model
def test_model_hsd_equals_oracle():
    b = rd.read_blob((MODELS[0] / "model.bin").read_bytes())
    rng = np.random.default_rng(2)
    for comp in ("luma", "chroma"):
        layers = [(b[f"hsd.{comp}.conv{i}.weight"], b[f"hsd.{comp}.conv{i}.bias"], b[f"hsd.{comp}.conv{i}.shift"])
                  for i in (1, 2, 3)]
        c = layers[0][0].shape[0]
        z = rng.integers(-6, 7, (c, 2, 3))
        assert np.array_equal(rd.hsd_forward(z, layers, (7, 10)), hyper_scale_decode(z, layers, (7, 10)))


@needs_model
@pytest.mark.parametrize("image_hw", [(48, 64), (40, 56)])
def test_decode_synthetic_latent(model, image_hw):
    rng = np.random.default_rng(4)
    hl, wl = rd.latent_size(image_hw)
    z = {c: rng.integers(-2, 3, (model.channels[c], -(-hl // 4), -(-wl // 4))).astype(np.int16) for c in rd.COMPONENTS}
    res = {c: rng.integers(-3, 4, (model.channels[c], hl, wl)).astype(np.int16) for c in rd.COMPONENTS}
    out = rd.decode_latents(model, z, res, rate=1, image_hw=image_hw)
    assert out["rgb"].shape == (*image_hw, 3) and out["rgb"].dtype == np.uint8
    assert out["Y"].shape == image_hw and out["UV"].shape == (2, image_hw[0] // 2, image_hw[1] // 2)
    for c in rd.COMPONENTS:
        assert out["y_hat"][c].shape == (model.channels[c], hl, wl) and np.isfinite(out["y_hat"][c]).all()
    # residuals at skipped positions are ignored: decoding with them zeroed gives the same picture
    res0 = {c: np.where(out["idx"][c] == rd.SKIP_INDEX, 0, res[c]).astype(np.int16) for c in rd.COMPONENTS}
    out0 = rd.decode_latents(model, z, res0, rate=1, image_hw=image_hw)
    assert np.array_equal(out0["rgb"], out["rgb"])


@needs_model
def test_bitstream_round_trip(model):
    pytest.importorskip("jpegai_fast._core")
    rng = np.random.default_rng(5)
    rgb = np.clip(rng.normal(128, 40, (1, 1, 3)) + rng.normal(0, 20, (32, 48, 3)), 0, 255).astype(np.uint8)
    data, enc = rd.encode_bitstream(model, rgb, rate=2)
    dec = rd.decode_bitstream(model, data)
    for c in rd.COMPONENTS:
        assert np.array_equal(dec["z_hat"][c], enc["z_hat"][c])
        assert np.array_equal(dec["residual"][c], enc["residual"][c])
        assert np.array_equal(dec["idx"][c], enc["idx"][c])
        assert np.array_equal(dec["y_hat"][c], enc["y_hat"][c])
    assert dec["rgb"].shape == rgb.shape


# ----------------------------------------------------------------------------------------------
# BD-rate
# ----------------------------------------------------------------------------------------------
def test_bd_rate_known_shift():
    pytest.importorskip("scipy")
    from training.bd_rate import bd_quality, bd_rate

    r, q = [0.1, 0.2, 0.4, 0.8, 1.6], [27.0, 30.5, 33.0, 36.2, 39.0]
    assert bd_rate(r, q, [0.75 * x for x in r], q) == pytest.approx(-25.0, abs=1e-9)
    assert bd_rate(r, q, [1.1 * x for x in r], q) == pytest.approx(10.0, abs=1e-9)
    assert bd_rate(r, q, r, q) == pytest.approx(0.0, abs=1e-12)
    assert bd_rate(r[::-1], q[::-1], r, q) == pytest.approx(0.0, abs=1e-12)  # order does not matter
    assert np.isnan(bd_rate(r, q, r, [x + 20 for x in q]))  # no overlap
    assert bd_quality(r, q, r, [x + 0.5 for x in q]) == pytest.approx(0.5, abs=1e-9)
