"""Write the fixed test vectors of the C++ ctest target `test_vectors` (tests/cpp/test_vectors.cpp).

The numpy oracle (training/reference_decoder.py; numpy + ONNX Runtime, no torch) and the shipped model
(src/jpegai_fast/models/vr_bop) make small, fixed inputs and the outputs the C++ core must reproduce bit
for bit, so that ctest checks the latent domain without Python:

* hsd     : z_hat of picture A -> Q7 log-sigma of the integer hyper-scale decoder (no gain), luma and chroma;
* mean    : picture B (other crop, even latent height, a header displacement): z_hat, scale index, Q7 offsets,
            residual -> psi (CHW, int16 at the last hyper-mean layer's frac) and y_hat (int16 at mean.y_frac);
* latent  : picture A's codestream (real rANS bytes through jpegai_fast's container and entropy coders)
            -> per component z, scale index, residual and y_hat (int16 at mean.y_frac), from the oracle's
            decode_bitstream (and equal to what its encoder coded);
* blob    : the model reader: every section (dtype, shape, offset, nbytes, CRC-32 of its data), the
            section count, meta.channels / meta.consts / mean.y_frac, the file's CRC-32, and corrupted
            copies of model.bin (bad magic, version, CRC, truncations, a section out of range, ...) stored
            as byte patches of the shipped file, each with the SHA-256 of the corrupted file; the first
            group must be refused by jpegai::ModelBlob (and are refused by read_blob here), the second
            parses but must be refused by jpegai::LatentModel.

Format (no numpy needed to read it): every array is a raw little-endian file `<key>.<dtype>` (C order);
`manifest.txt` lists them, one record per line, space-separated tokens, '#' starts a comment line:

    format 1
    model_path <path relative to the repository root>
    model_sha256 <hex>            the vectors are valid for this model.bin only (the C++ test skips otherwise)
    model_size <bytes>
    array <key> <dtype> <ndim> <dims...> <file>
    value <key> <integers...>
    section <name> <dtype code> <ndim> <shape...> <offset> <nbytes> <crc32 of the data>
    corrupt <name> <stage: blob|model> <length> <sha256> <keyword the error message must contain>
    patch <name> <offset> <hex bytes>   bytes of the corrupted file that differ from model.bin (or lie past it)

Usage:
    python tools/gen_ctest_vectors.py            # (re)write tests/cpp/vectors/
    python tools/gen_ctest_vectors.py --check    # regenerate into a temp dir, compare byte for byte

The vectors depend on the shipped model: after a new export, regenerate and commit them.  Picture A and B
come from the float ONNX encoder graphs (single-threaded ONNX Runtime); a different CPU or ONNX Runtime
version could in principle move a value across a rounding boundary there -- then only the encoder-made
inputs differ, and regenerating is right.  Everything after the inputs is exact integer arithmetic.
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import pathlib
import struct
import sys
import tempfile
import zlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # training/ (the oracle); jpegai_fast itself is the installed package (its _core is
# compiled there: a source tree's src/ has none unless the install is editable)

from training import reference_decoder as ref  # noqa: E402

MODEL_DIR = ROOT / "src" / "jpegai_fast" / "models" / "vr_bop"
OUT = ROOT / "tests" / "cpp" / "vectors"
FORMAT = 1
RATE = 3
# (rows, cols) slices of skimage.data.astronaut(): A 80 x 112 (latent 5 x 7, z 2 x 2: odd sizes),
# B 96 x 80 (latent 6 x 5, z 2 x 2) with a header displacement per component.
PICTURE_A = (slice(40, 120), slice(180, 292))
PICTURE_B = (slice(200, 296), slice(300, 380))
DISPLACEMENT_B = (40, -24)

_DTYPE_NAME = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8", np.dtype(np.int16): "int16",
               np.dtype(np.uint16): "uint16", np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32",
               np.dtype(np.float32): "float32"}


class Writer:
    def __init__(self, out: pathlib.Path):
        self.out = out
        self.lines: list[str] = []

    def comment(self, text: str):
        self.lines.append(f"# {text}")

    def line(self, *tokens):
        self.lines.append(" ".join(str(t) for t in tokens))

    def array(self, key: str, arr, dtype):
        a = np.ascontiguousarray(np.asarray(arr))
        dt = np.dtype(dtype)
        conv = a.astype(dt)
        if not np.array_equal(conv.astype(np.float64), a.astype(np.float64)):
            raise ValueError(f"{key}: values do not fit {dt}")
        name = f"{key}.{_DTYPE_NAME[dt]}"
        (self.out / name).write_bytes(conv.astype(dt.newbyteorder("<")).tobytes())
        self.line("array", key, _DTYPE_NAME[dt], conv.ndim, *conv.shape, name)

    def value(self, key: str, *values):
        self.line("value", key, *(int(v) for v in values))

    def finish(self):
        (self.out / "manifest.txt").write_text("\n".join(self.lines) + "\n")


def pictures():
    from skimage import data

    img = data.astronaut()
    return img[PICTURE_A], img[PICTURE_B]


# ----------------------------------------------------------------------------------------------
# model reader: sections and corrupted copies
# ----------------------------------------------------------------------------------------------
HEADER = struct.Struct("<8sIIQ")
ENTRY = struct.Struct(f"<{ref.NAME_BYTES}sII{ref.MAX_DIMS}IQQ")


def _entries(data: bytes):
    _, _, n, _ = HEADER.unpack_from(data, 0)
    out = []
    for i in range(n):
        name, code, ndim, *rest = ENTRY.unpack_from(data, HEADER.size + i * ENTRY.size)
        out.append((name.rstrip(b"\0").decode(), code, ndim, tuple(rest[:ndim]), rest[4], rest[5]))
    return out


def _fix_crc(b: bytearray) -> bytearray:
    b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])) & 0xFFFFFFFF)
    return b


def _entry_at(data: bytes, name: str) -> int:
    for i, e in enumerate(_entries(data)):
        if e[0] == name:
            return HEADER.size + i * ENTRY.size
    raise KeyError(name)


def corruptions(model: bytes):
    """-> [(name, stage, bytes, keyword)]: stage 'blob' = ModelBlob must refuse, 'model' = LatentModel must."""
    n = len(model)
    ents = _entries(model)
    out = []

    def patched(fn, fix_crc=True):
        b = bytearray(model)
        fn(b)
        return bytes(_fix_crc(b) if fix_crc else b)

    def put(b, off, fmt, *v):
        struct.pack_into(fmt, b, off, *v)

    out.append(("bad_magic", "blob", patched(lambda b: b.__setitem__(slice(5, 6), b"X"), False), "magic"))
    out.append(("bad_version", "blob", patched(lambda b: put(b, 8, "<I", 2)), "version"))
    # one bit flipped in the data of hsd.luma.conv2.weight, stored CRC left as is
    mid = next(off + nb // 2 for name, _, _, _, off, nb in ents if name == "hsd.luma.conv2.weight")
    out.append(("bad_crc_data", "blob", patched(lambda b: b.__setitem__(mid, b[mid] ^ 0x10), False), "CRC-32"))
    out.append(("bad_crc_stored", "blob", patched(lambda b: b.__setitem__(n - 1, b[n - 1] ^ 0xFF), False), "CRC-32"))
    out.append(("truncated", "blob", model[:n - 4096], "total_size"))
    out.append(("truncated_to_header", "blob", model[:20], "magic"))
    # cut to half, with total_size and CRC made consistent: sections beyond the end must be refused
    half = bytearray(model[:n // 2 // 16 * 16 + 4])
    put(half, 16, "<Q", len(half))
    out.append(("truncated_consistent", "blob", bytes(_fix_crc(half)), "out of range"))
    last = HEADER.size + (len(ents) - 1) * ENTRY.size  # entry of the last section
    out.append(("section_out_of_range", "blob",
                patched(lambda b: put(b, last + 72, "<Q", (n + 15) // 16 * 16 + 16)), "out of range"))
    out.append(("section_unaligned", "blob",
                patched(lambda b: put(b, last + 72, "<Q", ents[-1][4] + 8)), "out of range"))
    out.append(("section_nbytes", "blob", patched(lambda b: put(b, last + 80, "<Q", ents[-1][5] + 1)), "nbytes"))
    out.append(("section_count", "blob", patched(lambda b: put(b, 12, "<I", 0x7FFFFFFF)), "section table"))
    out.append(("section_dtype", "blob", patched(lambda b: put(b, last + 48, "<I", 9)), "dtype"))
    second = HEADER.size + ENTRY.size
    out.append(("section_duplicate", "blob",
                patched(lambda b: b.__setitem__(slice(second, second + ref.NAME_BYTES),
                                                model[HEADER.size:HEADER.size + ref.NAME_BYTES])), "duplicate"))
    # parse fine, but the model is unusable
    consts = next(off for name, _, _, _, off, _ in ents if name == "meta.consts")
    out.append(("consts_q7", "model", patched(lambda b: put(b, consts + 16, "<i", 64)), "Q7"))
    shift = next(off for name, _, _, _, off, _ in ents if name == "hsd.chroma.conv3.shift")
    out.append(("hsd_shift", "model", patched(lambda b: put(b, shift + 5, "<b", 31)), "shift"))
    shape = _entry_at(model, "gain.luma.q7")  # [R, C] -> [R, C - 1] with nbytes to match
    r, c = ents[[e[0] for e in ents].index("gain.luma.q7")][3]
    out.append(("gain_shape", "model",
                patched(lambda b: (put(b, shape + 60, "<I", c - 1), put(b, shape + 80, "<Q", 4 * r * (c - 1)))),
                "shape"))
    return out


def write_blob_vectors(w: Writer, model: bytes):
    blob = ref.read_blob(model)
    ents = _entries(model)
    w.comment("model reader: every section of model.bin, then values of a few")
    w.value("blob.section_count", len(ents))
    w.value("blob.crc32", struct.unpack_from("<I", model, len(model) - 4)[0])
    for name, code, ndim, shape, off, nb in ents:
        w.line("section", name, code, ndim, *shape, off, nb, zlib.crc32(model[off:off + nb]) & 0xFFFFFFFF)
    for key in ("meta.channels", "meta.consts", "mean.y_frac"):
        w.value(key, *blob[key])
    w.value("blob.rate_lambdas_bits", *blob["meta.rate_lambdas"].view(np.uint32))
    w.comment("corrupted copies of model.bin (patches of the shipped file)")
    for name, stage, data, keyword in corruptions(model):
        if stage == "blob":
            try:
                ref.read_blob(data)
            except ref.BlobError:
                pass
            else:
                raise AssertionError(f"read_blob accepted the corrupted copy {name}")
        else:
            ref.read_blob(data)  # must parse; the model layer refuses it
        w.line("corrupt", name, stage, len(data), hashlib.sha256(data).hexdigest(), keyword)
        diff = [i for i in range(min(len(data), len(model))) if data[i] != model[i]]
        diff += range(len(model), len(data))
        runs, start = [], None
        for k, i in enumerate(diff):  # runs of consecutive differing bytes
            if start is None:
                start = i
            if k + 1 == len(diff) or diff[k + 1] != i + 1:
                runs.append((start, i + 1))
                start = None
        for a, b in runs:
            w.line("patch", name, a, data[a:b].hex())


# ----------------------------------------------------------------------------------------------
# latent domain
# ----------------------------------------------------------------------------------------------
def generate(out: pathlib.Path):
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():  # only what this script writes
        if f.is_file() and (f.name == "manifest.txt" or f.suffix[1:] in _DTYPE_NAME.values()):
            f.unlink()
    model_bytes = (MODEL_DIR / "model.bin").read_bytes()
    model = ref.Model(MODEL_DIR, threads=1)
    if model.mean is None:
        raise SystemExit("the shipped model has no fixed-point mean path")
    a, b = pictures()
    w = Writer(out)
    w.comment("jpegai_fast ctest vectors: written by tools/gen_ctest_vectors.py from training/reference_decoder.py;")
    w.comment("do not edit, regenerate (python tools/gen_ctest_vectors.py) and check (--check)")
    w.line("format", FORMAT)
    w.line("model_path", MODEL_DIR.relative_to(ROOT).as_posix() + "/model.bin")
    w.line("model_sha256", hashlib.sha256(model_bytes).hexdigest())
    w.line("model_size", len(model_bytes))

    # picture A: codestream, oracle decode -> latent vectors and the HSD vectors
    data, enc = ref.encode_bitstream(model, a, RATE)
    dec = ref.decode_bitstream(model, data)
    hl, wl = ref.latent_size(a.shape[:2])
    hz, wz = -(-hl // 4), -(-wl // 4)
    w.comment(f"hsd: picture A = astronaut[{PICTURE_A[0].start}:{PICTURE_A[0].stop}, "
              f"{PICTURE_A[1].start}:{PICTURE_A[1].stop}], rate point {RATE}; s = HSD(z_hat), Q7, no gain")
    w.value("hsd.size", hz, wz, hl, wl)
    for comp in ref.COMPONENTS:
        z = dec["z_hat"][comp]
        assert np.array_equal(z, enc["z_hat"][comp])
        s = ref.hsd_forward(z, model.hsd_layers(comp), (hl, wl))
        assert np.array_equal(s, dec["s"][comp])
        w.array(f"hsd.{comp}.z", z, np.int16)
        w.array(f"hsd.{comp}.s", s, np.int32)

    w.comment("latent: the codestream of picture A and what decode_latents must return")
    w.value("latent.header", a.shape[0], a.shape[1], RATE)
    w.array("latent.codestream", np.frombuffer(data, np.uint8), np.uint8)
    for comp in ref.COMPONENTS:
        for key, mine, theirs in (("index", dec["idx"], enc["idx"]), ("residual", dec["residual"], enc["residual"]),
                                  ("y_hat", dec["y_hat_q"], None)):
            if theirs is not None:
                assert np.array_equal(mine[comp], theirs[comp]), (comp, key)
        w.array(f"latent.{comp}.z", dec["z_hat"][comp], np.int16)
        w.array(f"latent.{comp}.index", dec["idx"][comp], np.uint8)
        w.array(f"latent.{comp}.residual", dec["residual"][comp], np.int16)
        w.array(f"latent.{comp}.y_hat", dec["y_hat_q"][comp], np.int16)
        assert np.array_equal(dec["y_hat"][comp], dec["y_hat_q"][comp].astype(np.float32)
                              * np.float32(2.0 ** -model.mean.y_frac[comp]))

    # picture B: the mean path on its own, with displaced offsets
    enc_b = ref.encode_latents(model, b, RATE, displacement=DISPLACEMENT_B)
    hl, wl = ref.latent_size(b.shape[:2])
    hz, wz = -(-hl // 4), -(-wl // 4)
    w.comment(f"mean: picture B = astronaut[{PICTURE_B[0].start}:{PICTURE_B[0].stop}, "
              f"{PICTURE_B[1].start}:{PICTURE_B[1].stop}], rate point {RATE}, displacement {DISPLACEMENT_B}")
    w.value("mean.size", hz, wz, hl, wl)
    for k, comp in enumerate(ref.COMPONENTS):
        z = enc_b["z_hat"][comp]
        offsets = model.offset(comp, RATE, DISPLACEMENT_B[k])
        idx = ref.scale_indices(ref.hsd_forward(z, model.hsd_layers(comp), (hl, wl)), offsets, model.skip_threshold)
        assert np.array_equal(idx, enc_b["idx"][comp])
        psi = model.mean.psi(comp, z, (hl, wl))
        y_hat, r = model.mean.reconstruct(comp, psi, idx, offsets, residual=enc_b["residual"][comp])
        assert np.array_equal(r, enc_b["residual"][comp])
        assert np.array_equal(y_hat.astype(np.float32) * np.float32(2.0 ** -model.mean.y_frac[comp]),
                              enc_b["y_hat"][comp])
        w.value(f"mean.{comp}.y_frac", model.mean.y_frac[comp])
        w.value(f"mean.{comp}.psi_frac", model.mean.psi_frac(comp))
        w.array(f"mean.{comp}.z", z, np.int16)
        w.array(f"mean.{comp}.index", idx, np.uint8)
        w.array(f"mean.{comp}.offsets", offsets, np.int32)
        w.array(f"mean.{comp}.residual", enc_b["residual"][comp], np.int16)
        w.array(f"mean.{comp}.psi", psi, np.int16)
        w.array(f"mean.{comp}.y_hat", y_hat, np.int16)

    write_blob_vectors(w, model_bytes)
    w.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with the committed")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    if not args.check:
        generate(args.out)
        files = sorted(args.out.iterdir())
        print(f"wrote {len(files)} files, {sum(f.stat().st_size for f in files)} bytes to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp)
        generate(fresh)
        new = {f.name for f in fresh.iterdir()}
        old = {f.name for f in args.out.iterdir()} if args.out.is_dir() else set()
        bad = sorted(new ^ old) + sorted(n for n in new & old
                                         if not filecmp.cmp(fresh / n, args.out / n, shallow=False))
        if bad:
            print(f"{args.out}: differs from the oracle's output: {', '.join(bad)}\n"
                  "regenerate with: python tools/gen_ctest_vectors.py", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(new)} files identical to the oracle's output")
        return 0


if __name__ == "__main__":
    sys.exit(main())
