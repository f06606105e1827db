"""Analysis transforms (encoder only; reference digest §6.6, BOP analysis, hidden width 128)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ResAU, conv, pad_even

HIDDEN = 128
LUMA_LATENT = 160
CHROMA_LATENT = 96


class _Trunk(nn.Module):
    """[replicate-pad to even -> conv3x3 s2 -> ResAU] x 3."""

    def __init__(self, cin):
        super().__init__()
        self.downs = nn.ModuleList([conv(cin, HIDDEN, 3, stride=2)]
                                   + [conv(HIDDEN, HIDDEN, 3, stride=2) for _ in range(2)])
        self.resaus = nn.ModuleList([ResAU(HIDDEN) for _ in range(3)])

    def forward(self, x):
        for down, resau in zip(self.downs, self.resaus):
            x = resau(down(pad_even(x)))
        return x


class LumaAnalysis(nn.Module):
    """Y plane [B,1,H,W] (normalised) -> y [B,160,H/16,W/16]."""

    def __init__(self):
        super().__init__()
        self.trunk = _Trunk(1)
        self.down = conv(HIDDEN, LUMA_LATENT, 3, stride=2)
        self.out = conv(LUMA_LATENT, LUMA_LATENT, 1)

    def forward(self, y):
        return self.out(self.down(pad_even(self.trunk(y))))


class ChromaAnalysis(nn.Module):
    """(Y [B,1,H,W], UV [B,2,H/2,W/2]) -> y_uv [B,96,H/16,W/16].

    Input = luma pixel-unshuffled by 2 (4 planes) + U, V at half resolution. The reference feeds
    each 4:2:0 chroma plane repeated 4x (12 planes); a conv over 4 identical planes equals one
    conv over a single copy, so 6 planes carry the same information.
    """

    def __init__(self):
        super().__init__()
        self.trunk = _Trunk(6)
        self.out = conv(HIDDEN, CHROMA_LATENT, 1)

    def forward(self, y, uv):
        return self.out(self.trunk(torch.cat([F.pixel_unshuffle(y, 2), uv], dim=1)))
