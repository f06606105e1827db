"""Sigma quantisation levels shared by training and the entropy coder.

Canonical source: csrc/sigma_tables.hpp (quoted in docs/bitstream.md §3); the rANS tables are
built from the same constants. This module mirrors them so training does not need the compiled
package; if they ever differ, the C++ header wins and this file must follow. (Once the runtime
package is always installed for training, import the constants from jpegai_fast.entropy instead.)

Q7 log-sigma: s = 128·k  <->  sigma_k = SIGMA_MIN · (SIGMA_MAX / SIGMA_MIN)^(k / 63)
Entropy table index: clamp((s + 64) >> 7, 0, 63)   (round to the nearest level)
Skip mode: positions with index < SKIP_INDEX_THRESHOLD carry no symbol (scale index 255 in the
bitstream); their residual is 0, so y_hat = mean.
"""
import math

import torch

SIGMA_MIN = 0.11
SIGMA_MAX = 60.0
NUM_LEVELS = 64
Q7 = 128
# ln(sigma_{k+1} / sigma_k): one level step in natural-log units.
LOG_STEP = math.log(SIGMA_MAX / SIGMA_MIN) / (NUM_LEVELS - 1)
# Largest HSD output: (levels - 1)·128 - 1, as in JPEG AI; it still maps to index 63.
S_MAX = (NUM_LEVELS - 1) * Q7 - 1
# index 4 <-> sigma_4 ≈ 0.17: a zero residual then costs < 0.01 bit, so sending nothing is
# cheaper than any symbol and the distortion of forcing y_hat = mean is negligible.
SKIP_INDEX_THRESHOLD = 4


def sigma_index(s: torch.Tensor) -> torch.Tensor:
    """Integer Q7 log-sigma (any integer dtype or integer-valued float) -> table index (int64)."""
    return torch.clamp((s.to(torch.int64) + Q7 // 2) >> 7, 0, NUM_LEVELS - 1)


def sigma_from_s(s: torch.Tensor) -> torch.Tensor:
    """Continuous sigma for a (possibly fractional) Q7 level, clamped to [SIGMA_MIN, SIGMA_MAX]."""
    s = torch.clamp(s, 0.0, float((NUM_LEVELS - 1) * Q7))
    return SIGMA_MIN * torch.exp(s * (LOG_STEP / Q7))


def gain_from_offset(offset: torch.Tensor) -> torch.Tensor:
    """Quantiser gain for an integer Q7 log offset: adding `offset` to s scales sigma by this."""
    return torch.exp(offset * (LOG_STEP / Q7))
