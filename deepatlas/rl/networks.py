"""Network pieces the agents share: the hidden-layer activations, an MLP builder, Adam, and a
direct call of Adam's fused kernel for the off-policy agents' many small steps."""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.layers import ACTIVATIONS as LAYER_ACTIVATIONS
from deepatlas.models.layers import mlp_stack
from deepatlas.training import optim

# The agents' hidden layers take the shared table's two classic choices.
ACTIVATIONS = {name: LAYER_ACTIVATIONS[name] for name in ("relu", "tanh")}


def mlp(n_in: int, hidden_sizes, n_out: int, activation: str = "relu") -> nn.Sequential:
    """``[Linear -> act] * len(hidden_sizes) -> Linear``; (B, n_in) -> (B, n_out)."""
    return mlp_stack(n_in, hidden_sizes, n_out, activation, flatten=False)


def mlp_forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for a plain stack (no hooks): each layer's ``forward`` without ``Module.__call__``'s
    dispatch, which costs as much as a small layer's product."""
    for layer in net:
        x = layer.forward(x)
    return x


def adam(params, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam, with the fused kernel where the device has one (CPU and CUDA)."""
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return optim.Adam(params, **kwargs, **fused)


class AdamStep:
    """``opt.step()`` for a fused Adam without its per-call Python bookkeeping.

    An off-policy agent takes one or two Adam steps per environment step on small networks, where
    ``Optimizer.step`` (profiler hooks, the grad-mode wrapper, ``_init_group``'s checks of every
    parameter, grouping by device) costs several times the fused kernel it launches. After the
    optimiser's own first step (which creates its state), this calls the kernel it would call,
    ``torch._fused_adam_``, on the optimiser's own tensors with its own settings, after the same
    ``_foreach_add_`` of the step counters: the arithmetic and the state (checkpoints) are the
    optimiser's. Anything else (several groups, a parameter without a gradient, amsgrad, a state
    replaced by ``load_state_dict``, a non-fused optimiser) goes through ``opt.step()``.
    """

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self._state = None  # the optimiser's state object the lists below were read from
        self._lists: tuple | None = None

    def _read(self) -> tuple | None:
        opt = self.opt
        if not isinstance(opt, torch.optim.Adam) or len(opt.param_groups) != 1:
            return None
        group = opt.param_groups[0]
        if not group.get("fused") or group["amsgrad"] or group.get("capturable") or group.get("differentiable"):
            return None
        if group.get("decoupled_weight_decay") or isinstance(group["lr"], torch.Tensor):
            return None
        params = list(group["params"])
        if any(not opt.state.get(p) for p in params):
            return None
        st = [opt.state[p] for p in params]
        return params, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]

    def __call__(self) -> None:
        opt = self.opt
        if self._state is not opt.state:  # first step, or the state was loaded from a checkpoint
            opt.step()
            self._state, self._lists = opt.state, self._read()
            return
        grads = [p.grad for p in self._lists[0]] if self._lists else None
        if grads is None or any(g is None for g in grads):
            opt.step()
            return
        params, exp_avgs, exp_avg_sqs, steps = self._lists
        group = opt.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
            beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
            grad_scale=None, found_inf=None,
        )  # fmt: skip

    def zero_grad(self) -> None:
        """``opt.zero_grad(set_to_none=True)``."""
        if not self._lists:
            self.opt.zero_grad(set_to_none=True)
            return
        for p in self._lists[0]:
            p.grad = None
