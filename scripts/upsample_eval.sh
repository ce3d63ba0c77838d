#!/usr/bin/env bash
# CamVid val mIoU, and pixel accuracy near label edges, at the labels' size (480x360) for the
# network run at 480x360, 240x176 and 160x120, with each way of bringing its classes to the
# labels' size (enet eval --upsample nearest|bilinear|edge). Prints a Markdown table.
#   scripts/upsample_eval.sh [VAL_DIR] [ENET]
set -euo pipefail
cd "$(dirname "$0")/.."
val=${1:-../shared/data/camvid/val}
enet=${2:-target/release/enet}
[ -x "$enet" ] || cargo build --release --locked --bin enet
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
echo "| network | upsampling | val mIoU | pixel accuracy | accuracy within 2 px of a label edge |"
echo "|---|---|---|---|---|"
for size in 480x360 240x176 160x120; do
  for mode in nearest bilinear edge; do
    json=$("$enet" eval --data "$val" --size "$size" --upsample "$mode" --precision f32 --json)
    python3 - "$size" "$mode" "$json" <<'PY'
import json, sys
size, mode, v = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"| {size} | {mode} | {v['miou']:.4f} | {v['pixel_accuracy']:.4f} | {v['boundary_accuracy']:.4f} |")
PY
  done
done
