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


@pytest.mark.parametrize("hw", [(1, 64), (64, 1), (3, 3), (8, 8), (5, 120), (12, 40), (30, 30), (70, 50)])
def test_small_pictures_code_like_the_same_pixels_inside_a_photo(hw):
    """A side of a few pixels lies wholly on the codec's border: coded as is, a 1x64 strip at rate point 7 was
    11.7 dB (30.1 with edge extension), ~41 dB inside the photo.  Now coded reflected into a larger picture and
    cropped by the display window (DWS): within 1 dB of the same pixels inside the whole photo."""
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()
    inside = _inside_photo(7)
    for top, left in ((200, 150), (350, 50)):
        crop = np.ascontiguousarray(img[top:top + hw[0], left:left + hw[1]])
        data = jpegai_fast.encode(crop, rate_point=7)
        got = jpegai_fast.decode(data)
        assert got.shape == crop.shape
        assert _psnr(crop, got) > _psnr(crop, inside[top:top + hw[0], left:left + hw[1]]) - 1.0, (top, left)
        info = jpegai_fast.Decoder().info(data)
        assert (info["width"], info["height"]) == (hw[1], hw[0]) and info["coded_width"] > hw[1]
        assert info["bpp"] == 8 * len(data) / (hw[0] * hw[1])


_INSIDE: dict = {}


def _inside_photo(rate_point):
    if rate_point not in _INSIDE:
        img = pytest.importorskip("skimage.data").astronaut()
        _INSIDE[rate_point] = jpegai_fast.decode(jpegai_fast.encode(img, rate_point=rate_point))
    return _INSIDE[rate_point]


def test_display_window_is_honoured_and_checked(photo):
    """DWS: the decoder crops to the window, Pillow reports its size, and a window outside the coded picture,
    a truncated or an over-long DWS payload is a BitstreamError (the writer refuses such a window)."""
    from PIL import Image

    from jpegai_fast import _core, container

    data = jpegai_fast.encode(photo, rate_point=2)
    header, segs = container.parse(data)
    full = jpegai_fast.decode(data)
    w, h = header.width - 5, header.height - 3
    windowed = container.write(header, {**segs, "DWS": _core.write_display_window(header, w, h)})
    np.testing.assert_array_equal(jpegai_fast.decode(windowed), full[:h, :w])
    planes = jpegai_fast.decode(windowed, output="yuv")
    assert planes["Y"].shape == (h, w) and planes["UV"].shape == (2, -(-h // 2), -(-w // 2))
    assert Image.open(io.BytesIO(windowed)).size == (w, h)
    with pytest.raises(ValueError, match="DWS"):
        _core.write_display_window(header, header.width + 1, h)
    good = _core.write_display_window(header, w, h)
    big = container.PictureHeader()
    big.width, big.height = header.width + 1, header.height
    for payload in (_core.write_display_window(big, header.width + 1, h), good[:1], good + b"\x00", b""):
        hostile = _stream_with_segment(data, 0xFF8E, payload)
        with pytest.raises(jpegai_fast.BitstreamError) as e:
            jpegai_fast.decode(hostile)
        assert e.value.field == "DWS"


def _stream_with_segment(data, marker, payload):
    """Append a raw segment (CRC computed) before EOC, bypassing the writer's checks."""
    import zlib

    seg = marker.to_bytes(2, "big") + _ue_bytes(len(payload)) + payload
    return data[:-2] + seg + zlib.crc32(seg).to_bytes(4, "big") + data[-2:]


def _ue_bytes(v):
    bits = bin(v + 1)[2:]
    s = "0" * (len(bits) - 1) + bits
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big")


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
