"""Export the VM 3.3-based model (training/vm_codec.py) to a runtime model directory.

    python -m training.export_vm [--checkpoint training/checkpoints/vm33.pt] [--name vm33] [--rd JSON]
    python -m training.export_vm compare [--model-dir src/jpegai_fast/models/vm33]   # torch vs runtime

Same directory layout and model.bin format as training/export.py (docs/model_format.md), with the newer
mean-path topology: `mean.topology` = [1 (the hyper-mean decoder makes mu on the latent grid), 1 (residual
context model), 5, 5 layers], LeakyReLU layers, and `meta.grid` = [16, 32] (chroma latent at H/32).
Graphs (float32 ONNX, dynamic H/W): analysis_{luma,chroma}, hyper_encoder_{luma,chroma},
synthesis_{bop,sop}_{luma,chroma}; the chroma synthesis graphs take the luma latent on its own grid and
subsamples it [::2, ::2] itself, so the runtime hands both latents over unchanged.
Every graph is checked against its torch module with ONNX Runtime at two sizes (export_validation.json).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vm33
from .colour import denormalise
from .export import (
    OPSET,
    ROOT,
    _cdiv,
    calibration_images,
    context_macs_per_site,
    export_onnx,
    graph_macs,
    hsd_macs,
    validation_inputs,
    validation_summary,
)
from .hyper import Z_BOUND
from .model_file import BLOB_VERSION, pmf_to_cdf, write_blob
from .sigma_levels import SKIP_INDEX_THRESHOLD
from .vm_codec import GRID, SOP_WIDTH, VM_RATE_LAMBDAS, VMCodec, from_checkpoint, parameter_counts

MODEL_ID = 2  # the header's model_id of vm33 streams (vr_bop: 1)


class AnalysisLuma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image_y):  # [1,1,H,W] 0-255 -> [1,128,ceil(H/16),ceil(W/16)]
        return self.m(image_y)


class AnalysisChroma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image_y, image_uv):  # even H, W (the encoder pads) -> [1,64,H/32,W/32] (ceil)
        return self.m(torch.cat([F.avg_pool2d(image_y, 2, ceil_mode=True), image_uv], dim=1))


class SynLuma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat, image_ref):
        h, w = image_ref.shape[-2], image_ref.shape[-1]
        return denormalise(F.pixel_shuffle(self.m(y_hat), 4)[..., :h, :w])


class SynChroma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat_luma, y_hat_chroma, image_ref):
        h, w = image_ref.shape[-2], image_ref.shape[-1]
        x = self.m(torch.cat([y_hat_luma[..., ::2, ::2], y_hat_chroma], dim=1))
        return denormalise(F.pixel_shuffle(x, 4)[..., :_cdiv(h, 2), :_cdiv(w, 2)])


def graphs(model: VMCodec):
    """name -> (wrapper, input maker(hl, wl of the luma latent) -> arrays, torch reference fn)."""
    cl, cc = vm33.LUMA_LATENT, vm33.CHROMA_LATENT
    f32, img, img2 = validation_inputs()

    def yl(h, w):
        return {"y_hat": f32(1, cl, h, w, scale=0.3),
                "image_ref": np.zeros((1, 0, 16 * h - 6, 16 * w - 10), np.float32)}

    def yc(h, w):
        return {"y_hat_luma": f32(1, cl, h, w, scale=0.3),
                "y_hat_chroma": f32(1, cc, -(-h // 2), -(-w // 2), scale=0.3),
                "image_ref": np.zeros((1, 0, 16 * h - 6, 16 * w - 10), np.float32)}

    def synthesis_graphs(op):
        syn = model.synthesis[op]
        return {
            f"synthesis_{op}_luma": (SynLuma(syn.luma), yl,
                                     lambda d: denormalise(F.pixel_shuffle(syn.luma(d["y_hat"]), 4)[
                                         ..., :d["image_ref"].shape[-2], :d["image_ref"].shape[-1]])),
            f"synthesis_{op}_chroma": (SynChroma(syn.chroma), yc,
                                       lambda d: syn(d["y_hat_luma"], d["y_hat_chroma"], d["image_ref"].shape[-2:])[1]),
        }

    def analysis_graphs(suffix, luma, chroma):
        return {
            f"analysis_luma{suffix}": (AnalysisLuma(luma), img, lambda d: luma(d["image_y"])),
            f"analysis_chroma{suffix}": (AnalysisChroma(chroma), img2,
                                         lambda d: chroma(vm33.chroma_analysis_input(d["image_y"], d["image_uv"]))),
        }

    hi = (analysis_graphs("_hi", model.luma_analysis_hi, model.chroma_analysis_hi)
          if model.analysis_hi_from is not None else {})
    return {
        **analysis_graphs("", model.luma_analysis, model.chroma_analysis),
        **hi,
        "hyper_encoder_luma": (model.luma.hyper_encoder, lambda h, w: {"y": f32(1, cl, h, w, scale=2)},
                               lambda d: model.luma.hyper_encoder(d["y"])),
        "hyper_encoder_chroma": (model.chroma.hyper_encoder, lambda h, w: {"y": f32(1, cc, h, w, scale=2)},
                                 lambda d: model.chroma.hyper_encoder(d["y"])),
        **{k: v for op in model.synthesis for k, v in synthesis_graphs(op).items()},
    }


def blob_sections(model: VMCodec, calib) -> dict:
    from .mean_fixed import mean_sections

    rates = len(VM_RATE_LAMBDAS)
    sec = {"meta.channels": np.array([vm33.LUMA_LATENT, vm33.CHROMA_LATENT], np.int32),
           "meta.consts": np.array([SKIP_INDEX_THRESHOLD, Z_BOUND, 2 * Z_BOUND + 1, rates, 128, 12], np.int32),
           "meta.rate_lambdas": np.array(VM_RATE_LAMBDAS, np.float32),
           "meta.grid": np.array([GRID["luma"], GRID["chroma"]], np.int32),
           "meta.model_id": np.array([MODEL_ID], np.int32)}
    for comp in ("luma", "chroma"):
        m = getattr(model, comp)
        for k, v in m.hyper_scale.export_int().items():
            sec[f"hsd.{comp}.{k}"] = v.numpy()
        with torch.no_grad():
            sec[f"zcdf.{comp}"] = pmf_to_cdf(m.z_prior.pmf().double().numpy())
            o = m.gain.offsets()
            sec[f"gain.{comp}.q7"] = o.numpy().astype(np.int32)
            sec[f"gain.{comp}.f32"] = np.stack([m.gain(torch.tensor([r]))[1].reshape(-1).numpy()
                                                for r in range(rates)]).astype(np.float32)
    sec.update(mean_sections(model, calib))
    return sec


def measure_macs(out_dir, hw=(512, 768), ops=("bop",), context_per_site: int = 0):
    h, w = hw
    hl, wl, hc, wc = h // 16, w // 16, h // 32, w // 32
    z = np.zeros
    feeds = {
        "analysis_luma": {"image_y": z((1, 1, h, w), np.float32)},
        "analysis_chroma": {"image_y": z((1, 1, h, w), np.float32), "image_uv": z((1, 2, h // 2, w // 2), np.float32)},
        "hyper_encoder_luma": {"y": z((1, vm33.LUMA_LATENT, hl, wl), np.float32)},
        "hyper_encoder_chroma": {"y": z((1, vm33.CHROMA_LATENT, hc, wc), np.float32)},
    }
    for op in ops:
        feeds[f"synthesis_{op}_luma"] = {"y_hat": z((1, vm33.LUMA_LATENT, hl, wl), np.float32),
                                         "image_ref": z((1, 0, h, w), np.float32)}
        feeds[f"synthesis_{op}_chroma"] = {"y_hat_luma": z((1, vm33.LUMA_LATENT, hl, wl), np.float32),
                                           "y_hat_chroma": z((1, vm33.CHROMA_LATENT, hc, wc), np.float32),
                                           "image_ref": z((1, 0, h, w), np.float32)}
    px = h * w
    res = {name: graph_macs(out_dir / f"{name}.onnx", f) / px / 1000 for name, f in feeds.items()}
    for comp, c, (ll, lw) in (("luma", vm33.LUMA_LATENT, (hl, wl)), ("chroma", vm33.CHROMA_LATENT, (hc, wc))):
        hz, wz = -(-ll // 4), -(-lw // 4)
        # hyper-mean decoder (int): 1x1 at z, convT to 2x, 3x3 at 2x, convT to 4x, 3x3 at 4x
        macs = c * c * hz * wz + 16 * c * c * hz * wz + 9 * c * c * 4 * hz * wz + 16 * c * c * 4 * hz * wz \
            + 9 * c * c * ll * lw
        res[f"hyper_decoder_{comp} (int, analytic)"] = macs / px / 1000
        res[f"hyper_scale_int_{comp} (int8, analytic)"] = hsd_macs(c, hz, wz) / px / 1000
    if context_per_site:  # the luma context model runs on the latent's 2x2 phase sites
        res["context_luma (int, analytic)"] = context_per_site * -(-hl // 2) * -(-wl // 2) / px / 1000
    return {k: round(v, 3) for k, v in res.items()}


# Pre-emphasis factor of the high-rate analysis' second pass (jpegai_fast.encoder.pre_emphasise), written into the
# card for the encoder.  Chosen on 12 training crops with Kodak-like detail (training/README.md, "Pre-emphasis"):
# beta 0.3 +0.05 / +0.09 / +0.12 dB at rate points 6 / 8 / 11 for 1-1.5 % less rate; 0.5 and two passes less.
PRE_EMPHASIS_BETA = 0.3

CARD_ATTRIBUTION = ("Starts from the JPEG AI verification model 3.3 networks (analysis, hyper encoder, hyper "
                    "(mean) decoder, synthesis; ONNX export by Smart Harmony LLC, JPEG-AI-OPT, licensed CC BY 4.0), "
                    "fine-tuned by this project; the z prior, integer hyper-scale decoder (distilled from the VM's "
                    "float scale decoder), context model and gain units are this project's.")


def _steps_text(meta: dict) -> str:
    """The checkpoint's step count for the card: the SOP synthesis trains beside BOP in the same steps (its own
    counter stays 0), so say so instead of printing {'sop': 0}."""
    steps = meta.get("steps") or {}
    text = f"{steps.get('bop', 0):,} training steps"
    if meta.get("sop_beside_bop_from_step") is not None:
        since = meta["sop_beside_bop_from_step"]
        text += f" (the SOP synthesis trained beside BOP in the same steps since step {since:,})"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "training/checkpoints/vm33.pt"))
    ap.add_argument("--name", default="vm33")
    ap.add_argument("--out", default=None, help="default src/jpegai_fast/models/<name>")
    ap.add_argument("--rd", default=None, help="rd_eval JSON (BOP) whose points go into the card")
    ap.add_argument("--rd-sop", default=None, help="rd_eval --op sop JSON for the card's SOP table")
    ap.add_argument("--data", default="../shared/datasets/train", help="training pool: fixed-point calibration")
    ap.add_argument("--calib-images", type=int, default=16)
    ap.add_argument("--calibration-checkpoint", default=None,
                    help="calibrate the fixed-point mean path with this checkpoint instead (a graft: the checkpoint "
                         "its decoder tensors come from, so model.bin comes out byte-equal to that export's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pre-emphasis", type=float, default=None,
                    help="beta of the high-rate analysis' second pass, written into the card (0 = one pass); "
                         "default: the β the checkpoint's high-rate analysis trained with (train.py --pre-emphasis), "
                         f"else {PRE_EMPHASIS_BETA}")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = pathlib.Path(args.out or ROOT / "src" / "jpegai_fast" / "models" / args.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    ck = torch.load(args.checkpoint, map_location="cpu")
    model = from_checkpoint(ck)
    meta = dict(ck.get("meta", {}))
    meta["checkpoint_sha256"] = hashlib.sha256(pathlib.Path(args.checkpoint).read_bytes()).hexdigest()

    from .mean_fixed import calibrate
    calib_model = model
    if args.calibration_checkpoint:  # only the encoder differs: keep the decoder's own fixed-point formats
        calib_ck = torch.load(args.calibration_checkpoint, map_location="cpu")
        calib_model = from_checkpoint(calib_ck)
        if not decoder_tensors_equal(calib_model, model):
            raise SystemExit(f"{args.calibration_checkpoint}: its decoder tensors differ from {args.checkpoint}'s; "
                             "calibrate with the exported checkpoint itself")
        meta["mean_calibrated_with"] = {"checkpoint": args.calibration_checkpoint, "sha256": hashlib.sha256(
            pathlib.Path(args.calibration_checkpoint).read_bytes()).hexdigest(),
            "steps": (calib_ck.get("meta") or {}).get("steps")}
    calib = calibrate(calib_model, calibration_images(args.data, args.calib_images), range(len(VM_RATE_LAMBDAS)))
    validation = {}
    for name, (wrapper, make, ref_fn) in graphs(model).items():
        validation[name] = export_onnx(name, wrapper.eval(), make, ref_fn, out_dir)
        print(f"{name:28s} {validation_summary(validation[name])}", flush=True)
    (out_dir / "model.bin").write_bytes(write_blob(blob_sections(model, calib)))
    (out_dir / "export_validation.json").write_text(json.dumps(validation, indent=1) + "\n")
    macs = measure_macs(out_dir, ops=tuple(model.synthesis),
                         context_per_site=context_macs_per_site(model.context_model))
    rd = {op: rd_summary(path) for op, path in (("bop", args.rd), ("sop", args.rd_sop)) if path}
    if args.pre_emphasis is None:
        args.pre_emphasis = float(meta.get("pre_emphasis_train") or PRE_EMPHASIS_BETA)
    for _ in range(2):  # second pass: the file table includes the card files' own sizes
        write_card(out_dir, args.name, args.checkpoint, meta, model, macs, validation, rd, args.pre_emphasis)
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {out_dir}: {total / 2**20:.2f} MiB", flush=True)


ENCODER_ONLY_PREFIXES = ("luma_analysis", "chroma_analysis", "hyper_encoder")  # parts the decoder never runs


def decoder_tensors_equal(a: VMCodec, b: VMCodec) -> bool:
    """True when every tensor the decoder uses (all but the analyses and hyper encoders) is bit-equal in a and b."""
    sa, sb = a.state_dict(), b.state_dict()
    dec = lambda sd: {k for k in sd if not any(p in k for p in ENCODER_ONLY_PREFIXES)}  # noqa: E731
    return dec(sa) == dec(sb) and all(torch.equal(sa[k], sb[k]) for k in dec(sa))


def rd_summary(path):
    full = json.loads(pathlib.Path(path).read_text())
    return {"source": path, "images": full["images"], "points": full["ours"]["mean_points"],
            "baseline": full.get("baseline"),
            "bd_rate": {k: (v["mean_percent"] if isinstance(v, dict) else v)
                        for k, v in full.get("bd_rate", {}).items()}}


def write_card(out_dir, name, ckpt, meta, model, macs, validation, rd_by_op, pre_emphasis=PRE_EMPHASIS_BETA):
    counts = parameter_counts(model)
    files = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    card = {"name": name, "format": {"onnx_opset": OPSET, "onnx_dtype": "float32", "blob_version": BLOB_VERSION},
            "exported_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "checkpoint": (str(pathlib.Path(ckpt).resolve().relative_to(ROOT))
                           if pathlib.Path(ckpt).resolve().is_relative_to(ROOT) else str(ckpt)),
            "checkpoint_sha256": meta.get("checkpoint_sha256"),
            "training": {"steps": meta.get("steps"), "wall_s": meta.get("wall_s"),
                         "data": "../shared/datasets/train (1411 crops; research-use licences), crop 256, batch 8",
                         "rate_lambdas_bpp_per_db": list(VM_RATE_LAMBDAS)},
            "attribution": CARD_ATTRIBUTION, "parameters_torch": counts, "kmac_per_px_768x512": macs,
            "validation_max_abs_diff": validation, "files_bytes": files,
            "kodak_rd": rd_by_op.get("bop"), "kodak_rd_sop": rd_by_op.get("sop"),
            "sop_beside_bop_from_step": meta.get("sop_beside_bop_from_step"),
            # read by the encoder (jpegai_fast.model.ANALYSIS_HI_KEY): rate points from here on use analysis_*_hi
            "analysis_hi_from": model.analysis_hi_from,
            # read by the encoder (jpegai_fast.model.PRE_EMPHASIS_KEY): beta of the high-rate analysis' second pass
            "analysis_hi_pre_emphasis": pre_emphasis if model.analysis_hi_from is not None else 0.0}
    if meta.get("grafted"):  # decoder tensors of an earlier checkpoint, the high-rate analysis of this one
        card["grafted"] = meta["grafted"]
    if meta.get("mean_calibrated_with"):
        card["mean_calibrated_with"] = meta["mean_calibrated_with"]
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
    md = [f"# Model card: `{name}`", "",
          f"- {CARD_ATTRIBUTION}",
          f"- Checkpoint `{card['checkpoint']}`, {_steps_text(meta)}, training wall time {meta.get('wall_s')} s "
          "(CPU, 1-2 threads; the VM analysis frozen up to step 10,928, its last two stages trained from then on "
          "and its last three from step 34,700, on cached features of the frozen head, `training.latent_cache`; "
          "all of it from step 45,415, with bf16 autocast from step 46,027; steps 58,651–64,201 on an H200 GPU, "
          "`training.gpu_run`, batch 16; quality PSNR-YUV and MS-SSIM-Y (weight 0.5) from step 64,307; a second "
          "analysis for rate points 6-11 from step 92,303; "
          "log training/logs/vm33.tsv).",
          f"- Training data: {card['training']['data']}. The sources of these photos state research-use licences "
          "(provenance per crop in the pool's MANIFEST.tsv), and the VM weights are CC BY 4.0: **these weights are a "
          "research artefact**. The code is Apache-2.0.",
          "- Rate points as RD slopes λ (bpp per dB of quality: PSNR-YUV, from step 64,307 "
          f"(PSNR-YUV + 0.5·MS-SSIM-Y dB) / 1.5): {', '.join(f'{x:g}' for x in VM_RATE_LAMBDAS)}.",
          "- Format: ONNX opset 17 float32 (weights stored as exact float16, dynamic H/W) + model.bin "
          "(docs/model_format.md; "
          "mean.topology [1, 1, 5, 5], meta.grid [16, 32]). Mean path fixed-point (calibrated on 16 training crops "
          "at every rate point"
          + (f" with the checkpoint of step {card['mean_calibrated_with']['steps'].get('bop', 0):,}, whose decoder "
             "tensors these are" if card.get("mean_calibrated_with") else "") + ").",
          *([f"- Graft: every tensor the decoder uses is the step-{card['grafted']['base_step']:,} checkpoint's; the "
             f"high-rate analysis trained on from step {card['grafted']['analysis_hi_from_step']:,} against that "
             "decoder (`meta[\"grafted\"]`, training/README.md)."] if card.get("grafted") else []),
          "", "## Parameters", "", "| part | parameters |", "|---|---:|"]
    md += [f"| {k} | {v:,} |" for k, v in counts.items()]
    md += ["", "## kMAC per luma pixel (graphs measured at 768x512; integer parts analytic)", "",
           "| part | kMAC/px |", "|---|---:|"] + [f"| {k} | {v:.3f} |" for k, v in macs.items()]
    for op in model.synthesis:
        other_ops = tuple(f"synthesis_{o}_" for o in model.synthesis if o != op)
        dec = sum(v for k, v in macs.items() if not k.startswith(("analysis", "hyper_encoder") + other_ops))
        md.append(f"| **decoder total, {op.upper()}** | {dec:.3f} |")
    md += ["", "## Kodak RD", ""]
    if not rd_by_op:
        md += ["Not measured at export time (`python -m training.rd_eval --model src/jpegai_fast/models/vm33 "
               "[--op sop]`, then re-export with `--rd` / `--rd-sop`).", ""]
    for op, rd in rd_by_op.items():
        md += [f"{op.upper()}: from `{rd.get('source')}` ({rd.get('images')} images; real bytes through "
               "jpegai_fast" + (f"; vs_baseline: against {rd['baseline']}" if rd.get("baseline") else "") + ").", "",
               "| rate point | bpp | PSNR-YUV (dB) | MS-SSIM-Y | MS-SSIM-Y (dB) |", "|---:|---:|---:|---:|---:|"]
        md += [f"| {p['rate']} | {p['bpp']:.4f} | {p['psnr_yuv']:.3f} | {p['msssim_y']:.4f} | {p['msssim_db']:.2f} |"
               for p in rd["points"]]
        bd = rd.get("bd_rate") or {}
        if bd:
            md += ["", "| BD-rate | % |", "|---|---:|"] + [f"| {k} | {v:+.2f} |" for k, v in bd.items()]
        md.append("")
    if model.analysis_hi_from is not None:
        md += [f"Encoder: rate points {model.analysis_hi_from}–{len(VM_RATE_LAMBDAS) - 1} are analysed by a second "
               "analysis (`analysis_{luma,chroma}_hi.onnx`, card key `analysis_hi_from`), trained on those rate points "
               f"only since step {meta.get('analysis_hi_since_step', '?')}; the decoder is the same for both.", "",
               f"Pre-emphasis (card key `analysis_hi_pre_emphasis` = {card['analysis_hi_pre_emphasis']:g}): the "
               "encoder analyses those rate points' pictures twice, the second time x + β·(x − S(A(x))) with "
               "S(A(x)) the first latent synthesised unquantised (`jpegai_fast.encoder.pre_emphasise`); "
               "`Encoder(pre_emphasis=0)`: once.",
               ""]
    if "sop" in model.synthesis and meta.get("sop_beside_bop_from_step") is not None:
        md += [f"SOP synthesis: pruned from the BOP one (last stage {SOP_WIDTH} channels) and trained "
               f"beside it on the same latent since step {meta['sop_beside_bop_from_step']:,}.", ""]
    md += ["", "## Files", "", "| file | bytes |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in files.items()]
    (out_dir / "MODEL_CARD.md").write_text("\n".join(md) + "\n")




# ----------------------------------------------------------------------------------------------
# Export checks: torch vs the exported model through the runtime (real bytes)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def compare(model: VMCodec, model_dir, kodak, names, rates, threads=1):
    """Per image and rate point: z equal (count of differing symbols), sigma indices of our integer HSD
    (torch QAT int_forward on the runtime's z) equal to the runtime's, PSNR-YUV of torch (float mean path,
    estimated bits) vs the runtime (fixed-point mean path, real bytes)."""
    from PIL import Image

    import jpegai_fast

    from .colour import psnr_yuv, rgb_to_yuv420, yuv_mse
    from .sigma_levels import sigma_index

    enc = jpegai_fast.Encoder(model=str(model_dir), threads=threads)
    dec = jpegai_fast.Decoder(model=str(model_dir), threads=threads)
    # torch analyses the high rate points as the runtime encoder does: pre-emphasised by the card's beta
    # (its S(A(x)) is torch's synthesis, so a z symbol may still round the other way where ORT differs)
    model.pre_emphasis = float(enc.pre_emphasis)
    rows = []
    for name in names:
        rgb = np.array(Image.open(pathlib.Path(kodak) / f"{name}.png").convert("RGB"))
        y, uv = rgb_to_yuv420(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
        for r in rates:
            stream = enc.encode(rgb, rate_point=r)
            lat = dec.decode_latents(stream)
            planes = dec.decode(stream, output="yuv")
            y_rt, uv_rt = torch.from_numpy(planes["Y"])[None, None], torch.from_numpy(planes["UV"])[None]
            psnr_rt = float(psnr_yuv(yuv_mse(y_rt.double(), uv_rt.double(), y.double(), uv.double()))[0])
            y_rec, uv_rec, bits = model(y, uv, torch.tensor([r]))
            psnr_t = float(psnr_yuv(yuv_mse(y_rec.clamp(0, 255), uv_rec.clamp(0, 255), y, uv))[0])
            row = {"image": name, "rate": r, "bpp_runtime": 8 * len(stream) / (rgb.shape[0] * rgb.shape[1]),
                   "bpp_torch_estimate": float(bits[0]) / (rgb.shape[0] * rgb.shape[1]),
                   "psnr_yuv_runtime": psnr_rt, "psnr_yuv_torch": psnr_t}
            lats = model.analysis(y, uv, torch.tensor([r]))  # the rate point's analysis
            for comp, m, latent in (("luma", model.luma, lats[0]), ("chroma", model.chroma, lats[1])):
                z_t = m.z_hat(latent)[1].round().to(torch.int16).numpy()[0]
                z_rt = lat["z"][comp]
                row[f"z_mismatch_{comp}"] = int((z_t != z_rt).sum())
                s = m.hyper_scale.int_forward(torch.from_numpy(z_rt.astype(np.int64))[None], latent.shape[-2:])
                off = m.gain.offsets()[r].long()[:, None, None]
                idx = sigma_index(s[0].long() + off).numpy()
                idx = np.where(idx < SKIP_INDEX_THRESHOLD, 255, idx)
                row[f"sigma_index_mismatch_{comp}"] = int((idx != lat["index"][comp]).sum())
            rows.append(row)
            print(row, flush=True)
    return rows


def compare_main():
    ap = argparse.ArgumentParser(description="torch vs the exported vm33 model through the runtime")
    ap.add_argument("--checkpoint", default=str(ROOT / "training/checkpoints/vm33.pt"))
    ap.add_argument("--model-dir", default=str(ROOT / "src/jpegai_fast/models/vm33"))
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    ap.add_argument("--names", default="kodim23,kodim04")
    ap.add_argument("--rates", default="0,4,7")
    ap.add_argument("--out", default=str(ROOT / "training/results/torch_vs_runtime_vm33.json"))
    args = ap.parse_args(sys.argv[2:])
    ck = torch.load(args.checkpoint, map_location="cpu")
    model = from_checkpoint(ck)
    rows = compare(model, args.model_dir, args.kodak, args.names.split(","), [int(r) for r in args.rates.split(",")])
    summary = {"checkpoint_steps": ck["meta"].get("steps"), "pre_emphasis": model.pre_emphasis, "rows": rows,
               "max_psnr_diff_db": max(abs(r["psnr_yuv_runtime"] - r["psnr_yuv_torch"]) for r in rows),
               "sigma_index_mismatches": sum(r["sigma_index_mismatch_luma"] + r["sigma_index_mismatch_chroma"]
                                             for r in rows),
               "z_mismatches": sum(r["z_mismatch_luma"] + r["z_mismatch_chroma"] for r in rows)}
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print({k: v for k, v in summary.items() if k != "rows"})


if __name__ == "__main__":
    compare_main() if sys.argv[1:2] == ["compare"] else main()
