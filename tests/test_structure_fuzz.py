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
            jpegai_fast.encode(np.ascontiguousarray(skdata.coffee()[:80, :80]), quality=2.5, tile_size=64)]


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
