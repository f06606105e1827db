"""Exceptions raised by jpegai_fast.  Both carry ``field``: the header field, substream or limit at fault."""
from __future__ import annotations


class JpegAiError(Exception):
    """Base class of every error jpegai_fast raises on purpose."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class BitstreamError(JpegAiError, ValueError):
    """The codestream is truncated, corrupted, or not a jpegai_fast stream."""


class LimitError(JpegAiError, ValueError):
    """A size, dimension or count exceeds a configured limit (e.g. ``max_pixels``)."""


class DeviceError(JpegAiError, RuntimeError):
    """The requested device cannot be used (e.g. ``device="cuda"`` without onnxruntime-gpu / CUDA)."""


class ImageFileError(JpegAiError, OSError):
    """What the Pillow plugin raises for a damaged, hostile or oversized .jai file: an OSError, as Pillow's own
    plugins raise, keeping the ``field`` of the BitstreamError / LimitError it wraps (its ``__cause__``)."""


class RateError(JpegAiError, ValueError):
    """A ``bpp`` target the encoder cannot reach (``strict=True``)."""


class RateWarning(UserWarning):
    """A ``bpp`` target the encoder could not reach: the smallest stream it can make was returned."""


class ConversionWarning(UserWarning):
    """The note that an input picture was converted to RGB before coding (palette, CMYK, YCbCr, LAB, HSV): CMYK
    and LAB go through Pillow's formulas without colour management, so their colours may shift."""
