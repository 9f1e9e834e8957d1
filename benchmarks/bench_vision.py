"""Detection and segmentation on the default digit scenes: ours against baselines and torchvision's
own detectors and segmenter, each trained under the same CPU-time budget (issue #19, point 4).

Run (each method may run in a process of its own; ``--json`` files merge into one table)::

    python benchmarks/bench_vision.py --budget 600 --past-budget --methods detector --json det.json
    python benchmarks/bench_vision.py --budget 600 --methods ssdlite --json ssd.json
    python benchmarks/bench_vision.py --table det.json ssd.json      # the Markdown table

The budget is CPU time, not wall time: ``time.process_time()`` of the process (every thread),
counted from the first training step, with torch fixed at ``--threads`` (default 1). On a machine
shared by other jobs, wall time measures the others' load; the CPU seconds of a one-thread process
do not depend on it (two or more intra-op threads spin while they wait for a descheduled sibling,
which a loaded machine bills as CPU time). The issue's budget, "under 10 minutes on 2 cores", is
read as 600 CPU seconds at one thread (``--budget 600``): 10 minutes of one core; two threads on a
quiet machine do the same work in about half the wall time. Our networks run their defaults and
stop at the end of the epoch after which another epoch would overrun the budget (the last epoch's
cost is the estimate), or earlier by their own early stopping or last epoch, whichever comes first;
the result records which (``ended_by``). With ``--past-budget`` they train on to their own end and
the state the budget would have returned (early stopping's best weights so far) is scored on the
way, off the clock (``at_budget``). The torchvision loops check the budget after every step. The
scenes are generated before the clock starts. Latency: CPU milliseconds per image at batch 1 (``process_time``, so
load-independent too), over the first 50 test scenes (10 for the sliding window).

Detection (COCO mAP@[.5:.95], mAP@.5 and mAP@.75 from pycocotools, via
``deepatlas.models.vision.metrics.coco_map``, on the test scenes):

- ``detector``: our CenterNet, default settings;
- ``sliding_window``: the project's own CNN classifier (``cnn``, defaults) trained on 24x24 crops
  (each object's box, resized, labelled with its class, and one background crop per object that
  overlaps no object by more than IoU 0.1), then run over every window of 16, 20, 24 and 28 pixels
  at stride 4 of each test scene; windows whose best class is not the background are kept with
  that probability as their score, and greedy non-maximum suppression at IoU 0.3 (per class) keeps
  the local best;
- ``components``: no learnt features: the ink's 8-connected regions as boxes, each classified by
  a logistic regression on its 12x12 crop (``deepatlas.models.vision.baselines.ComponentDetector``;
  not budgeted, it trains in seconds);
- ``ssdlite``: torchvision's ``ssdlite320_mobilenet_v3_large`` (Howard et al. 2019; Liu et al.
  2016), randomly initialised (``weights=None, weights_backbone=None``), 11 outputs (background +
  10 digits), its own transform set to resize the grey scenes (repeated to 3 channels) to
  ``--tv-size`` pixels (default 128: at 64 its first feature map is 4x4), boxes mapped back by its
  own post-processing;
- ``fcos``: torchvision's ``fcos_resnet50_fpn`` (Tian et al. 2019), randomly initialised, the same
  input size (``min_size = max_size = --tv-size``).

Segmentation (mean IoU over the classes present, background included, and pixel accuracy, from
torchmetrics):

- ``segmenter``: our U-Net, default settings; ``fcn``: the same card with ``arch="fcn"`` (the
  ablation without skip connections);
- ``pixel_logistic``: per-pixel logistic regression on the pixel's 9x9 neighbourhood
  (scikit-learn's ``LogisticRegression``, a random 50,000 of the training pixels; not budgeted);
- ``lraspp``: torchvision's ``lraspp_mobilenet_v3_large`` (Howard et al. 2019), randomly
  initialised, 11 classes, the scenes upsampled to ``--tv-size`` and its logits resized back to
  64x64 (bilinear) for the loss and the prediction.

The torchvision models train with Adam (lr ``--tv-lr``, default 1e-3), batch 32, cross-entropy
(LR-ASPP) or their own detection losses, seed 0; they are not tuned beyond that, and neither are
ours (their defaults). torchvision comes from the 0.28.0 wheel unpacked outside the project's
environment and loaded by ``benchmarks/_torchvision_cpu.py`` (why, and the one ``pip`` command:
there); when it is absent the torchvision methods print one line and are skipped. The model
code is torchvision's own; only the detectors' final NMS is a Python fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from deepatlas.data import load_dataset
from deepatlas.data.scenes import boxes_from_masks
from deepatlas.models.vision.baselines import ComponentDetector, neighbourhoods
from deepatlas.models.vision.metrics import coco_map, segmentation_scores
from deepatlas.registry import create_model
from deepatlas.training import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _torchvision_cpu  # noqa: E402

WINDOW = 24
SIDES = (16, 20, 24, 28)
STRIDE = 4
DETECTION = ("detector", "sliding_window", "components", "ssdlite", "fcos")
SEGMENTATION = ("segmenter", "fcn", "pixel_logistic", "lraspp")
TORCHVISION = ("ssdlite", "fcos", "lraspp")


class CPUBudget(Callback):
    """Ends training at the end of the epoch after which one more epoch (as costly as the last)
    would pass ``seconds`` of this process's CPU time.

    With ``snapshot`` (a function of no argument returning scores) it does not end training there:
    it scores, with early stopping's best weights so far (what a run ended there returns), the state
    the budget would have kept, off the clock, and lets the run go on to its own end. Records the
    CPU seconds after each epoch (``epoch_cpu_s``), the epoch of the cut (``cut_epoch``, None when
    the run ended by itself first) and its scores (``at_cut``)."""

    def __init__(self, seconds: float, snapshot=None):
        self.seconds = seconds
        self.snapshot = snapshot
        self.cut_epoch = None
        self.at_cut: dict | None = None
        self.epoch_cpu_s: list[float] = []

    def on_train_begin(self, loop):
        self.start = self.last = time.process_time()

    def on_epoch_end(self, loop, epoch, logs):
        now = time.process_time()
        self.epoch_cpu_s.append(round(now - self.start, 1))
        if self.cut_epoch is None and (now - self.start) + (now - self.last) > self.seconds:
            self.cut_epoch, self.cut_cpu_s = epoch + 1, now - self.start
            if self.snapshot is None:
                loop.stop_training = True
            else:
                self.at_cut = self._score_best(loop, logs)
                self.start += time.process_time() - now  # the scoring is off the clock
                now = time.process_time()
        self.last = now

    def _score_best(self, loop, logs) -> dict:
        """``snapshot()`` with the weights early stopping would restore if training ended now (this
        callback runs before early stopping's own update, so its rule is applied here)."""
        from deepatlas.training.callbacks import EarlyStopping

        stop = next((cb for cb in loop.callbacks if isinstance(cb, EarlyStopping)), None)
        value = None if stop is None else logs.get(stop.monitor)
        improves = value is None or stop.sign * value < stop.best - stop.min_delta
        if improves or stop.best_state is None:
            return self.snapshot()
        current = {k: v.detach().clone() for k, v in loop.module.state_dict().items()}
        loop.module.load_state_dict(stop.best_state)
        try:
            return self.snapshot()
        finally:
            loop.module.load_state_dict(current)


def _resize(patches: np.ndarray, side: int) -> np.ndarray:
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(patches, np.float32))
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False).numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with boxes ``b`` (m, 4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


def window_crops(X, Y, rng):
    """Training crops for the sliding-window classifier: objects (label = class) and background
    windows (label = n_classes)."""
    crops, labels = [], []
    truth = boxes_from_masks(Y)
    n_classes = int(Y[:, 0].max())
    size = X.shape[-1]
    for x, (boxes, cls) in zip(X, truth):
        for b, c in zip(boxes.astype(int), cls):
            crops.append(_resize(x[None, :, b[1] : b[3], b[0] : b[2]], WINDOW)[0])
            labels.append(int(c))
            for _ in range(20):  # one background window per object
                side = int(rng.choice(SIDES))
                x0, y0 = rng.integers(0, size - side + 1, size=2)
                w = np.array([x0, y0, x0 + side, y0 + side], float)
                if len(boxes) == 0 or _iou(w, boxes).max() <= 0.1:
                    crops.append(_resize(x[None, :, y0 : y0 + side, x0 : x0 + side], WINDOW)[0])
                    labels.append(n_classes)
                    break
    return np.stack(crops), np.asarray(labels), n_classes


def nms(boxes, scores, threshold):
    order = np.argsort(-scores)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        order = order[1:][_iou(boxes[i], boxes[order[1:]]) <= threshold] if len(order) > 1 else order[1:]
    return np.asarray(keep, int)


def sliding_window_detect(clf, x, n_classes):
    size = x.shape[-1]
    wins, boxes = [], []
    for side in SIDES:
        for y0 in range(0, size - side + 1, STRIDE):
            for x0 in range(0, size - side + 1, STRIDE):
                wins.append(x[:, y0 : y0 + side, x0 : x0 + side])
                boxes.append([x0, y0, x0 + side, y0 + side])
    by_side = {}
    for w, b in zip(wins, boxes):
        by_side.setdefault(w.shape[-1], []).append((w, b))
    all_boxes, all_scores, all_labels = [], [], []
    for items in by_side.values():
        batch = _resize(np.stack([w for w, _ in items]), WINDOW)
        proba = clf.predict_proba(batch)
        label = proba[:, :n_classes].argmax(1)
        keep = proba.argmax(1) != n_classes
        all_boxes.append(np.asarray([b for _, b in items], float)[keep])
        all_scores.append(proba[keep, label[keep]])
        all_labels.append(label[keep])
    boxes, scores, labels = (np.concatenate(a) for a in (all_boxes, all_scores, all_labels))
    kept = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        kept += list(idx[nms(boxes[idx], scores[idx], 0.3)])
    kept = np.asarray(kept, int)
    order = kept[np.argsort(-scores[kept])][:100]
    return boxes[order], scores[order], labels[order]


def cpu_ms(fn, inputs) -> float:
    """CPU milliseconds per call of ``fn`` over ``inputs`` (after one warm-up call)."""
    fn(inputs[0])
    start = time.process_time()
    for x in inputs:
        fn(x)
    return 1000 * (time.process_time() - start) / len(inputs)


def _batches(n: int, size: int, gen: torch.Generator):
    """Full batches of a fresh permutation (torchvision's batch norms need two or more samples)."""
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + size] for i in range(0, n - size + 1, size)]


def _rgb(X) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(X, np.float32)).expand(-1, 3, -1, -1).contiguous()


def train_torchvision(model, step, n: int, budget: float, lr: float, batch: int = 32) -> dict:
    """Adam over full batches until ``budget`` CPU seconds have passed (checked after each step);
    ``step(idx)`` returns the loss of the samples ``idx``."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    start, steps, epochs = time.process_time(), 0, 0
    while time.process_time() - start < budget:
        for idx in _batches(n, batch, gen):
            loss = step(idx)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            steps += 1
            if steps % 10 == 0:  # progress in the log, for runs stopped before their end
                print(
                    f"  step {steps}: {time.process_time() - start:.0f} CPU s, loss {float(loss.detach()):.3f}",
                    flush=True,
                )
            if time.process_time() - start >= budget:
                break
        epochs += 1
    model.eval()
    return {
        "fit_cpu_s": time.process_time() - start,
        "steps": steps,
        "epochs": epochs,
        "last_loss": float(loss.detach()),
    }


def tv_detector(tv, name: str, n_classes: int, size: int):
    from torchvision.models import detection

    torch.manual_seed(0)
    if name == "ssdlite":
        model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=n_classes + 1)
        model.transform.fixed_size = (size, size)
        model.transform.min_size, model.transform.max_size = (size,), size
    else:
        model = detection.fcos_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=n_classes + 1, min_size=size, max_size=size
        )
    return model


def run_tv_detector(tv, name, ds, n_classes, args) -> dict:
    model = tv_detector(tv, name, n_classes, args.tv_size)
    X = _rgb(ds.X_train)
    targets = [
        {"boxes": torch.as_tensor(b, dtype=torch.float32), "labels": torch.as_tensor(c, dtype=torch.int64) + 1}
        for b, c in boxes_from_masks(ds.y_train)
    ]

    def step(idx):
        losses = model(list(X[idx]), [targets[i] for i in idx.tolist()])
        return sum(losses.values())

    out = train_torchvision(model, step, len(X), args.budget, args.tv_lr)

    @torch.no_grad()
    def detect(images):
        res = model(list(_rgb(images)))
        return [(r["boxes"].numpy(), r["scores"].numpy(), r["labels"].numpy() - 1) for r in res]

    dets = [d for i in range(0, len(ds.X_test), 32) for d in detect(ds.X_test[i : i + 32])]
    s = coco_map(boxes_from_masks(ds.y_test), dets, n_classes)
    ms = cpu_ms(lambda x: detect(x[None]), ds.X_test[:50])
    return {**s, **out, "cpu_ms_per_image": ms, "input_size": args.tv_size}


def run_lraspp(tv, ds, n_classes, args) -> dict:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=n_classes + 1)
    X = _rgb((ds.X_train - 0.5) / 0.5)
    y = torch.as_tensor(ds.y_train[:, 0], dtype=torch.long)
    side = ds.X_train.shape[-1]

    def logits(x):
        if args.tv_size != side:
            x = F.interpolate(x, size=(args.tv_size, args.tv_size), mode="bilinear", align_corners=False)
        out = model(x)["out"]
        if args.tv_size != side:
            out = F.interpolate(out, size=(side, side), mode="bilinear", align_corners=False)
        return out

    out = train_torchvision(model, lambda idx: F.cross_entropy(logits(X[idx]), y[idx]), len(X), args.budget, args.tv_lr)
    Xt = _rgb((ds.X_test - 0.5) / 0.5)

    @torch.no_grad()
    def test_scores():
        pred = torch.cat([logits(Xt[i : i + 64]).argmax(1) for i in range(0, len(Xt), 64)]).numpy()
        return segmentation_scores(pred, ds.y_test[:, 0], n_classes + 1)

    result = {**test_scores(), **out, "input_size": args.tv_size}
    if args.precise_bn:  # after the budget, off its clock: a diagnostic, not the equal-budget row
        precise_bn(model, lambda idx: logits(X[idx]), len(X))
        result["precise_bn"] = {k: v for k, v in test_scores().items() if k != "iou_per_class"}
    return result


@torch.no_grad()
def precise_bn(model, forward, n: int, batch: int = 32) -> None:
    """Re-estimates every batch norm's running mean and variance as the plain average over one pass
    of the training set in training mode (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm":
    running averages with a small momentum, 0.01 in torchvision's MobileNetV3, lag the weights of a
    network that is still changing fast); the weights are unchanged."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for i in range(0, n - batch + 1, batch):
        forward(torch.arange(i, i + batch))
    model.eval()


def fit_ours(model, data, budget: float, snapshot=None) -> dict:
    """Our network with its defaults on ``data`` = ``(X, y, X_val, y_val)`` under ``budget`` CPU
    seconds; records which ended the run: ``"early stopping"``, ``"last epoch"`` (its default epoch
    count done) or ``"budget"``. With ``snapshot`` (scores of the model, see :class:`CPUBudget`)
    the run goes on to its own end and ``at_budget`` holds what the budget gave."""
    past_budget = snapshot is not None
    clock = CPUBudget(budget, snapshot)
    start = time.process_time()
    model.fit(data[0], data[1], validation_data=(data[2], data[3]), callbacks=[clock])
    fit = time.process_time() - start
    max_epochs = getattr(model, "epochs_", None) or model.epochs  # the CNN resolves epochs=None into epochs_
    own_end = "early stopping" if model.n_epochs_ < max_epochs else "last epoch"
    out = {
        "fit_cpu_s": fit,
        "epochs": model.n_epochs_,
        "best_epoch": model.best_epoch_,
        "max_epochs": max_epochs,
        "epoch_cpu_s": clock.epoch_cpu_s,
        "val_loss": [round(h["val_loss"], 5) for h in model.history_ if "val_loss" in h],
    }
    if not past_budget:
        cut = clock.cut_epoch is not None and clock.cut_epoch < max_epochs  # a cut at the last epoch cuts nothing
        return {**out, "ended_by": "budget" if cut else own_end}
    out.update(ended_by=own_end, cut_epoch=clock.cut_epoch)
    if clock.at_cut is not None:
        out["at_budget"] = {**clock.at_cut, "fit_cpu_s": clock.cut_cpu_s, "epochs": clock.cut_epoch}
    return out


def run_method(name: str, ds, args, tv) -> dict | None:
    n_classes = int(ds.y_train[:, 0].max())
    truth = boxes_from_masks(ds.y_test)
    if name == "detector":
        det = create_model("detector", task="scenes", device="cpu", verbose=False)
        test = (lambda: det.scores(ds.X_test, ds.y_test)) if args.past_budget else None
        out = fit_ours(det, (ds.X_train, ds.y_train, ds.X_val, ds.y_val), args.budget, test)
        ms = cpu_ms(lambda x: det.predict(x[None]), ds.X_test[:50])
        return {**det.scores(ds.X_test, ds.y_test), **out, "cpu_ms_per_image": ms}
    if name == "sliding_window":
        rng = np.random.default_rng(0)
        Xc, yc, _ = window_crops(ds.X_train, ds.y_train, rng)
        Xv, yv, _ = window_crops(ds.X_val, ds.y_val, rng)
        clf = create_model("cnn", task="classification", device="cpu", verbose=False)
        out = fit_ours(clf, (Xc, yc, Xv, yv), args.budget)
        dets = [sliding_window_detect(clf, x, n_classes) for x in ds.X_test]
        ms = cpu_ms(lambda x: sliding_window_detect(clf, x, n_classes), ds.X_test[:10])
        return {**coco_map(truth, dets, n_classes), **out, "cpu_ms_per_image": ms}
    if name == "components":
        start = time.process_time()
        classical = ComponentDetector().fit(ds.X_train, boxes_from_masks(ds.y_train))
        fit = time.process_time() - start
        ms = cpu_ms(lambda x: classical.predict(x[None]), ds.X_test[:50])
        return {**coco_map(truth, classical.predict(ds.X_test), n_classes), "fit_cpu_s": fit, "cpu_ms_per_image": ms}
    if name in ("segmenter", "fcn"):
        seg = create_model(
            "segmenter", task="scenes", device="cpu", verbose=False, arch="unet" if name == "segmenter" else "fcn"
        )
        test = (lambda: seg.scores(ds.X_test, ds.y_test)) if args.past_budget else None
        out = fit_ours(seg, (ds.X_train, ds.y_train, ds.X_val, ds.y_val), args.budget, test)
        return {**seg.scores(ds.X_test, ds.y_test), **out}
    if name == "pixel_logistic":
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(0)
        start = time.process_time()
        n, _, h, w = ds.X_train.shape
        pick = rng.choice(n * h * w, size=min(50_000, n * h * w), replace=False)
        img, rest = np.divmod(pick, h * w)
        rows, cols = np.divmod(rest, w)
        r = 4  # the 9x9 neighbourhoods of the picked pixels only (neighbourhoods() of every pixel is 2.8 GB)
        pad = np.pad(ds.X_train, ((0, 0), (0, 0), (r, r), (r, r)))
        win = np.lib.stride_tricks.sliding_window_view(pad, (2 * r + 1, 2 * r + 1), axis=(2, 3))
        features = win[img, :, rows, cols].reshape(len(pick), -1)
        assert np.array_equal(features[:5], neighbourhoods(ds.X_train[img[:5]])[rest[:5] + np.arange(5) * h * w])
        lr = LogisticRegression(max_iter=200).fit(features, ds.y_train[img, 0, rows, cols])
        fit = time.process_time() - start
        pred = np.concatenate([lr.predict(neighbourhoods(ds.X_test[i : i + 50])) for i in range(0, len(ds.X_test), 50)])
        return {
            **segmentation_scores(pred.reshape(ds.y_test[:, 0].shape), ds.y_test[:, 0], n_classes + 1),
            "fit_cpu_s": fit,
        }
    if tv is None:
        return None
    if name == "lraspp":
        return run_lraspp(tv, ds, n_classes, args)
    return run_tv_detector(tv, name, ds, n_classes, args)


def _read(paths) -> dict:
    merged: dict = {}
    for p in paths:
        merged.update(json.loads(Path(p).read_text())["methods"])
    return merged


def _rows(name: str, r: dict) -> list[tuple[str, dict]]:
    """The row at the budget and, for a run that went on past it (``--past-budget``), the row of
    its own end."""
    if "at_budget" not in r:  # never cut, or not budgeted (no epochs), or torchvision's (always cut)
        return [(name, {**r, "ended_by": r.get("ended_by", "budget" if "steps" in r else "not budgeted")})]
    return [(name, {**r, **r["at_budget"], "ended_by": "budget"}), (f"{name}, run on to its own end", r)]


def _epochs(r: dict) -> str:
    if "epochs" not in r:
        return "-"
    return f"{r['epochs']}" + (f" ({r['steps']})" if "steps" in r else "")


def table(results: dict) -> str:
    """Markdown tables of the results (detection, then segmentation); ``ended by`` says whether the
    budget, early stopping or the last default epoch ended the training."""
    lines = [
        "| detection | mAP@[.5:.95] | mAP@.5 | mAP@.75 | fit CPU s | epochs (steps) | ended by | CPU ms / image, batch 1 |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in DETECTION:
        for label, r in _rows(name, results[name]) if name in results else []:
            lines.append(
                f"| {label} | {r['map']:.3f} | {r['map50']:.3f} | {r['map75']:.3f} | {r['fit_cpu_s']:.0f} | "
                f"{_epochs(r)} | {r['ended_by']} | {r['cpu_ms_per_image']:.1f} |"
            )
    lines += [
        "",
        "| segmentation | mIoU | pixel accuracy | fit CPU s | epochs (steps) | ended by |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in SEGMENTATION:
        for label, r in _rows(name, results[name]) if name in results else []:
            lines.append(
                f"| {label} | {r['miou']:.3f} | {r['pixel_accuracy']:.3f} | {r['fit_cpu_s']:.0f} | {_epochs(r)} | "
                f"{r['ended_by']} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="training CPU seconds per method (default 600)")
    parser.add_argument(
        "--methods", nargs="+", choices=DETECTION + SEGMENTATION, default=list(DETECTION + SEGMENTATION)
    )
    parser.add_argument("--n", type=int, default=3000, help="scenes (default 3000, the dataset's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--tv-size", type=int, default=128, help="input side of the torchvision models (default 128)")
    parser.add_argument("--tv-lr", type=float, default=1e-3, help="Adam's learning rate for torchvision (default 1e-3)")
    parser.add_argument("--torchvision", help="folder holding the unpacked torchvision 0.28.0 wheel")
    parser.add_argument(
        "--past-budget",
        action="store_true",
        help="our networks train on to their own end; the state at the budget is scored on the way (at_budget)",
    )
    parser.add_argument(
        "--precise-bn",
        action="store_true",
        help="LR-ASPP also scored after re-estimating its batch-norm statistics on the training set (precise_bn)",
    )
    parser.add_argument("--json", help="write the results here (merged into the file if it exists)")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="print the Markdown table of these result files")
    args = parser.parse_args()
    if args.table:
        print(table(_read(args.table)))
        return
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency: its BLAS gets the same threads

    threadpool_limits(args.threads)
    tv = _torchvision_cpu.load(args.torchvision) if set(args.methods) & set(TORCHVISION) else None
    if tv is not None:
        print(_torchvision_cpu.describe(tv), flush=True)
    ds = load_dataset(f"scenes:n={args.n}")
    path = Path(args.json) if args.json else None
    results = json.loads(path.read_text()) if path and path.exists() else {"methods": {}}
    for name in args.methods:
        load_before = os.getloadavg()[0]
        wall = time.perf_counter()
        r = run_method(name, ds, args, tv)
        if r is None:
            continue
        r.update(
            budget_cpu_s=args.budget, threads=args.threads, n=args.n, wall_s=time.perf_counter() - wall,
            load_average=[round(load_before, 1), round(os.getloadavg()[0], 1)],
        )  # fmt: skip
        results["methods"][name] = r
        print(name, json.dumps({k: v for k, v in r.items() if k != "iou_per_class"}), flush=True)
        if path:
            from deepatlas._io import write_json

            write_json(path, results)


if __name__ == "__main__":
    main()
