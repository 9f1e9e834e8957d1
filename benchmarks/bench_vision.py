"""Detection and segmentation on the default digit scenes: ours against non-deep baselines at the
same wall-clock budget.

Run: ``python benchmarks/bench_vision.py [--budget 600] [--n 3000] [--threads 2]``

Detection (COCO mAP@[.5:.95] and mAP@.5 from pycocotools, and inference time per image at batch 1):

- ``detector``: our CenterNet, default settings, training stopped at ``--budget`` seconds if its
  early stopping has not ended it first;
- sliding window: the project's own CNN classifier (``cnn``, default channels) trained on 24x24
  crops (each object's box, resized, labelled with its class, and as many background crops that
  overlap no object by more than IoU 0.1, labelled "background"), then run over every window of
  16, 20, 24 and 28 pixels at stride 4 of each test scene; windows whose best class is not the
  background are kept with that probability as their score, and greedy non-maximum suppression
  at IoU 0.3 (per class) keeps the local best;
- connected components: the classical pipeline without learning of features, the ink's
  8-connected regions as boxes, each classified by a logistic regression on its 12x12 crop
  (``deepatlas.models.vision.baselines.ComponentDetector``; exact boxes wherever objects do not
  touch, which the default scenes make likely).

Segmentation (mean IoU over the classes present, background included, and pixel accuracy, from
torchmetrics):

- ``segmenter``: our U-Net, default settings, same budget;
- per-pixel logistic regression on the pixel's 9x9 neighbourhood (scikit-learn's
  ``LogisticRegression``, trained on a random 50,000 of the training pixels).

torchvision's detectors and segmenters (``fcos_resnet50_fpn``, ``ssdlite320_mobilenet_v3_large``,
``lraspp_mobilenet_v3_large``) are not run: the only torchvision wheel for this project's CPU torch
2.13.0 (0.28.0, the one PyPI and the local mirror hold; it pins ``torch==2.13.0``) is built against
CUDA torch and fails to import (``RuntimeError: operator torchvision::nms does not exist``; its
``_C.so`` links ``libc10_cuda.so`` and ``libtorch_cuda.so``), and PyTorch's CPU wheel index
(download.pytorch.org) is not reachable from here. Re-checked in a throwaway virtual
environment (issue #19), with the same error.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from deepatlas.data import load_dataset
from deepatlas.data.scenes import boxes_from_masks
from deepatlas.models.vision.baselines import ComponentDetector, neighbourhoods
from deepatlas.models.vision.metrics import coco_map, segmentation_scores
from deepatlas.registry import create_model
from deepatlas.training import Callback

WINDOW = 24
SIDES = (16, 20, 24, 28)
STRIDE = 4


class Budget(Callback):
    """Ends training once ``seconds`` of wall-clock time have passed (checked after each epoch)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_begin(self, loop):
        self.start = time.perf_counter()

    def on_epoch_end(self, loop, epoch, logs):
        if time.perf_counter() - self.start > self.seconds:
            loop.stop_training = True


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


def per_ms(fn, inputs, repeats=1):
    start = time.perf_counter()
    for _ in range(repeats):
        for x in inputs:
            fn(x)
    return 1000 * (time.perf_counter() - start) / (repeats * len(inputs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per method (default 600)")
    parser.add_argument("--n", type=int, default=3000, help="scenes (default 3000, the dataset's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("detection", "segmentation"), default=None)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(f"scenes:n={args.n}")
    rng = np.random.default_rng(0)
    results: dict = {"budget_s": args.budget, "n": args.n, "threads": args.threads}
    test_truth = boxes_from_masks(ds.y_test)
    n_classes = int(ds.y_train[:, 0].max())

    if args.only in (None, "detection"):
        det = create_model("detector", task="scenes", device="cpu", verbose=False)
        t = time.perf_counter()
        det.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[Budget(args.budget)])
        fit_s = time.perf_counter() - t
        s = det.scores(ds.X_test, ds.y_test)
        ms = per_ms(lambda x: det.predict(x[None]), ds.X_test[:50])
        results["detector"] = {**s, "fit_s": fit_s, "epochs": det.n_epochs_, "ms_per_image": ms}
        print("detector", json.dumps(results["detector"]), flush=True)

        Xc, yc, _ = window_crops(ds.X_train, ds.y_train, rng)
        Xv, yv, _ = window_crops(ds.X_val, ds.y_val, rng)
        clf = create_model("cnn", task="classification", device="cpu", verbose=False)
        t = time.perf_counter()
        clf.fit(Xc, yc, validation_data=(Xv, yv), callbacks=[Budget(args.budget)])
        fit_s = time.perf_counter() - t
        dets = [sliding_window_detect(clf, x, n_classes) for x in ds.X_test]
        s = coco_map(test_truth, dets, n_classes)
        ms = per_ms(lambda x: sliding_window_detect(clf, x, n_classes), ds.X_test[:10])
        results["sliding_window"] = {**s, "fit_s": fit_s, "epochs": clf.n_epochs_, "ms_per_image": ms}
        print("sliding window", json.dumps(results["sliding_window"]), flush=True)

        t = time.perf_counter()
        classical = ComponentDetector().fit(ds.X_train, boxes_from_masks(ds.y_train))
        fit_s = time.perf_counter() - t
        s = coco_map(test_truth, classical.predict(ds.X_test), n_classes)
        ms = per_ms(lambda x: classical.predict(x[None]), ds.X_test[:50])
        results["components"] = {**s, "fit_s": fit_s, "ms_per_image": ms}
        print("connected components", json.dumps(results["components"]), flush=True)

    if args.only in (None, "segmentation"):
        seg = create_model("segmenter", task="scenes", device="cpu", verbose=False)
        t = time.perf_counter()
        seg.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), callbacks=[Budget(args.budget)])
        fit_s = time.perf_counter() - t
        s = seg.scores(ds.X_test, ds.y_test)
        results["segmenter"] = {**s, "fit_s": fit_s, "epochs": seg.n_epochs_}
        print(
            "segmenter", json.dumps({k: v for k, v in results["segmenter"].items() if k != "iou_per_class"}), flush=True
        )

        from sklearn.linear_model import LogisticRegression

        F = neighbourhoods(ds.X_train)
        target = ds.y_train[:, 0].ravel()
        pick = rng.choice(len(F), size=min(50_000, len(F)), replace=False)
        lr = LogisticRegression(max_iter=200)
        t = time.perf_counter()
        lr.fit(F[pick], target[pick])
        fit_s = time.perf_counter() - t
        pred = np.concatenate([lr.predict(neighbourhoods(ds.X_test[i : i + 50])) for i in range(0, len(ds.X_test), 50)])
        s = segmentation_scores(pred.reshape(ds.y_test[:, 0].shape), ds.y_test[:, 0], n_classes + 1)
        results["pixel_logistic"] = {**s, "fit_s": fit_s}
        print("pixel logistic", json.dumps({k: v for k, v in s.items() if k != "iou_per_class"}), fit_s, flush=True)

    if args.json:
        from deepatlas._io import write_json

        write_json(args.json, results)


if __name__ == "__main__":
    main()
