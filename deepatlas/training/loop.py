"""The shared training loop.

Data that fits in memory stays as two tensors on the device; each epoch permutes them once and
slices mini-batches (no per-sample DataLoader, no collation). The step does exactly what a
hand-written torch loop does — forward, loss, ``zero_grad``, ``backward``, ``step`` — and keeps
the batch loss on the device, so no step waits for a ``.item()``. Everything else (validation,
early stopping, progress, checkpoints, tuner pruning) happens once per epoch in callbacks.

Families with other steps (GANs: two players, two optimisers; the VAE's extra logged term; the
autograd-free MLP step) subclass :class:`TrainingLoop` and override :meth:`TrainingLoop.train_step`,
returning a dict of named losses. They build it from :meth:`TrainingLoop.forward` (through the DDP
wrapper, under autocast) and :meth:`TrainingLoop.backward_step` (zero, backward, clip, step), so
no override can skip data parallelism, mixed precision or gradient clipping.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from deepatlas.errors import InputError, TrainingDiverged
from deepatlas.training import distributed


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (fused kernel where available), AdamW or SGD with Nesterov momentum 0.9."""
    params = list(params)
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") for p in params) else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise InputError(f"The 'optimizer' parameter must be one of 'adam', 'adamw', 'sgd'. Got {name!r} instead.")


class TrainingLoop:
    """Train ``module`` on in-memory tensors.

    Parameters
    ----------
    module : the network; ``module(xb)`` gives what ``loss_fn`` expects.
    loss_fn : ``loss_fn(output, yb) -> scalar tensor``.
    optimizer : a torch optimiser over ``module``'s parameters.
    epochs, batch_size : the budget.
    generator : the torch generator that orders the batches (seeded by the estimator).
    callbacks : objects with ``on_train_begin/on_epoch_end/on_train_end`` hooks.
    lr_for_messages : the learning rate, named in the divergence message.
    val_metrics : ``{name: fn(output, yb) -> per-batch sum}`` scored on the validation data.
    precision : ``"fp32"``, or ``"bf16"`` for bfloat16 autocast of the forward pass.
    clip_norm : clip the global gradient norm to this value before each step (``None``: no clipping).
    """

    def __init__(
        self,
        module: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        epochs: int,
        batch_size: int,
        generator: torch.Generator,
        callbacks: Sequence = (),
        lr_for_messages: float | None = None,
        val_metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
        precision: str = "fp32",
        clip_norm: float | None = None,
    ) -> None:
        self.module = module
        # Under torchrun the forward pass goes through DDP (gradients averaged across ranks);
        # ``module`` stays the plain network for evaluation and saving.
        self.world = distributed.world_size()
        self.rank = distributed.rank()
        device = next(module.parameters()).device
        self.net = distributed.wrap(module, device) if self.world > 1 else module
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
            if precision == "bf16"
            else contextlib.nullcontext
        )
        self.precision = precision
        self.clip_norm = clip_norm
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.generator = generator
        self.callbacks = list(callbacks)
        self.lr_for_messages = lr_for_messages
        self.val_metrics = val_metrics or {}
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self.stop_training = False
        self.trace_dir = os.environ.get("DEEPATLAS_DDP_TRACE")  # debugging aid: see distributed.py

    # -- one step ---------------------------------------------------------------------------
    def forward(self, xb: torch.Tensor):
        """The network's output on a training batch: through the DDP wrapper under torchrun, under
        bfloat16 autocast with ``precision="bf16"``."""
        with self.autocast():
            return self.net(xb)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer | None = None, params=None) -> None:
        """Zero the gradients, back-propagate ``loss``, clip the gradient norm (``clip_norm``) of
        ``params`` (default: the module's) and step ``optimizer`` (default: the loop's)."""
        optimizer = optimizer or self.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_norm:
            nn.utils.clip_grad_norm_(self.params if params is None else params, self.clip_norm, foreach=True)
        optimizer.step()

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor):
        """One optimiser step on one batch; returns the batch loss (a detached tensor) or a dict
        of them. Override for models with several players or optimisers, built from
        :meth:`forward` and :meth:`backward_step`."""
        output = self.forward(xb)
        with self.autocast():
            loss = self.loss_fn(output, yb)
        self.backward_step(loss)
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
        """Mean loss (``val_loss``) and the ``val_metrics`` over ``(X, y)`` in evaluation mode;
        each metric returns a per-batch sum. Distributed: each rank scores its share, then the
        sums are added across ranks."""
        was_training = self.module.training
        self.module.eval()
        n_total = len(X)
        if self.world > 1:
            X, y = X[self.rank :: self.world], y[self.rank :: self.world]
        sums = {"val_loss": torch.zeros((), device=X.device)}
        sums.update({k: torch.zeros((), device=X.device) for k in self.val_metrics})
        for i in range(0, len(X), batch_size):
            xb, yb = X[i : i + batch_size], y[i : i + batch_size]
            with self.autocast():
                out = self.module(xb)
                sums["val_loss"] += self.loss_fn(out, yb).float() * len(xb)
            for k, fn in self.val_metrics.items():
                sums[k] += fn(out, yb)
        self.module.train(was_training)
        totals = distributed.all_reduce_sum(torch.stack(list(sums.values())).float()).tolist()
        return {k: v / max(n_total, 1) for k, v in zip(sums, totals)}

    # -- checkpoints ----------------------------------------------------------------------------
    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors of the loop's own that carry over from one epoch to the next (none here; a
        subclass's running values), saved in the checkpoint."""
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`extra_state` gave (on the module's device)."""

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self, X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None
    ):
        self.X_val, self.y_val = X_val, y_val
        n = len(X)
        bs = min(self.batch_size, n)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        # A run resumed from the checkpoint of the epoch where early stopping ended it trains no more.
        last = self.start_epoch if self.stop_training else self.epochs
        try:
            for epoch in range(self.start_epoch, last):
                self.module.train()
                perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
                if self.world > 1:  # this rank's share of the same permutation; equal shares
                    perm = perm[self.rank : (n // self.world) * self.world : self.world]
                if perm.device != X.device:
                    perm = perm.to(X.device)
                Xp, yp = X[perm], y[perm]
                m = len(perm)
                step = self.train_step
                outs = [step(xb, yb) for xb, yb in zip(Xp.split(bs), yp.split(bs))]  # views, one split each
                if self.trace_dir:
                    distributed.write_trace(self.trace_dir, epoch, perm, self.module)
                weights = [bs] * (m // bs) + ([m % bs] if m % bs else [])
                # Batch losses stay on the device until the epoch ends: no per-step sync or op.
                w = torch.tensor(weights, dtype=torch.float32, device=X.device)
                if isinstance(outs[0], dict):
                    sums = {k: torch.stack([o[k] for o in outs]).float() @ w for k in outs[0]}
                else:
                    sums = {"loss": torch.stack(outs).float() @ w}
                totals = distributed.all_reduce_sum(torch.stack(list(sums.values())).float()).tolist()
                logs = {k: v / (m * self.world) for k, v in zip(sums, totals)}
                self._check_finite(epoch, logs)
                if X_val is not None and y_val is not None and len(X_val):
                    logs.update(self.evaluate(X_val, y_val))
                logs["epoch"] = epoch + 1
                self.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
                    break
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)
        return self.history

    def _check_finite(self, epoch: int, logs: dict[str, float]) -> None:
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            lr = f" (lr={self.lr_for_messages:g} now)" if self.lr_for_messages else ""
            raise TrainingDiverged(
                f"Training diverged: the {bad[0]} became {logs[bad[0]]} at epoch {epoch + 1}. "
                f"Try a lower learning rate{lr}."
            )
