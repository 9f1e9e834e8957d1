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
from deepatlas.training import distributed, optim


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (fused kernel where available), AdamW or SGD with Nesterov momentum 0.9 (torch's, without
    the ~1 s ``torch._dynamo`` import on first use: :mod:`deepatlas.training.optim`)."""
    params = list(params)
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") for p in params) else {}
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise InputError(f"The 'optimizer' parameter must be one of 'adam', 'adamw', 'sgd'. Got {name!r} instead.")


SCHEDULERS = ("cosine", "step", "plateau", "onecycle")


def make_scheduler(
    name: str | None, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, mode: str = "min"
):
    """A learning-rate schedule from :mod:`torch.optim.lr_scheduler`, and whether it steps per batch.

    ``cosine``: cosine annealing to 0 over ``epochs`` (Loshchilov & Hutter 2017, without restarts);
    ``step``: the rate times 0.1 after each third of the epochs; ``plateau``: the rate halved when
    the monitored score has not improved for 5 epochs; ``onecycle``: warm-up to 10x the rate over
    the first 30 % of the steps, then annealing (Smith & Topin 2019, "Super-convergence"), stepped after every batch.
    """
    sched = torch.optim.lr_scheduler
    if name is None:
        return None, False
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(epochs, 1)), False
    if name == "step":
        return sched.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1), False
    if name == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=5), False
    if name == "onecycle":
        max_lr = [10 * g["lr"] for g in optimizer.param_groups]
        return sched.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=max(steps_per_epoch, 1)), True
    raise InputError(
        f"The 'scheduler' parameter must be None or one of {', '.join(map(repr, SCHEDULERS))}. Got {name!r}."
    )


def _counted(batches, sizes: list[int]):
    """The batches, noting each one's number of samples in ``sizes``."""
    for batch in batches:
        sizes.append(len(batch[0]))
        yield batch


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
    sample_loss_fn : ``fn(output, yb) -> per-sample losses``; needed for per-sample weights
        (``run(..., sample_weight=w)``: the batch loss is the mean of ``w * loss``, as in Keras).
    scheduler, scheduler_per_batch : a learning-rate scheduler (see :func:`make_scheduler`),
        stepped after every batch or once per epoch (``ReduceLROnPlateau`` on ``scheduler_monitor``).
    """

    custom_loss = True
    """Whether the step goes through ``loss_fn`` (a hand-written step such as the plain-MLP one
    does not, so per-sample weights and other losses need this loop)."""

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
        sample_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        scheduler=None,
        scheduler_per_batch: bool = False,
        scheduler_monitor: str = "val_loss",
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
        self.sample_loss_fn = sample_loss_fn
        self.scheduler = scheduler
        self.scheduler_per_batch = scheduler_per_batch
        self.scheduler_monitor = scheduler_monitor
        self.weights: torch.Tensor | None = None
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

    def weighted_step(self, xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor):
        """One optimiser step on the mean of the per-sample losses times their weights."""
        output = self.forward(xb)
        with self.autocast():
            loss = (self.sample_loss_fn(output, yb).float() * wb).mean()
        self.backward_step(loss)
        return loss.detach()

    def current_lr(self) -> float:
        """The learning rate of the first parameter group now."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _scheduler_epoch_end(self, logs: dict[str, float]) -> None:
        if self.scheduler is None or self.scheduler_per_batch:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            value = logs.get(self.scheduler_monitor, logs.get("val_loss", logs.get("loss")))
            self.scheduler.step(value)
        else:
            self.scheduler.step()

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
    def _steps(self, batches):
        """Run the step over ``batches`` (tuples of tensors), stepping a per-batch scheduler."""
        step = self.train_step if self.weights is None else self.weighted_step
        if self.scheduler is None or not self.scheduler_per_batch:
            return [step(*b) for b in batches]
        outs = []
        for b in batches:
            outs.append(step(*b))
            self.scheduler.step()
        return outs

    def run(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        X_val: torch.Tensor | None = None,
        y_val: torch.Tensor | None = None,
        *,
        sample_weight: torch.Tensor | None = None,
    ):
        """Train for the remaining epochs and return the history (one dict of logs per epoch).
        ``sample_weight``: one weight per training sample (needs ``sample_loss_fn``)."""
        if sample_weight is not None and self.sample_loss_fn is None:
            raise InputError(f"{type(self).__name__} cannot weight samples: it was built without a sample_loss_fn.")
        self.weights = sample_weight
        self.X_val, self.y_val = X_val, y_val
        # X may be a source of prepared batches (``batches(generator)``) instead of a tensor.
        streamed = callable(getattr(X, "batches", None))
        self._device = next(self.module.parameters()).device
        n = len(X)
        bs = min(self.batch_size, n)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        # A run resumed from the checkpoint of the epoch where early stopping ended it trains no more.
        last = self.start_epoch if self.stop_training else self.epochs
        try:
            for epoch in range(self.start_epoch, last):
                self.module.train()
                if streamed:  # batches from a torch Dataset/DataLoader, prepared on the way
                    sizes: list[int] = []
                    outs = self._steps(_counted(X.batches(self.generator), sizes))
                    weights, m, device = sizes, sum(sizes), self._device
                else:
                    perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
                    if self.world > 1:  # this rank's share of the same permutation; equal shares
                        perm = perm[self.rank : (n // self.world) * self.world : self.world]
                    if perm.device != X.device:
                        perm = perm.to(X.device)
                    Xp, yp = X[perm], y[perm]
                    m = len(perm)
                    parts = [Xp.split(bs), yp.split(bs)]  # views, one split each
                    if sample_weight is not None:
                        parts.append(sample_weight[perm].split(bs))
                    outs = self._steps(zip(*parts))
                    if self.trace_dir:
                        distributed.write_trace(self.trace_dir, epoch, perm, self.module)
                    weights, device = [bs] * (m // bs) + ([m % bs] if m % bs else []), X.device
                # Batch losses stay on the device until the epoch ends: no per-step sync or op.
                w = torch.tensor(weights, dtype=torch.float32, device=device)
                if isinstance(outs[0], dict):
                    sums = {k: torch.stack([o[k] for o in outs]).float() @ w for k in outs[0]}
                else:
                    sums = {"loss": torch.stack(outs).float() @ w}
                totals = distributed.all_reduce_sum(torch.stack(list(sums.values())).float()).tolist()
                logs = {k: v / (m * self.world) for k, v in zip(sums, totals)}
                self._check_finite(epoch, logs)
                if X_val is not None and y_val is not None and len(X_val):
                    logs.update(self.evaluate(X_val, y_val))
                self._scheduler_epoch_end(logs)
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
