"""quality 0–100 (the Pillow convention) mapped onto the trained rate points: knots from the model cards' Kodak bpp,
monotone, trained points exact, the default unchanged (rate point 4)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import encoder
from jpegai_fast.model import available_models
from shipped_model import requires_model

pytestmark = requires_model


@pytest.fixture(scope="module")
def enc():
    return jpegai_fast.Encoder(threads=2)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[100:180, 150:246])  # 80 x 96


def test_knots_of_the_shipped_models():
    tables = {name: encoder.quality_table(jpegai_fast.Model(name)) for name in available_models()}
    if "vr_bop" in tables:  # the table in the README and the docstrings
        assert tables["vr_bop"] == (0, 18, 38, 55, 68, 78, 87, 100)
    if "vm33" in tables:
        assert tables["vm33"] == (0, 12, 30, 46, 58, 65, 76, 81, 86, 91, 96, 100)
    for name, knots in tables.items():
        assert knots[0] == 0 and knots[-1] == 100 and all(a < b for a, b in zip(knots, knots[1:])), name


def test_knots_follow_log_bpp_of_the_card(tmp_path):
    points = [{"rate": r, "bpp": 0.05 * 2 ** r} for r in range(5)]  # equal steps in log bpp
    (tmp_path / "model_card.json").write_text(json.dumps({"kodak_rd": {"points": points}}))
    assert encoder._card_knots(tmp_path, 5) == (0, 25, 50, 75, 100)
    (tmp_path / "model_card.json").write_text("{}")  # no Kodak figures: linear in the rate point
    assert encoder._card_knots(tmp_path / "x", 8) == (0, 14, 29, 43, 57, 71, 86, 100)
    assert encoder._card_knots(tmp_path, 8) == (0, 14, 29, 43, 57, 71, 86, 100)
    points[2]["bpp"] = points[1]["bpp"]  # not increasing: linear too
    (tmp_path / "model_card.json").write_text(json.dumps({"kodak_rd": {"points": points}}))
    assert encoder._card_knots(tmp_path, 5) == (0, 25, 50, 75, 100)


def test_mapping_is_monotone_and_exact_at_the_knots(enc):
    m = enc.model
    knots = encoder.quality_table(m)
    scales = [encoder.quality_to_scale(m, q) for q in np.linspace(0, 100, 1001)]
    assert all(a <= b for a, b in zip(scales, scales[1:])) and scales[0] == 0 and scales[-1] == m.num_rates - 1
    for r, q in enumerate(knots):
        assert encoder.quality_to_scale(m, q) == r
        assert encoder.scale_to_params(m, encoder.quality_to_scale(m, q)) == (r, (0, 0))
    for bad in (-1, 100.01, float("nan"), float("inf"), None, "50", True):
        with pytest.raises(ValueError):
            encoder.quality_to_scale(m, bad)


def test_trained_points_default_and_sizes(enc, photo):
    knots = encoder.quality_table(enc.model)
    for r in (0, 3):
        assert enc.encode(photo, quality=knots[r]) == enc.encode(photo, rate_point=r)
    default = enc.encode(photo)
    assert default == enc.encode(photo, rate_point=encoder.DEFAULT_RATE_POINT)
    assert default == enc.encode(photo, quality=knots[encoder.DEFAULT_RATE_POINT])
    sizes = [len(enc.encode(photo, quality=q)) for q in (0, 10, 25, 50, 75, 90, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_quality_in_the_cli_and_pillow(tmp_path, photo):
    import io

    from PIL import Image

    from jpegai_fast.__main__ import main

    Image.fromarray(photo).save(tmp_path / "p.png")
    q, name, r = encoder.default_ladder("bop")[3]  # a knot of the default ladder: (quality, model, rate point)
    assert main(["encode", str(tmp_path / "p.png"), str(tmp_path / "q.jai"), "--quality", str(q)]) == 0
    assert main(["encode", str(tmp_path / "p.png"), str(tmp_path / "r.jai"), "--rate-point", "3"]) == 0
    want = jpegai_fast.encode(photo, model=name, rate_point=r)
    assert (tmp_path / "q.jai").read_bytes() == want == jpegai_fast.encode(photo, quality=q)
    assert (tmp_path / "r.jai").read_bytes() == jpegai_fast.encode(photo, rate_point=3)  # the default model's
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JAI", quality=q)
    assert buf.getvalue() == want
    assert jpegai_fast.encode_many([photo, photo], threads=2, quality=q) == [want, want]


def test_default_ladder_spans_the_shipped_models():
    for op in ("bop", "sop"):
        ladder = encoder.default_ladder(op)
        if len(available_models()) < 2:
            continue
        knots = [k for k, _, _ in ladder]
        assert knots[0] == 0 and knots[-1] == 100 and all(a < b for a, b in zip(knots, knots[1:])), op
        models = [n for _, n, _ in ladder]
        assert len(set(models)) == 2, op  # both shipped models win somewhere on their measured curves
        for q, name, r in ladder:  # a knot is that model's rate point exactly
            got_name, got_q = encoder.default_quality(q, op)
            assert got_name == name and got_q == encoder.quality_table(jpegai_fast.Model(name))[r], (op, q)
            assert encoder.quality_to_scale(jpegai_fast.Model(name), got_q) == r
        for q in np.linspace(0, 100, 201):  # in between: a shipped model at a scale inside its range
            name, mq = encoder.default_quality(float(q), op)
            assert name in models and 0.0 <= mq <= 100.0
    if set(available_models()) == {"vm33", "vr_bop"}:  # the table in the README and the docstrings
        assert encoder.default_ladder("bop") == tuple(
            [(k, "vm33", r) for r, k in enumerate((0, 9, 23, 35, 44, 49, 58, 61))]
            + [(k, "vr_bop", r) for r, k in zip(range(4, 8), (70, 79, 88, 100))])
        # the default stream (vr_bop's rate point 4) is quality 70 on the ladder
        assert encoder.default_quality(70) == ("vr_bop", encoder.quality_table(jpegai_fast.Model("vr_bop"))[4])
    for bad in (-1, 100.01, float("nan"), None, "50", True):
        with pytest.raises(ValueError):
            encoder.default_quality(bad)
    with pytest.raises(ValueError):
        encoder.default_ladder("hop")


def test_default_ladder_sizes_increase(photo):
    sizes = [len(jpegai_fast.encode(photo, quality=q)) for q in (0, 23, 49, 70, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
