"""jpegai_fast.Decoder == the torch-free reference codec (training/reference_decoder.py).

Streams come from the reference encoder (and from jpegai_fast.encode for gain displacements and
substreams); the integers must be identical, the pixels equal to ONNX Runtime precision.
"""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import Decoder
from shipped_model import MODELS, psnr, requires_model  # noqa: E402

pytestmark = requires_model
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ref():
    from training import reference_decoder as rd

    return rd, rd.Model(MODELS[0])


@pytest.fixture(scope="module")
def dec():
    return Decoder(threads=2)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[100:180, 150:262])  # 80 x 112: not multiples of 16


@pytest.mark.parametrize("op", ["bop", "sop"])
@pytest.mark.parametrize("rate", [1, 4])
def test_decode_matches_reference(ref, dec, photo, op, rate):
    rd, model = ref
    stream, _ = rd.encode_bitstream(model, photo, rate, op)
    want = rd.decode_bitstream(model, stream)
    for d in (Decoder(model=dec.model, operating_point=None), Decoder(model=dec.model, operating_point=op)):
        rgb = d.decode(stream)
        assert rgb.shape == photo.shape and rgb.dtype == np.uint8
        assert abs(psnr(rgb, photo) - psnr(want["rgb"], photo)) < 0.1
        assert np.abs(rgb.astype(int) - want["rgb"]).max() <= 2
    lat = dec.decode_latents(stream)
    for comp in ("luma", "chroma"):
        np.testing.assert_array_equal(lat["z"][comp], want["z_hat"][comp])
        np.testing.assert_array_equal(lat["residual"][comp], want["residual"][comp])
        np.testing.assert_array_equal(lat["index"][comp], want["idx"][comp])
        np.testing.assert_allclose(lat["y_hat"][comp], want["y_hat"][comp], rtol=0, atol=1e-3)
        assert lat["sigma"][comp].shape == lat["y_hat"][comp].shape and (lat["sigma"][comp] > 0).all()
    assert lat["header"]["rate_point"] == rate and "synthesis" not in dec.last_timing


def test_gain_displacement_matches_reference(ref, dec, photo):
    rd, model = ref
    stream = jpegai_fast.encode(photo, model="vr_bop", quality=44.29, threads=2)  # between its rate points 2, 3
    h = dec.info(stream)
    assert h["rate_point"] == 2 and h["gain_log_luma"] != 0 and h["gain_log_chroma"] != 0
    want = rd.decode_bitstream(model, stream)
    lat = dec.decode_latents(stream)
    for comp in ("luma", "chroma"):
        np.testing.assert_array_equal(lat["residual"][comp], want["residual"][comp])
        np.testing.assert_array_equal(lat["gain"][comp], model.gain(comp, 2, h[f"gain_log_{comp}"]))
    rgb = dec.decode(stream)
    assert np.abs(rgb.astype(int) - want["rgb"]).max() <= 2


def test_threads_and_substreams_give_identical_latents(dec, photo):
    streams = [jpegai_fast.encode(photo, rate_point=3, substreams=s, threads=2) for s in (1, 4)]
    assert streams[0] != streams[1]
    outs = []
    for stream in streams:
        for threads in (1, 2):
            d = Decoder(threads=threads)
            outs.append((d.decode_latents(stream), d.decode(stream)))
    for lat, rgb in outs[1:]:
        for comp in ("luma", "chroma"):
            for key in ("z", "index", "residual"):
                np.testing.assert_array_equal(lat[key][comp], outs[0][0][key][comp])
            # equal integers through the same graphs: ORT's CPU kernels split work by output, so ŷ is
            # bit-identical for any thread count
            np.testing.assert_array_equal(lat["y_hat"][comp], outs[0][0]["y_hat"][comp])
        assert np.abs(rgb.astype(int) - outs[0][1]).max() <= 1


def test_yuv_output_and_timing(dec, photo):
    stream = jpegai_fast.encode(photo, rate_point=2)
    planes = dec.decode(stream, output="yuv")
    assert planes["Y"].shape == photo.shape[:2] and planes["UV"].shape == (2, 40, 56)
    assert planes["Y"].min() >= 0 and planes["Y"].max() <= 255
    dec.decode(stream)
    t = dec.last_timing
    assert list(t) == ["parse", "z", "hyper-scale", "residual", "hyper decoder", "context", "synthesis", "colour",
                       "other", "total"]
    assert all(v > 0 for k, v in t.items() if k != "other") and t["other"] >= 0
    # the stages tile the decode: they add up to the total (to float rounding), whatever the machine load
    assert sum(v for k, v in t.items() if k != "total") == pytest.approx(t["total"], rel=1e-9)
    sec = dec.model.latent_model.decode(stream, threads=1)["seconds"]  # the C++ call's own stage timers
    assert set(sec) == {"parse", "z", "hyper_scale", "residual", "hyper_decoder", "context"} \
        and all(v >= 0 for v in sec.values())


def test_info(dec, photo):
    stream = jpegai_fast.encode(photo, rate_point=1)
    d = dec.info(stream)
    assert (d["width"], d["height"]) == (112, 80) and d["bytes"] == len(stream)
    assert d["bpp"] == pytest.approx(8 * len(stream) / (112 * 80))
    assert set(d["segments"]) == {"SOZ", "SORP", "SORS"} and d["operating_point_name"] == "bop"


def test_damaged_streams_raise_bitstream_error(dec, photo):
    stream = jpegai_fast.encode(photo[:40, :48], rate_point=1)
    for cut in range(len(stream)):  # every byte position
        with pytest.raises(jpegai_fast.BitstreamError):
            dec.decode(stream[:cut])
    rng = np.random.default_rng(1)
    for _ in range(100):
        b = bytearray(stream)
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(jpegai_fast.BitstreamError):
            dec.decode(bytes(b))
    with pytest.raises(jpegai_fast.BitstreamError):
        dec.decode(stream + b"\0")
    with pytest.raises(jpegai_fast.LimitError):
        Decoder(model=dec.model, max_pixels=100).decode(stream)


def test_bad_arguments(dec):
    with pytest.raises(TypeError):
        dec.decode(12345)
    with pytest.raises(ValueError):
        Decoder(operating_point="hop")
    with pytest.raises(ValueError):
        dec.decode(b"", output="bgr")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            Decoder(device="cuda")
    with pytest.raises(ValueError):
        Decoder(device="tpu")
    with pytest.raises(FileNotFoundError):
        Decoder(model="no_such_model")
