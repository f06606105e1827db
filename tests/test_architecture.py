"""Architecture contracts (docs/architecture.md): one decode crosses into the C++ core once, and a model's
model.bin is read and parsed once per process, whatever number of decoders and encoders use it."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import model as model_mod
from shipped_model import requires_model

pytestmark = requires_model




def _core_calls(fn):
    """Names of the calls into jpegai_fast._core made while fn() runs (sys.setprofile sees every C call), less
    the synthesis blocks' ``run``."""
    calls = []

    def hook(frame, event, arg):
        if event == "c_call" and (getattr(arg, "__module__", None) == "jpegai_fast._core"
                                  or type(getattr(arg, "__self__", None)).__module__ == "jpegai_fast._core"):
            if frame.f_code.co_name in ("run", "_run_head") and frame.f_globals.get("__name__") == "jpegai_fast.model":
                return  # the synthesis' C++ blocks (pixel domain, float; docs/architecture.md hop 3), from _SplitRunner
            calls.append(getattr(arg, "__qualname__", repr(arg)).rsplit(".", 1)[-1])

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[40:200, 60:300])


@pytest.mark.parametrize("tile_size", [0, 64])
def test_one_decode_is_one_call_into_the_core(photo, tile_size):
    stream = jpegai_fast.encode(photo, rate_point=3, tile_size=tile_size)
    dec = jpegai_fast.Decoder(threads=1)
    dec.decode(stream)  # sessions made
    calls = _core_calls(lambda: dec.decode(stream))
    assert calls == ["decode", "yuv420_to_rgb"], calls  # the latent domain, then the colour stage
    assert len(_core_calls(lambda: dec.decode_latents(stream))) == 1


def test_one_rate_trial_is_one_call_plus_the_container(photo):
    enc = jpegai_fast.Encoder(threads=1)
    enc.encode(photo, rate_point=1)
    calls = _core_calls(lambda: enc.encode(photo, rate_point=2))
    # the latent grid (for the analysis), the rate-independent part, one trial, the container
    assert calls == ["latent_size", "prepare_encode", "code", "write_codestream"], calls


def test_model_bin_is_parsed_once(monkeypatch, photo):
    made, reads = [], []
    real_latent_model, real_read_bytes = model_mod._core.LatentModel, pathlib.Path.read_bytes

    def counting_latent_model(data):
        made.append(len(data))
        return real_latent_model(data)

    def counting_read_bytes(self):
        if self.name == "model.bin":
            reads.append(self)
        return real_read_bytes(self)

    model_mod._latent_model_at.cache_clear()
    monkeypatch.setattr(model_mod._core, "LatentModel", counting_latent_model)
    monkeypatch.setattr(pathlib.Path, "read_bytes", counting_read_bytes)
    try:
        stream = jpegai_fast.Encoder(threads=1).encode(photo, rate_point=2)
        for threads in (1, 2):
            jpegai_fast.Decoder(threads=threads).decode(stream)
        jpegai_fast.Decoder(model=jpegai_fast.Model(), operating_point="sop").decode(stream)
    finally:
        model_mod._latent_model_at.cache_clear()  # later tests get the real class again
    assert len(made) == 1 and len(reads) == 1


def test_a_model_instance_takes_the_decoders_threads_and_device():
    m = jpegai_fast.Model(threads=1)
    dec = jpegai_fast.Decoder(model=m, threads=2)
    assert dec.threads == 2 and dec.model.latent_model is m.latent_model
    assert jpegai_fast.Decoder(model=m).model is m
