"""CPU timings of peer runtimes on the engine's model: ONNX Runtime (CPU EP) on the files from
scripts/onnx_export.py and PyTorch eager on train/enet.py with the same weights.

    python scripts/peer_bench.py OUT_DIR --threads 1,2 --sizes 480x360,640x360 [--frames 30]

Per size and thread count, after --warmup runs, the median wall time of --frames single-frame
runs on OUT_DIR/enet-WxH.input.bin; one JSON line per measurement on stdout, progress on stderr.
Runs in the venv made by scripts/peer_setup.sh.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_export import ROOT, load_model, parse_sizes  # noqa: E402


def median_ms(fn, warmup, frames):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="folder written by scripts/onnx_export.py")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--sizes", default="480x360,640x360", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--weights", default=os.path.join(ROOT, "assets", "enet-camvid.safetensors"),
                   help="weights for the PyTorch run (those the ONNX files were exported from)")
    a = p.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    torch.set_num_interop_threads(1)  # only intra-op threads vary, as for ONNX Runtime
    model, _ = load_model(a.weights)

    def emit(peer, version, size, t, ms):
        print(json.dumps({"peer": peer, "version": version, "size": size, "threads": t,
                          "ms_per_frame": round(ms, 3), "frames": a.frames}), flush=True)

    for w, h in parse_sizes(a.sizes):
        size = f"{w}x{h}"
        base = os.path.join(a.out_dir, f"enet-{size}")
        x = np.fromfile(base + ".input.bin", dtype="<f4").reshape(1, 3, h, w).astype(np.float32)
        xt = torch.from_numpy(x)
        for t in threads:
            print(f"onnxruntime {size} threads={t} ...", file=sys.stderr, flush=True)
            sess = ort_session(base + ".onnx", t)
            feed = {sess.get_inputs()[0].name: x}
            emit("onnxruntime", ort.__version__, size, t,
                 median_ms(lambda: sess.run(None, feed), a.warmup, a.frames))
            del sess

            print(f"pytorch {size} threads={t} ...", file=sys.stderr, flush=True)
            torch.set_num_threads(t)
            with torch.inference_mode():
                emit("pytorch", torch.__version__, size, t,
                     median_ms(lambda: model(xt), a.warmup, a.frames))


if __name__ == "__main__":
    main()
