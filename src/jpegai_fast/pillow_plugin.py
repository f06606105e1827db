"""Pillow plugin: ``Image.open("x.jai")`` and ``img.save("x.jai", quality=..., bpp=...)``.

Registered on ``import jpegai_fast``.  ``quality`` is 0–100 as in Pillow's other plugins (monotone, about
linear in log bpp over the shipped models' best rate points: vm33 below quality 70, vr_bop from there,
:func:`jpegai_fast.encoder.default_ladder`); ``rate_point`` (int) names a trained rate point of the default
model; ``bpp`` asks for rate control; default vr_bop's rate point 4 (quality 70).  Decode settings:
:func:`register_jai_opener` (``threads``,
``operating_point``, ``max_pixels``; as pillow-heif's ``register_heif_opener``).  Bad files raise
:class:`jpegai_fast.ImageFileError` (an OSError, as Pillow's own plugins raise, with the ``field`` at fault).
Size limit: ``register_jai_opener(max_pixels=N)``, else Pillow's ``Image.MAX_IMAGE_PIXELS`` (its
decompression-bomb error threshold is twice that), never above ``container.DEFAULT_MAX_PIXELS``; ``None``
there means our default.

Grey images (modes 1, L, LA with ``alpha="drop"``, I;16, I, F) are saved monochrome (4:0:0) and open as mode
"L"; others open as "RGB".  Metadata: ``save(..., exif=, icc_profile=, xmp=)``, by default the image's own
``info["exif"]`` / ``info["icc_profile"]`` / ``info["xmp"]`` (``exif=b""`` etc. leaves one out; once the EXIF
orientation has been applied to the pixels, the kept orientation is set to 1); ``Image.open`` returns them in
``info`` under the same keys.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFile

from . import container
from .errors import ImageFileError, JpegAiError

FORMAT = "JAI"
MAGIC = b"\xff\x80\xff\x82"  # SOC then the PIH marker, which must come first


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


# register_jai_opener's decode settings (operating_point: JaiImageFile.operating_point)
_OPENER: dict = {"threads": None, "max_pixels": None}


def max_pixels() -> int:
    """The pixel limit the plugin decodes under: ``register_jai_opener(max_pixels=)`` when given, else Pillow's
    bomb-error threshold, capped by our default."""
    if _OPENER["max_pixels"] is not None:
        return int(_OPENER["max_pixels"])
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return container.DEFAULT_MAX_PIXELS
    return int(min(2 * limit, container.DEFAULT_MAX_PIXELS))


def _as_image_error(e: JpegAiError) -> ImageFileError:
    err = ImageFileError(f"jpegai_fast: {e}", e.field)
    err.__cause__ = e
    return err


class JaiImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "jpegai_fast learned image codestream"
    operating_point: str | None = "bop"  # class-wide; register_jai_opener(operating_point=) sets it

    def _open(self):
        assert self.fp is not None  # Pillow opens plugins with the file set
        data = self.fp.read()
        if not _accept(data):
            raise SyntaxError("not a jpegai_fast codestream")
        try:
            header, segs = container.parse(data, max_pixels())
            if "MDS" in segs:  # (validated by parse) -> info["exif"], ["icc_profile"], ["xmp"]
                self.info.update(container.parse_metadata(segs["MDS"]))
        except JpegAiError as e:
            raise _as_image_error(e) from e
        self._size = container.display_size(header, segs)  # the display window (DWS) of a small picture
        self._mode = "L" if header.chroma_format == 0 else "RGB"  # monochrome (4:0:0) streams open as grey
        self.info["rate_point"] = header.rate_point
        self.info["operating_point"] = header.operating_point
        # one tile covering the picture: Pillow hands the whole file to JaiDecoder on load()
        self.tile = [ImageFile._Tile("jai", (0, 0) + self.size, 0, (self.operating_point,))]


class JaiDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        from .decoder import decode

        assert self.fd is not None  # _pulls_fd: Pillow hands the file over before decode()
        self.fd.seek(0)
        try:
            rgb = decode(self.fd.read(), operating_point=self.args[0], threads=_OPENER["threads"],
                         max_pixels=max_pixels())
        except JpegAiError as e:
            raise _as_image_error(e) from e
        if self.mode == "L":  # a monochrome stream: R = G = B
            rgb = rgb[:, :, 0]
        self.set_as_raw(np.ascontiguousarray(rgb).tobytes())
        return -1, 0


def _save(im: Image.Image, fp, filename):
    from .encoder import encode
    from .images import METADATA_KEYS, source_metadata, to_array, upright_metadata

    info = im.encoderinfo
    # EXIF orientation, 16-bit scaling, alpha refused unless dropped; grey modes -> (H, W), coded monochrome
    pixels = to_array(im, info.get("alpha", "refuse"))
    own = source_metadata(im)
    metadata = upright_metadata(im, {k: info[k] if k in info else own.get(k) for k in METADATA_KEYS})
    fp.write(encode(pixels, bpp=info.get("bpp"), quality=info.get("quality"), rate_point=info.get("rate_point"),
                    operating_point=info.get("operating_point", "bop"), substreams=info.get("substreams", 1),
                    **metadata))


def register_jai_opener(threads: int | None = None, operating_point: str | None = "bop",
                        max_pixels: int | None = None) -> None:
    """(Re-)register the ``.jai`` opener with these decode settings (as pillow-heif's ``register_heif_opener``);
    ``import jpegai_fast`` registers it with the defaults.  ``threads``: the decoder's threads (None or 0: all
    cores); ``operating_point``: "bop", "sop" or None (the one the stream's header names); ``max_pixels``: the
    size limit (None: Pillow's ``Image.MAX_IMAGE_PIXELS`` rule, see the module docstring).  The settings apply
    to every image opened afterwards, in the whole process."""
    from .model import OPERATING_POINTS

    if operating_point is not None and operating_point not in OPERATING_POINTS.values():
        raise ValueError(f"operating_point must be 'bop', 'sop' or None, got {operating_point!r}")
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 0):
        raise ValueError(f"threads must be None or an integer >= 0, got {threads!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) != max_pixels or max_pixels < 1):
        raise ValueError(f"max_pixels must be None or a positive integer, got {max_pixels!r}")
    _OPENER.update(threads=None if threads is None else int(threads),
                   max_pixels=None if max_pixels is None else int(max_pixels))
    JaiImageFile.operating_point = operating_point
    Image.register_open(FORMAT, JaiImageFile, _accept)
    Image.register_decoder("jai", JaiDecoder)
    Image.register_extension(FORMAT, ".jai")
    Image.register_mime(FORMAT, "image/x-jpegai-fast")


Image.register_open(FORMAT, JaiImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_decoder("jai", JaiDecoder)
Image.register_extension(FORMAT, ".jai")
Image.register_mime(FORMAT, "image/x-jpegai-fast")
