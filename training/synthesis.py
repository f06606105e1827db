"""Synthesis transforms, BOP and SOP (digest §6.2-6.3). Outputs are in the normalised domain.

Chroma: the reference synthesises U, V at luma resolution (last 1x1 to 128 channels,
PixelShuffle(8)) and then keeps every 2nd row and column for 4:2:0. Only the 32 channels that
land on even rows/columns survive that decimation, so we emit exactly those (1x1 to 32,
PixelShuffle(4) at half resolution): the same function at a quarter of the last layer's cost.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import CHROMA_LATENT, LUMA_LATENT
from .blocks import Conv2x2Pxl2, LightResidualBlock, ResAU, ceil_div, conv, conv_t4x4, crop

CHROMA_INFO = 48


class LumaSynthesisBOP(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = LightResidualBlock(LUMA_LATENT)
        self.up1 = conv_t4x4(LUMA_LATENT, 64)
        self.res1 = ResAU(64)
        self.up2 = conv_t4x4(64, 64)
        self.res2 = ResAU(64)
        self.widen = conv(64, 96, 3)
        self.res3 = ResAU(96)
        self.out = conv(96, 16, 1)

    def forward(self, y_hat, hw):
        h, w = hw
        x = crop(self.res1(self.up1(self.head(y_hat))), ceil_div(h, 8), ceil_div(w, 8))
        x = self.res2(crop(self.up2(x), ceil_div(h, 4), ceil_div(w, 4)))
        x = self.out(self.res3(self.widen(x)))
        return crop(F.pixel_shuffle(x, 4), h, w)


class LumaSynthesisSOP(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = LightResidualBlock(LUMA_LATENT)
        self.up1 = Conv2x2Pxl2(LUMA_LATENT, 64)
        self.res1 = ResAU(64)
        self.up2 = Conv2x2Pxl2(64, 32)
        self.res2 = ResAU(32)
        self.mid = conv(32, 32, 3)
        self.res3 = ResAU(32)
        self.out = conv(32, 16, 1, bias=False)

    def forward(self, y_hat, hw):
        h, w = hw
        x = crop(self.res1(self.up1(self.head(y_hat))), ceil_div(h, 8), ceil_div(w, 8))
        x = self.res2(crop(self.up2(x), ceil_div(h, 4), ceil_div(w, 4)))
        x = self.out(self.res3(self.mid(x)))
        return crop(F.pixel_shuffle(x, 4), h, w)


class LightCombineBlock(nn.Module):
    """Chroma head: info = conv3x3(cat(y_luma, y_chroma) 256 -> 48); out = cat(info, y_chroma)."""

    def __init__(self):
        super().__init__()
        self.info = conv(LUMA_LATENT + CHROMA_LATENT, CHROMA_INFO, 3)

    def forward(self, y_luma, y_chroma):
        return torch.cat([self.info(torch.cat([y_luma, y_chroma], dim=1)), y_chroma], dim=1)


class ChromaSynthesisBOP(nn.Module):
    def __init__(self):
        super().__init__()
        self.combine = LightCombineBlock()
        self.up = conv_t4x4(CHROMA_INFO + CHROMA_LATENT, 64)
        self.res1 = ResAU(64)
        self.widen = conv(64, 128, 3)
        self.res2 = ResAU(128)
        self.out = conv(128, 32, 1)

    def forward(self, y_luma, y_chroma, hw):
        """-> U, V [B,2,ceil(h/2),ceil(w/2)] for luma size hw."""
        h, w = hw
        x = self.res1(crop(self.up(self.combine(y_luma, y_chroma)), ceil_div(h, 8), ceil_div(w, 8)))
        x = self.out(self.res2(self.widen(x)))
        return crop(F.pixel_shuffle(x, 4), ceil_div(h, 2), ceil_div(w, 2))


class ChromaSynthesisSOP(nn.Module):
    def __init__(self):
        super().__init__()
        self.combine = LightCombineBlock()
        self.up = Conv2x2Pxl2(CHROMA_INFO + CHROMA_LATENT, 32)
        self.res1 = ResAU(32)
        self.mid = conv(32, 32, 3)
        self.res2 = ResAU(32)
        self.out = conv(32, 32, 1)

    def forward(self, y_luma, y_chroma, hw):
        h, w = hw
        x = self.res1(crop(self.up(self.combine(y_luma, y_chroma)), ceil_div(h, 8), ceil_div(w, 8)))
        x = self.out(self.res2(self.mid(x)))
        return crop(F.pixel_shuffle(x, 4), ceil_div(h, 2), ceil_div(w, 2))


SYNTHESIS = {"bop": (LumaSynthesisBOP, ChromaSynthesisBOP), "sop": (LumaSynthesisSOP, ChromaSynthesisSOP)}
