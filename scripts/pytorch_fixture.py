"""PyTorch's outputs for an engine weights file on the first val frames, as a test fixture.

Computed on the CPU by train/enet.py (either layout, from the file's metadata), in fp32 or,
with --f64, in float64:

    enet import --layout pytorch-enet ../shared/reference/peer-enet-camvid.safetensors -o peer.safetensors
    python3 scripts/pytorch_fixture.py peer.safetensors ../shared/reference/val-decoded \
        tests/fixtures/peer-enet-pytorch.safetensors --row-step 2
    python3 scripts/pytorch_fixture.py assets/enet-camvid.safetensors ../shared/reference/val-decoded \
        tests/fixtures/enet-camvid-pytorch.safetensors --row-step 8 --f64

The input is normalised as the engine does it: (byte / 255 - mean) / std with the mean and
std in the file's metadata. Stored: the logits of the first frame on every `row-step`-th row
(to keep the file small), on the same rows the pixels that a max-pool near-tie decides (see
install_tie_swapper), and the argmax of the first three frames.
"""

import argparse

import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from enet import ENet  # noqa: E402


def install_tie_swapper(model, rel=1e-4):
    """Makes every 2x2 max-pool with indices return, for windows whose two largest values
    differ by more than 0 and at most `rel` of their size (a few f32 steps), the runner-up's
    index. Returns {"count": windows swapped, "modules": the pools' owners}."""
    import torch.nn.functional as F

    found = {"count": 0, "modules": []}

    def pool(x):
        values, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        n, c, h, w = x.shape
        win = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top, pos = win.topk(2, dim=-1)
        gap = top[..., 0] - top[..., 1]
        near = (gap > 0) & (gap <= rel * top[..., 0].abs())
        found["count"] += int(near.sum())
        r = torch.arange(h // 2, device=x.device).view(1, 1, -1, 1)
        col = torch.arange(w // 2, device=x.device).view(1, 1, 1, -1)
        second = pos[..., 1]
        alt = (2 * r + second // 2) * w + 2 * col + second % 2
        return values, torch.where(near, alt, idx)

    class Swapper(torch.nn.Module):
        def forward(self, x):
            return pool(x)

    for m in list(model.modules()):
        if isinstance(getattr(m, "pool", None), torch.nn.MaxPool2d) and m.pool.return_indices:
            found["modules"].append((m, m.pool))
            m.pool = Swapper()
    return found


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weights")
    p.add_argument("frames_dir")
    p.add_argument("out")
    p.add_argument("--row-step", type=int, default=2)
    p.add_argument("--f64", action="store_true",
                   help="compute in float64 (the exact answer for these weights and inputs; the "
                        "engine's f32 is then held to it rather than to another f32 rounding)")
    a = p.parse_args()
    weights, frames_dir, out, step = a.weights, a.frames_dir, a.out, a.row_step
    with safe_open(weights, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    classes = json.loads(meta["classes"])
    model = ENet(len(classes), meta["layout"])
    model.load_engine_state_dict(tensors)
    model.eval()
    names = sorted(n for n in os.listdir(frames_dir) if n.endswith(".png"))[:3]
    frames = [np.asarray(Image.open(os.path.join(frames_dir, n)).convert("RGB")) for n in names]
    # The engine's input: (byte / 255 - mean) / std per channel, with the normalisation the
    # weights file states (PyTorch-ENet checkpoints: mean 0, std 1).
    norm = json.loads(meta.get("normalization", '{"mean": [0, 0, 0], "std": [1, 1, 1]}'))
    mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.from_numpy(np.stack(frames).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    x = ((x - mean) / std).contiguous()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if a.f64:
        model, x = model.double(), x.double()
    with torch.no_grad():
        logits = model(x[:1])
        ties = install_tie_swapper(model)
        swapped = model(x[:1])
        for owner, plain in ties["modules"]:
            owner.pool = plain
        logits = torch.cat([logits, model(x[1:])]).float()
    # Pixels whose logits move when every max-pool window with a near-tie (the top two values
    # closer than a few f32 steps, so that rounding alone decides the index) takes its
    # runner-up instead: there, any f32 implementation may differ from this one.
    moved = (swapped.float() - logits[:1]).abs().amax(1)[0] > 1e-4
    print(f"{ties['count']} max-pool windows with near-ties; they move the logits of "
          f"{int(moved.sum())} pixels of frame 0")
    save_file(
        {
            "logits_frame0_rows": logits[0, :, ::step, :].contiguous(),
            "near_tie_frame0_rows": moved[::step, :].to(torch.uint8).contiguous(),
            "argmax": logits.argmax(1).to(torch.uint8).contiguous(),
        },
        out,
        metadata={
            "frames": ",".join(names),
            "row_step": str(step),
            "computed": f"PyTorch {torch.__version__} on CPU, {'fp64' if a.f64 else 'fp32'}, eval mode, train/enet.py "
                        f"({meta['layout']} layout), input = (PNG bytes / 255 - mean) / std, "
                        f"mean {norm['mean']}, std {norm['std']}",
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
