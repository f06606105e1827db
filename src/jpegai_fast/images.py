"""Pillow images -> the encoder's input (uint8 RGB or grey, upright) and the metadata to keep, for the CLI and
the Pillow plugin.

- EXIF orientation is applied (``ImageOps.exif_transpose``): a camera JPEG tagged "rotate 90" is coded upright.
- 16-bit and 32-bit integer and float modes are scaled to 8 bits, never clipped: "I;16*" by the top byte
  (v >> 8, i.e. the nearest of 257 levels per step), "I" by its full 16-bit range when the values fit it,
  "F" as 0..1 when its maximum is at most 1, else 0..255.
- Alpha is refused unless ``alpha="drop"`` (CLI ``--drop-alpha``): a codec that silently drops it loses data.
- Palette, CMYK, YCbCr, LAB, HSV: converted to RGB by Pillow with a note (:class:`ConversionWarning`; CMYK and LAB
  without colour management); grey with alpha: alpha rules above.
- Grey modes (1, L, LA, La, I;16*, I, F) give a 2-D array from :func:`to_array`: the encoder codes it
  monochrome (4:0:0).  :func:`to_rgb8` repeats it into three equal channels instead.
- Metadata (:func:`source_metadata`, :func:`upright_metadata`): EXIF, ICC profile and XMP of ``im.info``; once
  the orientation has been applied to the pixels, the kept EXIF's orientation tag (and XMP's tiff:Orientation)
  is set to 1, so a viewer does not rotate the upright picture again.
"""
from __future__ import annotations

import re
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

from .errors import ConversionWarning

__all__ = ["to_rgb8", "to_array", "is_grey", "source_metadata", "upright_metadata", "exif_orientation"]

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_GREY_MODES = {"1", "L", "LA", "La", "I", "F"}
_ORIENTATION = 0x0112
METADATA_KEYS = ("exif", "icc_profile", "xmp")


def is_grey(im: Image.Image) -> bool:
    """An explicitly grey picture (its mode), coded monochrome; palette pictures are not, even with a grey palette."""
    return im.mode in _GREY_MODES or im.mode.startswith("I;16")


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def to_rgb8(im: Image.Image, alpha: str = "refuse") -> np.ndarray:
    """-> uint8 RGB (H, W, 3), C-contiguous.  ``alpha``: "refuse" (ValueError naming the option) or "drop"."""
    a = to_array(im, alpha)
    return a if a.ndim == 3 else np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))


def to_array(im: Image.Image, alpha: str = "refuse") -> np.ndarray:
    """-> uint8 grey (H, W) for grey modes (:func:`is_grey`), else uint8 RGB (H, W, 3); C-contiguous, upright."""
    if alpha not in ("refuse", "drop"):
        raise ValueError(f"alpha must be 'refuse' or 'drop', got {alpha!r}")
    im = ImageOps.exif_transpose(im) or im
    if _has_alpha(im) and alpha == "refuse":
        raise ValueError(f"the picture has an alpha channel ({im.mode}), which this codec does not code; pass "
                         "alpha='drop' (CLI: --drop-alpha) to code the colour channels only")
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im)
        if im.mode.startswith("I;16"):
            g = (a.astype(np.uint32) >> 8).astype(np.uint8)
        elif im.mode == "I":
            a = a.astype(np.int64)
            g = (np.clip(a, 0, 65535) >> 8).astype(np.uint8) if a.max() > 255 else np.clip(a, 0, 255).astype(np.uint8)
        else:
            a = a.astype(np.float64)
            scale = 255.0 if np.nanmax(a) <= 1.0 else 1.0
            g = np.clip(np.rint(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(g)
    if im.mode in _CONVERTED_MODES:
        warnings.warn(f"the {im.mode} picture is converted to RGB before coding ({_CONVERTED_MODES[im.mode]})",
                      ConversionWarning, stacklevel=2)
    return np.ascontiguousarray(np.asarray(im.convert("L" if is_grey(im) else "RGB")))


_CONVERTED_MODES = {"P": "palette expanded, exact", "PA": "palette expanded, alpha dropped",
                    "CMYK": "Pillow's formula, no colour management: colours may shift",
                    "YCbCr": "Pillow's JPEG Y'CbCr formula", "LAB": "Pillow's formula, no colour management",
                    "HSV": "Pillow's formula"}


def exif_orientation(im: Image.Image) -> int:
    """The orientation Pillow's ``exif_transpose`` applies (EXIF tag 0x0112, else XMP's tiff:Orientation): 1 upright."""
    try:
        v = int(im.getexif().get(_ORIENTATION, 1))
    except (TypeError, ValueError):
        return 1
    return v if 1 <= v <= 8 else 1


def source_metadata(im: Image.Image) -> dict[str, bytes]:
    """EXIF, ICC profile and XMP of ``im.info`` (those present and non-empty; XMP text as UTF-8 bytes)."""
    out = {}
    for key in METADATA_KEYS:
        v = im.info.get(key)
        if isinstance(v, Image.Exif):
            v = v.tobytes()
        if isinstance(v, str):
            v = v.encode("utf-8")
        if isinstance(v, (bytes, bytearray)) and v:
            out[key] = bytes(v)
    return out


def upright_metadata(im: Image.Image, metadata: dict) -> dict:
    """``metadata`` to store with the pixels :func:`to_array` made of ``im``: when ``im`` carried an orientation
    other than 1 (so the pixels were turned upright), the EXIF orientation tag and XMP's tiff:Orientation are set
    to 1; every other byte is kept.  An ``Image.Exif`` value becomes bytes."""
    out = dict(metadata)
    if isinstance(out.get("exif"), Image.Exif):
        out["exif"] = out["exif"].tobytes()
    if exif_orientation(im) == 1:
        return out
    if isinstance(out.get("exif"), (bytes, bytearray)):
        out["exif"] = _exif_with_orientation_1(bytes(out["exif"]))
    xmp = out.get("xmp")
    if isinstance(xmp, str):
        out["xmp"] = re.sub(r'(tiff:Orientation(?:="|>))[0-9]', r"\g<1>1", xmp)
    elif isinstance(xmp, (bytes, bytearray)):
        out["xmp"] = re.sub(rb'(tiff:Orientation(?:="|>))[0-9]', rb"\g<1>1", bytes(xmp))
    return out


def _exif_with_orientation_1(exif: bytes) -> bytes:
    """The orientation entry of IFD0 (SHORT, count 1) set to 1 in place; anything unreadable is left as it is."""
    b = bytearray(exif)
    base = 6 if b.startswith(b"Exif\x00\x00") else 0
    if len(b) < base + 8 or bytes(b[base:base + 2]) not in (b"II", b"MM"):
        return exif
    e = "<" if b[base] == ord("I") else ">"
    ifd = base + struct.unpack_from(e + "I", b, base + 4)[0]
    if ifd + 2 > len(b):
        return exif
    for i in range(struct.unpack_from(e + "H", b, ifd)[0]):
        q = ifd + 2 + 12 * i
        if q + 12 > len(b):
            break
        tag, kind, count = struct.unpack_from(e + "HHI", b, q)
        if tag == _ORIENTATION and kind == 3 and count == 1:
            struct.pack_into(e + "H", b, q + 8, 1)
    return bytes(b)
