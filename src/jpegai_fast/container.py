"""The codestream container (docs/bitstream.md): SOC | PIH | SOZ, SORP, SORS, UDI | EOC, CRC-32 per segment."""
from __future__ import annotations

from . import _core
from ._core import PictureHeader

__all__ = ["PictureHeader", "MARKERS", "write", "parse", "FORMAT_VERSION", "DEFAULT_MAX_PIXELS"]

FORMAT_VERSION: int = _core.FORMAT_VERSION
DEFAULT_MAX_PIXELS: int = _core.DEFAULT_MAX_PIXELS
MARKERS = {"SOZ": 0xFF88, "SORP": 0xFF89, "SORS": 0xFF8A, "UDI": 0xFF8C}
_NAMES = {v: k for k, v in MARKERS.items()}


def write(header: PictureHeader, segments: dict[str, bytes]) -> bytes:
    """A complete codestream: the header, then ``segments`` (name -> payload) in the given order."""
    try:
        items = [(MARKERS[name], bytes(payload)) for name, payload in segments.items()]
    except KeyError as e:
        raise ValueError(f"unknown segment {e.args[0]!r}; known: {sorted(MARKERS)}") from None
    return _core.write_codestream(header, items)


def parse(data, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PictureHeader, dict[str, bytes]]:
    """Validate and split a codestream.  Raises BitstreamError / LimitError naming the field at fault."""
    header, payloads = _core.parse_codestream(data, int(max_pixels))
    return header, {_NAMES[m]: p for m, p in payloads.items()}
