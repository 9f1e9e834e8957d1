"""Open-set recognition by metric learning: a CNN maps an image to a point on the unit sphere,
and identities never seen in training are verified and identified by cosine similarity.

``embedding`` is the project's CNN (:func:`deepatlas.models.cnn.conv_stack`: ``Conv-BN-ReLU-pool``
blocks, global average pooling, a linear layer) whose output is L2-normalised, trained with

- ``loss="triplet"``: the triplet loss of FaceNet (Schroff, Kalenichenko & Philbin, 2015) with
  batch-hard mining (Hermans, Beyer & Leibe, 2017, "In Defense of the Triplet Loss"): each image
  of a batch is an anchor, paired with its batch's farthest image of the same identity and its
  nearest image of another (the hardest negative), ``max(0, margin + d(a, p) - d(a, n))``;
- ``loss="arcface"``: an additive angular margin on a softmax over identity centres (ArcFace;
  Deng, Guo, Xue & Zafeiriou, 2019): the logit of the true identity is ``s * cos(theta + m)``,
  the others ``s * cos(theta)``; the centres are dropped after training;
- ``loss="softmax"``: the baseline, the same CNN trained as a closed-set classifier; its
  penultimate layer (the pooled features) is the embedding.

``eigenfaces`` is the classical baseline: PCA on the pixels (Turk & Pentland, 1991), whitened,
the projection L2-normalised. Both give ``transform`` (embeddings); a run on open-set data
(``--data fashion-mnist:open_set=7``) writes ``test_verification_auc``, ``test_eer``,
``test_tar_at_far_1e-2`` and ``test_rank1`` (:mod:`deepatlas.models.recognition.metrics`) and
the ROC curve (``plots/roc.png``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch import nn
from torch.nn import functional as F

from deepatlas._params import SPACE_BATCH, SPACE_LR
from deepatlas._validation import Boolean, Interval, NoneOr, Options
from deepatlas.data.faces import OPEN_SET_TASK
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.export.protocol import ExportSpec
from deepatlas.models.base import FitData, TorchEstimator, check_features
from deepatlas.models.cnn import _CNNMixin, conv_stack
from deepatlas.models.recognition.metrics import l2_normalize, open_set_scores, plot_roc
from deepatlas.registry import register_model
from deepatlas.saving import shaped

DEFAULT_MARGIN = {"triplet": 0.2, "arcface": 0.5}


def batch_hard_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss of unit vectors ``emb`` (Hermans et al., 2017); anchors without a
    positive or a negative in the batch are skipped."""
    emb = emb.float()
    d = torch.sqrt((2 - 2 * emb @ emb.T).clamp(min=1e-12))  # Euclidean distance on the sphere
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos = same & ~eye
    hardest_pos = (d * pos).max(dim=1).values
    hardest_neg = d.masked_fill(same, float("inf")).min(dim=1).values
    valid = pos.any(dim=1) & (~same).any(dim=1)
    if not valid.any():
        return (emb * 0).sum()  # no triplet in this batch: a zero that keeps the graph
    return F.relu(margin + hardest_pos - hardest_neg)[valid].mean()


def arcface_logits(cos: torch.Tensor, labels: torch.Tensor, margin: float, scale: float) -> torch.Tensor:
    """``s * cos(theta + m)`` for the true identity, ``s * cos(theta)`` for the others; past
    ``theta = pi - m``, where ``cos(theta + m)`` would turn back up, the official fallback
    ``cos(theta) - m sin(m)`` keeps the logit falling (Deng et al., 2019)."""
    cos = cos.float().clamp(-1 + 1e-7, 1 - 1e-7)
    sin = torch.sqrt(1 - cos**2)
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    onehot = F.one_hot(labels, cos.shape[1]).bool()
    return scale * torch.where(onehot, phi, cos)


class EmbeddingNet(nn.Module):
    """The CNN and what its loss reads: ``forward`` gives ``[embedding | head]`` (the head: ArcFace
    cosines or softmax logits; nothing for the triplet loss), so every parameter is used in the
    forward pass (DDP needs that); :meth:`embed` gives the unit embedding alone."""

    def __init__(self, trunk: nn.Sequential, loss: str, dim: int, n_classes: int):
        super().__init__()
        self.trunk, self.loss, self.dim = trunk, loss, dim
        if loss == "arcface":
            self.centres = nn.Parameter(torch.randn(n_classes, dim) / math.sqrt(dim))

    def _raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.loss == "softmax":
            feats = self.trunk[:-1](x)
            return feats, self.trunk[-1](feats)
        return self.trunk(x), None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._raw(x)[0], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, logits = self._raw(x)
        emb = F.normalize(feats, dim=1)
        if self.loss == "arcface":
            return torch.cat([emb, emb @ F.normalize(self.centres, dim=1).T], dim=1)
        if self.loss == "softmax":
            return torch.cat([emb, logits], dim=1)
        return emb


class Embedder(nn.Module):
    """Raw images -> unit embeddings: the saved per-channel standardisation, then the network."""

    def __init__(self, net: EmbeddingNet, mean, scale):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).view(1, -1, 1, 1))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)).view(1, -1, 1, 1))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed((x - self.mean) / self.scale)


class OpenSetMixin:
    """What both embedders share: open-set measures on a run's data, the ROC plot, identification."""

    def open_set_scores(self, X, y, seed: int = 0, what: str = "the test data") -> dict:
        """Verification (``auc``, ``eer``, ``tar_at_far_1e-2``, ROC ``fpr``/``tpr``) and ``rank1``
        of the embeddings of ``X`` whose identities are ``y``."""
        return open_set_scores(self.transform(X), np.asarray(y), seed=seed, what=what)

    def dataset_metrics(self, ds) -> dict:
        test = self.open_set_scores(ds.X_test, ds.y_test, what=f"the test split of {ds.name!r}")
        self.roc_ = (test["fpr"], test["tpr"], test["auc"])  # for write_run_plots
        out = {f"test_{k}": test[k] for k in ("auc", "eer", "tar_at_far_1e-2", "rank1")}
        out["test_verification_auc"] = out.pop("test_auc")
        out["test_identities"] = len(np.unique(ds.y_test))
        if len(np.unique(ds.y_val)) >= 2 and np.unique(ds.y_val, return_counts=True)[1].min() >= 2:
            out["val_verification_auc"] = self.open_set_scores(ds.X_val, ds.y_val)["auc"]  # seen identities
        return out

    def write_run_plots(self, ds, plots: Path) -> None:
        roc = getattr(self, "roc_", None)
        if roc is None:
            s = self.open_set_scores(ds.X_test, ds.y_test)
            roc = (s["fpr"], s["tpr"], s["auc"])
        plot_roc({type(self).__name__: roc}, Path(plots) / "roc.png")

    def identify(self, X, gallery_X, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
        """The identity of each image of ``X``: that of its most similar gallery image, and the
        cosine similarity to it."""
        G = self.transform(gallery_X)
        sims = self.transform(X) @ G.T
        best = sims.argmax(axis=1)
        return np.asarray(gallery_ids)[best], sims[np.arange(len(best)), best]


@register_model(
    "embedding",
    task=OPEN_SET_TASK,
    description="open-set recognition: CNN embedding trained with a batch-hard triplet or ArcFace loss "
    "(loss=softmax: the closed-set baseline)",
    smoke={"data": "digits:open_set=7", "params": {"channels": (4, 8), "embedding_dim": 8, "epochs": 2}},
    tuning_space={"lr": SPACE_LR, "batch_size": SPACE_BATCH},
)
@dataclass(eq=False, repr=False, kw_only=True)
class EmbeddingCNN(OpenSetMixin, TransformerMixin, _CNNMixin, TorchEstimator):
    """A CNN embedding of images ``(n, C, H, W)`` trained on identities ``y``; ``transform`` gives
    L2-normalised embeddings."""

    loss: str = "triplet"
    """``triplet`` (batch-hard triplet loss, Hermans et al., 2017; it kept the most for identities never seen
    in training: docs/results-recognition.md), ``arcface`` (additive angular margin softmax, Deng et al., 2019) or ``softmax`` (the closed-set classifier baseline: its penultimate layer is
    the embedding)."""
    embedding_dim: int = 64
    """Size of the embedding (``arcface`` and ``triplet``; ``softmax`` embeds in the last block's channels)."""
    margin: float | None = None
    """The loss's margin: a distance on the unit sphere for ``triplet`` (default 0.2), an angle in radians
    for ``arcface`` (default 0.5); None takes the default."""
    scale: float = 16.0
    """ArcFace's scale ``s`` of the cosine logits."""
    channels: tuple = (16, 32, 64)
    """Output channels of each ``Conv -> BatchNorm -> ReLU -> MaxPool`` block of the CNN, input side first."""
    kernel_size: int = 3
    """Size of every convolution kernel; the padding keeps the size."""
    dropout: float = 0.0
    """Dropout rate on the pooled features before the embedding layer (0 turns it off)."""
    pool: bool = True
    """Halve the height and width after each block with a max pool of 2."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    patience: int = 3
    scheduler: str | None = "cosine"
    """The embedding's default is cosine annealing of ``lr`` to 0 over ``epochs`` (Loshchilov & Hutter, 2017,
    SGDR): on Fashion-MNIST with 3 classes never seen in training (seed 0, 10 epochs) it gave verification AUC
    0.915 against 0.898 at a fixed rate, whose validation loss was still falling at the last epoch
    (docs/results-recognition.md); None keeps ``lr`` fixed."""

    _parameter_constraints: ClassVar[dict] = {
        "loss": Options(("arcface", "triplet", "softmax")),
        "embedding_dim": Interval(int, 2, None),
        "margin": NoneOr(Interval(float, 0, None, "neither")),
        "scale": Interval(float, 0, None, "neither"),
    }
    _task: ClassVar[str] = OPEN_SET_TASK
    _fitted_attr: ClassVar[str] = "module_"

    def _encode_targets(self, y):
        y = np.asarray(y)
        if y.ndim != 1:
            raise InputError(f"y must be 1-D identity labels for {type(self).__name__}. Got shape {y.shape} instead.")
        ids = np.unique(y)
        if len(ids) < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 identities in y; got {len(ids)}.")
        self.classes_ = ids
        return np.searchsorted(ids, y).astype(np.int64), len(ids)

    def _encode_more(self, y):
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise InputError(
                f"validation identities {list(unknown)[:5]} do not occur in training; the validation split of "
                "an open-set run holds images of the training identities."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _prepare_fit(self, X, y, validation_data) -> FitData:
        X = check_features(X, type(self).__name__)
        if X.ndim != 4:
            raise InputError(
                f"{type(self).__name__} takes images of shape (n, channels, height, width). Got X of shape {X.shape} instead."
            )
        return super()._prepare_fit(X, y, validation_data)

    @property
    def _margin(self) -> float:
        return DEFAULT_MARGIN.get(self.loss, 0.0) if self.margin is None else float(self.margin)

    def _build_module(self, sample_shape, n_outputs):
        channels = (self.channels,) if isinstance(self.channels, int) else tuple(int(c) for c in self.channels)
        if self.loss == "softmax":
            trunk = conv_stack(sample_shape, channels, self.kernel_size, n_outputs, self.dropout, self.pool)
            dim = channels[-1]
        else:
            trunk = conv_stack(sample_shape, channels, self.kernel_size, self.embedding_dim, self.dropout, self.pool)
            dim = self.embedding_dim
        self.dim_ = dim
        return EmbeddingNet(trunk, self.loss, dim, n_outputs)

    def _loss(self, output, target):
        d = self.dim_
        if self.loss == "triplet":
            return batch_hard_triplet(output[:, :d], target, self._margin)
        if self.loss == "arcface":
            return F.cross_entropy(arcface_logits(output[:, d:], target, self._margin, self.scale), target)
        return F.cross_entropy(output[:, d:].float(), target)

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.long, device=device)

    def transform(self, X) -> np.ndarray:
        """``(n, dim)`` unit-length embeddings (float32)."""
        return self._forward(X, batch_size=512)[:, : self.dim_]

    def _fitted_state(self):
        tensors, meta = super()._fitted_state()
        meta["classes_"] = [c.item() if hasattr(c, "item") else c for c in self.classes_]
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.classes_ = np.array(meta["classes_"])
        super()._restore_state(tensors, meta)

    def _export_module(self) -> ExportSpec:
        self._check_fitted()
        c = self._n_channels(self.input_shape_)
        mean = self.mean_.reshape(c, -1).mean(axis=1)
        scale = self.scale_.reshape(c, -1).mean(axis=1)
        net = copy.deepcopy(self.module_).cpu().eval()
        example = torch.from_numpy(
            (
                mean.reshape(1, -1, 1, 1)
                + scale.reshape(1, -1, 1, 1) * np.random.default_rng(0).standard_normal((2, *self.input_shape_))
            ).astype(np.float32)
        )
        return ExportSpec(
            module=Embedder(net, mean, scale).eval(),
            example_input=example,
            output_names=("embedding",),
            metadata={
                "kind": "embedding",
                "dim": int(self.dim_),
                "similarity": "cosine (the embeddings have unit length)",
            },
            reference=lambda X: {"embedding": self.transform(X)},
        )


@register_model(
    "eigenfaces",
    task=OPEN_SET_TASK,
    description="open-set recognition baseline: PCA on pixels (eigenfaces), whitened, compared by cosine",
    smoke={"data": "digits:open_set=7", "params": {"n_components": 8}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class Eigenfaces(OpenSetMixin, TransformerMixin, Estimator):
    """PCA of the training images' pixels (Turk & Pentland, 1991, "Eigenfaces for recognition");
    ``transform`` projects an image on the leading components and scales it to unit length."""

    n_components: int = 64
    """Principal components kept (at most the number of training images and of pixels)."""
    whiten: bool = True
    """Divide each component by its standard deviation, so that cosine similarity weighs every
    component alike (without it, the first few components, mostly lighting, dominate)."""

    _parameter_constraints: ClassVar[dict] = {"n_components": Interval(int, 1, None), "whiten": Boolean()}
    _fitted_attr: ClassVar[str] = "components_"

    def fit(self, X, y=None):
        """PCA of the images ``X`` (``y``, the identities, is not used)."""
        from sklearn.decomposition import PCA

        self._validate_params()
        X = check_features(X, type(self).__name__)
        flat = X.reshape(len(X), -1).astype(np.float64)
        k = min(self.n_components, *flat.shape)
        pca = PCA(n_components=k, whiten=False, svd_solver="auto", random_state=self.seed).fit(flat)
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = flat.shape[1]
        var = pca.explained_variance_
        keep = var > 1e-8 * var.sum()  # directions without variance (constant pixels) carry nothing to compare
        self.mean_ = pca.mean_.astype(np.float32)
        self.divisor_ = (np.sqrt(var[keep]) if self.whiten else np.ones(int(keep.sum()))).astype(np.float32)
        self.components_ = pca.components_[keep].astype(np.float32)
        return self

    def transform(self, X) -> np.ndarray:
        """``(n, n_components)`` unit-length projections (float32)."""
        self._check_fitted()
        X = check_features(X, type(self).__name__)
        if int(np.prod(X.shape[1:])) != self.n_features_in_:
            raise InputError(
                f"X has {int(np.prod(X.shape[1:]))} pixels per image, but {type(self).__name__} was fitted on "
                f"{self.n_features_in_} ({'x'.join(map(str, self.input_shape_))})."
            )
        Z = (X.reshape(len(X), -1) - self.mean_) @ self.components_.T / self.divisor_
        return l2_normalize(Z).astype(np.float32)

    def _fitted_state(self):
        self._check_fitted()
        tensors = {k: torch.from_numpy(getattr(self, k)) for k in ("mean_", "divisor_", "components_")}
        return tensors, {"input_shape_": list(self.input_shape_)}

    def _restore_state(self, tensors, meta):
        self.input_shape_ = tuple(int(s) for s in meta["input_shape_"])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        k = tensors["components_"].shape[0]
        self.mean_ = shaped(tensors, "mean_", (self.n_features_in_,)).numpy()
        self.divisor_ = shaped(tensors, "divisor_", (k,)).numpy()
        self.components_ = shaped(tensors, "components_", (k, self.n_features_in_)).numpy()

    def _export_module(self) -> ExportSpec:
        self._check_fitted()
        module = _Projection(self.mean_, self.components_, self.divisor_).eval()
        example = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (2, *self.input_shape_)).astype(np.float32))
        return ExportSpec(
            module=module,
            example_input=example,
            output_names=("embedding",),
            metadata={"kind": "embedding", "dim": int(len(self.components_)), "similarity": "cosine"},
            reference=lambda X: {"embedding": self.transform(X)},
            random_input=lambda rng, n: rng.uniform(0, 1, (n, *self.input_shape_)).astype(np.float32),
        )


class _Projection(nn.Module):
    def __init__(self, mean, components, divisor):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(mean)))
        self.register_buffer("weight", torch.from_numpy(np.asarray(components / divisor[:, None], np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize((x.flatten(1) - self.mean) @ self.weight.T, dim=1)
