"""Every rate point of the shipped model, on several scikit-image photos: our encoder's stream equals the
reference codec's, and our decoder reproduces the reference decoder (integers identical, PSNR within 0.1 dB).

Crops keep the suite fast; sizes are deliberately not multiples of 16 (padding and crop on both sides).
"""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from shipped_model import MODELS, psnr, requires_model  # noqa: E402

pytestmark = requires_model
skdata = pytest.importorskip("skimage.data")

PHOTOS = {  # name -> (top, left, height, width) crop of the skimage photo
    "astronaut": (40, 120, 136, 152),
    "coffee": (90, 200, 120, 168),
    "chelsea": (30, 60, 104, 184),
}


@pytest.fixture(scope="module")
def ref():
    from training import reference_decoder as rd

    return rd, rd.Model(MODELS[0])


@pytest.fixture(scope="module")
def decoder():
    return jpegai_fast.Decoder(threads=2)


def _photo(name):
    top, left, h, w = PHOTOS[name]
    return np.ascontiguousarray(getattr(skdata, name)()[top:top + h, left:left + w, :3])


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_every_rate_point_matches_reference(ref, decoder, name):
    rd, model = ref
    photo = _photo(name)
    sizes = []
    for rate in range(model.num_rates):
        stream, _ = rd.encode_bitstream(model, photo, rate, "bop")
        assert jpegai_fast.encode(photo, rate_point=rate, threads=2) == stream  # same bytes as the oracle
        want = rd.decode_bitstream(model, stream)
        rgb = decoder.decode(stream)
        assert rgb.shape == photo.shape
        assert abs(psnr(rgb, photo) - psnr(want["rgb"], photo)) < 0.1, f"{name} rate {rate}"
        lat = decoder.decode_latents(stream)
        for comp in ("luma", "chroma"):
            np.testing.assert_array_equal(lat["z"][comp], want["z_hat"][comp])
            np.testing.assert_array_equal(lat["index"][comp], want["idx"][comp])
            np.testing.assert_array_equal(lat["residual"][comp], want["residual"][comp])
            if model.mean is not None:  # fixed-point mean path: y_hat is bit-exact, not just close
                np.testing.assert_array_equal(lat["y_hat"][comp], want["y_hat"][comp])
        sizes.append(len(stream))
    # a variable-rate model whose rate points did not order by size would be a broken export
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
