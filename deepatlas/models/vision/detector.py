"""Object detection: boxes, classes and scores for every object in an image.

A one-stage, anchor-free CenterNet ("Objects as Points", Zhou, Wang & Krähenbühl, 2019): a U-Net
body (:mod:`deepatlas.models.vision.nets`) gives stride-4 features; one head predicts a heatmap
per class whose peaks are the objects' centres, another the box's width and height (log scale)
and the centre's offset within its cell. Why CenterNet rather than FCOS or anchors: an object is
one peak, so decoding is a 3x3 max pool and a top-k, with no anchor boxes to tune to the objects'
sizes and no non-maximum suppression; the whole network is one fixed graph that exports as it is
(decoding stays outside it). The heatmap targets are Gaussians shaped like the box (as TTFNet,
Liu et al., 2020, does), trained with CenterNet's penalty-reduced focal loss (after Lin et al.,
2017); the box terms are L1 losses at the centres.

``predict`` gives one :class:`Detections` per image (boxes ``[x0, y0, x1, y1]`` in pixels, scores,
class labels); ``score`` is COCO's mAP@[.5:.95] from ``pycocotools``; a run's ``metrics.json``
holds ``test_map`` and ``test_map50``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._params import SPACE_BATCH, SPACE_LR
from deepatlas._validation import Interval
from deepatlas.data.scenes import boxes_from_masks
from deepatlas.errors import InputError
from deepatlas.export.adapters import ChannelStandardize
from deepatlas.export.protocol import ExportSpec
from deepatlas.models.base import FitData
from deepatlas.models.vision.base import VisionEstimator
from deepatlas.models.vision.metrics import coco_map
from deepatlas.models.vision.nets import CenterNetHead
from deepatlas.registry import register_model

OUT_LEVEL = 2  # the heads read stride-4 features
STRIDE = 2**OUT_LEVEL
SHAPE_SPREAD = 0.54  # TTFNet's alpha: the Gaussian's sigma is alpha * side / 6


@dataclass(eq=False)
class Detections:
    """The objects found in one image: ``boxes`` ``(k, 4)`` ``[x0, y0, x1, y1]`` in pixels,
    ``scores`` ``(k,)`` in [0, 1], ``labels`` ``(k,)`` class indices, by decreasing score."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __eq__(self, other) -> bool:
        return isinstance(other, Detections) and all(
            np.array_equal(getattr(self, k), getattr(other, k)) for k in ("boxes", "scores", "labels")
        )

    def __len__(self) -> int:
        return len(self.scores)

    def as_dict(self, class_names=None) -> dict:
        out = {"boxes": self.boxes.tolist(), "scores": self.scores.tolist(), "labels": self.labels.tolist()}
        if class_names is not None:
            out["names"] = [str(class_names[int(c)]) if 0 <= c < len(class_names) else str(c) for c in self.labels]
        return out


def heatmap_targets(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """The training targets ``(n, K + 5, H/4, W/4)``: K class heatmaps (1 at each centre cell), log
    width and height (in cells), the centre's offset in its cell, and a centre indicator."""
    n, _, H, W = targets.shape
    h, w = H // STRIDE, W // STRIDE
    out = np.zeros((n, n_classes + 5, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for i, (boxes, labels) in enumerate(boxes_from_masks(targets)):
        for (x0, y0, x1, y1), c in zip(boxes / STRIDE, labels):
            cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
            px, py = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(SHAPE_SPREAD * bw / 6, 0.3), max(SHAPE_SPREAD * bh / 6, 0.3)
            g = np.exp(-((xs - px) ** 2) / (2 * sx**2) - ((ys - py) ** 2) / (2 * sy**2))
            out[i, c] = np.maximum(out[i, c], g)
            out[i, c, py, px] = 1.0
            out[i, n_classes:, py, px] = (np.log(bw), np.log(bh), cx - px, cy - py, 1.0)
    return out


def centernet_loss(output: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Penalty-reduced focal loss on the heatmaps (CenterNet's, alpha 2, beta 4) plus L1 on size
    and offset at the centres, each divided by the number of objects."""
    output = output.float()
    logits, gt = output[:, :n_classes], target[:, :n_classes]
    pos = (gt == 1).float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    focal = -(pos * (1 - p) ** 2 * log_p + (1 - pos) * (1 - gt) ** 4 * p**2 * log_not_p).sum()
    centres = target[:, -1:]
    n = centres.sum().clamp(min=1.0)
    box = (F.l1_loss(output[:, n_classes:], target[:, n_classes:-1], reduction="none") * centres).sum()
    return (focal + box) / n


def decode(heat: torch.Tensor, box: torch.Tensor, max_detections: int, threshold: float, size) -> list[Detections]:
    """Peaks of the heatmaps ``(B, K, h, w)`` (a cell that is the maximum of its 3x3 neighbourhood)
    -> the ``max_detections`` best boxes per image scoring at least ``threshold``."""
    B, K, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    k = min(max_detections, K * h * w)
    scores, idx = peaks.view(B, -1).topk(k, dim=1)
    labels, cell = idx // (h * w), idx % (h * w)
    py, px = (cell // w).float(), (cell % w).float()
    flat = box.reshape(B, 4, h * w)
    g = flat.gather(2, cell[:, None, :].expand(B, 4, k))  # (B, 4, k)
    bw, bh = torch.exp(g[:, 0]) * STRIDE, torch.exp(g[:, 1]) * STRIDE
    cx, cy = (px + g[:, 2]) * STRIDE, (py + g[:, 3]) * STRIDE
    H, W = size
    boxes = torch.stack(
        [(cx - bw / 2).clamp(0, W), (cy - bh / 2).clamp(0, H), (cx + bw / 2).clamp(0, W), (cy + bh / 2).clamp(0, H)],
        dim=2,
    )
    out = []
    for b in range(B):
        keep = scores[b] >= threshold
        out.append(
            Detections(
                boxes[b][keep].numpy().astype(np.float32),
                scores[b][keep].numpy().astype(np.float32),
                labels[b][keep].numpy().astype(np.int64),
            )
        )
    return out


class DetectorModule(nn.Module):
    """Raw images -> (heatmap probabilities (B, K, h, w), box map (B, 4, h, w)); decoding (peaks,
    top-k) stays outside the graph (:func:`decode`)."""

    def __init__(self, net: nn.Module, mean, scale, n_classes: int):
        super().__init__()
        self.standardize = ChannelStandardize(mean, scale, spatial=2)
        self.net = net
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor):
        out = self.net(self.standardize(x))
        return torch.sigmoid(out[:, : self.n_classes]), out[:, self.n_classes :]


@register_model(
    "detector",
    task="scenes",
    description="object detection: anchor-free one-stage CenterNet on a U-Net body (boxes, scores, labels)",
    smoke={
        "data": "scenes:n=60,size=32",
        "params": {"channels": (4, 8, 8), "head_channels": 4, "epochs": 2, "batch_size": 16},
    },
    tuning_space={"lr": SPACE_LR, "batch_size": SPACE_BATCH},
)
@dataclass(eq=False, repr=False, kw_only=True)
class Detector(VisionEstimator):
    """CenterNet detector of images ``(n, C, H, W)``, trained on ``scenes`` masks (boxes follow)."""

    head_channels: int = 64
    """Channels of the 3x3 convolution in each head (heatmaps; box size and offset)."""
    max_detections: int = 100
    """Most boxes kept per image (COCO's evaluation reads up to 100)."""
    score_threshold: float = 0.05
    """Boxes scoring below it are dropped in ``predict``."""
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 8

    _parameter_constraints: ClassVar[dict] = {
        "head_channels": Interval(int, 1, None),
        "max_detections": Interval(int, 1, None),
        "score_threshold": Interval(float, 0, 1, "both"),
    }

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        X, y, X_val, y_val = self._prepare_images(X, y, validation_data)
        if self._multiple < STRIDE:
            raise InputError(
                f"{type(self).__name__} needs at least {OUT_LEVEL + 1} encoder blocks in channels. Got {self.channels!r} instead."
            )
        n_classes = int(max(y[:, 0].max(), 1 if y_val is None else y_val[:, 0].max()))
        if n_classes < 1:
            raise InputError(f"{type(self).__name__}: the training masks hold no object.")
        self.n_classes_ = n_classes
        targets = heatmap_targets(y, n_classes)
        val = None if y_val is None else heatmap_targets(y_val, n_classes)
        return FitData(X, targets, X_val, val, n_classes)

    def _build_module(self, sample_shape, n_outputs):
        return CenterNetHead(int(sample_shape[0]), self._channels, n_outputs, OUT_LEVEL, self.head_channels)

    def _loss(self, output, target):
        return centernet_loss(output, target, self.n_classes_)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(np.asarray(targets, np.float32), device=device)

    @torch.no_grad()
    def _maps(self, X) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        out = torch.from_numpy(self._forward(X, batch_size=64))
        return torch.sigmoid(out[:, : self.n_classes_]), out[:, self.n_classes_ :], tuple(np.shape(X)[2:])

    def predict(self, X) -> list[Detections]:
        """One :class:`Detections` per image."""
        heat, box, size = self._maps(X)
        return decode(heat, box, self.max_detections, self.score_threshold, size)

    def scores(self, X, y) -> dict[str, float]:
        """COCO ``map`` (@[.5:.95]), ``map50`` and ``map75`` against the ``scenes`` masks ``y``."""
        dets = self.predict(X)
        truth = boxes_from_masks(np.asarray(y))
        return coco_map(truth, [(d.boxes, d.scores, d.labels) for d in dets], self.n_classes_)

    def score(self, X, y) -> float:
        """COCO mAP@[.5:.95] (``pycocotools``)."""
        return self.scores(X, y)["map"]

    def dataset_metrics(self, ds) -> dict:
        out: dict = {}
        for part in ("val", "test"):
            s = self.scores(getattr(ds, f"X_{part}"), getattr(ds, f"y_{part}"))
            out[f"{part}_map"], out[f"{part}_map50"] = s["map"], s["map50"]
        return out

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["n_classes_"] = self.n_classes_
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.n_classes_ = int(meta["n_classes_"])
        super()._restore_state(tensors, meta)

    def _export_module(self) -> ExportSpec:
        self._check_fitted()
        net = copy.deepcopy(self.module_).cpu().eval()
        example, random_input = self._example_and_random()

        def reference(X):
            heat, box, _ = self._maps(X)
            return {"heatmaps": heat.numpy(), "boxes": box.numpy()}

        return ExportSpec(
            module=DetectorModule(net, self.mean_, self.scale_, self.n_classes_).eval(),
            example_input=example,
            output_names=("heatmaps", "boxes"),
            metadata={
                "kind": "detector",
                "classes": list(range(self.n_classes_)),
                "stride": STRIDE,
                "decoding": "peaks of heatmaps (3x3 max pool), top-k; box = ((cell + offset) * stride, exp(log size) "
                "* stride); see deepatlas.models.vision.detector.decode",
            },
            dynamic_axes={0: "batch", 2: "height", 3: "width"},
            reference=reference,
            random_input=random_input,
        )
