"""jpegai_fast: a fast, bit-exact decoder for JPEG AI-style learned image compression.

The latent domain (container, rANS entropy coding, integer networks) is a C++ core (``_core``); the
pixel domain runs in ONNX Runtime.  Nothing here imports torch.

    import jpegai_fast
    data = jpegai_fast.encode(rgb, bpp=0.25)          # uint8 (H, W, 3) -> bytes; or quality=0..100, rate_point=r
    rgb2 = jpegai_fast.decode(data)                   # -> uint8 (H, W, 3)
    dec = jpegai_fast.Decoder(operating_point="sop")  # sessions kept for many pictures
    latents = dec.decode_latents(data)                # ŷ, σ, indices: compressed-domain tasks
    streams = jpegai_fast.encode_many(images, threads=4, quality=60)   # a thread pool, input order
    pictures = jpegai_fast.decode_many(streams, threads=4)
    jpegai_fast.features()                            # version, SIMD level, ORT providers, shipped models

Metrics (PSNR-YUV, MS-SSIM as training/rd_eval.py): :mod:`jpegai_fast.metrics`; Ray Data pipelines:
:mod:`jpegai_fast.ray` (extra ``[ray]``); Pillow: :func:`register_jai_opener`.
"""
from . import container, entropy
from . import pillow_plugin as pillow_plugin  # registers ".jai" with Pillow (open and save) on import
from .decoder import Decoder, decode
from .encoder import Encoder, encode
from .errors import (
    BitstreamError,
    ConversionWarning,
    DeviceError,
    ImageFileError,
    JpegAiError,
    LimitError,
    RateError,
    RateWarning,
)
from .model import Model
from .parallel import decode_many, encode_many
from .pillow_plugin import register_jai_opener

__version__ = "0.1.0"


def features() -> dict:
    """What this installation runs, as a dict: ``version``, ``simd`` (the SIMD level the C++ core uses),
    ``hardware_threads``, ``onnxruntime`` (its version) and ``providers``, ``models`` (shipped model name ->
    header model id) and ``default_model``.  ``jpegai-fast --version`` prints a summary."""
    import onnxruntime as ort

    from . import _core
    from .model import DEFAULT_MODEL, MODELS_DIR, available_models, latent_model

    models = {name: latent_model(MODELS_DIR / name).model_id for name in available_models()}
    return {"version": __version__, "simd": _core.cpu_features(), "hardware_threads": _core.hardware_threads(),
            "onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "models": models,
            "default_model": DEFAULT_MODEL}
__all__ = ["BitstreamError", "DeviceError", "ImageFileError",
           "JpegAiError", "RateError", "RateWarning", "ConversionWarning", "LimitError", "container", "entropy",
           "Decoder", "decode",
           "Encoder", "encode", "Model", "__version__", "encode_many", "decode_many", "register_jai_opener",
           "features"]
