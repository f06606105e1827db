"""Merge the SOP synthesis of a SOP run that trained beside a BOP run into the model's checkpoint.

    python -m training.merge_sop --sop training/checkpoints/vr_bop_sop.run.pt [--into training/checkpoints/vr_bop.pt]

SOP synthesis trains against the frozen latent (`train --op sop`), so on a machine with two free cores
it can run beside the BOP run: it starts from a copy of the BOP checkpoint and writes its own
`--checkpoint`.  Only the `synthesis.sop.*` tensors, the SOP step count and the SOP wall time are
taken from it; everything else (the latent the SOP weights will decode) stays the BOP run's.  A SOP
run's latent is then a little older than the merged BOP latent: a short `train --op sop --resume` on
the merged file closes that gap.  The ignored full-precision companion (`<stem>.opt.pt`) is updated
the same way, so a later BOP resume keeps its optimizer state.
"""
from __future__ import annotations

import argparse
import os
import pathlib

import torch

PREFIX = "synthesis.sop."


def merge_state(into: dict, sop: dict) -> int:
    """Copy the SOP synthesis tensors of `sop` into `into` (dtype of `into` kept); -> tensors copied."""
    keys = [k for k in into if k.startswith(PREFIX)]
    if not keys or set(keys) != {k for k in sop if k.startswith(PREFIX)}:
        raise ValueError("the two checkpoints do not hold the same SOP synthesis tensors")
    for k in keys:
        into[k] = sop[k].to(into[k].dtype)
    return len(keys)


def merge_meta(into: dict, sop: dict) -> dict:
    meta = dict(into)
    meta["steps"] = dict(into["steps"], sop=sop["steps"]["sop"])
    by_op = dict(into.get("wall_s_by_op", {"bop": into["wall_s"], "sop": 0.0}))
    by_op["sop"] = sop.get("wall_s_by_op", {}).get("sop", 0.0)
    meta["wall_s_by_op"] = by_op
    meta["wall_s"] = round(sum(by_op.values()), 1)
    return meta


def _save(obj, path: pathlib.Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sop", required=True, help="checkpoint written by the SOP run")
    ap.add_argument("--into", default="training/checkpoints/vr_bop.pt")
    args = ap.parse_args()
    into_path, sop_path = pathlib.Path(args.into), pathlib.Path(args.sop)
    into, sop = torch.load(into_path, map_location="cpu"), torch.load(sop_path, map_location="cpu")
    n = merge_state(into["state_dict"], sop["state_dict"])
    old_steps = into["meta"]["steps"]
    into["meta"] = merge_meta(into["meta"], sop["meta"])
    full_path = into_path.with_name(into_path.stem + ".opt.pt")
    sop_full_path = sop_path.with_name(sop_path.stem + ".opt.pt")
    if full_path.exists():  # keep the local float32 companion in step with the committed file
        full = torch.load(full_path, map_location="cpu")
        if full["meta"]["steps"] == old_steps:
            src = torch.load(sop_full_path, map_location="cpu")["state_dict"] if sop_full_path.exists() \
                else sop["state_dict"]
            merge_state(full["state_dict"], src)
            full["meta"] = into["meta"]
            _save(full, full_path)
    _save(into, into_path)
    print(f"merged {n} SOP synthesis tensors from {sop_path} into {into_path}: steps {into['meta']['steps']}, "
          f"wall {into['meta']['wall_s_by_op']}")


if __name__ == "__main__":
    main()
