"""The field's measures, computed by maintained libraries (never by hand here).

- :func:`coco_map`: COCO's detection mAP (Lin et al., 2014) from ``pycocotools``' ``COCOeval``:
  ``map`` is the mean over IoU thresholds .50:.05:.95 and over classes of the interpolated
  101-point average precision, ``map50`` the same at IoU .50 alone.
- :func:`segmentation_scores`: the mean intersection over union over classes (background
  included) and the pixel accuracy, from ``torchmetrics``' multiclass Jaccard index and accuracy.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np


def coco_map(ground_truth, detections, n_classes: int) -> dict[str, float]:
    """COCO mAP of ``detections`` against ``ground_truth``.

    ground_truth : per image ``(boxes (k, 4) [x0, y0, x1, y1], labels (k,))``.
    detections : per image ``(boxes (m, 4), scores (m,), labels (m,))``.
    Returns ``{"map", "map50", "map75"}``; a class with no ground truth anywhere does not count
    (COCOeval's rule), and no ground truth at all gives 0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (boxes, labels) in enumerate(ground_truth):
        images.append({"id": i, "width": 1, "height": 1})
        for b, c in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(labels).reshape(-1)):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": int(c), "bbox": [float(b[0]), float(b[1]), w, h],
                 "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    for i, (boxes, scores, labels) in enumerate(detections):
        for b, s, c in zip(
            np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores).ravel(), np.asarray(labels).ravel()
        ):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            results.append(
                {"image_id": i, "category_id": int(c), "bbox": [float(b[0]), float(b[1]), w, h], "score": float(s)}
            )
    if not annotations:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCO and COCOeval print progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in range(n_classes)]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            return {"map": 0.0, "map50": 0.0, "map75": 0.0}
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(0.0, float(v)) for v in ev.stats[:3]]  # -1 means "no ground truth"
    return {"map": stats[0], "map50": stats[1], "map75": stats[2]}


def segmentation_scores(pred: np.ndarray, target: np.ndarray, n_classes: int) -> dict:
    """``{"miou", "pixel_accuracy", "iou_per_class"}`` for class maps ``(n, H, W)`` of ints in
    ``[0, n_classes)`` (0: background). The mean IoU averages the classes present in ``target``
    or ``pred``; a class absent from both gets ``None`` in ``iou_per_class``."""
    import torch
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_jaccard_index

    p = torch.as_tensor(np.asarray(pred, np.int64))
    t = torch.as_tensor(np.asarray(target, np.int64))
    per_class = multiclass_jaccard_index(p, t, n_classes, average="none", zero_division=float("nan"))
    present = ~torch.isnan(per_class)
    accuracy = multiclass_accuracy(p, t, n_classes, average="micro")
    return {
        "miou": float(per_class[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(accuracy),
        "iou_per_class": [float(v) if ok else None for v, ok in zip(per_class.tolist(), present.tolist())],
    }
