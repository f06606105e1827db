"""Reference codec in plain numpy + ONNX Runtime (no torch): the oracle the C++ decoder is tested against.

    python -m training.reference_decoder --model src/jpegai_fast/models/vr_bop --image kodim23.png --rate 2

Parts (each usable on its own):

* model blob (``model.bin``, layout in docs/model_format.md): :func:`write_blob`, :func:`read_blob`
  (checks magic, version, section table and CRC-32);
* integer hyper-scale decoder (:func:`hsd_forward`, the definition of training/hyper_scale_int.py
  ``int_forward``), Q7 gain offset, sigma index, skip mask (:func:`scale_indices`);
* :class:`Model`: the exported directory (blob + ONNX graphs, sessions opened lazily);
* :func:`decode_latents`: integers (z_hat, residual symbols per component, rate point) -> image;
* :func:`encode_latents`: RGB -> the same integers through the ONNX encoder graphs (encoder side);
* :func:`encode_bitstream` / :func:`decode_bitstream`: a complete codestream through the real rANS
  coder and container of ``jpegai_fast`` (imported only there).

Latent grids per component from ``meta.grid`` (vm33: chroma on H/32) and the stream's model id from
``meta.model_id``, so the oracle covers every shipped model (tests/test_encoder.py).

Models with the fixed-point mean path (model.bin sections mean.*): :class:`MeanPathInt` computes psi,
the context model, mu and y_hat in integers (the definition csrc/mean_path.cpp is tested against).
Float-mean models: the float parts follow training/codec.py operation for operation in float32: luma
y_hat = r / g + mu per context-model stage (phases (0,0),(1,1),(0,1),(1,0)), chroma y_hat = r / g + mu with mu = psi
up-shuffled; g is the float32 gain stored in the blob (what torch computes from the Q7 offset).
"""
from __future__ import annotations

import json
import pathlib
import struct
import zlib

import numpy as np

# ----------------------------------------------------------------------------------------------
# Blob format (docs/model_format.md)
# ----------------------------------------------------------------------------------------------
MAGIC = b"JAIFMDL\0"
BLOB_VERSION = 1
NAME_BYTES = 48
MAX_DIMS = 4
ALIGN = 16
# header: magic(8) version u32, section count u32, total file size u64
_HEADER = struct.Struct("<8sIIQ")
# entry: name(48) dtype u32 ndim u32 shape 4*u32 offset u64 nbytes u64
_ENTRY = struct.Struct(f"<{NAME_BYTES}sII{MAX_DIMS}IQQ")
DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32}
_DTYPE_CODE = {np.dtype(v): k for k, v in DTYPES.items()}


class BlobError(ValueError):
    """The model blob is malformed (magic, version, table, size or CRC)."""


def read_blob(data: bytes) -> dict[str, np.ndarray]:
    """Parse and verify a blob -> {name: array (read-only copy)}. Raises BlobError."""
    data = bytes(data)
    if len(data) < _HEADER.size + 4:
        raise BlobError("blob too short")
    magic, version, n, total = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise BlobError(f"bad magic {magic!r}")
    if version != BLOB_VERSION:
        raise BlobError(f"unsupported blob version {version}")
    if total != len(data):
        raise BlobError(f"size field {total} != blob length {len(data)}")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise BlobError("CRC-32 mismatch")
    if _HEADER.size + n * _ENTRY.size > len(data) - 4:
        raise BlobError("section table runs past the data")
    out = {}
    for i in range(n):
        name, code, ndim, *rest = _ENTRY.unpack_from(data, _HEADER.size + i * _ENTRY.size)
        shape, off, nbytes = rest[:MAX_DIMS], rest[MAX_DIMS], rest[MAX_DIMS + 1]
        name = name.rstrip(b"\0").decode()
        if code not in DTYPES or ndim > MAX_DIMS:
            raise BlobError(f"{name}: bad dtype code {code} or ndim {ndim}")
        dt = np.dtype(DTYPES[code]).newbyteorder("<")
        shape = tuple(shape[:ndim])
        if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nbytes or off % ALIGN or off + nbytes > len(data) - 4:
            raise BlobError(f"{name}: inconsistent size/offset")
        if name in out:
            raise BlobError(f"duplicate section {name}")
        arr = np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize, offset=off).reshape(shape)
        out[name] = arr.astype(dt.newbyteorder("="))
        out[name].setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------------
# Integer hyper-scale decoder, gains, sigma indices (all exact integer arithmetic)
# ----------------------------------------------------------------------------------------------
ACT_MIN, ACT_MAX = -128, 127
NUM_LEVELS = 64
S_MAX = (NUM_LEVELS - 1) * 128 - 1
SKIP_INDEX = 255


def _int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, shift: np.ndarray) -> np.ndarray:
    c, h, wd = x.shape
    k = w.shape[-1]
    r = k // 2
    xp = np.pad(np.clip(x, ACT_MIN, ACT_MAX).astype(np.int64), ((0, 0), (r, r), (r, r)))
    cols = np.stack([xp[:, ky:ky + h, kx:kx + wd] for ky in range(k) for kx in range(k)], axis=1)
    acc = w.astype(np.int64).reshape(w.shape[0], -1) @ cols.reshape(c * k * k, h * wd)
    acc = acc.reshape(-1, h, wd) + b.astype(np.int64)[:, None, None]
    if acc.size and np.abs(acc).max() >= 2**31:
        raise OverflowError("int32 accumulator overflow")
    return acc >> shift.astype(np.int64)[:, None, None]


def hsd_forward(z: np.ndarray, layers, latent_hw) -> np.ndarray:
    """z [C,hz,wz] integers, layers [(w int8 [O,I,k,k], b int32 [O], shift int8 [O])] x 3 -> s int32 [C,Hl,Wl] (Q7)."""
    x = np.asarray(z).astype(np.int64)
    for i, (w, b, s) in enumerate(layers):
        x = _int_conv(x, w, b, s)
        if i < 2:
            x = np.maximum(x, 0)
    o, hz, wz = x.shape
    c = o // 16
    s = x.reshape(c, 4, 4, hz, wz).transpose(0, 3, 1, 4, 2).reshape(c, 4 * hz, 4 * wz)
    s = s[:, :latent_hw[0], :latent_hw[1]]
    return np.minimum(np.abs(s), S_MAX).astype(np.int32)


def scale_indices(s: np.ndarray, offset: np.ndarray, skip_threshold: int) -> np.ndarray:
    """s int32 [C,H,W] + per-channel Q7 offset -> uint8 scale index (SKIP_INDEX where index < threshold)."""
    t = s.astype(np.int64) + np.asarray(offset, dtype=np.int64)[:, None, None]
    idx = np.clip((t + 64) >> 7, 0, NUM_LEVELS - 1)
    return np.where(idx < skip_threshold, SKIP_INDEX, idx).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Phases, colour
# ----------------------------------------------------------------------------------------------
STAGE_PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))


def split_phases(x: np.ndarray) -> list[np.ndarray]:
    """[C,2h,2w] -> 4 phase planes [C,h,w] in stage order."""
    return [x[:, dy::2, dx::2] for dy, dx in STAGE_PHASES]


def merge_phases(parts) -> np.ndarray:
    c, h, w = parts[0].shape
    out = np.empty((c, 2 * h, 2 * w), dtype=parts[0].dtype)
    for (dy, dx), p in zip(STAGE_PHASES, parts):
        out[:, dy::2, dx::2] = p
    return out


KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
CB_DIV, CR_DIV = 2.0 * (1.0 - KB), 2.0 * (1.0 - KR)


def rgb_to_yuv420(rgb: np.ndarray):
    """uint8 [H,W,3] (H, W even) -> Y [H,W], UV [2,H/2,W/2] float32 0-255, as training/colour.py."""
    x = rgb.astype(np.float32).transpose(2, 0, 1)
    r, g, b = x[0], x[1], x[2]
    y = KR * r + KG * g + KB * b
    c = np.stack([(b - y) / CB_DIV, (r - y) / CR_DIV]) + 128.0
    w = c.shape[-1]
    p = np.pad(c, ((0, 0), (0, 0), (1, 1)), mode="edge")
    h = 0.25 * p[..., 0:w:2] + 0.5 * p[..., 1:w + 1:2] + 0.25 * p[..., 2:w + 2:2]
    uv = 0.5 * (h[:, 0::2, :] + h[:, 1::2, :])
    return y.astype(np.float32), uv.astype(np.float32)


def yuv420_to_rgb(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Y [H,W], UV [2,ceil(H/2),ceil(W/2)] 0-255 full range -> uint8 RGB [H,W,3].

    Chroma up-sampling with type-0 siting as the VVC anchor's inverse (../shared/anchors/vvc/README.md):
    rows: 2i <- ¼C[i−1] + ¾C[i], 2i+1 <- ¾C[i] + ¼C[i+1] (edges replicated); columns: 2j <- C[j],
    2j+1 <- ½(C[j] + C[j+1]) (last replicated). Then inverse BT.709 full range, round half to even, clip."""
    hh, ww = y.shape
    c = uv.astype(np.float64) - 128.0
    p = np.pad(c, ((0, 0), (1, 1), (0, 0)), mode="edge")
    rows = np.empty((2, 2 * c.shape[1], c.shape[2]))
    rows[:, 0::2] = 0.25 * p[:, :-2] + 0.75 * p[:, 1:-1]
    rows[:, 1::2] = 0.75 * p[:, 1:-1] + 0.25 * p[:, 2:]
    q = np.pad(rows, ((0, 0), (0, 0), (0, 1)), mode="edge")
    full = np.empty((2, rows.shape[1], 2 * rows.shape[2]))
    full[:, :, 0::2] = q[:, :, :-1]
    full[:, :, 1::2] = 0.5 * (q[:, :, :-1] + q[:, :, 1:])
    cb, cr = full[0, :hh, :ww], full[1, :hh, :ww]
    yy = y.astype(np.float64)
    r = yy + CR_DIV * cr
    b = yy + CB_DIV * cb
    g = (yy - KR * r - KB * b) / KG
    return np.clip(np.round(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Exported model
# ----------------------------------------------------------------------------------------------
COMPONENTS = ("luma", "chroma")


class Model:
    """An exported model directory: model.bin + ONNX graphs (sessions opened on first use)."""

    def __init__(self, path, threads: int = 1):
        self.path = pathlib.Path(path)
        self.blob = read_blob((self.path / "model.bin").read_bytes())
        b = self.blob
        self.channels = {"luma": int(b["meta.channels"][0]), "chroma": int(b["meta.channels"][1])}
        consts = b["meta.consts"]
        self.skip_threshold, self.z_offset, self.z_symbols, self.num_rates = (int(v) for v in consts[:4])
        self.threads = threads
        self._sessions = {}
        # models exported with the fixed-point mean path carry mean.* sections; older ones use the graphs
        self.mean = MeanPathInt(b) if "mean.y_frac" in b else None
        # luma samples per latent sample of each component (models before meta.grid: 16 for both)
        grid = b["meta.grid"] if "meta.grid" in b else (16, 16)
        self.grid = {"luma": int(grid[0]), "chroma": int(grid[1])}
        self.model_id = int(b["meta.model_id"][0]) if "meta.model_id" in b else MODEL_ID
        # encoder only: the card's first rate point of the high-rate analysis graphs (analysis_*_hi.onnx)
        card = self.path / "model_card.json"
        self.analysis_hi_from = json.loads(card.read_text()).get("analysis_hi_from") if card.is_file() else None

    def latent_hw(self, comp, image_hw):
        return latent_size(image_hw, self.grid[comp])

    def analysis_graph(self, comp, rate: int) -> str:
        hi = self.analysis_hi_from is not None and rate >= self.analysis_hi_from
        return f"analysis_{comp}_hi" if hi else f"analysis_{comp}"

    def hsd_layers(self, comp):
        b = self.blob
        return [(b[f"hsd.{comp}.conv{i}.weight"], b[f"hsd.{comp}.conv{i}.bias"], b[f"hsd.{comp}.conv{i}.shift"])
                for i in (1, 2, 3)]

    def z_cdf(self, comp) -> np.ndarray:
        return self.blob[f"zcdf.{comp}"]

    def offset(self, comp, rate: int, displacement: int = 0) -> np.ndarray:
        return self.blob[f"gain.{comp}.q7"][rate].astype(np.int64) + int(displacement)

    def gain(self, comp, rate: int, displacement: int = 0) -> np.ndarray:
        """float32 [C] gain. Displacement 0: the stored float32 gains (equal to torch's); else exp in float64."""
        if displacement == 0:
            return self.blob[f"gain.{comp}.f32"][rate]
        log_step = float(np.log(60.0 / 0.11) / 63)
        return np.exp(self.offset(comp, rate, displacement) * (log_step / 128)).astype(np.float32)

    def session(self, name):
        if name not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            self._sessions[name] = ort.InferenceSession(str(self.path / f"{name}.onnx"), opts,
                                                        providers=["CPUExecutionProvider"])
        return self._sessions[name]

    def run(self, name, **inputs):
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return self.session(name).run(None, feeds)[0]


def _ref(h, w):
    return np.zeros((1, 0, h, w), np.float32)


def latent_size(image_hw, grid: int = 16):
    """Latent grid of a component whose samples each cover ``grid`` x ``grid`` luma samples."""
    return -(-image_hw[0] // grid), -(-image_hw[1] // grid)


def _hyper(model: Model, comp, z_hat, latent_hw, rate, displacement):
    """-> (scale index uint8 [C,Hl,Wl], s int32, psi [4C,h2,w2]: integer (fixed-point model) or float32)."""
    s = hsd_forward(z_hat, model.hsd_layers(comp), latent_hw)
    idx = scale_indices(s, model.offset(comp, rate, displacement), model.skip_threshold)
    if model.mean is not None:
        return idx, s, model.mean.psi(comp, z_hat, latent_hw)
    psi = model.run(f"hyper_decoder_{comp}", z_hat=z_hat[None].astype(np.float32), latent_ref=_ref(*latent_hw))[0]
    return idx, s, psi


def _pad_even(x, value=0):
    h, w = x.shape[-2:]
    return np.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), constant_values=value)


def _luma_stages(model, psi, idx, gain, y=None, residual=None):
    """The 4-stage luma loop. Decoder: residual given. Encoder: y given, residual made.
    Returns (y_hat [C,Hl,Wl] float32, residual int16 [C,Hl,Wl])."""
    hl, wl = idx.shape[-2:]
    coded = _pad_even(idx != SKIP_INDEX, False)  # padded positions: skipped (s = 0 there in training)
    cph = split_phases(coded)
    psis = np.split(psi, 4, axis=0)
    g = gain.astype(np.float32)[:, None, None]
    src = split_phases(_pad_even(y if y is not None else residual.astype(np.float32)))
    decoded, residuals = [], []
    for stage in range(4):
        if stage == 0:
            mu = model.run("context_luma_stage0", psi_chunk=psis[0][None])[0]
        else:
            mu = model.run(f"context_luma_stage{stage}", psi_chunk=psis[stage][None],
                           prev=np.concatenate(decoded, axis=0)[None])[0]
        if y is not None:
            r = np.round((src[stage] - mu) * g) * cph[stage]
        else:
            r = src[stage] * cph[stage]
        decoded.append((r / g + mu).astype(np.float32))
        residuals.append(r)
    y_hat = merge_phases(decoded)[:, :hl, :wl]
    res = merge_phases(residuals)[:, :hl, :wl]
    return y_hat, res


def _chroma(psi, idx, gain, y=None, residual=None):
    hl, wl = idx.shape[-2:]
    mu = merge_phases(np.split(psi, 4, axis=0))[:, :hl, :wl]
    g = gain.astype(np.float32)[:, None, None]
    coded = idx != SKIP_INDEX
    r = np.round((y - mu) * g) * coded if y is not None else residual.astype(np.float32) * coded
    return (r / g + mu).astype(np.float32), r


def synthesise(model: Model, y_hat_l, y_hat_c, image_hw, op="bop"):
    """-> Y [H,W], UV [2,ceil(H/2),ceil(W/2)] float32 0-255 (unclamped)."""
    ref = _ref(*image_hw)
    yy = model.run(f"synthesis_{op}_luma", y_hat=y_hat_l[None], image_ref=ref)[0, 0]
    uv = model.run(f"synthesis_{op}_chroma", y_hat_luma=y_hat_l[None], y_hat_chroma=y_hat_c[None], image_ref=ref)[0]
    return yy, uv


def _fixed_mean(model: Model, comp, psi, idx, rate, displacement, y=None, residual=None):
    """The integer mean path: -> (y_hat float32 = y_hat_q * 2^-y_frac, residual int16, y_hat_q int16)."""
    mp = model.mean
    yq, r = mp.reconstruct(comp, psi, idx, model.offset(comp, rate, displacement),
                           gain=model.gain(comp, rate, displacement), y=y, residual=residual)
    return (yq.astype(np.float32) * np.float32(2.0 ** -mp.y_frac[comp])), r, yq


def decode_latents(model: Model, z_hat: dict, residual: dict, rate: int, image_hw, op="bop",
                   displacement=(0, 0)) -> dict:
    """z_hat {comp: int16 [C,hz,wz]}, residual {comp: int16 [C,Hl,Wl]} -> dict with idx, s, y_hat,
    Y/UV (float 0-255, unclamped) and rgb (uint8)."""
    out = {"idx": {}, "s": {}, "y_hat": {}, "y_hat_q": {}}
    for k, comp in enumerate(COMPONENTS):
        hw = model.latent_hw(comp, image_hw)
        idx, s, psi = _hyper(model, comp, z_hat[comp], hw, rate, displacement[k])
        if model.mean is not None:
            y_hat, _, out["y_hat_q"][comp] = _fixed_mean(model, comp, psi, idx, rate, displacement[k],
                                                         residual=residual[comp])
            out["idx"][comp], out["s"][comp], out["y_hat"][comp] = idx, s, y_hat
            continue
        gain = model.gain(comp, rate, displacement[k])
        if comp == "luma":
            y_hat, _ = _luma_stages(model, psi, idx, gain, residual=residual[comp])
        else:
            y_hat, _ = _chroma(psi, idx, gain, residual=residual[comp])
        out["idx"][comp], out["s"][comp], out["y_hat"][comp] = idx, s, y_hat
    out["Y"], out["UV"] = synthesise(model, out["y_hat"]["luma"], out["y_hat"]["chroma"], image_hw, op)
    out["rgb"] = yuv420_to_rgb(np.clip(out["Y"], 0, 255), np.clip(out["UV"], 0, 255))
    return out


def encode_latents(model: Model, rgb: np.ndarray, rate: int, displacement=(0, 0), planes=None) -> dict:
    """uint8 RGB [H,W,3] -> {z_hat, residual, idx, y_hat} per component (ONNX encoder graphs).  planes: the
    (Y, UV) float32 planes the analysis sees instead of the picture's own (an encoder's choice, such as the
    runtime's pre-emphasis, jpegai_fast.encoder.pre_emphasise); the coding from the latent on is unchanged."""
    y, uv = rgb_to_yuv420(rgb) if planes is None else planes
    lat = {"luma": model.run(model.analysis_graph("luma", rate), image_y=y[None, None])[0],
           "chroma": model.run(model.analysis_graph("chroma", rate), image_y=y[None, None], image_uv=uv[None])[0]}
    out = {"z_hat": {}, "residual": {}, "idx": {}, "y_hat": {}, "z": {}}
    for k, comp in enumerate(COMPONENTS):
        z = model.run(f"hyper_encoder_{comp}", y=lat[comp][None])[0]
        z_hat = np.round(np.clip(z, -model.z_offset, model.z_offset)).astype(np.int16)
        idx, _, psi = _hyper(model, comp, z_hat, model.latent_hw(comp, y.shape), rate, displacement[k])
        if model.mean is not None:
            y_hat, r, _ = _fixed_mean(model, comp, psi, idx, rate, displacement[k], y=lat[comp])
            out["z"][comp], out["z_hat"][comp], out["idx"][comp] = z, z_hat, idx
            out["residual"][comp], out["y_hat"][comp] = r.astype(np.int16), y_hat
            continue
        gain = model.gain(comp, rate, displacement[k])
        if comp == "luma":
            y_hat, r = _luma_stages(model, psi, idx, gain, y=lat[comp])
        else:
            y_hat, r = _chroma(psi, idx, gain, y=lat[comp])
        out["z"][comp], out["z_hat"][comp], out["idx"][comp] = z, z_hat, idx
        out["residual"][comp], out["y_hat"][comp] = r.astype(np.int16), y_hat
    return out


# ----------------------------------------------------------------------------------------------
# Fixed-point mean path (docs/model_format.md "Fixed-point mean path"): hyper-mean decoder, luma
# context model, chroma mean, y_hat = mu + r / g -- integers only, CHW, int64 arithmetic
# ----------------------------------------------------------------------------------------------
MEAN_KIND_CONV, MEAN_KIND_CONVT = 0, 1
MEAN_ACT_NONE, MEAN_ACT_RELU, MEAN_ACT_RELU6, MEAN_ACT_LEAKY = 0, 1, 2, 3
HYPER_MEAN_PSI, HYPER_MEAN_MU = 0, 1  # mean.topology[0]: the hyper-mean decoder makes psi, or mu on the latent grid
LOG2_PER_Q7_Q32 = 4842126    # round(2^32 * ln(60/0.11) / 63 / 128 / ln 2)
LN2_Q32 = 2977044472         # round(2^32 * ln 2)
ACC_LIMIT = 2**31


def _sat16(x):
    return np.clip(x, -32768, 32767)


def _round_shift(x, s):
    """(x + 2^(s-1)) >> s per element (s >= 0 broadcastable); s = 0 leaves x."""
    s = np.asarray(s, dtype=np.int64)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return (x + half) >> s


def requant(x, frm: int, to: int):
    x = np.asarray(x, dtype=np.int64)
    return _sat16(_round_shift(x, frm - to) if frm >= to else x << (to - frm))


def inverse_gain(t):
    """Q7 log offset t (int array) -> (m, n): 1/g = m * 2^(n - 30), m in [2^30, 2^31)."""
    a = -np.asarray(t, dtype=np.int64) * LOG2_PER_Q7_Q32
    n = a >> 32
    phi = (a - (n << 32)).astype(np.uint64)
    u = (phi * np.uint64(LN2_Q32)) >> np.uint64(34)
    one = np.uint64(1 << 30)
    acc = np.full_like(u, one)
    for k in range(12, 0, -1):
        acc = one + ((u * acc) >> np.uint64(30)) // np.uint64(k)
    return acc.astype(np.int64), n


def mean_layer(blob, prefix):
    meta = blob[f"{prefix}.meta"]
    return {"w": blob[f"{prefix}.weight"].astype(np.int64), "b": blob[f"{prefix}.bias"].astype(np.int64),
            "shift": blob[f"{prefix}.shift"].astype(np.int64), "kind": int(meta[0]), "k": int(meta[1]),
            "groups": int(meta[2]), "frac_in": int(meta[3]), "frac_out": int(meta[4]), "act": int(meta[5])}


def mean_layer_forward(layer, x, out_hw=None):
    """x int [Cin,H,W] -> int [Cout,H',W'] (conv: same size; transposed conv: 2x, cropped to out_hw)."""
    x = np.asarray(x, dtype=np.int64)
    w, g, k = layer["w"], layer["groups"], layer["k"]
    cin, h, wd = x.shape
    cout = w.shape[0]
    if layer["kind"] == MEAN_KIND_CONVT:
        oh, ow = out_hw
        full = np.zeros((cout, 2 * h + 2, 2 * wd + 2), np.int64)
        for ky in range(4):
            for kx in range(4):
                contrib = np.tensordot(w[:, :, ky, kx], x, axes=(1, 0))  # [cout, h, w]
                full[:, ky:ky + 2 * h:2, kx:kx + 2 * wd:2] += contrib
        acc = full[:, 1:1 + oh, 1:1 + ow]  # output Y = 2 iy - 1 + ky
    else:
        r = k // 2
        xp = np.pad(x, ((0, 0), (r, r), (r, r)))
        cig, cog = cin // g, cout // g
        acc = np.empty((cout, h, wd), np.int64)
        for gi in range(g):
            xs = xp[gi * cig:(gi + 1) * cig]
            cols = np.stack([xs[:, ky:ky + h, kx:kx + wd] for ky in range(k) for kx in range(k)], axis=1)
            wg = w[gi * cog:(gi + 1) * cog].reshape(cog, cig * k * k)
            acc[gi * cog:(gi + 1) * cog] = (wg @ cols.reshape(cig * k * k, h * wd)).reshape(cog, h, wd)
    acc = acc + layer["b"][:, None, None]
    if acc.size and np.abs(acc).max() >= ACC_LIMIT:
        raise OverflowError("int32 accumulator overflow")
    y = _sat16(_round_shift(acc, layer["shift"][:, None, None]))
    if layer["act"] == MEAN_ACT_RELU:
        y = np.maximum(y, 0)
    elif layer["act"] == MEAN_ACT_RELU6:
        y = np.clip(y, 0, min(6 << layer["frac_out"], 32767))
    elif layer["act"] == MEAN_ACT_LEAKY:  # slope 41/4096, rounded half up (arithmetic shift = floor)
        y = np.where(y < 0, (y * 41 + 2048) >> 12, y)
    return y


class MeanPathInt:
    """The integer mean path of a model blob (sections mean.*)."""

    def __init__(self, blob):
        self.y_frac = {"luma": int(blob["mean.y_frac"][0]), "chroma": int(blob["mean.y_frac"][1])}
        # topology (docs/model_format.md): hyper-mean output form (0 psi, 1 mu on the latent grid), residual
        # context model, layer counts; absent: the first fixed-point models' four named layers
        if "mean.topology" in blob:
            form, residual, n_luma, n_chroma = (int(v) for v in blob["mean.topology"])
            names = {"luma": [str(i) for i in range(n_luma)], "chroma": [str(i) for i in range(n_chroma)]}
        else:
            form, residual = HYPER_MEAN_PSI, 0
            names = {c: ["c1", "up", "c2", "c3"] for c in COMPONENTS}
        self.form, self.context_residual = form, bool(residual)
        self.hyper = {c: [mean_layer(blob, f"mean.hd_{c}.{n}") for n in names[c]] for c in COMPONENTS}
        self.fusion = [[mean_layer(blob, f"mean.fuse{s}.{n}") for n in "abc"] for s in range(4)]
        self.context = [[mean_layer(blob, f"mean.ctx{s}.{n}") for n in "ab"] for s in range(1, 4)]

    def psi_frac(self, comp):
        return self.hyper[comp][-1]["frac_out"]

    def psi(self, comp, z_hat, latent_hw):
        """z_hat int [C,hz,wz] -> psi int16-valued [4C, ceil(Hl/2), ceil(Wl/2)] at psi_frac(comp).

        The layer list runs in order; a transposed conv's output is cropped to the grid it feeds,
        ceil(final / 2^u) with u the transposed convs still to come (final: the half latent grid for the
        psi form, the latent grid for the mu form, whose mu is then split into the four phases, 0 where
        the even-padded latent lies outside the picture)."""
        hl, wl = latent_hw
        final = (-(-hl // 2), -(-wl // 2)) if self.form == HYPER_MEAN_PSI else (hl, wl)
        layers = self.hyper[comp]
        remaining = sum(layer["kind"] == MEAN_KIND_CONVT for layer in layers)
        x = np.asarray(z_hat, np.int64)
        for layer in layers:
            if layer["kind"] == MEAN_KIND_CONVT:
                remaining -= 1
                x = mean_layer_forward(layer, x, (-(-final[0] // 2 ** remaining), -(-final[1] // 2 ** remaining)))
            else:
                x = mean_layer_forward(layer, x)
        if self.form == HYPER_MEAN_PSI:
            return x
        return np.concatenate(split_phases(_pad_even(x)), axis=0)

    def _contrib(self, r, offsets, comp):
        m, n = inverse_gain(offsets)
        s = 30 - n - self.y_frac[comp]
        if (s < 1).any():
            raise ValueError("gain outside the decodable range")
        s = np.minimum(s, 62)
        return _round_shift(np.asarray(r, np.int64) * m[:, None, None], s[:, None, None])

    def _code(self, comp, mu, coded, offsets, g, y=None, r=None):
        """mu int [C,h,w] at y_frac; -> (y_hat int, r int) for one phase (or all of chroma)."""
        if y is not None:
            d = (y.astype(np.float32) - mu.astype(np.float32) * np.float32(2.0 ** -self.y_frac[comp])) * g
            r = np.clip(np.round(d), -32768, 32767).astype(np.int64)
        r = np.where(coded, r, 0).astype(np.int64)
        return np.where(coded, _sat16(mu + self._contrib(r, offsets, comp)), mu), r

    def reconstruct(self, comp, psi, idx, offsets, gain=None, y=None, residual=None):
        """-> (y_hat int16 [C,Hl,Wl] at y_frac[comp], residual int16).  Decoder: residual; encoder: y, gain."""
        hl, wl = idx.shape[-2:]
        offsets = np.asarray(offsets, np.int64)
        g = None if gain is None else np.asarray(gain, np.float32)[:, None, None]
        fy = self.y_frac[comp]
        if comp == "chroma":
            fpsi = self.psi_frac("chroma")
            mu = requant(merge_phases(np.split(psi, 4, axis=0))[:, :hl, :wl], fpsi, fy)
            y_hat, r = self._code(comp, mu, idx != SKIP_INDEX, offsets, g, y, residual)
            return y_hat.astype(np.int16), r.astype(np.int16)
        fpsi = self.psi_frac("luma")
        coded = split_phases(_pad_even(idx != SKIP_INDEX, False))
        src = split_phases(_pad_even(y if y is not None else residual))
        psis = np.split(psi, 4, axis=0)
        decoded, residuals = [], []
        for s in range(4):
            fuse = self.fusion[s]
            if s == 0:
                x = requant(psis[0], fpsi, fuse[0]["frac_in"])
            else:
                ctx = np.concatenate(decoded, axis=0)
                for layer in self.context[s - 1]:
                    ctx = mean_layer_forward(layer, ctx)
                f = fuse[0]["frac_in"]
                x = np.concatenate([requant(ctx, self.context[s - 1][1]["frac_out"], f), requant(psis[s], fpsi, f)])
            for layer in fuse:
                x = mean_layer_forward(layer, x)
            if self.context_residual:  # the stage predicts a correction to the phase's hyper-mean
                x = _sat16(x + requant(psis[s], fpsi, fy))
            yh, r = self._code(comp, x, coded[s], offsets, g,
                               src[s] if y is not None else None, None if y is not None else src[s])
            decoded.append(yh)
            residuals.append(r)
        y_hat = merge_phases(decoded)[:, :hl, :wl]
        return y_hat.astype(np.int16), merge_phases(residuals)[:, :hl, :wl].astype(np.int16)


# ----------------------------------------------------------------------------------------------
# Bitstream through jpegai_fast (real rANS bytes)
# ----------------------------------------------------------------------------------------------
MODEL_ID = 1


def _ue_bytes(v: int) -> bytes:
    """ue(v) MSB-first, zero bits to a byte boundary."""
    v += 1
    n = v.bit_length()
    bits = "0" * (n - 1) + format(v, "b")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _read_ue(data: bytes) -> tuple[int, int]:
    bits = "".join(format(b, "08b") for b in data[:8])
    zeros = len(bits) - len(bits.lstrip("0"))
    v = int(bits[zeros:2 * zeros + 1], 2) - 1
    return v, -(-(2 * zeros + 1) // 8)


def encode_bitstream(model: Model, rgb: np.ndarray, rate: int, op="bop", substreams: int = 1,
                     planes=None) -> tuple[bytes, dict]:
    from jpegai_fast import container, entropy

    enc = encode_latents(model, rgb, rate, planes=planes)
    zpay = []
    for comp in COMPONENTS:
        fm = entropy.FactorizedModel(model.z_cdf(comp), model.z_offset)
        zpay.append(fm.encode(np.ascontiguousarray(enc["z_hat"][comp]), substreams=substreams))
    segs = {"SOZ": _ue_bytes(len(zpay[0])) + zpay[0] + zpay[1]}
    for comp, seg in (("luma", "SORP"), ("chroma", "SORS")):
        segs[seg] = entropy.encode_residual(enc["residual"][comp], enc["idx"][comp], substreams=substreams)
    h = container.PictureHeader()
    h.height, h.width = rgb.shape[:2]
    h.bit_depth, h.chroma_format, h.colour_transform = 8, 1, 1
    h.model_id, h.operating_point, h.rate_point = model.model_id, {"sop": 0, "bop": 1}[op], rate
    h.gain_log_luma = h.gain_log_chroma = 0
    h.latent_channels_luma = h.coded_channels_luma = model.channels["luma"]
    h.latent_channels_chroma = h.coded_channels_chroma = model.channels["chroma"]
    h.tile_size = h.tile_overlap = 0
    return container.write(h, segs), enc


def decode_bitstream(model: Model, data: bytes) -> dict:
    from jpegai_fast import container, entropy

    h, segs = container.parse(data)
    op = {0: "sop", 1: "bop"}[h.operating_point]
    image_hw = (h.height, h.width)
    n0, pos = _read_ue(segs["SOZ"])
    zdata = segs["SOZ"][pos:]
    z_hat = {}
    for comp, part in (("luma", zdata[:n0]), ("chroma", zdata[n0:])):
        hl, wl = model.latent_hw(comp, image_hw)
        hz, wz = -(-hl // 4), -(-wl // 4)
        fm = entropy.FactorizedModel(model.z_cdf(comp), model.z_offset)
        z_hat[comp] = fm.decode(part, [hz, wz]).reshape(model.channels[comp], hz, wz)
    disp = (h.gain_log_luma, h.gain_log_chroma)
    residual = {}
    for k, (comp, seg) in enumerate((("luma", "SORP"), ("chroma", "SORS"))):
        s = hsd_forward(z_hat[comp], model.hsd_layers(comp), model.latent_hw(comp, image_hw))
        idx = scale_indices(s, model.offset(comp, h.rate_point, disp[k]), model.skip_threshold)
        residual[comp] = entropy.decode_residual(segs[seg], idx)
    out = decode_latents(model, z_hat, residual, h.rate_point, image_hw, op, disp)
    out["z_hat"], out["residual"] = z_hat, residual
    return out


def main():
    import argparse

    from PIL import Image

    ap = argparse.ArgumentParser(description="numpy + ONNX Runtime reference round trip of one image")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--rate", type=int, default=2)
    ap.add_argument("--op", default="bop")
    ap.add_argument("--out", default=None, help="write the decoded PNG here")
    args = ap.parse_args()
    model = Model(args.model)
    rgb = np.array(Image.open(args.image).convert("RGB"))
    data, _ = encode_bitstream(model, rgb, args.rate, args.op)
    dec = decode_bitstream(model, data)
    mse = ((dec["rgb"].astype(np.float64) - rgb) ** 2).mean()
    print(json.dumps({"bytes": len(data), "bpp": 8 * len(data) / rgb.shape[0] / rgb.shape[1],
                      "psnr_rgb": float(10 * np.log10(255**2 / mse))}))
    if args.out:
        Image.fromarray(dec["rgb"]).save(args.out)


if __name__ == "__main__":
    main()
