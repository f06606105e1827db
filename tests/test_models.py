"""Every shipped model end to end, and the two together: a stream names its model (header model_id), the
module-level decode() picks the shipped model by that id, a Decoder bound to another model refuses it."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import model as model_mod
from shipped_model import MODELS, psnr

pytestmark = pytest.mark.skipif(not MODELS, reason="no exported model")
NAMES = [m.name for m in MODELS]


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[60:260, 100:390])  # 200 x 290: not multiples of 16 / 32


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_of_each_model(photo, name):
    enc = jpegai_fast.Encoder(model=name, threads=1)
    dec = jpegai_fast.Decoder(model=name, threads=1)
    lm = model_mod.latent_model(model_mod.MODELS_DIR / name)
    sizes, quality = [], []
    for r in (0, min(3, lm.rate_points - 1)):
        stream = enc.encode(photo, rate_point=r)
        out = dec.decode(stream)
        assert out.shape == photo.shape
        sizes.append(len(stream))
        quality.append(psnr(out, photo))
        # the module-level decode finds the model from the stream's id
        np.testing.assert_array_equal(jpegai_fast.decode(stream, threads=1), out)
    assert sizes[1] > sizes[0] and quality[1] > quality[0] > 22.0, (sizes, quality)


@pytest.mark.parametrize("name", NAMES)
def test_tiled_decode_matches_untiled(photo, name):
    stream = jpegai_fast.Encoder(model=name, threads=1).encode(photo, rate_point=2)
    whole = jpegai_fast.Decoder(model=name, threads=1, tile_size=0).decode(stream)
    tiled = jpegai_fast.Decoder(model=name, threads=1, tile_size=128, tile_overlap=64).decode(stream)
    assert np.array_equal(tiled, whole) or psnr(tiled, whole) > 45.0


@pytest.mark.skipif(len(MODELS) < 2, reason="one model shipped")
def test_a_decoder_of_another_model_refuses_the_stream(photo):
    a, b = NAMES[:2]
    stream = jpegai_fast.Encoder(model=b, threads=1).encode(photo, rate_point=1)
    with pytest.raises(jpegai_fast.BitstreamError, match="model") as info:
        jpegai_fast.Decoder(model=a, threads=1).decode(stream)
    assert info.value.field == "model_id"
    ids = {model_mod.latent_model(m).model_id for m in MODELS}
    assert len(ids) == len(MODELS)  # every shipped model has its own id


@pytest.mark.parametrize("name", NAMES)
def test_model_card_is_complete(name):
    card = json.loads((model_mod.MODELS_DIR / name / "model_card.json").read_text())
    assert card["parameters_torch"]["total"] > 0 and card["kodak_rd"] and card["kodak_rd"]["points"]
    if name.startswith("vm33"):
        assert "CC BY 4.0" in card["attribution"] and "JPEG AI" in card["attribution"]


SHIPPED_MODELS_MAX_BYTES = 40_000_000  # issue 11: the shipped model directories, all together, stay within 40 MB


def test_shipped_model_directories_fit_the_size_budget():
    sizes = {m.name: sum(f.stat().st_size for f in m.rglob("*") if f.is_file()) for m in MODELS}
    assert sum(sizes.values()) <= SHIPPED_MODELS_MAX_BYTES, sizes


@pytest.mark.skipif(not {"vm33", "vr_bop"} <= set(NAMES), reason="needs both shipped models")
def test_bpp_targets_go_to_the_model_measured_best_there(photo):
    """encode(bpp=...) with the default model picks by the model cards' Kodak curves: vm33 below ~0.3 bpp (it is
    1.3 dB better at 0.11 bpp), vr_bop above (vm33 saturates near 31 dB)."""
    assert model_mod.model_for_bpp(0.1) == "vm33" and model_mod.model_for_bpp(1.0) == "vr_bop"
    # just below every range (VVC QP47's 0.035 bpp): the curves extended a little in log bpp, vm33's is higher
    assert model_mod.model_for_bpp(0.035) == "vm33"
    # SOP by the cards' SOP curves (kodak_rd_sop): vm33's SOP is ~1 dB above vr_bop's at 0.1 bpp
    assert model_mod.model_for_bpp(0.1, "sop") == "vm33" and model_mod.model_for_bpp(1.0, "sop") == "vr_bop"
    for target, name in ((0.12, "vm33"), (1.0, "vr_bop")):
        stream = jpegai_fast.encode(photo, bpp=target, threads=1)
        h, _ = jpegai_fast.container.parse(stream)
        assert h.model_id == model_mod.latent_model(model_mod.MODELS_DIR / name).model_id
        assert 8 * len(stream) / (photo.shape[0] * photo.shape[1]) <= target
        assert jpegai_fast.decode(stream, threads=1).shape == photo.shape


@pytest.mark.skipif(len(MODELS) < 2, reason="one model shipped")
def test_a_default_decoder_follows_the_stream_model(photo):
    """Decoder() (model="default") decodes every shipped model's streams; the architecture rule of one call per
    decode holds again once it is bound to the stream's model."""
    dec = jpegai_fast.Decoder(threads=1)
    for name in NAMES:
        stream = jpegai_fast.Encoder(model=name, threads=1).encode(photo, rate_point=1)
        want = jpegai_fast.Decoder(model=name, threads=1).decode(stream)
        np.testing.assert_array_equal(dec.decode(stream), want)
        assert dec.model.name == name


def test_quality_on_a_card_curve_is_interpolated_inside_and_extended_only_a_little_below():
    pts = ((0.1, 30.0), (0.2, 32.0), (0.4, 33.0))
    assert model_mod._quality_at(pts, 0.2) == 32.0
    assert abs(model_mod._quality_at(pts, 0.3) - (32.0 + np.log(1.5) / np.log(2.0))) < 1e-9
    assert abs(model_mod._quality_at(pts, 0.05) - 28.0) < 1e-9  # one halving below: 2 dB per halving
    assert model_mod._quality_at(pts, 0.049) is None and model_mod._quality_at(pts, 0.41) is None
