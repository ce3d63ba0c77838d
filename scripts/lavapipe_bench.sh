#!/usr/bin/env bash
# The engine with and without fused bottlenecks on this machine's Vulkan (lavapipe on a
# machine without a GPU), the built-in model at 480x360: three alternating runs of each for the
# frame time, one per-dispatch run of each for the table by kind. Prints markdown tables;
# raw JSON goes to OUT_DIR (default: a temporary folder).
#
#   scripts/lavapipe_bench.sh [OUT_DIR] [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
frames=${2:-20}
mkdir -p "$out"
cargo build --release --locked --bin enet >&2
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
for run in 1 2 3; do
  for mode in fused unfused; do
    flag=$([ "$mode" = unfused ] && echo --unfused || true)
    target/release/enet bench --size 480x360 --frames "$frames" --json $flag > "$out/$mode-$run.json"
  done
done
for mode in fused unfused; do
  flag=$([ "$mode" = unfused ] && echo --unfused || true)
  target/release/enet bench --size 480x360 --frames 10 --per-kernel --json $flag > "$out/$mode-per-kernel.json"
done
python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
load = lambda name: json.load(open(os.path.join(out, name)))
first = load("fused-1.json")
print(f"adapter: {first['adapter']}; built-in model ({first['layout']} layout), 480x360\n")
print("| engine | dispatches per frame | GPU ms per frame (median of 3 runs) | wall ms per frame (median of 3 runs) |")
print("|---|---|---|---|")
for mode in ["unfused", "fused"]:
    runs = [load(f"{mode}-{r}.json") for r in (1, 2, 3)]
    gpu = statistics.median(r["gpu_ms_per_frame"] for r in runs)
    wall = statistics.median(r["ms_per_frame"] for r in runs)
    print(f"| {mode} | {runs[0]['dispatches_per_frame']} | {gpu:.1f} | {wall:.1f} |")
print("\nPer kind of dispatch (one frame timed one dispatch at a time; median of 10 frames per dispatch):\n")
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
