"""A hand-written training step for MLP classifiers: ``Linear -> activation [-> Dropout]`` stacks.

At small batch sizes an MLP step costs more in framework overhead than in arithmetic (digits:
~1,600 steps of 200 x 64 x 100; the compute floor is ~0.07 s of a ~0.4 s fit). This step skips
autograd: the forward pass keeps what each layer's backward needs, the softmax-cross-entropy
gradient is formed directly (softmax - one_hot) / B, and each layer's gradients are written with
``torch.mm(..., out=param.grad)`` into buffers allocated once. The activations' derivatives are
the ATen backward kernels autograd itself calls (``threshold_backward``, ``tanh_backward``,
``gelu_backward``...), fed the same saved tensors. Dropout (Srivastava et al., 2014, "Dropout: a
simple way to prevent neural networks from overfitting") keeps each hidden unit with probability
keep = 1 - p and scales what it keeps by 1/keep, as ``nn.Dropout`` does, but draws its masks in
bulk: once per epoch (in chunks of at most ~1M values per layer for large data), 64 random bits at
a time from torch's global generator (``random_`` over the full int64 range), each word read as
four 16-bit numbers compared with ``round(keep * 65536)``, into a 0/1 float mask of (features,
rows) reused from epoch to epoch; a step takes the next (features, B) columns. ``nn.Dropout``'s
own draw (``bernoulli_``, one (B, features) tensor per step) cost more than the layer's matrix
product (~0.3 ms against ~0.03 ms for 200 x 100 on one thread); the bulk draw spends 16 bits, a quarter of one 64-bit
generator call, per value: a few percent of the step. The estimator seeds the global
generator for the fit and checkpoints save it at every epoch end, where the masks are drawn afresh,
so the same seed gives the same numbers and a resumed fit continues exactly; the masks are not
``nn.Dropout``'s (the keep rate is ``round(keep * 65536) / 65536``, within 1e-5 of keep), so a
fit with dropout ends elsewhere than the autograd path's, at the same accuracy up to seed-to-seed
spread (docs/results-performance.md). The 1/keep costs nothing: it is the ``alpha`` of the next
layer's matrix products (forward, weight gradient, input gradient), and for ReLU the backward
pass's mask is the saved masked output's own zeros (``threshold_backward``). The optimiser step calls the fused Adam/AdamW
kernel directly on the optimiser's own state tensors (the same two kernels ``Adam.step()``
launches, without its per-call Python bookkeeping, which costs about as much as the step's
arithmetic at this size); any other optimiser runs its ``step()``. Given the same masks, the numbers
equal autograd's up to float rounding (tests compare one step of both paths for every activation,
with and without dropout, the autograd one given the fast step's masks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.training import optim
from deepatlas.training.loop import TrainingLoop

aten = torch.ops.aten
_MASK_VALUES = 1 << 20  # the most mask values one bulk draw makes per hidden layer (4 MB in float32)


@dataclass(frozen=True)
class _Activation:
    """An activation in the step's terms: ``forward(z)`` may overwrite ``z``; ``backward(g, z, a)``
    is autograd's derivative kernel given the output gradient, the input (only when ``needs_input``,
    else None) and the output. With dropout, ``a`` is the masked output: every kernel gives the right
    derivative where the unit was kept, and the gradient is zeroed where it was dropped."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    backward: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]
    needs_input: bool = False
    zero_passes_no_gradient: bool = False  # backward gives 0 wherever the (masked) output is 0: ReLU


def _activation(module: nn.Module) -> _Activation | None:
    """The step's version of ``module`` (the types of ``models/layers.py``'s table), or None."""
    kind = type(module)
    if kind is nn.ReLU:
        return _Activation(
            lambda z: z.clamp_(min=0), lambda g, z, a: aten.threshold_backward(g, a, 0), zero_passes_no_gradient=True
        )
    if kind is nn.LeakyReLU and module.negative_slope > 0:  # the output's sign is the input's
        s = module.negative_slope
        return _Activation(
            lambda z: F.leaky_relu_(z, s), lambda g, z, a: aten.leaky_relu_backward(g, a, s, True)
        )  # fmt: skip
    if kind is nn.Tanh:
        return _Activation(lambda z: z.tanh_(), lambda g, z, a: aten.tanh_backward(g, a))
    if kind is nn.Sigmoid:
        return _Activation(lambda z: z.sigmoid_(), lambda g, z, a: aten.sigmoid_backward(g, a))
    if kind is nn.GELU:
        approx = module.approximate
        return _Activation(
            lambda z: F.gelu(z, approximate=approx),
            lambda g, z, a: aten.gelu_backward(g, z, approximate=approx),
            needs_input=True,
        )
    if kind is nn.ELU:
        alpha = module.alpha
        return _Activation(
            lambda z: F.elu(z, alpha), lambda g, z, a: aten.elu_backward(g, alpha, 1, 1, False, z), needs_input=True
        )
    return None


@dataclass(frozen=True)
class MLPPlan:
    """What the step needs of a network: its Linear layers and, after each hidden one, the
    activation and the dropout probability (0: none)."""

    linears: list[nn.Linear]
    activations: list[_Activation]
    dropouts: list[float]


def mlp_plan(module: nn.Module) -> MLPPlan | None:
    """The plan of ``[Flatten ->] (Linear -> activation [-> Dropout])* -> Linear`` (what
    ``mlp_stack`` builds), or None for any other network."""
    if not isinstance(module, nn.Sequential):
        return None
    layers = list(module)
    if layers and isinstance(layers[0], nn.Flatten) and layers[0].start_dim == 1 and layers[0].end_dim == -1:
        layers = layers[1:]
    linears: list[nn.Linear] = []
    acts: list[_Activation] = []
    drops: list[float] = []
    i = 0
    while i < len(layers):
        lin = layers[i]
        if not (isinstance(lin, nn.Linear) and type(lin) is nn.Linear and lin.bias is not None):
            return None
        linears.append(lin)
        i += 1
        if i == len(layers):
            return MLPPlan(linears, acts, drops)
        act = _activation(layers[i])
        if act is None:
            return None
        acts.append(act)
        i += 1
        p = 0.0
        if i < len(layers) and type(layers[i]) is nn.Dropout:
            if layers[i].inplace:
                return None
            p = float(layers[i].p)
            i += 1
        drops.append(p)
    return None  # ends on an activation: no output layer


def plain_mlp_layers(module: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a network the fast step can train (see :func:`mlp_plan`), or None."""
    plan = mlp_plan(module)
    return None if plan is None else plan.linears


class _SyncSteps:
    """Callback: keeps the optimiser's state current for checkpoints and for later fits."""

    def on_train_begin(self, loop) -> None:
        loop.new_masks()

    def on_epoch_end(self, loop, epoch, logs) -> None:
        loop.sync_steps()
        loop.new_masks()  # every epoch draws its own: a run resumed from this epoch's checkpoint repeats them

    def on_train_end(self, loop) -> None:
        loop.sync_steps()


class FastMLPLoop(TrainingLoop):
    """``TrainingLoop`` whose step is the manual forward/backward above; everything else
    (epochs, validation, callbacks, checkpoints) is inherited unchanged."""

    custom_loss = False  # the step forms the softmax cross-entropy gradient itself

    def __init__(self, module, loss_fn, optimizer, **kwargs) -> None:
        super().__init__(module, loss_fn, optimizer, **kwargs)
        plan = mlp_plan(module)
        assert plan is not None, "FastMLPLoop needs a Linear/activation/Dropout stack (see mlp_plan)"
        self.linears = plan.linears
        for lin in self.linears:  # gradient buffers, allocated once and overwritten each step
            lin.weight.grad = torch.zeros_like(lin.weight)
            lin.bias.grad = torch.zeros_like(lin.bias)
        # Per layer, once: the weight, its transpose and the bias as a column (views that follow
        # the optimiser's in-place updates), and the two gradient buffers.
        self._layers = [
            (lin.weight, lin.weight.t(), lin.bias[:, None], lin.weight.grad, lin.bias.grad) for lin in self.linears
        ]
        # Per hidden layer: the activation, and the dropout's keep probability (1: no dropout).
        self._hidden = [(act, 1.0 - p) for act, p in zip(plan.activations, plan.dropouts)]
        # Per layer: 1/keep of the dropout before it (1 for the first layer and after no dropout),
        # applied as the alpha of the layer's products; the masks themselves are 0/1.
        self._scale = [1.0] + [1.0 / keep for _, keep in self._hidden]
        self._dropout = any(keep < 1.0 for _, keep in self._hidden)
        self._zero = torch.zeros((1, 1), dtype=plan.linears[0].weight.dtype, device=plan.linears[0].weight.device)
        self._consts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._fused: tuple | None = None  # the direct fused-Adam call's tensor lists, once state exists
        self._rows = 0  # training rows per epoch (set by run): the width of one bulk draw of masks
        self._masks: list[torch.Tensor | None] = []  # per hidden layer: 0/1 masks of (features, columns)
        self._masks_width = self._cursor = 0  # the masks' columns; the next unused one

    @staticmethod
    def dropout_mask(features: int, columns: int, keep: float, out: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Fill ``out``, (features, columns), with 1 (kept, probability ``round(keep * 65536) / 65536``)
        and 0 from torch's global generator: ``words`` (at least features * columns / 4 int64, on
        ``out``'s device) takes 64 random bits each (``random_`` over the full int64 range), read as
        four 16-bit numbers, each compared with the threshold. Both buffers are reused from draw to
        draw. The caller scales what is kept by 1/keep."""
        n = features * columns
        bits = words.random_(-(2**63), None).view(torch.int16)[:n].view(features, columns)  # uniform 16-bit
        threshold = min(round(keep * 65536), 65535) - 32768  # P(bits < threshold) = (threshold + 32768) / 65536
        return torch.lt(bits, threshold, out=out)

    def new_masks(self) -> None:
        """Drop the undrawn rest of the masks: the next step draws a fresh block."""
        self._cursor = self._masks_width

    def _next_masks(self, batch: int, like: torch.Tensor) -> list[torch.Tensor | None]:
        """Each hidden layer's (features, batch) mask for this step (None where no dropout), as the
        next columns of the block drawn for the epoch (or for a chunk of it)."""
        if self._cursor + batch > self._masks_width:
            widest = max(lin.out_features for lin in self.linears[:-1])
            steps = max(1, min(-(-max(self._rows, batch) // batch), _MASK_VALUES // (widest * batch)))
            width = steps * batch
            if width != self._masks_width or not self._masks:  # buffers, once per fit (or batch size)
                self._masks = [
                    torch.empty((lin.out_features, width), dtype=like.dtype, device=like.device) if keep < 1 else None
                    for lin, (_, keep) in zip(self.linears, self._hidden)
                ]
                self._words = torch.empty(((widest * width + 3) // 4,), dtype=torch.int64, device=like.device)
                self._masks_width = width
            for m, (_, keep) in zip(self._masks, self._hidden):
                if m is not None:
                    self.dropout_mask(m.shape[0], width, keep, m, self._words)
            self._cursor = 0
        c = self._cursor
        self._cursor = c + batch
        return [None if m is None else m[:, c : c + batch] for m in self._masks]

    def run(self, X, *args, **kwargs):
        self._rows = len(X)
        self.callbacks.insert(0, _SyncSteps())  # first, so that checkpoints see the true counts
        try:
            with torch.no_grad():  # one no-grad scope for the whole fit instead of one per step
                return super().run(X, *args, **kwargs)
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
        if (
            type(opt) not in (torch.optim.Adam, torch.optim.AdamW, optim.Adam, optim.AdamW)
            or len(opt.param_groups) != 1
        ):
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
            if (type(opt) in (torch.optim.AdamW, optim.AdamW) or group.get("decoupled_weight_decay"))
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

    def _constants(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per batch size: a row of -1 (subtracts the one-hot target in one scatter), a vector of
        1/B (the bias gradient as one matrix-vector product, already averaged) and one of -1/B
        (the loss as one dot product)."""
        if batch not in self._consts:
            self._consts[batch] = (
                torch.full((1, batch), -1.0, dtype=like.dtype, device=like.device),
                torch.full((batch,), 1.0 / batch, dtype=like.dtype, device=like.device),
                torch.full((batch,), -1.0 / batch, dtype=like.dtype, device=like.device),
            )
        return self._consts[batch]

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor):
        # Feature-major layout: activations are (features, B). torch's CPU log-softmax over a
        # short last axis (10 classes) takes a slow path (~80 us at (200, 10) on one thread);
        # over the first axis of a (10, 200) tensor it takes ~5 us. The products need no copies
        # either way (MKL reads transposed operands as they are).
        batch = xb.shape[0]
        x = xb if xb.dim() == 2 else xb.reshape(batch, -1)  # (B, in)
        h = x.t()  # (in, B), a view
        acts_t = [x]  # each layer's input as (B, features), for the weight gradients
        saved = []  # per hidden layer: (activation input or None, masked activation output, mask or None)
        layers, hidden, scale = self._layers, self._hidden, self._scale
        masks = self._next_masks(batch, h) if self._dropout else None
        last = len(layers) - 1
        for i, (W, _, b_col, _, _) in enumerate(layers):
            h = torch.addmm(b_col, W, h, alpha=scale[i])  # (out, B); alpha: 1/keep of the dropout before
            if i < last:
                act = hidden[i][0]
                z = h if act.needs_input else None
                h = act.forward(h)
                mask = None if masks is None else masks[i]
                if mask is not None:
                    h.mul_(mask)  # 0/1; the 1/keep is the next layer's alpha
                saved.append((z, h, mask))
                acts_t.append(h.t())
        logp = F.log_softmax(h, dim=0)  # (classes, B)
        y_row = yb[None, :]  # (1, B)
        minus_one, mean_vec, minus_mean_vec = self._constants(batch, h)
        loss = logp.gather(0, y_row).view(-1).dot(minus_mean_vec)  # -mean log p(y)
        grad = logp.exp_()  # softmax, in place: (classes, B)
        grad.scatter_add_(0, y_row, minus_one)  # softmax - one_hot; the 1/B comes below
        inv_b = 1.0 / batch
        for i in range(last, -1, -1):
            _, Wt, _, gW, gb = layers[i]
            # dW = grad @ act^T / B and db = grad @ (1/B): the average (and 1/keep) folded into the products.
            torch.addmm(gW, grad, acts_t[i], beta=0, alpha=inv_b * scale[i], out=gW)
            torch.mv(grad, mean_vec, out=gb)
            if i:
                # the gradient at layer i's input, the previous layer's (masked, scaled) output
                grad = Wt.mm(grad) if scale[i] == 1.0 else torch.addmm(self._zero, Wt, grad, beta=0, alpha=scale[i])
                act = hidden[i - 1][0]
                z, a, mask = saved[i - 1]
                if mask is not None and not act.zero_passes_no_gradient:
                    grad.mul_(mask)
                grad = act.backward(grad, z, a)
        self._optimizer_step()
        return loss
