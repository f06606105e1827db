"""The codestream container (docs/bitstream.md): SOC | PIH | SOZ, SORP, SORS, UDI, MDS, DWS | EOC; CRC-32 each."""
from __future__ import annotations

from collections.abc import Mapping

from . import _core
from ._core import PictureHeader

__all__ = ["PictureHeader", "MARKERS", "METADATA_TYPES", "write", "parse", "write_metadata", "parse_metadata",
           "read_metadata", "display_size", "write_display_window", "FORMAT_VERSION", "DEFAULT_MAX_PIXELS",
           "MAX_METADATA_ENTRY"]

FORMAT_VERSION: int = _core.FORMAT_VERSION
DEFAULT_MAX_PIXELS: int = _core.DEFAULT_MAX_PIXELS
MAX_METADATA_ENTRY: int = _core.MAX_METADATA_ENTRY  # bytes per MDS entry (16 MiB)
MARKERS = {"SOZ": 0xFF88, "SORP": 0xFF89, "SORS": 0xFF8A, "UDI": 0xFF8C, "MDS": 0xFF8D, "DWS": 0xFF8E}
_NAMES = {v: k for k, v in MARKERS.items()}
# MDS entry types (docs/bitstream.md §1.1), by the names Pillow uses in Image.info
METADATA_TYPES = {"exif": 1, "icc_profile": 2, "xmp": 3}
_TYPE_NAMES = {v: k for k, v in METADATA_TYPES.items()}


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


def write_display_window(header: PictureHeader, width: int, height: int) -> bytes:
    """The DWS payload: the decoder crops the coded picture to its top-left width x height (ValueError if outside)."""
    return _core.write_display_window(header, int(width), int(height))


def display_size(header: PictureHeader, segments: Mapping[str, bytes]) -> tuple[int, int]:
    """(width, height) of the decoded picture: the DWS display window's, else the header's (the coded size)."""
    if "DWS" in segments:
        w, h = _core.parse_display_window(segments["DWS"], header)
        return int(w), int(h)
    return int(header.width), int(header.height)


def write_metadata(metadata: Mapping[str, bytes | str | None]) -> bytes | None:
    """{"exif", "icc_profile", "xmp": bytes} -> the MDS payload, or None when there is nothing to write (missing,
    None and empty entries are left out).  XMP may be given as str (stored as UTF-8).  ValueError on an unknown
    name or an entry above MAX_METADATA_ENTRY bytes."""
    unknown = set(metadata) - set(METADATA_TYPES)
    if unknown:
        raise ValueError(f"unknown metadata {sorted(unknown)}; known: {sorted(METADATA_TYPES)}")
    entries = []
    for name, kind in METADATA_TYPES.items():
        value = metadata.get(name)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
        if value:
            if len(value) > MAX_METADATA_ENTRY:
                raise ValueError(f"{name} is {len(value)} bytes; an entry holds at most {MAX_METADATA_ENTRY} (16 MiB)")
            entries.append((kind, bytes(value)))
    return _core.write_metadata(entries) if entries else None


def parse_metadata(payload) -> dict[str, bytes]:
    """An MDS payload -> {"exif" / "icc_profile" / "xmp": bytes}.  BitstreamError (field "MDS") if malformed."""
    return {_TYPE_NAMES[t]: v for t, v in _core.parse_metadata(payload).items()}


def read_metadata(data, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, bytes]:
    """The metadata a codestream carries ({} without an MDS segment); the whole stream is validated."""
    _, segs = parse(data, max_pixels)
    return parse_metadata(segs["MDS"]) if "MDS" in segs else {}
