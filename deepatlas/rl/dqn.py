"""Deep Q-network: a neural network estimates the value of each action; play greedily on it.

References: Mnih et al. (2015), "Human-level control through deep reinforcement learning"
(replay buffer, target network, ε-greedy schedule, Huber loss); van Hasselt, Guez & Silver (2016),
"Deep Reinforcement Learning with Double Q-learning"; Wang et al. (2016), "Dueling Network
Architectures for Deep Reinforcement Learning".

The schedule follows Stable-Baselines3's DQN so that the rl-baselines3-zoo hyperparameters mean
the same thing here: every ``train_freq`` environment steps, ``gradient_steps`` updates; the target
network follows the online one every ``target_update_interval`` environment steps (``tau = 1``
copies it, ``tau < 1`` moves it part of the way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval
from deepatlas.registry import register_model
from deepatlas.rl.base import Agent, linear_schedule
from deepatlas.rl.buffers import ReplayBuffer
from deepatlas.rl.networks import ACTIVATIONS, AdamStep, adam, mlp
from deepatlas.rl.offpolicy import REPLAY_CONSTRAINTS


class DuelingHead(nn.Module):
    """``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)`` on top of a shared trunk."""

    def __init__(self, n_in: int, hidden_sizes, n_actions: int, activation: str) -> None:
        super().__init__()
        *trunk, last = hidden_sizes
        self.trunk = mlp(n_in, trunk, last, activation) if trunk else nn.Linear(n_in, last)
        self.act = ACTIVATIONS[activation]()
        self.value = nn.Linear(last, 1)
        self.advantage = nn.Linear(last, n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.trunk(x))  # (B, H)
        a = self.advantage(h)  # (B, A)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)  # (B, A)


@register_model(
    "dqn",
    task="rl",
    description="deep Q-network (replay, target network; double and dueling options)",
    smoke={
        "data": "CartPole-v1",
        "total_timesteps": 200,
        "params": {"hidden_sizes": (8,), "learning_starts": 50, "buffer_size": 1000, "target_update_interval": 50},
    },
)
@dataclass(eq=False, repr=False, kw_only=True)
class DQN(Agent):
    """Deep Q-network for Box observations and Discrete actions.

    >>> agent = DQN("CartPole-v1", seed=0).learn(2_000)        # doctest: +SKIP
    >>> agent.evaluate(20)["mean_reward"]                       # doctest: +SKIP
    """

    # Stable-Baselines3's defaults, except the network, learning rate and buffer (sized for
    # classic control); `--preset zoo` gives the tuned values per environment.
    lr: float = 1e-4
    """Learning rate of Adam on the Q-network (> 0)."""
    activation: str = "relu"
    """Activation of the hidden layers: ``"relu"`` or ``"tanh"``."""
    buffer_size: int = 100_000
    """Transitions the replay buffer holds (the oldest go first); never more than ``total_timesteps``."""
    learning_starts: int = 100
    """Environment steps of uniformly random actions, without training, before learning begins."""
    batch_size: int = 32
    """Transitions drawn from the replay buffer for each gradient step."""
    tau: float = 1.0
    """How far the target network moves toward the online one at each update, in (0, 1]:
    1 copies it, less blends it (Polyak averaging)."""
    train_freq: int = 4
    """Train every this many vector steps (each step plays all ``n_envs`` copies once)."""
    gradient_steps: int = 1
    """Gradient steps per training phase; -1 takes one per environment step played since the last
    phase, 0 none."""
    target_update_interval: int = 10_000
    """Update the target network every this many environment steps (summed over the copies)."""
    exploration_fraction: float = 0.1
    """Fraction of ``total_timesteps``, in [0, 1], over which ε falls linearly from its initial to
    its final value."""
    exploration_initial_eps: float = 1.0
    """Probability in [0, 1] of a random action at the start of the ε schedule."""
    exploration_final_eps: float = 0.05
    """Probability in [0, 1] of a random action once the ε schedule has run out."""
    max_grad_norm: float = 10.0
    """Clip the gradient's global L2 norm to this value (> 0) before each step."""
    double: bool = False
    """Double DQN: the online network picks the next action, the target network values it (less
    overestimation)."""
    dueling: bool = False
    """Dueling head: a state value plus per-action advantages share the last hidden layer."""

    _parameter_constraints: ClassVar[dict] = {
        **REPLAY_CONSTRAINTS,
        "target_update_interval": Interval(int, 1, None),
        "exploration_fraction": Interval(float, 0, 1, "both"),
        "exploration_initial_eps": Interval(float, 0, 1, "both"),
        "exploration_final_eps": Interval(float, 0, 1, "both"),
        "max_grad_norm": Interval(float, 0, None, "neither"),
        "double": Boolean(),
        "dueling": Boolean(),
    }
    # `deepatlas rl train dqn` starts from the zoo's settings for the environments it covers
    # (SB3's generic defaults score below a random policy on CartPole at 15,000 steps).
    _zoo_by_default: ClassVar[bool] = True
    _zoo: ClassVar[dict] = {
        "CartPole-v1": dict(
            n_timesteps=50_000,
            lr=2.3e-3,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=1_000,
            gamma=0.99,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            exploration_fraction=0.16,
            exploration_final_eps=0.04,
            hidden_sizes=(256, 256),
        ),
        "Acrobot-v1": dict(
            n_timesteps=100_000,
            lr=6.3e-4,
            batch_size=128,
            buffer_size=50_000,
            learning_starts=0,
            gamma=0.99,
            target_update_interval=250,
            train_freq=4,
            gradient_steps=-1,
            exploration_fraction=0.12,
            exploration_final_eps=0.1,
            hidden_sizes=(256, 256),
        ),
        "MountainCar-v0": dict(
            n_timesteps=120_000,
            lr=4e-3,
            batch_size=128,
            buffer_size=10_000,
            learning_starts=1_000,
            gamma=0.98,
            target_update_interval=600,
            train_freq=16,
            gradient_steps=8,
            exploration_fraction=0.2,
            exploration_final_eps=0.07,
            hidden_sizes=(256, 256),
        ),
        # highway-env's own Stable-Baselines3 settings (its scripts/sb3_highway_dqn.py; the zoo has no
        # highway entry), kept under the same flag.
        "highway-fast-v0": dict(
            n_timesteps=20_000,
            lr=5e-4,
            buffer_size=15_000,
            learning_starts=200,
            batch_size=32,
            gamma=0.8,
            train_freq=1,
            gradient_steps=1,
            target_update_interval=50,
            exploration_fraction=0.7,
            hidden_sizes=(256, 256),
        ),
        "LunarLander-v3": dict(
            n_timesteps=100_000,
            lr=6.3e-4,
            batch_size=128,
            buffer_size=50_000,
            learning_starts=0,
            gamma=0.99,
            target_update_interval=250,
            train_freq=4,
            gradient_steps=-1,
            exploration_fraction=0.12,
            exploration_final_eps=0.1,
            hidden_sizes=(256, 256),
        ),
    }

    # ---- networks ------------------------------------------------------------------------------
    def _q_network(self) -> nn.Module:
        hidden = tuple(self.hidden_sizes)
        if self.dueling:
            return DuelingHead(self.obs_dim_, hidden, self.n_actions_, self.activation)
        return mlp(self.obs_dim_, hidden, self.n_actions_, self.activation)

    def _build(self, device) -> None:
        self.q_net_ = self._q_network().to(device)
        self.target_net_ = self._q_network().to(device)
        self.target_net_.load_state_dict(self.q_net_.state_dict())
        self.target_net_.requires_grad_(False)
        self._opt = adam(self.q_net_.parameters(), device, lr=self.lr)
        self._adam_step = AdamStep(self._opt)
        capacity = min(self.buffer_size, max(getattr(self, "total_timesteps_", 1), 1))
        self._buffer = ReplayBuffer(capacity, self.obs_dim_)
        self._since_train = 0
        self._since_target = 0

    def _networks(self):
        return {"q_net": self.q_net_}

    def _checkpoint_modules(self):
        return {"q_net": self.q_net_, "target_net": self.target_net_}

    def _train_state(self):
        arrays, meta = self._buffer.state_dict()
        return arrays, dict(meta, since_train=self._since_train, since_target=self._since_target)

    def _load_train_state(self, arrays, meta):
        self._buffer.load_state_dict(arrays, meta)
        self._since_train, self._since_target = int(meta["since_train"]), int(meta["since_target"])

    def exploration_rate(self) -> float:
        """ε now: linear from the initial to the final value over ``exploration_fraction``."""
        return linear_schedule(
            self.exploration_initial_eps, self.exploration_final_eps, self.exploration_fraction, self._progress()
        )

    # ---- acting --------------------------------------------------------------------------------
    def _policy_action(self, obs_t, deterministic):
        return self.q_net_(obs_t).argmax(dim=1)  # (B,)

    def _act(self, obs):
        n = len(obs)
        # Before `learning_starts` every action is random (the buffer fills with varied data).
        eps = 1.0 if self.num_timesteps_ < self.learning_starts else self.exploration_rate()
        explore = self._rng.random(n) < eps
        if explore.all():  # no need for the network
            return self._rng.integers(0, self.n_actions_, size=n), None
        with torch.no_grad():
            actions = self.q_net_(self._obs_tensor(obs)).argmax(dim=1).cpu().numpy()
        if explore.any():
            actions[explore] = self._rng.integers(0, self.n_actions_, size=int(explore.sum()))
        return actions, None

    def _observe(self, obs, actions, rewards, next_obs, terminated, truncated, extra):
        n = len(obs)
        self._buffer.add(obs.reshape(n, -1), actions, rewards, next_obs.reshape(n, -1), terminated)
        # The target network follows every `target_update_interval` environment steps.
        self._since_target += n
        if self._since_target >= self.target_update_interval:
            self._since_target = 0
            self._update_target()
        self._since_train += 1

    @torch.no_grad()
    def _update_target(self) -> None:
        online = list(self.q_net_.parameters())
        target = list(self.target_net_.parameters())
        if self.tau >= 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, self.tau)

    # ---- learning ------------------------------------------------------------------------------
    def _maybe_train(self, next_obs):
        if self._since_train < self.train_freq or self.num_timesteps_ < self.learning_starts:
            return None
        steps = self.gradient_steps if self.gradient_steps >= 0 else self._since_train * self.n_envs
        self._since_train = 0
        if steps == 0 or len(self._buffer) == 0:
            return None
        return self._train(steps)

    def _train(self, n_steps: int) -> dict:
        obs, actions, rewards, next_obs, dones = self._buffer.sample(n_steps, self.batch_size, self._rng, self.device_)
        # (S, B, obs_dim), (S, B), (S, B), (S, B, obs_dim), (S, B)
        with torch.no_grad():
            next_q_all = self.target_net_(next_obs)  # (S, B, A): the target network is fixed during the phase
            if not self.double:
                next_v = next_q_all.max(dim=2).values  # (S, B)
                targets = rewards + self.gamma * (1.0 - dones) * next_v
        params = list(self.q_net_.parameters())
        losses = torch.zeros(n_steps, device=self.device_)
        for s in range(n_steps):
            if self.double:  # the online network picks the action, the target network values it
                with torch.no_grad():
                    best = self.q_net_(next_obs[s]).argmax(dim=1, keepdim=True)  # (B, 1)
                    next_v = next_q_all[s].gather(1, best).squeeze(1)
                    target = rewards[s] + self.gamma * (1.0 - dones[s]) * next_v
            else:
                target = targets[s]
            q = self.q_net_(obs[s]).gather(1, actions[s].unsqueeze(1)).squeeze(1)  # (B,)
            loss = F.smooth_l1_loss(q, target)
            self._adam_step.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
            self._adam_step()
            losses[s] = loss.detach()
        return {"loss": float(losses.mean()), "exploration_rate": self.exploration_rate(), "gradient_steps": n_steps}
