"""training.data.TrainPool(min_detail=...): the fine-detail measure orders flat < textured pictures, and the
filter keeps exactly the crops that reach the threshold (and refuses to leave an empty pool)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from training.data import TrainPool, detail_rms  # noqa: E402


def _write(folder, name, rgb):
    Image.fromarray(rgb).save(folder / name, quality=95, subsampling=0)


def _pictures(n=64):
    rng = np.random.default_rng(7)
    ramp = np.broadcast_to(np.linspace(40, 200, n, dtype=np.float32)[None, :, None], (n, n, 3))
    flat = ramp.astype(np.uint8)                                        # a smooth gradient: no fine detail
    noisy = np.clip(ramp + rng.normal(0, 30, (n, n, 3)), 0, 255).astype(np.uint8)   # grain everywhere
    return flat, noisy


def test_detail_rms_orders_flat_below_textured():
    flat, noisy = _pictures()
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # noqa: E731
    assert detail_rms(to_t(flat)) < 2.0
    assert detail_rms(to_t(noisy)) > 40.0


def test_min_detail_keeps_only_the_textured_crops(tmp_path):
    flat, noisy = _pictures()
    _write(tmp_path, "src__a__000000__y0x0.jpg", flat)
    _write(tmp_path, "src__b__000000__y0x0.jpg", noisy)
    _write(tmp_path, "src__b__000000__y64x0.jpg", noisy[::-1].copy())
    everything = TrainPool(tmp_path)
    assert len(everything) == 3 and everything.photos == 2
    textured = TrainPool(tmp_path, min_detail=16.0)
    assert len(textured) == 2 and textured.photos == 1
    assert all(detail_rms(im) >= 16.0 for im in textured.images)
    with pytest.raises(ValueError, match="reaches detail"):
        TrainPool(tmp_path, min_detail=1e6)
