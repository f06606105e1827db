"""Pillow images -> the encoder's input (uint8 RGB, upright), for the CLI and the Pillow plugin.

- EXIF orientation is applied (``ImageOps.exif_transpose``): a camera JPEG tagged "rotate 90" is coded upright.
- 16-bit and 32-bit integer and float modes are scaled to 8 bits, never clipped: "I;16*" by the top byte
  (v >> 8, i.e. the nearest of 257 levels per step), "I" by its full 16-bit range when the values fit it,
  "F" as 0..1 when its maximum is at most 1, else 0..255.
- Alpha is refused unless ``alpha="drop"`` (CLI ``--drop-alpha``): a codec that silently drops it loses data.
- Palette, CMYK, YCbCr, LAB, grey with alpha: converted by Pillow (alpha rules above).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

__all__ = ["to_rgb8"]

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def to_rgb8(im: Image.Image, alpha: str = "refuse") -> np.ndarray:
    """-> uint8 RGB (H, W, 3), C-contiguous.  ``alpha``: "refuse" (ValueError naming the option) or "drop"."""
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
        return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))
