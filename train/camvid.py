"""CamVid (11 classes + void) loading and GPU-side augmentation."""

import os

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
    images, labels = [], []
    for n in names:
        ext = ".jpg" if os.path.exists(os.path.join(img_dir, n + ".jpg")) else ".png"
        images.append(np.asarray(Image.open(os.path.join(img_dir, n + ext)).convert("RGB")))
        labels.append(np.asarray(Image.open(os.path.join(lab_dir, n + ".png"))))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(labels).astype(np.int64))
    return x, y, names


def enet_class_weights(labels, c=1.02):
    """The ENet paper's weighting 1 / ln(c + p_class), void weighted 0."""
    counts = torch.bincount(labels.flatten(), minlength=NUM_CLASSES).double()
    counts[VOID] = 0
    p = counts / counts.sum()
    w = 1.0 / torch.log(c + p)
    w[VOID] = 0.0
    return w.float()


def augment(x, y, scale=(0.75, 1.5), flip=True, jitter=0.2, generator=None):
    """Random scale + crop back to the input size, horizontal flip, brightness/contrast jitter.

    x: float [B,3,H,W] in 0..1, y: long [B,H,W]; runs on whatever device they are on.
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
    y[y < 0] = VOID
    if jitter > 0:
        bright = 1 + (torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 - 1) * jitter
        contrast = 1 + (torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 - 1) * jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
        x = x.clamp(0, 1)
    return x, y


def confusion(pred, label, n=NUM_CLASSES, void=VOID):
    k = label != void
    return torch.bincount(label[k] * n + pred[k], minlength=n * n).view(n, n)


def miou(conf, void=VOID):
    """Class mIoU over the real classes from one confusion matrix (rows: labels)."""
    conf = conf.double()
    keep = [c for c in range(conf.shape[0]) if c != void]
    tp = conf.diag()
    fp = conf[keep].sum(0) - tp
    fn = conf.sum(1) - tp
    iou = tp / (tp + fp + fn).clamp(min=1)
    return iou[keep].mean().item(), iou[keep].tolist()
