"""Building blocks shared by the JPEG AI-style transforms (reference digest §6.1)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, stride=1, bias=True, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias, groups=groups)


def conv_t4x4(cin, cout):
    """Transposed conv k4 s2 p1: exact 2x up-sampling."""
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


def pad_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad right/bottom to even size before a stride-2 conv (as the reference analysis)."""
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x[..., :h, :w]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class ResAU(nn.Module):
    """y = x·(1 + conv1x1(conv3x3_grouped(ReLU6(x)))), both bias-free, 16 channels per group.

    The 1x1 starts at zero so every ResAU is the identity at initialisation (stable start).
    """

    def __init__(self, c, group_size=16):
        super().__init__()
        self.spatial = conv(c, c, 3, bias=False, groups=c // group_size)
        self.mix = conv(c, c, 1, bias=False)
        nn.init.zeros_(self.mix.weight)

    def forward(self, x):
        return x * (1.0 + self.mix(self.spatial(F.relu6(x))))


class LightResidualBlock(nn.Module):
    """x + ReLU(conv3x3(x))."""

    def __init__(self, c):
        super().__init__()
        self.conv = conv(c, c, 3)

    def forward(self, x):
        return x + F.relu(self.conv(x))


class Conv2x2Pxl2(nn.Module):
    """SOP up-sampler: zero-pad 1 right/bottom, 2x2 conv to 4·cout, PixelShuffle(2)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 2)

    def forward(self, x):
        return F.pixel_shuffle(self.conv(F.pad(x, (0, 1, 0, 1))), 2)
