"""Pose estimation: the image positions of a skeleton's joints.

``keypoints`` predicts one heatmap per joint (Tompson et al., 2014; the stacked hourglass of
Newell, Yang & Deng, 2016, is the best-known form): a stride-2 convolution, then the project's
U-Net (:class:`deepatlas.models.vision.nets.UNet`, an encoder-decoder with skips, one stage of an
hourglass) gives ``(J, H/2, W/2)`` maps. Each map's spatial softmax is trained by cross-entropy
against a Gaussian centred on the joint, normalised to sum to 1 (a distribution over the cells,
as in the integral and DSNT regressions of Sun et al., 2018, and Nibali et al., 2018; it starts
learning far sooner than the squared error of Tompson et al.). A joint is read from its map's peak, refined to a fraction of a cell by the
centroid of the 5x5 cells around it (the peak and its sub-pixel refinement stay in the exported
graph). ``head="regression"`` is the baseline: direct coordinate regression (DeepPose; Toshev &
Szegedy, 2014) by the project's CNN blocks with a dense head, trained by mean squared error on
the coordinates.

``predict`` gives ``(n, J, 2)`` pixel coordinates ``(x, y)``; a run's ``metrics.json`` holds
``test_pck`` (PCK@0.1: a joint is right within 0.1 of the figure's size), ``evaluation.json``
the PCK of every joint, ``plots/predictions.png`` test images with the predicted skeletons, and
``deepatlas predict RUN --input IMAGES --output DIR`` draws them on the user's images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._params import SPACE_BATCH, SPACE_LR
from deepatlas._validation import Interval, Options
from deepatlas.data.figures import JOINTS, KEYPOINT_TASK, LIMB_COLOURS, LIMBS
from deepatlas.errors import InputError
from deepatlas.export.adapters import ChannelStandardize
from deepatlas.export.protocol import ExportSpec
from deepatlas.models.base import FitData
from deepatlas.models.cnn import conv_stack
from deepatlas.models.recognition.metrics import pck
from deepatlas.models.vision.base import VisionEstimator
from deepatlas.models.vision.nets import UNet
from deepatlas.registry import register_model

STRIDE = 2
WINDOW = 2  # the refinement's centroid reads (2 * WINDOW + 1)^2 cells around the peak
ALPHA = 0.1


class HeatmapNet(nn.Module):
    """(B, C, H, W) -> (B, J, H/2, W/2): a stride-2 convolution, then a U-Net at half resolution."""

    def __init__(self, c_in: int, channels: tuple[int, ...], n_joints: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, channels[0], 3, stride=STRIDE, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.unet = UNet(channels[0], channels, n_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(self.stem(x))


def regression_net(sample_shape, channels: tuple[int, ...], n_joints: int) -> nn.Sequential:
    """The project's CNN blocks (``Conv-BN-ReLU-MaxPool``), flattened (not pooled: positions
    matter), then a dense layer of 256 and the ``2J`` coordinates."""
    blocks = conv_stack(sample_shape, channels, 3, 1, 0.0)[:-3]  # drop the global pool, flatten, linear
    h, w = sample_shape[1:]
    for _ in channels:
        h, w = -(-h // 2), -(-w // 2)
    return nn.Sequential(
        *blocks, nn.Flatten(), nn.Linear(channels[-1] * h * w, 256), nn.ReLU(), nn.Linear(256, 2 * n_joints)
    )


def heatmap_targets(keypoints: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """``(n, J, h, w)`` Gaussians (peak 1, ``sigma`` pixels) at each joint, on the stride-2 grid."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    c = (np.asarray(keypoints, np.float32) + 0.5) / STRIDE - 0.5  # pixel -> cell coordinates
    s = sigma / STRIDE
    dx = xs[None, None] - c[..., 0, None, None]
    dy = ys[None, None] - c[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * s**2)).astype(np.float32)


def decode_heatmaps(heat: torch.Tensor) -> torch.Tensor:
    """``(B, J, h, w)`` maps -> ``(B, J, 2)`` pixel coordinates: each map's peak, refined by the
    centroid of the (clipped at zero) values in the 5x5 cells around it."""
    B, J, h, w = heat.shape
    flat = heat.flatten(2)
    idx = flat.argmax(dim=2)  # (B, J)
    py, px = idx // w, idx % w
    offs = torch.arange(-WINDOW, WINDOW + 1, device=heat.device)
    ys, xs = py[..., None] + offs, px[..., None] + offs  # (B, J, K)
    K = len(offs)
    yy, xx = ys[..., :, None].expand(B, J, K, K), xs[..., None, :].expand(B, J, K, K)
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    cells = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).flatten(2)
    vals = flat.gather(2, cells).clamp(min=0) * inside.flatten(2)
    total = vals.sum(dim=2).clamp(min=1e-6)
    cy = (vals * yy.flatten(2)).sum(dim=2) / total
    cx = (vals * xx.flatten(2)).sum(dim=2) / total
    return torch.stack([cx, cy], dim=2) * STRIDE + (STRIDE - 1) / 2  # cell centre -> pixel


class KeypointModule(nn.Module):
    """Raw images -> ``(B, J, 2)`` keypoints: standardisation, the network, the decoding."""

    def __init__(self, net: nn.Module, mean, scale, head: str, size: tuple[int, int]):
        super().__init__()
        self.standardize = ChannelStandardize(mean, scale, spatial=2)
        self.net, self.head = net, head
        self.register_buffer("size", torch.tensor([size[1], size[0]], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.standardize(x))
        if self.head == "heatmap":
            return decode_heatmaps(out)
        return ((out.view(len(out), -1, 2) + 1) / 2) * self.size - 0.5


@register_model(
    "keypoints",
    task=KEYPOINT_TASK,
    description="pose estimation: joint heatmaps from a U-Net, peak with sub-pixel refinement "
    "(head=regression: direct coordinate regression by the CNN)",
    smoke={"data": "figures:n=60", "params": {"channels": (4, 8), "epochs": 2, "batch_size": 16}},
    tuning_space={"lr": SPACE_LR, "batch_size": SPACE_BATCH},
)
@dataclass(eq=False, repr=False, kw_only=True)
class KeypointEstimator(VisionEstimator):
    """Joint positions ``(n, J, 2)`` (``x``, ``y`` in pixels) of images ``(n, C, H, W)``."""

    head: str = "heatmap"
    """``heatmap`` (one map per joint, peak and sub-pixel refinement) or ``regression`` (the baseline:
    the CNN regresses the coordinates directly)."""
    channels: tuple = (16, 32, 64, 128)
    """Channels of the network's blocks, full resolution first: the U-Net's encoder blocks after the stride-2
    stem (``heatmap``), or the CNN's ``Conv-BN-ReLU-MaxPool`` blocks (``regression``)."""
    sigma: float = 2.0
    """Standard deviation, in pixels, of the Gaussian each joint's target heatmap holds."""
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    patience: int = 6

    _parameter_constraints: ClassVar[dict] = {
        "head": Options(("heatmap", "regression")),
        "sigma": Interval(float, 0, None, "neither"),
    }
    _task: ClassVar[str] = KEYPOINT_TASK

    @property
    def _multiple(self) -> int:
        return 2 ** len(self._channels) if self.head == "heatmap" else 1

    def _check_targets(self, y, n: int, size, what: str = "y") -> np.ndarray:
        name = type(self).__name__
        if y is None:
            raise InputError(f"{name} requires y (keypoints of shape (n, joints, 2)), but y is None.")
        try:
            y = np.asarray(y, np.float32)
        except (TypeError, ValueError):
            raise InputError(f"{what} must hold numbers: keypoints (x, y) in pixels.") from None
        if y.ndim != 3 or y.shape[2] != 2 or len(y) != n:
            raise InputError(f"{name} needs {what} of shape ({n}, joints, 2): (x, y) per joint. Got {y.shape} instead.")
        if not np.isfinite(y).all():
            raise InputError(f"{what} contains NaN or inf values.")
        return y

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        X, y, X_val, y_val = self._prepare_images(X, y, validation_data)
        if y_val is not None and y_val.shape[1] != y.shape[1]:
            raise InputError(f"validation y has {y_val.shape[1]} joints, but y has {y.shape[1]}.")
        self.n_joints_ = int(y.shape[1])
        return FitData(X, self._targets(y), X_val, None if y_val is None else self._targets(y_val), self.n_joints_)

    def _targets(self, keypoints: np.ndarray) -> np.ndarray:
        H, W = self.input_shape_[1:]
        if self.head == "heatmap":
            return heatmap_targets(keypoints, (H // STRIDE, W // STRIDE), self.sigma)
        return ((keypoints + 0.5) / np.array([W, H], np.float32) * 2 - 1).reshape(len(keypoints), -1)

    def _build_module(self, sample_shape, n_outputs):
        if self.head == "heatmap":
            return HeatmapNet(int(sample_shape[0]), self._channels, n_outputs)
        return regression_net(tuple(sample_shape), self._channels, n_outputs)

    def _loss(self, output, target):
        if self.head == "heatmap":  # cross-entropy of each map's spatial softmax against its normalised Gaussian
            t = target.flatten(2)
            t = t / t.sum(dim=2, keepdim=True).clamp(min=1e-12)
            return -(t * F.log_softmax(output.float().flatten(2), dim=2)).sum(dim=2).mean()
        return F.mse_loss(output.float(), target)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(np.asarray(targets, np.float32), device=device)

    def _check_input(self, X) -> np.ndarray:
        X = super()._check_input(X)
        if self.head == "regression" and tuple(X.shape[2:]) != tuple(self.input_shape_[1:]):
            h, w = self.input_shape_[1:]
            raise InputError(
                f"{type(self).__name__} with head='regression' takes images of its training size {w}x{h}. "
                f"Got {X.shape[3]}x{X.shape[2]} instead."
            )
        return X

    def _inference_module(self) -> KeypointModule:
        net = copy.deepcopy(self.module_).cpu().eval()
        return KeypointModule(net, self.mean_, self.scale_, self.head, tuple(self.input_shape_[1:])).eval()

    @torch.no_grad()
    def predict(self, X) -> np.ndarray:
        """``(n, J, 2)`` pixel coordinates ``(x, y)`` of every joint."""
        X = self._check_input(X)
        out = torch.from_numpy(self._forward(X, batch_size=128))
        if self.head == "heatmap":
            return decode_heatmaps(out).numpy().astype(np.float32)
        size = np.array([X.shape[3], X.shape[2]], np.float32)
        return ((out.numpy().reshape(len(X), -1, 2) + 1) / 2 * size - 0.5).astype(np.float32)

    def scores(self, X, y, alpha: float = ALPHA) -> dict:
        """``pck`` (PCK@alpha of the figure's size), ``per_joint`` PCK and ``mean_error`` in pixels."""
        pred = self.predict(X)
        y = self._check_targets(y, len(pred), None)
        if y.shape[1] != pred.shape[1]:
            raise InputError(f"y has {y.shape[1]} joints, but {type(self).__name__} predicts {pred.shape[1]}.")
        ok = pck(pred, y, alpha)
        return {
            "pck": float(ok.mean()),
            "per_joint": ok.mean(axis=0).tolist(),
            "mean_error": float(np.linalg.norm(pred - y, axis=2).mean()),
        }

    def score(self, X, y) -> float:
        """PCK@0.1."""
        return self.scores(X, y)["pck"]

    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """Fit on a dataset's training split, stopping early on its validation split; keeps the
        names of the joints and the skeleton (saved with the model) for reports and drawings."""
        self.joints_ = [str(j) for j in ds.meta.get("joints") or []]
        self.limbs_ = [[int(a), int(b)] for a, b in ds.meta.get("limbs") or []]
        self.class_names_ = []
        return self.fit(
            ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), checkpoint_dir=checkpoint_dir, resume=resume
        )

    def joint_name(self, j: int) -> str:
        names = getattr(self, "joints_", None) or []
        return names[j] if j < len(names) else f"joint_{j}"

    def dataset_metrics(self, ds) -> dict:
        out: dict = {}
        for part in ("val", "test"):
            s = self.scores(getattr(ds, f"X_{part}"), getattr(ds, f"y_{part}"))
            out[f"{part}_pck"] = s["pck"]
            out[f"{part}_mean_error_px"] = s["mean_error"]
        return out

    def dataset_evaluation(self, ds) -> dict:
        s = self.scores(ds.X_test, ds.y_test)
        return {
            "alpha": ALPHA,
            "test_pck": s["pck"],
            "per_joint_pck": {self.joint_name(j): v for j, v in enumerate(s["per_joint"])},
            "reference": "PCK@alpha: a joint is correct within alpha times the longer side of its figure's keypoint box",
        }

    def write_run_plots(self, ds, plots: Path) -> None:
        from deepatlas.models.recognition.images import skeleton_grid

        X = ds.X_test[:16]
        skeleton_grid(X, self.predict(X), self.limbs_or_default(), Path(plots) / "predictions.png")

    def limbs_or_default(self) -> list[list[int]]:
        limbs = getattr(self, "limbs_", None)
        if limbs:
            return limbs
        return [list(p) for p in LIMBS] if self.n_joints_ == len(JOINTS) else []

    def limb_colours(self) -> list[tuple[float, float, float]]:
        limbs = self.limbs_or_default()
        return list(LIMB_COLOURS) if len(limbs) == len(LIMB_COLOURS) else [(1.0, 1.0, 0.0)] * len(limbs)

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["n_joints_"] = self.n_joints_
        meta["joints_"] = list(getattr(self, "joints_", None) or [])
        meta["limbs_"] = [list(p) for p in getattr(self, "limbs_", None) or []]
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.n_joints_ = int(meta["n_joints_"])
        self.joints_ = list(meta.get("joints_") or [])
        self.limbs_ = [list(p) for p in meta.get("limbs_") or []]
        super()._restore_state(tensors, meta)

    def _export_module(self) -> ExportSpec:
        self._check_fitted()
        example, random_input = self._example_and_random()
        return ExportSpec(
            module=self._inference_module(),
            example_input=example,
            output_names=("keypoints",),
            metadata={
                "kind": "keypoints",
                "joints": [self.joint_name(j) for j in range(self.n_joints_)],
                "limbs": self.limbs_or_default(),
                "coordinates": "(x, y) in pixels of the input image, pixel centres at integers",
            },
            reference=lambda X: {"keypoints": self.predict(X)},
            random_input=lambda rng, n: random_input(rng, n),
        )
