"""Writes a checkpoint from train.py as the engine's weights file (safetensors + metadata).

    python3 train/export.py runs/paper/best.pt assets/enet-camvid.safetensors [--f16]
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
import camvid  # noqa: E402
from enet import ENet  # noqa: E402


def export(checkpoint, out, summary=None, f16=False):
    """checkpoint: a path to a train.py-style checkpoint, or such a dict (model state dict,
    layout, epoch, val_miou, per_class_iou, mean, std)."""
    ck = checkpoint if isinstance(checkpoint, dict) else torch.load(checkpoint, map_location="cpu")
    model = ENet(camvid.NUM_CLASSES, ck["layout"])
    model.load_state_dict(ck["model"])
    tensors = model.engine_state_dict()
    if f16:
        tensors = {k: v.half() for k, v in tensors.items()}
    provenance = dict(summary or {})
    provenance.update({"data": "CamVid train split (367 frames); model chosen on val (101 frames)",
                       "chosen_epoch": ck["epoch"], "val_miou": ck["val_miou"],
                       "val_per_class_iou": ck["per_class_iou"], "dtype": "f16" if f16 else "f32"})
    meta = {
        "format": "enet-wgpu",
        "layout": ck["layout"],
        "classes": json.dumps([{"name": n, "color": list(c)} for n, c in camvid.CLASSES]),
        "void_class": str(camvid.VOID),
        "normalization": json.dumps({"mean": ck["mean"], "std": ck["std"]}),
        "provenance": json.dumps(provenance),
    }
    save_file(tensors, out, metadata=meta)
    print(f"wrote {out} ({len(tensors)} tensors, {'f16' if f16 else 'f32'}, val mIoU {ck['val_miou']:.4f})")


def random_checkpoint(layout, seed, data, path):
    """An untrained model for parity tests: random weights, random BatchNorm affine and
    PReLU slopes, running statistics calibrated on a few real frames so activations stay in
    a realistic range through the whole network."""
    torch.manual_seed(seed)
    model = ENet(camvid.NUM_CLASSES, layout)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = None  # cumulative average over the calibration frames
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.0, 0.5)
    x, _, _ = camvid.load_split(data, "val", limit=4)
    model.train()
    with torch.no_grad():
        model(x.float() / 255)
    torch.save({"model": model.state_dict(), "layout": layout, "epoch": 0, "val_miou": 0.0,
                "per_class_iou": [], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}, path)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", help="a train.py checkpoint (best.pt)")
    p.add_argument("out")
    p.add_argument("--f16", action="store_true", help="store weights as f16 (half the download)")
    p.add_argument("--summary", default=None, help="summary.json of the run, for the provenance")
    p.add_argument("--random", type=int, metavar="SEED", default=None,
                   help="instead of a checkpoint, write an untrained model (parity tests); "
                        "CHECKPOINT is then the CamVid folder used to calibrate BatchNorm")
    p.add_argument("--layout", default="paper", choices=["paper", "pytorch-enet"])
    a = p.parse_args()
    if a.random is not None:
        import tempfile
        tmp = os.path.join(tempfile.mkdtemp(), "random.pt")
        random_checkpoint(a.layout, a.random, a.checkpoint, tmp)
        export(tmp, a.out, {"untrained": f"random weights, seed {a.random}, BatchNorm calibrated on 4 val frames"}, a.f16)
    else:
        summary = json.load(open(a.summary)) if a.summary else None
        export(a.checkpoint, a.out, summary, a.f16)
