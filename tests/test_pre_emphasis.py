"""Pre-emphasis of the high-rate analysis (jpegai_fast.encoder.pre_emphasise, card key analysis_hi_pre_emphasis):
the card's value is read and checked, the low rate points' streams do not change, the stream is the reference
encoder's for the emphasised planes, and on a photo it gives a better picture for fewer bits."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from shipped_model import ROOT, requires_model

pytestmark = requires_model
pytest.importorskip("onnxruntime")
VM33 = ROOT / "src" / "jpegai_fast" / "models" / "vm33"


@pytest.fixture(scope="module")
def card():
    return json.loads((VM33 / "model_card.json").read_text())


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.chelsea()[:300, :450])  # a real photo, 300 x 450


def test_the_shipped_card_turns_it_on(card):
    from jpegai_fast import Encoder

    assert 0 < card["analysis_hi_pre_emphasis"] < 1 and card["analysis_hi_from"] is not None
    enc = Encoder(VM33, threads=1)
    assert enc.pre_emphasis == card["analysis_hi_pre_emphasis"]
    assert Encoder(VM33, threads=1, pre_emphasis=0).pre_emphasis == 0.0
    again = pickle.loads(pickle.dumps(Encoder(VM33, threads=1, pre_emphasis=0.2)))
    assert again.pre_emphasis == 0.2


@pytest.mark.parametrize("bad", [1.5, -0.1, True, "0.3"])
def test_the_encoder_argument_is_checked(bad):
    from jpegai_fast import Encoder

    with pytest.raises(ValueError, match="pre_emphasis"):
        Encoder(VM33, threads=1, pre_emphasis=bad)


@pytest.mark.parametrize("value,hi_from", [(1.5, "keep"), (True, "keep"), ("0.3", "keep"), (0.3, None)])
def test_a_card_value_it_cannot_use_is_refused(card, tmp_path, value, hi_from):
    from jpegai_fast.model import Model

    d = tmp_path / "vm33_bad"
    shutil.copytree(VM33, d)
    bad = dict(card, analysis_hi_pre_emphasis=value)
    if hi_from is None:
        bad["analysis_hi_from"] = None
    (d / "model_card.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="analysis_hi_pre_emphasis"):
        Model(d)


def test_low_rate_points_are_analysed_once(card, photo):
    from jpegai_fast import Encoder

    below = card["analysis_hi_from"] - 1
    on, off = Encoder(VM33, threads=1), Encoder(VM33, threads=1, pre_emphasis=0)
    assert on.encode(photo, rate_point=below) == off.encode(photo, rate_point=below)


def test_the_stream_is_the_reference_encoders_for_the_emphasised_planes(card, photo):
    from jpegai_fast import Encoder, colour, encoder
    from training import reference_decoder as rd

    enc = Encoder(VM33, threads=1)
    m, rate = enc.model, card["analysis_hi_from"] + 2
    pic = photo[:128, :192]
    y, uv = colour.rgb_to_yuv420(pic)
    lat = encoder._analyse(m, y, uv, m.latent_size("luma", pic.shape[:2]), rate=rate)
    planes = encoder.pre_emphasise(m, y, uv, lat, enc.pre_emphasis)
    # the emphasised planes differ from the picture's by beta times what the first pass missed
    assert 0.5 < float(np.abs(planes[0] - y).mean()) < 10
    want, _ = rd.encode_bitstream(rd.Model(VM33), pic, rate, "bop", planes=planes)
    assert enc.encode(pic, rate_point=rate) == want
    assert want != rd.encode_bitstream(rd.Model(VM33), pic, rate, "bop")[0]


def test_a_better_picture_for_fewer_bits_on_a_photo(card, photo):
    """Measured when it shipped (chelsea, rate point 11): -1.2 % bpp, +0.31 dB PSNR-YUV, +0.5 dB MS-SSIM."""
    import jpegai_fast
    from jpegai_fast import Encoder, metrics

    top = len(card["kodak_rd"]["points"]) - 1
    got = {}
    for beta in (0.0, None):
        data = Encoder(VM33, threads=1, pre_emphasis=beta).encode(photo, rate_point=top)
        got[beta] = metrics.rd_metrics(photo, jpegai_fast.decode(data), len(data))
    assert got[None]["bpp"] <= got[0.0]["bpp"] * 1.005
    assert got[None]["psnr_yuv"] >= got[0.0]["psnr_yuv"] + 0.1
    assert got[None]["msssim_db"] >= got[0.0]["msssim_db"]


def test_cli_turns_it_off(tmp_path, photo):
    """`jpegai-fast encode --no-pre-emphasis`: the one-pass stream of the same picture and rate (--bpp 0.4 picks
    vm33, whose rate control ends above its high-rate switch)."""
    from PIL import Image

    import jpegai_fast
    from jpegai_fast import __main__ as cli
    from jpegai_fast.model import model_for_bpp

    if model_for_bpp(0.4, "bop") != "vm33":
        pytest.skip("--bpp 0.4 does not pick vm33")
    Image.fromarray(photo).save(tmp_path / "cat.png")
    streams = {}
    for flag in ([], ["--no-pre-emphasis"]):
        out = tmp_path / f"cat{len(flag)}.jai"
        assert cli.main(["encode", str(tmp_path / "cat.png"), str(out), "--bpp", "0.4", *flag]) == 0
        streams[bool(flag)] = out.read_bytes()
        assert jpegai_fast.decode(streams[bool(flag)]).shape == photo.shape
    one_pass = jpegai_fast.Encoder("vm33", pre_emphasis=0).encode(photo, bpp=0.4)
    assert streams[True] == one_pass and streams[False] != one_pass
