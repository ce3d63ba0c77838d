"""PyTorch timings of the same ENet the engine runs (train/enet.py, same weights file):
eager fp32, AMP fp16 and torch.compile(mode="reduce-overhead") (CUDA graphs), batch 1,
CUDA-event timing, median over --frames frames. Prints one JSON object.

    python3 scripts/torch_bench.py WEIGHTS.safetensors --sizes 480x360 640x360 1024x512
"""

import argparse
import json
import os
import sys

import torch
from safetensors import safe_open

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from enet import ENet  # noqa: E402


def time_model(fn, x, frames, warmup=30):
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(frames):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn(x)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weights")
    p.add_argument("--sizes", nargs="+", default=["480x360", "640x360", "1024x512"])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--out", help="also rewrite this JSON file after each measurement, so that a run cut short keeps what it measured")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    with safe_open(a.weights, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    n = len(json.loads(meta["classes"]))
    model = ENet(n, meta["layout"])
    model.load_engine_state_dict(tensors)
    model = model.cuda().eval()
    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "layout": meta["layout"], "sizes": {}}

    def save():
        if a.out:
            tmp = a.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(out, f)
            os.replace(tmp, a.out)

    def amp(t):
        with torch.autocast("cuda", dtype=torch.float16):
            return model(t)

    inputs = {}
    for size in a.sizes:
        w, h = (int(v) for v in size.split("x"))
        inputs[size] = torch.rand(1, 3, h, w, device="cuda")
    # Eager and AMP at every size first: torch.compile takes most of the time, and a run cut
    # short then still has these.
    for size, x in inputs.items():
        out["sizes"][size] = {"eager_fp32_ms": time_model(model, x, a.frames), "amp_fp16_ms": time_model(amp, x, a.frames)}
        save()
    compiled = torch.compile(model, mode="reduce-overhead")
    for size, x in inputs.items():
        out["sizes"][size]["compile_cudagraphs_ms"] = time_model(compiled, x, a.frames)
        save()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
