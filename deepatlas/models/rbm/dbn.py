"""Deep belief networks: RBMs stacked and trained greedily, one layer at a time.

Each RBM learns the distribution of the hidden probabilities of the one below; the result is a
generative model whose top two layers form an undirected RBM and whose lower layers are directed
(top-down) sigmoid belief layers. :class:`DBN` samples by Gibbs sampling in the top RBM and one
down pass. :class:`DBNClassifier` unrolls the same stack into a feed-forward sigmoid network with
a softmax head and fine-tunes it by back-propagation; ``pretrain=False`` gives the same network
from random initialisation, for comparison. :class:`ConvDBN` stacks convolutional RBMs.

References: Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets";
Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks";
Bengio, Lamblin, Popovici & Larochelle (2007), "Greedy layer-wise training of deep networks";
Lee, Grosse, Ranganath & Ng (2009), "Convolutional deep belief networks for scalable
unsupervised learning of hierarchical representations".
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch import nn

from deepatlas._validation import Boolean, Interval, Options, TupleOf
from deepatlas.device import make_generator
from deepatlas.errors import InputError
from deepatlas.models.base import SupervisedClassifier, check_features
from deepatlas.models.rbm.conv_rbm import ConvRBM
from deepatlas.models.rbm.rbm import (
    RBM,
    ContrastiveDivergence,
    GaussianRBM,
    check_unit_interval,
    one_thread,
    probe_accuracy,
    save_samples,
    write_pictures,
)
from deepatlas.registry import register_model

_GAUSSIAN_HINT = "or pass visible='gaussian' for real-valued data"


def _layer_seed(seed: int | None, i: int) -> int | None:
    return None if seed is None else seed + i


def _sizes(value) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(int(v) for v in value)


def pretrain_stack(est, X: np.ndarray) -> list:
    """Greedy layer-wise training: layer i is an RBM fitted to the hidden probabilities of layer
    i - 1. ``est`` supplies ``hidden_sizes``, ``visible`` and the RBM hyperparameters."""
    layers = []
    data = X
    for i, n_hidden in enumerate(_sizes(est.hidden_sizes)):
        cls = GaussianRBM if i == 0 and est.visible == "gaussian" else RBM
        rbm = cls(
            n_hidden=n_hidden,
            k=est.k,
            persistent=est.persistent,
            lr=est._rbm_lr(i),
            momentum=est.momentum,
            weight_decay=est._rbm_weight_decay(),
            epochs=est._rbm_epochs(),
            batch_size=est._rbm_batch_size(),
            seed=_layer_seed(est.seed, i),
            device=est.device,
            verbose=est.verbose,
        ).fit(data)
        layers.append(rbm)
        data = rbm.transform(data)  # (n, n_hidden) probabilities: the next layer's data
    return layers


# ---- the generative DBN -------------------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class DBN(TransformerMixin, ContrastiveDivergence):
    """Deep belief network: a stack of RBMs trained greedily (Hinton, Osindero & Teh, 2006).

    ``transform`` runs the up pass (top-layer probabilities); ``sample`` runs Gibbs chains in the
    top RBM and one down pass through the directed layers. ``layers_`` are the fitted RBMs.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> DBN(hidden_sizes=(64, 32), epochs=3).fit(ds.X_train).transform(ds.X_test).shape
    (360, 32)
    """

    hidden_sizes: tuple = (256, 256)
    """Hidden units of each RBM in the stack, bottom first; each is trained on the hidden probabilities of the
    one below."""
    visible: str = "bernoulli"
    """Units of the first RBM: ``bernoulli`` needs inputs in [0, 1]; ``gaussian`` takes real values (a
    Gaussian RBM that standardises them, trained at half the learning rate)."""
    epochs: int = 20
    """Passes over the data for each RBM of the stack."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": TupleOf(),
        "visible": Options(("bernoulli", "gaussian")),
    }

    # The stack's RBMs take these hyperparameters (DBNClassifier maps its pretrain_* onto them).
    def _rbm_lr(self, i: int) -> float:
        return self.lr / 2 if i == 0 and self.visible == "gaussian" else self.lr

    def _rbm_epochs(self) -> int:
        return self.epochs

    def _rbm_batch_size(self) -> int:
        return self.batch_size

    def _rbm_weight_decay(self) -> float:
        return self.weight_decay

    def fit(self, X, y=None):
        """Train the stack greedily on ``X`` (labels are ignored); returns ``self``."""
        self._validate_params()
        X = check_features(X, "DBN")
        flat = X.reshape(len(X), -1)
        if self.visible == "bernoulli":
            check_unit_interval(flat, "DBN", hint=_GAUSSIAN_HINT)
        start = time.perf_counter()
        self.layers_ = pretrain_stack(self, flat)
        self.fit_seconds_ = time.perf_counter() - start
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = flat.shape[1]
        self.n_epochs_ = self.epochs * len(self.layers_)
        self.history_ = _stacked_history([layer.history_ for layer in self.layers_])
        return self

    _fitted_attr: ClassVar[str] = "layers_"

    def transform(self, X) -> np.ndarray:
        """Top-layer hidden probabilities after one up pass, (n, hidden_sizes[-1])."""
        self._check_fitted()
        data = X
        for layer in self.layers_:
            data = layer.transform(data)
        return data

    @torch.no_grad()
    def sample(self, n_samples: int = 16, steps: int = 1000, *, probabilities: bool = True, seed=None) -> np.ndarray:
        """Gibbs chains in the top RBM for ``steps`` sweeps, then one down pass (binary states in
        the middle layers, probabilities or Gaussian means at the bottom)."""
        self._check_fitted()
        seed = self.seed if seed is None else seed
        top = self.layers_[-1]
        h = top.sample(n_samples, steps, probabilities=len(self.layers_) == 1 and probabilities, seed=seed)
        h = torch.as_tensor(np.asarray(h, dtype=np.float32).reshape(n_samples, -1), device=top.A_.device)
        gen = make_generator(seed, top.A_.device)
        for i in range(len(self.layers_) - 2, -1, -1):
            layer = self.layers_[i]
            if i > 0 or not probabilities:
                h = layer._sample_visible(h, gen)
            else:
                h = layer._visible_mean(h)
        v = (
            self.layers_[0]._from_model(h.cpu().numpy().astype(np.float64))
            if len(self.layers_) > 1
            else h.cpu().numpy()
        )
        return v.reshape((n_samples, *self.input_shape_))

    def reconstruct(self, X) -> np.ndarray:
        """Up pass then down pass with probabilities: how much of ``X`` the stack keeps."""
        self._check_fitted()
        h = self.transform(X)
        with torch.no_grad():
            t = torch.as_tensor(np.asarray(h, dtype=np.float32), device=self.layers_[0].A_.device)
            for layer in reversed(self.layers_):
                t = layer._visible_mean(t)
        v = self.layers_[0]._from_model(t.cpu().numpy().astype(np.float64))
        return v.reshape((len(v), *self.input_shape_))

    def filter_images(self):
        return self.layers_[0].filter_images()

    # ---- run directories ----------------------------------------------------------------------
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training split; pictures go to ``checkpoint_dir/plots``.
        There is no checkpoint to resume: ``resume`` refits."""
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            write_pictures(self, Path(checkpoint_dir) / "plots", title=f"{type(self).__name__} on {ds.name}")
        return self

    def dataset_metrics(self, ds) -> dict:
        """Mean squared up-down reconstruction error on the test split and, with labels, a linear
        probe's test accuracy on the top-layer features."""
        X = check_features(ds.X_test, "DBN")
        rec = self.reconstruct(X)
        out = {"test_reconstruction_error": float(np.mean((rec.reshape(len(X), -1) - X.reshape(len(X), -1)) ** 2))}
        out.update(probe_accuracy(self, ds))
        return out

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        del prompt, label, temperature
        n = 64 if n is None else n
        path = Path(out or "samples.png")
        save_samples(self.sample(n, 1000, seed=seed), path, title=f"DBN: {n} samples (top-level Gibbs, down pass)")
        return f"wrote {n} samples to {path}"

    # ---- persistence ----------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        tensors = {}
        for i, layer in enumerate(self.layers_):
            t, _ = layer._fitted_state()
            tensors.update({f"layer{i}.{k}": v for k, v in t.items()})
        meta = {
            "input_shape_": list(self.input_shape_),
            "n_features_in_": self.n_features_in_,
            "n_epochs_": self.n_epochs_,
            "layer_inputs": [layer.n_features_in_ for layer in self.layers_],
        }
        return tensors, meta

    def _restore_state(self, tensors, meta):
        self.layers_ = []
        for i, n_in in enumerate(meta["layer_inputs"]):
            cls = GaussianRBM if i == 0 and self.visible == "gaussian" else RBM
            layer = cls(n_hidden=_sizes(self.hidden_sizes)[i], device=self.device, seed=_layer_seed(self.seed, i))
            prefix = f"layer{i}."
            layer._restore_state(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)},
                {"input_shape_": [n_in], "n_features_in_": n_in},
            )
            self.layers_.append(layer)
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_features_in_ = int(meta["n_features_in_"])
        self.n_epochs_ = meta.get("n_epochs_")


def _stacked_history(histories: list[list[dict]]) -> list[dict]:
    """One record per epoch over all layers; each layer's measures carry its number."""
    out, epoch = [], 0
    for i, history in enumerate(histories):
        for h in history:
            epoch += 1
            rec = {"epoch": epoch, "layer": i + 1}
            rec.update({f"{k}_layer{i + 1}": v for k, v in h.items() if k != "epoch"})
            out.append(rec)
    return out


# ---- the fine-tuned classifier -----------------------------------------------------------------
@dataclass(eq=False, repr=False, kw_only=True)
class DBNClassifier(SupervisedClassifier):
    """A sigmoid feed-forward network initialised from a greedily pretrained RBM stack, then
    fine-tuned with a softmax head by back-propagation (Hinton & Salakhutdinov, 2006).

    ``pretrain=False`` gives the same network from random initialisation. ``fit`` accepts
    ``unlabeled=X_more``: extra rows used only for pretraining (semi-supervised learning).
    ``module_`` is a plain ``nn.Sequential`` (Flatten, Linear, Sigmoid, ..., Linear), ready to export.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> DBNClassifier(hidden_sizes=(64,), pretrain_epochs=2, epochs=20).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test) > 0.9
    True
    """

    hidden_sizes: tuple = (256, 256)
    """Units of each sigmoid hidden layer (and of the RBM that pretrains it), input side first."""
    pretrain: bool = True
    """Initialise the hidden layers from a greedily trained RBM stack; False starts from random weights."""
    visible: str = "bernoulli"
    """Units of the first RBM: ``bernoulli`` needs inputs in [0, 1]; ``gaussian`` takes real values (a
    Gaussian RBM that standardises them, trained at half the learning rate)."""
    k: int = 1
    """Gibbs sampling steps behind each update (CD-k, or PCD-k with ``persistent``). Pretraining only."""
    persistent: bool = True
    """Keep the negative Gibbs chains running from one update to the next (persistent CD, Tieleman 2008);
    False restarts them at the data batch every update (CD-k). Pretraining only."""
    pretrain_lr: float = 0.1
    """Step size of the RBMs' contrastive-divergence updates during pretraining."""
    pretrain_epochs: int = 40
    """Passes over the data for each RBM during pretraining."""
    pretrain_batch_size: int = 10
    """Samples per contrastive-divergence update during pretraining."""
    momentum: float = 0.5
    """Fraction of the previous update added to the next one; 0 turns momentum off. Pretraining only
    (fine-tuning uses ``optimizer``)."""
    epochs: int = 100
    """Passes of supervised fine-tuning (backpropagation through the whole stack). It does not bound
    pretraining, which runs ``pretrain_epochs`` passes per RBM first: ``deepatlas train dbn --epochs N``
    changes only fine-tuning; add ``--set pretrain_epochs=M`` to shorten pretraining too."""
    batch_size: int = 32
    lr: float = 1e-3
    # A fixed budget: on digits the small validation split reaches its best accuracy early and
    # early stopping then keeps an under-trained network (0.936 test accuracy against 0.975).
    early_stopping: bool = False
    patience: int = 20
    standardize: bool = False

    # Pretraining fits RBMs, which are not data-parallel: under torchrun the classifier refuses
    # as a whole rather than pretrain one copy per process.
    _data_parallel: ClassVar[bool] = False

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": TupleOf(),
        "pretrain": Boolean(),
        "visible": Options(("bernoulli", "gaussian")),
        "k": Interval(int, 1, None),
        "persistent": Boolean(),
        "pretrain_lr": Interval(float, 0, None, "neither"),
        "pretrain_epochs": Interval(int, 1, None),
        "pretrain_batch_size": Interval(int, 1, None),
        "momentum": Interval(float, 0, 1, "left"),
    }

    def _rbm_lr(self, i: int) -> float:
        return self.pretrain_lr / 2 if i == 0 and self.visible == "gaussian" else self.pretrain_lr

    def _rbm_epochs(self) -> int:
        return self.pretrain_epochs

    def _rbm_batch_size(self) -> int:
        return self.pretrain_batch_size

    def _rbm_weight_decay(self) -> float:
        return 0.0

    def fit(
        self, X, y, *, unlabeled=None, validation_data=None, callbacks=(), checkpoint_dir=None, resume: bool = False
    ):
        """Pretrain on ``X`` (plus ``unlabeled`` rows, if given), then fine-tune on ``(X, y)``.
        The other arguments are those of :meth:`SupervisedClassifier.fit`."""
        self._unlabeled = None if unlabeled is None else check_features(unlabeled, "DBNClassifier")
        try:
            return super().fit(
                X, y, validation_data=validation_data, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume
            )
        finally:
            self._unlabeled = None

    @contextlib.contextmanager
    def _fitting(self, data, device):
        """Pretrain the RBM stack (under the seed, before the network is built from it), then
        fine-tune on one thread when the network is small."""
        X = data.X
        self._pretrained = None
        if self.pretrain:
            flat = X.reshape(len(X), -1)
            extra = getattr(self, "_unlabeled", None)
            if extra is not None:
                if int(np.prod(extra.shape[1:])) != flat.shape[1]:
                    raise InputError(
                        f"unlabeled has {int(np.prod(extra.shape[1:]))} features, but X has {flat.shape[1]}."
                    )
                flat = np.concatenate([flat, extra.reshape(len(extra), -1)])
            if self.visible == "bernoulli":
                check_unit_interval(flat, "DBNClassifier", hint=_GAUSSIAN_HINT)
            start = time.perf_counter()
            self._pretrained = pretrain_stack(self, flat)
            self.pretrain_seconds_ = time.perf_counter() - start
        widest = max((int(np.prod(X.shape[1:])), *_sizes(self.hidden_sizes)))
        small = device.type == "cpu" and widest * widest * self.batch_size < 2**22  # threads cost more than they give
        try:
            with one_thread() if small else contextlib.nullcontext():
                yield
        finally:
            self._pretrained = None

    def _build_module(self, sample_shape, n_outputs) -> nn.Sequential:
        """``Flatten -> [Linear -> Sigmoid] * len(hidden_sizes) -> Linear``: (B, *) -> (B, n_outputs);
        the hidden layers copy the pretrained RBMs' recognition weights when there are some."""
        n_in = int(np.prod(sample_shape))
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_in
        for h in _sizes(self.hidden_sizes):
            layers += [nn.Linear(width, h), nn.Sigmoid()]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        module = nn.Sequential(*layers)
        stack = getattr(self, "_pretrained", None)
        if stack:
            with torch.no_grad():
                for i, rbm in enumerate(stack):
                    weight, bias = hidden_affine(rbm)  # (nv, nh), (nh,) in the units of the layer's input
                    if i == 0:  # the module sees (X - mean_) / scale_
                        weight, bias = (
                            weight * torch.as_tensor(self.scale_)[:, None],
                            bias + torch.as_tensor(self.mean_) @ weight,
                        )
                    linear = module[1 + 2 * i]
                    linear.weight.copy_(weight.T)
                    linear.bias.copy_(bias)
        return module


def hidden_affine(rbm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, c)`` with ``p(h | x) = sigmoid(x W + c)`` for raw inputs ``x`` (a Gaussian RBM's own
    standardisation folded in), on the CPU."""
    nv, nh = rbm.n_features_in_, rbm.n_hidden
    A = rbm.A_.detach().cpu()
    W, c = A[:nv, :nh].clone(), A[nv, :nh].clone()
    if isinstance(rbm, GaussianRBM):
        s, m = torch.as_tensor(rbm.scale_), torch.as_tensor(rbm.mean_)
        W = W / s[:, None]
        c = c - m @ W
    return W, c


# The classifier is the default for `deepatlas train dbn --data <labelled data>`.
register_model(
    "dbn",
    task="classification",
    description="deep belief network: greedy RBM pretraining, fine-tuning",
    smoke={"data": "digits", "params": {"hidden_sizes": (8, 8), "pretrain_epochs": 1, "epochs": 2}},
)(DBNClassifier)
register_model("dbn", task="generative", smoke={"data": "digits", "params": {"hidden_sizes": (8, 8), "epochs": 1}})(DBN)


# ---- the convolutional DBN ---------------------------------------------------------------------
@register_model(
    "conv-dbn",
    task="classification",
    description="convolutional DBN: stacked convolutional RBMs",
    smoke={"data": "digits", "params": {"channels": (4, 4), "epochs": 1}},
)
@register_model("conv-dbn", task="generative", smoke={"data": "digits", "params": {"channels": (4, 4), "epochs": 1}})
@dataclass(eq=False, repr=False, kw_only=True)
class ConvDBN(TransformerMixin, ContrastiveDivergence):
    """Convolutional RBMs stacked greedily on images (Lee et al., 2009), a feature extractor.

    Layer i+1 is trained on layer i's hidden probability maps, max-pooled by ``pool_size``
    (1: no pooling). ``transform`` gives the flattened top maps; ``sample`` (only without pooling)
    runs Gibbs chains in the top layer and a down pass.

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ConvDBN(channels=(8, 8), epochs=2).fit(ds.X_train).transform(ds.X_test).shape
    (360, 128)
    """

    channels: tuple = (16, 32)
    """Filters of each convolutional RBM in the stack, bottom first; one layer per entry."""
    kernel_size: int = 3
    """Side of the square filters of every layer, in pixels ('valid' convolutions)."""
    pool_size: int = 1
    """Max-pooling window between layers and on the output of ``transform``; 1 does not pool (needed by
    ``sample``)."""
    lr: float = 0.5
    """Step size of each layer's contrastive-divergence update, averaged over the batch and over positions."""
    momentum: float = 0.5
    epochs: int = 10
    """Passes over the data for each layer of the stack."""
    batch_size: int = 32

    _parameter_constraints: ClassVar[dict] = {
        "channels": TupleOf(),
        "kernel_size": Interval(int, 1, None),
        "pool_size": Interval(int, 1, None),
    }

    def _layer(self, i: int, n_filters: int) -> ConvRBM:
        return ConvRBM(
            n_filters=n_filters,
            kernel_size=self.kernel_size,
            pool_size=1,
            k=self.k,
            persistent=self.persistent,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=_layer_seed(self.seed, i),
            device=self.device,
            verbose=self.verbose,
        )

    def fit(self, X, y=None):
        self._validate_params()
        X = ConvRBM._images(X, "ConvDBN")
        self.input_shape_ = tuple(X.shape[1:])
        self.layers_ = []
        data = X
        for i, c in enumerate(_sizes(self.channels)):
            if min(data.shape[2:]) < self.kernel_size:
                raise InputError(
                    f"ConvDBN layer {i + 1} gets {data.shape[2]}x{data.shape[3]} maps, smaller than kernel_size "
                    f"{self.kernel_size}: use fewer channels entries, a smaller kernel_size or pool_size."
                )
            layer = self._layer(i, c).fit(data)
            self.layers_.append(layer)
            data = self._up(layer, data)
        self.history_ = _stacked_history([layer.history_ for layer in self.layers_])
        self.n_epochs_ = self.epochs * len(self.layers_)
        return self

    def _up(self, layer: ConvRBM, data: np.ndarray) -> np.ndarray:
        maps = layer.hidden_maps(data)  # (n, K, H', W')
        if self.pool_size > 1:
            maps = torch.nn.functional.max_pool2d(torch.from_numpy(maps), self.pool_size, ceil_mode=True).numpy()
        return maps

    _fitted_attr: ClassVar[str] = "layers_"

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        data = ConvRBM._images(X, "ConvDBN")
        for layer in self.layers_:
            data = self._up(layer, data)
        return data.reshape(len(data), -1)

    @torch.no_grad()
    def sample(self, n_samples: int = 16, steps: int = 500, *, probabilities: bool = True, seed=None) -> np.ndarray:
        self._check_fitted()
        if self.pool_size > 1:
            raise InputError("ConvDBN.sample needs pool_size=1: max-pooling has no top-down inverse.")
        seed = self.seed if seed is None else seed
        h = self.layers_[-1].sample(n_samples, steps, probabilities=len(self.layers_) == 1 and probabilities, seed=seed)
        gen = make_generator(seed, self.layers_[0].W_.device)
        t = torch.as_tensor(np.asarray(h, dtype=np.float32), device=self.layers_[0].W_.device)
        for i in range(len(self.layers_) - 2, -1, -1):
            p = self.layers_[i]._visible_prob(t)
            t = p if (i == 0 and probabilities) else (torch.rand(p.shape, generator=gen, device=p.device) < p).float()
        return t.cpu().numpy().astype(np.float64)

    def filter_images(self):
        return self.layers_[0].filter_images()

    fit_dataset = DBN.fit_dataset

    def dataset_metrics(self, ds) -> dict:
        return probe_accuracy(self, ds)

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        del prompt, label, temperature
        n = 64 if n is None else n
        path = Path(out or "samples.png")
        save_samples(self.sample(n, 500, seed=seed), path, title=f"ConvDBN: {n} samples")
        return f"wrote {n} samples to {path}"

    def _fitted_state(self):
        self._check_fitted()
        tensors = {}
        for i, layer in enumerate(self.layers_):
            t, _ = layer._fitted_state()
            tensors.update({f"layer{i}.{k}": v for k, v in t.items()})
        shapes = [list(layer.input_shape_) for layer in self.layers_]
        return tensors, {"input_shape_": list(self.input_shape_), "layer_shapes": shapes, "n_epochs_": self.n_epochs_}

    def _restore_state(self, tensors, meta):
        self.layers_ = []
        for i, shape in enumerate(meta["layer_shapes"]):
            layer = self._layer(i, _sizes(self.channels)[i])
            prefix = f"layer{i}."
            layer._restore_state(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, {"input_shape_": shape}
            )
            self.layers_.append(layer)
        self.input_shape_ = tuple(meta["input_shape_"])
        self.n_epochs_ = meta.get("n_epochs_")
