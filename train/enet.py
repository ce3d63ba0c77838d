"""ENet in PyTorch, both layouts, with parameter names identical to the engine's.

This is the training-side twin of the engine's model description (`src/model/enet.rs`):
the same blocks in the same order, the same per-layout choices, and a state dict whose
keys are the engine's weight names, so export is a plain save.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

PAPER = "paper"
PYTORCH_ENET = "pytorch-enet"

BN_EPS = {PAPER: 1e-3, PYTORCH_ENET: 1e-5}


class ConvUnit(nn.Module):
    """Convolution (optionally transposed) -> optional BatchNorm -> optional activation.

    act: None, "relu", "prelu" (one slope) or "prelu_c" (one slope per channel).
    """

    def __init__(self, cin, cout, kernel, stride=1, padding=0, dilation=1, bias=False,
                 bn=True, act=None, transposed=False, output_padding=0, eps=1e-5):
        super().__init__()
        kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        self.transposed = transposed
        shape = (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw)
        self.weight = nn.Parameter(torch.empty(shape))
        fan_in = (cout if transposed else cin) * kh * kw
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        if bias:
            bound = 1 / fan_in ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)
        self.stride = stride if isinstance(stride, tuple) else (stride, stride)
        self.padding = padding if isinstance(padding, tuple) else (padding, padding)
        self.dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
        self.output_padding = output_padding
        self.bn = nn.BatchNorm2d(cout, eps=eps) if bn else None
        if act == "prelu":
            self.prelu = nn.PReLU()
        elif act == "prelu_c":
            self.prelu = nn.PReLU(cout)
        self.act = act

    def forward(self, x):
        if self.transposed:
            x = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                   self.output_padding, 1, self.dilation)
        else:
            x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        if self.bn is not None:
            x = self.bn(x)
        if self.act == "relu":
            x = F.relu(x)
        elif self.act in ("prelu", "prelu_c"):
            x = self.prelu(x)
        return x


class Activation(nn.Module):
    """The activation after a residual sum: PReLU (named `out_prelu` by the parent) or ReLU."""

    def __init__(self, kind, channels):
        super().__init__()
        self.kind = kind
        if kind == "prelu":
            self.prelu = nn.PReLU()
        elif kind == "prelu_c":
            self.prelu = nn.PReLU(channels)

    def forward(self, x):
        return F.relu(x) if self.kind == "relu" else self.prelu(x)


class Initial(nn.Module):
    def __init__(self, layout, act):
        super().__init__()
        paper = layout == PAPER
        self.conv = ConvUnit(3, 13, 3, stride=2, padding=1, bias=paper, bn=False)
        self.pool = nn.MaxPool2d(2, 2) if paper else nn.MaxPool2d(3, 2, 1)
        self.bn = nn.BatchNorm2d(16, eps=BN_EPS[layout])
        self.prelu = nn.PReLU(16) if act == "prelu_c" else nn.PReLU()

    def forward(self, x):
        return self.prelu(self.bn(torch.cat((self.conv(x), self.pool(x)), 1)))


def _out_act(block, kind, channels):
    # PReLU parameters live at `<block>.out_prelu.weight`, as in the engine.
    if kind in ("prelu", "prelu_c"):
        block.out_prelu = nn.PReLU(channels) if kind == "prelu_c" else nn.PReLU()
    block.out_kind = kind


def _apply_out(block, x):
    return F.relu(x) if block.out_kind == "relu" else block.out_prelu(x)


class Downsample(nn.Module):
    def __init__(self, layout, act, cin, cout, dropout):
        super().__init__()
        paper = layout == PAPER
        eps = BN_EPS[layout]
        internal = cout // 4 if paper else cin // 4
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.proj = ConvUnit(cin, internal, 2, stride=2, act=act, eps=eps)
        self.conv = ConvUnit(internal, internal, 3, padding=1, bias=paper, act=act, eps=eps)
        self.expand = ConvUnit(internal, cout, 1, act=None if paper else act, eps=eps)
        self.drop = nn.Dropout2d(dropout)
        _out_act(self, act, cout)

    def forward(self, x):
        main, idx = self.pool(x)
        ext = self.drop(self.expand(self.conv(self.proj(x))))
        main = F.pad(main, (0, 0, 0, 0, 0, ext.shape[1] - main.shape[1]))
        return _apply_out(self, main + ext), idx


class Regular(nn.Module):
    def __init__(self, layout, act, ch, kind="regular", dilation=1, dropout=0.0):
        super().__init__()
        paper = layout == PAPER
        eps = BN_EPS[layout]
        internal = ch // 4
        self.proj = ConvUnit(ch, internal, 1, act=act, eps=eps)
        if kind == "asymmetric":
            if paper:
                self.conv1 = ConvUnit(internal, internal, (1, 5), padding=(0, 2), bn=False)
                self.conv2 = ConvUnit(internal, internal, (5, 1), padding=(2, 0), bias=True, act=act, eps=eps)
            else:
                self.conv1 = ConvUnit(internal, internal, (5, 1), padding=(2, 0), act=act, eps=eps)
                self.conv2 = ConvUnit(internal, internal, (1, 5), padding=(0, 2), act=act, eps=eps)
        else:
            self.conv = ConvUnit(internal, internal, 3, padding=dilation, dilation=dilation,
                                 bias=paper, act=act, eps=eps)
        self.asymmetric = kind == "asymmetric"
        self.expand = ConvUnit(internal, ch, 1, act=None if paper else act, eps=eps)
        self.drop = nn.Dropout2d(dropout)
        _out_act(self, act, ch)

    def forward(self, x):
        e = self.proj(x)
        e = self.conv2(self.conv1(e)) if self.asymmetric else self.conv(e)
        return _apply_out(self, x + self.drop(self.expand(e)))


class Upsample(nn.Module):
    def __init__(self, layout, cin, cout, dropout):
        super().__init__()
        paper = layout == PAPER
        eps = BN_EPS[layout]
        internal = cout // 4 if paper else cin // 4
        self.main = ConvUnit(cin, cout, 1, eps=eps)
        self.proj = ConvUnit(cin, internal, 1, act="relu", eps=eps)
        if paper:
            self.tconv = ConvUnit(internal, internal, 3, stride=2, padding=1, bias=True, act="relu",
                                  transposed=True, output_padding=1, eps=eps)
        else:
            self.tconv = ConvUnit(internal, internal, 2, stride=2, act="relu", transposed=True, eps=eps)
        self.expand = ConvUnit(internal, cout, 1, eps=eps)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x, idx, like):
        main = F.max_unpool2d(self.main(x), idx, 2, 2, output_size=like.shape[-2:])
        ext = self.drop(self.expand(self.tconv(self.proj(x))))
        return F.relu(main + ext)


class ENet(nn.Module):
    """ENet; `layout` is "paper" (the authors') or "pytorch-enet" (davidtvs/PyTorch-ENet)."""

    def __init__(self, num_classes, layout=PAPER):
        super().__init__()
        assert layout in BN_EPS, layout
        self.layout = layout
        paper = layout == PAPER
        enc = "prelu_c" if paper else "prelu"
        dec_drop = 0.0 if paper else 0.1
        self.initial = Initial(layout, enc)
        self.bottleneck1_0 = Downsample(layout, enc, 16, 64, 0.01)
        for i in range(1, 5):
            setattr(self, f"bottleneck1_{i}", Regular(layout, enc, 64, dropout=0.01))
        self.bottleneck2_0 = Downsample(layout, enc, 64, 128, 0.1)
        stage = [("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                 ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16)]
        for s in (2, 3):
            for i, (kind, d) in enumerate(stage):
                setattr(self, f"bottleneck{s}_{i + 1}", Regular(layout, enc, 128, kind, d, 0.1))
        self.bottleneck4_0 = Upsample(layout, 128, 64, dec_drop)
        self.bottleneck4_1 = Regular(layout, "relu", 64, dropout=dec_drop)
        self.bottleneck4_2 = Regular(layout, "relu", 64, dropout=dec_drop)
        self.bottleneck5_0 = Upsample(layout, 64, 16, dec_drop)
        self.bottleneck5_1 = Regular(layout, "relu", 16, dropout=dec_drop)
        if paper:
            self.fullconv = ConvUnit(16, num_classes, 2, stride=2, bias=True, bn=False, transposed=True)
        else:
            self.fullconv = ConvUnit(16, num_classes, 3, stride=2, padding=1, bn=False,
                                     transposed=True, output_padding=1)

    def forward(self, x):
        x0 = self.initial(x)
        x, idx1 = self.bottleneck1_0(x0)
        for i in range(1, 5):
            x = getattr(self, f"bottleneck1_{i}")(x)
        x1 = x
        x, idx2 = self.bottleneck2_0(x1)
        for s in (2, 3):
            for i in range(1, 9):
                x = getattr(self, f"bottleneck{s}_{i}")(x)
        x = self.bottleneck4_0(x, idx2, x1)
        x = self.bottleneck4_2(self.bottleneck4_1(x))
        x = self.bottleneck5_0(x, idx1, x0)
        x = self.bottleneck5_1(x)
        return self.fullconv(x)

    def engine_state_dict(self):
        """Tensors under the engine's names: no aliases, no BatchNorm batch counters."""
        return {k: v.detach().float().contiguous() for k, v in self.state_dict().items()
                if not k.endswith("num_batches_tracked")}

    def load_engine_state_dict(self, tensors):
        """Loads tensors named as the engine names them (e.g. an `enet import` result)."""
        own = self.engine_state_dict()
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        if missing or extra:
            raise KeyError(f"missing {missing[:5]}, unexpected {extra[:5]}")
        with torch.no_grad():
            params = dict(self.named_parameters())
            buffers = dict(self.named_buffers())
            for k, v in tensors.items():
                target = params.get(k, buffers.get(k))
                target.copy_(v.reshape(target.shape))
