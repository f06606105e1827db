"""Hyper encoder (encoder only) and float hyper decoder z_hat -> psi (reference digest §5.1, §6.6)."""
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ceil_div, conv, conv_t4x4, crop, pad_even

Z_BOUND = 31  # z is rounded and clamped to [-31, 31] (63 symbols of the z CDFs)


class HyperEncoder(nn.Module):
    """y [B,C,Hl,Wl] -> z [B,C,ceil(Hl/4),ceil(Wl/4)] (float, before rounding).

    Takes y itself, not |y| as the reference does: psi also predicts the mean, which needs the sign.
    """

    def __init__(self, c):
        super().__init__()
        self.c1 = conv(c, c, 3)
        self.c2 = conv(c, c, 3, stride=2)
        self.c3 = conv(c, c, 3, stride=2)

    def forward(self, y):
        x = F.leaky_relu(self.c1(y), 0.01)
        x = F.leaky_relu(self.c2(pad_even(x)), 0.01)
        return self.c3(pad_even(x))


class HyperDecoder(nn.Module):
    """z_hat [B,C,hz,wz] -> psi [B,4C,ceil(Hl/2),ceil(Wl/2)] (float; conditions mean prediction)."""

    def __init__(self, c):
        super().__init__()
        self.c1 = conv(c, c, 1, bias=False)
        self.up = conv_t4x4(c, c)
        self.c2 = conv(c, c, 3)
        self.c3 = conv(c, 4 * c, 3)

    def forward(self, z_hat, latent_hw):
        h, w = ceil_div(latent_hw[0], 2), ceil_div(latent_hw[1], 2)
        x = F.relu6(crop(self.up(self.c1(z_hat)), h, w))
        return self.c3(F.relu6(self.c2(x)))
