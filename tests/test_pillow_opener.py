"""register_jai_opener(threads=, operating_point=, max_pixels=): re-registers the Pillow opener with decode settings
(as pillow-heif's register_heif_opener); features() says what the installation runs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import pillow_plugin
from shipped_model import requires_model

pytestmark = requires_model


@pytest.fixture
def restore_opener():
    yield
    jpegai_fast.register_jai_opener()  # the defaults, as on import


@pytest.fixture(scope="module")
def stream():
    skdata = pytest.importorskip("skimage.data")
    return jpegai_fast.encode(np.ascontiguousarray(skdata.chelsea()[60:140, 100:196]), rate_point=2,
                              operating_point="sop")


def test_opener_settings(stream, restore_opener):
    assert jpegai_fast.register_jai_opener is pillow_plugin.register_jai_opener
    jpegai_fast.register_jai_opener(threads=1, operating_point="sop")
    with Image.open(io.BytesIO(stream)) as im:
        np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(stream, operating_point="sop", threads=1))
    jpegai_fast.register_jai_opener(operating_point=None)  # the stream's header: SOP here
    with Image.open(io.BytesIO(stream)) as im:
        np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(stream, operating_point="sop"))
    jpegai_fast.register_jai_opener()
    with Image.open(io.BytesIO(stream)) as im:
        np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(stream))  # BOP by default
    assert pillow_plugin.JaiImageFile.operating_point == "bop" and pillow_plugin.max_pixels() >= 80 * 96


def test_opener_pixel_limit(stream, restore_opener):
    jpegai_fast.register_jai_opener(max_pixels=80 * 96 - 1)
    with pytest.raises(OSError) as info:
        Image.open(io.BytesIO(stream)).load()
    assert isinstance(info.value, jpegai_fast.ImageFileError) and info.value.field == "width*height"
    jpegai_fast.register_jai_opener(max_pixels=80 * 96)
    with Image.open(io.BytesIO(stream)) as im:
        assert im.size == (96, 80) and np.asarray(im).shape == (80, 96, 3)


@pytest.mark.parametrize("kwargs", [{"threads": -1}, {"threads": 1.5}, {"operating_point": "hop"},
                                    {"max_pixels": 0}, {"max_pixels": True}])
def test_opener_refuses_bad_settings(kwargs, restore_opener):
    with pytest.raises(ValueError):
        jpegai_fast.register_jai_opener(**kwargs)


def test_features():
    f = jpegai_fast.features()
    assert {"version", "simd", "hardware_threads", "onnxruntime", "providers", "models", "default_model"} <= set(f)
    assert f["version"] == jpegai_fast.__version__ and f["default_model"] in f["models"]
