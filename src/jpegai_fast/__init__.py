"""jpegai_fast: a fast, bit-exact decoder for JPEG AI-style learned image compression.

The latent domain (container, rANS entropy coding, integer networks) is a C++ core (``_core``); the
pixel domain runs in ONNX Runtime.  Nothing here imports torch.
"""
from .errors import BitstreamError, JpegAiError, LimitError
from . import container, entropy

__version__ = "0.1.0"
__all__ = ["BitstreamError", "JpegAiError", "LimitError", "container", "entropy", "__version__"]
