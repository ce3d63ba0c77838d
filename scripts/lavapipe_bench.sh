#!/usr/bin/env bash
# The engine one op per dispatch and fused, in f32, and fused in f16, on this machine's Vulkan
# (lavapipe on a machine without a GPU), the built-in model at 480x360: RUNS alternating runs
# of each for the frame time (CPU emulation on shared cores is noisy: the table gives the
# median and the fastest run), one per-dispatch run of the f32 ones for the table by kind.
# Prints markdown tables; raw JSON goes to OUT_DIR (default: a temporary folder).
#
#   scripts/lavapipe_bench.sh [OUT_DIR] [FRAMES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
frames=${2:-5}
runs=${3:-5}
mkdir -p "$out"
cargo build --release --locked --bin enet >&2
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
flags() {
  case $1 in
    unfused) echo --unfused --precision f32 ;;
    fused) echo --precision f32 ;;
    fused-f16) echo --precision f16 ;;
  esac
}
for run in $(seq "$runs"); do
  for mode in unfused fused fused-f16; do
    target/release/enet bench --size 480x360 --frames "$frames" --json $(flags $mode) > "$out/$mode-$run.json"
  done
done
for mode in unfused fused; do
  target/release/enet bench --size 480x360 --frames 5 --per-kernel --json $(flags $mode) > "$out/$mode-per-kernel.json"
done
python3 - "$out" "$runs" <<'PY'
import json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(os.path.join(out, name)))
first = load("fused-1.json")
print(f"adapter: {first['adapter']}; built-in model ({first['layout']} layout), 480x360\n")
print(f"| engine | precision | dispatches per frame | GPU ms per frame, median of {runs} runs (fastest) | wall ms per frame, median (fastest) | GPU memory of the plan |")
print("|---|---|---|---|---|---|")
for mode in ["unfused", "fused", "fused-f16"]:
    rs = [load(f"{mode}-{r}.json") for r in range(1, runs + 1)]
    gpu = [r["gpu_ms_per_frame"] for r in rs]
    wall = [r["ms_per_frame"] for r in rs]
    mib = rs[0]["gpu_memory_bytes"] / 2**20
    print(f"| {mode.split('-')[0]} | {rs[0]['precision']} | {rs[0]['dispatches_per_frame']} | "
          f"{statistics.median(gpu):.0f} ({min(gpu):.0f}) | {statistics.median(wall):.0f} ({min(wall):.0f}) | {mib:.1f} MiB |")
print("\nPer kind of dispatch, f32 (one frame timed one dispatch at a time; median of 5 frames per dispatch):\n")
print("| kind | unfused: dispatches | ms | fused: dispatches | ms |")
print("|---|---|---|---|---|")
kinds = {}
for mode in ["unfused", "fused"]:
    for d in load(f"{mode}-per-kernel.json")["per_kernel_ms"]:
        kind = d["dispatch"].split(" ")[-1].split(":")[-1]
        n, ms = kinds.setdefault(kind, {}).get(mode, (0, 0.0))
        kinds[kind][mode] = (n + 1, ms + d["ms"])
for kind, m in sorted(kinds.items(), key=lambda kv: -max(v[1] for v in kv[1].values())):
    u = m.get("unfused", (0, 0.0))
    f = m.get("fused", (0, 0.0))
    print(f"| {kind} | {u[0]} | {u[1]:.1f} | {f[0]} | {f[1]:.1f} |")
PY
echo "raw results: $out" >&2
