"""Export a trained checkpoint of the from-scratch model (training/codec.py) to the runtime model directory.

    python -m training.export --checkpoint training/checkpoints/vr_bop.pt --name vr_bop \
        [--out src/jpegai_fast/models/vr_bop] [--rd training/results/rd_eval.json]

Writes (float32 ONNX, opset 17, dynamic H/W; layout of model.bin in docs/model_format.md):

  encoder side   analysis_luma, analysis_chroma, hyper_encoder_{luma,chroma}
  decoder side   hyper_decoder_{luma,chroma}, context_luma_stage{0..3},
                 synthesis_{bop,sop}_{luma,chroma}
  model.bin      integer HSD (int8 weights, int32 biases, int8 shifts), z CDFs (uint16, 12 bit),
                 Q7 gain offsets (+ their float32 gains), constants, CRC-32
  model_card.json / MODEL_CARD.md, README.md, export_validation.json

Every graph is checked against its torch module with onnxruntime on random inputs at two sizes
(one not a multiple of the stride), max abs diff recorded in export_validation.json.
"""
import argparse
import datetime
import io
import json
import pathlib
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

from .codec import RATE_LAMBDAS, Codec, parameter_counts
from .colour import denormalise, normalise
from .hyper import Z_BOUND
from .model_file import BLOB_VERSION, pmf_to_cdf, write_blob
from .sigma_levels import SKIP_INDEX_THRESHOLD

OPSET = 17
ROOT = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------
# Export wrappers: same modules/weights, shapes taken from tensors so H/W stay dynamic
# ----------------------------------------------------------------------------------------------
def pad_even_dyn(x):
    """Replicate-pad right/bottom to even size (blocks.pad_even without the Python branch)."""
    h, w = x.shape[-2], x.shape[-1]
    x = torch.cat([x, x[..., -1:, :]], dim=-2)
    x = torch.cat([x, x[..., :, -1:]], dim=-1)
    return x[..., :(h + 1) // 2 * 2, :(w + 1) // 2 * 2]


def _trunk(trunk, x):
    for down, resau in zip(trunk.downs, trunk.resaus):
        x = resau(down(pad_even_dyn(x)))
    return x


class AnalysisLuma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image_y):  # [1,1,H,W] 0-255
        m = self.m
        return m.out(m.down(pad_even_dyn(_trunk(m.trunk, normalise(image_y)))))


class AnalysisChroma(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image_y, image_uv):  # [1,1,H,W], [1,2,H/2,W/2] 0-255
        x = torch.cat([F.pixel_unshuffle(normalise(image_y), 2), normalise(image_uv)], dim=1)
        return self.m.out(_trunk(self.m.trunk, x))


class HyperEnc(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y):  # -> z before clamp/round
        m = self.m
        x = F.leaky_relu(m.c1(y), 0.01)
        x = F.leaky_relu(m.c2(pad_even_dyn(x)), 0.01)
        return m.c3(pad_even_dyn(x))


class HyperDec(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, z_hat, latent_ref):  # latent_ref [1,0,Hl,Wl]: carries the latent size only
        m = self.m
        h, w = _cdiv(latent_ref.shape[-2], 2), _cdiv(latent_ref.shape[-1], 2)
        x = F.relu6(m.up(m.c1(z_hat))[..., :h, :w])
        return m.c3(F.relu6(m.c2(x)))


class ContextStage(nn.Module):
    def __init__(self, cm, stage):
        super().__init__()
        self.cm, self.stage = cm, stage

    def forward(self, psi_chunk, prev=None):  # prev: decoded y_hat phases 0..stage-1 concatenated
        return self.cm.stage_mean(self.stage, psi_chunk, [] if prev is None else [prev])


def _cdiv(a, b):
    """ceil(a / b) for positive traced sizes (blocks.ceil_div's -(-a // b) exports as a truncating Div)."""
    return (a + b - 1) // b


class SynLuma(nn.Module):
    """synthesis.LumaSynthesis{BOP,SOP}.forward with traced crop sizes; both share the layout
    head -> up1 -> res1 -> crop H/8 -> up2 -> crop H/4 -> res2 -> (widen|mid) -> res3 -> out -> PS(4)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat, image_ref):  # -> Y [1,1,H,W] 0-255 unclamped
        m, h, w = self.m, image_ref.shape[-2], image_ref.shape[-1]
        x = m.res1(m.up1(m.head(y_hat)))[..., :_cdiv(h, 8), :_cdiv(w, 8)]
        x = m.res2(m.up2(x)[..., :_cdiv(h, 4), :_cdiv(w, 4)])
        mid = m.widen if hasattr(m, "widen") else m.mid
        x = m.out(m.res3(mid(x)))
        return denormalise(F.pixel_shuffle(x, 4)[..., :h, :w])


class SynChroma(nn.Module):
    """synthesis.ChromaSynthesis{BOP,SOP}.forward with traced crop sizes."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, y_hat_luma, y_hat_chroma, image_ref):  # -> UV [1,2,ceil(H/2),ceil(W/2)]
        m, h, w = self.m, image_ref.shape[-2], image_ref.shape[-1]
        x = m.res1(m.up(m.combine(y_hat_luma, y_hat_chroma))[..., :_cdiv(h, 8), :_cdiv(w, 8)])
        mid = m.widen if hasattr(m, "widen") else m.mid
        x = m.out(m.res2(mid(x)))
        return denormalise(F.pixel_shuffle(x, 4)[..., :_cdiv(h, 2), :_cdiv(w, 2)])


def synthesis_inputs(f32, luma_channels, chroma_channels):
    """Input makers (h, w) -> feeds of the luma and chroma synthesis graphs: random latents and an image_ref
    whose size is not a multiple of 16 (the graphs crop to it)."""
    def luma(h, w):
        return {"y_hat": f32(1, luma_channels, h, w, scale=2),
                "image_ref": np.zeros((1, 0, 16 * h - 6, 16 * w - 10), np.float32)}

    def chroma(h, w):
        return {"y_hat_luma": f32(1, luma_channels, h, w, scale=2),
                "y_hat_chroma": f32(1, chroma_channels, h, w, scale=2),
                "image_ref": np.zeros((1, 0, 16 * h - 6, 16 * w - 10), np.float32)}

    return luma, chroma


def validation_inputs(seed=0):
    """The validation inputs' makers, sharing one generator: f32(*shape, scale) normal noise, img(hl, wl) a luma
    picture and img2(hl, wl) luma + 4:2:0 chroma of a size that is not a multiple of the latent stride."""
    rng = np.random.default_rng(seed)

    def f32(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def img(h, w):
        return {"image_y": rng.uniform(0, 255, (1, 1, 16 * h - 5, 16 * w - 3)).astype(np.float32)}

    def img2(h, w):
        hh, ww = 16 * h - 6, 16 * w - 2
        return {"image_y": rng.uniform(0, 255, (1, 1, hh, ww)).astype(np.float32),
                "image_uv": rng.uniform(0, 255, (1, 2, hh // 2, ww // 2)).astype(np.float32)}

    return f32, img, img2


def graphs(model: Codec):
    """name -> (wrapper, torch reference fn, input specs(latent size hl,wl) -> dict of arrays)."""
    cl, cc = model.luma.hyper_encoder.c1.in_channels, model.chroma.hyper_encoder.c1.in_channels
    f32, img, img2 = validation_inputs()

    def zin(c):
        return lambda h, w: {"z_hat": np.round(f32(1, c, -(-h // 4), -(-w // 4), scale=3)),
                             "latent_ref": np.zeros((1, 0, h, w), np.float32)}

    def ctx(stage):
        def make(h, w):
            d = {"psi_chunk": f32(1, cl, -(-h // 2), -(-w // 2))}
            if stage:
                d["prev"] = f32(1, cl * stage, -(-h // 2), -(-w // 2), scale=2)
            return d
        return make

    out = {
        "analysis_luma": (AnalysisLuma(model.luma_analysis), img,
                          lambda d: model.luma_analysis(normalise(d["image_y"]))),
        "analysis_chroma": (AnalysisChroma(model.chroma_analysis), img2,
                            lambda d: model.chroma_analysis(normalise(d["image_y"]), normalise(d["image_uv"]))),
    }
    for comp, c in (("luma", cl), ("chroma", cc)):
        m = getattr(model, comp)
        out[f"hyper_encoder_{comp}"] = (HyperEnc(m.hyper_encoder), lambda h, w, c=c: {"y": f32(1, c, h, w, scale=2)},
                                        lambda d, m=m: m.hyper_encoder(d["y"]))
        out[f"hyper_decoder_{comp}"] = (HyperDec(m.hyper_decoder), zin(c),
                                        lambda d, m=m: m.hyper_decoder(d["z_hat"], d["latent_ref"].shape[-2:]))
    for s in range(4):
        out[f"context_luma_stage{s}"] = (
            ContextStage(model.context_model, s), ctx(s),
            lambda d, s=s: model.context_model.stage_mean(s, d["psi_chunk"], [d["prev"]] if s else []))
    for op in ("bop", "sop"):
        syn = model.synthesis[op]

        yl, yc = synthesis_inputs(f32, cl, cc)
        out[f"synthesis_{op}_luma"] = (
            SynLuma(syn["luma"]), yl,
            lambda d, syn=syn: denormalise(syn["luma"](d["y_hat"], d["image_ref"].shape[-2:])))
        out[f"synthesis_{op}_chroma"] = (
            SynChroma(syn["chroma"]), yc,
            lambda d, syn=syn: denormalise(
                syn["chroma"](d["y_hat_luma"], d["y_hat_chroma"], d["image_ref"].shape[-2:])))
    return out


FLOAT16_STORAGE_MIN = 64  # elements: smaller tensors (biases of tiny layers) are not worth a Cast node


def store_float16_exact(proto: onnx.ModelProto, only: set[str] | None = None) -> tuple[onnx.ModelProto, int]:
    """Store every float32 weight that float16 holds exactly as float16, cast back to float32 in the graph.

    The checkpoints keep float16 weights, so every trained tensor qualifies and the graph computes with the
    very same float32 values (ONNX Runtime folds the Casts when the session is made): outputs stay bit for bit,
    the file halves.  A tensor that float16 would change is left as it is.  ``only``: the initializers that may
    be stored so (default: all).  -> (proto, bytes saved)."""
    from onnx import TensorProto, helper, numpy_helper

    casts, saved = [], 0
    for i, init in enumerate(list(proto.graph.initializer)):
        if init.data_type != TensorProto.FLOAT or (only is not None and init.name not in only):
            continue
        a = numpy_helper.to_array(init)
        if a.size < FLOAT16_STORAGE_MIN:
            continue
        h = a.astype(np.float16)
        back = h.astype(np.float32)
        if not (np.array_equal(back, a) and np.array_equal(np.signbit(back), np.signbit(a))):
            continue
        name = init.name  # init is the stored message itself: read the name before overwriting it
        proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(h, name + ".f16"))
        casts.append(helper.make_node("Cast", [name + ".f16"], [name], to=TensorProto.FLOAT, name=name + ".to_f32"))
        saved += 2 * a.size
    nodes = casts + list(proto.graph.node)  # the Casts first: the graph stays topologically sorted
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto, saved


def export_onnx(name, wrapper, make_inputs, ref_fn, out_dir):
    example = make_inputs(6, 7)
    names = list(example)
    dyn = {k: {2: f"{k}_h", 3: f"{k}_w"} for k in names}
    dyn["out"] = {2: "out_h", 3: "out_w"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(torch.from_numpy(example[k]) for k in names), buf, dynamo=False,
                          opset_version=OPSET, input_names=names, output_names=["out"], dynamic_axes=dyn,
                          do_constant_folding=True)
    proto, _ = store_float16_exact(onnx.load_from_string(buf.getvalue()))
    onnx.checker.check_model(proto)
    path = out_dir / f"{name}.onnx"
    onnx.save(proto, str(path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    diffs = {}
    for hw in ((8, 12), (5, 9)):
        d = make_inputs(*hw)
        got = sess.run(None, d)[0]
        with torch.no_grad():
            want = ref_fn({k: torch.from_numpy(v) for k, v in d.items()}).float().numpy()
        assert got.shape == want.shape, (name, got.shape, want.shape)
        diffs[f"{hw[0]}x{hw[1]}"] = {"max_abs_diff": float(np.abs(got - want).max()),
                                     "max_abs_ref": float(np.abs(want).max()), "shape": list(got.shape)}
    return diffs


def validation_summary(diffs) -> str:
    """The worst ONNX-vs-torch difference of one graph, relative to the output's magnitude (absolute
    differences of graphs whose outputs span 1e-2 or 1e3 are not comparable)."""
    v = max(diffs.values(), key=lambda d: d["max_abs_diff"] / max(d["max_abs_ref"], 1e-12))
    return (f"max|onnx - torch| / max|torch| = {v['max_abs_diff'] / max(v['max_abs_ref'], 1e-12):.3g} "
            f"({v['max_abs_diff']:.3g} of {v['max_abs_ref']:.3g})")


# ----------------------------------------------------------------------------------------------
# MACs measured from the graphs (Conv / ConvTranspose, at a given image size)
# ----------------------------------------------------------------------------------------------
def graph_macs(path, feeds):
    proto = onnx.load(str(path))
    inits = {i.name: list(i.dims) for i in proto.graph.initializer}
    for n in proto.graph.node:  # identical weights shared through Identity nodes; float16 storage's Casts
        if n.op_type in ("Identity", "Cast") and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    convs = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    wanted = []
    for n in convs:
        wanted += [n.input[0], n.output[0]]
    existing = {o.name for o in proto.graph.output}
    for t in dict.fromkeys(wanted):
        if t not in existing and t not in {i.name for i in proto.graph.input}:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    outs.update(feeds)
    macs = 0
    for n in convs:
        wshape = inits[n.input[1]]
        k = int(np.prod(wshape[2:]))
        if n.op_type == "Conv":
            macs += int(np.prod(outs[n.output[0]].shape)) * wshape[1] * k
        else:  # ConvTranspose weight [Cin, Cout/g, kh, kw]
            macs += int(np.prod(outs[n.input[0]].shape)) * wshape[1] * k
    return macs


def hsd_macs(c, hz, wz):
    return hz * wz * (c * c + 9 * c * c + 16 * c * c)


def context_macs_per_site(context_model) -> int:
    """MACs of the 4-stage luma context model per 2x2 phase site (all four stages): its conv weights, each
    applied once per site of the half-resolution latent grid."""
    return sum(m.weight.numel() for m in context_model.modules() if isinstance(m, torch.nn.Conv2d))


def measure_macs(out_dir, model, hw=(512, 768)):
    h, w = hw
    hl, wl = h // 16, w // 16
    hz, wz, h2, w2 = -(-hl // 4), -(-wl // 4), -(-hl // 2), -(-wl // 2)
    cl, cc = 160, 96
    z = np.zeros
    feeds = {
        "analysis_luma": {"image_y": z((1, 1, h, w), np.float32)},
        "analysis_chroma": {"image_y": z((1, 1, h, w), np.float32), "image_uv": z((1, 2, h // 2, w // 2), np.float32)},
        "hyper_encoder_luma": {"y": z((1, cl, hl, wl), np.float32)},
        "hyper_encoder_chroma": {"y": z((1, cc, hl, wl), np.float32)},
        "hyper_decoder_luma": {"z_hat": z((1, cl, hz, wz), np.float32), "latent_ref": z((1, 0, hl, wl), np.float32)},
        "hyper_decoder_chroma": {"z_hat": z((1, cc, hz, wz), np.float32), "latent_ref": z((1, 0, hl, wl), np.float32)},
    }
    for s in range(4):
        feeds[f"context_luma_stage{s}"] = {"psi_chunk": z((1, cl, h2, w2), np.float32)}
        if s:
            feeds[f"context_luma_stage{s}"]["prev"] = z((1, cl * s, h2, w2), np.float32)
    for op in ("bop", "sop"):
        feeds[f"synthesis_{op}_luma"] = {"y_hat": z((1, cl, hl, wl), np.float32),
                                         "image_ref": z((1, 0, h, w), np.float32)}
        feeds[f"synthesis_{op}_chroma"] = {"y_hat_luma": z((1, cl, hl, wl), np.float32),
                                           "y_hat_chroma": z((1, cc, hl, wl), np.float32),
                                           "image_ref": z((1, 0, h, w), np.float32)}
    px = h * w
    res = {name: graph_macs(out_dir / f"{name}.onnx", f) / px / 1000 for name, f in feeds.items()
           if (out_dir / f"{name}.onnx").exists()}
    if not (out_dir / "hyper_decoder_luma.onnx").exists():  # fixed-point mean path: MACs from the layer shapes
        for comp, c in (("luma", cl), ("chroma", cc)):
            hd = getattr(model, comp).hyper_decoder
            macs = c * c * hz * wz + (c * c * 4) * h2 * w2 + (c * c * 9 + 4 * c * c * 9) * h2 * w2
            assert sum(p.numel() for n, p in hd.named_parameters() if n.endswith("weight")) == c * c * (1 + 16 + 9 + 36)
            res[f"hyper_decoder_{comp} (int, analytic)"] = macs / px / 1000
        res["context_luma (int, analytic)"] = context_macs_per_site(model.context_model) * h2 * w2 / px / 1000
    res["hyper_scale_int_luma (int8, analytic)"] = hsd_macs(cl, hz, wz) / px / 1000
    res["hyper_scale_int_chroma (int8, analytic)"] = hsd_macs(cc, hz, wz) / px / 1000
    return {k: round(v, 3) for k, v in res.items()}


# ----------------------------------------------------------------------------------------------
# Integer blob
# ----------------------------------------------------------------------------------------------
MEAN_GRAPHS = ("hyper_decoder_luma", "hyper_decoder_chroma") + tuple(f"context_luma_stage{s}" for s in range(4))


def calibration_images(data_root, count, size=256):
    """The first `count` training crops (one per source photo), centre `size` squares: the pictures the
    fixed-point scales are calibrated on (never the Kodak evaluation set)."""
    from .data import TrainPool

    pool = TrainPool(data_root, per_photo=1)
    out = []
    for img in pool.images[:count]:
        arr = img.permute(1, 2, 0).numpy() if hasattr(img, "permute") else np.asarray(img)
        h, w = arr.shape[:2]
        y0, x0 = (h - size) // 2, (w - size) // 2
        out.append(np.ascontiguousarray(arr[y0:y0 + size, x0:x0 + size]))
    return out


def blob_sections(model: Codec, mean_calibration=None):
    """mean_calibration: {tensor: max |value|} (mean_fixed.calibrate) -> the fixed-point mean path's
    sections are included; None -> the float mean path (ONNX graphs) only."""
    sec = {"meta.channels": np.array([160, 96], np.int32),
           "meta.consts": np.array([SKIP_INDEX_THRESHOLD, Z_BOUND, 2 * Z_BOUND + 1, len(RATE_LAMBDAS),
                                    128, 12], np.int32),
           "meta.rate_lambdas": np.array(RATE_LAMBDAS, np.float32)}
    for comp in ("luma", "chroma"):
        m = getattr(model, comp)
        for k, v in m.hyper_scale.export_int().items():
            sec[f"hsd.{comp}.{k}"] = v.numpy()
    for comp in ("luma", "chroma"):
        m = getattr(model, comp)
        with torch.no_grad():
            sec[f"zcdf.{comp}"] = pmf_to_cdf(m.z_prior.pmf().double().numpy())
    for comp in ("luma", "chroma"):
        m = getattr(model, comp)
        with torch.no_grad():
            o = m.gain.offsets()
            sec[f"gain.{comp}.q7"] = o.numpy().astype(np.int32)
            assert np.array_equal(sec[f"gain.{comp}.q7"], o.numpy())
            # float32 gains exactly as codec.Component computes them, rate point by rate point
            sec[f"gain.{comp}.f32"] = np.stack([m.gain(torch.tensor([r]))[1].reshape(-1).numpy()
                                                for r in range(len(RATE_LAMBDAS))]).astype(np.float32)
    if mean_calibration is not None:
        from .mean_fixed import mean_sections

        sec.update(mean_sections(model, mean_calibration))
    return sec


MODEL_README = """# Model `{name}` (jpegai_fast)

Exported by `python -m training.export` from `{ckpt}` ({steps} BOP steps). Research-use weights
(see ../../../../training/README.md and ../../../../../shared/datasets/README.md). Blob layout:
docs/model_format.md. Decode procedure (normative reference: training/reference_decoder.py):

1. z_hat per component from SOZ with the z CDFs in `model.bin` (`zcdf.*`, offset 31).
2. Integer HSD (`hsd.<comp>.conv{{1,2,3}}.{{weight,bias,shift}}`) -> s (Q7); t = s + `gain.<comp>.q7`[rate]
   (+ header displacement); index = clamp((t + 64) >> 7, 0, 63); index < SKIP (meta.consts[0]) -> 255.
3. Residuals from SORP/SORS with those indices.
4-5, fixed-point mean path (model.bin has `mean.*`; docs/model_format.md "Fixed-point mean path"): integer
   psi from z_hat, integer context model and chroma mean, y_hat = mu + r/g in int16 at `mean.y_frac`.
4-5, float mean path (otherwise):
4. `hyper_decoder_<comp>.onnx`(z_hat, latent_ref [1,0,Hl,Wl]) -> psi [1,4C,ceil(Hl/2),ceil(Wl/2)].
5. Luma: residual and coded mask zero-padded to even size, split into phases (0,0),(1,1),(0,1),(1,0);
   stage s: mu = `context_luma_stage<s>.onnx`(psi chunk s, prev = y_hat phases 0..s-1 concatenated on
   channels); y_hat_s = r_s / g + mu (float32, g = `gain.luma.f32`[rate]); merge, crop to Hl x Wl.
   Chroma: mu = psi chunks merged as phases, cropped; y_hat = r / g + mu.
6. `synthesis_<op>_{{luma,chroma}}.onnx`(..., image_ref [1,0,H,W]) -> Y, UV (0-255, clamp to [0,255]).

Graph I/O: all float32, batch 1, dynamic H/W; `*_ref` inputs have zero channels and only carry a size.
Encoder graphs take 0-255 planes (normalisation inside) and `hyper_encoder_*` returns z before the
clamp to [-31, 31] and rounding (half to even).
"""


def write_card(out_dir, name, ckpt, meta, model, macs, validation, rd):
    counts = parameter_counts(model)
    onnx_params = {}
    for p in sorted(out_dir.glob("*.onnx")):
        proto = onnx.load(str(p))
        onnx_params[p.stem] = int(sum(np.prod(i.dims) for i in proto.graph.initializer if i.data_type == 1))
    files = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    card = {
        "name": name, "format": {"onnx_opset": OPSET, "onnx_dtype": "float32", "blob_version": BLOB_VERSION},
        "exported_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "checkpoint": str(ckpt), "checkpoint_sha256": meta.get("checkpoint_sha256"), "training": {
            "steps": meta.get("steps"), "wall_s": meta.get("wall_s"), "device": "cpu, 1-2 threads (torch)",
            "data": "../shared/datasets/train (1411 crops; research-use licences), random 128x128 crops, batch 8",
            "rate_lambdas": list(RATE_LAMBDAS)},
        "parameters_torch": counts, "parameters_onnx_float32": onnx_params,
        "kmac_per_px_768x512": macs, "validation_max_abs_diff": validation,
        "files_bytes": files, "kodak_rd": rd,
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
    md = [f"# Model card: `{name}`", "",
          f"- Checkpoint `{ckpt}`, steps {meta.get('steps')}, training wall time {meta.get('wall_s')} s, "
          "CPU (torch, 1–2 threads; no GPU so far); the training log (`training/logs/`) shows it still improving.",
          f"- Training data: {card['training']['data']}. The sources of these photos state research-use licences "
          "(Urban100, Sun-Hays80, ImageNet samples, PolyU: non-commercial research; wallpapers CC0/CC-BY/CC-BY-SA/"
          "Unsplash/GPL-2+; provenance per crop in the pool's MANIFEST.tsv), so **these weights are a research "
          "artefact**: use them for research and evaluation. The code is Apache-2.0.",
          f"- λ per rate point: {', '.join(f'{x:g}' for x in RATE_LAMBDAS)}.",
          ("- Format: ONNX opset 17 float32 (weights stored as exact float16, dynamic H/W) + model.bin "
         "(docs/model_format.md)."),
          ("- Mean path (hyper-mean decoders, luma context model, ŷ = μ + r/g): float ONNX graphs."
           if (out_dir / "hyper_decoder_luma.onnx").exists() else
           "- Mean path (hyper-mean decoders, luma context model, ŷ = μ + r/g): **fixed-point** in model.bin "
           "(int8 weights per output channel, int16 activations, int32 accumulators, power-of-two scales "
           "calibrated on 16 training crops at every rate point; post-training, no fine-tuning), decoded "
           "bit-exactly by the C++ core; its cost against the float path: the vs_baseline rows of "
           "training/results/rd_eval.md."),
          "",
          "## Parameters", "", "| part | parameters |", "|---|---:|"]
    md += [f"| {k} | {v:,} |" for k, v in counts.items()]
    md += ["", "## kMAC per luma pixel (Conv/ConvTranspose MACs measured on the graphs at 768x512; HSD analytic)",
           "", "| part | kMAC/px |", "|---|---:|"]
    md += [f"| {k} | {v:.3f} |" for k, v in macs.items()]
    dec_bop = sum(v for k, v in macs.items() if not k.startswith(("analysis", "hyper_encoder", "synthesis_sop")))
    dec_sop = sum(v for k, v in macs.items() if not k.startswith(("analysis", "hyper_encoder", "synthesis_bop")))
    md += [f"| **decoder total, BOP** | {dec_bop:.3f} |", f"| **decoder total, SOP** | {dec_sop:.3f} |"]
    md += ["", "## Kodak RD", ""]
    if rd:
        md += [f"From `{rd.get('source')}` ({rd.get('images')} images; real rANS bytes through jpegai_fast's "
               "encoder and decoder; RGB-domain metrics as ../shared/anchors/vvc/README.md).", "",
               "| rate point | bpp | PSNR-YUV (dB) | MS-SSIM-Y | MS-SSIM-Y (dB) |", "|---:|---:|---:|---:|---:|"]
        md += [f"| {p['rate']} | {p['bpp']:.4f} | {p['psnr_yuv']:.3f} | {p['msssim_y']:.4f} | {p['msssim_db']:.2f} |"
               for p in rd["points"]]
        bd = rd.get("bd_rate") or {}
        if bd:
            md += ["", "BD-rate (per image, then mean; negative = fewer bits at equal quality):", "",
                   "| comparison | BD-rate % |", "|---|---:|"] + [f"| {k} | {v:+.2f} |" for k, v in bd.items()]
    else:
        md += ["Not measured at export time (run `python -m training.rd_eval` and re-export with `--rd`)."]
    md += ["", "## Files", "", "| file | bytes |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in files.items()]
    md += [f"| **total** | {sum(files.values()):,} |"]
    (out_dir / "MODEL_CARD.md").write_text("\n".join(md) + "\n")
    return card


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="training/checkpoints/vr_bop.pt")
    ap.add_argument("--name", default="vr_bop")
    ap.add_argument("--out", default=None, help="default src/jpegai_fast/models/<name>")
    ap.add_argument("--rd", default=None, help="rd_eval JSON whose model points go into the card")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label", default=None, help="checkpoint name recorded in the card (default: the path)")
    ap.add_argument("--float-mean", action="store_true",
                    help="export the float mean path (hyper-mean decoder and context model as ONNX graphs) instead "
                         "of the fixed-point one (a baseline to measure the fixed-point cost against)")
    ap.add_argument("--data", default="../shared/datasets/train", help="training pool: fixed-point calibration")
    ap.add_argument("--calib-images", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = pathlib.Path(args.out or ROOT / "src" / "jpegai_fast" / "models" / args.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    ck = torch.load(args.checkpoint, map_location="cpu")
    model = Codec()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()})
    model.eval()
    meta = dict(ck.get("meta", {}))
    import hashlib
    meta["checkpoint_sha256"] = hashlib.sha256(pathlib.Path(args.checkpoint).read_bytes()).hexdigest()
    label = args.label or args.checkpoint

    validation = {}
    calib = None
    if not args.float_mean:
        from .mean_fixed import calibrate

        calib = calibrate(model, calibration_images(args.data, args.calib_images), range(len(RATE_LAMBDAS)))
        for name in MEAN_GRAPHS:  # the integer mean path replaces these graphs
            (out_dir / f"{name}.onnx").unlink(missing_ok=True)
    for name, (wrapper, make, ref_fn) in graphs(model).items():
        if calib is not None and name in MEAN_GRAPHS:
            continue
        validation[name] = export_onnx(name, wrapper.eval(), make, ref_fn, out_dir)
        print(f"{name:28s} {validation_summary(validation[name])}", flush=True)
    (out_dir / "model.bin").write_bytes(write_blob(blob_sections(model, calib)))
    (out_dir / "export_validation.json").write_text(json.dumps(validation, indent=1) + "\n")
    macs = measure_macs(out_dir, model)
    rd = None
    if args.rd:
        full = json.loads(pathlib.Path(args.rd).read_text())
        rd = {"source": args.rd, "images": full["images"], "points": full["ours"]["mean_points"],
              "bd_rate": {k: (v["mean_percent"] if isinstance(v, dict) else v)
                          for k, v in full.get("bd_rate", {}).items()}}
    (out_dir / "README.md").write_text(MODEL_README.format(name=args.name, ckpt=label,
                                                           steps=meta.get("steps", {}).get("bop")))
    for _ in range(2):  # second pass: the file table then includes the card files' own sizes
        write_card(out_dir, args.name, label, meta, model, macs, validation, rd)
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {out_dir}: {total / 2**20:.2f} MiB", flush=True)




# ----------------------------------------------------------------------------------------------
# Torch vs reference (numpy + ONNX Runtime) on real images
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def torch_codec_trace(model: Codec, rgb_chw, rate):
    """Codec.forward step by step (same calls, eval mode), keeping the integers. rgb_chw uint8 [3,H,W]."""
    from .codec import code_residual
    from .colour import psnr_yuv, rgb_to_yuv420, yuv_mse
    from .context_model import merge_phases, split_phases
    from .sigma_levels import sigma_index

    y_img, uv_img = rgb_to_yuv420(rgb_chw[None].float())
    yn, uvn = normalise(y_img), normalise(uv_img)
    lat = {"luma": model.luma_analysis(yn), "chroma": model.chroma_analysis(yn, uvn)}
    rt = torch.tensor([rate])
    tr = {"z_hat": {}, "idx": {}, "residual": {}, "y_hat": {}}
    for comp in ("luma", "chroma"):
        m, y = getattr(model, comp), lat[comp]
        hw = y.shape[-2:]
        s, psi, gain, _ = m(y, rt)
        z_hat = torch.round(m.hyper_encoder(y).float().clamp(-Z_BOUND, Z_BOUND))
        idx = sigma_index(s)
        tr.setdefault("s_qat", {})[comp] = m.hyper_scale(z_hat, hw)[0].numpy()  # QAT forward, float64
        tr["z_hat"][comp] = z_hat[0].numpy().astype(np.int16)
        tr["idx"][comp] = np.where(idx[0].numpy() < SKIP_INDEX_THRESHOLD, 255, idx[0].numpy()).astype(np.uint8)
        if comp == "luma":
            h, w = hw
            pad = (0, w % 2, 0, h % 2)
            ys, ss, psis = split_phases(F.pad(y, pad)), split_phases(F.pad(s, pad)), psi.chunk(4, dim=1)
            decoded, res = [], []
            for stage in range(4):
                mu = model.context_model.stage_mean(stage, psis[stage], decoded)
                y_hat, _ = code_residual(ys[stage], mu, ss[stage], gain, False)
                coded = (sigma_index(ss[stage]) >= SKIP_INDEX_THRESHOLD).float()
                res.append(torch.round((ys[stage].float() - mu.float()) * gain) * coded)
                decoded.append(y_hat)
            y_hat = merge_phases(decoded)[..., :h, :w]
            r = merge_phases(res)[..., :h, :w]
        else:
            from .blocks import crop
            from .context_model import chroma_mean
            mu = crop(chroma_mean(psi), *hw)
            y_hat, _ = code_residual(y, mu, s, gain, False)
            r = torch.round((y.float() - mu.float()) * gain) * (sigma_index(s) >= SKIP_INDEX_THRESHOLD).float()
        tr["residual"][comp] = r[0].numpy().astype(np.int16)
        tr["y_hat"][comp] = y_hat[0].numpy()
    y_rec, uv_rec, bits = model(y_img, uv_img, rt, "bop")
    mse3 = yuv_mse(y_rec.clamp(0, 255), uv_rec.clamp(0, 255), y_img, uv_img)
    tr["psnr_yuv420"] = float(psnr_yuv(mse3)[0])
    tr["est_bits"] = float(bits[0])
    tr["Y"], tr["UV"] = y_rec[0, 0].numpy(), uv_rec[0].numpy()
    tr["orig_y"], tr["orig_uv"] = y_img[0, 0].numpy(), uv_img[0].numpy()
    return tr


def _psnr_yuv420(Y, UV, y, uv):
    def p(a, b):
        return 10 * np.log10(255.0**2 / np.mean((np.clip(a, 0, 255).astype(np.float64) - b) ** 2))
    return (6 * p(Y, y) + p(UV[0], uv[0]) + p(UV[1], uv[1])) / 8


def compare(model: Codec, model_dir, kodak, names, rates):
    from PIL import Image

    from . import reference_decoder as rd

    ref = rd.Model(model_dir)
    rows = []
    for name in names:
        rgb = np.array(Image.open(pathlib.Path(kodak) / f"{name}.png").convert("RGB"))
        for rate in rates:
            tr = torch_codec_trace(model, torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), rate)
            hw = rgb.shape[:2]
            # (a) reference decoder on torch's integers
            dec = rd.decode_latents(ref, tr["z_hat"], tr["residual"], rate, hw)
            row = {"image": name, "rate": rate, "torch_psnr_yuv420": tr["psnr_yuv420"],
                   "torch_est_bpp": tr["est_bits"] / hw[0] / hw[1]}
            row["a_hsd_numpy_equals_qat"] = all(
                np.array_equal(dec["s"][c].astype(np.float64), tr["s_qat"][c]) for c in rd.COMPONENTS)
            row["a_idx_equal"] = all(np.array_equal(dec["idx"][c], tr["idx"][c]) for c in rd.COMPONENTS)
            row["a_yhat_max_abs_diff"] = max(float(np.abs(dec["y_hat"][c] - tr["y_hat"][c]).max())
                                             for c in rd.COMPONENTS)
            row["a_ref_psnr_yuv420"] = _psnr_yuv420(dec["Y"], dec["UV"], tr["orig_y"], tr["orig_uv"])
            # (b) full reference encoder -> rANS bitstream -> reference decoder
            data, enc = rd.encode_bitstream(ref, rgb, rate)
            back = rd.decode_bitstream(ref, data)
            row["b_z_hat_mismatch"] = int(sum((enc["z_hat"][c] != tr["z_hat"][c]).sum() for c in rd.COMPONENTS))
            row["b_idx_mismatch"] = int(sum((enc["idx"][c] != tr["idx"][c]).sum() for c in rd.COMPONENTS))
            row["b_residual_mismatch"] = int(sum((enc["residual"][c] != tr["residual"][c]).sum()
                                                 for c in rd.COMPONENTS))
            row["b_residual_elements"] = int(sum(tr["residual"][c].size for c in rd.COMPONENTS))
            row["b_roundtrip_integers_exact"] = all(
                np.array_equal(back["z_hat"][c], enc["z_hat"][c])
                and np.array_equal(back["residual"][c], enc["residual"][c])
                for c in rd.COMPONENTS)
            row["b_bytes"] = len(data)
            row["b_bpp"] = 8 * len(data) / hw[0] / hw[1]
            row["b_ref_psnr_yuv420"] = _psnr_yuv420(back["Y"], back["UV"], tr["orig_y"], tr["orig_uv"])
            row["a_psnr_diff"] = row["a_ref_psnr_yuv420"] - row["torch_psnr_yuv420"]
            row["b_psnr_diff"] = row["b_ref_psnr_yuv420"] - row["torch_psnr_yuv420"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def compare_main():
    ap = argparse.ArgumentParser(description="torch vs numpy+ONNX reference on Kodak images")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--kodak", default="../shared/datasets/kodak")
    ap.add_argument("--images", default="kodim23,kodim04")
    ap.add_argument("--rates", default="1,4")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ck = torch.load(args.checkpoint, map_location="cpu")
    model = Codec()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()})
    model.eval()
    rows = compare(model, args.model_dir, args.kodak, args.images.split(","), [int(r) for r in args.rates.split(",")])
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        sys.argv.pop(1)
        compare_main()
    else:
        main()
