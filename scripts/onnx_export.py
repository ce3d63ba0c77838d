"""Exports an engine weights file to ONNX (one fixed-size file per frame size) for peer benchmarks.

    python scripts/onnx_export.py assets/enet-camvid.safetensors OUT_DIR [--sizes 480x360,640x360]

Writes, per size WxH, into OUT_DIR:
  enet-WxH.onnx         input "input" 1x3xHxW f32 (already normalised), output "logits" 1xCxHxW f32,
                        weights embedded (onnxruntime-web cannot load external data)
  enet-WxH.input.bin    a fixed-seed random normalised input, little-endian f32 NCHW (the first
                        seed whose max-pools have no near-tie under --min-gap, see pick_input)
  enet-WxH.logits.bin   PyTorch's logits for it, little-endian f32 NCHW
and exits non-zero if ONNX Runtime's logits differ from PyTorch's by 1e-3 or more.
Runs in the venv made by scripts/peer_setup.sh.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors import safe_open

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "train"))
from enet import ENet  # noqa: E402

TOLERANCE = 1e-3


def parse_sizes(text):
    """"480x360,640x360" -> [(480, 360), (640, 360)] as (width, height)."""
    out = []
    for s in text.split(","):
        w, h = s.strip().lower().split("x")
        out.append((int(w), int(h)))
    return out


def load_model(weights):
    """ENet with the file's weights (f16 or f32 on disk, f32 in the model), eval mode."""
    with safe_open(weights, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    classes = json.loads(meta["classes"])
    model = ENet(len(classes), meta["layout"])
    # The engine's names are the module's state-dict names minus the BatchNorm batch counters,
    # so a strict load only needs those counters added back.
    state = model.state_dict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            tensors.setdefault(k, v)
    model.load_state_dict(tensors, strict=True)  # raises on missing/unexpected keys or shapes
    model.eval()
    return model, meta


def sample_input(meta, w, h, seed=0):
    """A uniform random image in [0, 1] normalised with the file's mean/std, as the engine does."""
    norm = json.loads(meta["normalization"])
    mean = np.asarray(norm["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, 3, 1, 1)
    img = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
    return ((img - mean) / std).astype(np.float32)


class _Stop(Exception):
    pass


def min_pool_gap(model, x):
    """Smallest gap, over the windows of the max-pools whose indices feed MaxUnpool, between
    the two largest values (scaled by max(1, |largest|)). Runs the model only up to the last
    such pool."""
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d) and m.return_indices]
    gaps = []

    def hook(mod, inp, out):
        t = inp[0]
        n, c, h, w = t.shape
        t = t[..., : h // 2 * 2, : w // 2 * 2]  # 2x2 stride-2 pools drop an odd last row/column
        win = t.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top = win.topk(2, dim=-1).values
        gaps.append(((top[..., 0] - top[..., 1]) / top[..., 0].abs().clamp_min(1.0)).min().item())
        if mod is pools[-1]:
            raise _Stop

    handles = [m.register_forward_hook(hook) for m in pools]
    try:
        with torch.inference_mode():
            model(x)
    except _Stop:
        pass
    finally:
        for hd in handles:
            hd.remove()
    return min(gaps)


def pick_input(model, meta, w, h, min_gap, tries):
    """The first seed whose input has no max-pool near-tie: a window whose top two values are
    within f32 rounding picks a different index in PyTorch and ONNX Runtime (or the engine),
    which moves a whole patch of logits by ~0.1 and would fail any tight comparison."""
    best = (-1.0, 0)
    for seed in range(tries):
        x = torch.from_numpy(sample_input(meta, w, h, seed))
        gap = min_pool_gap(model, x)
        if gap >= min_gap:
            return x, seed, gap
        best = max(best, (gap, seed))
    gap, seed = best
    print(f"warning: no seed in 0..{tries - 1} has a max-pool gap >= {min_gap:g}; "
          f"using seed {seed} (gap {gap:.3g})", file=sys.stderr)
    return torch.from_numpy(sample_input(meta, w, h, seed)), seed, gap


def export_size(model, meta, w, h, out_dir, min_gap, tries):
    name = f"enet-{w}x{h}"
    path = os.path.join(out_dir, f"{name}.onnx")
    x, seed, gap = pick_input(model, meta, w, h, min_gap, tries)
    # Dynamo exporter: the TorchScript one has no max_unpool2d. Fixed shapes keep its
    # output_size plain ints; it is lowered to ScatterND, not MaxUnpool.
    with torch.no_grad():
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18,
                                    input_names=["input"], output_names=["logits"], verbose=False)
    program.save(path, external_data=False)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        onnx.save(proto, path, save_as_external_data=False)

    with torch.inference_mode():
        ref = model(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != ref.shape:
        print(f"{name}: shape mismatch onnxruntime {got.shape} vs pytorch {ref.shape}", file=sys.stderr)
        return False
    diff = float(np.abs(got - ref).max())
    ok = diff < TOLERANCE
    print(f"{name}: wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB), logits {list(ref.shape)}, "
          f"input seed {seed} (smallest max-pool gap {gap:.2g}), "
          f"max |onnxruntime - pytorch| = {diff:.3g} ({'ok' if ok else 'FAIL'}, tolerance {TOLERANCE})")

    x.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{name}.input.bin"))
    ref.astype("<f4").tofile(os.path.join(out_dir, f"{name}.logits.bin"))
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("out_dir")
    p.add_argument("--sizes", default="480x360,640x360", help="comma-separated WIDTHxHEIGHT")
    # ONNX Runtime's activations before the last unpool-feeding pool differ from PyTorch's by
    # up to ~1e-5 (scaled), mostly far less; 2e-6 is met within a few seeds, 1e-5 by none of 1000.
    p.add_argument("--min-gap", type=float, default=2e-6,
                   help="smallest allowed (scaled) gap between a max-pool window's top two values")
    p.add_argument("--seed-tries", type=int, default=200, help="seeds to try for such an input")
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    model, meta = load_model(a.weights)
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
          f"layout {meta['layout']}")
    ok = all([export_size(model, meta, w, h, a.out_dir, a.min_gap, a.seed_tries)
              for w, h in parse_sizes(a.sizes)])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
