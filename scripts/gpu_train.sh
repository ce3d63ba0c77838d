#!/usr/bin/env bash
# The GPU run that trains the shipped model, in one call of a machine with an NVIDIA GPU and
# PyTorch (no network needed). Run from the repository root with CamVid in data/camvid
# (train/ and val/ with images/ and labels/; about 43 MB):
#
#   scripts/gpu_train.sh OUT_DIR [MINUTES]
#
# Writes OUT_DIR/run/{log.jsonl,summary.json,best.pt,last.pt}, OUT_DIR/enet-camvid.safetensors
# (the engine's format, f32) and OUT_DIR/enet-camvid-pytorch.safetensors (PyTorch's outputs on
# the first val frames, the parity fixture). Copy the two .safetensors files to assets/ and
# tests/fixtures/ respectively.
set -euo pipefail
out=${1:?usage: scripts/gpu_train.sh OUT_DIR [MINUTES]}
minutes=${2:-11}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 train/train.py --data data/camvid --out "$out/run" --layout paper --amp \
    --minutes "$minutes" --eval-every 5 --export "$out/enet-camvid.safetensors" 2>&1 | tee "$out/train.log"
# PyTorch's outputs for the exported model on the first three val frames, computed from the
# decoded PNGs so the engine's parity test reads the same pixels.
mkdir -p "$out/val-frames"
python3 - "$out/val-frames" <<'PY'
import os, sys
from PIL import Image
names = sorted(os.listdir("data/camvid/val/images"))[:3]
for n in names:
    Image.open(os.path.join("data/camvid/val/images", n)).convert("RGB").save(
        os.path.join(sys.argv[1], os.path.splitext(n)[0] + ".png"))
PY
python3 scripts/pytorch_fixture.py "$out/enet-camvid.safetensors" "$out/val-frames" \
    "$out/enet-camvid-pytorch.safetensors" --row-step 8
