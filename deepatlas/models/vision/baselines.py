"""Non-convolutional baselines for the vision family (used by ``benchmarks/bench_vision.py`` and the
atlas claim ``K.cnn-apps``).

- :func:`neighbourhoods`: each pixel's k x k neighbourhood as a feature row, for a per-pixel
  classifier (scikit-learn's logistic regression) as the non-deep segmentation baseline;
- :func:`component_detect`: the classical detection pipeline before CNN detectors, threshold ->
  connected components (``scipy.ndimage.label``) -> one box per component -> a classifier on the
  component's crop resized to a fixed side (Gonzalez & Woods, *Digital Image Processing*, ch. 9-10).
"""

from __future__ import annotations

import numpy as np


def neighbourhoods(X: np.ndarray, k: int = 9) -> np.ndarray:
    """``(n * H * W, k * k * C)``: each pixel's k x k neighbourhood (zero padded) of images ``(n, C, H, W)``."""
    from numpy.lib.stride_tricks import sliding_window_view

    r = k // 2
    pad = np.pad(X, ((0, 0), (0, 0), (r, r), (r, r)))
    win = sliding_window_view(pad, (k, k), axis=(2, 3))  # (n, C, H, W, k, k)
    n, c, h, w = X.shape
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * k * k)


def crops(images: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """``(m, C * side * side)``: the ``[x0, y0, x1, y1]`` boxes of one image ``(C, H, W)``, resized."""
    import torch
    from torch.nn import functional as F

    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, int):
        patch = torch.from_numpy(np.ascontiguousarray(images[None, :, y0:y1, x0:x1], np.float32))
        out.append(F.interpolate(patch, size=(side, side), mode="bilinear", align_corners=False).flatten(1))
    return torch.cat(out).numpy() if out else np.zeros((0, images.shape[0] * side * side), np.float32)


def components(image: np.ndarray, threshold: float) -> np.ndarray:
    """``(m, 4)`` boxes ``[x0, y0, x1, y1]`` of the 8-connected regions where any channel of ``image``
    ``(C, H, W)`` exceeds ``threshold``."""
    from scipy import ndimage

    labels, _ = ndimage.label(image.max(axis=0) > threshold, structure=np.ones((3, 3)))
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndimage.find_objects(labels) if s is not None]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


class ComponentDetector:
    """Connected components of the thresholded image, each classified by a logistic regression on its
    crop (trained on the ground-truth objects' crops): boxes, the class probability as score, labels."""

    def __init__(self, side: int = 12, threshold: float = 0.0, seed: int = 0):
        self.side, self.threshold, self.seed = side, threshold, seed

    def fit(self, X: np.ndarray, truth) -> ComponentDetector:
        """``truth``: per image ``(boxes (k, 4), labels (k,))`` (``scenes.boxes_from_masks``)."""
        from sklearn.linear_model import LogisticRegression

        feats = [crops(x, b, self.side) for x, (b, _) in zip(X, truth)]
        labels = np.concatenate([lab for _, lab in truth])
        self.clf_ = LogisticRegression(max_iter=1000, random_state=self.seed).fit(np.concatenate(feats), labels)
        return self

    def predict(self, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for x in X:
            boxes = components(x, self.threshold)
            if len(boxes) == 0:
                out.append((boxes, np.zeros(0, np.float32), np.zeros(0, np.int64)))
                continue
            proba = self.clf_.predict_proba(crops(x, boxes, self.side))
            best = proba.argmax(axis=1)
            out.append((boxes, proba[np.arange(len(best)), best], self.clf_.classes_[best]))
        return out
