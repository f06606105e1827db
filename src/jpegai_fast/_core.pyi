"""Type stubs of the C++ core module (csrc/bindings.cpp).

Checked against the compiled module by ``python -m mypy.stubtest jpegai_fast._core`` (.ci/run).  stubtest
cannot see pybind11 signatures (they are builtins without ``__text_signature__``), so argument names,
defaults and types here follow the ``py::arg`` lists and lambdas of bindings.cpp by hand.  Arrays are typed
with the dtype the binding requires (``require<T>``: C-contiguous, that exact dtype, else ValueError).
"""
from collections.abc import Sequence
from typing import Any, NoReturn, TypeAlias

import numpy as np
import numpy.typing as npt

# What ByteView accepts: any object with the buffer protocol (non-contiguous buffers are copied first).
_Bytes: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[Any]

NUM_LEVELS: int
SIGMA_MIN: float
SIGMA_MAX: float
LOG_SIGMA_FRAC_BITS: int
PROB_BITS: int
SKIP_INDEX: int
MAX_SUBSTREAMS: int
RANS_LANES: int
FORMAT_VERSION: int
MAX_LOG_SIGMA: int
DEFAULT_MAX_PIXELS: int
MAX_METADATA_ENTRY: int

def sigma_levels() -> npt.NDArray[np.float64]: ...
def table_hash() -> int: ...
def table_radius(k: int, /) -> int: ...
def table_escape_order(k: int, /) -> int: ...
def table_freqs(k: int, /) -> npt.NDArray[np.uint16]: ...
def scale_index_map(
    s: npt.NDArray[np.int32], gain_log: npt.NDArray[np.int32], skip_below: int
) -> npt.NDArray[np.uint8]: ...
def encode_residual(
    symbols: npt.NDArray[np.int16], scale_index: npt.NDArray[np.uint8], substreams: int = 1, threads: int = 0
) -> bytes: ...
def decode_residual(
    data: _Bytes, scale_index: npt.NDArray[np.uint8], threads: int = 0, kernel: str = "auto"
) -> npt.NDArray[np.int16]: ...
def residual_information_bits(symbols: npt.NDArray[np.int16], scale_index: npt.NDArray[np.uint8]) -> float: ...
def hardware_threads() -> int: ...
def cpu_features() -> str: ...

class FactorizedModel:
    def __init__(self, cdf: npt.NDArray[np.uint16], offset: int) -> None: ...
    @property
    def channels(self) -> int: ...
    @property
    def symbols(self) -> int: ...
    @property
    def offset(self) -> int: ...
    def encode(self, values: npt.NDArray[np.int16], substreams: int = 1, threads: int = 0) -> bytes: ...
    def decode(self, data: _Bytes, plane_shape: Sequence[int], threads: int = 0) -> npt.NDArray[np.int16]: ...

class HyperScaleDecoder:
    def __init__(
        self,
        w1: npt.NDArray[np.int8], b1: npt.NDArray[np.int32], s1: npt.NDArray[np.int8],
        w2: npt.NDArray[np.int8], b2: npt.NDArray[np.int32], s2: npt.NDArray[np.int8],
        w3: npt.NDArray[np.int8], b3: npt.NDArray[np.int32], s3: npt.NDArray[np.int8],
    ) -> None: ...
    @property
    def channels(self) -> int: ...
    def forward(self, z: npt.NDArray[np.int16], latent_h: int, latent_w: int, threads: int = 0,
                kernel: str = "auto") -> npt.NDArray[np.int32]: ...

class LatentModel:
    """The integer part of a model (model.bin bytes), parsed and checked once.  ``comp``: 0 luma, 1 chroma."""
    def __init__(self, model_bin: _Bytes) -> None: ...
    @property
    def skip_below(self) -> int: ...
    @property
    def rate_points(self) -> int: ...
    @property
    def z_offset(self) -> int: ...
    @property
    def model_id(self) -> int: ...
    @property
    def channels(self) -> tuple[int, int]: ...
    @property
    def grid(self) -> tuple[int, int]: ...
    def y_frac(self, comp: int) -> int: ...
    def gain_q7(self, comp: int) -> npt.NDArray[np.int32]: ...
    def gain_f32(self, comp: int) -> npt.NDArray[np.float32]: ...
    def latent_size(self, comp: int, height: int, width: int) -> tuple[int, int, int, int]: ...
    def decode(
        self, data: _Bytes, max_pixels: int = ..., threads: int = 0, inspect: bool = False
    ) -> dict[str, Any]: ...
    def prepare_encode(
        self,
        height: int,
        width: int,
        z_luma: npt.NDArray[np.int16],
        z_chroma: npt.NDArray[np.int16] | None,
        y_luma: npt.NDArray[np.float32],
        y_chroma: npt.NDArray[np.float32] | None,
        threads: int = 0,
    ) -> PreparedLatents: ...

class PreparedLatents:
    """Made by :meth:`LatentModel.prepare_encode` only; keeps its LatentModel alive."""
    # pybind11 class without py::init: the inherited __init__ takes anything and raises TypeError
    def __init__(self, *args: NoReturn, **kwargs: NoReturn) -> None: ...
    def code(
        self,
        rate_point: int,
        disp_luma: int = 0,
        disp_chroma: int = 0,
        gain_luma: npt.NDArray[np.float32] | None = None,
        gain_chroma: npt.NDArray[np.float32] | None = None,
        substreams: int = 1,
        threads: int = 0,
    ) -> tuple[bytes, bytes, bytes]: ...

def inverse_gain(t: int) -> tuple[int, int]: ...
def yuv420_to_rgb(
    y: npt.NDArray[np.float32], uv: npt.NDArray[np.float32], threads: int = 0
) -> npt.NDArray[np.uint8]:
    """Y'CbCr 4:2:0 float32 planes (0-255) -> uint8 RGB [H, W, 3], bit-identical to colour.yuv420_to_rgb."""

class GatedConv3x3:
    """Conv 3x3 pad 1 + the synthesis gate u * (Wg . LeakyReLU(u) + bg), Winograd F(4x4, 3x3)
    (csrc/gated_conv3x3.hpp); gate_weight None: the head's residual block x + ReLU(conv(x) + bias), or with
    plain=True the convolution alone, conv(x) + bias."""
    def __init__(
        self, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32],
        gate_weight: npt.NDArray[np.float32] | None = None, gate_bias: npt.NDArray[np.float32] | None = None,
        alpha: float = 0.0, plain: bool = False,
    ) -> None: ...
    def run(
        self, x: npt.NDArray[np.float32], threads: int = 0, reference: bool = False, nhwc_in: bool = False,
        nhwc_out: bool = False, out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout, H, W] (nhwc_out: [1, H, W, Cout]);
        reference=True: the scalar definition; out: an array of that shape to write into (returned)."""
    @property
    def cin(self) -> int: ...
    @property
    def cout(self) -> int: ...
    @property
    def residual(self) -> bool: ...
    @property
    def gated(self) -> bool: ...
    @property
    def has_simd_kernel(self) -> bool: ...

class ShuffleUpsampler:
    """vr_bop's SOP up-sampler: pad bottom/right, Conv 2x2, depth-to-space by 2 (CRD) (csrc/shuffle_upsampler.hpp)."""
    def __init__(self, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]) -> None: ...
    def run(
        self, x: npt.NDArray[np.float32], threads: int = 0, reference: bool = False, nhwc_in: bool = False,
        nhwc_out: bool = False, out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout, 2H, 2W] (nhwc_out: [1, 2H, 2W, Cout]);
        reference=True: the scalar definition; out: an array of that shape to write into (returned)."""
    @property
    def cin(self) -> int: ...
    @property
    def cout(self) -> int: ...
    @property
    def has_simd_kernel(self) -> bool: ...

class ResAUBlock:
    """vr_bop's ResAU block x * (1 + Wmix . GConv3x3(ReLU6(x))) (csrc/resau_block.hpp)."""
    def __init__(self, spatial_weight: npt.NDArray[np.float32], mix_weight: npt.NDArray[np.float32]) -> None: ...
    def run(
        self, x: npt.NDArray[np.float32], threads: int = 0, reference: bool = False, nhwc_in: bool = False,
        nhwc_out: bool = False, out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """x float32 [1, C, H, W] (nhwc_in: [1, H, W, C]) -> [1, C, H, W] (nhwc_out: [1, H, W, C]);
        reference=True: the scalar definition; out: an array of that shape to write into (returned)."""
    @property
    def cin(self) -> int: ...
    @property
    def cout(self) -> int: ...
    @property
    def has_simd_kernel(self) -> bool: ...

class OutputHead:
    """The synthesis' output head: offset + scale * crop(DepthToSpace_CRD(Conv1x1(x) + bias, block))
    (csrc/output_head.hpp)."""
    def __init__(
        self, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32] | None = None, block: int = 4,
        scale: float = 1.0, offset: float = 0.0,
    ) -> None: ...
    def run(
        self, x: npt.NDArray[np.float32], oh: int, ow: int, threads: int = 0, reference: bool = False,
        nhwc_in: bool = False, out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout / block², oh, ow], oh <= block H,
        ow <= block W; reference=True: the scalar definition; out: an array of that shape to write into (returned)."""
    @property
    def cin(self) -> int: ...
    @property
    def cout(self) -> int: ...
    @property
    def block(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def has_simd_kernel(self) -> bool: ...

class GatedUpsampler:
    """ConvTranspose k4 s2 p1 + the synthesis gate u * (Wg . LeakyReLU(u) + bg), Winograd F(4x4, 2x2) per output
    phase (csrc/gated_upsampler.hpp); gate_weight None: the transposed convolution alone."""
    def __init__(
        self, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32],
        gate_weight: npt.NDArray[np.float32] | None = None, gate_bias: npt.NDArray[np.float32] | None = None,
        alpha: float = 0.0,
    ) -> None: ...
    def run(
        self, x: npt.NDArray[np.float32], threads: int = 0, reference: bool = False, nhwc_in: bool = False,
        nhwc_out: bool = False, out: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout, 2H, 2W] (nhwc_out: [1, 2H, 2W, Cout]);
        reference=True: the scalar definition; out: an array of that shape to write into (returned)."""
    @property
    def cin(self) -> int: ...
    @property
    def cout(self) -> int: ...
    @property
    def gated(self) -> bool: ...
    @property
    def has_simd_kernel(self) -> bool: ...

class MeanLayer:
    """One layer of the fixed-point mean path (sections <prefix>.*): a test surface for the GEMM kernels."""
    def __init__(self, model_bin: _Bytes, prefix: str, in_channels: int) -> None: ...
    @property
    def out_channels(self) -> int: ...
    def forward(self, x: npt.NDArray[np.int16], out_h: int, out_w: int, threads: int = 0,
                kernel: str = "auto") -> npt.NDArray[np.int16]: ...

class MeanPath:
    """The fixed-point mean path (model.bin sections mean.*): psi, context model, chroma mean, y_hat.
    kernel: "auto" (the CPU's best GEMM tiles), "avx2" (capped at AVX2), "scalar" (the plain C++ tiles)."""
    def __init__(self, model_bin: _Bytes, luma_channels: int, chroma_channels: int) -> None: ...
    def y_frac(self, comp: int) -> int: ...
    def hyper_decoder(self, comp: int, z: npt.NDArray[np.int16], latent_h: int, latent_w: int,
                      threads: int = 0, kernel: str = "auto") -> npt.NDArray[np.int16]: ...
    def reconstruct(self, comp: int, psi: npt.NDArray[np.int16], index: npt.NDArray[np.uint8],
                    offsets: npt.NDArray[np.int32], residual: npt.NDArray[np.int16] | None = None,
                    y: npt.NDArray[np.float32] | None = None, gain: npt.NDArray[np.float32] | None = None,
                    threads: int = 0,
                    kernel: str = "auto") -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16] | None]: ...

class PictureHeader:
    width: int
    height: int
    bit_depth: int
    chroma_format: int
    colour_transform: int
    model_id: int
    operating_point: int
    rate_point: int
    gain_log_luma: int
    gain_log_chroma: int
    latent_channels_luma: int
    latent_channels_chroma: int
    coded_channels_luma: int
    coded_channels_chroma: int
    tile_size: int
    tile_overlap: int
    def __init__(self) -> None: ...

def write_codestream(header: PictureHeader, segments: Sequence[tuple[int, bytes]]) -> bytes: ...
def parse_codestream(data: _Bytes, max_pixels: int = ...) -> tuple[PictureHeader, dict[int, bytes]]: ...
def write_display_window(header: PictureHeader, width: int, height: int) -> bytes:
    """The DWS payload: the decoder crops the coded picture to its top-left width x height (ValueError if outside)."""
def parse_display_window(data: _Bytes, header: PictureHeader) -> tuple[int, int]:
    """DWS payload -> (width, height); BitstreamError (field 'DWS') if malformed."""
def write_metadata(entries: Sequence[tuple[int, bytes]]) -> bytes:
    """[(type, bytes)] (1 EXIF, 2 ICC profile, 3 XMP) -> the MDS payload (ValueError if invalid)."""
def parse_metadata(data: _Bytes) -> dict[int, bytes]:
    """MDS payload -> {type: bytes}; BitstreamError (field 'MDS') if malformed."""
