"""Smoke test of the training code on the CPU: a tiny training run for each layout, the
export, and the exported names and shapes against the engine's own description; for the
paper layout also two configurations side by side, the EMA, the former eager loop and the
bench, resume (the epoch counter and the EMA state survive), export from the checkpoint
alone, and the eager fallback when torch.compile fails.

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


def check_export(path, layout):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    assert meta["format"] == "enet-wgpu" and meta["layout"] == layout
    assert len(json.loads(meta["classes"])) == camvid.NUM_CLASSES
    prov = json.loads(meta["provenance"])
    for key in ("config", "epochs", "chosen_epoch", "weights", "val_miou", "val_per_class_iou", "wall_s",
                "hardware", "epochs_per_min"):
        assert key in prov, f"provenance lacks {key}"
    want = engine_params(layout)
    if want is None:
        print(f"{layout}: exported; no built `enet` binary to compare names with (cargo build first)")
    else:
        assert shapes == want, f"{layout}: exported tensors differ from the engine's description: " \
            f"{sorted(set(shapes) ^ set(want))[:5]}"
        print(f"{layout}: {len(shapes)} exported tensors match the engine's names and shapes")


def load_ckpt(out):
    ck = train.load_checkpoints(out, torch.device("cpu"))
    assert sorted(os.listdir(out)) == sorted(["summary.json"] + [f"ckpt-{n}.pt" for n in ck["runs"]])
    return ck


def test_augment_and_confusion():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 24, generator=g)
    y = torch.randint(0, camvid.NUM_CLASSES, (2, 16, 24), generator=g)
    xa, ya = camvid.augment(x, y, generator=g)
    assert xa.shape == x.shape and ya.shape == y.shape and ya.min() >= 0 and ya.max() <= camvid.VOID
    pred = torch.randint(0, camvid.NUM_CLASSES, (2, 16, 24), generator=g)
    k = y != camvid.VOID
    want = torch.bincount(y[k] * camvid.NUM_CLASSES + pred[k], minlength=camvid.NUM_CLASSES ** 2)
    assert torch.equal(camvid.confusion(pred, y).flatten(), want)
    for kind in camvid.WEIGHTINGS:
        w = camvid.class_weights(y, kind)
        assert w[camvid.VOID] == 0 and (w[:camvid.VOID] > 0).all(), kind


def test_paper(tmp, data):
    out = os.path.join(tmp, "paper")
    exported = os.path.join(tmp, "paper.safetensors")
    common = ["--data", data, "--out", out, "--batch", "2", "--eval-every", "1"]
    # Two configurations side by side (one with label smoothing and OHEM), the bench of the
    # former loop against the new step, and --compile graph (eager on a CPU).
    s = train.main(common + ["--epochs", "1", "--bench-steps", "2", "--config", "a:seed=1",
                             "--config", "b:weighting=enet-sqrt,label_smoothing=0.1,ohem=0.5,ema=0.9",
                             "--export", exported])
    assert s["epochs"] == 1 and 0.0 <= s["best_val_miou"] <= 1.0 and s["weights"] in ("EMA", "raw")
    assert set(s["configs"]) == {"a", "b"} and s["configs"]["b"]["hp"]["ohem"] == 0.5
    assert abs(s["val_miou_f32_recheck"] - s["best_val_miou"]) < 1e-6
    assert "before: former eager loop" in s["bench"]
    check_export(exported, "paper")
    ck = load_ckpt(out)
    assert {r["epoch"] for r in ck["runs"].values()} == {1}
    ema_b, n_b = ck["runs"]["b"]["ema"], ck["runs"]["b"]["ema_n"]
    steps = ck["runs"]["b"]["step"]
    assert n_b == steps == 3, (n_b, steps)
    # The EMA is its own state, not a copy of the weights.
    assert any(not torch.equal(ema_b[k], ck["runs"]["b"]["model"][k]) for k in ema_b)

    # Resume with nothing left to train: every state comes back as it was saved.
    train.main(common + ["--epochs", "1", "--resume"])
    ck2 = load_ckpt(out)
    for k, v in ema_b.items():
        assert torch.equal(v, ck2["runs"]["b"]["ema"][k]), f"EMA {k} changed on a no-op resume"
    assert ck2["runs"]["b"]["ema_n"] == n_b

    # Resume for one more epoch, only the better configuration (--keep 1): the counters
    # continue from the checkpoint, the EMA continues from its saved state.
    s = train.main(common + ["--epochs", "2", "--resume", "--keep", "1"])
    ck3 = load_ckpt(out)
    kept = max(ck2["runs"], key=lambda n: ck2["runs"][n]["best"]["miou"])
    other = ({"a", "b"} - {kept}).pop()
    assert ck3["runs"][kept]["epoch"] == 2 and ck3["runs"][kept]["step"] == 6
    assert ck3["runs"][other]["epoch"] == 1, "--keep 1 trained the other configuration too"
    if ck3["runs"][kept]["ema"] is not None:
        assert ck3["runs"][kept]["ema_n"] == 6
    assert s["calls"] == 2 and s["configs"][kept]["epochs"] == 2

    # A fresh model from the checkpoint alone.
    again = os.path.join(tmp, "paper-again.safetensors")
    s2 = train.main(["--data", data, "--out", out, "--export-only", "--export", again])
    check_export(again, "paper")
    assert s2["config"] == s["config"] and s2["epochs_per_min"] == s["epochs_per_min"] is not None


def test_compile_fallback(tmp, data):
    """A torch.compile that fails (as it may on a machine without a compiler) must not stop
    training: the run continues eagerly and says so."""
    real = torch.compile

    def broken(*args, **kwargs):
        raise RuntimeError("simulated compiler failure")

    torch.compile = broken
    try:
        s = train.main(["--data", data, "--out", os.path.join(tmp, "fallback"), "--epochs", "1", "--batch", "3",
                        "--compile", "inductor", "--ema", "0"])
    finally:
        torch.compile = real
    assert s["compile"] == "eager" and s["epochs"] == 1 and s["weights"] == "raw", s["compile"]


def test_former_loop(tmp, data):
    s = train.main(["--data", data, "--out", os.path.join(tmp, "none"), "--epochs", "1", "--batch", "3",
                    "--compile", "none", "--layout", "pytorch-enet",
                    "--export", os.path.join(tmp, "pytorch-enet.safetensors")])
    assert s["compile"] == "none" and s["epochs"] == 1
    check_export(os.path.join(tmp, "pytorch-enet.safetensors"), "pytorch-enet")


def test_launcher_args():
    a = train.parse_args(["--data", "d", "--out", "o", "--lr", "1e-3"])
    name, hp = train.parse_config("x:batch=8,amp=true,weighting=median,scale-max=1.25", a)
    assert name == "x" and hp["batch"] == 8 and hp["amp"] is True and hp["lr"] == 1e-3
    assert hp["weighting"] == "median" and hp["scale_max"] == 1.25
    for bad in ("x:nope=1", "x:batch", ":batch=2", "x:weighting=heavy"):
        try:
            train.parse_config(bad, a)
        except SystemExit:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    # The shell launcher's own syntax.
    sh = os.path.join(ROOT, "scripts", "gpu_train.sh")
    if os.path.exists(sh):
        subprocess.run(["bash", "-n", sh], check=True)


def main():
    # One thread: beside other busy processes two threads stall each other (seconds per step).
    torch.set_num_threads(1)
    test_augment_and_confusion()
    test_launcher_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "camvid")
        fake_camvid(data)
        test_paper(tmp, data)
        test_former_loop(tmp, data)
        test_compile_fallback(tmp, data)
    print("training smoke test passed")


if __name__ == "__main__":
    main()
