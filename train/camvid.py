"""CamVid (11 classes + void) loading and GPU-side augmentation."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLASSES = [
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)),
    ("road", (128, 64, 128)), ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)),
    ("sign_symbol", (192, 128, 128)), ("fence", (64, 64, 128)), ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)), ("unlabeled", (0, 0, 0)),
]
VOID = 11
NUM_CLASSES = len(CLASSES)


def load_split(root, split, limit=None):
    """All frames of a split as uint8 tensors: images [N,3,H,W], labels [N,H,W], names."""
    img_dir = os.path.join(root, split, "images")
    lab_dir = os.path.join(root, split, "labels")
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(img_dir) if n.lower().endswith((".jpg", ".png")))
    if limit:
        names = names[:limit]

    def read(n):
        ext = ".jpg" if os.path.exists(os.path.join(img_dir, n + ".jpg")) else ".png"
        image = np.asarray(Image.open(os.path.join(img_dir, n + ext)).convert("RGB"))
        return image, np.asarray(Image.open(os.path.join(lab_dir, n + ".png")))

    # Pillow decodes outside the GIL: threads cut the load to a fraction of a second.
    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
        images, labels = zip(*pool.map(read, names))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(labels).astype(np.int64))
    return x, y, names


def enet_class_weights(labels, c=1.02):
    """The ENet paper's weighting 1 / ln(c + p_class), void weighted 0."""
    counts = torch.bincount(labels.flatten().long(), minlength=NUM_CLASSES).double()
    counts[VOID] = 0
    p = counts / counts.sum()
    w = 1.0 / torch.log(c + p)
    w[VOID] = 0.0
    return w.float()


WEIGHTINGS = ("enet", "enet-sqrt", "median", "none")


def class_weights(labels, kind="enet"):
    """Loss weights per class, void 0. "enet": 1/ln(1.02 + p) (about 13x between the rarest
    and the commonest class on CamVid); "enet-sqrt": its square root, a milder balance that
    costs rare classes fewer false positives; "median": SegNet's median frequency balancing;
    "none": 1 for every real class."""
    if kind == "enet":
        w = enet_class_weights(labels)
    elif kind == "enet-sqrt":
        w = enet_class_weights(labels).sqrt()
    elif kind == "median":
        counts = torch.bincount(labels.flatten().long(), minlength=NUM_CLASSES).double()
        counts[VOID] = 0
        freq = counts / counts.sum()
        real = freq[[c for c in range(NUM_CLASSES) if c != VOID]]
        w = (real[real > 0].median() / freq.clamp(min=1e-12)).float()
    elif kind == "none":
        w = torch.ones(NUM_CLASSES)
    else:
        raise ValueError(f"unknown class weighting {kind!r}; one of {WEIGHTINGS}")
    w[VOID] = 0.0
    return w


def augment(x, y, scale=(0.75, 1.5), flip=True, jitter=0.2, generator=None):
    """Random scale + crop back to the input size, horizontal flip, brightness/contrast jitter.

    x: float [B,3,H,W] in 0..1, y: long [B,H,W]; runs on whatever device they are on. Shapes
    never depend on the data and nothing waits for the device, so a CUDA graph can hold it.
    """
    b, _, h, w = x.shape
    dev = x.device
    s = torch.empty(b, device=dev).uniform_(*scale, generator=generator)
    # Crop centre anywhere the scaled frame still covers the output.
    max_shift = (1 - 1 / s).clamp(min=0)
    tx = (torch.rand(b, device=dev, generator=generator) * 2 - 1) * max_shift
    ty = (torch.rand(b, device=dev, generator=generator) * 2 - 1) * max_shift
    sign = torch.where(torch.rand(b, device=dev, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=dev)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = sign / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # Shift labels by one so that 0 marks "outside the frame", which becomes void.
    y = F.grid_sample((y[:, None] + 1).float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    y = y[:, 0].round().long() - 1
    y = y.masked_fill(y < 0, VOID)
    if jitter > 0:
        bright = 1 + (torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 - 1) * jitter
        contrast = 1 + (torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 - 1) * jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
        x = x.clamp(0, 1)
    return x, y


def confusion(pred, label, n=NUM_CLASSES, void=VOID):
    conf = torch.zeros(n * n + 1, dtype=torch.long, device=pred.device)
    confusion_add(conf, pred, label, n, void)
    return conf[:n * n].view(n, n)


def confusion_add(conf, pred, label, n=NUM_CLASSES, void=VOID):
    """Adds to a flat [n*n + 1] confusion matrix (rows: labels); void pixels land in the last
    bin. No data-dependent shapes: it neither waits for the device nor breaks a CUDA graph."""
    idx = label.flatten().long() * n + pred.flatten().long()
    idx = idx.masked_fill(label.flatten() == void, n * n)
    conf.index_add_(0, idx, torch.ones_like(idx))
    return conf


def miou(conf, void=VOID):
    """Class mIoU over the real classes from one confusion matrix (rows: labels)."""
    conf = conf.double()
    keep = [c for c in range(conf.shape[0]) if c != void]
    tp = conf.diag()
    fp = conf[keep].sum(0) - tp
    fn = conf.sum(1) - tp
    iou = tp / (tp + fp + fn).clamp(min=1)
    return iou[keep].mean().item(), iou[keep].tolist()
