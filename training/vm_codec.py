"""The variable-rate codec built on the JPEG AI VM 3.3 networks (training/vm33.py).

Stage by stage (which part comes from where):
- analysis, hyper encoder, hyper (mean) decoder, synthesis: the VM graphs, weights imported, fine-tuned;
- z prior: our factorised prior (the VM files have no z tables), fitted from scratch;
- scales: our integer hyper-scale decoder (QAT, training/hyper_scale_int.py), distilled from the VM's
  float scale decoder (sigma = |s|, floored at 0.11) onto our 64 sigma levels, then trained on the rate;
- mean: the VM hyper decoder's mu, refined by our 4-stage luma context model as a residual
  (mu_s = psi_s + fusion_s(...), the last conv of each fusion net starts at zero, so step 0 is the VM);
  psi = mu split into the four 2x2 phases, which is the shape our context model and fixed-point mean path
  already use; chroma mu = the VM mu (no context, as before);
- gain units per rate point and channel (variable rate), skip mode, residual coding: as codec.py.

Grids: luma latent 128 ch at H/16, chroma latent 64 ch at H/32 (the VM's chroma analysis works at chroma
resolution), z at a quarter of each.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vm33
from .blocks import crop
from .codec import GainUnit, code_residual
from .colour import denormalise
from .context_model import LumaContextModel, merge_phases, split_phases
from .entropy_model import FactorizedPrior, ste_round
from .hyper import Z_BOUND
from .hyper_scale_int import HyperScaleDecoderInt
from .sigma_levels import LOG_STEP, Q7, S_MAX, SIGMA_MIN

# Rate points as RD slopes: lambda_r in bpp per dB of PSNR-YUV, loss_r = bpp / lambda_r - PSNR_YUV
# (log-domain distortion = the metric we report; dividing by lambda_r normalises the rate points so
# the distortion gradient is the same at every point). Slopes fitted to the VVC anchor's Kodak curve
# (slope ≈ 0.15·bpp^0.68 bpp/dB between QP 47 and 22) at 0.04 … 1.6 bpp, the top ones raised because a
# weaker codec has a steeper curve at the same PSNR.  0.011 added at step 46,414: 0.017 gave 0.0587 bpp
# on Kodak (24 images), above issue 11's 0.05 and VVC QP47's 0.037 (the ladder's ratio ~1.5 continued down).
# 0.4, 0.6, 0.9 added at step 50,896: at step 50,572 the top point (0.28) sat at 0.34 bpp / 32.0 dB on 4
# Kodak images and raising its gains further bought nothing (log2 gain +0.5: 0.45 bpp / 32.09 dB, +1: 0.62 /
# 32.02, +2: 1.14 / 31.69): the synthesis had never been trained on finer latents, so the ladder has to reach
# the rates issue 11 asks for (>= 1.3 bpp) for the networks to learn them.
VM_RATE_LAMBDAS = (0.011, 0.017, 0.027, 0.042, 0.065, 0.095, 0.135, 0.19, 0.28, 0.4, 0.6, 0.9)
# log2 quantiser gain at the start: the VM alone is at g = 1 (0.116 bpp on Kodak); 0.35 gives ~0.03 bpp.
GAIN_INIT_LOG2 = (-1.4, 3.2)
GRID = {"luma": 16, "chroma": 32}  # latent grid step in luma pixels


def phases_to_psi(mu):
    """mu [B,C,Hl,Wl] -> psi [B,4C,ceil(Hl/2),ceil(Wl/2)]: chunk s = mu at the phase of context stage s."""
    h, w = mu.shape[-2:]
    return torch.cat(split_phases(F.pad(mu, (0, w % 2, 0, h % 2))), dim=1)


def s_target_from_vm_scale(scale):
    """The VM's float scale -> our Q7 log-sigma level (float, unrounded), the distillation target."""
    sigma = scale.abs().clamp_min(SIGMA_MIN)
    return (torch.log(sigma / SIGMA_MIN) / LOG_STEP * Q7).clamp(0, S_MAX)


class VMComponent(nn.Module):
    """Hyper prior of one component."""

    def __init__(self, suffix, channels, num_rates, pretrained=True):
        super().__init__()
        self.hyper_encoder = vm33.make_graph(f"hyper_encoder_{suffix}", pretrained)
        self.hyper_decoder = vm33.make_graph(f"hyper_decoder_{suffix}", pretrained)
        self.z_prior = FactorizedPrior(channels)
        self.hyper_scale = HyperScaleDecoderInt(channels)
        self.gain = GainUnit(num_rates, channels)
        with torch.no_grad():
            init = torch.linspace(*GAIN_INIT_LOG2, num_rates)[:, None]
            self.gain.log2_gain.copy_(init.expand_as(self.gain.log2_gain))

    def z_hat(self, y):
        z = self.hyper_encoder(y).float().clamp(-Z_BOUND, Z_BOUND)
        return z, ste_round(z)

    def forward(self, y, rate_idx):
        """-> s (Q7 log-sigma incl. gain offset, float64), mu (VM hyper decoder), gain, z bits per image."""
        latent_hw = y.shape[-2:]
        z, z_hat = self.z_hat(y)
        offset, gain = self.gain(rate_idx)
        with torch.autocast(z.device.type, enabled=False):  # rates and integer scales stay exact
            z_bits = self.z_prior.bits(z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else z_hat)
            s = self.hyper_scale(z_hat, latent_hw) + offset.double()
        mu = self.hyper_decoder(z_hat, latent_hw)
        return s, mu, gain, z_bits


class ResidualContextModel(LumaContextModel):
    """Our 4-stage context model predicting a correction to the VM mean of each phase."""

    residual = True  # the fixed-point export marks it in mean.topology

    def __init__(self, c):
        super().__init__(c)
        for net in self.fusion:
            nn.init.zeros_(net[-1].weight)

    def stage_mean(self, stage, psi_chunk, decoded):
        return psi_chunk + super().stage_mean(stage, psi_chunk, decoded)


# SOP: the VM decoders with the H/4 part (luma) / H/8 part (chroma) at SOP_WIDTH channels instead of 64, where
# the 3x3 conv and the second ConvTranspose spend ~70 % of the BOP MACs: 3.9 instead of 7.4 kMAC per pixel.
SOP_WIDTH = 32


class VMSynthesis(nn.Module):
    """Luma and chroma synthesis of one operating point (BOP: the VM decoders; SOP: the same blocks with the
    last stage at SOP_WIDTH channels, trained on the same latent)."""

    def __init__(self, pretrained=True, op="bop"):
        super().__init__()
        if op == "bop":
            self.luma = vm33.make_graph("decoder_y", pretrained)
            self.chroma = vm33.make_graph("decoder_uv", pretrained)
        else:
            self.luma = vm33.Synthesis(vm33.LUMA_LATENT, 96, SOP_WIDTH, 16)
            self.chroma = vm33.Synthesis(vm33.LUMA_LATENT + vm33.CHROMA_LATENT, 64, SOP_WIDTH, 32)

    def forward(self, y_hat, c_hat, hw):
        h, w = hw
        y_rec = crop(F.pixel_shuffle(self.luma(y_hat), 4), h, w)
        uv_rec = crop(F.pixel_shuffle(self.chroma(vm33.chroma_synthesis_input(y_hat, c_hat)), 4),
                      -(-h // 2), -(-w // 2))
        return denormalise(y_rec), denormalise(uv_rec)


class VMCodec(nn.Module):
    rate_lambdas = VM_RATE_LAMBDAS
    name = "vm33"
    sop_trains_beside_bop = True  # training.train: the SOP synthesis learns the BOP's latent in the same steps

    def __init__(self, num_rates=len(VM_RATE_LAMBDAS), pretrained=True, analysis_hi_from=None):
        """pretrained: start from the VM 3.3 ONNX weights (../shared/pretrained/jpegai_vm33); False builds
        the same modules with random weights, to load a checkpoint into (no ONNX files needed).
        analysis_hi_from: rate points from this index up are encoded by an analysis of their own
        (luma_analysis_hi / chroma_analysis_hi), see `analysis`; None: one analysis for every rate."""
        super().__init__()
        self.luma_analysis = vm33.make_graph("single_encode_y", pretrained)
        self.chroma_analysis = vm33.make_graph("single_encode_uv", pretrained)
        if analysis_hi_from is not None and not 0 < analysis_hi_from < num_rates:
            raise ValueError(f"analysis_hi_from {analysis_hi_from} outside 1..{num_rates - 1}")
        self.analysis_hi_from = analysis_hi_from
        # β of the high-rate analysis' pre-emphasis pass in the forward (0: off; train.py --pre-emphasis)
        self.pre_emphasis = 0.0
        if analysis_hi_from is not None:  # starts as a copy; a checkpoint without it fills it from the shared one
            self.luma_analysis_hi = copy.deepcopy(self.luma_analysis)
            self.chroma_analysis_hi = copy.deepcopy(self.chroma_analysis)
            self.register_load_state_dict_pre_hook(_fill_analysis_hi)
        self.luma = VMComponent("y", vm33.LUMA_LATENT, num_rates, pretrained)
        self.chroma = VMComponent("uv", vm33.CHROMA_LATENT, num_rates, pretrained)
        self.context_model = ResidualContextModel(vm33.LUMA_LATENT)
        self.synthesis = nn.ModuleDict({"bop": VMSynthesis(pretrained), "sop": VMSynthesis(pretrained, "sop")})
        sop_from_bop(self.synthesis["bop"], self.synthesis["sop"])
        # checkpoints from before the SOP existed: their SOP is derived from their BOP as it loads
        self.register_load_state_dict_pre_hook(_fill_sop_from_bop)

    def analysis(self, y_img, uv_img, rate_idx=None):
        """Pixels -> (luma latent, chroma latent).  With a high-rate analysis, each picture goes through the
        analysis of its rate point (rate_idx [B]; None: the shared one).  Encoder only: the latent's shape and
        the decoder are the same for both, so the stream does not say which analysis made it.
        Why two: one amortised analysis serves every rate point, and the low rates' loss keeps it from putting
        the detail into the latent that the high rates could pay for (training/README.md, "Where the top of
        the curve stops")."""
        c_in = vm33.chroma_analysis_input(y_img, uv_img)
        hi = self.analysis_hi_from is not None and rate_idx is not None
        if not hi:
            return self.luma_analysis(y_img), self.chroma_analysis(c_in)
        is_hi = rate_idx >= self.analysis_hi_from
        if bool(is_hi.all()):
            return self._analysis_hi(y_img, uv_img)
        if not bool(is_hi.any()):
            return self.luma_analysis(y_img), self.chroma_analysis(c_in)
        lo_i, hi_i = (~is_hi).nonzero().squeeze(1), is_hi.nonzero().squeeze(1)
        order = torch.argsort(torch.cat([lo_i, hi_i]))  # back to the batch's order
        y_hi, c_hi = self._analysis_hi(y_img[hi_i], uv_img[hi_i])
        y_lat = torch.cat([self.luma_analysis(y_img[lo_i]), y_hi])
        c_lat = torch.cat([self.chroma_analysis(c_in[lo_i]), c_hi])
        return y_lat[order], c_lat[order]

    def _analysis_hi(self, y_img, uv_img):
        """The high-rate analysis, on the pre-emphasised picture when ``pre_emphasis`` > 0: x + β·(x − S(A(x)))
        per plane, S(A(x)) its own first latent synthesised unquantised (BOP, clamped to 0–255), without
        gradient — what the runtime encoder's second pass shows it (jpegai_fast.encoder.pre_emphasise), so
        training sees the picture the deployed encoder analyses."""
        if self.pre_emphasis > 0:
            with torch.no_grad():
                y_lat = self.luma_analysis_hi(y_img)
                c_lat = self.chroma_analysis_hi(vm33.chroma_analysis_input(y_img, uv_img))
                y_rec, uv_rec = self.synthesis["bop"](y_lat, c_lat, y_img.shape[-2:])
                beta = self.pre_emphasis
                y_img = y_img + beta * (y_img - y_rec.float().clamp(0, 255))
                uv_img = uv_img + beta * (uv_img - uv_rec.float().clamp(0, 255))
        return self.luma_analysis_hi(y_img), self.chroma_analysis_hi(vm33.chroma_analysis_input(y_img, uv_img))

    def _code_luma(self, y, rate_idx):
        s, mu, gain, bits = self.luma(y, rate_idx)
        h, w = y.shape[-2:]
        pad = (0, w % 2, 0, h % 2)  # padded positions get s = 0 -> skipped
        ys, ss, psis = split_phases(F.pad(y, pad)), split_phases(F.pad(s, pad)), phases_to_psi(mu).chunk(4, dim=1)
        decoded = []
        for stage in range(4):
            mu_s = self.context_model.stage_mean(stage, psis[stage], decoded)
            y_hat, b = code_residual(ys[stage], mu_s, ss[stage], gain, self.training)
            decoded.append(y_hat)
            bits = bits + b.sum(dim=(1, 2, 3))
        return crop(merge_phases(decoded), h, w), bits

    def _code_chroma(self, c, rate_idx):
        s, mu, gain, bits = self.chroma(c, rate_idx)
        c_hat, b = code_residual(c, mu, s, gain, self.training)
        return c_hat, bits + b.sum(dim=(1, 2, 3))

    def code_latents(self, y_lat, c_lat, rate_idx):
        """Latents -> (y_hat, c_hat, bits [B]): what every operating point's synthesis decodes."""
        y_hat, bits_y = self._code_luma(y_lat, rate_idx)
        c_hat, bits_c = self._code_chroma(c_lat, rate_idx)
        return y_hat, c_hat, bits_y + bits_c

    def forward_latents(self, y_lat, c_lat, rate_idx, hw, op="bop"):
        y_hat, c_hat, bits = self.code_latents(y_lat, c_lat, rate_idx)
        y_rec, uv_rec = self.synthesis[op](y_hat, c_hat, hw)
        return y_rec, uv_rec, bits

    def forward(self, y_img, uv_img, rate_idx, op="bop"):
        """Same contract as codec.Codec: 0-255 4:2:0 in -> (y_rec, uv_rec) 0-255 unclamped, bits [B]."""
        y_lat, c_lat = self.analysis(y_img, uv_img, rate_idx)
        return self.forward_latents(y_lat, c_lat, rate_idx, y_img.shape[-2:], op)

    def encoder_modules(self):
        hi = [self.luma_analysis_hi, self.chroma_analysis_hi] if self.analysis_hi_from is not None else []
        return [self.luma_analysis, self.chroma_analysis] + hi


def _kept_channels(synthesis: vm33.Synthesis, width):
    """The `width` last-stage channels the BOP head leans on most (largest 1x1 output weight columns)."""
    importance = synthesis.out.weight.detach().flatten(1).norm(dim=0)  # [c2]
    return importance.argsort(descending=True)[:width].sort().values


@torch.no_grad()
def prune_synthesis(bop: vm33.Synthesis, sop: vm33.Synthesis):
    """SOP weights from BOP's: the blocks before the last stage copied, the last stage cut to its most used
    channels (a starting point, not an equivalent: the 3x3 then misses the dropped inputs)."""
    keep = _kept_channels(bop, sop.out.weight.shape[1])
    for name in ("res", "up1"):
        getattr(sop, name).load_state_dict(getattr(bop, name).state_dict())
    sop.up2.up.weight.copy_(bop.up2.up.weight[:, keep])  # ConvTranspose: [cin, cout, k, k]
    sop.up2.up.bias.copy_(bop.up2.up.bias[keep])
    for block in ("up2", "mid"):
        src, dst = getattr(bop, block), getattr(sop, block)
        dst.gate.weight.copy_(src.gate.weight[keep][:, keep])
        dst.gate.bias.copy_(src.gate.bias[keep])
    sop.mid.up.weight.copy_(bop.mid.up.weight[keep][:, keep])
    sop.mid.up.bias.copy_(bop.mid.up.bias[keep])
    sop.out.weight.copy_(bop.out.weight[:, keep])


def sop_from_bop(bop: VMSynthesis, sop: VMSynthesis):
    prune_synthesis(bop.luma, sop.luma)
    prune_synthesis(bop.chroma, sop.chroma)


def _fill_analysis_hi(module, state_dict, prefix, *_):
    """load_state_dict pre-hook: a state dict without a high-rate analysis gets a copy of its shared one."""
    for name in ("luma_analysis", "chroma_analysis"):
        if any(k.startswith(f"{prefix}{name}_hi.") for k in state_dict):
            continue
        for k in [k for k in state_dict if k.startswith(f"{prefix}{name}.")]:
            state_dict[f"{prefix}{name}_hi." + k[len(f"{prefix}{name}."):]] = state_dict[k].clone()


def from_checkpoint(ck, analysis_hi_from="checkpoint") -> "VMCodec":
    """A VMCodec shaped as the checkpoint (dict from torch.load) says -- its rate points and, when it has one,
    its high-rate analysis -- with its weights in float32, in eval mode.  analysis_hi_from: override
    (None: without a high-rate analysis, an int: from that rate point, with the shared one copied in)."""
    meta = ck.get("meta", {})
    hi = meta.get("analysis_hi_from") if analysis_hi_from == "checkpoint" else analysis_hi_from
    model = VMCodec(num_rates=len(meta.get("rate_lambdas", VM_RATE_LAMBDAS)), pretrained=False,
                    analysis_hi_from=hi)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
    if hi is None:  # a checkpoint with a high-rate analysis loaded as a one-analysis model: drop it
        state = {k: v for k, v in state.items() if "_analysis_hi." not in k}
    model.load_state_dict(state)
    return model.eval()


def _fill_sop_from_bop(module, state_dict, prefix, *_):
    """load_state_dict pre-hook: a state dict without SOP weights gets them pruned from its own BOP."""
    if any(k.startswith(prefix + "synthesis.sop.") for k in state_dict):
        return
    bop_keys = [k for k in state_dict if k.startswith(prefix + "synthesis.bop.")]
    if not bop_keys:
        return
    bop, sop = VMSynthesis(pretrained=False), VMSynthesis(pretrained=False, op="sop")
    bop.load_state_dict({k[len(prefix + "synthesis.bop."):]: state_dict[k].float() for k in bop_keys})
    sop_from_bop(bop, sop)
    dtype = state_dict[bop_keys[0]].dtype
    for k, v in sop.state_dict().items():
        state_dict[prefix + "synthesis.sop." + k] = v.to(dtype)


class ScaleTeacher(nn.Module):
    """The VM's float hyper-scale decoders: only the distillation target of our integer HSD."""

    def __init__(self):
        super().__init__()
        self.luma = vm33.load_graph("hyper_scale_decoder_y")
        self.chroma = vm33.load_graph("hyper_scale_decoder_uv")
        self.requires_grad_(False)


def distillation_loss(model: VMCodec, teacher: ScaleTeacher, y_lat, c_lat):
    """Mean squared error in Q7 levels between our integer HSD (QAT, gain offset excluded) and the VM scale."""
    total = 0.0
    for comp, t, lat in ((model.luma, teacher.luma, y_lat), (model.chroma, teacher.chroma, c_lat)):
        with torch.no_grad():
            _, z_hat = comp.z_hat(lat)
            target = s_target_from_vm_scale(crop(t(z_hat), *lat.shape[-2:])).double()
        s = comp.hyper_scale(z_hat, lat.shape[-2:])
        total = total + ((s - target) ** 2).mean() / (Q7 * Q7)
    return total


def parameter_counts(model: VMCodec):
    def n(module):
        return sum(p.numel() for p in module.parameters())

    parts = {
        "luma_analysis (enc, VM)": n(model.luma_analysis),
        "chroma_analysis (enc, VM)": n(model.chroma_analysis),
        "high-rate analyses (enc)": sum(n(m) for m in model.encoder_modules()[2:]),
        "hyper_encoders (enc, VM)": n(model.luma.hyper_encoder) + n(model.chroma.hyper_encoder),
        "z_priors (dec)": n(model.luma.z_prior) + n(model.chroma.z_prior),
        "hyper_scale_int (dec, int8)": n(model.luma.hyper_scale) + n(model.chroma.hyper_scale),
        "hyper_decoders (dec, VM)": n(model.luma.hyper_decoder) + n(model.chroma.hyper_decoder),
        "gain_units (dec)": n(model.luma.gain) + n(model.chroma.gain),
        "context_model (dec)": n(model.context_model),
    }
    for op in model.synthesis:
        parts[f"synthesis_{op} (dec, VM)"] = n(model.synthesis[op])
    parts["total"] = n(model)
    return parts
