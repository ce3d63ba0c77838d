"""Smoke test of the training code: one tiny training run on the CPU for each layout, the
export, and the exported names and shapes against the engine's own description.

Skips, saying so, when PyTorch is not installed (CI machines without it still run every
engine test against the committed fixtures).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

try:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors import safe_open
except ImportError as e:
    print(f"SKIPPED: training smoke test needs PyTorch, numpy, Pillow and safetensors ({e}); "
          f"pip install -r train/requirements.txt to run it")
    sys.exit(0)

sys.path.insert(0, HERE)
import camvid  # noqa: E402
import train  # noqa: E402


def fake_camvid(root, w=64, h=48):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        os.makedirs(os.path.join(root, split, "images"))
        os.makedirs(os.path.join(root, split, "labels"))
        for i in range(n):
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            lab = rng.integers(0, 12, (h, w), dtype=np.uint8)
            Image.fromarray(img).save(os.path.join(root, split, "images", f"f{i}.png"))
            Image.fromarray(lab).save(os.path.join(root, split, "labels", f"f{i}.png"))


def engine_params(layout):
    """`enet describe --params` of a built binary, or None."""
    for profile in ("release", "debug"):
        exe = os.path.join(ROOT, "target", profile, "enet")
        if os.path.exists(exe):
            out = subprocess.run([exe, "describe", "--layout", layout, "--classes", "12", "--params"],
                                 capture_output=True, text=True, check=True).stdout
            return {m.group(1): json.loads(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\[.*\])$", out, re.M)}
    return None


def main():
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "camvid")
        fake_camvid(data)
        for layout in ("paper", "pytorch-enet"):
            out = os.path.join(tmp, layout)
            exported = os.path.join(tmp, f"{layout}.safetensors")
            summary = train.main(["--data", data, "--out", out, "--layout", layout, "--epochs", "1",
                                  "--batch", "2", "--eval-every", "1", "--export", exported])
            assert summary["epochs"] == 1 and 0.0 <= summary["best_val_miou"] <= 1.0
            log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
            assert log and "val_miou" in log[-1] and np.isfinite(log[-1]["loss"])
            # Resume continues from the saved epoch.
            summary = train.main(["--data", data, "--out", out, "--layout", layout, "--epochs", "2",
                                  "--batch", "2", "--eval-every", "1", "--resume"])
            assert summary["epochs"] == 2
            with safe_open(exported, "pt") as f:
                meta = f.metadata()
                shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            assert meta["format"] == "enet-wgpu" and meta["layout"] == layout
            assert len(json.loads(meta["classes"])) == camvid.NUM_CLASSES
            want = engine_params(layout)
            if want is None:
                print(f"{layout}: exported; no built `enet` binary to compare names with (cargo build first)")
            else:
                assert shapes == want, f"{layout}: exported tensors differ from the engine's description: " \
                    f"{sorted(set(shapes) ^ set(want))[:5]}"
                print(f"{layout}: {len(shapes)} exported tensors match the engine's names and shapes")
    print("training smoke test passed")


if __name__ == "__main__":
    main()
