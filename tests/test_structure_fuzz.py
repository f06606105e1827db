"""Seeded structure-aware fuzzing through the whole picture API (tests/structure_mutator.py): header fields
and segments edited with CRCs recomputed, so mutants reach the entropy decoders, the integer networks, the
mean path, synthesis and colour.  Every mutant must decode (to a picture of the header's size, finite ŷ) or
raise one of our errors; anything else — another exception type, a crash (the run is in-process: a crash
fails the suite), non-finite latents — is a finding.  The long coverage-guided campaign (atheris) is
tests/fuzz_picture_atheris.py (docs/testing.md)."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from structure_mutator import mutate, run

import jpegai_fast
from shipped_model import requires_model

pytestmark = requires_model
MUTANTS_PER_BASE = 150


@pytest.fixture(scope="module")
def bases():
    skdata = pytest.importorskip("skimage.data")
    photo = np.ascontiguousarray(skdata.astronaut()[:90, :130])
    return [jpegai_fast.encode(photo, rate_point=1),
            jpegai_fast.encode(photo[:40, :70], rate_point=5, substreams=3),
            jpegai_fast.encode(np.ascontiguousarray(skdata.coffee()[:80, :80]), quality=46.5, tile_size=64),
            # monochrome (4:0:0), with metadata (MDS) and a display window (DWS: a side below 64)
            jpegai_fast.encode(np.ascontiguousarray(skdata.camera()[:50, :70]), rate_point=3, exif=b"Exif\0\0II*\0",
                               xmp="<x:xmpmeta/>")]


@pytest.mark.parametrize("latents", [False, True])
def test_structure_aware_mutants_raise_only_our_errors(bases, latents):
    dec = jpegai_fast.Decoder(threads=2, max_pixels=600 * 600)  # mutated sizes stay cheap to decode
    rng = np.random.default_rng(20261203 + latents)
    outcomes = collections.Counter()
    for base in bases:
        for _ in range(MUTANTS_PER_BASE):
            outcomes[run(dec, mutate(base, rng), latents=latents).split(":")[0]] += 1
    # the mutants are not all stopped at the door: some decode, and errors come from many fields
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes


def test_encoder_inputs_fuzzed():
    """The encoder's inputs: shapes, dtypes, strides, sizes and values — a picture codes, or ValueError /
    LimitError / TypeError names the problem; nothing else escapes."""
    rng = np.random.default_rng(77)
    enc = jpegai_fast.Encoder(threads=1, max_pixels=1 << 16)
    dtypes = [np.uint8, np.uint16, np.int8, np.float32, np.float64, np.bool_, np.int64]
    coded = refused = 0
    for _ in range(120):
        if rng.random() < 0.5:  # a picture's form with random sides (some codable)
            shape = (int(rng.choice([0, 1, 2, 5, 17, 64, 130])), int(rng.choice([0, 1, 3, 16, 33, 100])), 3)
            dtype = np.uint8 if rng.random() < 0.8 else dtypes[int(rng.integers(len(dtypes)))]
        else:
            ndim = int(rng.integers(0, 5))
            shape = tuple(int(rng.choice([0, 1, 2, 3, 4, 7, 17, 64, 300])) for _ in range(ndim))
            dtype = dtypes[int(rng.integers(len(dtypes)))]
        try:
            a = (rng.random(shape) * 300).astype(dtype)
        except (ValueError, MemoryError):
            continue
        if a.ndim >= 2 and rng.random() < 0.3:
            a = a[::2] if rng.random() < 0.5 else np.swapaxes(a, 0, 1)  # non-contiguous views
        kwargs = [{}, {"bpp": float(rng.choice([-1.0, 0.0, 1e-6, 0.3, 1e3, np.nan]))},
                  {"quality": float(rng.choice([-5.0, 0.0, 61.5, 100.0, 101.0, np.inf]))},
                  {"rate_point": int(rng.integers(-2, 10))}][int(rng.integers(4))]
        try:
            data = enc.encode(a, **kwargs)
        except (ValueError, TypeError, jpegai_fast.LimitError):
            refused += 1
            continue
        coded += 1
        assert jpegai_fast.decode(data, max_pixels=1 << 16).shape == (*a.shape[:2], 3)  # grey (H, W): R = G = B
    assert coded > 0 and refused > 0, (coded, refused)
