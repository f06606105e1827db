"""Float16 storage for a shipped model directory's float graphs, proven lossless by coding real pictures.

    python -m training.compact_models src/jpegai_fast/models/vr_bop [more model dirs]

Every float32 weight that float16 holds exactly (all trained ones: the checkpoints keep float16 weights) is
stored as float16 and cast back to float32 inside the graph (training.export.store_float16_exact, what new
exports do already), which halves the float graphs.  The rewritten directory is accepted only if, for each
test picture, every operating point and rate point checked, the encoder writes the same bytes and the decoder
returns the same pixels as with the original graphs; then the graphs replace the originals and the card's
file sizes are updated.  The int8 graphs are left alone (their weights are int8 already).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import re
import shutil
import sys
import tempfile

import numpy as np
import onnx

from .export import store_float16_exact


def float_graphs(model_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in model_dir.glob("*.onnx") if not p.name.endswith(".int8.onnx"))


def test_pictures() -> list[np.ndarray]:
    """Two photos that ship with scikit-image (odd sizes included, to exercise the crops)."""
    from skimage import data

    return [data.astronaut()[:301, :389], data.coffee()[:200, :300]]


def same_coding(original: pathlib.Path, compacted: pathlib.Path, rates=(0, 4, 7)) -> list[str]:
    """Encode and decode with both directories -> differences found (empty: identical everywhere)."""
    import jpegai_fast

    problems = []
    ops = [op for op in ("bop", "sop") if (original / f"synthesis_{op}_luma.onnx").exists()]
    for k, rgb in enumerate(test_pictures()):
        for r in rates:
            streams = [jpegai_fast.Encoder(model=str(d), threads=1).encode(rgb, rate_point=r)
                       for d in (original, compacted)]
            if streams[0] != streams[1]:
                problems.append(f"picture {k} rate {r}: encoder bytes differ")
                continue
            for op in ops:
                out = [jpegai_fast.Decoder(str(d), operating_point=op, threads=1).decode(streams[0])
                       for d in (original, compacted)]
                if not np.array_equal(out[0], out[1]):
                    problems.append(f"picture {k} rate {r} {op}: decoded pixels differ")
    return problems


def update_card(model_dir: pathlib.Path):
    """files_bytes of model_card.json and the Files table of MODEL_CARD.md (sizes of the files now there)."""
    sizes = {p.name: p.stat().st_size for p in sorted(model_dir.iterdir()) if p.is_file()}
    card_path = model_dir / "model_card.json"
    if card_path.exists():
        card = json.loads(card_path.read_text())
        if "files_bytes" in card:
            card["files_bytes"] = {k: sizes[k] for k in card["files_bytes"] if k in sizes}
        for entry in (card.get("synthesis_int8") or {}).values():
            # the int8 graphs were made from these very weights (same coding, checked): re-point their record
            entry["source_sha256"] = {name: hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
                                      for name in entry.get("source_sha256", {})}
            entry["source_float16_storage"] = "float graphs rewritten by training.compact_models (same coding)"
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    md_path = model_dir / "MODEL_CARD.md"
    if md_path.exists():
        sizes = {p.name: p.stat().st_size for p in sorted(model_dir.iterdir()) if p.is_file()}

        def row(m):
            name = m.group(1)
            return f"| {name} | {sizes[name]:,} |" if name in sizes else m.group(0)
        md_path.write_text(re.sub(r"^\| ([\w.]+\.(?:onnx|bin|json|md)) \| [\d,]+ \|$", row, md_path.read_text(),
                                  flags=re.M))


def compact(model_dir: pathlib.Path) -> int:
    before = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        trial = pathlib.Path(tmp) / model_dir.name
        shutil.copytree(model_dir, trial)
        saved = 0
        for graph in float_graphs(trial):
            proto, s = store_float16_exact(onnx.load(str(graph)))
            onnx.checker.check_model(proto)
            onnx.save(proto, str(graph))
            saved += s
        problems = same_coding(model_dir, trial)
        if problems:
            print(f"{model_dir}: NOT compacted, the float16 storage changed the coding:", *problems, sep="\n  ")
            return 1
        for graph in float_graphs(trial):
            shutil.copyfile(graph, model_dir / graph.name)
    update_card(model_dir)
    after = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    print(f"{model_dir}: {before:,} -> {after:,} bytes (weights {saved:,} bytes smaller); same encoder bytes and "
          "decoded pixels on the test pictures")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", nargs="+")
    args = ap.parse_args(argv)
    return max(compact(pathlib.Path(d)) for d in args.model_dirs)


if __name__ == "__main__":
    sys.exit(main())
