"""Encoder-side latent refinement (jpegai_fast.refine, encode(..., refine=N)): the rate gradient against float64
math, the refined stream against the unrefined one on a real photo, the bounds and errors, and the shipped
gradient graphs against the synthesis they differentiate."""
from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import refine
from jpegai_fast.errors import LimitError
from shipped_model import ROOT

VM33 = ROOT / "src" / "jpegai_fast" / "models" / "vm33"
requires_graphs = pytest.mark.skipif(not (VM33 / "picture_gradient_bop.onnx").is_file(),
                                     reason="vm33 ships no picture-gradient graphs")


def _bits_reference(r: float, s: float) -> float:
    p = 0.5 * (math.erfc((abs(r) - 0.5) / (s * math.sqrt(2))) - math.erfc((abs(r) + 0.5) / (s * math.sqrt(2))))
    return -math.log2(p) if p > 0 else math.inf


def test_erfc_approximation_is_close_everywhere():
    x = np.linspace(-6, 12, 4001)
    want = np.array([math.erfc(v) for v in x])
    got = refine._erfc(x)
    assert np.all(np.abs(got - want) <= 2e-7 * np.maximum(want, 1e-300) + 1e-300)


def test_bits_and_gradient_equal_float64_math():
    rs = np.array([-40, -7, -3, -1, 0, 1, 2, 5, 9, 30], np.int16)
    for s in (0.11, 0.5, 1.3, 4.0, 25.0):
        sig = np.full(rs.shape, s, np.float32)
        slope, total = refine.bits_gradient(rs, sig)
        s32 = float(np.float32(s))
        ref_bits = [_bits_reference(float(r), s32) for r in rs]
        finite = [p for p in ref_bits if math.isfinite(p)]
        if len(finite) == len(ref_bits):
            assert total == pytest.approx(sum(ref_bits), rel=1e-5)
        for r, g in zip(rs, slope):
            if r == 0:
                assert g == 0.0
                continue
            h = 1e-4
            lo, hi = _bits_reference(float(r) - h, s32), _bits_reference(float(r) + h, s32)
            if math.isfinite(lo) and math.isfinite(hi) and abs(r) / s < 30:
                assert g == pytest.approx((hi - lo) / (2 * h), rel=2e-3, abs=1e-6), (r, s)
            else:  # beyond float64's tail: the Gaussian asymptote r / (σ² ln 2), finite and of the right sign
                assert math.isfinite(g) and np.sign(g) == np.sign(r)


def test_rate_lambda_interpolates_the_card():
    model = jpegai_fast.Encoder("vm33").model
    lams = json.loads((VM33 / "model_card.json").read_text())["training"]["rate_lambdas_bpp_per_db"]
    assert refine.rate_lambda(model, 3) == pytest.approx(lams[3])
    assert refine.rate_lambda(model, 3.5) == pytest.approx(math.sqrt(lams[3] * lams[4]))
    assert refine.rate_lambda(model, len(lams) - 1) == pytest.approx(lams[-1])


def _photo(h=128, w=192):
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[96:96 + h, 160:160 + w])


@requires_graphs
def test_refined_stream_has_a_lower_loss_and_decodes():
    from jpegai_fast.metrics import rd_metrics
    rgb = _photo()
    enc = jpegai_fast.Encoder("vm33", threads=1)
    plain = enc.encode(rgb, rate_point=6)
    assert enc.encode(rgb, rate_point=6, refine=0) == plain
    data = enc.encode(rgb, rate_point=6, refine=12)
    trace = enc.last_refinement
    assert len(trace) == 13
    assert trace[0][0] == pytest.approx(8 * len(plain) / rgb[..., 0].size)  # step 0 is the unrefined stream
    best = min(trace, key=lambda t: t[3])
    assert best[3] < trace[0][3] - 0.01  # the steps found a better latent for this rate point's loss
    assert 8 * len(data) / rgb[..., 0].size == pytest.approx(best[0])
    out = jpegai_fast.decode(data)
    assert out.shape == rgb.shape
    # the loss the refinement lowered on the float synthesis is lower for the decoded 8-bit RGB picture too
    settings = refine.settings(enc.model)
    lam, w = settings["rate_lambdas"][6], settings["msssim_weight"]

    def loss(stream):
        m = rd_metrics(rgb, jpegai_fast.decode(stream), len(stream))
        return m["bpp"] / lam - (m["psnr_yuv"] + w * m["msssim_db"]) / (1 + w)
    assert loss(data) < loss(plain)


@requires_graphs
def test_refined_stream_meets_a_bpp_target():
    rgb = _photo()
    enc = jpegai_fast.Encoder("vm33", threads=1)
    data = enc.encode(rgb, bpp=0.5, refine=4)
    assert 8 * len(data) / rgb[..., 0].size <= 0.5


@requires_graphs
def test_refine_arguments_and_limits():
    enc = jpegai_fast.Encoder("vm33", threads=1)
    rgb = _photo(64, 64)
    for bad in (-1, True, 1.5, "3", 10**6):
        with pytest.raises(ValueError, match="refine"):
            enc.encode(rgb, rate_point=2, refine=bad)
    big = np.zeros((1025, refine.MAX_PIXELS // 1024, 3), np.uint8)  # one row more than MAX_PIXELS allows
    with pytest.raises(LimitError, match="refine"):
        enc.encode(big, rate_point=2, refine=1)
    with pytest.raises(ValueError, match="picture_gradient"):
        jpegai_fast.Encoder("vr_bop").encode(rgb, rate_point=2, refine=1)
    grey = rgb[..., 0].copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = enc.encode(grey, rate_point=2, refine=3)
    assert any("monochrome" in str(w.message) for w in caught)
    assert data == enc.encode(grey, rate_point=2)


@requires_graphs
def test_gradient_graphs_follow_the_shipped_synthesis():
    """The card records the synthesis graphs' hashes at the time the gradient graphs were made: a re-export of the
    synthesis without `python -m training.synthesis_vjp` fails here."""
    entry = json.loads((VM33 / "model_card.json").read_text())["picture_gradient"]
    for op, info in entry["ops"].items():
        assert (VM33 / info["file"]).is_file()
        for comp, digest in info["synthesis_sha256"].items():
            got = hashlib.sha256((VM33 / f"synthesis_{op}_{comp}.onnx").read_bytes()).hexdigest()
            assert got == digest, f"picture_gradient_{op}.onnx is stale: python -m training.synthesis_vjp"
