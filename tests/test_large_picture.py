"""An 8160 x 6120 (50 MP) picture: the encoder copes, and decoding it peaks at <= 2 GB RSS.

Slow (about a minute of encode and a decode in a child process on the 2-core box): opt in with
``python -m pytest tests/test_large_picture.py --run-slow``.  The photo is scikit-image photos upscaled
to 2040 x 2040 tiles, 4 x 3 of them.  The stream is encoded once with the default settings (header
tiling 1024 / 48, tiled analysis); the decode runs in a fresh process through
tools/measure_decode_rss.py (run as its own process), whose peak RSS (``RUSAGE_CHILDREN``, the whole
decoding process: interpreter, ONNX Runtime, model, picture) must stay within 2 GiB.  The encoder runs in
the test process; its peak RSS is printed and recorded (record_property), not asserted.
"""
from __future__ import annotations

import json
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

import jpegai_fast
from shipped_model import ROOT, requires_model  # noqa: E402

pytestmark = [pytest.mark.slow, requires_model]

WIDTH, HEIGHT, TILE = 8160, 6120, 2040
PEAK_RSS_LIMIT_MB = 2048
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def large_photo() -> np.ndarray:
    """uint8 [6120, 8160, 3]: 12 tiles of 2040 x 2040, each a scikit-image photo upscaled (bicubic)."""
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    for k in range((HEIGHT // TILE) * (WIDTH // TILE)):
        src = getattr(skdata, PHOTOS[k % len(PHOTOS)])()
        img = Image.fromarray(np.ascontiguousarray(src)).convert("RGB")
        if k >= len(PHOTOS):
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        y, x = divmod(k, WIDTH // TILE)
        out[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = np.asarray(img.resize((TILE, TILE), Image.BICUBIC))
    return out


def psnr_banded(a: np.ndarray, b: np.ndarray, rows: int = 256) -> float:
    se = 0.0
    for r in range(0, a.shape[0], rows):
        d = a[r:r + rows].astype(np.float64) - b[r:r + rows]
        se += float(np.sum(d * d))
    return 10 * np.log10(255.0**2 / (se / a.size))


def measure_decode(stream: pathlib.Path, out: pathlib.Path) -> dict:
    """tools/measure_decode_rss.py as its own small process: the peak RSS it reads (RUSAGE_CHILDREN of
    its decode child) is not inflated by this test process's size, which a child would inherit at fork."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "measure_decode_rss.py"), str(stream), "--out", str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_8160x6120_decode_peak_rss_within_2gb(tmp_path, record_property):
    photo = large_photo()
    t0 = time.perf_counter()
    data = jpegai_fast.encode(photo, rate_point=3)
    encode_s = time.perf_counter() - t0
    stream = tmp_path / "large.jai"
    stream.write_bytes(data)
    h = jpegai_fast.Decoder().info(data)
    assert (h["width"], h["height"]) == (WIDTH, HEIGHT) and (h["tile_size"], h["tile_overlap"]) == (1024, 48)
    res = measure_decode(stream, tmp_path / "decoded.npy")
    decoded = np.load(tmp_path / "decoded.npy", mmap_mode="r")
    quality = psnr_banded(decoded, photo)
    encoder_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in dict(peak_rss_mb=res["peak_rss_mb"], vm_hwm_mb=res["vm_hwm_mb"], decode_s=res["seconds"],
                     encode_s=round(encode_s, 1), bpp=h["bpp"], psnr=round(quality, 2),
                     test_process_peak_rss_mb=round(encoder_rss_mb)).items():
        record_property(k, v)
    print(f"\n8160x6120: {len(data)} B ({h['bpp']:.4f} bpp), PSNR {quality:.2f} dB, encode {encode_s:.1f} s "
          f"(test process peak RSS {encoder_rss_mb:.0f} MiB); decode {res['seconds']:.1f} s, peak RSS "
          f"{res['peak_rss_mb']:.0f} MiB (VmHWM {res['vm_hwm_mb']} MiB), {res['threads']} threads, "
          f"stages (ms) {res['timing_ms']}")
    assert decoded.shape == photo.shape
    assert quality > 22.0
    assert res["peak_rss_mb"] <= PEAK_RSS_LIMIT_MB
    assert res["vm_hwm_mb"] is None or res["vm_hwm_mb"] <= PEAK_RSS_LIMIT_MB
