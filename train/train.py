"""Trains ENet on CamVid train, chooses the model on val only, exports it for the engine.

    python3 train/train.py --data data/camvid --out runs/paper --minutes 8 \\
        --config a:weighting=enet,seed=2 --config b:weighting=enet-sqrt,seed=3 \\
        --bench-steps 40 --export runs/paper/enet-camvid.safetensors

Several configurations (--config NAME:key=value,..., keys as the per-configuration flags
below without the dashes) train side by side in this one process, each on its own CUDA
stream, sharing one copy of the data on the GPU. On CUDA a whole training step
(augmentation, forward, loss, backward, fused AdamW, EMA update) is one CUDA graph replay and
so is each val evaluation; the host reads the GPU once per epoch. `--compile none` is the
former plain eager loop (a host sync per step), kept to measure against; `--bench-steps N`
times it and the graph step alone on the GPU before training.

Every evaluated epoch of every configuration, raw weights and their EMA (over the whole state
dict, BatchNorm statistics included), competes on val; the best one is exported. The
learning rate warms up, then follows a cosine over --epochs or the --minutes budget,
whichever ends first. --minutes covers the whole process (loading, warm-up, training, the
final evaluation, export). Each configuration's whole state goes to OUT/ckpt-NAME.pt (one
file per configuration keeps each small enough to carry); --resume continues them within a
new budget (a new cosine cycle from --restart-lr x lr, no warm-up).
"""

import argparse
import contextlib
import copy
import glob
import json
import math
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

N = camvid.NUM_CLASSES
EVAL_BATCH = 34  # val in three chunks
WARMUP_STEPS = 3  # eager steps before a capture (cuDNN picks its algorithms there)
# Per-configuration settings: a --config entry may set any of these.
HP_KEYS = ("batch", "lr", "weight_decay", "weighting", "label_smoothing", "ohem", "scale_min",
           "scale_max", "jitter", "ema", "warmup_epochs", "amp", "seed")
MODES = ("graph", "inductor", "eager", "none")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with train/ and val/ (images/, labels/)")
    p.add_argument("--out", required=True, help="folder for the checkpoints and the summary")
    p.add_argument("--layout", default=PAPER, choices=["paper", "pytorch-enet"])
    p.add_argument("--epochs", type=int, default=None,
                   help="most epochs per configuration (default: 1000, unlimited with --minutes)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the whole process")
    p.add_argument("--reserve-s", type=float, default=15.0,
                   help="seconds of the budget kept for the final evaluation, checkpoint and export")
    g = p.add_argument_group("per configuration (defaults for every --config)")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--lr", type=float, default=8e-3)
    g.add_argument("--weight-decay", type=float, default=2e-4, help="AdamW's, on conv weights only")
    g.add_argument("--weighting", default="enet", choices=camvid.WEIGHTINGS)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--ohem", type=float, default=0.0,
                   help="keep only this fraction of the pixels, the hardest (0: all)")
    g.add_argument("--scale-min", type=float, default=0.75, help="random scale range of the augmentation")
    g.add_argument("--scale-max", type=float, default=1.5)
    g.add_argument("--jitter", type=float, default=0.2, help="brightness/contrast jitter")
    g.add_argument("--ema", type=float, default=0.999, help="EMA decay per step (0: no EMA)")
    g.add_argument("--warmup-epochs", type=float, default=3.0)
    g.add_argument("--amp", action="store_true", help="bfloat16 autocast on GPU")
    g.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="a configuration to train; repeat to train several side by side")
    p.add_argument("--eval-every", type=int, default=2, help="epochs between val evaluations")
    p.add_argument("--compile", default="graph", choices=MODES,
                   help="graph: each step one CUDA graph; inductor: torch.compile, then graphs; "
                        "eager: the same step without graphs; none: the former eager loop")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="auto: whichever the bench finds faster (off without a bench)")
    p.add_argument("--bench-steps", type=int, default=0,
                   help="first time this many steps of the former loop and of the graph step")
    p.add_argument("--resume", action="store_true", help="continue OUT/ckpt-*.pt")
    p.add_argument("--restart-lr", type=float, default=0.4, help="on --resume: peak lr factor of the new cycle")
    p.add_argument("--keep", type=int, default=0, help="on --resume: train only the K best configurations")
    p.add_argument("--export-only", action="store_true", help="export the best model of OUT/ckpt-*.pt")
    p.add_argument("--ckpt-every-s", type=float, default=60.0)
    p.add_argument("--limit", type=int, default=None, help="use only N frames per split (smoke tests)")
    p.add_argument("--size", default=None, help="train at WxH instead of the frames' size (smoke tests)")
    p.add_argument("--export", default=None, help="write the best model in the engine's format here")
    p.add_argument("--log", default=None, help="also append the log to this file")
    return p.parse_args(argv)


def parse_config(spec, a):
    """'name:key=value,...' -> (name, hyperparameters), defaults from the flags."""
    name, _, rest = spec.partition(":")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise SystemExit(f"--config {spec!r}: give it a name of letters, digits, - _ .")
    hp = {k: getattr(a, k) for k in HP_KEYS}
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        k = k.strip().replace("-", "_")
        if not eq or k not in hp:
            raise SystemExit(f"--config {spec!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(HP_KEYS)}")
        d = hp[k]
        if isinstance(d, bool):
            hp[k] = v.lower() in ("1", "true", "yes", "on")
        else:
            hp[k] = type(d)(v)
    if hp["weighting"] not in camvid.WEIGHTINGS:
        raise SystemExit(f"--config {spec!r}: weighting is one of {camvid.WEIGHTINGS}")
    return name, hp


class Log:
    def __init__(self, path):
        self.f = open(path, "a") if path else None

    def __call__(self, msg):
        print(msg, flush=True)
        if self.f:
            self.f.write(msg + "\n")
            self.f.flush()


class Data:
    """Both splits as uint8 on the device, and the train split's normalisation."""

    def __init__(self, a, dev, log, mean=None, std=None):
        t = time.time()
        xt, yt, _ = camvid.load_split(a.data, "train", a.limit)
        xv, yv, _ = camvid.load_split(a.data, "val", a.limit)
        xt, xv = xt.to(dev), xv.to(dev)
        yt, yv = yt.to(torch.uint8).to(dev), yv.to(torch.uint8).to(dev)
        if a.size:
            w, h = (int(v) for v in a.size.lower().split("x"))
            xt, xv = (F.interpolate(x.float(), (h, w), mode="bilinear", antialias=True).round().byte()
                      for x in (xt, xv))
            yt, yv = (F.interpolate(y[:, None].float(), (h, w), mode="nearest")[:, 0].byte() for y in (yt, yv))
        if mean is None:
            # Normalisation from the train split; it travels with the exported weights.
            f = xt.float() / 255
            mean, std = f.mean(dim=(0, 2, 3)).tolist(), f.std(dim=(0, 2, 3)).tolist()
            del f
        self.mean_list, self.std_list = list(mean), list(std)
        self.mean = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=dev).view(1, 3, 1, 1)
        self.xt, self.yt, self.xv, self.yv, self.dev, self.layout = xt, yt, xv, yv, dev, a.layout
        log(f"data: {len(xt)} train, {len(xv)} val frames {tuple(xt.shape[2:])} on {dev} in {time.time() - t:.1f} s")


def eval_conf(model, d, amp, channels_last):
    """Val confusion matrix, flat [N*N + 1], left on the device (no host sync)."""
    conf = torch.zeros(N * N + 1, dtype=torch.long, device=d.dev)
    with torch.no_grad(), torch.autocast(d.dev.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
        for i in range(0, len(d.xv), EVAL_BATCH):
            x = (d.xv[i:i + EVAL_BATCH].float() / 255 - d.mean) / d.std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            camvid.confusion_add(conf, model(x).argmax(1), d.yv[i:i + EVAL_BATCH])
    return conf


def miou_of(conf):
    return camvid.miou(conf[:N * N].view(N, N).cpu())


class Run:
    """One configuration: model, EMA, optimizer, its CUDA graphs and its stream."""

    def __init__(self, name, hp, d, mode, channels_last):
        self.name, self.hp, self.d = name, dict(hp), d
        dev = d.dev
        self.cuda = dev.type == "cuda"
        self.mode = mode
        self.amp = bool(hp["amp"]) and self.cuda
        self.cl = channels_last
        self.n = len(d.xt)
        self.batch = max(1, min(hp["batch"], self.n))
        self.spe = max(1, self.n // self.batch)
        torch.manual_seed(hp["seed"])
        self.model = ENet(N, d.layout).to(dev)
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fwd = self.model
        self.ema = None
        if hp["ema"] > 0:
            self.ema = copy.deepcopy(self.model).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.weights = camvid.class_weights(d.yt, hp["weighting"]).to(dev)
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        other = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": other, "weight_decay": 0.0}]
        self.lr_t = None
        if self.cuda and mode != "none":
            # The lr lives on the GPU so that a captured step reads the current one.
            self.lr_t = torch.tensor(hp["lr"], device=dev)
            self.opt = torch.optim.AdamW(groups, lr=self.lr_t, fused=True, capturable=True)
        else:
            self.opt = torch.optim.AdamW(groups, lr=hp["lr"])
        self.loss_sum = torch.zeros((), device=dev)
        self.ema_n = torch.zeros((), device=dev)
        if self.ema is not None:
            pairs = list(zip(self.model.state_dict().values(), self.ema.state_dict().values()))
            self.src_f = [s for s, _ in pairs if s.is_floating_point()]
            self.ema_f = [e for s, e in pairs if s.is_floating_point()]
            self.src_i = [s for s, _ in pairs if not s.is_floating_point()]
            self.ema_i = [e for s, e in pairs if not s.is_floating_point()]
        h, w = d.xt.shape[2:]
        self.static_x = torch.zeros((self.batch, 3, h, w), dtype=torch.uint8, device=dev)
        self.static_y = torch.zeros((self.batch, h, w), dtype=torch.uint8, device=dev)
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(hp["seed"])
        self.stream = torch.cuda.Stream(dev) if self.cuda and mode != "none" else None
        self.graph, self.eval_graphs = None, {}
        self.epoch, self.step, self.start_step = 0, 0, 0
        self.call_epochs, self.resumed, self.train_now = 0, False, True
        self.best, self.history, self.last = None, [], {}
        self.last_lr, self.epm, self.side_by_side = 0.0, None, 0
        self.prev_mode = None  # how the latest call that trained it ran

    # -- state -----------------------------------------------------------------------------
    def variants(self):
        return [("raw", self.model)] + ([("ema", self.ema)] if self.ema is not None else [])

    def state(self):
        opt = self.opt.state_dict()
        for g in opt["param_groups"]:
            g["lr"] = float(g["lr"])
        return {"hp": self.hp, "model": self.model.state_dict(), "opt": opt,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "ema_n": float(self.ema_n), "epoch": self.epoch, "step": self.step,
                "best": self.best, "history": self.history, "epochs_per_min": self.epm,
                "side_by_side": self.side_by_side, "mode": self.how()}

    def how(self):
        """'graph', 'eager', ... plus ' channels-last': how its latest training ran."""
        if not self.call_epochs and self.prev_mode:
            return self.prev_mode
        return self.mode + (" channels-last" if self.cl else "")

    def load(self, s):
        self.model.load_state_dict(s["model"])
        if self.ema is not None and s.get("ema") is not None:
            self.ema.load_state_dict(s["ema"])
            self.ema_n.fill_(s["ema_n"])
        elif self.ema is not None:
            self.ema.load_state_dict(s["model"])
        # Keep this process's optimizer flavour (fused on CUDA) and its lr holder.
        keep = [{k: g[k] for k in ("lr", "fused", "capturable", "foreach")} for g in self.opt.param_groups]
        self.opt.load_state_dict(s["opt"])
        for g, kv in zip(self.opt.param_groups, keep):
            g.update(kv)
        self.epoch, self.step = s["epoch"], s["step"]
        self.best, self.history = s["best"], list(s["history"])
        self.epm, self.side_by_side = s.get("epochs_per_min"), s.get("side_by_side", 0)
        self.prev_mode = s.get("mode")
        if self.best is not None:
            self.best["state"] = {k: v.to(self.d.dev) for k, v in self.best["state"].items()}

    def _snapshot(self):
        opt = {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)} for p, st in self.opt.state.items()}
        return ({k: v.clone() for k, v in self.model.state_dict().items()},
                {k: v.clone() for k, v in self.ema.state_dict().items()} if self.ema is not None else None,
                opt, self.ema_n.clone())

    def _restore(self, snap):
        """Undoes the warm-up steps in place, so captured graphs keep their addresses."""
        model, ema, opt, ema_n = snap
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(model[k])
            if ema is not None:
                for k, v in self.ema.state_dict().items():
                    v.copy_(ema[k])
            for p, st in self.opt.state.items():
                for k, v in st.items():
                    if torch.is_tensor(v):
                        v.copy_(opt[p][k]) if p in opt else v.zero_()  # no state yet: a fresh start
            self.ema_n.copy_(ema_n)
            self.loss_sum.zero_()

    # -- one step --------------------------------------------------------------------------
    def loss(self, out, y):
        hp = self.hp
        if not hp["label_smoothing"] and not hp["ohem"]:
            return F.cross_entropy(out, y, weight=self.weights, ignore_index=camvid.VOID)
        logp = F.log_softmax(out, 1)
        px = -logp.gather(1, y[:, None])[:, 0]
        if hp["label_smoothing"]:
            ls = hp["label_smoothing"]
            px = (1 - ls) * px - ls * logp[:, :camvid.VOID].mean(1)  # spread over the real classes
        w = self.weights[y]  # void: 0
        px = px * w
        if hp["ohem"]:
            k = max(1, int(hp["ohem"] * px.numel()))
            top, idx = px.flatten().topk(k, sorted=False)
            return top.sum() / w.flatten()[idx].sum().clamp(min=1e-6)
        return px.sum() / w.sum().clamp(min=1e-6)

    def _augment(self, x, y, generator=None):
        hp = self.hp
        x, y = camvid.augment(x, y, scale=(hp["scale_min"], hp["scale_max"]), jitter=hp["jitter"],
                              generator=generator)
        x = (x - self.d.mean) / self.d.std
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _train_step(self, eager=True):
        """The whole step from the static batch buffers; capturable (no host syncs)."""
        if eager:
            self.opt.zero_grad(set_to_none=True)
        x, y = self._augment(self.static_x.float() / 255, self.static_y.long())
        with torch.autocast(self.d.dev.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
            out = self.fwd(x)
        loss = self.loss(out.float(), y)
        loss.backward()
        self.opt.step()
        self._ema_update()
        self.loss_sum.add_(loss.detach())

    def _ema_update(self):
        """EMA of every tensor of the state dict (BatchNorm statistics too), on the device."""
        if self.ema is None:
            return
        self.ema_n.add_(1)
        # Short horizon at first so the EMA is not dominated by the random start.
        d = torch.clamp((1 + self.ema_n) / (10 + self.ema_n), max=self.hp["ema"])
        diff = torch._foreach_sub(self.src_f, self.ema_f)
        torch._foreach_mul_(diff, 1 - d)
        torch._foreach_add_(self.ema_f, diff)
        for s, e in zip(self.src_i, self.ema_i):
            e.copy_(s)

    def _old_step(self, lr, idx):
        """The former loop's step: float lr, eager, a host sync for the loss every step."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, y = self._augment(self.d.xt[idx].float() / 255, self.d.yt[idx].long(), generator=self.gen)
        with torch.autocast(self.d.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(x)
        loss = self.loss(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._ema_update()
        return loss.item()

    # -- warm-up and capture ---------------------------------------------------------------
    def prepare(self, log, evals=True):
        """Compiles and/or captures as the mode asks; on any failure, eager with a note."""
        if self.mode not in ("graph", "inductor"):
            return
        snap = self._snapshot()
        try:
            if self.mode == "inductor":
                self.fwd = torch.compile(self.model)
            self._warm_up()
            if self.cuda:
                self._capture()
        except Exception as e:  # noqa: BLE001 - any failure here has the same remedy
            log(f"note: {self.name}: {self.mode} warm-up failed ({type(e).__name__}: {str(e)[:300]}); "
                f"training eagerly instead")
            with contextlib.suppress(Exception):
                torch.cuda.synchronize() if self.cuda else None
            self.mode, self.fwd, self.graph = "eager", self.model, None
        self._restore(snap)
        self.opt.zero_grad(set_to_none=True) if self.graph is None else None
        if self.cuda and self.graph is not None and evals:
            try:
                self._capture_evals()
            except Exception as e:  # noqa: BLE001
                log(f"note: {self.name}: val evaluation runs eagerly ({type(e).__name__}: {str(e)[:200]})")
                self.eval_graphs = {}
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize()
            self.model.train()

    def _warm_up(self):
        side = torch.cuda.Stream(self.d.dev) if self.cuda else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream(self.d.dev))
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            for i in range(WARMUP_STEPS):
                idx = torch.arange(i * self.batch, (i + 1) * self.batch, device=self.d.dev) % self.n
                torch.index_select(self.d.xt, 0, idx, out=self.static_x)
                torch.index_select(self.d.yt, 0, idx, out=self.static_y)
                self._train_step(eager=True)
        if side is not None:
            torch.cuda.current_stream(self.d.dev).wait_stream(side)
            torch.cuda.synchronize()

    def _capture(self):
        self.opt.zero_grad(set_to_none=True)  # backward in the graph allocates the grads
        g = torch.cuda.CUDAGraph()
        # Each graph gets its own RNG state: graphs replayed side by side on several streams
        # would otherwise refill one shared seed/offset under each other.
        gen, own, orig = torch.cuda.default_generators[self.d.dev.index or 0], None, None
        try:
            own = gen.clone_state()
            own.manual_seed(self.hp["seed"])
            orig = gen.graphsafe_get_state()
            gen.graphsafe_set_state(own)
        except (AttributeError, RuntimeError):
            own = None
        try:
            with torch.cuda.graph(g):
                self._train_step(eager=False)
        finally:
            if own is not None:
                gen.graphsafe_set_state(orig)
        torch.cuda.synchronize()
        self.graph, self.rng_state = g, own

    def _capture_evals(self):
        for variant, model in self.variants():
            model.eval()
            side = torch.cuda.Stream(self.d.dev)
            side.wait_stream(torch.cuda.current_stream(self.d.dev))
            with torch.cuda.stream(side):
                eval_conf(model, self.d, self.amp, self.cl)
            torch.cuda.current_stream(self.d.dev).wait_stream(side)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                out = eval_conf(model, self.d, self.amp, self.cl)
            torch.cuda.synchronize()
            self.eval_graphs[variant] = (g, out)
        self.model.train()

    # -- training --------------------------------------------------------------------------
    def lrs(self, now, est, t0, budget_s, total_steps, restart_lr):
        """The learning rate of each step of the next epoch: warm-up, then a cosine over
        whichever ends first, the planned epochs or the time budget."""
        hp, out = self.hp, []
        for i in range(self.spe):
            s = self.step + i
            f_time = (now - t0 + est * i / self.spe) / budget_s if budget_s else 0.0
            f_ep = (s - self.start_step) / max(1, total_steps)
            frac = min(1.0, max(f_time, f_ep))
            warm = 1.0 if self.resumed else min(1.0, (s + 1) / max(1.0, hp["warmup_epochs"] * self.spe))
            peak = hp["lr"] * (restart_lr if self.resumed else 1.0)
            out.append(peak * warm * 0.5 * (1 + math.cos(math.pi * frac)))
        return out

    def run_steps(self, lrs):
        """Queues len(lrs) steps (whole epochs when len(lrs) == spe); waits for nothing,
        except in the former loop."""
        dev, B = self.d.dev, self.batch
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            if self.stream is not None:
                self.stream.wait_stream(torch.cuda.default_stream(dev))
            if self.mode == "none":
                total = 0.0
                for i, lr in enumerate(lrs):
                    k = i % self.spe
                    if k == 0:
                        perm = torch.randperm(self.n, device=dev, generator=self.gen)
                    total += self._old_step(lr, perm[k * B:(k + 1) * B])
                self.loss_sum.fill_(total)
            else:
                if self.lr_t is not None:
                    lr_dev = torch.tensor(lrs, dtype=torch.float32).pin_memory().to(dev, non_blocking=True)
                self.loss_sum.zero_()
                for i, lr in enumerate(lrs):
                    k = i % self.spe
                    if k == 0:
                        perm = torch.randperm(self.n, device=dev, generator=self.gen)
                    idx = perm[k * B:(k + 1) * B]
                    torch.index_select(self.d.xt, 0, idx, out=self.static_x)
                    torch.index_select(self.d.yt, 0, idx, out=self.static_y)
                    if self.lr_t is not None:
                        self.lr_t.copy_(lr_dev[i])
                    else:
                        for g in self.opt.param_groups:
                            g["lr"] = lr
                    if self.graph is not None:
                        self.graph.replay()
                    else:
                        self._train_step(eager=True)
        self.last_lr = lrs[-1]

    def evaluate(self):
        """mIoU of the raw weights and of the EMA; remembers the best on val."""
        confs = {}
        for variant, model in self.variants():
            if variant in self.eval_graphs:
                g, out = self.eval_graphs[variant]
                g.replay()
                confs[variant] = out
            else:
                model.eval()
                confs[variant] = eval_conf(model, self.d, self.amp, self.cl)
                self.model.train()
        res = {v: miou_of(c) for v, c in confs.items()}
        for variant, (m, per) in res.items():
            if self.best is None or m > self.best["miou"]:
                src = self.model if variant == "raw" else self.ema
                self.best = {"miou": m, "per_class": per, "epoch": self.epoch, "variant": variant,
                             "state": {k: v.detach().clone() for k, v in src.state_dict().items()}}
        self.history.append([self.epoch] + [round(res[v][0], 5) for v, _ in self.variants()])
        return {v: m for v, (m, _) in res.items()}


def resolve_mode(requested, dev, log):
    if requested == "graph" and dev.type != "cuda":
        log("note: no CUDA device: --compile graph runs the same step eagerly")
        return "eager"
    return requested


def bench(a, d, hp, mode, log):
    """Times --bench-steps steps of the former loop and of the chosen step, alone on the
    device, on throwaway models. Returns the numbers and whether channels-last won."""
    out = {}

    def timed(label, mode_, cl, hp_):
        r = Run("bench", hp_, d, mode_, cl)
        r.prepare(log, evals=False)
        lr = [hp_["lr"] * 0.1] * a.bench_steps
        r.run_steps(lr[:min(3, a.bench_steps)])  # cuDNN's algorithm search, first allocations
        if d.dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.time()
        r.run_steps(lr)
        if d.dev.type == "cuda":
            torch.cuda.synchronize()
        float(r.loss_sum)
        ms = (time.time() - t) * 1000 / a.bench_steps
        epm = 60000 / (ms * r.spe)
        out[label] = {"ms_per_step": round(ms, 2), "epochs_per_min": round(epm, 1), "mode": r.mode,
                      "channels_last": cl, "batch": r.batch}
        log(f"bench: {label:<28} {ms:8.2f} ms/step  {epm:7.1f} epochs/min  (batch {r.batch}, {r.mode})")
        del r
        if d.dev.type == "cuda":
            torch.cuda.empty_cache()

    timed("before: former eager loop", "none", False, dict(hp, ema=0.0))
    if mode == "none":
        return out, False
    layouts = [False, True] if a.channels_last == "auto" and d.dev.type == "cuda" else [a.channels_last == "on"]
    for cl in layouts:
        timed(f"after: {mode}" + (" channels-last" if cl else ""), mode, cl, hp)
    after = [v for k, v in out.items() if k.startswith("after")]
    best = min(after, key=lambda v: v["ms_per_step"])
    before = out["before: former eager loop"]
    log(f"bench: {before['ms_per_step'] / best['ms_per_step']:.2f}x faster per step "
        f"({before['epochs_per_min']:.0f} -> {best['epochs_per_min']:.0f} epochs/min alone)")
    if d.dev.type == "cuda" and not hp["amp"]:
        # For information only (--amp is a choice of recipe, not of speed alone).
        timed("with --amp (bf16)" + (" channels-last" if best["channels_last"] else ""), mode,
              best["channels_last"], dict(hp, amp=True))
    return out, best["channels_last"]


def save_checkpoints(out, runs, d, extra, train_s):
    """OUT/ckpt-NAME.pt per configuration, each self-contained (about 8 MB)."""
    for i, r in enumerate(runs):
        if r.call_epochs:  # pace of the latest call that trained it
            r.epm = round(60 * r.call_epochs / max(train_s, 1e-9), 1)
        path = os.path.join(out, f"ckpt-{r.name}.pt")
        torch.save(dict(extra, mean=d.mean_list, std=d.std_list, layout=d.layout, name=r.name, order=i,
                        run=r.state()), path + ".tmp")
        os.replace(path + ".tmp", path)


def load_checkpoints(out, dev):
    """All OUT/ckpt-*.pt as one dict (runs by name, in their first order), or None."""
    paths = sorted(glob.glob(os.path.join(out, "ckpt-*.pt")))
    if not paths:
        return None
    cks = sorted((torch.load(p, map_location=dev, weights_only=False) for p in paths), key=lambda c: c["order"])
    if len({(c["layout"], tuple(c["mean"])) for c in cks}) != 1:
        raise SystemExit(f"the checkpoints in {out} come from different runs; keep one run's")
    return {"mean": cks[0]["mean"], "std": cks[0]["std"], "layout": cks[0]["layout"],
            "train_wall_s": max(c["train_wall_s"] for c in cks), "calls": max(c["calls"] for c in cks),
            "runs": {c["name"]: c["run"] for c in cks}}


def hardware(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine() or "CPU"


def verify_f32(state, d):
    """val mIoU of a state dict in plain fp32 (no TF32, no autocast), as the engine runs it."""
    model = ENet(N, d.layout).to(d.dev)
    model.load_state_dict(state)
    model.eval()
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return miou_of(eval_conf(model, d, False, False))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def finish(a, runs, d, dev, log, ck_extra, info):
    """Chooses the best configuration, epoch and weights (raw or EMA) on val, exports it."""
    ranked = sorted((r for r in runs if r.best is not None), key=lambda r: -r.best["miou"])
    if not ranked:
        raise SystemExit("no configuration was evaluated: nothing to export")
    win = ranked[0]
    b = win.best
    try:
        m32 = verify_f32(b["state"], d)[0]
    except Exception as e:  # noqa: BLE001 - the export must not depend on the recheck
        log(f"note: fp32 recheck failed ({type(e).__name__}: {str(e)[:200]})")
        m32 = None
    configs = {}
    for r in runs:
        configs[r.name] = {
            "hp": r.hp, "epochs": r.epoch, "epochs_this_call": r.call_epochs, "mode": r.how(),
            "epochs_per_min": r.epm, "side_by_side": r.side_by_side,
            "best_val_miou": round(r.best["miou"], 5) if r.best else None,
            "best_epoch": r.best["epoch"] if r.best else None,
            "best_variant": r.best["variant"] if r.best else None, "last": r.last}
    summary = {
        "config": win.name, "hp": win.hp, "layout": d.layout, "epochs": win.epoch,
        "chosen_epoch": b["epoch"], "weights": "EMA" if b["variant"] == "ema" else "raw",
        "best_val_miou": b["miou"], "val_miou_f32_recheck": m32,
        "val_per_class_iou": {camvid.CLASSES[i][0]: round(v, 4) for i, v in enumerate(b["per_class"])},
        "epochs_per_min": configs[win.name]["epochs_per_min"], "side_by_side": win.side_by_side,
        "compile": win.how(),
        "wall_s": round(ck_extra["train_wall_s"], 1), "process_wall_s": round(time.time() - info["t0"], 1),
        "calls": ck_extra["calls"], "hardware": hardware(dev), "torch": torch.__version__,
        "seed": win.hp["seed"], "amp": win.amp, "batch": win.batch, "lr": win.hp["lr"],
        "weighting": win.hp["weighting"], "bench": info.get("bench"), "configs": configs,
    }
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log("== configurations (chosen on val):")
    for r in ranked + [r for r in runs if r.best is None]:
        c = configs[r.name]
        log(f"  {r.name:<10} best val mIoU {c['best_val_miou']} at epoch {c['best_epoch']} ({c['best_variant']}); "
            f"{r.epoch} epochs, {c['epochs_per_min']} epochs/min, {c['mode']}")
    log(f"chosen: {win.name}, epoch {b['epoch']}, {summary['weights']} weights, val mIoU {b['miou']:.4f} "
        f"(fp32 recheck {m32 if m32 is None else round(m32, 4)})")
    log("per class: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["val_per_class_iou"].items()))
    if a.export:
        prov = {k: summary[k] for k in ("config", "hp", "layout", "epochs", "weights", "val_miou_f32_recheck",
                                        "epochs_per_min", "side_by_side", "compile", "wall_s",
                                        "calls", "hardware", "torch")}
        prov["others"] = {k: v["best_val_miou"] for k, v in configs.items() if k != win.name}
        if info.get("bench"):
            prov["bench"] = {k: v["epochs_per_min"] for k, v in info["bench"].items()}
        state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in b["state"].items()}
        export({"model": state, "layout": d.layout, "epoch": b["epoch"], "val_miou": b["miou"],
                "per_class_iou": b["per_class"], "mean": d.mean_list, "std": d.std_list}, a.export, prov)
    log(json.dumps({k: v for k, v in summary.items() if k not in ("configs", "bench", "hp")}))
    return summary


def main(argv=None):
    a = parse_args(argv)
    t0 = time.time()
    deadline = t0 + a.minutes * 60 if a.minutes else None
    os.makedirs(a.out, exist_ok=True)
    log = Log(a.log)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    ck = None
    if a.resume or a.export_only:
        ck = load_checkpoints(a.out, dev)
        if ck:
            if ck["layout"] != a.layout:
                log(f"note: the checkpoint is of the {ck['layout']} layout; using that")
                a.layout = ck["layout"]
        elif a.export_only:
            raise SystemExit(f"--export-only: no ckpt-*.pt in {a.out}")
        else:
            log(f"note: --resume but no ckpt-*.pt in {a.out}: starting afresh")
    d = Data(a, dev, log, *((ck["mean"], ck["std"]) if ck else (None, None)))
    mode = resolve_mode(a.compile, dev, log) if not a.export_only else "eager"
    epochs_cap = a.epochs or (10 ** 9 if a.minutes else 1000)

    if ck:
        specs = [(name, s["hp"]) for name, s in ck["runs"].items()]
    else:
        specs = [parse_config(c, a) for c in a.config] or [("main", {k: getattr(a, k) for k in HP_KEYS})]
        if len({n for n, _ in specs}) != len(specs):
            raise SystemExit("--config names must differ")
    info = {"t0": t0, "bench": None}
    cl = a.channels_last == "on"
    if a.bench_steps > 0 and not a.export_only:
        if deadline is None or deadline - time.time() > 120:
            try:
                info["bench"], cl = bench(a, d, specs[0][1], mode, log)
            except Exception as e:  # noqa: BLE001 - a measurement must not cost the training
                log(f"note: bench failed ({type(e).__name__}: {str(e)[:300]}); training without it")
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
        else:
            log("note: bench skipped: under two minutes left")
    runs = []
    for name, hp in specs:
        r = Run(name, hp, d, mode if not a.export_only else "eager", cl)
        if ck:
            r.load(ck["runs"][name])
            r.resumed, r.start_step = True, r.step
        runs.append(r)
    if ck and a.keep > 0:
        order = sorted(runs, key=lambda r: -(r.best["miou"] if r.best else -1))
        for r in order[a.keep:]:
            r.train_now = False
        log(f"resume: training {', '.join(r.name for r in order[:a.keep])}; keeping the others as they are")
    if a.export_only:
        for r in runs:
            r.train_now = False
    prev_wall, calls = (ck.get("train_wall_s", 0.0), ck.get("calls", 0)) if ck else (0.0, 0)
    active = [r for r in runs if r.train_now and r.epoch < epochs_cap]
    for r in active:
        r.prepare(log)
    if active:
        log(f"training {len(active)} configuration(s) side by side: "
            + "; ".join(f"{r.name} ({r.mode}{', channels-last' if r.cl else ''}, batch {r.batch}, "
                        f"{r.spe} steps/epoch, from epoch {r.epoch}) {json.dumps(r.hp)}" for r in active))
    info["side_by_side"] = len(active)
    for r in active:
        r.side_by_side = len(active)

    train_t0 = time.time()
    budget_s = (deadline - a.reserve_s - train_t0) if deadline else None
    if budget_s is not None and budget_s <= 0 and active:
        log("note: no time left to train")
        active = []
    round_s, last_ckpt = [], time.time()
    try:
        while active:
            t = time.time()
            est = max(round_s[-2 * a.eval_every:]) if round_s else 0.0
            for r in active:
                total = (epochs_cap - r.start_step // r.spe) * r.spe
                r.run_steps(r.lrs(t, est, train_t0, budget_s, total, a.restart_lr))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            now = time.time()
            # Would one more epoch, with its evaluation, still fit before the reserve?
            nxt = max(round_s[-2 * a.eval_every:] + [now - t])
            out_of_time = deadline is not None and now + 2.5 * nxt > deadline - a.reserve_s
            for r in active:
                r.epoch += 1
                r.step += r.spe
                r.call_epochs += 1
                rec = {"config": r.name, "epoch": r.epoch, "loss": round(float(r.loss_sum) / r.spe, 5),
                       "lr": round(r.last_lr, 7), "elapsed_s": round(time.time() - t0, 1)}
                if out_of_time or r.epoch >= epochs_cap or r.epoch % a.eval_every == 0:
                    rec.update({f"val_{k}": round(v, 5) for k, v in r.evaluate().items()})
                r.last = rec
                log(json.dumps(rec))
            round_s.append(time.time() - t)
            if time.time() - last_ckpt > a.ckpt_every_s:
                save_checkpoints(a.out, runs, d, {"train_wall_s": prev_wall + time.time() - train_t0,
                                                  "calls": calls + 1, "args": vars(a)}, time.time() - train_t0)
                last_ckpt = time.time()
            active = [r for r in active if r.epoch < epochs_cap]
            if out_of_time:
                log(f"stopping: the {a.minutes} minute budget is nearly spent")
                break
    except KeyboardInterrupt:
        log("interrupted: finishing with the best model so far")
        for r in active:
            if r.best is None:
                r.evaluate()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.time() - train_t0
    info["train_s"] = train_s
    extra = {"train_wall_s": prev_wall + (train_s if info["side_by_side"] else 0.0),
             "calls": calls + (1 if info["side_by_side"] else 0), "args": vars(a)}
    if info["side_by_side"]:
        done = sum(r.call_epochs for r in runs)
        log(f"trained {train_s:.1f} s: " + ", ".join(
            f"{r.name} {r.call_epochs} epochs ({60 * r.call_epochs / max(train_s, 1e-9):.1f}/min)" for r in runs
            if r.call_epochs) + f"; {60 * done / max(train_s, 1e-9):.1f} epochs/min in all")
    if not a.export_only:
        save_checkpoints(a.out, runs, d, extra, train_s)
    summary = finish(a, runs, d, dev, log, extra, info)
    log(f"process wall time {time.time() - t0:.1f} s")
    return summary


if __name__ == "__main__":
    main()
