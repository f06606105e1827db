"""``jpegai-fast eval`` and jpegai_fast.metrics: the metrics equal training/rd_eval.py's, eval's figures equal a direct
computation, and on Kodak eval reproduces the rd_eval figures committed in training/results/."""
from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import evaluate, metrics
from shipped_model import requires_model

ROOT = pathlib.Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "datasets" / "kodak"
RD_EVAL = ROOT / "training" / "results" / "rd_eval.json"


def _pair(seed=0, shape=(75, 93, 3)):
    rng = np.random.default_rng(seed)
    skdata = pytest.importorskip("skimage.data")
    a = np.ascontiguousarray(skdata.astronaut()[:shape[0], :shape[1]])
    b = np.clip(a.astype(int) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    return a, b


def _msssim_scipy(a, b):
    from scipy.ndimage import gaussian_filter

    def g(x):
        return gaussian_filter(x, 1.5, mode="reflect", truncate=3.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for scale in range(5):
        mu1, mu2 = g(a), g(b)
        s11, s22, s12 = g(a * a) - mu1 * mu1, g(b * b) - mu2 * mu2, g(a * b) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        if scale == 4:
            vals.append(max(float(((2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map).mean()), 1e-12))
            break
        vals.append(max(float(cs_map.mean()), 1e-12))
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.array(vals) ** np.array(metrics.MS_WEIGHTS)))


@pytest.mark.parametrize("shape", [(75, 93, 3), (128, 160, 3)])
def test_metrics_equal_rd_eval(shape):
    pytest.importorskip("scipy")
    from scipy.ndimage import gaussian_filter

    from training import rd_eval

    a, b = _pair(1, shape)
    got = metrics.rd_metrics(a, b, 777)
    assert rd_eval.metrics(a, b, 777) == {k: got[k] for k in ("bytes", *rd_eval.METRICS)}
    # the oracle: MS-SSIM with scipy's Gaussian filter, as the anchor README defines it
    yo, yr = metrics.rgb_to_ycbcr(a)[0], metrics.rgb_to_ycbcr(b)[0]
    assert got["msssim_y"] == _msssim_scipy(yo, yr)  # the same float operations in the same order: equal

    x = np.random.default_rng(2).random((37, 51)) * 255
    np.testing.assert_array_equal(metrics._gauss(x), gaussian_filter(x, 1.5, mode="reflect", truncate=3.5))
    assert metrics.psnr(a, a) == math.inf and got["psnr_rgb"] == metrics.psnr(a, b)


@requires_model
def test_eval_figures_equal_a_direct_computation(tmp_path, capsys):
    skdata = pytest.importorskip("skimage.data")
    pics = {"a": skdata.astronaut()[:96, :128], "b": skdata.chelsea()[40:120, 60:172], "c": skdata.coffee()[:64, :80]}
    for name, p in pics.items():
        Image.fromarray(np.ascontiguousarray(p)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert evaluate.main([str(tmp_path), "--rate-point", "1,4", "--json", "--threads", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"] == ["a", "b", "c"] and [r["target"] for r in doc["results"]] == [{"rate_point": 1},
                                                                                         {"rate_point": 4}]
    enc, dec = jpegai_fast.Encoder("vr_bop", threads=1), jpegai_fast.Decoder("vr_bop", threads=1)
    for res, r in zip(doc["results"], (1, 4)):
        rows = []
        for p in pics.values():
            data = enc.encode(np.ascontiguousarray(p), rate_point=r)
            rows.append(metrics.rd_metrics(np.ascontiguousarray(p), dec.decode(data), len(data)))
        for k in ("bpp", "psnr_yuv", "psnr_y", "psnr_rgb", "msssim_y", "msssim_db"):
            assert res["mean"][k] == pytest.approx(np.mean([x[k] for x in rows]), rel=1e-12, abs=1e-12), k
        assert [x["bytes"] for x in res["per_image"]] == [x["bytes"] for x in rows]
        assert res["model"] == "vr_bop" and res["mean"]["encode_s"] > 0 and res["mean"]["decode_s"] > 0
    # quality and bpp targets, the text table
    assert evaluate.main([str(tmp_path), "--quality", "38", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "quality 38" in out and "| vm33 | 1 |" in out  # quality 38 is vm33 on the default ladder
    assert evaluate.main([str(tmp_path), "--quality", "90", "--limit", "1"]) == 0
    assert "| vr_bop | 1 |" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path / "a.png"), "--bpp", "0.5", "--json", "--model", "vr_bop"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["per_image"][0]["bpp"] <= 0.5 and doc["results"][0]["target"] == {"bpp": 0.5}
    for bad in (["--rate-point", "9"], ["--quality", "101"], ["--bpp", "0"], ["--bpp", "x"]):
        with pytest.raises(SystemExit):
            evaluate.main([str(tmp_path)] + bad)


@requires_model
def test_eval_plot(tmp_path):
    pytest.importorskip("matplotlib")
    skdata = pytest.importorskip("skimage.data")
    Image.fromarray(np.ascontiguousarray(skdata.astronaut()[:64, :64])).save(tmp_path / "a.png")
    from jpegai_fast.__main__ import main

    assert main(["eval", str(tmp_path), "--rate-point", "0,3", "--plot", str(tmp_path / "rd.png")]) == 0
    with Image.open(tmp_path / "rd.png") as im:
        assert im.format == "PNG" and im.size[0] > 500


@requires_model
@pytest.mark.skipif(not (KODAK / "kodim01.png").is_file(), reason="../shared/datasets/kodak is missing")
def test_eval_reproduces_rd_eval_on_kodak(tmp_path, capsys):
    """Two Kodak photos at three rate points against the per-image figures of the committed rd_eval run of
    vr_bop (the whole set, 24 images x 8 rate points, takes ~6 min here: docs/pipelines.md has its figures)."""
    ref = json.loads(RD_EVAL.read_text())
    assert pathlib.Path(ref["model"]).name == "vr_bop" and ref["op"] == "bop"
    for name in ("kodim01", "kodim23"):
        (tmp_path / f"{name}.png").symlink_to(KODAK / f"{name}.png")
    assert evaluate.main([str(tmp_path), "--rate-point", "0,4,7", "--model", "vr_bop", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for res in doc["results"]:
        r = res["target"]["rate_point"]
        for row in res["per_image"]:
            want = next(p for p in ref["ours"]["per_image"][row["image"]] if p["rate"] == r)
            assert abs(row["bpp"] - want["bpp"]) < 0.01 and abs(row["psnr_yuv"] - want["psnr_yuv"]) < 0.01
            assert abs(row["psnr_y"] - want["psnr_y"]) < 0.01 and abs(row["msssim_db"] - want["msssim_db"]) < 0.01


def test_gain_at_equal_rate():
    """training.evaluate --baseline: the new point against the baseline's curve, linear in log bpp."""
    from training.evaluate import gain_at_equal_rate

    base = {0: (0.1, 30.0), 1: (0.2, 31.0), 2: (0.4, 31.5)}
    gains = gain_at_equal_rate({0: (0.15, 30.8), 1: (0.2, 31.0), 2: (0.8, 32.5)}, base)
    assert math.isclose(gains[0], 30.8 - (30.0 + math.log(1.5) / math.log(2)), abs_tol=1e-9)
    assert math.isclose(gains[1], 0.0, abs_tol=1e-12)
    assert math.isclose(gains[2], 32.5 - 32.0, abs_tol=1e-9)  # beyond the end: the last segment extended
