"""Streams the bench decodes: each codec's ladder per Kodak image (encoded once, cached on disk), the VVC anchor
streams, and "matched" streams (a codec's ladder point nearest in bpp to the VVC stream of the same image/QP; for
jpegai_fast, its own rate control aimed at the VVC stream's bpp).

Cache: ``$JPEGAI_BENCH_CACHE`` or bench/.cache/streams/<codec>/<image>/<key>.bin, where the key hashes the codec's
encoder settings, its library versions, the parameter and the image bytes, so a new library or setting
re-encodes.  ``JPEGAI_BENCH_NO_CACHE=1`` disables it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bench import codecs as C
from bench.metrics import bpp as _bpp

QUICK_IMAGES = ("kodim01", "kodim04", "kodim23")  # one portrait (kodim04)
QUICK_QPS = (32, 37)  # VVC mean 0.39 and 0.19 bpp on Kodak: brackets ~0.25 bpp
FULL_QPS = C.VVC_QPS
# decode-time benchmark of the full run: 8 of the 24 images (every third; 2 portraits) x 6 QPs, to fit the
# 30-minute budget on 2 cores (the RD part and BD-rates use all 24); --images all / a list changes it
FULL_BENCH_IMAGES = ("kodim01", "kodim04", "kodim07", "kodim10", "kodim13", "kodim16", "kodim19", "kodim22")


def bench_images(quick: bool, spec: str | None = None) -> list[str]:
    """Images of the decode-time benchmark: ``spec`` = "all" or a comma list, else the quick / full default."""
    if spec:
        return C.kodak_images(None if spec == "all" else [s.strip() for s in spec.split(",")])
    return C.kodak_images(QUICK_IMAGES if quick else FULL_BENCH_IMAGES)


def cache_dir() -> Path:
    return Path(os.environ.get("JPEGAI_BENCH_CACHE", Path(__file__).resolve().parent / ".cache" / "streams"))


def _use_cache() -> bool:
    return os.environ.get("JPEGAI_BENCH_NO_CACHE", "") not in ("1", "true", "yes")


@dataclass(frozen=True)
class Stream:
    codec: str
    image: str
    param: object
    data: bytes
    width: int
    height: int

    @property
    def bpp(self) -> float:
        return _bpp(len(self.data), self.width, self.height)


@cache
def _image_digest(name: str) -> str:
    return hashlib.sha256((C.kodak_dir() / f"{name}.png").read_bytes()).hexdigest()[:16]


@cache
def image_rgb(name: str) -> np.ndarray:
    rgb = C.load_rgb(name)
    rgb.setflags(write=False)
    return rgb


def _key(codec: C.Codec, name: str, param) -> str:
    blob = json.dumps([codec.cache_name or codec.name, codec.encoder_settings, codec.versions(), codec.cache_key(),
                       repr(param), _image_digest(name)],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def encode(codec: C.Codec, name: str, param) -> Stream:
    rgb = image_rgb(name)
    h, w, _ = rgb.shape
    use = _use_cache() and codec.cache_streams
    path = cache_dir() / (codec.cache_name or codec.name) / name / f"{_key(codec, name, param)}.bin" if use else None
    if use and path.exists():
        data = path.read_bytes()
    else:
        data = codec.encode(np.ascontiguousarray(rgb), param)
        if use:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)
    return Stream(codec.name, name, param, data, w, h)


def ladder(codec: C.Codec, name: str) -> list[Stream]:
    return [encode(codec, name, p) for p in codec.ladder]


def vvc_stream(name: str, qp: int) -> Stream:
    rgb = image_rgb(name)
    h, w, _ = rgb.shape
    return Stream("vvc", name, qp, C.vvc_anchor_stream(name, qp), w, h)


def matched(codec: C.Codec, name: str, target_bpp: float) -> Stream:
    """The codec's stream for ``target_bpp``: its rate control where it has one (``codec.match_param``, ours),
    else its ladder stream nearest to ``target_bpp`` in |log bpp|."""
    param = codec.match_param(target_bpp)
    if param is not None:
        return encode(codec, name, param)
    streams = ladder(codec, name)
    return min(streams, key=lambda s: abs(math.log(s.bpp / target_bpp)))


@cache
def anchor_csv() -> dict[tuple[str, int], dict]:
    """anchor_rgb.csv rows keyed by (image, qp), numbers as float."""
    out = {}
    with open(C.vvc_dir() / "anchor_rgb.csv", newline="") as f:
        for row in csv.DictReader(f):
            rec = {k: row[k] for k in ("image", "file")}
            rec["qp"] = int(row["qp"])
            rec["bytes"] = int(row["bytes"])
            for k in ("bpp", "psnr_yuv", "psnr_y", "msssim_y", "msssim_db"):
                rec[k] = float(row[k])
            out[(rec["image"], rec["qp"])] = rec
    return out
