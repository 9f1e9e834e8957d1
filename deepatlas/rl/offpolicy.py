"""Off-policy actor-critic agents for continuous actions: the pieces SAC, TD3 and DDPG share.

The actor works in a normalised action space ``[-1, 1]^D`` (its last step is a ``tanh``); the
environment gets ``center + scale * a`` with ``center``/``scale`` read from the action box, and the
replay buffer stores the normalised actions, as Stable-Baselines3 does, so that the
rl-baselines3-zoo hyperparameters (exploration noise in particular) mean the same thing here.

The schedule follows Stable-Baselines3's off-policy algorithms: ``learning_starts`` steps of
uniformly random actions fill the buffer first; then, every ``train_freq`` vector steps,
``gradient_steps`` updates on batches of ``batch_size`` transitions drawn uniformly from the buffer;
the target networks follow the online ones by Polyak averaging with weight ``tau``.

References: Lillicrap et al. (2016), "Continuous control with deep reinforcement learning" (DDPG);
Fujimoto, van Hoof & Meger (2018), "Addressing Function Approximation Error in Actor-Critic
Methods" (TD3); Haarnoja et al. (2018), "Soft Actor-Critic Algorithms and Applications" (SAC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Interval, Options
from deepatlas.errors import InputError
from deepatlas.rl.base import Agent
from deepatlas.rl.buffers import ReplayBuffer
from deepatlas.rl.envs import env_id_of
from deepatlas.rl.networks import ACTIVATIONS, mlp, mlp_forward

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the range of the Gaussian's log standard deviation (SB3's)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# The hidden activations applied in place on a layer's fresh output (what neither the product's
# backward nor the activation's needs: relu's and tanh's backward read their result): the same
# numbers without one more (B, width) tensor per layer.
_IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_}
# The registry cards' smoke run (tests/test_contract.py): a few updates of a tiny network.
SMOKE = {
    "data": "Pendulum-v1",
    "total_timesteps": 200,
    "params": {"hidden_sizes": (8,), "learning_starts": 50, "batch_size": 16},
}


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``a = tanh(u)`` with ``u ~ N(mean, exp(log_std)^2)`` per dimension, summed
    over the last axis: ``log N(u) - sum log(1 - tanh(u)^2)`` (the change of variables of
    Haarnoja et al., 2018, appendix C), with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``
    written so that it stays finite where ``tanh(u)`` rounds to +-1."""
    z = (u - mean) * torch.exp(-log_std)
    gauss = (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
    log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
    return gauss - log_det


# The replay-buffer agents' shared settings (DQN's too: deepatlas/rl/dqn.py).
REPLAY_CONSTRAINTS: dict = {
    "activation": Options(tuple(ACTIVATIONS)),
    "buffer_size": Interval(int, 1, None),
    "learning_starts": Interval(int, 0, None),
    "batch_size": Interval(int, 1, None),
    "tau": Interval(float, 0, 1, "right"),
    "train_freq": Interval(int, 1, None),
    "gradient_steps": Interval(int, -1, None),
}


def _activations_in_place(net: nn.Sequential) -> nn.Sequential:
    """Let ``net``'s ReLUs overwrite the fresh output of the ``Linear`` before them (see ``_IN_PLACE``)."""
    for layer in net:
        if isinstance(layer, nn.ReLU):
            layer.inplace = True
    return net


class SquashedGaussianActor(nn.Module):
    """Observations (B, O) -> a Gaussian over (B, D) pre-squash actions; ``tanh`` squashes a sample
    into ``[-1, 1]^D`` (SAC's policy). One output layer gives the mean and the log standard
    deviation (clamped to [-20, 2])."""

    def __init__(self, obs_dim: int, hidden_sizes, act_dim: int, activation: str) -> None:
        super().__init__()
        self.net = _activations_in_place(mlp(obs_dim, hidden_sizes, 2 * act_dim, activation))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = mlp_forward(self.net, obs).chunk(2, dim=-1)  # (B, D) each
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None, with_log_prob: bool = True):
        """(actions in [-1, 1] (B, D), their log-probabilities (B,) or None), reparameterised."""
        mean, log_std = self.forward(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + torch.exp(log_std) * noise
        return torch.tanh(u), squashed_gaussian_log_prob(u, mean, log_std) if with_log_prob else None

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


class DeterministicActor(nn.Module):
    """Observations (B, O) -> actions in ``[-1, 1]^D`` (B, D): an MLP ending in ``tanh`` (TD3/DDPG)."""

    def __init__(self, obs_dim: int, hidden_sizes, act_dim: int, activation: str) -> None:
        super().__init__()
        self.net = _activations_in_place(mlp(obs_dim, hidden_sizes, act_dim, activation))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(mlp_forward(self.net, obs))

    deterministic = forward


class Critics(nn.Module):
    """``n`` independent Q-networks on (observation, normalised action): (B, O), (B, D) -> (n, B).

    The ``n`` MLPs (``[Linear -> act] * len(hidden_sizes) -> Linear``, each initialised as its own
    ``nn.Linear`` stack would be) are kept as stacked weights: layer ``l`` is one (n, in, out)
    tensor and one (n, 1, out) bias, and a forward pass is one batched product (``baddbmm``) per
    layer for all ``n`` critics. The arithmetic is that of ``n`` separate networks; the stacked form
    halves the number of operations (and of autograd nodes, optimiser and Polyak tensors) of twin
    critics, which at these sizes cost about as much as their matrix products on a CPU.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes, activation: str, n: int) -> None:
        super().__init__()
        self.n = n
        nets = [mlp(obs_dim + act_dim, hidden_sizes, 1, activation) for _ in range(n)]
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].weight.detach().t() for layers in linears]).contiguous())
            for i in range(len(linears[0]))
        )  # layer i: (n, in, out)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].bias.detach()[None] for layers in linears]))
            for i in range(len(linears[0]))
        )  # layer i: (n, 1, out)
        self.act = _IN_PLACE[activation]
        self._register_load_state_dict_pre_hook(self._from_separate_networks)

    @staticmethod
    def _from_separate_networks(state_dict, prefix, *args) -> None:
        """Runs saved before the critics were stacked hold ``qs.<critic>.<position>.weight/bias``
        (one ``nn.Linear`` stack per critic): stack them into this layout, so those runs still load."""
        old = [k for k in state_dict if k.startswith(prefix + "qs.")]
        if not old:
            return
        split = [k[len(prefix) + 3 :].split(".") for k in old]  # [critic, position, weight|bias]
        critics = sorted({int(c) for c, _, _ in split})
        positions = sorted({int(p) for _, p, _ in split})  # the Linear layers' places in each stack
        for i, pos in enumerate(positions):
            w = [state_dict.pop(f"{prefix}qs.{c}.{pos}.weight") for c in critics]
            b = [state_dict.pop(f"{prefix}qs.{c}.{pos}.bias") for c in critics]
            state_dict[f"{prefix}weights.{i}"] = torch.stack([t.t() for t in w]).contiguous()
            state_dict[f"{prefix}biases.{i}"] = torch.stack([t[None] for t in b])

    def _layers(self) -> tuple[list, list]:
        # ParameterList's own iteration costs more than a small layer's product
        return list(self.weights._parameters.values()), list(self.biases._parameters.values())

    def _q(self, x: torch.Tensor, weights, biases) -> torch.Tensor:
        """(m, B, O + D) -> (m, B) through the critics whose layers are given."""
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        return x.squeeze(-1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """(n, B) Q-values; ``frozen`` keeps the critics' parameters out of the graph (gradients
        reach the inputs only: the actor's update)."""
        x = torch.cat([obs, actions], dim=-1)  # (B, O + D)
        ws, bs = self._layers()
        if frozen:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
        return self._q(x.expand(self.n, *x.shape), ws, bs)

    def single(self, i: int, obs: torch.Tensor, actions: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """Critic ``i`` only, (B,): TD3's and DDPG's actor climbs the first one."""
        x = torch.cat([obs, actions], dim=-1)[None]  # (1, B, O + D)
        ws, bs = self._layers()
        ws, bs = [w[i : i + 1] for w in ws], [b[i : i + 1] for b in bs]
        if frozen:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
        return self._q(x, ws, bs)[0]


class ScaledPolicy(nn.Module):
    """Observations (B, *O) -> the deterministic action (B, D) in the environment's units: the
    actor's ``[-1, 1]`` output scaled to the action box and clipped into it (what ``predict``
    returns; the exported graph)."""

    def __init__(self, actor: nn.Module, low, high) -> None:
        super().__init__()
        self.actor = actor
        low = torch.as_tensor(np.asarray(low, np.float32))
        high = torch.as_tensor(np.asarray(high, np.float32))
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.center + self.scale * self.actor.deterministic(obs.flatten(1))
        return torch.minimum(torch.maximum(a, self.low), self.high)


@torch.no_grad()
def polyak(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) target + tau online`` for paired parameter lists, in one fused call (the
    agents make the lists once: walking the modules every update costs more than the call)."""
    torch._foreach_lerp_(target, online, tau)


@dataclass(eq=False, repr=False, kw_only=True)
class OffPolicyContinuous(Agent):
    """Replay, the Stable-Baselines3 update schedule and the action scaling of SAC, TD3 and DDPG.

    A subclass builds its networks in ``_build_networks``, chooses exploratory normalised actions
    in ``_explore`` and updates in ``_update(batches, n_steps)``.
    """

    lr: float = 1e-3
    """Learning rate of Adam on every network (> 0)."""
    hidden_sizes: tuple = (256, 256)
    """Widths of the hidden layers of the actor and of each critic, input side first."""
    activation: str = "relu"
    """Activation of the hidden layers: ``"relu"`` or ``"tanh"``."""
    buffer_size: int = 1_000_000
    """Transitions the replay buffer holds (the oldest go first); never more than ``total_timesteps``."""
    learning_starts: int = 100
    """Environment steps of uniformly random actions, without training, before learning begins."""
    batch_size: int = 256
    """Transitions drawn from the replay buffer for each gradient step."""
    tau: float = 0.005
    """Polyak weight in (0, 1] of each target-network update (1 copies the online network)."""
    train_freq: int = 1
    """Train every this many vector steps (each step plays all ``n_envs`` copies once)."""
    gradient_steps: int = 1
    """Gradient steps per training phase; -1 takes one per environment step played since the last
    phase, 0 none."""

    _parameter_constraints: ClassVar[dict] = dict(REPLAY_CONSTRAINTS)
    _continuous_actions: ClassVar[bool] = True
    _discrete_actions: ClassVar[bool] = False

    # ---- hooks of SAC / TD3 --------------------------------------------------------------------
    def _build_networks(self, device: torch.device) -> None:
        raise NotImplementedError

    def _explore(self, obs_t: torch.Tensor) -> np.ndarray:
        """Exploratory normalised actions (B, D) in [-1, 1] for a batch of observations."""
        raise NotImplementedError

    def _update(self, batches: tuple, n_steps: int) -> dict:
        raise NotImplementedError

    def _counters(self) -> dict:
        """The algorithm's own counters, saved in checkpoints."""
        return {}

    def _set_counters(self, meta: dict) -> None:
        pass

    # ---- the shared part -----------------------------------------------------------------------
    def _read_spaces(self, env) -> None:
        super()._read_spaces(env)
        if not (np.isfinite(self.action_low_).all() and np.isfinite(self.action_high_).all()):
            raise InputError(
                f"{type(self).__name__} needs a bounded action box (its actor ends in tanh); environment "
                f"{env_id_of(self.env)!r} has low {self.action_low_.tolist()} and high {self.action_high_.tolist()}."
            )

    def _build(self, device) -> None:
        low = torch.as_tensor(self.action_low_, device=device)
        high = torch.as_tensor(self.action_high_, device=device)
        self._center, self._scale = (high + low) / 2, (high - low) / 2
        self._build_networks(device)
        capacity = min(self.buffer_size, max(getattr(self, "total_timesteps_", 1), 1))
        self._buffer = ReplayBuffer(capacity, self.obs_dim_, np.float32, self.action_dim_)
        self._since_train = 0

    def _act(self, obs):
        n = len(obs)
        if self.num_timesteps_ < self.learning_starts:  # fill the buffer with varied data first
            normed = self._rng.uniform(-1.0, 1.0, size=(n, self.action_dim_)).astype(np.float32)
        else:
            with torch.no_grad():
                normed = self._explore(self._obs_tensor(obs))
        actions = self.action_low_ + (normed + 1.0) * (self.action_high_ - self.action_low_) / 2
        return actions.astype(np.float32), normed

    def _observe(self, obs, actions, rewards, next_obs, terminated, truncated, extra):
        n = len(obs)
        self._buffer.add(obs.reshape(n, -1), extra, rewards, next_obs.reshape(n, -1), terminated)
        self._since_train += 1

    def _maybe_train(self, next_obs):
        if self._since_train < self.train_freq or self.num_timesteps_ < self.learning_starts:
            return None
        steps = self.gradient_steps if self.gradient_steps >= 0 else self._since_train * self.n_envs
        self._since_train = 0
        if steps == 0 or len(self._buffer) == 0:
            return None
        batches = self._buffer.sample(steps, self.batch_size, self._rng, self.device_)
        logs = self._update(batches, steps)
        logs["gradient_steps"] = steps
        return logs

    def _policy_action(self, obs_t, deterministic):
        if deterministic:
            normed = self.actor_.deterministic(obs_t)
        else:
            normed = torch.as_tensor(self._explore(obs_t), device=obs_t.device)
        return self._center + self._scale * normed  # (B, D)

    def _export_policy(self) -> nn.Module:
        """The deterministic policy for export: squashing and scaling inside the graph."""
        from deepatlas.export.adapters import cpu_copy

        return ScaledPolicy(cpu_copy(self.actor_), self.action_low_, self.action_high_)

    def _train_state(self):
        arrays, meta = self._buffer.state_dict()
        return arrays, dict(meta, since_train=self._since_train, **self._counters())

    def _load_train_state(self, arrays, meta):
        self._buffer.load_state_dict(arrays, meta)
        self._since_train = int(meta["since_train"])
        self._set_counters(meta)
