"""Registry of the codecs the bench compares: how each one encodes a Kodak photo and decodes it back to RGB.

Every codec object has

* ``available() -> str | None`` — None when usable, else the reason it is skipped (package missing, …);
* ``ladder`` — the encoder parameters swept for the rate–distortion curves (``param_name`` says what they are);
* ``encode(rgb, param) -> bytes`` — (H, W, 3) uint8 RGB -> the complete compressed stream (what is counted
  in bpp: every byte a decoder needs, headers included, no container beyond what is listed in ``stream``);
* ``decode(data, threads=1) -> (H, W, 3) uint8 RGB`` — **the timed decode**: compressed bytes already in
  memory -> RGB uint8 array, colour conversion included for every codec (``timing`` says exactly what runs);
* ``decode_native(data, threads=1)`` — the codec-only part where it can be separated from the colour
  conversion (the decoder's own output planes), else ``None``.

Decode-threads convention: ``threads=1`` one thread; ``threads=0`` the library's "all cores" setting.

VVC streams are not encoded here: they are the anchor's ``.266`` files (../shared/anchors/vvc, vvenc
medium, see its README), picked with :func:`vvc_anchor_stream`.  HEVC and AV1 are encoded from exactly the
anchor's 10-bit 4:2:0 input (bench/colour.py) and decoded back through the anchor's inverse conversion, so
that VVC, HEVC and AV1 differ only by the codec.  JPEG, JPEG 2000 and JPEG XL code the RGB picture with their
own colour transforms, as their users would call them.

The ``jpegai_fast-bop`` / ``jpegai_fast-sop`` entries are our codec through its public API (``jpegai_fast.encode``,
``jpegai_fast.Decoder``); they are on by default (``JPEGAI_BENCH_OURS=0`` leaves them out).
"""
from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bench.colour import rgb_to_yuv420p10, yuv420p10_to_rgb

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (its info banner goes to stderr on every encode)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KODAK = REPO_ROOT.parent / "shared" / "datasets" / "kodak"
DEFAULT_VVC_DIR = REPO_ROOT.parent / "shared" / "anchors" / "vvc"
VVC_QPS = (22, 27, 32, 37, 42, 47)


def kodak_dir() -> Path:
    return Path(os.environ.get("JPEGAI_BENCH_KODAK", DEFAULT_KODAK))


def vvc_dir() -> Path:
    return Path(os.environ.get("JPEGAI_BENCH_VVC", DEFAULT_VVC_DIR))


def kodak_images(names: Sequence[str] | None = None) -> list[str]:
    """Image names (kodim01 …) present in the Kodak folder, optionally restricted to ``names``."""
    found = sorted(p.stem for p in kodak_dir().glob("kodim*.png"))
    return [n for n in found if names is None or n in names]


def load_rgb(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(kodak_dir() / f"{name}.png") as im:
        return np.asarray(im.convert("RGB"))


def vvc_anchor_stream(name: str, qp: int) -> bytes:
    return (vvc_dir() / f"{name}_qp{qp}.266").read_bytes()


# --------------------------------------------------------------------------------------------- PyAV helpers


def _av():
    import av

    return av


def _ffmpeg_encode_yuv420p10(codec: str, planes, options: dict[str, str]) -> bytes:
    """One 10-bit 4:2:0 picture through an FFmpeg encoder (no global header: parameter sets in-band)."""
    av = _av()
    y = planes[0]
    h, w = y.shape
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuv420p10le"
    ctx.time_base = Fraction(1, 25)
    ctx.framerate = Fraction(25, 1)
    ctx.options = dict(options)
    frame = av.VideoFrame(w, h, "yuv420p10le")
    for plane, arr in zip(frame.planes, planes):
        padded = np.zeros((plane.height, plane.line_size // 2), dtype="<u2")
        padded[:, : plane.width] = arr
        plane.update(padded.tobytes())
    frame.pts = 0
    packets = list(ctx.encode(frame)) + list(ctx.encode(None))
    return b"".join(bytes(p) for p in packets)


def _ffmpeg_decode_frame(codec: str, data: bytes, threads: int):
    """bytes -> the single decoded frame: create the decoder, parse() the bytes into packets, decode, flush."""
    av = _av()
    ctx = av.CodecContext.create(codec, "r")
    ctx.thread_count = threads
    frames = []
    for packet in ctx.parse(data):
        frames.extend(ctx.decode(packet))
    for packet in ctx.parse(None):
        frames.extend(ctx.decode(packet))
    frames.extend(ctx.decode(None))
    if len(frames) != 1:
        raise RuntimeError(f"{codec}: expected 1 frame, got {len(frames)}")
    return frames[0]


def _yuv420p10_planes(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (no copy) of a yuv420p10le frame's three planes, line padding cut off."""
    if frame.format.name != "yuv420p10le":
        raise RuntimeError(f"decoder output {frame.format.name}, expected yuv420p10le")
    out = []
    for p in frame.planes:
        a = np.frombuffer(p, dtype="<u2").reshape(p.height, p.line_size // 2)[:, : p.width]
        out.append(a)
    return out[0], out[1], out[2]


def _pkg_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def ffmpeg_versions() -> dict[str, Any]:
    try:
        av = _av()
    except ImportError:
        return {}
    libs = {k: ".".join(map(str, v)) for k, v in av.library_versions.items() if k == "libavcodec"}
    out = {"av (PyAV)": av.__version__, **libs}
    try:
        out["ffmpeg"] = av.ffmpeg_version_info
    except AttributeError:
        pass
    return out


# --------------------------------------------------------------------------------------------- base class


@dataclass
class Codec:
    name: str
    label: str
    param_name: str
    ladder: tuple = ()
    thread_options: tuple = (1,)
    stream: str = ""  # what the bytes are
    timing: str = ""  # what decode() includes
    native_timing: str | None = None  # what decode_native() includes (None: not separable)
    encoder_settings: str = ""
    makes_streams: bool = True  # False: streams come from elsewhere (VVC anchor)
    cache_streams: bool = True  # False: re-encode every run (the stream depends on more than the versions)
    cache_name: str = ""  # stream-cache namespace (default: name); codecs sharing one share their streams
    extra: dict = field(default_factory=dict)

    def available(self) -> str | None:
        return None

    def encode(self, rgb: np.ndarray, param) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        raise NotImplementedError

    def decode_native(self, data: bytes, threads: int = 1):
        return None

    def versions(self) -> dict[str, Any]:
        return {}

    def cache_key(self) -> dict[str, Any]:
        """Anything besides the settings and versions that the encoded bytes depend on."""
        return {}

    def match_param(self, target_bpp: float):
        """Encoder parameter hitting ``target_bpp`` (rate control), or None: pick the nearest ladder point."""
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "codec": self.name,
            "label": self.label,
            "available": self.available() is None,
            "skip_reason": self.available(),
            "stream": self.stream,
            "encoder": self.encoder_settings,
            "ladder": f"{self.param_name} ∈ {list(self.ladder)}" if self.ladder else None,
            "decode timing (bytes -> RGB uint8)": self.timing,
            "codec-only timing": self.native_timing,
            "decode threads": ", ".join("1" if t == 1 else "all (library auto)" for t in self.thread_options),
            "versions": self.versions(),
        }


# --------------------------------------------------------------------------------------------- FFmpeg YUV codecs


class _FFmpegYuvCodec(Codec):
    decoder: str = ""
    encoder: str | None = None

    def available(self) -> str | None:
        try:
            av = _av()
        except ImportError as exc:
            return f"PyAV not installed ({exc}); pip install av"
        need = [self.decoder] + ([self.encoder] if self.encoder and self.makes_streams else [])
        missing = [c for c in need if c not in av.codecs_available]
        if missing:
            return f"this PyAV/FFmpeg build has no {', '.join(missing)}"
        return None

    def decode_native(self, data: bytes, threads: int = 1):
        return _yuv420p10_planes(_ffmpeg_decode_frame(self.decoder, data, threads))

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        return yuv420p10_to_rgb(*_yuv420p10_planes(_ffmpeg_decode_frame(self.decoder, data, threads)))

    def versions(self) -> dict[str, Any]:
        return ffmpeg_versions()


_YUV_TIMING = (
    "av.CodecContext.create('{dec}', 'r') with thread_count = threads, parse() the bytes into packets, decode, "
    "flush (parse(None), decode(None)) -> yuv420p10le frame -> numpy views of its planes -> the anchor's inverse "
    "conversion in numpy float64 (bilinear type-0 chroma upsampling, BT.709 limited range -> RGB, round, clip; "
    "bench/colour.py, single-threaded numpy)"
)
_YUV_NATIVE = (
    "the same without the colour conversion: bytes -> decoder created, parse, decode, flush -> yuv420p10le "
    "planes as numpy views"
)


class VVC(_FFmpegYuvCodec):
    decoder = "vvc"

    def __init__(self):
        super().__init__(
            name="vvc",
            label="VVC (vvenc medium; FFmpeg vvc decoder)",
            param_name="QP",
            ladder=VVC_QPS,
            thread_options=(1, 0),
            stream="the anchor's raw Annex-B .266 file (SPS, PPS, ALF APS, one IDR slice), 10-bit 4:2:0",
            timing=_YUV_TIMING.format(dec="vvc"),
            native_timing=_YUV_NATIVE,
            encoder_settings="not encoded here: ../shared/anchors/vvc (VVenC 1.14.0 --preset medium, all-intra, "
                             "QP 22–47, PerceptQPA 0; see its README)",
            makes_streams=False,
        )

    def available(self) -> str | None:
        reason = super().available()
        if reason:
            return reason
        if not (vvc_dir() / "anchor_rgb.csv").exists():
            return f"VVC anchor folder {vvc_dir()} not found (set JPEGAI_BENCH_VVC)"
        return None


class HEVC(_FFmpegYuvCodec):
    decoder = "hevc"
    encoder = "libx265"

    def __init__(self):
        super().__init__(
            name="hevc",
            label="HEVC intra (x265 medium; FFmpeg hevc decoder)",
            param_name="QP",
            ladder=(17, 20, 23, 26, 29, 32, 35, 38, 41, 44, 47, 51),
            thread_options=(1, 0),
            stream="raw Annex-B HEVC (VPS, SPS, PPS, one IDR slice), Main 10, 4:2:0, from the anchor's 10-bit "
                   "4:2:0 conversion of the RGB photo",
            timing=_YUV_TIMING.format(dec="hevc"),
            native_timing=_YUV_NATIVE,
            encoder_settings="PyAV libx265, preset medium, tune psnr, x265-params qp=<QP>:ipratio=1:keyint=1:"
                             "info=0 (constant QP, no encoder-info SEI)",
        )

    def encode(self, rgb: np.ndarray, param) -> bytes:
        return _ffmpeg_encode_yuv420p10(
            "libx265", rgb_to_yuv420p10(rgb),
            {"preset": "medium", "tune": "psnr",
             "x265-params": f"qp={int(param)}:ipratio=1:keyint=1:info=0:log-level=error"},
        )


class AV1(_FFmpegYuvCodec):
    decoder = "libdav1d"
    encoder = "libsvtav1"

    def __init__(self):
        super().__init__(
            name="av1",
            label="AV1 still (SVT-AV1 preset 6; dav1d)",
            param_name="CRF",
            ladder=(10, 16, 22, 28, 34, 40, 46, 52, 58, 63),
            thread_options=(1, 0),
            stream="raw AV1 OBUs of one temporal unit (temporal delimiter, sequence header, key frame), Main "
                   "10-bit 4:2:0, from the anchor's 10-bit 4:2:0 conversion (no AVIF/ISOBMFF wrapper)",
            timing=_YUV_TIMING.format(dec="libdav1d"),
            native_timing=_YUV_NATIVE,
            encoder_settings="PyAV libsvtav1, preset 6, crf <CRF>, svtav1-params tune=1 (PSNR)",
        )

    def encode(self, rgb: np.ndarray, param) -> bytes:
        return _ffmpeg_encode_yuv420p10(
            "libsvtav1", rgb_to_yuv420p10(rgb),
            {"preset": "6", "crf": str(int(param)), "svtav1-params": "tune=1"},
        )


# --------------------------------------------------------------------------------------------- Pillow codecs


def _pil_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)


class JPEG(Codec):
    def __init__(self):
        super().__init__(
            name="jpeg",
            label="JPEG (Pillow / libjpeg-turbo, 4:2:0)",
            param_name="quality",
            ladder=(5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
            thread_options=(1,),
            stream="baseline JFIF file (4:2:0, optimised Huffman tables)",
            timing="Image.open(BytesIO(bytes)), load() (libjpeg-turbo: entropy decode, IDCT, fancy chroma "
                   "upsampling and YCbCr->RGB inside libjpeg-turbo, SIMD), np.asarray -> RGB uint8; one thread",
            native_timing=None,
            encoder_settings="Pillow save(format='JPEG', quality=<q>, subsampling=2 (4:2:0), optimize=True)",
        )

    def available(self) -> str | None:
        from PIL import features

        return None if features.check("jpg") else "Pillow built without JPEG support"

    def encode(self, rgb, param) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=int(param), subsampling=2, optimize=True)
        return buf.getvalue()

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        return _pil_decode(data)

    def versions(self):
        from PIL import features

        return {"Pillow": _pkg_version("pillow"), "libjpeg-turbo": features.version("jpg"),
                "libjpeg_turbo": features.check_feature("libjpeg_turbo")}


class JPEG2000(Codec):
    def __init__(self):
        super().__init__(
            name="j2k",
            label="JPEG 2000 (Pillow / OpenJPEG)",
            param_name="target bpp",
            ladder=(0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.45, 0.65, 0.9, 1.3, 1.8, 2.6),
            thread_options=(1,),
            stream="raw JPEG 2000 codestream (.j2k, no JP2 boxes), 9/7 irreversible wavelet, ICT colour "
                   "transform, one quality layer",
            timing="Image.open(BytesIO(bytes)), load() (OpenJPEG: tier-1/tier-2 decode, inverse DWT, inverse ICT "
                   "inside OpenJPEG; Pillow does not enable OpenJPEG threads), np.asarray -> RGB uint8",
            native_timing=None,
            encoder_settings="Pillow save(format='JPEG2000', no_jp2=True, irreversible=True, mct=1, "
                             "quality_mode='rates', quality_layers=[24 / target_bpp]) (OpenJPEG rate = "
                             "compression ratio vs 24-bit RGB)",
        )

    def available(self) -> str | None:
        from PIL import features

        return None if features.check("jpg_2000") else "Pillow built without OpenJPEG"

    def encode(self, rgb, param) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG2000", no_jp2=True, irreversible=True, mct=1,
                                  quality_mode="rates", quality_layers=[24.0 / float(param)])
        return buf.getvalue()

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        return _pil_decode(data)

    def versions(self):
        from PIL import features

        return {"Pillow": _pkg_version("pillow"), "OpenJPEG": features.version("jpg_2000")}


class JPEGXL(Codec):
    def __init__(self):
        super().__init__(
            name="jxl",
            label="JPEG XL (libjxl via pillow-jxl-plugin)",
            param_name="quality",
            ladder=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
            thread_options=(1, 0),
            stream="bare JPEG XL codestream (no container), lossy VarDCT in XYB",
            timing="pillow_jxl.Decoder(num_threads=0 for 1 thread, -1 for all cores)(bytes) (libjxl: decode, "
                   "XYB -> sRGB inside libjxl) -> RGB bytes -> np.frombuffer reshape (no copy)",
            native_timing=None,
            encoder_settings="pillow_jxl.Encoder(mode='RGB', lossless=False, quality=<q>, effort=7, "
                             "decoding_speed=0, use_container=False, use_original_profile=False)",
        )

    def available(self) -> str | None:
        try:
            import pillow_jxl  # noqa: F401
        except ImportError as exc:
            return f"pillow-jxl-plugin not installed ({exc}); pip install pillow-jxl-plugin"
        return None

    def encode(self, rgb, param) -> bytes:
        from pillow_jxl import Encoder

        h, w, _ = rgb.shape
        enc = Encoder(mode="RGB", lossless=False, quality=float(param), decoding_speed=0, effort=7,
                      use_container=False, use_original_profile=False, num_threads=-1)
        return bytes(enc(np.ascontiguousarray(rgb).tobytes(), w, h, jpeg_encode=False))

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        from pillow_jxl import Decoder

        dec = Decoder(num_threads=0 if threads == 1 else -1)
        _jpeg, info, raw, *_ = dec(data)
        if info.mode != "RGB":
            raise RuntimeError(f"JPEG XL decoder returned mode {info.mode}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(info.height, info.width, 3)

    def versions(self):
        return {"pillow-jxl-plugin": _pkg_version("pillow-jxl-plugin")}


# --------------------------------------------------------------------------------------------- ours


STREAM_OP = "bop"  # operating point written in the header of our streams (both decoders read them)
OURS_ENV = "JPEGAI_BENCH_OURS"  # "0" leaves our decoder out (e.g. to time only the other codecs)
PRECISION_ENV = "JPEGAI_BENCH_PRECISION"  # our synthesis precision: fp32 (default) or int8 (opt-in graphs)


def bench_precision() -> str:
    value = os.environ.get(PRECISION_ENV, "fp32").lower()
    if value not in ("fp32", "int8"):
        raise ValueError(f"{PRECISION_ENV} must be fp32 or int8, got {value!r}")
    return value


ENCODER_SOURCES = ("encoder.py", "model.py", "container.py", "entropy.py", "synthesis.py", "colour.py")


def _jpegai_digest() -> str:
    """Hash of what our streams depend on: every shipped model's files (a bpp target may pick any of them,
    model_for_bpp), the encoder's Python sources and the compiled core.  Part of the stream cache key, so a
    retrained model or a changed encoder re-encodes."""
    import hashlib

    import jpegai_fast
    from jpegai_fast.model import available_models, model_dir

    h = hashlib.sha256()
    pkg = Path(jpegai_fast.__file__).resolve().parent
    files = sorted(p for name in available_models() for p in model_dir(name).iterdir() if p.is_file())
    files += [pkg / f for f in ENCODER_SOURCES if (pkg / f).exists()]
    try:
        from jpegai_fast import _core

        files.append(Path(_core.__file__))
    except ImportError:
        pass
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


class JpegAiFast(Codec):
    """Our codec through its public API only.

    Streams: ``jpegai_fast.encode(rgb, quality=k)`` at the knots of the default quality ladder (the ladder:
    each knot a trained rate point of the shipped model measured best there, ``encoder.default_ladder``), and
    ``jpegai_fast.encode(rgb, bpp=target)`` (the encoder's rate control) for the matched-bitrate
    streams of the decode benchmark (target = the VVC stream's bpp).  The coded latents do not depend on the
    operating point (the encoder only writes it into the header), so BOP and SOP share one set of streams
    (``operating_point="bop"`` in the header, cache namespace "jpegai_fast"): the SOP rows decode them with
    ``Decoder(operating_point="sop")``, which picks the SOP synthesis whatever the header says.  Decode: one
    ``jpegai_fast.Decoder(operating_point=op, threads=1 or None)`` per thread setting,
    created once and kept (as a user decoding many pictures would); its ORT sessions are created at the first
    decode, which is the untimed check / warm-up.  After every decode ``Decoder.last_timing`` (seconds per
    stage) is appended to :attr:`stage_log` for the stage breakdown.
    """

    def __init__(self, op: str):
        super().__init__(
            name=f"jpegai_fast-{op.lower()}",
            label=f"jpegai_fast {op.upper()}",
            param_name="quality",
            ladder=(),
            thread_options=(1, 0),
            stream="jpegai_fast codestream (container header, z and rANS residual substreams), 8-bit RGB coded as "
                   "YUV 4:2:0 latents",
            timing="jpegai_fast.Decoder(operating_point, threads=1 or None).decode(bytes) -> RGB uint8: latent "
                   "decoding in C++ (parse, z, hyper-scale, rANS residuals), hyper decoder and luma context model, "
                   "synthesis in ONNX Runtime, YUV 4:2:0 -> RGB (numpy); Decoder object created once outside the "
                   "timing, its sessions at the untimed warm-up decode",
            native_timing=None,
            encoder_settings="jpegai_fast.encode(rgb, quality=<knot>) for the RD ladder (the knots of "
                             "encoder.default_ladder: each a trained rate point of the model that wins there); "
                             "jpegai_fast.encode(rgb, bpp=<VVC stream bpp>) (rate control: largest quality at most "
                             "the target, within 10 % below when reachable) for matched streams; one set of streams "
                             "for BOP and SOP (header operating point BOP; the SOP decoder is "
                             "Decoder(operating_point='sop'))",
            cache_name=f"jpegai_fast-{op.lower()}",  # bpp targets pick a model per operating point (model_for_bpp)
        )
        self.op = op.lower()
        self._decoders: dict = {}
        self._reason: str | None | bool = False  # False: not probed yet
        self._digest: str | None = None
        self.stage_log: list[dict[str, float]] = []

    def available(self) -> str | None:
        if self._reason is not False:
            return self._reason
        if os.environ.get(OURS_ENV, "1").lower() in ("0", "false", "no"):
            self._reason = f"left out ({OURS_ENV}=0)"
            return self._reason
        try:
            import jpegai_fast
        except ImportError as exc:
            self._reason = f"jpegai_fast not importable ({exc}); pip install -e ."
            return self._reason
        try:
            jpegai_fast.Encoder()  # the default model loads
            # the default quality ladder's knots: each one a (model, rate point) stream exactly
            self.ladder = tuple(k for k, _, _ in jpegai_fast.encoder.default_ladder(STREAM_OP)) or tuple(
                range(0, 101, 10))
            self._reason = None
        except Exception as exc:  # noqa: BLE001 — any failure to load the model is a skip reason
            self._reason = f"jpegai_fast model could not be loaded: {type(exc).__name__}: {exc}"
        return self._reason

    def match_param(self, target_bpp: float):
        """The encoder parameter for a matched-bitrate stream: rate control to ``target_bpp``."""
        return ("bpp", round(float(target_bpp), 6))

    def encode(self, rgb, param) -> bytes:
        import jpegai_fast

        if isinstance(param, (tuple, list)) and param[0] == "bpp":  # the shipped model measured best at that rate
            return bytes(jpegai_fast.encode(rgb, bpp=float(param[1]), operating_point=self.op))
        return bytes(jpegai_fast.encode(rgb, quality=int(param), operating_point=STREAM_OP))

    def decoder(self, threads: int = 1):
        dec = self._decoders.get(threads)
        if dec is None:
            import jpegai_fast

            dec = self._decoders[threads] = jpegai_fast.Decoder(operating_point=self.op,
                                                                threads=1 if threads == 1 else None,
                                                                precision=bench_precision())
        return dec

    def decode(self, data: bytes, threads: int = 1) -> np.ndarray:
        dec = self.decoder(threads)
        out = dec.decode(data)
        log = self.stage_log
        log.append(dict(dec.last_timing))
        if len(log) > 256:
            del log[:128]
        return out

    def versions(self):
        return {"jpegai_fast": _pkg_version("jpegai_fast")}

    def cache_key(self) -> dict[str, Any]:
        if self._digest is None:
            self._digest = _jpegai_digest()
        return {"jpegai_fast sources+model": self._digest}


# --------------------------------------------------------------------------------------------- registry


def _build_registry() -> dict[str, Codec]:
    codecs: list[Codec] = [JpegAiFast("BOP"), JpegAiFast("SOP"), VVC(), HEVC(), AV1(), JPEG(), JPEG2000(), JPEGXL()]
    return {c.name: c for c in codecs}


CODECS: dict[str, Codec] = _build_registry()
ANCHOR = "vvc"


def available_codecs() -> dict[str, Codec]:
    return {k: c for k, c in CODECS.items() if c.available() is None}


def skipped_codecs() -> dict[str, str]:
    return {k: c.available() for k, c in CODECS.items() if c.available() is not None}


def vvencapp_path() -> str | None:
    """vvencapp on PATH (the suite could then make its own VVC streams; not used yet: the anchor is used)."""
    return shutil.which("vvencapp")
