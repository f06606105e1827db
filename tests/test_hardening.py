"""Hardening (issue 15, items 2-5): limits on every entry point, header fields honoured or refused, no silent
quality loss on tiny pictures or tiny tiles, OSError from the Pillow plugin."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import container
from shipped_model import requires_model

pytestmark = requires_model


def _stream_with(photo, **fields):
    """A valid stream of `photo` with header fields replaced (the CRCs are recomputed by the writer)."""
    h, segs = container.parse(jpegai_fast.encode(photo, rate_point=2))
    for k, v in fields.items():
        setattr(h, k, v)
    return container.write(h, segs)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.coffee()[100:164, 200:296])


def test_hostile_size_is_refused_by_default_fast(photo):
    stream = _stream_with(photo, width=16384, height=16384)  # 268 MP claimed by a tiny valid stream
    t0 = time.perf_counter()
    with pytest.raises(jpegai_fast.LimitError):
        jpegai_fast.decode(stream)
    assert time.perf_counter() - t0 < 0.1
    with pytest.raises(jpegai_fast.LimitError):
        jpegai_fast.Decoder().decode(stream)
    with pytest.raises(jpegai_fast.LimitError):  # a lower limit through the module-level function
        jpegai_fast.decode(jpegai_fast.encode(photo, rate_point=1), max_pixels=64 * 64)


def test_pillow_honours_its_limit_and_raises_oserror(photo, monkeypatch):
    stream = jpegai_fast.encode(photo, rate_point=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # bomb-error threshold 2000 < 64 x 96
    with pytest.raises(OSError) as info:
        Image.open(io.BytesIO(stream)).load()
    assert isinstance(info.value, jpegai_fast.ImageFileError) and info.value.field
    monkeypatch.undo()
    damaged = bytearray(stream)
    damaged[len(damaged) // 2] ^= 0x10
    with pytest.raises(OSError) as info:  # a damaged payload: still an OSError with the field at fault
        Image.open(io.BytesIO(bytes(damaged))).load()
    assert isinstance(info.value, jpegai_fast.ImageFileError)
    assert isinstance(info.value.__cause__, jpegai_fast.BitstreamError) and info.value.field


def test_model_id_of_another_model_is_refused(photo):
    stream = _stream_with(photo, model_id=200)
    with pytest.raises(jpegai_fast.BitstreamError, match="model 200") as info:
        jpegai_fast.decode(stream)
    assert info.value.field == "model_id"


def test_colour_transform_0_gives_planes_not_rgb(photo):
    stream = _stream_with(photo, colour_transform=0)
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        jpegai_fast.decode(stream)
    assert info.value.field == "colour_transform"
    planes = jpegai_fast.decode(stream, output="yuv")
    assert planes["Y"].shape == photo.shape[:2]


def test_tiny_tiles_are_refused_or_raised(photo):
    with pytest.raises(ValueError, match="tile_size"):
        jpegai_fast.encode(photo, rate_point=2, tile_size=16)
    # a stream asking for 16-sample tiles without overlap decodes as with a sound tiling
    good = jpegai_fast.decode(jpegai_fast.encode(photo, rate_point=2))
    hostile = jpegai_fast.decode(_stream_with(photo, tile_size=16, tile_overlap=0))
    assert np.abs(hostile.astype(int) - good.astype(int)).max() <= 1


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.mark.parametrize("hw", [(1, 64), (64, 1), (8, 8), (5, 120)])
def test_tiny_pictures_are_not_garbage(hw):
    """A side below one latent sample is edge-extended before the analysis: a 1x64 strip at rate point 7 was
    11.7 dB.  (Matching the same pixels inside a larger picture within 1 dB needs a coded-size field in the
    header, which the format does not have yet: not asserted.)"""
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()
    crop = np.ascontiguousarray(img[200:200 + hw[0], 150:150 + hw[1]])
    got = jpegai_fast.decode(jpegai_fast.encode(crop, rate_point=7))
    assert got.shape == crop.shape and _psnr(crop, got) > 25.0


def test_decoder_and_encoder_pickle(photo):
    import pickle

    dec = jpegai_fast.Decoder(threads=1, operating_point="sop", max_pixels=1 << 20)
    enc = jpegai_fast.Encoder(threads=1)
    stream = enc.encode(photo, rate_point=3)
    want = dec.decode(stream)
    dec2, enc2 = pickle.loads(pickle.dumps(dec)), pickle.loads(pickle.dumps(enc))
    assert dec2.operating_point == "sop" and dec2.max_pixels == 1 << 20 and dec2.threads == 1
    assert enc2.encode(photo, rate_point=3) == stream
    np.testing.assert_array_equal(dec2.decode(stream), want)


def test_cli_version_and_unknown_command(capsys):
    from jpegai_fast.__main__ import main

    assert main(["--version"]) == 0 and "jpegai-fast 0.1.0" in capsys.readouterr().out
    assert main(["bogus"]) == 2 and "unknown command 'bogus'" in capsys.readouterr().err
    f = jpegai_fast.features()
    assert f["default_model"] in f["models"] and f["simd"] and f["hardware_threads"] >= 1
