"""Model directories (docs/model_format.md): locate one, read model.bin, open ONNX Runtime sessions.

A :class:`Model` is what one Decoder / encoder holds: the integer tables of ``model.bin`` (as numpy
arrays and as the C++ ``LatentModel``) and the float graphs, each ORT session created on first use
and reused for every picture.  The ORT intra-op thread count is the same number the C++ pool gets,
and the two never run at the same time, so the cores are not oversubscribed.
"""
from __future__ import annotations

import os
import pathlib
import struct
import threading
import zlib

import numpy as np

from . import _core
from .errors import DeviceError

__all__ = ["MODELS_DIR", "available_models", "model_dir", "Model", "session_options", "providers_for"]

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
COMPONENTS = ("luma", "chroma")
DEVICES = ("cpu", "cuda")


def available_models() -> list[str]:
    """Names of the model directories shipped in the package (those holding a model.bin)."""
    return sorted(p.parent.name for p in MODELS_DIR.glob("*/model.bin"))


def model_dir(model: str | os.PathLike = "default") -> pathlib.Path:
    """"default" (the first shipped model), a shipped model's name, or a path to a model directory."""
    if isinstance(model, (str, os.PathLike)) and str(model) == "default":
        names = available_models()
        if not names:
            raise FileNotFoundError(f"no model directory with a model.bin under {MODELS_DIR}")
        return MODELS_DIR / names[0]
    p = pathlib.Path(model)
    if not p.is_absolute() and (MODELS_DIR / p / "model.bin").is_file():
        return MODELS_DIR / p
    if (p / "model.bin").is_file():
        return p
    raise FileNotFoundError(f"model {model!r}: not a shipped model ({available_models()}) nor a directory "
                            "with a model.bin")


# model.bin layout (docs/model_format.md); the C++ LatentModel validates the same file again.
_HEADER = struct.Struct("<8sIIQ")
_ENTRY = struct.Struct("<48sII4IQQ")
_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32}


def read_blob(data: bytes) -> dict[str, np.ndarray]:
    """model.bin -> {section name: read-only array}; ValueError on any inconsistency."""
    if len(data) < _HEADER.size + 4:
        raise ValueError("model.bin: too short")
    magic, version, n, total = _HEADER.unpack_from(data, 0)
    if magic != b"JAIFMDL\0" or version != 1 or total != len(data):
        raise ValueError("model.bin: bad magic, version or size")
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise ValueError("model.bin: CRC-32 mismatch")
    if _HEADER.size + n * _ENTRY.size > len(data) - 4:
        raise ValueError("model.bin: section table runs past the data")
    out = {}
    for i in range(n):
        name, code, ndim, *rest = _ENTRY.unpack_from(data, _HEADER.size + i * _ENTRY.size)
        shape, off, nbytes = tuple(rest[:ndim]), rest[4], rest[5]
        if code not in _DTYPES or ndim > 4:
            raise ValueError("model.bin: bad section entry")
        dt = np.dtype(_DTYPES[code]).newbyteorder("<")
        if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nbytes or off % 16 or off + nbytes > len(data) - 4:
            raise ValueError("model.bin: inconsistent section size/offset")
        arr = np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize, offset=off).reshape(shape)
        arr = arr.astype(dt.newbyteorder("="))
        arr.setflags(write=False)
        out[name.rstrip(b"\0").decode()] = arr
    return out


def providers_for(device: str) -> list[str]:
    """ORT execution providers for ``device`` ("cpu" or "cuda"); a clear error when CUDA is missing."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError("device='cuda' needs ONNX Runtime's CUDA execution provider, which this onnxruntime "
                              f"lacks (available: {ort.get_available_providers()}); fix: pip uninstall onnxruntime "
                              "&& pip install onnxruntime-gpu", "device")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"device must be one of {DEVICES}, got {device!r}")


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1  # graphs are run one after another; parallelism is intra-op only
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle ORT workers must not spin: they would steal the cores from the C++ pool and numpy stages that
    # run between graphs (measured on the 2-core box with a busy core: Kodak decode 357 ms spinning vs 99 ms).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No per-session memory arena: an arena keeps its high-water mark for the session's life, and with one
    # arena per graph a large picture's peaks would add up (hyper decoder + 4 context stages + synthesis)
    # instead of coming and going.  Freed tensors go back to the allocator (docs/stages.md, memory).
    opts.enable_cpu_mem_arena = False
    return opts


def resolve_threads(threads: int | None) -> int:
    if threads is None or threads == 0:
        return max(1, _core.hardware_threads())
    threads = int(threads)
    if threads < 1:
        raise ValueError("threads must be >= 1 (or None / 0 for all cores)")
    return threads


class Model:
    """One exported model directory, its tables and its lazily created ORT sessions."""

    def __init__(self, model: str | os.PathLike = "default", device: str = "cpu", threads: int | None = None):
        self.path = model_dir(model)
        self.device = device
        self.providers = providers_for(device)  # fail early on a missing CUDA EP
        self.threads = resolve_threads(threads)
        raw = (self.path / "model.bin").read_bytes()
        self.latent_model = _core.LatentModel(raw)  # validates the file; the decoder's integer half
        self.blob = read_blob(raw)
        b = self.blob
        self.channels = {"luma": int(b["meta.channels"][0]), "chroma": int(b["meta.channels"][1])}
        self.skip_threshold, self.z_offset, self.z_symbols, self.num_rates = (int(v) for v in b["meta.consts"][:4])
        # The fixed-point mean path (C++, bit-exact) when the model has one; else the float ONNX graphs.
        self.mean_path = (_core.MeanPath(raw, self.channels["luma"], self.channels["chroma"])
                          if "mean.y_frac" in b else None)
        self._sessions: dict = {}
        self._hsd: dict = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.path.name

    def gain_q7(self, comp: str, rate: int) -> np.ndarray:
        return self.blob[f"gain.{comp}.q7"][rate]

    def hsd(self, comp: str):
        """The C++ integer hyper-scale decoder of one component (encoder side)."""
        if comp not in self._hsd:
            b = self.blob
            args = []
            for i in (1, 2, 3):
                args += [b[f"hsd.{comp}.conv{i}.{k}"] for k in ("weight", "bias", "shift")]
            self._hsd[comp] = _core.HyperScaleDecoder(*args)
        return self._hsd[comp]

    def session(self, name: str):
        with self._lock:
            if name not in self._sessions:
                import onnxruntime as ort

                sess = ort.InferenceSession(str(self.path / f"{name}.onnx"), session_options(self.threads),
                                            providers=self.providers)
                if self.providers[0] not in sess.get_providers():
                    # ORT falls back to the CPU silently when the CUDA provider's libraries fail to load
                    raise DeviceError(f"device={self.device!r}: ONNX Runtime could not use {self.providers[0]} for "
                                      f"{name} (session providers: {sess.get_providers()}); check the CUDA / cuDNN "
                                      "libraries that onnxruntime-gpu needs", "device")
                self._sessions[name] = sess
            return self._sessions[name]

    def run(self, name: str, **inputs) -> np.ndarray:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return self.session(name).run(None, feeds)[0]
