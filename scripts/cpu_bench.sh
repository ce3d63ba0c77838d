#!/usr/bin/env bash
# The CPU engine against its peers, everything in one run on this machine: the engine natively
# (1 thread and every core) at 480x360 and 640x360; ONNX Runtime and PyTorch on the same model
# (the built-in model exported to ONNX by scripts/onnx_export.py, in a virtual environment
# that scripts/peer_setup.sh makes); and, one thread each in headless Chromium, the page's
# wasm CPU engine against onnxruntime-web's wasm backend on the same ONNX file.
# Prints one markdown table with the ratios (for BENCHMARKS.md); raw JSON lines go to OUT_DIR.
#
#   scripts/cpu_bench.sh [OUT_DIR] [FRAMES]
#
# The engine's figures are a whole frame (RGBA in, resize and normalisation, network, argmax
# out); the peers' are the network alone on a prepared tensor.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
frames=${2:-30}
mkdir -p "$out"
all=$(nproc)
sizes=(480x360 640x360)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

echo "building the CLI and the page" >&2
cargo build --release --locked --bin enet >&2
trunk build --release >&2
scripts/peer_setup.sh >&2
( cd scripts/wasm-bench && npm ci --no-audit --no-fund --silent >&2 )
[ -d tests/browser/node_modules ] || ( cd tests/browser && npm ci --no-audit --no-fund --silent >&2 )
.venv-bench/bin/python scripts/onnx_export.py assets/enet-camvid.safetensors "$out/onnx" --sizes "$(IFS=,; echo "${sizes[*]}")" >&2

results="$out/results.jsonl"
: > "$results"
for size in "${sizes[@]}"; do
  for t in 1 "$all"; do
    echo "engine $size, $t thread(s)" >&2
    target/release/enet bench --backend cpu --cpu-threads "$t" --size "$size" --frames "$frames" --json \
      | python3 -c 'import json,sys; v=json.load(sys.stdin); print(json.dumps({"peer":"enet","version":v["engine"],"size":v["size"],"threads":v["threads"],"ms_per_frame":v["ms_per_frame"]}))' >> "$results"
  done
done
# The GPU engine on whatever GPU this machine has (on one without a GPU driver: lavapipe, the
# emulation the CPU engine replaces), its default configuration.
for size in "${sizes[@]}"; do
  echo "GPU engine $size" >&2
  target/release/enet bench --backend gpu --size "$size" --frames 5 --json \
    | python3 -c 'import json,sys; v=json.load(sys.stdin); print(json.dumps({"peer":"gpu-engine","version":v["adapter"]+", "+v["engine"],"size":v["size"],"threads":0,"ms_per_frame":v["ms_per_frame"]}))' >> "$results" \
    || echo "no GPU engine here" >&2
done
.venv-bench/bin/python scripts/peer_bench.py "$out/onnx" --threads "1,$all" --sizes "$(IFS=,; echo "${sizes[*]}")" --frames "$frames" >> "$results"
node scripts/wasm-bench/chromium.mjs "$out/onnx" --sizes "$(IFS=,; echo "${sizes[*]}")" --frames "$frames" >> "$results"

python3 - "$results" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"CPU: {sys.argv[3]}, {sys.argv[2]} cores; median ms per frame\n")
print("| size | threads | this engine | ONNX Runtime | PyTorch | ONNX Runtime / engine |")
print("|---|---|---|---|---|---|")
get = lambda peer, size, t: next((r["ms_per_frame"] for r in rows if r["peer"] == peer and r["size"] == size and r["threads"] == t), None)
f = lambda v: "n/a" if v is None else f"{v:.1f}"
sizes = sorted({r["size"] for r in rows}, key=lambda s: int(s.split("x")[0]))
for size in sizes:
    for t in sorted({r["threads"] for r in rows if r["peer"] == "enet"}):
        e, o, p = get("enet", size, t), get("onnxruntime", size, t), get("pytorch", size, t)
        ratio = f"{o / e:.2f}x" if e and o else "n/a"
        print(f"| {size} | {t} | {f(e)} | {f(o)} | {f(p)} | {ratio} |")
browser = next((r.get("browser") for r in rows if r.get("browser")), "Chromium")
print(f"\nIn headless {browser} (wasm SIMD, one thread each):\n")
print("| size | this engine (wasm) | onnxruntime-web | onnxruntime-web / engine |")
print("|---|---|---|---|")
for size in sizes:
    e, o = get("enet-wasm", size, 1), get("onnxruntime-web", size, 1)
    ratio = f"{o / e:.2f}x" if e and o else "n/a"
    print(f"| {size} | {f(e)} | {f(o)} | {ratio} |")
for size in sizes:
    g = get("gpu-engine", size, 0)
    e = get("enet", size, int(sys.argv[2]))
    if g and e:
        print(f"\nThe GPU engine at {size} on this machine's GPU: {g:.0f} ms per frame, {g / e:.0f} times the CPU engine's on {sys.argv[2]} threads.")
versions = {r["peer"]: r.get("version") or r.get("describe") for r in rows}
print("\nVersions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
PY
