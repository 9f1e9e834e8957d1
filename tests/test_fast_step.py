"""The hand-written MLP step (training/fast_mlp.py) against autograd, for every activation of the
table and with dropout: one step from the same weights and batch must give the loss and gradients
of autograd through the same network with the step's own dropout masks applied as nn.Dropout
applies its own (kept units scaled by 1/(1 - p)); the masks keep units at the rate 1 - p, follow
the seed and change from step to step and epoch to epoch; whole fits through the estimator agree
with autograd's without dropout and repeat exactly under a seed with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepatlas.data import load_dataset
from deepatlas.models.layers import ACTIVATIONS, mlp_stack
from deepatlas.models.mlp import MLPClassifier, _use_fast_step
from deepatlas.training.fast_mlp import FastMLPLoop, mlp_plan


def _loops(activation: str, dropout: float, optimizer: str = "sgd"):
    """Two copies of one network, one under the fast loop and one under autograd's loop."""
    torch.manual_seed(0)
    net = mlp_stack(12, (16, 8), 5, activation, dropout)
    twin = mlp_stack(12, (16, 8), 5, activation, dropout)
    twin.load_state_dict(net.state_dict())

    def opt(m):  # plain SGD with lr 0: the step leaves the weights, and the gradients stay to compare
        return torch.optim.SGD(m.parameters(), lr=0.0) if optimizer == "sgd" else torch.optim.Adam(m.parameters())

    kw = dict(epochs=1, batch_size=7, generator=torch.Generator().manual_seed(0))
    fast = FastMLPLoop(net, nn.functional.cross_entropy, opt(net), **kw)
    from deepatlas.training.loop import TrainingLoop

    slow = TrainingLoop(twin, nn.functional.cross_entropy, opt(twin), **kw)
    return fast, slow


def _batch():
    return torch.randn(7, 12, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 4, 0, 1])


def _reference_step(module: nn.Sequential, x, y, masks):
    """Autograd through ``module``'s layers, each Dropout replaced by the given (features, B) 0/1
    mask and the 1/(1 - p) scale: nn.Dropout's computation with these masks."""
    h, k = x, 0
    for layer in module:
        if isinstance(layer, nn.Dropout):
            h = h * masks[k].t() / (1 - layer.p)
            k += 1
        else:
            h = layer(h)
    loss = nn.functional.cross_entropy(h, y)
    loss.backward()
    return loss


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_one_step_equals_autograd(activation, dropout):
    fast, slow = _loops(activation, dropout)
    x, y = _batch()
    torch.manual_seed(3)
    with torch.no_grad():
        loss_fast = fast.train_step(x, y)
    masks = [m[:, :7].clone() for m in fast._masks if m is not None]  # the step's: the block's first columns
    assert len(masks) == (2 if dropout else 0)
    slow.module.train()
    loss_slow = _reference_step(slow.module, x, y, masks)
    torch.testing.assert_close(loss_fast, loss_slow.detach(), rtol=1e-6, atol=1e-6)
    for (name, a), b in zip(fast.module.named_parameters(), slow.module.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)
        assert a.grad.abs().sum() > 0, name


def test_dropout_masks_keep_at_the_rate_and_follow_the_seed():
    """0/1 masks kept at the rate 1 - p (16-bit threshold: within 1e-5 of it); the same seed, the
    same masks and the same step; another seed, others; the next step and a new epoch, fresh ones."""
    out, words = torch.empty(400, 500), torch.empty(50_000, dtype=torch.int64)
    draws = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        draws.append(FastMLPLoop.dropout_mask(400, 500, 0.7, out, words).clone())
    assert draws[0].unique().tolist() == [0.0, 1.0]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert draws[0].mean().item() == pytest.approx(0.7, abs=0.004)  # 200,000 draws: sd 0.001
    for keep in (0.5, 0.9):
        torch.manual_seed(0)
        assert FastMLPLoop.dropout_mask(400, 500, keep, out, words).mean().item() == pytest.approx(keep, abs=0.004)
    grads = []
    for seed in (3, 3, 4):
        fast, _ = _loops("relu", 0.5)
        torch.manual_seed(seed)
        with torch.no_grad():
            fast.train_step(*_batch())
        grads.append(fast.module[1].weight.grad.clone())
    assert torch.equal(grads[0], grads[1]) and not torch.equal(grads[0], grads[2])
    fast, _ = _loops("relu", 0.5)
    torch.manual_seed(0)
    seen = []
    with torch.no_grad():
        for _ in range(2):
            fast.train_step(*_batch())
            seen.append(fast._masks[0][:, fast._cursor - 7 : fast._cursor].clone())
        fast.new_masks()  # what the end of an epoch does
        fast.train_step(*_batch())
        seen.append(fast._masks[0][:, :7].clone())
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])


def test_plan_takes_the_stacks_and_refuses_others():
    for act in ACTIVATIONS:
        for p in (0.0, 0.3):
            plan = mlp_plan(mlp_stack(4, (3, 3), 2, act, p))
            assert plan is not None and len(plan.linears) == 3 and plan.dropouts == [p, p]
    assert mlp_plan(nn.Sequential(nn.Linear(4, 3), nn.ReLU())) is None  # no output layer
    assert mlp_plan(nn.Sequential(nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 2))) is None
    assert mlp_plan(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.2, inplace=True), nn.Linear(3, 2))) is None
    assert mlp_plan(nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))) is None


def test_default_classifier_takes_the_fast_step():
    est = MLPClassifier()
    assert est.dropout == 0.3
    assert _use_fast_step(est, mlp_stack(64, est.hidden_sizes, 10, est.activation, est.dropout))
    assert not _use_fast_step(MLPClassifier(precision="bf16"), mlp_stack(64, (8,), 10))


@pytest.mark.parametrize("activation, dropout", [("relu", 0.3), ("gelu", 0.3), ("tanh", 0.0)])
def test_fits_agree_with_autograd_and_repeat(activation, dropout):
    """Whole fits with Adam: the fast one repeats itself exactly under a seed; without dropout it
    ends at autograd's weights, with dropout (other masks than nn.Dropout's) at its accuracy."""
    ds = load_dataset("digits")
    kw = dict(hidden_sizes=(32, 16), activation=activation, dropout=dropout, epochs=3, early_stopping=False, seed=5)
    fast = MLPClassifier(fast_step=True, **kw).fit(ds.X_train, ds.y_train)
    again = MLPClassifier(fast_step=True, **kw).fit(ds.X_train, ds.y_train)
    slow = MLPClassifier(fast_step=False, **kw).fit(ds.X_train, ds.y_train)
    for (name, a), c in zip(fast.module_.state_dict().items(), again.module_.state_dict().values()):
        assert torch.equal(a, c), name
    if dropout:
        assert abs(fast.score(ds.X_test, ds.y_test) - slow.score(ds.X_test, ds.y_test)) < 0.05
        return
    for (name, a), b in zip(fast.module_.state_dict().items(), slow.module_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert [h["loss"] for h in fast.history_] == pytest.approx([h["loss"] for h in slow.history_], rel=1e-5)
    assert np.array_equal(fast.predict(ds.X_test), slow.predict(ds.X_test))
