"""A hand-written training step for plain MLP classifiers (Linear/ReLU stacks, no dropout).

At small batch sizes an MLP step costs more in framework overhead than in arithmetic (digits:
~1,600 steps of 200 x 64 x 100; the compute floor is ~0.07 s of a ~0.4 s fit). This step skips
autograd: the forward pass keeps each layer's activations, the softmax-cross-entropy gradient is
formed directly (softmax - one_hot) / B, and each layer's gradients are written with
``torch.mm(..., out=param.grad)`` into buffers allocated once. The optimiser step calls the fused
Adam/AdamW kernel directly on the optimiser's own state tensors (the same two kernels
``Adam.step()`` launches, without its per-call Python bookkeeping, which costs about as much as the
step's arithmetic at this size); any other optimiser runs its ``step()``. The numbers equal
autograd's up to float rounding (tests compare both paths).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.training.loop import TrainingLoop


def plain_mlp_layers(module: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of ``Flatten -> (Linear -> ReLU)* -> Linear``, or None for anything else."""
    if not isinstance(module, nn.Sequential):
        return None
    layers = list(module)
    if layers and isinstance(layers[0], nn.Flatten):
        layers = layers[1:]
    linears = layers[0::2]
    acts = layers[1::2]
    if len(linears) != len(acts) + 1 or not all(isinstance(m, nn.Linear) and m.bias is not None for m in linears):
        return None
    if not all(type(a) is nn.ReLU for a in acts):
        return None
    return linears


class _SyncSteps:
    """Callback: keeps the optimiser's state current for checkpoints and for later fits."""

    def on_train_begin(self, loop) -> None:
        pass

    def on_epoch_end(self, loop, epoch, logs) -> None:
        loop.sync_steps()

    def on_train_end(self, loop) -> None:
        loop.sync_steps()


class FastMLPLoop(TrainingLoop):
    """``TrainingLoop`` whose step is the manual forward/backward above; everything else
    (epochs, validation, callbacks, checkpoints) is inherited unchanged."""

    custom_loss = False  # the step forms the softmax cross-entropy gradient itself

    def __init__(self, module, loss_fn, optimizer, **kwargs) -> None:
        super().__init__(module, loss_fn, optimizer, **kwargs)
        self.linears = plain_mlp_layers(module)
        assert self.linears is not None, "FastMLPLoop needs a plain Linear/ReLU stack"
        for lin in self.linears:  # gradient buffers, allocated once and overwritten each step
            lin.weight.grad = torch.zeros_like(lin.weight)
            lin.bias.grad = torch.zeros_like(lin.bias)
        # Per layer, once: the weight, its transpose and the bias as a column (views that follow
        # the optimiser's in-place updates), and the two gradient buffers.
        self._layers = [
            (lin.weight, lin.weight.t(), lin.bias[:, None], lin.weight.grad, lin.bias.grad) for lin in self.linears
        ]
        self._consts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._fused: tuple | None = None  # the direct fused-Adam call's tensor lists, once state exists

    def run(self, *args, **kwargs):
        self.callbacks.insert(0, _SyncSteps())  # first, so that checkpoints see the true counts
        try:
            with torch.no_grad():  # one no-grad scope for the whole fit instead of one per step
                return super().run(*args, **kwargs)
        finally:
            self.callbacks = [cb for cb in self.callbacks if not isinstance(cb, _SyncSteps)]

    def sync_steps(self) -> None:
        """Copy the kernel's step count into the optimiser's per-parameter counters."""
        if self._fused:
            for step in self._own_steps:
                step.copy_(self._shared_step)

    def _direct_adam(self):
        """Tensor lists for ``torch._fused_adam_`` when the optimiser is a fused Adam/AdamW over one
        parameter group whose state exists (after its first ``step()``); otherwise None."""
        opt = self.optimizer
        if type(opt) not in (torch.optim.Adam, torch.optim.AdamW) or len(opt.param_groups) != 1:
            return None
        group = opt.param_groups[0]
        if not group.get("fused") or group.get("capturable") or group.get("differentiable"):
            return None
        params = [p for p in group["params"] if p.grad is not None]
        if len(params) != len(group["params"]) or any(p not in opt.state or not opt.state[p] for p in params):
            return None
        st = [opt.state[p] for p in params]
        # One step counter for the kernel (all parameters hold the same count): one add per step
        # instead of a foreach over every tensor. The optimiser's own per-parameter counters (what
        # checkpoints save) are brought up to date at the end of every epoch (``on_epoch_end``).
        if any(not torch.equal(s["step"], st[0]["step"]) for s in st):
            return None
        shared = self._shared_step = st[0]["step"].clone()
        self._own_steps = [s["step"] for s in st]
        amsgrad = bool(group["amsgrad"])
        return (
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in st],
            [s["exp_avg_sq"] for s in st],
            [s["max_exp_avg_sq"] for s in st] if amsgrad else [],
            [shared] * len(st),
            amsgrad,
            torch._fused_adamw_
            if (type(opt) is torch.optim.AdamW or group.get("decoupled_weight_decay"))
            else torch._fused_adam_,
        )

    def _optimizer_step(self) -> None:
        if self._fused is None:
            self.optimizer.step()  # creates the state; later steps go straight to the kernel
            self._fused = self._direct_adam() or ()
            return
        if not self._fused:
            self.optimizer.step()
            return
        params, grads, m, v, vmax, steps, amsgrad, kernel = self._fused
        group = self.optimizer.param_groups[0]  # read each step: schedulers may change lr
        beta1, beta2 = group["betas"]
        self._shared_step.add_(1)
        kernel(
            params, grads, m, v, vmax, steps, amsgrad=amsgrad, lr=group["lr"], beta1=beta1, beta2=beta2,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
            grad_scale=None, found_inf=None,
        )  # fmt: skip

    def _constants(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per batch size: a row of -1 (subtracts the one-hot target in one scatter) and a
        vector of 1/B (the bias gradient as one matrix-vector product, already averaged)."""
        if batch not in self._consts:
            self._consts[batch] = (
                torch.full((1, batch), -1.0, dtype=like.dtype, device=like.device),
                torch.full((batch,), 1.0 / batch, dtype=like.dtype, device=like.device),
            )
        return self._consts[batch]

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor):
        # Feature-major layout: activations are (features, B). torch's CPU log-softmax over a
        # short last axis (10 classes) takes a slow path (~80 us at (200, 10) on one thread);
        # over the first axis of a (10, 200) tensor it takes ~5 us. The products need no copies
        # either way (MKL reads transposed operands as they are).
        batch = xb.shape[0]
        x = xb.reshape(batch, -1)  # (B, in)
        h = x.t()  # (in, B), a view
        acts_t = [x]  # each layer's input as (B, features), for the weight gradients
        acts = [h]  # the same as (features, B), for the ReLU masks
        layers = self._layers
        last = len(layers) - 1
        for i, (W, _, b_col, _, _) in enumerate(layers):
            h = torch.addmm(b_col, W, h)  # (out, B)
            if i < last:
                h.clamp_(min=0)
                acts.append(h)
                acts_t.append(h.t())
        logp = F.log_softmax(h, dim=0)  # (classes, B)
        y_row = yb[None, :]  # (1, B)
        loss = logp.gather(0, y_row).mean().neg_()
        minus_one, mean_vec = self._constants(batch, h)
        grad = logp.exp_()  # softmax, in place: (classes, B)
        grad.scatter_add_(0, y_row, minus_one)  # softmax - one_hot; the 1/B comes below
        inv_b = 1.0 / batch
        for i in range(last, -1, -1):
            _, Wt, _, gW, gb = layers[i]
            # dW = grad @ act^T / B and db = grad @ (1/B): the average folded into the products.
            torch.addmm(gW, grad, acts_t[i], beta=0, alpha=inv_b, out=gW)
            torch.mv(grad, mean_vec, out=gb)
            if i:
                grad = torch.ops.aten.threshold_backward(Wt.mm(grad), acts[i], 0)  # ReLU'
        self._optimizer_step()
        return loss
