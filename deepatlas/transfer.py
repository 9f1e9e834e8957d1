"""Transfer learning: reuse a trained network's layers on a new task, against training from scratch.

The network of a fitted MLP or CNN classifier is copied except its last Linear layer (the head),
which is replaced by a freshly initialised one with as many outputs as the new task has classes.
Reused layers are frozen or fine-tuned at ``reuse_lr_factor`` x ``lr``; the head trains at ``lr``.
The factor is 1 by default. With scarce labels a fit makes few optimiser steps (31 labels in
batches of 64 is one step an epoch, so at most 100 steps in 100 epochs), and at 0.1 x lr the
reused layers barely move: fine-tuning then degenerates into training a new head on features
specific to the source classes. On digits 0-4 -> 5-9 with 5 % of the labels that cost 17 points
against training from scratch (MLP; 1 step an epoch), and the factor 1 was the better default
for the CNN on both data sets too; only the MLP on MNIST-1D preferred 0.1, by 2 points
(``benchmarks/bench_transfer.py``). A factor below 1 suits long fine-tuning on many labels.

Yosinski, Clune, Bengio & Lipson (2014), "How transferable are features in deep neural
networks?" measure how lower layers carry over better than upper ones, which is
what the freezing policies expose:

* ``none``          every reused layer is fine-tuned (at ``reuse_lr_factor`` x ``lr``);
* ``features``      the reused layers below the last hidden block are frozen; that block is
                    fine-tuned; for a CNN the last convolutional block, for an MLP the last
                    hidden Linear layer;
* ``all-but-head``  every reused layer is frozen; only the new head learns.

Frozen batch-norm layers keep their running statistics (momentum 0). The input standardisation
of the source model is kept, so the reused first layer sees inputs scaled as in pre-training
(the target's own statistics, or the larger of the two scales per feature, did no better in
our digits runs, though pixels nearly constant in the source reach 100 standard deviations).
The same network, freshly initialised, is trained on the same labelled subset for comparison.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepatlas.errors import InputError
from deepatlas.training import optim

FREEZE = ("none", "features", "all-but-head")
_BLOCK = (nn.Linear, nn.Conv1d, nn.Conv2d)
_PARAMETRISED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def frozen_layers(module: nn.Sequential, freeze: str) -> list[int]:
    """Indices of the layers of ``module`` (head = last layer) that the policy freezes."""
    body = [i for i, m in enumerate(module) if isinstance(m, _PARAMETRISED) and i < len(module) - 1]
    if freeze == "none" or not body:
        return []
    if freeze == "all-but-head":
        return body
    blocks = [i for i in body if isinstance(module[i], _BLOCK)]
    last_block = blocks[-1] if blocks else len(module)
    return [i for i in body if i < last_block]


def _optimizer(name: str, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    return optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def _transfer_class(cls: type) -> type:
    """A subclass of the source's estimator class whose module starts from the source's weights.

    It declares no new parameters, so a saved transfer run loads back as a plain ``cls``."""

    class Transfer(cls):
        _source_module: nn.Sequential
        _source_mean: np.ndarray
        _source_scale: np.ndarray
        _freeze: str = "none"
        _reuse_lr_factor: float = 1.0

        def _build_module(self, sample_shape, n_outputs):
            module = super()._build_module(sample_shape, n_outputs)
            head = f"{len(module) - 1}."
            state = {k: v for k, v in self._source_module.state_dict().items() if not k.startswith(head)}
            module.load_state_dict(state, strict=False)  # every layer but the new head
            self.frozen_layers_ = frozen_layers(module, self._freeze)
            for i in self.frozen_layers_:
                for p in module[i].parameters():
                    p.requires_grad_(False)
                if isinstance(module[i], (nn.BatchNorm1d, nn.BatchNorm2d)):
                    module[i].momentum = 0.0  # running statistics stay those of pre-training
            return module

        def _fit_statistics(self, X):
            self.mean_, self.scale_ = self._source_mean, self._source_scale  # the source's preprocessing

        def _make_optimizer(self, module):
            head = list(module[len(module) - 1].parameters())
            head_ids = {id(p) for p in head}
            reused = [p for p in module.parameters() if p.requires_grad and id(p) not in head_ids]
            groups = [{"params": head, "lr": self.lr}]
            if reused:
                groups.append({"params": reused, "lr": self.lr * self._reuse_lr_factor})
            return _optimizer(self.optimizer, groups, self.lr, self.weight_decay)

    Transfer.__name__ = Transfer.__qualname__ = cls.__name__
    return Transfer


def check_source(source) -> None:
    module = getattr(source, "module_", None)
    if not (isinstance(module, nn.Sequential) and isinstance(module[len(module) - 1], nn.Linear)):
        raise InputError(
            f"--from must be a trained MLP or CNN classifier run (a network ending in a Linear head). "
            f"Got a {type(source).__name__} instead."
        )
    if not hasattr(source, "classes_"):
        raise InputError(f"--from must be a classifier run. Got a {type(source).__name__} instead.")


def label_subset(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a stratified ``fraction`` of ``y``: at least one sample of every class."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise InputError(f"--labels-fraction must be a number in (0, 1]. Got {fraction!r} instead.")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def transfer(
    source,
    ds,
    *,
    freeze: str = "none",
    labels_fraction: float = 1.0,
    reuse_lr_factor: float = 1.0,
    params: dict | None = None,
    seed: int = 0,
):
    """Fine-tune ``source`` on ``ds`` and train the same network from scratch on the same labels.

    Returns ``(transferred, scratch, metrics)``; both estimators are fitted with ``ds``'s
    validation split for early stopping, and ``metrics`` holds both test scores.

    >>> from deepatlas.data import load_dataset                    # doctest: +SKIP
    >>> src = MLPClassifier().fit(*load_dataset("digits-0to4")...)  # doctest: +SKIP
    >>> t, s, m = transfer(src, load_dataset("digits-5to9"), labels_fraction=0.05)  # doctest: +SKIP
    """
    from deepatlas.runs import supervised_metrics

    check_source(source)
    if freeze not in FREEZE:
        raise InputError(f"--freeze must be one of {', '.join(FREEZE)}. Got {freeze!r} instead.")
    if not isinstance(reuse_lr_factor, (int, float)) or not 0 < reuse_lr_factor <= 1:
        raise InputError(f"--reuse-lr-factor must be a number in (0, 1]. Got {reuse_lr_factor!r} instead.")
    if ds.task != "classification":
        raise InputError(f"--data must be a classification dataset for transfer. Got a {ds.task} dataset instead.")
    if tuple(ds.sample_shape) != tuple(source.input_shape_):
        raise InputError(
            f"--data samples have shape {tuple(ds.sample_shape)}, but the source model was trained on "
            f"{tuple(source.input_shape_)}."
        )
    keep = label_subset(ds.y_train, labels_fraction, seed)
    X, y = ds.X_train[keep], ds.y_train[keep]
    cls = type(source)
    base = dict(source.get_params(deep=False), seed=seed, device=source.device)
    if "fast_step" in base:
        base["fast_step"] = False  # the hand-written MLP step would write gradients of frozen layers
    unknown = sorted(set(params or {}) - set(base))
    if unknown:
        raise InputError(f"Unknown parameter {unknown[0]!r} for {cls.__name__}.")
    base.update(params or {})

    Transfer = _transfer_class(cls)
    tuned = Transfer(**base)
    tuned._source_module = source.module_
    tuned._source_mean, tuned._source_scale = source.mean_, source.scale_
    tuned._freeze, tuned._reuse_lr_factor = freeze, float(reuse_lr_factor)
    tuned.fit(X, y, validation_data=(ds.X_val, ds.y_val))
    scratch = cls(**base).fit(X, y, validation_data=(ds.X_val, ds.y_val))

    metrics: dict = {"freeze": freeze, "labels_fraction": labels_fraction, "n_train_labels": int(len(keep))}
    metrics["reuse_lr_factor"] = float(reuse_lr_factor)
    # train accuracy on the labelled rows the models were fitted on, not on the whole training split
    labelled = dataclasses.replace(ds, X_train=X, y_train=y)
    for name, est in (("transfer", tuned), ("scratch", scratch)):
        for k, v in supervised_metrics(est, labelled).items():
            metrics[f"{name}_{k}"] = v
        metrics[f"{name}_epochs"] = est.n_epochs_
        metrics[f"{name}_fit_seconds"] = est.fit_seconds_
    metrics["test_accuracy"] = metrics["transfer_test_accuracy"]
    metrics["gain_test_accuracy"] = metrics["transfer_test_accuracy"] - metrics["scratch_test_accuracy"]
    metrics["frozen_layers"] = tuned.frozen_layers_
    return tuned, scratch, metrics


def plot_curves(tuned, scratch, path: str | Path, title: str = "") -> Path:
    """Validation accuracy (and training loss) per epoch of both models on one figure."""
    from deepatlas.plotting import new_figure, save_figure

    fig, (ax, ax2) = new_figure(1, 2, figsize=(9, 3.6))
    for label, est, style in (("transfer", tuned, "-"), ("from scratch", scratch, "--")):
        epochs = [h["epoch"] for h in est.history_]
        ax.plot(epochs, [h.get("val_accuracy") for h in est.history_], style, label=label)
        ax2.plot(epochs, [h.get("loss") for h in est.history_], style, label=label)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=title or "transfer vs scratch")
    ax2.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax.legend()
    ax2.legend()
    return save_figure(fig, path)


def write_transfer_run(out: str | Path, tuned, scratch, metrics: dict, *, source_run: str, data_spec: str, ds):
    """A run directory for the transferred model, with the scratch model in ``scratch/``."""
    from deepatlas import __version__
    from deepatlas._io import write_json
    from deepatlas.saving import save_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)
    extra = {"data": data_spec, "data_task": ds.task, "sample_shape": list(ds.sample_shape)}
    extra.update(feature_names=ds.feature_names, target_name=ds.target_name, package_version=__version__)
    save_model(tuned, out, extra_config=dict(extra, transfer_from=str(source_run), freeze=metrics["freeze"]))
    save_model(scratch, out / "scratch", extra_config=extra)
    write_json(out / "history.json", tuned.history_)
    write_json(out / "scratch" / "history.json", scratch.history_)
    plot_curves(tuned, scratch, out / "plots" / "transfer-vs-scratch.png", title=f"{data_spec}: transfer vs scratch")
    write_json(out / "metrics.json", metrics)
    return out
