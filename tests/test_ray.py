"""jpegai_fast.ray on a local Ray (``ray.init(num_cpus=2)``): transcode_files with an actor pool writes the bytes
serial encoding makes and decodes back to serial decoding's pixels; encode_dataset / decode_dataset likewise.
Skipped without Ray (the ``[ray]`` extra).  The 24-photo Kodak run is ``slow`` (measured in docs/pipelines.md)."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from shipped_model import requires_model

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = requires_model
KODAK = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "kodak"
RATE = 3


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def _load(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _check_transcode(local_ray, files, tmp_path):
    import jpegai_fast.ray as jray

    written = jray.transcode_files(files, tmp_path / "jai", rate_point=RATE)
    assert written == sorted(str(tmp_path / "jai" / (pathlib.Path(f).stem + ".jai")) for f in files)
    enc = jpegai_fast.Encoder(threads=2)
    streams = {}
    for f in files:
        stem = pathlib.Path(f).stem
        streams[stem] = (tmp_path / "jai" / f"{stem}.jai").read_bytes()
        assert streams[stem] == enc.encode(_load(f), rate_point=RATE), stem
    pngs = jray.transcode_files(tmp_path / "jai", tmp_path / "png", to="png")
    assert len(pngs) == len(files)
    dec = jpegai_fast.Decoder(threads=2)
    for stem, data in streams.items():
        np.testing.assert_array_equal(_load(tmp_path / "png" / f"{stem}.png"), dec.decode(data))


def test_transcode_and_datasets_small(local_ray, tmp_path):
    import jpegai_fast.ray as jray

    skdata = pytest.importorskip("skimage.data")
    src = tmp_path / "src"
    src.mkdir()
    photos = {"astronaut": skdata.astronaut()[:256, :320], "chelsea": skdata.chelsea(), "coffee": skdata.coffee()[:200]}
    for name, p in photos.items():
        Image.fromarray(np.ascontiguousarray(p)).save(src / f"{name}.png")
    _check_transcode(local_ray, sorted(str(p) for p in src.iterdir()), tmp_path)
    # in-memory datasets: an "image" column in, "jai" and a decoded "image" out
    ds = ray.data.from_items([{"name": n, "image": np.ascontiguousarray(p)} for n, p in photos.items()])
    rows = jray.decode_dataset(jray.encode_dataset(ds, rate_point=RATE), column="jai", output_column="decoded",
                               ).take_all()
    assert sorted(r["name"] for r in rows) == sorted(photos)
    for r in rows:
        want = jpegai_fast.encode(np.ascontiguousarray(photos[r["name"]]), rate_point=RATE)
        assert bytes(r["jai"]) == want
        np.testing.assert_array_equal(r["decoded"], jpegai_fast.decode(want))


@pytest.mark.skipif(not (KODAK / "kodim01.png").is_file(), reason="../shared/datasets/kodak is missing")
def test_transcode_kodak(local_ray, tmp_path):
    _check_transcode(local_ray, [str(KODAK / f"kodim{i:02d}.png") for i in range(1, 25)], tmp_path)
