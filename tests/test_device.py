"""device="cuda": a clear error without onnxruntime-gpu, and the CUDA provider first when it exists.

No GPU is needed: the CUDA case replaces onnxruntime's provider list and session class with recorders,
so what is tested is the wiring (which providers every session is created with, and that a silent
fallback to the CPU is refused), not CUDA execution itself.
"""
from __future__ import annotations

import pathlib

import pytest

import jpegai_fast
from jpegai_fast import DeviceError, JpegAiError
from jpegai_fast.model import Model, providers_for

ort = pytest.importorskip("onnxruntime")
from shipped_model import requires_model  # noqa: E402

pytestmark = requires_model
CUDA = "CUDAExecutionProvider"


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has the CUDA provider")
@pytest.mark.parametrize("make", [lambda: jpegai_fast.Decoder(device="cuda"),
                                  lambda: jpegai_fast.Encoder(device="cuda"),
                                  lambda: jpegai_fast.decode(b"", device="cuda")])
def test_cuda_without_onnxruntime_gpu_names_the_fix(make):
    with pytest.raises(DeviceError, match="pip install onnxruntime-gpu") as e:
        make()
    assert isinstance(e.value, JpegAiError) and isinstance(e.value, RuntimeError) and e.value.field == "device"


class _Recorder:
    """Stands in for ort.InferenceSession: records the providers asked for, grants ``granted`` of them."""
    created: list = []
    granted = None

    def __init__(self, path, options, providers):
        self.asked = list(providers)
        _Recorder.created.append((pathlib.Path(path).stem, self.asked))

    def get_providers(self):
        return list(self.asked if _Recorder.granted is None else _Recorder.granted)


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", _Recorder)
    _Recorder.created, _Recorder.granted = [], None
    return _Recorder


def test_cuda_sessions_use_the_cuda_provider_first(fake_cuda):
    assert providers_for("cuda") == [CUDA, "CPUExecutionProvider"]
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    dec = jpegai_fast.Decoder(device="cuda", threads=1)
    for name in ("hyper_decoder_luma", "context_luma_stage0", "synthesis_bop_luma", "synthesis_sop_chroma"):
        dec.model.session(name)
    assert [n for n, _ in fake_cuda.created] == ["hyper_decoder_luma", "context_luma_stage0", "synthesis_bop_luma",
                                                  "synthesis_sop_chroma"]
    assert all(p == [CUDA, "CPUExecutionProvider"] for _, p in fake_cuda.created)


def test_silent_cpu_fallback_is_refused(fake_cuda):
    fake_cuda.granted = ["CPUExecutionProvider"]  # what ORT does when the CUDA libraries fail to load
    model = Model(device="cuda", threads=1)
    with pytest.raises(DeviceError, match="CUDA"):
        model.session("synthesis_bop_luma")


def test_unknown_device_is_a_value_error():
    with pytest.raises(ValueError):
        jpegai_fast.Decoder(device="tpu")
