"""jpegai_fast: a fast, bit-exact decoder for JPEG AI-style learned image compression.

The latent domain (container, rANS entropy coding, integer networks) is a C++ core (``_core``); the
pixel domain runs in ONNX Runtime.  Nothing here imports torch.

    import jpegai_fast
    data = jpegai_fast.encode(rgb, bpp=0.25)          # uint8 (H, W, 3) -> bytes
    rgb2 = jpegai_fast.decode(data)                   # -> uint8 (H, W, 3)
    dec = jpegai_fast.Decoder(operating_point="sop")  # sessions kept for many pictures
    latents = dec.decode_latents(data)                # ŷ, σ, indices: compressed-domain tasks
"""
from . import container, entropy
from . import pillow_plugin as pillow_plugin  # registers ".jai" with Pillow (open and save) on import
from .decoder import Decoder, decode
from .encoder import Encoder, encode
from .errors import BitstreamError, DeviceError, ImageFileError, JpegAiError, LimitError, RateError, RateWarning
from .model import Model

__version__ = "0.1.0"


def features() -> dict:
    """What this installation runs: version, the SIMD level the C++ core uses, hardware threads, ONNX Runtime's
    version and providers, the shipped models (name -> header model id) and the default one."""
    import onnxruntime as ort

    from . import _core
    from .model import DEFAULT_MODEL, MODELS_DIR, available_models, latent_model

    models = {name: latent_model(MODELS_DIR / name).model_id for name in available_models()}
    return {"version": __version__, "simd": _core.cpu_features(), "hardware_threads": _core.hardware_threads(),
            "onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "models": models,
            "default_model": DEFAULT_MODEL}
__all__ = ["BitstreamError", "DeviceError", "ImageFileError",
           "JpegAiError", "RateError", "RateWarning", "LimitError", "container", "entropy", "Decoder", "decode",
           "Encoder", "encode", "Model", "__version__"]
