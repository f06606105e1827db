"""Compute floor of a decode: MACs per stage x the machine's measured kernel peaks, beside the measured stage times.

Issue 12 asks how far each decode stage is from what its arithmetic allows on this machine.  The floor of a stage
is its multiply-accumulates divided by the best throughput measured *here, now, one thread* for its kind of
arithmetic:

  fp32   ONNX Runtime (MLAS) on a large fp32 MatMul and a large 3x3 Conv; the better of the two.  The float
         synthesis runs on these kernels, so this is the ceiling it can reach.
  int8   ONNX Runtime MatMulInteger (uint8 x int8 -> int32) on a large matrix: the kernels the int8 synthesis'
         QLinearConvs use.
  int16  jpegai_fast's own register-tiled int16 madd GEMM (the hyper-scale decoder's kernel) on a large
         synthetic layer: the arithmetic of the integer hyper-scale decoder, hyper decoder and context model.

MACs per stage come from the model card (`kmac_per_px_768x512`: conv MACs measured on the exported graphs,
integer parts analytic) times the picture's pixels.  Stages that do no MACs (parse, z, residual rANS, colour)
have no floor here: they are serial/entropy or memory bound and listed with their time only.

    python -m bench.floor [--model vr_bop] [--image kodim01] [--rounds 15]

prints the table; `python -m bench.report` puts it into docs/performance.md and bench/test_floor.py records it as
a benchmark in bench/results/.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "jpegai_fast" / "models"
KODAK_DEFAULT = ROOT.parent / "shared" / "datasets" / "kodak"

# model-card kMAC/px keys -> decoder stage (Decoder.last_timing names) and arithmetic kind
_STAGE_OF_PART = (("hyper_scale_int_", "hyper-scale", "int16"), ("hyper_decoder_", "hyper decoder", "int16"),
                  ("context_", "context", "int16"))
STAGES = ("parse", "z", "hyper-scale", "residual", "hyper decoder", "context", "synthesis", "colour")


def _best_seconds(fn, rounds: int) -> float:
    fn()  # warm-up (allocations, first-touch, ORT's prepacking)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _ort_session(graph_bytes: bytes, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(graph_bytes, so, providers=["CPUExecutionProvider"])


def _graph(nodes, inputs, outputs, inits) -> bytes:
    from onnx import helper

    g = helper.make_graph(nodes, "peak", inputs, outputs, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def peak_fp32(threads: int = 1, rounds: int = 5) -> dict:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n = 1024  # 1.07 G MACs: large enough for MLAS to run at its best, small enough for ~30 ms
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
    mm = _graph([helper.make_node("MatMul", ["A", "B"], ["Y"])],
                [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], [b])
    a = rng.standard_normal((n, n), dtype=np.float32)
    s = _ort_session(mm, threads)
    t_mm = _best_seconds(lambda: s.run(None, {"A": a}), rounds)
    c, hw = 128, 64  # a synthesis-like 3x3 conv: 128 -> 128 channels on 64 x 64 (0.60 G MACs)
    w = numpy_helper.from_array(rng.standard_normal((c, c, 3, 3), dtype=np.float32) * 0.05, "W")
    conv = _graph([helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])],
                  [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, c, hw, hw])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, c, hw, hw])], [w])
    x = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    s2 = _ort_session(conv, threads)
    t_conv = _best_seconds(lambda: s2.run(None, {"X": x}), rounds)
    rates = {"MatMul 1024^3": n ** 3 / t_mm / 1e9, "Conv3x3 128->128 @64x64": hw * hw * c * c * 9 / t_conv / 1e9}
    best = max(rates, key=rates.get)
    return {"gmacs": rates[best], "kernel": f"ONNX Runtime fp32 {best}", "all": rates}


def peak_int8(threads: int = 1, rounds: int = 5) -> dict:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n = 1024
    b = numpy_helper.from_array(rng.integers(-64, 64, size=(n, n), dtype=np.int8), "B")
    graph = _graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
                   [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                   [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [b])
    a = rng.integers(0, 256, size=(n, n), dtype=np.uint8)
    s = _ort_session(graph, threads)
    t = _best_seconds(lambda: s.run(None, {"A": a}), rounds)
    return {"gmacs": n ** 3 / t / 1e9, "kernel": "ONNX Runtime MatMulInteger u8 x s8 1024^3"}


def peak_int16(threads: int = 1, rounds: int = 5) -> dict:
    """The HSD's tiled int16 madd GEMM on a large synthetic layer stack (small weights: no overflow at load)."""
    from jpegai_fast import _core

    rng = np.random.default_rng(0)
    c, zh, zw = 160, 32, 48

    def layer(cout, cin, k):
        return (rng.integers(-2, 3, size=(cout, cin, k, k), dtype=np.int8), np.zeros(cout, np.int32),
                np.full(cout, 8, np.int8))

    hsd = _core.HyperScaleDecoder(*layer(c, c, 1), *layer(c, c, 3), *layer(16 * c, c, 1))
    z = rng.integers(-31, 32, size=(c, zh, zw), dtype=np.int16)
    t = _best_seconds(lambda: hsd.forward(z, 4 * zh, 4 * zw, threads=threads), rounds)
    return {"gmacs": zh * zw * c * c * (1 + 9 + 16) / t / 1e9,
            "kernel": f"jpegai_fast int16 madd GEMM (hyper-scale kernel, {_core.cpu_features()}), 160 ch on 32x48"}


def measure_peaks(threads: int = 1) -> dict:
    return {"fp32": peak_fp32(threads), "int8": peak_int8(threads), "int16": peak_int16(threads)}


def stage_macs(model: str, op: str, pixels: int) -> dict[str, tuple[float, str]]:
    """stage -> (MACs of one decode of `pixels` luma samples, arithmetic kind), from the model card."""
    card = json.loads((MODELS / model / "model_card.json").read_text())
    kmac = card["kmac_per_px_768x512"]
    out: dict[str, list] = {}
    for part, v in kmac.items():
        if part.startswith(f"synthesis_{op}_"):
            stage, kind = "synthesis", "fp32"
        else:
            hit = [(s, k) for p, s, k in _STAGE_OF_PART if part.startswith(p)]
            if not hit:
                continue  # encoder-side graphs
            stage, kind = hit[0]
        acc = out.setdefault(stage, [0.0, kind])
        acc[0] += 1e3 * v * pixels
    return {s: (m, k) for s, (m, k) in out.items()}


def winograd_saving(model: str, op: str, pixels: int) -> float:
    """MACs per decode of `pixels` luma samples that the C++ blocks' Winograd forms do not execute (0 where the
    runtime keeps the whole ORT graphs): a 3x3 block, Winograd F(4x4, 3x3), does 36 products per channel pair and
    4x4 output tile where the direct form does 144 (6.75 fewer per output), an up-sampler, F(4x4, 2x2) per phase,
    25 per phase tile where the direct form does 64 (2.4375 fewer per output, i.e. 9.75 per input sample, four
    phases); the gates are unchanged."""
    from jpegai_fast.model import Model

    m = Model(model, threads=1)
    saved = 0.0
    for comp in ("luma", "chroma"):
        graph = f"synthesis_{op}_{comp}"
        if m.split_synthesis(graph) is None:
            continue
        from jpegai_fast.graph_split import split_gated_upsamplers

        split = split_gated_upsamplers((m.path / f"{graph}.onnx").read_bytes())
        n = pixels / m.grid[comp] ** 2  # input positions of the first block: the component's latent grid
        for blk in split.blocks:
            if blk.kind in ("resau", "shuffle_up"):
                n *= blk.scale ** 2
                continue  # direct form: no multiply-adds saved
            cin, cout = (blk.weight.shape[0], blk.weight.shape[1]) if blk.kind == "up" else blk.weight.shape[1::-1]
            saved += (9.75 if blk.kind == "up" else 6.75) * cin * cout * n
            if blk.kind == "up":
                n *= 4
    return saved


def kodak_picture(name: str = "kodim01") -> tuple[str, np.ndarray]:
    from PIL import Image

    path = KODAK_DEFAULT / f"{name}.png"
    if path.is_file():
        with Image.open(path) as im:
            return name, np.asarray(im.convert("RGB"))
    from skimage import data

    img = Image.fromarray(data.coffee()).resize((768, 512), Image.BICUBIC)
    return "skimage coffee resized to 768x512", np.asarray(img)


def measured_stages(rgb: np.ndarray, model: str, op: str, precision: str, rounds: int, rate_point: int = 4) -> dict:
    import jpegai_fast

    data = jpegai_fast.encode(rgb, model=model, rate_point=rate_point, threads=1)
    dec = jpegai_fast.Decoder(model=model, operating_point=op, threads=1, precision=precision)
    dec.decode(data)  # session creation is not decode time
    runs = []
    for _ in range(rounds):
        dec.decode(data)
        runs.append(dict(dec.last_timing))
    return {k: 1e3 * float(np.median([r[k] for r in runs])) for k in runs[0]}


def floor_rows(model: str = "vr_bop", image: str = "kodim01", rounds: int = 15, peaks: dict | None = None) -> dict:
    """The floor table for one model: every operating point the model ships, fp32 and int8 synthesis."""
    name, rgb = kodak_picture(image)
    pixels = rgb.shape[0] * rgb.shape[1]
    peaks = peaks or measure_peaks(1)
    mdir = MODELS / model
    rows = []
    for op in ("bop", "sop"):
        if not (mdir / f"synthesis_{op}_luma.onnx").is_file():
            continue
        macs = stage_macs(model, op, pixels)
        saved = winograd_saving(model, op, pixels)
        for precision in ("fp32", "int8"):
            if precision == "int8" and not (mdir / f"synthesis_{op}_luma.int8.onnx").is_file():
                continue
            ms = measured_stages(rgb, model, op, precision, rounds)
            floor_total = 0.0
            for stage in STAGES:
                m, kind = macs.get(stage, (0.0, ""))
                if stage == "synthesis" and precision == "int8":
                    kind = "int8"  # lower bound: the mixed-precision graphs keep part of their MACs in float
                elif stage == "synthesis" and saved:
                    m -= saved  # what the C++ blocks' Winograd forms execute (the direct form's count is in the card)
                floor = 1e3 * m / (peaks[kind]["gmacs"] * 1e9) if m else None
                floor_total += floor or 0.0
                rows.append({"op": op, "precision": precision, "stage": stage, "MMAC": round(m / 1e6, 1) if m else None,
                             "arithmetic": kind or "—", "peak GMAC/s": round(peaks[kind]["gmacs"], 1) if m else None,
                             "floor ms": round(floor, 2) if floor else None, "measured ms": round(ms[stage], 2),
                             "measured / floor": round(ms[stage] / floor, 1) if floor else None})
            executed = sum(v[0] for v in macs.values()) - (saved if precision == "fp32" else 0.0)
            rows.append({"op": op, "precision": precision, "stage": "total", "MMAC": round(executed / 1e6, 1),
                         "arithmetic": "", "peak GMAC/s": None,
                "floor ms": round(floor_total, 2), "measured ms": round(ms["total"], 2),
                "measured / floor": round(ms["total"] / floor_total, 1)})
    return {"model": model, "picture": f"{name} ({rgb.shape[1]}x{rgb.shape[0]}), rate point 4, 1 thread, "
                                       f"median of {rounds} decodes",
            "peaks": {k: {"GMAC/s": round(v["gmacs"], 1), "kernel": v["kernel"]} for k, v in peaks.items()},
            "rows": rows}


def markdown(result: dict) -> list[str]:
    L = [f"Model `{result['model']}`, {result['picture']}. Measured peaks on this machine, one thread:", "",
         "| arithmetic | GMAC/s | kernel |", "|---|---:|---|"]
    L += [f"| {k} | {v['GMAC/s']} | {v['kernel']} |" for k, v in result["peaks"].items()]
    L += ["", "| op | synthesis | stage | MMAC | arithmetic | peak GMAC/s | floor ms | measured ms "
              "| measured ÷ floor |", "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        cells = [r["op"], r["precision"], r["stage"]] + ["—" if r[k] is None else str(r[k]) for k in
                                                          ("MMAC", "arithmetic", "peak GMAC/s", "floor ms",
                                                           "measured ms", "measured / floor")]
        if r["stage"] == "total":
            cells = [f"**{c}**" if c not in ("", "—") else c for c in cells]
        L.append("| " + " | ".join(cells) + " |")
    L += ["", "Floor = MACs ÷ peak for the stage's arithmetic (int8 synthesis: all its MACs at the int8 peak, a lower "
          "bound, since the mixed-precision graphs keep part of them in float); fp32 synthesis: the multiply-adds "
          "executed, where the C++ blocks run Winograd forms fewer than the card's direct-form count "
          "(`bench.floor.winograd_saving`); parse, z, residual and colour do no MACs and count 0 in the total floor."]
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vr_bop")
    ap.add_argument("--image", default="kodim01")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = floor_rows(args.model, args.image, args.rounds)
    print(json.dumps(result, indent=1) if args.json else "\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
