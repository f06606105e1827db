"""Pillow plugin: ``Image.open("x.jai")`` and ``img.save("x.jai", quality=..., bpp=...)``.

Registered on ``import jpegai_fast``.  ``quality`` is this codec's scale (a float in [0, rate points − 1]),
not JPEG's 0–100; ``bpp`` asks for rate control; ``operating_point`` picks the synthesis on open
(set ``JaiImageFile.operating_point`` before opening).  Bad files raise :class:`jpegai_fast.ImageFileError`
(an OSError, as Pillow's own plugins raise, with the ``field`` at fault).  Size limit: Pillow's
``Image.MAX_IMAGE_PIXELS`` (its decompression-bomb error threshold is twice that), never above
``container.DEFAULT_MAX_PIXELS``; ``None`` there means our default.

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


def max_pixels() -> int:
    """The pixel limit the plugin decodes under: Pillow's bomb-error threshold, capped by our default."""
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
    operating_point = "bop"  # class-wide default; change before load() for SOP synthesis

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
        self._size = (header.width, header.height)
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
            rgb = decode(self.fd.read(), operating_point=self.args[0], max_pixels=max_pixels())
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


Image.register_open(FORMAT, JaiImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_decoder("jai", JaiDecoder)
Image.register_extension(FORMAT, ".jai")
Image.register_mime(FORMAT, "image/x-jpegai-fast")
