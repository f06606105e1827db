"""Tiled synthesis, tiled analysis and banded colour conversion (bounded memory for large pictures).

* colour: the banded conversions are bit-identical to the whole-picture ones for any band size;
* synthesis: one tile covering the picture is the untiled decode itself; smaller tiles with the
  default overlap stay within 0.01 dB of it on a real photo (and overlap 0 visibly does not);
* header: the encoder writes the tiling it is given (default: untiled when the picture fits one tile),
  and the decoder follows the header unless told otherwise.
"""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import Decoder, colour
from jpegai_fast import decoder as decmod
from jpegai_fast import encoder as encmod
from jpegai_fast import synthesis as rec
from shipped_model import MODELS, psnr  # noqa: E402

# ----------------------------------------------------------------------------------------------- colour


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (3, 5), (37, 51), (64, 64), (130, 77), (512, 768)])
def test_banded_yuv_to_rgb_is_bit_identical(hw):
    h, w = hw
    rng = np.random.default_rng(h * 1000 + w)
    y = rng.uniform(0, 255, (h, w)).astype(np.float32)
    uv = rng.uniform(0, 255, (2, -(-h // 2), -(-w // 2))).astype(np.float32)
    y[0, 0], uv[0, 0, 0] = 127.5, 128.5  # exact halves: round half to even must agree
    want = colour.yuv420_to_rgb_reference(y, uv)
    for band in (2, 4, 6, 64, 4096):
        got = colour.yuv420_to_rgb(y, uv, band_rows=band)
        assert got.dtype == np.uint8 and got.shape == (h, w, 3)
        np.testing.assert_array_equal(got, want)


def test_banded_yuv_to_rgb_rejects_bad_arguments():
    y = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError):
        colour.yuv420_to_rgb(y, np.zeros((2, 2, 2), np.float32), band_rows=3)
    with pytest.raises(ValueError):
        colour.yuv420_to_rgb(y, np.zeros((2, 3, 2), np.float32))


def test_banded_rgb_to_yuv_is_bit_identical():
    skdata = pytest.importorskip("skimage.data")
    rgb = np.ascontiguousarray(skdata.astronaut()[:202, :306])
    y0, uv0 = colour.rgb_to_yuv420(rgb, band_rows=1 << 20)  # one band = the whole picture
    for band in (2, 8, 100):
        y, uv = colour.rgb_to_yuv420(rgb, band_rows=band)
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(uv, uv0)


# ------------------------------------------------------------------------------------------ tile grid


@pytest.mark.parametrize("n,t,o", [(1, 1, 0), (10, 4, 1), (10, 5, 3), (33, 64, 3), (64, 64, 4), (65, 64, 4)])
def test_tile_spans_partition_the_axis(n, t, o):
    spans = rec.tile_spans(n, t, o)
    cores = [i for _, _, a, b in spans for i in range(a, b)]
    assert cores == list(range(n))
    for i0, i1, a, b in spans:
        assert i0 == max(a - o, 0) and i1 == min(b + o, n) and b - a <= t


def test_synthesis_tiling_choice():
    h = {"width": 768, "height": 512, "tile_size": 0, "tile_overlap": 0}
    assert decmod.synthesis_tiling(h) == (0, 0)
    assert decmod.synthesis_tiling(h, 256) == (256, decmod.DEFAULT_TILE_OVERLAP)
    assert decmod.synthesis_tiling(h, 256, 16) == (256, 16)
    assert decmod.synthesis_tiling(h, 64) == (64, 48)  # the default overlap is kept below the tile
    # a stream's own tiling below the overlap rule is raised to it (no silent quality loss)
    assert decmod.synthesis_tiling(dict(h, tile_size=16, tile_overlap=0)) == (64, 48)
    assert decmod.synthesis_tiling(dict(h, tile_size=512, tile_overlap=0)) == (512, 48)
    big = dict(h, width=8160, height=6120)
    assert decmod.synthesis_tiling(big) == (decmod.DEFAULT_TILE_SIZE, decmod.DEFAULT_TILE_OVERLAP)
    assert decmod.synthesis_tiling(big, 0) == (0, 0)
    assert decmod.synthesis_tiling(dict(h, tile_size=512, tile_overlap=32)) == (512, 48)
    assert decmod.synthesis_tiling(dict(h, tile_size=512, tile_overlap=32), 0) == (0, 0)
    for bad in (dict(tile_size=100), dict(tile_size=-16), dict(tile_size="big"), dict(tile_size=64, tile_overlap=64),
                dict(tile_overlap=8), dict(tile_size=32), dict(tile_size=16)):
        with pytest.raises(ValueError):
            decmod._check_tiling(bad.get("tile_size", "auto"), bad.get("tile_overlap"))


def test_header_tiling_choice():
    assert encmod.header_tiling((512, 768)) == (0, 0)
    assert encmod.header_tiling((1024, 1024)) == (0, 0)
    assert encmod.header_tiling((1024, 1040)) == (decmod.DEFAULT_TILE_SIZE, decmod.DEFAULT_TILE_OVERLAP)
    assert encmod.header_tiling((100, 100), 64) == (64, 48)
    assert encmod.header_tiling((100, 100), 64, 0) == (64, 0)
    for args in ((100,), (-16,), (64, 64), (64, 8), (0, 16), (65552,), (32,), (16,)):
        with pytest.raises(ValueError):
            encmod.header_tiling((100, 100), *args)


# --------------------------------------------------------------------------------------- with a model

needs_model = pytest.mark.skipif(not MODELS, reason="no exported model under src/jpegai_fast/models/")


@pytest.fixture(scope="module")
def enc():
    pytest.importorskip("onnxruntime")
    return jpegai_fast.Encoder(threads=2)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[40:290, 60:372])  # 250 x 312: odd latent edges (16 x 20)


@needs_model
def test_one_tile_is_the_untiled_decode(enc, photo):
    data = enc.encode(photo, rate_point=2)
    assert decmod.header_dict(jpegai_fast.container.parse(data)[0])["tile_size"] == 0
    for op in ("bop", "sop"):
        untiled = Decoder(model=enc.model, operating_point=op, tile_size=0)
        want_rgb, want_yuv = untiled.decode(data), untiled.decode(data, output="yuv")
        for tile in ("auto", 320, 4096):  # auto: a small untiled stream; 320 >= both sides
            d = Decoder(model=enc.model, operating_point=op, tile_size=tile)
            np.testing.assert_array_equal(d.decode(data), want_rgb)
            got = d.decode(data, output="yuv")
            np.testing.assert_array_equal(got["Y"], want_yuv["Y"])
            np.testing.assert_array_equal(got["UV"], want_yuv["UV"])


@needs_model
@pytest.mark.parametrize("op", ["bop", "sop"])
def test_tiled_synthesis_matches_untiled(enc, photo, op):
    data = enc.encode(photo, rate_point=3)
    want = Decoder(model=enc.model, operating_point=op, tile_size=0).decode(data)
    # 64-sample tiles: 4 x 5 tiles on a 250 x 312 picture, the last row and column partial
    tiled = Decoder(model=enc.model, operating_point=op, tile_size=64)
    got = tiled.decode(data)
    assert got.shape == photo.shape
    assert abs(psnr(got, photo) - psnr(want, photo)) <= 0.01
    assert np.abs(got.astype(int) - want).max() <= 2
    yuv, want_yuv = tiled.decode(data, output="yuv"), Decoder(model=enc.model, operating_point=op,
                                                              tile_size=0).decode(data, output="yuv")
    assert yuv["UV"].shape == want_yuv["UV"].shape == (2, 125, 156)
    assert np.abs(yuv["UV"] - want_yuv["UV"]).max() < 2.0
    # no overlap: the tile borders are visible, so the test above does exercise the tiles
    seams = Decoder(model=enc.model, operating_point=op, tile_size=64, tile_overlap=0).decode(data)
    assert np.abs(seams.astype(int) - want).max() > 4


@needs_model
def test_encoder_writes_the_tiling_and_the_decoder_follows_it(enc, photo):
    data = enc.encode(photo, rate_point=3, tile_size=64)
    d = Decoder(model=enc.model, threads=2)
    info = d.info(data)
    assert (info["tile_size"], info["tile_overlap"]) == (64, decmod.DEFAULT_TILE_OVERLAP)
    assert info["synthesis_tiling"] == (64, decmod.DEFAULT_TILE_OVERLAP)
    out = d.decode(data)
    np.testing.assert_array_equal(out, Decoder(model=enc.model, tile_size=64).decode(data))
    # the tiled analysis (64-sample tiles, 64 samples of overlap) makes a stream as good as the untiled one
    untiled = enc.encode(photo, rate_point=3, tile_size=0)
    ref = Decoder(model=enc.model, tile_size=0).decode(untiled)
    assert abs(len(data) - len(untiled)) <= 0.01 * len(untiled) + 8
    assert abs(psnr(out, photo) - psnr(ref, photo)) < 0.05
    with pytest.raises(ValueError):
        enc.encode(photo, tile_size=100)
