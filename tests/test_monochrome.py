"""Monochrome (4:0:0) coding: grey input -> chroma_format 0, luma only; decoded R = G = B (docs/bitstream.md §2.1)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import __main__ as cli
from jpegai_fast import container, images
from shipped_model import requires_model
from streamutil import PIH, codestream, pih_payload, segment, walk_codestream

pytestmark = requires_model
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def grey():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.camera()[100:180, 180:276])  # 80 x 96, uint8


@pytest.fixture(scope="module")
def mono_stream(grey):
    return jpegai_fast.encode(grey, rate_point=3)


def _psnr(a, b) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _equal_channels(rgb):
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _with_header(data: bytes, **pih) -> bytes:
    """``data`` with its PIH replaced by one written field by field (streamutil), the other segments kept."""
    h, _ = container.parse(data)
    fields = dict(width=h.width, height=h.height, chroma_format=h.chroma_format, colour_transform=h.colour_transform,
                  model_id=h.model_id, operating_point=h.operating_point, rate_point=h.rate_point,
                  gain_luma=h.gain_log_luma, gain_chroma=h.gain_log_chroma, latent_luma=h.latent_channels_luma,
                  latent_chroma=h.latent_channels_chroma, coded_luma=h.coded_channels_luma,
                  coded_chroma=h.coded_channels_chroma, tile16=h.tile_size // 16, overlap16=h.tile_overlap // 16)
    fields.update(pih)
    segs = [segment(s["marker"], s["payload"]) for s in walk_codestream(data) if s["marker"] != PIH]
    return codestream(segs, pih=pih_payload(**fields))


def test_grey_in_equal_channels_out(grey, mono_stream):
    h, segs = container.parse(mono_stream)
    assert h.chroma_format == 0 and h.coded_channels_chroma == 0 and h.gain_log_chroma == 0
    assert sorted(segs) == ["SORP", "SOZ"]  # no chroma residual
    rgb = jpegai_fast.decode(mono_stream)
    assert rgb.shape == (*grey.shape, 3) and rgb.dtype == np.uint8 and _equal_channels(rgb)
    assert _psnr(rgb[..., 0], grey) > 24
    yuv = jpegai_fast.decode(mono_stream, output="yuv")
    assert yuv["UV"].shape == (2, 40, 48) and (yuv["UV"] == 128).all()
    np.testing.assert_array_equal(rgb[..., 0], np.rint(yuv["Y"]).astype(np.uint8))
    # (H, W, 1) is grey too; SOP synthesis and odd sizes stay grey
    assert jpegai_fast.encode(grey[..., None], rate_point=3) == mono_stream
    assert _equal_channels(jpegai_fast.decode(mono_stream, operating_point="sop"))
    odd = jpegai_fast.decode(jpegai_fast.encode(np.ascontiguousarray(grey[:7, :13]), rate_point=1))
    assert odd.shape == (7, 13, 3) and _equal_channels(odd)


def test_mono_is_smaller_than_the_same_picture_as_rgb(grey, mono_stream):
    as_rgb = jpegai_fast.encode(np.repeat(grey[..., None], 3, axis=2), rate_point=3)
    assert container.parse(as_rgb)[0].chroma_format == 1
    assert len(mono_stream) < len(as_rgb)
    # what is saved is chroma: the chroma part of z and the SORS segment
    _, m = container.parse(mono_stream)
    _, c = container.parse(as_rgb)
    assert len(as_rgb) - len(mono_stream) >= len(c["SORS"]) + (len(c["SOZ"]) - len(m["SOZ"]))
    rgb = jpegai_fast.decode(as_rgb)
    assert _psnr(jpegai_fast.decode(mono_stream)[..., 0], grey) > _psnr(rgb.mean(axis=2), grey) - 0.2


def test_tiled_mono(grey):
    data = jpegai_fast.encode(grey, rate_point=2, tile_size=64)
    assert container.parse(data)[0].tile_size == 64
    tiled = jpegai_fast.decode(data)
    assert _equal_channels(tiled)
    assert np.abs(tiled.astype(int) - jpegai_fast.decode(data, tile_size=0)).max() <= 2


def test_decode_latents_of_mono_has_luma_only(mono_stream):
    lat = jpegai_fast.Decoder().decode_latents(mono_stream)
    assert lat["header"]["chroma_format"] == 0
    for key in ("y_hat", "sigma", "index", "z", "residual", "gain", "latent_hw", "z_hw"):
        assert list(lat[key]) == ["luma"], key  # type: ignore[literal-required]
    assert lat["y_hat"]["luma"].shape[1:] == lat["latent_hw"]["luma"]


def test_corrupted_mono_headers_raise(mono_stream, grey):
    dec = jpegai_fast.Decoder()
    assert _with_header(mono_stream) == mono_stream  # the rebuilding itself changes nothing
    for bad in (2, 3):
        with pytest.raises(jpegai_fast.BitstreamError) as info:
            dec.decode(_with_header(mono_stream, chroma_format=bad))
        assert info.value.field == "chroma_format"
    for fields in (dict(coded_chroma=96), dict(gain_chroma=5)):
        with pytest.raises(jpegai_fast.BitstreamError, match="chroma_format"):
            dec.decode(_with_header(mono_stream, **fields))
    # a mono stream relabelled 4:2:0 lacks SORS; a 4:2:0 stream relabelled 4:0:0 has a chroma z part and SORS
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        dec.decode(_with_header(mono_stream, chroma_format=1))
    assert info.value.field in ("SORS", "coded_channels_chroma")
    colour = jpegai_fast.encode(np.repeat(grey[..., None], 3, axis=2), rate_point=3)
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        dec.decode(_with_header(colour, chroma_format=0, coded_chroma=0))
    assert info.value.field == "SORS"
    h, segs = container.parse(colour)
    h.chroma_format, h.coded_channels_chroma, h.gain_log_chroma = 0, 0, 0
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        dec.decode(container.write(h, {"SOZ": segs["SOZ"], "SORP": segs["SORP"]}))
    assert info.value.field == "SOZ"  # its chroma part is not empty


def test_pillow_grey_saves_mono_and_opens_as_L(grey):
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JAI", rate_point=3)
    assert container.parse(buf.getvalue())[0].chroma_format == 0
    buf.seek(0)
    with Image.open(buf) as im:
        assert im.mode == "L" and im.size == (96, 80)
        np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(buf.getvalue())[..., 0])
    rgb = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(rgb, format="JAI", rate_point=3)  # explicit RGB: coded as colour
    assert container.parse(rgb.getvalue())[0].chroma_format == 1
    rgb.seek(0)
    with Image.open(rgb) as im:
        assert im.mode == "RGB"


def test_grey_modes_give_2d_arrays(grey):
    for mode in ("1", "L", "I;16", "I", "F"):
        im = Image.fromarray(grey).convert(mode) if mode not in ("I;16",) else Image.fromarray(
            grey.astype(np.uint16) * 257)
        assert images.is_grey(im), mode
        a = images.to_array(im)
        assert a.shape == grey.shape and a.dtype == np.uint8, mode
        np.testing.assert_array_equal(images.to_rgb8(im), np.repeat(a[..., None], 3, axis=2))
    np.testing.assert_array_equal(images.to_array(Image.fromarray(grey.astype(np.uint16) * 257)), grey)  # v >> 8
    la = Image.fromarray(grey).convert("LA")
    with pytest.raises(ValueError, match="alpha"):
        images.to_array(la)
    assert images.to_array(la, alpha="drop").shape == grey.shape
    assert images.to_array(Image.fromarray(grey).convert("P")).shape == (*grey.shape, 3)  # palette: colour
    assert images.to_array(Image.fromarray(grey).convert("RGB")).shape == (*grey.shape, 3)


def test_16_bit_grey_png_round_trip(tmp_path, grey):
    src16 = grey.astype(np.uint16) * 257 + np.arange(grey.shape[1], dtype=np.uint16)[None, :]  # uses all 16 bits
    png = tmp_path / "g16.png"
    Image.fromarray(src16).save(png)
    with Image.open(png) as im:
        assert im.mode in ("I;16", "I")
    assert cli.main(["encode", str(png), str(tmp_path / "g.jai"), "--rate-point", "5"]) == 0
    assert container.parse((tmp_path / "g.jai").read_bytes())[0].chroma_format == 0
    assert cli.main(["decode", str(tmp_path / "g.jai"), str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"  # a monochrome stream is written as a grey picture
        out = np.asarray(im)
    assert abs(out.mean() - src16.mean() / 257) < 4
