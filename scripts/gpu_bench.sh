#!/usr/bin/env bash
# One call of the GPU machine: the engine on Vulkan and PyTorch on CUDA, same weights, same
# sizes; prints one table with the ratios and writes the raw JSON to OUT_DIR.
#
#   scripts/gpu_bench.sh OUT_DIR [WEIGHTS]
#
# Needs target/release/enet (built here when cargo is at hand; a binary built on Debian 12
# runs on the GPU machines) and, where the machine has no Vulkan loader, the .deb files
# scripts/vulkan_debs.sh puts in .gl/. Takes about 5 minutes on an H200, most of it
# torch.compile.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR [WEIGHTS]}
weights=${2:-tests/fixtures/paper-random.safetensors}
mkdir -p "$out"
if [ ! -x target/release/enet ]; then
  if command -v cargo >/dev/null; then
    cargo build --release --locked --bin enet
  else
    echo "target/release/enet is missing and there is no cargo here: build it with cargo build --release and bring it along" >&2
    exit 1
  fi
fi
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
target/release/enet info > "$out/info.txt"
for size in 480x360 640x360 1024x512; do
  # Default precision: f16 where the GPU has shader-f16.
  target/release/enet bench --weights "$weights" --size "$size" --frames 300 --per-kernel --json > "$out/engine-$size.json"
  target/release/enet bench --weights "$weights" --size "$size" --frames 300 --precision f32 --json > "$out/engine-f32-$size.json"
  # The same network one op per dispatch: what fusing the bottlenecks gains on this GPU.
  target/release/enet bench --weights "$weights" --size "$size" --frames 300 --precision f32 --unfused --json > "$out/engine-unfused-$size.json"
done
python3 scripts/torch_bench.py "$weights" --sizes 480x360 640x360 1024x512 > "$out/torch.json"
python3 - "$out" <<'PY' | tee "$out/table.md"
import json, sys, glob, os
out = sys.argv[1]
torch = json.load(open(os.path.join(out, "torch.json")))
print(f"GPU: {torch['gpu']}, PyTorch {torch['torch']}, layout {torch['layout']}")
print("| size | engine GPU ms (precision) | engine wall ms | dispatches | engine f32 GPU ms | unfused f32 GPU ms (dispatches) | eager fp32 | AMP fp16 | compile+graphs | vs compile |")
print("|---|---|---|---|---|---|---|---|---|---|")
for size, t in torch["sizes"].items():
    e = json.load(open(os.path.join(out, f"engine-{size}.json")))
    f = json.load(open(os.path.join(out, f"engine-f32-{size}.json")))
    u = json.load(open(os.path.join(out, f"engine-unfused-{size}.json")))
    g = e["gpu_ms_per_frame"]
    print(f"| {size} | {g:.3f} ({e['precision']}) | {e['ms_per_frame']:.3f} | {e['dispatches_per_frame']} | "
          f"{f['gpu_ms_per_frame']:.3f} | {u['gpu_ms_per_frame']:.3f} ({u['dispatches_per_frame']}) | "
          f"{t['eager_fp32_ms']:.3f} | {t['amp_fp16_ms']:.3f} | {t['compile_cudagraphs_ms']:.3f} | "
          f"{t['compile_cudagraphs_ms'] / g:.2f}x |")
# Where the time goes at 640x360, by kind of dispatch (each timed in its own pass, which adds
# a little per dispatch).
e = json.load(open(os.path.join(out, "engine-640x360.json")))
kinds = {}
for d in e.get("per_kernel_ms", []):
    kind = d["dispatch"].split(" ")[-1].split(":")[-1]
    n, ms = kinds.get(kind, (0, 0.0))
    kinds[kind] = (n + 1, ms + d["ms"])
print(f"\n640x360, {e['precision']}, per kind of dispatch:\n")
print("| kind | dispatches | GPU ms | us per dispatch |")
print("|---|---|---|---|")
for kind, (n, ms) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
    print(f"| {kind} | {n} | {ms:.3f} | {1000 * ms / n:.1f} |")
PY
