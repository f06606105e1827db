"""Integer hyper-scale decoder: C++ fast kernel == C++ scalar reference == numpy oracle, bit for bit."""
import numpy as np
import pytest

from jpegai_fast import _core
from reference.hyper_scale_decoder import hyper_scale_decode


def random_layers(rng, c, weight_bound=127, bias_bound=2**20):
    layers = []
    for cin, cout, k in ((c, c, 1), (c, c, 3), (c, 16 * c, 1)):
        w = rng.integers(-weight_bound, weight_bound + 1, size=(cout, cin, k, k), dtype=np.int8)
        b = rng.integers(-bias_bound, bias_bound, size=cout, dtype=np.int32)
        s = rng.integers(0, 12, size=cout, dtype=np.int8)
        layers.append((w, b, s))
    return layers


def make(layers):
    flat = [a for layer in layers for a in layer]
    return _core.HyperScaleDecoder(*flat)


@pytest.mark.parametrize("c,hz,wz,hl,wl", [(4, 3, 5, 12, 20), (8, 4, 4, 13, 15), (16, 1, 1, 1, 1), (3, 2, 7, 5, 26)])
def test_fast_equals_scalar_equals_numpy(c, hz, wz, hl, wl):
    rng = np.random.default_rng(c * 100 + hz)
    layers = random_layers(rng, c, weight_bound=12)
    z = rng.integers(-200, 200, size=(c, hz, wz), dtype=np.int16)  # beyond [-128, 127]: exercises the clamp
    hsd = make(layers)
    expected = hyper_scale_decode(z, layers, (hl, wl))
    for threads in (1, 2, 0):
        np.testing.assert_array_equal(hsd.forward(z, hl, wl, threads=threads, kernel="auto"), expected)
    np.testing.assert_array_equal(hsd.forward(z, hl, wl, kernel="scalar"), expected)


def test_jpeg_ai_size_luma_layout():
    """160 channels at Kodak's z size (8 x 12 -> latent 32 x 48), realistic weight magnitudes."""
    rng = np.random.default_rng(7)
    layers = random_layers(rng, 160, weight_bound=3, bias_bound=2**16)
    z = rng.integers(-31, 32, size=(160, 8, 12), dtype=np.int16)
    hsd = make(layers)
    out = hsd.forward(z, 32, 48)
    np.testing.assert_array_equal(out, hyper_scale_decode(z, layers, (32, 48)))
    assert out.dtype == np.int32 and out.min() >= 0 and out.max() <= _core.MAX_LOG_SIGMA


def test_rejects_overflowing_or_malformed_layers():
    rng = np.random.default_rng(1)
    layers = random_layers(rng, 4)
    w, b, s = layers[1]
    with pytest.raises(ValueError, match="overflow"):
        make([layers[0], (w, np.full_like(b, 2**31 - 1), s), layers[2]])
    with pytest.raises(ValueError, match="shift"):
        make([layers[0], (w, b, np.full_like(s, 31)), layers[2]])
    with pytest.raises(ValueError, match="conv2"):
        make([layers[0], layers[0], layers[2]])
    hsd = make(layers)
    z = np.zeros((4, 2, 2), np.int16)
    with pytest.raises(ValueError):
        hsd.forward(z, 9, 8)  # latent larger than 4 x z
    with pytest.raises(ValueError):
        hsd.forward(np.zeros((5, 2, 2), np.int16), 8, 8)  # wrong channel count


def test_matches_torch_qat_model():
    """The torch QAT forward (training/) equals the numpy oracle and the C++ core bit for bit."""
    torch = pytest.importorskip("torch")
    hyper_scale_int = pytest.importorskip("training.hyper_scale_int")
    torch.manual_seed(0)
    model = hyper_scale_int.HyperScaleDecoderInt(8).double()
    params = model.export_int()
    layers = [tuple(params[f"conv{i}.{n}"].numpy() for n in ("weight", "bias", "shift")) for i in (1, 2, 3)]
    z = torch.randint(-31, 32, (1, 8, 3, 5))
    with torch.no_grad():
        qat = model(z.double(), (11, 19))[0].numpy()
    ref = model.int_forward(z, (11, 19))[0].numpy()
    oracle = hyper_scale_decode(z[0].numpy(), layers, (11, 19))
    np.testing.assert_array_equal(qat.astype(np.int64), oracle)
    np.testing.assert_array_equal(ref, oracle)
    np.testing.assert_array_equal(make(layers).forward(z[0].numpy().astype(np.int16), 11, 19), oracle)


def test_scale_index_map_matches_the_integer_definition():
    from jpegai_fast import entropy

    rng = np.random.default_rng(3)
    s = rng.integers(0, 63 * 128, size=(6, 5, 7)).astype(np.int32)
    gain = rng.integers(-700, 700, size=6).astype(np.int32)
    idx = np.clip((s.astype(np.int64) + gain[:, None, None] + 64) >> 7, 0, 63)
    expected = np.where(idx < 4, 255, idx).astype(np.uint8)
    np.testing.assert_array_equal(entropy.scale_index_map(s, gain, skip_below=4), expected)
    np.testing.assert_array_equal(entropy.scale_index_map(s, gain, skip_below=0), idx.astype(np.uint8))
    with pytest.raises(ValueError):
        entropy.scale_index_map(s, gain[:5], 4)
    with pytest.raises(ValueError):
        entropy.scale_index_map(s.astype(np.int64), gain, 4)
