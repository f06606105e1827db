"""Type stubs of the C++ core module (csrc/bindings.cpp)."""
from typing import Any

import numpy as np
import numpy.typing as npt

NUM_LEVELS: int
SIGMA_MIN: float
SIGMA_MAX: float
LOG_SIGMA_FRAC_BITS: int
PROB_BITS: int
SKIP_INDEX: int
MAX_SUBSTREAMS: int
RANS_LANES: int
FORMAT_VERSION: int
DEFAULT_MAX_PIXELS: int

def sigma_levels() -> npt.NDArray[np.float64]: ...
def table_hash() -> int: ...
def table_radius(k: int) -> int: ...
def table_escape_order(k: int) -> int: ...
def table_freqs(k: int) -> npt.NDArray[np.uint16]: ...
def scale_index_map(s: npt.NDArray[np.int32], gain_log: npt.NDArray[np.int32], skip_below: int) -> npt.NDArray[np.uint8]: ...
def encode_residual(
    symbols: npt.NDArray[np.int16], scale_index: npt.NDArray[np.uint8], substreams: int = 1, threads: int = 0
) -> bytes: ...
def decode_residual(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    scale_index: npt.NDArray[np.uint8],
    threads: int = 0,
    kernel: str = "auto",
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
    def decode(self, data: Any, plane_shape: list[int] | tuple[int, ...], threads: int = 0) -> npt.NDArray[np.int16]: ...

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

def write_codestream(header: PictureHeader, segments: list[tuple[int, bytes]]) -> bytes: ...
def parse_codestream(data: Any, max_pixels: int = ...) -> tuple[PictureHeader, dict[int, bytes]]: ...
