"""PyTorch's outputs for an engine weights file on the first val frames, as a test fixture.

Computed on the CPU in fp32 by train/enet.py (either layout, from the file's metadata):

    enet import --layout pytorch-enet ../shared/reference/peer-enet-camvid.safetensors -o peer.safetensors
    python3 scripts/pytorch_fixture.py peer.safetensors ../shared/reference/val-decoded \
        tests/fixtures/peer-enet-pytorch.safetensors --row-step 2

Stored: the logits of the first frame on every `row-step`-th row (to keep the file small)
and the argmax of the first three frames.
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weights")
    p.add_argument("frames_dir")
    p.add_argument("out")
    p.add_argument("--row-step", type=int, default=2)
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
    x = torch.from_numpy(np.stack(frames).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with torch.no_grad():
        logits = model(x)
    save_file(
        {
            "logits_frame0_rows": logits[0, :, ::step, :].contiguous(),
            "argmax": logits.argmax(1).to(torch.uint8).contiguous(),
        },
        out,
        metadata={
            "frames": ",".join(names),
            "row_step": str(step),
            "computed": f"PyTorch {torch.__version__} on CPU, fp32, eval mode, train/enet.py "
                        f"({meta['layout']} layout), input = PNG bytes / 255",
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
