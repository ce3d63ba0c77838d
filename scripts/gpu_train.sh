#!/usr/bin/env bash
# The GPU run that trains the shipped model, in one call of at most MINUTES (default 9) wall
# time in all, on a machine with an NVIDIA GPU and PyTorch (no network needed). Run from the
# repository root with CamVid in data/camvid (train/ and val/ with images/ and labels/):
#
#   scripts/gpu_train.sh OUT_DIR [MINUTES] [--resume]
#
# Trains three configurations side by side in one process (train/train.py: each step one
# CUDA graph; raw weights and their EMA evaluated on val every 2 epochs; the model and its
# epoch chosen on val only), then writes seven files to OUT_DIR:
#   enet-camvid.safetensors          the chosen model in the engine's format (f32, provenance)
#   enet-camvid-pytorch.safetensors  PyTorch's outputs of that file on the first val frames
#                                    (the parity fixture)
#   log.txt                          everything printed: bench, every configuration's epochs
#   summary.json                     the choice, per-class IoU, epochs/min, every configuration
#   ckpt-NAME.pt (three)             each configuration's whole state (about 8 MB each);
#                                    --resume continues them in a new call
# Copy the two .safetensors files to assets/ and tests/fixtures/ respectively.
#
# Budget: train.py gets MINUTES less 60 s (it keeps its last 15 s for the final evaluation,
# checkpoints and export, and is interrupted, keeping its best, if it overruns); the parity
# fixture takes about 10 s. GPU_TRAIN_ARGS adds train.py flags, overriding those below; a dry
# run on a CPU: GPU_TRAIN_ARGS="--limit 8 --size 96x72 --bench-steps 2" scripts/gpu_train.sh OUT 1.5
set -euo pipefail
export PYTHONUNBUFFERED=1 # the log keeps the order things happened in
out= minutes=9 resume=
for arg in "$@"; do
  case $arg in
    --resume) resume=--resume ;;
    *) if [ -z "$out" ]; then out=$arg; else minutes=$arg; fi ;;
  esac
done
[ -n "$out" ] || { echo "usage: scripts/gpu_train.sh OUT_DIR [MINUTES] [--resume]" >&2; exit 2; }
[ -d data/camvid/train ] && [ -d data/camvid/val ] || { echo "no data/camvid/{train,val}: run from the repository root" >&2; exit 2; }
mkdir -p "$out"
start=$(date +%s)
end=$(awk -v s="$start" -v m="$minutes" 'BEGIN { printf "%d", s + m * 60 }')
train_s=$(awk -v m="$minutes" 'BEGIN { t = m * 60 - 60; if (t < 15) t = 15; printf "%d", t }')
model="$out/enet-camvid.safetensors"
fixture="$out/enet-camvid-pytorch.safetensors"

# train.py with the recipe: three configurations side by side; $1 seconds, then more flags.
run_train() {
  local s=$1
  shift
  # shellcheck disable=SC2086 # GPU_TRAIN_ARGS is a list of flags
  timeout --signal=INT --kill-after=10 $((s + 15)) \
    python3 train/train.py --data data/camvid --out "$out" --layout paper \
      --minutes "$(awk -v s="$s" 'BEGIN { print s / 60 }')" --channels-last auto --eval-every 2 \
      --batch 16 --lr 8e-3 --ema 0.999 \
      --config enet:weighting=enet,seed=2 \
      --config sqrt:weighting=enet-sqrt,seed=3 \
      --config ohem:weighting=none,ohem=0.25,seed=4 \
      --export "$model" $resume "$@" ${GPU_TRAIN_ARGS:-} || echo "train.py exited with status $?"
}

has_ckpt() { compgen -G "$out/ckpt-*.pt" >/dev/null; }

main() {
  echo "== gpu_train.sh $(date -u +%FT%TZ): ${minutes} min in all, ${train_s} s for training${resume:+ (resume)}"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  else
    echo "no nvidia-smi: not a GPU machine"
  fi
  python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())'
  rm -f "$model" "$fixture"
  [ -n "$resume" ] || rm -f "$out"/ckpt-*.pt
  local bench=--bench-steps=40
  [ -z "$resume" ] || bench=--bench-steps=0
  run_train "$train_s" --compile graph "$bench"
  if [ ! -f "$model" ] && ! has_ckpt; then
    # Nothing came out (a crash before the first checkpoint): once more without graphs.
    local left=$((end - 60 - $(date +%s)))
    if [ "$left" -ge 45 ]; then
      echo "== train.py left nothing: once more with --compile eager, ${left} s"
      run_train "$left" --compile eager --bench-steps=0
    fi
  fi
  if [ ! -f "$model" ] && has_ckpt; then
    echo "== no exported model: exporting the best of the checkpoints"
    # shellcheck disable=SC2086
    python3 train/train.py --data data/camvid --out "$out" --export-only --export "$model" ${GPU_TRAIN_ARGS:-}
  fi
  [ -f "$model" ] || { echo "no model was exported" >&2; return 1; }
  # PyTorch's outputs for the exported file on the first three val frames, computed from the
  # decoded PNGs so the engine's parity test reads the same pixels.
  echo "== parity fixture from $model"
  local frames
  frames=$(mktemp -d)
  python3 - "$frames" <<'PY'
import os, sys
from PIL import Image
names = sorted(os.listdir("data/camvid/val/images"))[:3]
for n in names:
    Image.open(os.path.join("data/camvid/val/images", n)).convert("RGB").save(
        os.path.join(sys.argv[1], os.path.splitext(n)[0] + ".png"))
PY
  python3 scripts/pytorch_fixture.py "$model" "$frames" "$fixture" --row-step 8 --f64
  rm -rf "$frames"
  rm -f "$out"/*.tmp # half-written checkpoints of an interrupted save
  python3 - "$out" "$start" <<'PY'
import json, os, sys, time
out, start = sys.argv[1], float(sys.argv[2])
path = os.path.join(out, "summary.json")
s = json.load(open(path))
s["call_wall_s"] = round(time.time() - start, 1)
json.dump(s, open(path, "w"), indent=1)
print(f"== done in {s['call_wall_s']} s: val mIoU {s['best_val_miou']:.4f} (fp32 recheck "
      f"{s['val_miou_f32_recheck']}): configuration {s['config']}, epoch {s['chosen_epoch']} of "
      f"{s['epochs']}, {s['weights']} weights; {s['epochs_per_min']} epochs/min with "
      f"{s['side_by_side']} configuration(s) side by side")
for k, v in (s.get("bench") or {}).items():
    print(f"   bench {k}: {v['epochs_per_min']} epochs/min alone")
PY
  ls -l "$out"
}

main 2>&1 | tee -a "$out/log.txt"
