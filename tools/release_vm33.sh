#!/usr/bin/env bash
# Export a vm33 checkpoint and measure it, into a work folder; nothing in src/ changes.
#
#   bash tools/release_vm33.sh [CHECKPOINT] [WORK]     # defaults: training/checkpoints/vm33.pt, /tmp/vm33_release
#
# Steps (each the command the training README documents): export (BOP + SOP graphs) -> Kodak RD with real
# bytes for BOP (against the shipped model's curve) and SOP -> export again with both curves in the card ->
# int8 synthesis graphs (the export step) -> picture-gradient graphs (refine=) -> torch vs runtime check -> border
# error.  Then, if the figures
# are better, ship it: copy WORK/model into src/jpegai_fast/models/vm33 and WORK/rd_bop.* / rd_sop.* into
# training/results/rd_eval_vm33.* / rd_eval_vm33_sop.* (see training/README.md, "Shipping an export").
# About 50 min on one core (the int8 step alone ~20 min).
#
# A graft (checkpoint meta "grafted": the shipped decoder's tensors, a newer high-rate analysis): set
# CALIB_CKPT to the checkpoint the decoder tensors come from (e.g. the shipped step's, from git), so the
# mean path's fixed-point formats are calibrated as shipped.  When model.bin and the float synthesis graphs
# then come out byte-equal to the shipped ones, only the encoder changed: the shipped int8 and
# picture-gradient graphs are kept (they follow the synthesis) and the int8 graphs are only re-evaluated on the
# new encoder's Kodak streams (~25 min in all).
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT_SRC=${1:-training/checkpoints/vm33.pt}
WORK=${2:-/tmp/vm33_release}
THREADS=${THREADS:-1}
mkdir -p "$WORK"
cp "$CKPT_SRC" "$WORK/checkpoint.pt"   # a snapshot: the training run keeps overwriting its checkpoint
export OMP_NUM_THREADS=$THREADS
SHIPPED=src/jpegai_fast/models/vm33
CALIB=(); [ -n "${CALIB_CKPT:-}" ] && CALIB=(--calibration-checkpoint "$CALIB_CKPT")
run() { echo "+ $*" >&2; "$@"; }
decoder_as_shipped() {  # every file the decoder reads, byte for byte
    for f in model.bin synthesis_{bop,sop}_{luma,chroma}.onnx; do cmp -s "$WORK/model/$f" "$SHIPPED/$f" || return 1; done
}
run python -m training.export_vm --checkpoint "$WORK/checkpoint.pt" --out "$WORK/model" --threads "$THREADS" "${CALIB[@]}"
run python -m training.rd_eval --model "$WORK/model" --out "$WORK/rd_bop" --threads "$THREADS" \
    --baseline training/results/rd_eval_vm33.json
run python -m training.rd_eval --model "$WORK/model" --op sop --out "$WORK/rd_sop" --threads "$THREADS" \
    --baseline training/results/rd_eval_vm33_sop.json
run python -m training.export_vm --checkpoint "$WORK/checkpoint.pt" --out "$WORK/model" --threads "$THREADS" \
    --rd "$WORK/rd_bop.json" --rd-sop "$WORK/rd_sop.json" "${CALIB[@]}"
if decoder_as_shipped; then
    echo "decoder byte-equal to $SHIPPED: keeping its int8 and picture-gradient graphs" >&2
    cp "$SHIPPED"/synthesis_*.int8.onnx "$SHIPPED"/picture_gradient_*.onnx "$WORK/model/"
    python - "$SHIPPED/model_card.json" "$WORK/model/model_card.json" <<'PY'
import json, sys
shipped, new = (json.load(open(p)) for p in sys.argv[1:])
for key in ("synthesis_int8", "picture_gradient"):  # both follow the float synthesis graphs, which are the same
    if shipped.get(key):
        new[key] = shipped[key]
json.dump(new, open(sys.argv[2], "w"), indent=1); open(sys.argv[2], "a").write("\n")
PY
    run python -m training.quantize_synthesis --model "$WORK/model" --reevaluate --threads "$THREADS"
else
    # int8 recipe (training/results/int8_synthesis.md, 2026-12-05): gated products equalised, QAT distilled from the
    # float graph's output on 192 crops at lr 1e-5; Kodak BD vs fp32 at step 71,733: BOP +2.29 % (was +4.40 %), SOP
    # +5.78 % (was +9.23 %) with half of the SOP luma graph's MACs allowed in float (its latent input then stays float)
    INT8="--gate-alpha 0.5 --qat-target fp32 --qat-steps 1500,1500 --qat-lr 1e-5 --crops 192 --threads $THREADS"
    run python -m training.quantize_synthesis --model "$WORK/model" --ops bop $INT8
    run python -m training.quantize_synthesis --model "$WORK/model" --ops sop $INT8 --max-float-mac-share 0.5,0.6
    # encoder-side latent refinement (encode(..., refine=N)): the synthesis' gradient graphs follow the float graphs
    run python -m training.synthesis_vjp --model "$WORK/model"
fi
run python -m training.export_vm compare --checkpoint "$WORK/checkpoint.pt" --model-dir "$WORK/model" \
    --out "$WORK/export_compare.json"
run python tools/border_error.py --model "$WORK/model" --out "$WORK/border.json"
echo "done: $WORK" >&2
