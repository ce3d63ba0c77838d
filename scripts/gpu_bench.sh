#!/usr/bin/env bash
# One call of the GPU machine: the engine on Vulkan and PyTorch on CUDA, same weights, same
# sizes; prints one table with the ratios and writes the raw JSON to OUT_DIR.
#
#   scripts/gpu_bench.sh OUT_DIR [WEIGHTS]
#   scripts/gpu_bench.sh --prepare    # on a Debian machine with cargo and apt, before taking
#                                     # target/release/enet and .gl/ to a GPU machine
#
# Needs target/release/enet (built here when cargo is at hand; a binary built on Debian 12
# runs on the GPU machines) and, where the machine has no Vulkan loader, the .deb files
# scripts/vulkan_debs.sh puts in .gl/. It keeps to GPU_BENCH_SECONDS (500 by default, for
# a call of 9 minutes): a step that fails or runs out of time is listed in OUT_DIR/failed.txt
# and its cells say "failed", the rest is still measured; the exit status is 1 then.
# A dry run on any Vulkan adapter: GPU_BENCH_SIZES="64x48 96x64 128x96" GPU_BENCH_FRAMES=3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR [WEIGHTS] | --prepare}
if [ "$out" = --prepare ]; then
  cargo build --release --locked --bin enet
  scripts/vulkan_debs.sh
  exit
fi
# The built-in model by default: what the page and the CLI run.
weights=${2:-assets/enet-camvid.safetensors}
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
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
target/release/enet info > "$out/info.txt" || echo "enet info failed: no adapter?" >&2
# Each step has a time limit and a failed step is reported, not fatal, so that one call
# always ends with the table of what did run (the call has 9 minutes).
# Steps are cut to the time left before the deadline (GPU_BENCH_SECONDS, 500 by default).
failed=0
deadline=$((SECONDS + ${GPU_BENCH_SECONDS:-500}))
rm -f "$out/failed.txt"
step() {
  local limit=$1 dest=$2
  shift 2
  local left=$((deadline - SECONDS - 10))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 0 ] || ! timeout "$limit" "$@" > "$dest"; then
    echo "failed or over ${limit}s: $*" | tee -a "$out/failed.txt" >&2
    [ "$dest" != /dev/null ] && rm -f "$dest"
    failed=1
  fi
}
# GPU_BENCH_SIZES and GPU_BENCH_FRAMES make a short dry run on any machine.
read -r -a sizes <<< "${GPU_BENCH_SIZES:-480x360 640x360 1024x512}"
frames=${GPU_BENCH_FRAMES:-300}
for size in "${sizes[@]}"; do
  # Default precision: f16 where the GPU has shader-f16.
  step 90 "$out/engine-$size.json" target/release/enet bench --weights "$weights" --size "$size" --frames "$frames" --per-kernel --json
  step 60 "$out/engine-f32-$size.json" target/release/enet bench --weights "$weights" --size "$size" --frames "$frames" --precision f32 --json
  # Tiles of 32 pixels: twice the workgroups in the 1/8-resolution blocks, more halo each.
  step 60 "$out/engine-t32-$size.json" target/release/enet bench --weights "$weights" --size "$size" --frames "$frames" --tile-pixels 32 --json
  # The same network one op per dispatch: what fusing the bottlenecks gains on this GPU.
  step 60 "$out/engine-unfused-$size.json" target/release/enet bench --weights "$weights" --size "$size" --frames "$frames" --precision f32 --unfused --json
done
# torch.json is rewritten after each measurement: cut short, it keeps what was measured.
step 400 /dev/null python3 scripts/torch_bench.py "$weights" --sizes "${sizes[@]}" --out "$out/torch.json"
python3 - "$out" "${sizes[@]}" <<'PY' | tee "$out/table.md"
import json, sys, os
out, sizes = sys.argv[1], sys.argv[2:]

def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None

def ms(d, key="gpu_ms_per_frame"):
    return f"{d[key]:.3f}" if d and key in d else "failed"

torch = load("torch.json")
if torch:
    print(f"GPU: {torch['gpu']}, PyTorch {torch['torch']}, layout {torch['layout']}")
else:
    print("PyTorch: failed (see failed.txt)")
print("| size | engine GPU ms (precision) | engine wall ms | dispatches | engine f32 GPU ms | 32-pixel tiles GPU ms | unfused f32 GPU ms (dispatches) | eager fp32 | AMP fp16 | compile+graphs | vs compile |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for size in sizes:
    e, f, u = load(f"engine-{size}.json"), load(f"engine-f32-{size}.json"), load(f"engine-unfused-{size}.json")
    t32 = load(f"engine-t32-{size}.json")
    t = torch["sizes"].get(size) if torch else None
    g = f"{e['gpu_ms_per_frame']:.3f} ({e['precision']})" if e else "failed"
    d = e["dispatches_per_frame"] if e else "-"
    ud = f" ({u['dispatches_per_frame']})" if u else ""
    ratio = f"{t['compile_cudagraphs_ms'] / e['gpu_ms_per_frame']:.2f}x" if e and t and "compile_cudagraphs_ms" in t else "-"
    print(f"| {size} | {g} | {ms(e, 'ms_per_frame')} | {d} | {ms(f)} | {ms(t32)} | {ms(u)}{ud} | "
          f"{ms(t, 'eager_fp32_ms')} | {ms(t, 'amp_fp16_ms')} | {ms(t, 'compile_cudagraphs_ms')} | {ratio} |")
# Where the time goes at the second size (640x360), by kind of dispatch (each timed in its own pass, which adds
# a little per dispatch).
e = load(f"engine-{sizes[min(1, len(sizes) - 1)]}.json") or {"precision": "failed"}
kinds = {}
for d in e.get("per_kernel_ms", []):
    kind = d["dispatch"].split(" ")[-1].split(":")[-1]
    n, total = kinds.get(kind, (0, 0.0))
    kinds[kind] = (n + 1, total + d["ms"])
print(f"\n{sizes[min(1, len(sizes) - 1)]}, {e['precision']}, per kind of dispatch:\n")
print("| kind | dispatches | GPU ms | us per dispatch |")
print("|---|---|---|---|")
for kind, (n, total) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
    print(f"| {kind} | {n} | {total:.3f} | {1000 * total / n:.1f} |")
PY
exit "$failed"
