"""Trains ENet on CamVid train, chooses the model on val, exports it for the engine.

    python3 train/train.py --data ../shared/data/camvid --out runs/paper --minutes 9

Checkpoints (`last.pt`, `best.pt`) and `log.jsonl` go to --out; `--resume` continues from
`last.pt`. Training stops at --epochs or when the --minutes budget would be exceeded.
"""

import argparse
import json
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import camvid  # noqa: E402
from enet import ENet, PAPER  # noqa: E402
from export import export  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with train/ and val/ (images/, labels/)")
    p.add_argument("--out", required=True, help="folder for checkpoints, log and the exported model")
    p.add_argument("--layout", default=PAPER, choices=["paper", "pytorch-enet"])
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget for training")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--eval-every", type=int, default=5, help="epochs between val evaluations")
    p.add_argument("--weighting", default="enet", choices=["enet", "none"])
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on GPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="use only N frames per split (smoke tests)")
    p.add_argument("--size", default=None, help="train at WxH instead of the frames' size (smoke tests)")
    p.add_argument("--export", default=None, help="write the best model in the engine's format here")
    return p.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def evaluate(model, x, y, mean, std, batch, amp):
    model.eval()
    conf = torch.zeros(camvid.NUM_CLASSES, camvid.NUM_CLASSES, dtype=torch.long, device=x.device)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        for i in range(0, len(x), batch):
            xb = (x[i:i + batch].float() / 255 - mean) / std
            pred = model(xb).float().argmax(1)
            conf += camvid.confusion(pred.flatten(), y[i:i + batch].flatten())
    model.train()
    return camvid.miou(conf.cpu())


def main(argv=None):
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    seed_everything(a.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = a.amp and dev.type == "cuda"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t0 = time.time()
    xt, yt, _ = camvid.load_split(a.data, "train", a.limit)
    xv, yv, _ = camvid.load_split(a.data, "val", a.limit)
    if a.size:
        w, h = (int(v) for v in a.size.lower().split("x"))
        xt = F.interpolate(xt.float(), (h, w), mode="bilinear", antialias=True).round().byte()
        xv = F.interpolate(xv.float(), (h, w), mode="bilinear", antialias=True).round().byte()
        yt = F.interpolate(yt[:, None].float(), (h, w), mode="nearest")[:, 0].long()
        yv = F.interpolate(yv[:, None].float(), (h, w), mode="nearest")[:, 0].long()
    # Normalisation from the train split; it travels with the exported weights.
    mean = (xt.float() / 255).mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = (xt.float() / 255).std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    weights = camvid.enet_class_weights(yt) if a.weighting == "enet" else torch.ones(camvid.NUM_CLASSES)
    weights[camvid.VOID] = 0
    xt, yt, xv, yv = xt.to(dev), yt.to(dev), xv.to(dev), yv.to(dev)
    mean, std, weights = mean.to(dev), std.to(dev), weights.to(dev)
    print(f"data: {len(xt)} train, {len(xv)} val frames {tuple(xt.shape[2:])} on {dev} in {time.time() - t0:.1f} s")

    model = ENet(camvid.NUM_CLASSES, a.layout).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    steps_per_epoch = max(1, len(xt) // a.batch)
    start_epoch, best, elapsed_before = 0, -1.0, 0.0
    last_path, best_path = os.path.join(a.out, "last.pt"), os.path.join(a.out, "best.pt")
    if a.resume and os.path.exists(last_path):
        ck = torch.load(last_path, map_location=dev)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_epoch, best, elapsed_before = ck["epoch"], ck["best"], ck["elapsed"]
        print(f"resumed at epoch {start_epoch}, best val mIoU {best:.4f}")
    total_steps = a.epochs * steps_per_epoch
    # One-cycle-like: warm-up then cosine decay over the planned epochs (or the time budget).
    def lr_at(step, frac_time):
        frac = max(step / total_steps, frac_time)
        warm = min(1.0, step / (3 * steps_per_epoch))
        return float(a.lr * warm * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0))))

    log = open(os.path.join(a.out, "log.jsonl"), "a")
    budget = a.minutes * 60 if a.minutes else None
    t_start = time.time() - elapsed_before
    gen = torch.Generator(device=dev)
    gen.manual_seed(a.seed)
    epoch = start_epoch
    epoch_times = []
    for epoch in range(start_epoch, a.epochs):
        te = time.time()
        perm = torch.randperm(len(xt), device=dev, generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            frac_time = (time.time() - t_start) / budget if budget else 0.0
            for g in opt.param_groups:
                g["lr"] = lr_at(step, frac_time)
            idx = perm[i * a.batch:(i + 1) * a.batch]
            xb, yb = camvid.augment(xt[idx].float() / 255, yt[idx], generator=gen)
            xb = (xb - mean) / std
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb, weight=weights, ignore_index=camvid.VOID)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        epoch_times.append(time.time() - te)
        record = {"epoch": epoch + 1, "loss": total / steps_per_epoch, "lr": opt.param_groups[0]["lr"],
                  "elapsed_s": round(time.time() - t_start, 1)}
        elapsed = time.time() - t_start
        out_of_time = budget is not None and elapsed + 2 * np.median(epoch_times[-5:]) > budget
        last_epoch = epoch + 1 == a.epochs or out_of_time
        if (epoch + 1) % a.eval_every == 0 or last_epoch:
            m, per_class = evaluate(model, xv, yv, mean, std, 2 * a.batch, amp)
            record["val_miou"] = m
            if m > best:
                best = m
                torch.save({"model": model.state_dict(), "epoch": epoch + 1, "val_miou": m,
                            "per_class_iou": per_class, "mean": mean.flatten().tolist(),
                            "std": std.flatten().tolist(), "layout": a.layout}, best_path)
        log.write(json.dumps(record) + "\n")
        log.flush()
        print(json.dumps(record), flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1, "best": best,
                    "elapsed": time.time() - t_start}, last_path)
        if out_of_time:
            print(f"stopping: the {a.minutes} minute budget is nearly spent")
            break
    wall = time.time() - t_start
    hardware = torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or "CPU"
    summary = {"epochs": epoch + 1, "wall_s": round(wall, 1), "best_val_miou": best, "hardware": hardware,
               "torch": torch.__version__, "layout": a.layout, "seed": a.seed, "amp": amp,
               "batch": a.batch, "lr": a.lr, "weighting": a.weighting}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    if a.export:
        export(best_path, a.export, summary)
    return summary


if __name__ == "__main__":
    main()
