#!/usr/bin/env bash
# Ship a measured export (the work folder of tools/release_vm33.sh) into the package, with its records.
#
#   bash tools/ship_vm33.sh WORK STEP        # e.g. bash tools/ship_vm33.sh /tmp/vm33_release 41,061
#
# Copies WORK/model/* into src/jpegai_fast/models/vm33/ and the RD, export-check and border records into
# training/results/, then rewrites the work-folder paths in them to the repo paths they now live at (the
# card's `source` fields, the checkpoint name with its step, the int8 command).  Afterwards (training/README.md,
# "Shipping an export"): regenerate the vm33 part of training/results/int8_synthesis.md, the quality knots of
# tests/test_quality.py, the README figures; reinstall; run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:?work folder of tools/release_vm33.sh}
STEP=${2:?training step of the exported checkpoint, e.g. 41,061}
MODEL=src/jpegai_fast/models/vm33
RES=training/results
cp "$WORK"/model/* "$MODEL"/
cp "$WORK/rd_bop.json" "$RES/rd_eval_vm33.json";     cp "$WORK/rd_bop.md" "$RES/rd_eval_vm33.md"
cp "$WORK/rd_sop.json" "$RES/rd_eval_vm33_sop.json"; cp "$WORK/rd_sop.md" "$RES/rd_eval_vm33_sop.md"
cp "$WORK/export_compare.json" "$RES/export_compare_vm33.json"
cp "$WORK/border.json" "$RES/border_vm33.json"
sed -i -e "s#$WORK/checkpoint.pt#training/checkpoints/vm33.pt (step $STEP)#g" \
       -e "s#$WORK/rd_bop.json#$RES/rd_eval_vm33.json#g" -e "s#$WORK/rd_sop.json#$RES/rd_eval_vm33_sop.json#g" \
       -e "s#$WORK/model#$MODEL#g" \
    "$MODEL/model_card.json" "$MODEL/MODEL_CARD.md" "$RES"/rd_eval_vm33*.json "$RES"/rd_eval_vm33*.md \
    "$RES/border_vm33.json" "$RES/export_compare_vm33.json"
if grep -rn "$WORK" "$MODEL" "$RES" >/dev/null; then
    echo "work-folder paths left:" >&2; grep -rln "$WORK" "$MODEL" "$RES" >&2; exit 1
fi
echo "shipped $WORK (step $STEP) into $MODEL" >&2
