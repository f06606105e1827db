"""The whole variable-rate codec: analysis -> hyper prior -> integer scales -> residual coding
with mean prediction -> synthesis. One model covers all rate points through gain units."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .analysis import CHROMA_LATENT, LUMA_LATENT, ChromaAnalysis, LumaAnalysis
from .blocks import crop
from .colour import denormalise, normalise
from .context_model import LumaContextModel, chroma_mean, merge_phases, split_phases
from .entropy_model import FactorizedPrior, gaussian_bits, ste_round
from .hyper import Z_BOUND, HyperDecoder, HyperEncoder
from .hyper_scale_int import HyperScaleDecoderInt
from .sigma_levels import LOG_STEP, Q7, SKIP_INDEX_THRESHOLD, gain_from_offset, sigma_from_s, sigma_index
from .synthesis import SYNTHESIS

# Loss = lambda · MSE_yuv(6:1:1, 0-255 domain) + bpp, i.e. the CompressAI convention
# lambda·255²·MSE[0,1]. The six inner points (x2.66 apart) gave 0.10-1.02 bpp on Kodak at step 24802;
# the two outer ones were added then (from the measured slopes) so the range reaches 0.06 and 1.5 bpp;
# the top one was raised from 0.25 (1.56 bpp on the 6 eval images, ~1.4 on all 24 at step 26778) to 0.45.
RATE_LAMBDAS = (0.00025, 0.0006, 0.0016, 0.0042, 0.0113, 0.030, 0.080, 0.45)
# One unit of a gain parameter = a factor 2 of quantiser gain = this many Q7 sigma steps.
Q7_PER_LOG2_GAIN = Q7 * 0.6931471805599453 / LOG_STEP


class GainUnit(nn.Module):
    """Per rate point and channel: integer Q7 log offset o (added to the HSD output s) and the
    matching quantiser gain g = exp(o · LOG_STEP / 128). Encoder: r = round((y - mu) · g);
    decoder: y_hat = r / g + mu, sigma index from s + o. o is STE-rounded in training so the
    trained model sees exactly the integer offsets it will ship with."""

    def __init__(self, num_rates, channels):
        super().__init__()
        # log2 gain per rate point, spread about as sqrt(lambda ratio) (high-rate theory), yet
        # narrow enough that the lowest rate is not all skipped at the start (no gradient there).
        init = torch.linspace(-1.5, 1.5, num_rates)[:, None].expand(num_rates, channels)
        self.log2_gain = nn.Parameter(init.clone())

    def offsets(self):
        """[R, C] integer Q7 offsets (float tensor with STE gradient)."""
        return ste_round(self.log2_gain * Q7_PER_LOG2_GAIN)

    def forward(self, rate_idx):
        o = self.offsets()[rate_idx][:, :, None, None]
        return o, gain_from_offset(o)


def code_residual(y, mu, s, gain, training):
    """Quantise y around mu with skip mode. Returns (y_hat, bits per element).

    s: Q7 log-sigma incl. gain offset (float64, integer valued). Skipped positions (index below
    SKIP_INDEX_THRESHOLD) carry no symbol and reconstruct to the mean. Reconstruction uses the
    straight-through rounded residual, the rate uses y + uniform noise while training (mixed
    quantisation) and the rounded residual otherwise.
    """
    y, mu = y.float(), mu.float()
    coded = (sigma_index(s.detach()) >= SKIP_INDEX_THRESHOLD).float()
    d = (y - mu) * gain
    r = ste_round(d) * coded
    y_hat = r / gain + mu
    r_rate = d + torch.empty_like(d).uniform_(-0.5, 0.5) if training else r
    bits = gaussian_bits(r_rate, sigma_from_s(s).float()) * coded
    return y_hat, bits


class Component(nn.Module):
    """Hyper prior of one component: hyper encoder, z prior, integer HSD, float hyper decoder, gains."""

    def __init__(self, channels, num_rates):
        super().__init__()
        self.hyper_encoder = HyperEncoder(channels)
        self.z_prior = FactorizedPrior(channels)
        self.hyper_scale = HyperScaleDecoderInt(channels)
        self.hyper_decoder = HyperDecoder(channels)
        self.gain = GainUnit(num_rates, channels)

    def forward(self, y, rate_idx):
        """-> s (Q7 log-sigma incl. gain offset, float64), psi, gain, z bits per image."""
        latent_hw = y.shape[-2:]
        z = self.hyper_encoder(y).float().clamp(-Z_BOUND, Z_BOUND)
        z_hat = ste_round(z)
        offset, gain = self.gain(rate_idx)
        with torch.autocast(z.device.type, enabled=False):  # rates and integer scales stay exact
            z_bits = self.z_prior.bits(z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else z_hat)
            s = self.hyper_scale(z_hat, latent_hw) + offset.double()
        return s, self.hyper_decoder(z_hat, latent_hw), gain, z_bits


class Codec(nn.Module):
    def __init__(self, num_rates=len(RATE_LAMBDAS)):
        super().__init__()
        self.luma_analysis = LumaAnalysis()
        self.chroma_analysis = ChromaAnalysis()
        self.luma = Component(LUMA_LATENT, num_rates)
        self.chroma = Component(CHROMA_LATENT, num_rates)
        self.context_model = LumaContextModel(LUMA_LATENT)
        self.synthesis = nn.ModuleDict({
            op: nn.ModuleDict({"luma": luma(), "chroma": chroma()}) for op, (luma, chroma) in SYNTHESIS.items()})

    def _code_luma(self, y, rate_idx):
        s, psi, gain, bits = self.luma(y, rate_idx)
        h, w = y.shape[-2:]
        pad = (0, w % 2, 0, h % 2)  # padded positions get s = 0 -> skipped
        ys, ss, psis = split_phases(F.pad(y, pad)), split_phases(F.pad(s, pad)), psi.chunk(4, dim=1)
        decoded = []
        for stage in range(4):
            mu = self.context_model.stage_mean(stage, psis[stage], decoded)
            y_hat, b = code_residual(ys[stage], mu, ss[stage], gain, self.training)
            decoded.append(y_hat)
            bits = bits + b.sum(dim=(1, 2, 3))
        return crop(merge_phases(decoded), h, w), bits

    def _code_chroma(self, y, rate_idx):
        s, psi, gain, bits = self.chroma(y, rate_idx)
        mu = crop(chroma_mean(psi), *y.shape[-2:])
        y_hat, b = code_residual(y, mu, s, gain, self.training)
        return y_hat, bits + b.sum(dim=(1, 2, 3))

    def forward(self, y_img, uv_img, rate_idx, op="bop"):
        """y_img [B,1,H,W], uv_img [B,2,H/2,W/2] (0-255, 4:2:0), rate_idx [B] long.
        -> (y_rec, uv_rec) in 0-255 (unclamped), bits [B] (residuals + z, both components)."""
        hw = y_img.shape[-2:]
        yn, uvn = normalise(y_img), normalise(uv_img)
        y_hat, bits_y = self._code_luma(self.luma_analysis(yn), rate_idx)
        c_hat, bits_c = self._code_chroma(self.chroma_analysis(yn, uvn), rate_idx)
        syn = self.synthesis[op]
        y_rec = denormalise(syn["luma"](y_hat, hw))
        uv_rec = denormalise(syn["chroma"](y_hat, c_hat, hw))
        return y_rec, uv_rec, bits_y + bits_c


def parameter_counts(model: Codec):
    """Parameter count per codec stage (decoder-side parts marked)."""
    def n(module):
        return sum(p.numel() for p in module.parameters())

    parts = {
        "luma_analysis (enc)": n(model.luma_analysis),
        "chroma_analysis (enc)": n(model.chroma_analysis),
        "hyper_encoders (enc)": n(model.luma.hyper_encoder) + n(model.chroma.hyper_encoder),
        "z_priors (dec)": n(model.luma.z_prior) + n(model.chroma.z_prior),
        "hyper_scale_int (dec, int8)": n(model.luma.hyper_scale) + n(model.chroma.hyper_scale),
        "hyper_decoders (dec)": n(model.luma.hyper_decoder) + n(model.chroma.hyper_decoder),
        "gain_units (dec)": n(model.luma.gain) + n(model.chroma.gain),
        "context_model (dec)": n(model.context_model),
    }
    for op in model.synthesis:
        parts[f"synthesis_{op} (dec)"] = n(model.synthesis[op])
    parts["total"] = n(model)
    return parts
