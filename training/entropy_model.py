"""Rate models: factorised prior for z, discretised Gaussian for latent residuals, STE rounding."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hyper import Z_BOUND

LIKELIHOOD_MIN = 1e-9


def ste_round(x):
    return x + (torch.round(x) - x).detach()


def ste_floor(x):
    return x + (torch.floor(x) - x).detach()


def _std_normal_cdf(x):
    return 0.5 * torch.erfc(-x * (1.0 / math.sqrt(2.0)))


def gaussian_bits(r, sigma):
    """-log2 of the N(0, sigma) mass of the unit bin around r (evaluated on the left tail for accuracy)."""
    r = r.abs()
    mass = _std_normal_cdf((0.5 - r) / sigma) - _std_normal_cdf((-0.5 - r) / sigma)
    return -torch.log2(mass.clamp_min(LIKELIHOOD_MIN))


class FactorizedPrior(nn.Module):
    """Per-channel non-parametric density of z (Ballé et al. 2018, filters 3-3-3).

    Coded as 63 symbols z in [-31, 31]; `pmf` folds the tails into the end symbols and is what
    gets exported as integer CDFs. Training uses the continuous bin masses (z + uniform noise).
    """

    def __init__(self, channels, filters=(3, 3, 3), init_scale=10.0):
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _cdf_logits(self, v):
        """v [C, 1, N] -> logit of the per-channel CDF at v."""
        for i, m in enumerate(self.matrices):
            v = torch.matmul(F.softplus(m), v) + self.biases[i]
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def _bin_mass(self, v):
        lower, upper = self._cdf_logits(v - 0.5), self._cdf_logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where sigmoid is accurate
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    def pmf(self):
        """[C, 63] probabilities of z = -31..31, tails folded into the end symbols."""
        c = self.matrices[0].shape[0]
        edges = torch.arange(-Z_BOUND + 0.5, Z_BOUND, 1.0, device=self.matrices[0].device)
        cdf = torch.sigmoid(self._cdf_logits(edges.expand(c, 1, -1)))[:, 0]
        cdf = F.pad(cdf, (1, 0), value=0.0)
        cdf = F.pad(cdf, (0, 1), value=1.0)
        return cdf[:, 1:] - cdf[:, :-1]

    def bits(self, z):
        """Per-image bits of z [B,C,h,w]: noisy z -> continuous bin mass; integer z (eval) -> table pmf."""
        bsz, c = z.shape[:2]
        if self.training:
            mass = self._bin_mass(z.transpose(0, 1).reshape(c, 1, -1))
        else:
            sym = (z.round().long() + Z_BOUND).transpose(0, 1).reshape(c, -1)
            mass = torch.gather(self.pmf(), 1, sym)
        bits = -torch.log2(mass.clamp_min(LIKELIHOOD_MIN))
        return bits.reshape(c, bsz, -1).sum(dim=(0, 2))
