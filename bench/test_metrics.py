"""Checks of the bench's metrics, colour conversion and BD-rate (plain pytest, no benchmark):

    python -m pytest bench/test_metrics.py -q
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench import codecs as C
from bench import metrics as M
from bench.colour import rgb_to_yuv420p10, yuv420p10_to_rgb

A_R, A_Q = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6], [27.0, 29.5, 32.0, 34.8, 37.9, 41.0]


def test_bd_rate_identity_and_scaling():
    assert abs(M.bd_rate(A_R, A_Q, A_R, A_Q)) < 1e-9
    assert M.bd_rate(A_R, A_Q, [0.8 * r for r in A_R], A_Q) == pytest.approx(-20.0, abs=1e-6)
    assert M.bd_rate(A_R, A_Q, [1.25 * r for r in A_R], A_Q) == pytest.approx(25.0, abs=1e-6)
    assert math.isnan(M.bd_rate(A_R, A_Q, A_R, [q + 100 for q in A_Q]))  # no overlap


def test_bd_rate_matches_training_implementation():
    from training.bd_rate import bd_rate as train_bd

    rng = np.random.default_rng(0)
    for _ in range(20):
        tr = sorted(rng.uniform(0.03, 2.0, size=8))
        tq = sorted(rng.uniform(26.0, 42.0, size=8))
        assert M.bd_rate(A_R, A_Q, tr, tq) == pytest.approx(train_bd(A_R, A_Q, tr, tq), abs=1e-6)


def test_psnr_and_msssim_identity():
    rgb = np.random.default_rng(1).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    q = M.quality(rgb, rgb)
    assert math.isinf(q["psnr_yuv"]) and q["msssim_y"] == pytest.approx(1.0)


def test_colour_round_trip_is_close():
    rgb = C.load_rgb(C.kodak_images()[0]) if C.kodak_images() else None
    if rgb is None:
        pytest.skip("no Kodak images")
    out = yuv420p10_to_rgb(*rgb_to_yuv420p10(rgb))
    q = M.quality(rgb, out, with_msssim=False)
    assert q["psnr_y"] > 55.0 and q["psnr_yuv"] > 45.0


@pytest.mark.parametrize("image,qp", [("kodim01", 32), ("kodim04", 22), ("kodim23", 47)])
def test_vvc_anchor_metrics_reproduced(image, qp):
    vvc = C.CODECS["vvc"]
    if vvc.available():
        pytest.skip(vvc.available())
    from bench import streams as S

    row = S.anchor_csv()[(image, qp)]
    q = M.quality(C.load_rgb(image), vvc.decode(C.vvc_anchor_stream(image, qp)))
    assert q["psnr_yuv"] == pytest.approx(row["psnr_yuv"], abs=1e-4)
    assert q["psnr_y"] == pytest.approx(row["psnr_y"], abs=1e-4)
    assert q["msssim_y"] == pytest.approx(row["msssim_y"], abs=1e-6)
    assert q["msssim_db"] == pytest.approx(row["msssim_db"], abs=1e-4)


def test_memory_picture_is_mirror_tiled_to_size():
    from bench.memory import SIZES, make_picture

    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pic = make_picture(photo, 23, 11)
    assert pic.shape == (11, 23, 3) and pic.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(pic[:5, :7], photo)
    np.testing.assert_array_equal(pic[:5, 7:14], photo[:, ::-1])  # left-right mirror: no seam
    np.testing.assert_array_equal(pic[5:10, :7], photo[::-1])  # up-down mirror
    assert [round(w * h / 1e6, 1) for w, h in SIZES.values()] == [0.4, 3.1, 12.6, 50.3]


def test_jpegai_matched_stream_uses_rate_control():
    jp = C.CODECS["jpegai_fast-bop"]
    assert jp.match_param(0.36123449) == ("bpp", 0.361234)
    assert C.CODECS["hevc"].match_param(0.3) is None
    assert jp.cache_name == C.CODECS["jpegai_fast-sop"].cache_name  # BOP and SOP share their streams
