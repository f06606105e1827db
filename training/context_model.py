"""Mean prediction: 4-stage spatial context model for luma, psi up-shuffle for chroma (digest §5.2-5.3).

Float in training; `python -m training.export` quantises these convs (and the hyper-mean decoders) to
the fixed-point mean path of docs/model_format.md (training/mean_fixed.py), which the C++ core runs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import conv

# Decoding order over the 2x2 cell (row, col); psi chunk s conditions stage s.
STAGE_PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))


def split_phases(x):
    """[B,C,2h,2w] -> 4 phase planes [B,C,h,w] in stage order."""
    b, c, h, w = x.shape
    cells = F.pixel_unshuffle(x, 2).reshape(b, c, 4, h // 2, w // 2)
    return [cells[:, :, 2 * dy + dx] for dy, dx in STAGE_PHASES]


def merge_phases(parts):
    """Inverse of split_phases."""
    raster = [None] * 4
    for (dy, dx), p in zip(STAGE_PHASES, parts):
        raster[2 * dy + dx] = p
    b, c, h, w = parts[0].shape
    return F.pixel_shuffle(torch.stack(raster, dim=2).reshape(b, 4 * c, h, w), 2)


def chroma_mean(psi):
    """Chroma has no spatial context: phase s of the mean is psi chunk s."""
    return merge_phases(list(psi.chunk(4, dim=1)))


class FusionPredNet(nn.Sequential):
    """1x1 cin->C, ReLU, 1x1, ReLU, 1x1; all bias-free."""

    def __init__(self, cin, c):
        super().__init__(conv(cin, c, 1, bias=False), nn.ReLU(),
                         conv(c, c, 1, bias=False), nn.ReLU(),
                         conv(c, c, 1, bias=False))


class LumaContextModel(nn.Module):
    """Stage 0: mean from psi_0. Stage s > 0: spatial context from the s decoded phases
    (1x1 sC->C, no bias, then 3x3 grouped with C/32 groups), concatenated before psi_s."""

    def __init__(self, c):
        super().__init__()
        self.fusion = nn.ModuleList([FusionPredNet(c, c)] + [FusionPredNet(2 * c, c) for _ in range(3)])
        self.context = nn.ModuleList([
            nn.Sequential(conv(s * c, c, 1, bias=False), conv(c, c, 3, groups=c // 32))
            for s in range(1, 4)])

    def stage_mean(self, stage, psi_chunk, decoded):
        """Mean of phase `stage` from its psi chunk and the y_hat phases decoded so far."""
        if stage == 0:
            return self.fusion[0](psi_chunk)
        ctx = self.context[stage - 1](torch.cat(decoded, dim=1))
        return self.fusion[stage](torch.cat([ctx, psi_chunk], dim=1))
