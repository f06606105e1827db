"""jpegai_fast.encode: byte-identical to the reference encoder at the trained rate points, rate
control, any picture size, input validation."""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import encoder
from shipped_model import MODELS, requires_model  # noqa: E402

pytestmark = requires_model
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def enc():
    return encoder.Encoder(threads=2)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.coffee()[50:146, 200:328])  # 96 x 128


@pytest.mark.parametrize("rate,op", [(0, "bop"), (5, "sop")])
def test_same_bytes_as_the_reference_encoder(enc, photo, rate, op):
    from training import reference_decoder as rd

    want, _ = rd.encode_bitstream(rd.Model(MODELS[0]), photo, rate, op)
    assert enc.encode(photo, rate_point=rate, operating_point=op) == want
    # quality 0..100: a rate point's knot gives that rate point's stream exactly
    assert enc.encode(photo, quality=encoder.quality_table(enc.model)[rate], operating_point=op) == want


def analysis_planes(enc_m: encoder.Encoder, pic: np.ndarray, rate: int):
    """The (Y, UV) planes the runtime's analysis of ``rate`` sees: the picture's own, or, for the high-rate
    analysis of a model with pre-emphasis, the emphasised ones (encoder.pre_emphasise) -- None for the former."""
    from jpegai_fast import colour

    m = enc_m.model
    if not enc_m.pre_emphasis or m.analysis_hi_from is None or rate < m.analysis_hi_from:
        return None
    y, uv = colour.rgb_to_yuv420(pic)
    lat = encoder._analyse(m, y, uv, m.latent_size("luma", pic.shape[:2]), rate=rate)
    return encoder.pre_emphasise(m, y, uv, lat, enc_m.pre_emphasis)


@pytest.mark.parametrize("model_path", MODELS[1:], ids=lambda m: m.name)
@pytest.mark.parametrize("hw", [(96, 128), (100, 140)])  # whole / partial chroma latents on vm33's H/32 grid
def test_every_shipped_model_encodes_as_the_reference_encoder(model_path, hw, photo):
    """The other shipped models (vm33: chroma latent on its own H/32 grid, its own model id) through the reference
    encoder and decoder too: the same bytes, the same decoded picture at the stream's operating point (to ±1
    level on at most 0.1 % of the samples: float rounding of the pixel domain)."""
    from training import reference_decoder as rd

    skdata = pytest.importorskip("skimage.data")
    pic = np.ascontiguousarray(skdata.astronaut()[60:60 + hw[0], 100:100 + hw[1]])
    ref = rd.Model(model_path)
    enc_m = encoder.Encoder(model_path, threads=1)
    dec = jpegai_fast.Decoder(model_path, operating_point=None, threads=1)
    for rate, op in ((0, "bop"), (ref.num_rates - 1, "sop")):
        want, _ = rd.encode_bitstream(ref, pic, rate, op, planes=analysis_planes(enc_m, pic, rate))
        assert enc_m.encode(pic, rate_point=rate, operating_point=op) == want, (rate, op)
        # the pixel domain is float: on an AVX2 CPU the runtime runs vm33's up-samplers in C++ (graph_split.py),
        # which round differently from ORT's whole graph in the reference decoder
        diff = np.abs(dec.decode(want).astype(np.int16) - rd.decode_bitstream(ref, want)["rgb"])
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size, (rate, op)


def test_quality_is_monotone(enc, photo):
    sizes = [len(enc.encode(photo, quality=q)) for q in (0, 7, 14, 21, 28, 46, 72, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_bpp_rate_control(enc, photo, target):
    data = enc.encode(photo, bpp=target)
    bpp = 8 * len(data) / (96 * 128)
    assert 0.9 * target <= bpp <= target, enc.last_trials


def test_bpp_beyond_the_trained_rate_points(enc, photo):
    """Targets outside the trained rate points are reached by displacing the end gains (header gain_log_*)."""
    lowest = 8 * len(enc.encode(photo, rate_point=0)) / (96 * 128)
    highest = 8 * len(enc.encode(photo, rate_point=enc.model.num_rates - 1)) / (96 * 128)
    for target in (0.9 * lowest, 1.2 * highest):
        data = enc.encode(photo, bpp=target)
        assert 0.9 * target <= 8 * len(data) / (96 * 128) <= target, enc.last_trials
        assert jpegai_fast.decode(data, threads=2).shape == photo.shape
    floor = enc.encode(photo, bpp=0.01)  # below anything reachable: the smallest stream
    assert len(floor) < len(enc.encode(photo, rate_point=0))


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (17, 33), (31, 1), (33, 48)])
def test_any_picture_size(enc, shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    data = enc.encode(rgb, rate_point=2)
    out = jpegai_fast.decode(data, threads=2)
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_input_validation(enc, photo):
    with pytest.raises(ValueError):
        enc.encode(photo.astype(np.float32))
    with pytest.raises(ValueError):
        enc.encode(photo[..., :2])  # (a grey (H, W) array is valid: coded monochrome, tests/test_monochrome.py)
    with pytest.raises(ValueError):
        enc.encode(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        enc.encode(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        enc.encode(photo.tolist())
    with pytest.raises(jpegai_fast.LimitError):
        enc.encode(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (70000, 8, 3)))
    with pytest.raises(jpegai_fast.LimitError):
        encoder.Encoder(model=enc.model, max_pixels=1000).encode(photo)
    top = enc.model.num_rates - 1
    for kwargs in ({"quality": -0.1}, {"quality": 100.5}, {"quality": float("nan")}, {"quality": "50"},
                   {"bpp": 0}, {"bpp": float("nan")},
                   {"rate_point": top + 1}, {"rate_point": 1.5}, {"bpp": 1, "quality": 2}, {"operating_point": "hop"},
                   {"substreams": 0}):
        with pytest.raises(ValueError):
            enc.encode(photo, **kwargs)
