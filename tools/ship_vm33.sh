#!/usr/bin/env bash
# Ship a measured export (the work folder of tools/release_vm33.sh) into the package, with its records.
#
#   bash tools/ship_vm33.sh WORK STEP        # e.g. bash tools/ship_vm33.sh /tmp/vm33_release 41,061
#
# Copies WORK/model/* into src/jpegai_fast/models/vm33/ (int8 graphs over MAX_INT8_BD % BD-rate left out) and the RD, export-check and border records into
# training/results/, then rewrites the work-folder paths in them to the repo paths they now live at (the
# card's `source` fields, the checkpoint name with its step, the int8 command).  Afterwards (training/README.md,
# "Shipping an export"): regenerate the vm33 part of training/results/int8_synthesis.md, the quality knots of
# tests/test_quality.py and the default quality ladder (README.md, docs/pipelines.md, the encode docstring), the
# README figures; reinstall; run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:?work folder of tools/release_vm33.sh}
STEP=${2:?training step of the exported checkpoint, e.g. 41,061}
MODEL=src/jpegai_fast/models/vm33
RES=training/results
cp "$WORK"/model/* "$MODEL"/
# int8 graphs that cost more than MAX_INT8_BD % BD-rate (PSNR-YUV vs fp32, Kodak) are not shipped: with
# precision="int8" that operating point then runs fp32 (vm33 SOP: +12.6 % at step 41,061, +11.1 % at 64,201)
MAX_INT8_BD=${MAX_INT8_BD:-10}
python - "$MODEL" "$MAX_INT8_BD" <<'PY'
import json, pathlib, sys
model, limit = pathlib.Path(sys.argv[1]), float(sys.argv[2])
card = json.loads((model / "model_card.json").read_text())
for op, entry in list((card.get("synthesis_int8") or {}).items()):
    bd = (entry.get("kodak") or {}).get("bd_rate_psnr_yuv_percent")
    if bd is not None and bd > limit:
        for name in entry["files"]:
            (model / name).unlink(missing_ok=True)
        del card["synthesis_int8"][op]
        print(f"{op} int8 graphs not shipped: {bd:+.2f} % BD-rate > {limit} %", file=sys.stderr)
(model / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
PY
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
