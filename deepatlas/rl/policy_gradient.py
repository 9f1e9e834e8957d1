"""Policy-gradient agents: the network outputs a policy and climbs the gradient of the return.

References: Williams (1992), "Simple statistical gradient-following algorithms for connectionist
reinforcement learning" (REINFORCE, with a baseline to cut the variance); Mnih et al. (2016),
"Asynchronous Methods for Deep Reinforcement Learning" (advantage actor-critic, here in its
synchronous form, A2C, over ``gymnasium.vector`` copies of the environment); Sutton et al. (2000),
"Policy Gradient Methods for Reinforcement Learning with Function Approximation".

All three share :class:`ActorCritic` (a policy network and a separate value network) and
:class:`OnPolicyAgent`, which fills a rollout buffer from the shared ``learn`` loop; each agent
only says when to update and what loss to follow. PPO (``ppo.py``) builds on the same base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas._validation import Boolean, Interval, Options
from deepatlas.registry import register_model
from deepatlas.rl.base import Agent
from deepatlas.rl.buffers import RolloutBuffer
from deepatlas.rl.networks import ACTIVATIONS, adam, mlp
from deepatlas.training import optim

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ActorCritic(nn.Module):
    """A policy head (logits for Discrete actions, a Gaussian mean plus a learned, state-independent
    log standard deviation for Box actions) and a separate value network, with orthogonal
    initialisation (hidden gain sqrt 2, policy output 0.01, value output 1) as in Stable-Baselines3."""

    def __init__(
        self, obs_dim: int, hidden_sizes, n_out: int, continuous: bool, activation: str, log_std_init: float
    ) -> None:
        super().__init__()
        self.continuous = continuous
        self.actor = mlp(obs_dim, hidden_sizes, n_out, activation)
        self.critic = mlp(obs_dim, hidden_sizes, 1, activation)
        if continuous:
            self.log_std = nn.Parameter(torch.full((n_out,), float(log_std_init)))
        for net, last_gain in ((self.actor, 0.01), (self.critic, 1.0)):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for i, layer in enumerate(linears):
                nn.init.orthogonal_(layer.weight, gain=last_gain if i == len(linears) - 1 else math.sqrt(2))
                nn.init.zeros_(layer.bias)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)  # (B,)

    def log_prob_entropy(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``actions`` and the entropy, each (B,), from the actor output ``out``."""
        if self.continuous:
            log_std = self.log_std.expand_as(out)  # (B, D)
            z = (actions - out) * torch.exp(-log_std)
            log_prob = (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
            entropy = (0.5 + _LOG_SQRT_2PI + log_std).sum(-1)
            return log_prob, entropy
        logp_all = F.log_softmax(out, dim=-1)  # (B, A)
        log_prob = logp_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return log_prob, entropy

    def sample(self, obs: torch.Tensor, generator: torch.Generator):
        """(actions, log_probs, values) for a batch of observations."""
        out = self.actor(obs)
        if self.continuous:
            noise = torch.randn(out.shape, generator=generator, device=out.device)
            actions = out + torch.exp(self.log_std) * noise  # (B, D)
        else:
            actions = torch.multinomial(F.softmax(out, dim=-1), 1, generator=generator).squeeze(1)  # (B,)
        log_prob, _ = self.log_prob_entropy(out, actions)
        return actions, log_prob, self.value(obs)

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator) -> torch.Tensor:
        if not deterministic:
            return self.sample(obs, generator)[0]
        out = self.actor(obs)
        return out if self.continuous else out.argmax(dim=-1)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):
        """(log_probs, entropies, values) of stored actions under the current networks."""
        log_prob, entropy = self.log_prob_entropy(self.actor(obs), actions)
        return log_prob, entropy, self.value(obs)


@dataclass(eq=False, repr=False, kw_only=True)
class OnPolicyAgent(Agent):
    """Rollouts of ``n_steps`` vector steps over ``n_envs`` copies, then an update (``_update``)."""

    activation: str = "tanh"
    """Activation of the hidden layers: ``"relu"`` or ``"tanh"``."""
    n_steps: int = 5
    """Vector steps per rollout; each update learns from ``n_steps * n_envs`` transitions."""
    gae_lambda: float = 1.0
    """λ of generalised advantage estimation, in [0, 1]: 1 is the Monte Carlo return minus the
    value baseline (unbiased, noisy), 0 the one-step TD error (biased, steady)."""
    ent_coef: float = 0.0
    """Weight (>= 0) of the entropy bonus in the loss; more keeps the policy exploring longer."""
    vf_coef: float = 0.5
    """Weight (>= 0) of the value network's squared error in the loss."""
    max_grad_norm: float = 0.5
    """Clip the gradient's global L2 norm to this value (> 0) before each step."""
    normalize_advantage: bool = False
    """Standardise the advantages (zero mean, unit standard deviation) of each batch before the
    policy loss."""
    linear_decay: bool = False
    """Decay the learning rate linearly to 0 over ``total_timesteps``."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy for Box actions (0: σ = 1); learned
    afterwards, independent of the state. Unused for Discrete actions."""

    _parameter_constraints: ClassVar[dict] = {
        "activation": Options(tuple(ACTIVATIONS)),
        "n_steps": Interval(int, 1, None),
        "gae_lambda": Interval(float, 0, 1, "both"),
        "ent_coef": Interval(float, 0, None),
        "vf_coef": Interval(float, 0, None),
        "max_grad_norm": Interval(float, 0, None, "neither"),
        "normalize_advantage": Boolean(),
        "linear_decay": Boolean(),
        "log_std_init": Interval(float, None, None),
    }
    _continuous_actions: ClassVar[bool] = True

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        raise NotImplementedError

    def _update(self, obs, actions, old_log_probs, returns, advantages) -> dict:
        """One update on a flattened rollout (tensors of N = n_steps * n_envs rows)."""
        raise NotImplementedError

    # ---- building and acting -------------------------------------------------------------------
    def _build(self, device) -> None:
        continuous = self.action_kind_ == "continuous"
        n_out = self.action_dim_ if continuous else self.n_actions_
        self.policy_ = ActorCritic(
            self.obs_dim_, tuple(self.hidden_sizes), n_out, continuous, self.activation, self.log_std_init
        ).to(device)
        self._opt = self._make_optimizer(self.policy_.parameters())
        act_shape = (self.action_dim_,) if continuous else ()
        act_dtype = np.float32 if continuous else np.int64
        self._buffer = RolloutBuffer(self.n_steps, self.n_envs, self.obs_dim_, act_shape, act_dtype)

    def _networks(self):
        return {"policy": self.policy_}

    def _train_state(self):
        return self._buffer.state_dict()

    def _load_train_state(self, arrays, meta):
        self._buffer.load_state_dict(arrays, meta)

    def _policy_action(self, obs_t, deterministic):
        return self.policy_.act(obs_t, deterministic, self._gen)

    def _act(self, obs):
        with torch.no_grad():
            actions, log_probs, values = self.policy_.sample(self._obs_tensor(obs), self._gen)
        return actions.cpu().numpy(), (values.cpu().numpy(), log_probs.cpu().numpy())

    def _values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.policy_.value(self._obs_tensor(obs)).cpu().numpy()

    def _observe(self, obs, actions, rewards, next_obs, terminated, truncated, extra):
        values, log_probs = extra
        rewards = rewards.astype(np.float32)
        cut = truncated & ~terminated
        if cut.any():  # a time limit, not an end: bootstrap from the value of the final observation
            rewards[cut] += self.gamma * self._values(next_obs[cut])
        n = len(obs)
        self._buffer.add(obs.reshape(n, -1), actions, rewards, terminated | truncated, values, log_probs)

    def _maybe_train(self, next_obs):
        if not self._buffer.full:
            return None
        buf = self._buffer
        returns, adv = buf.returns_and_advantages(self._values(next_obs), self.gamma, self.gae_lambda)
        self._decay_lr()

        def flat(a, dtype=torch.float32):
            t = torch.from_numpy(a.reshape(-1, *a.shape[2:]))
            return t.to(self.device_, dtype=dtype)

        act_dtype = torch.float32 if self.action_kind_ == "continuous" else torch.long
        return self._update(flat(buf.obs), flat(buf.actions, act_dtype), flat(buf.log_probs), flat(returns), flat(adv))

    def _decay_lr(self) -> None:
        """With ``linear_decay``, the learning rate for the next update: ``lr`` times the budget left."""
        if self.linear_decay:
            for group in self._opt.param_groups:
                group["lr"] = self.lr * (1.0 - self._progress())

    def _step(self, loss: torch.Tensor) -> None:
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy_.parameters(), self.max_grad_norm, foreach=True)
        self._opt.step()

    def _policy_gradient_step(self, log_prob, entropy, values, returns, advantages) -> dict:
        """One step on ``-A log pi`` plus the weighted value error and entropy bonus (A2C, REINFORCE)."""
        if self.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = -(advantages * log_prob).mean()
        value_loss = F.mse_loss(values, returns)
        entropy_loss = -entropy.mean()
        self._step(policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss)
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": -entropy_loss.item()}


@register_model(
    "a2c",
    task="rl",
    description="advantage actor-critic (synchronous, gymnasium.vector)",
    smoke={"data": "CartPole-v1", "total_timesteps": 200, "params": {"hidden_sizes": (8,)}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class A2C(OnPolicyAgent):
    """Synchronous advantage actor-critic: one RMSprop step on every ``n_steps`` x ``n_envs`` rollout.

    Defaults are Stable-Baselines3's (lr 7e-4, n_steps 5, RMSprop with alpha 0.99 and eps 1e-5).
    """

    lr: float = 7e-4
    """Learning rate of RMSprop (> 0)."""

    _zoo: ClassVar[dict] = {
        "CartPole-v1": dict(n_timesteps=500_000, n_envs=8, ent_coef=0.0),
        "Acrobot-v1": dict(n_timesteps=500_000, n_envs=16, ent_coef=0.0),
    }

    def _make_optimizer(self, params):
        return optim.RMSprop(params, lr=self.lr, alpha=0.99, eps=1e-5)

    def _update(self, obs, actions, old_log_probs, returns, advantages):
        log_prob, entropy, values = self.policy_.evaluate_actions(obs, actions)
        return self._policy_gradient_step(log_prob, entropy, values, returns, advantages)


@register_model(
    "reinforce",
    task="rl",
    description="REINFORCE policy gradient with a learned value baseline",
    smoke={"data": "CartPole-v1", "total_timesteps": 200, "params": {"hidden_sizes": (8,), "episodes_per_update": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class REINFORCE(OnPolicyAgent):
    """Monte Carlo policy gradient with a learned baseline: after ``episodes_per_update`` whole
    episodes, one Adam step on ``-(G_t - V(s_t)) log pi(a_t|s_t)`` plus the baseline's squared
    error. Returns ``G_t`` run to the end of each episode (a time-limit cut bootstraps from V)."""

    episodes_per_update: int = 4
    """Whole episodes played between two updates; more averages the gradient over more returns."""
    normalize_advantage: bool = True
    """Standardise the advantages (zero mean, unit standard deviation) of each update's episodes
    before the policy loss."""
    n_steps: int = 1
    """Unused: REINFORCE updates after whole episodes, not fixed-length rollouts."""

    _parameter_constraints: ClassVar[dict] = {
        "episodes_per_update": Interval(int, 1, None),
        "n_envs": Interval(int, 1, 1),
        "gae_lambda": Interval(float, 1, 1),
    }

    def _make_optimizer(self, params):
        return adam(params, self.device_, lr=self.lr)

    def _build(self, device) -> None:
        super()._build(device)
        self._episode: list[tuple] = []  # this batch's steps: (obs, action, reward, done)
        self._episodes_done = 0

    def _train_state(self):
        steps = self._episode
        arrays = {
            "obs": np.array([x[0] for x in steps], np.float32).reshape(len(steps), self.obs_dim_),
            "actions": np.array([x[1] for x in steps], self._buffer.actions.dtype).reshape(
                len(steps), *self._buffer.actions.shape[2:]
            ),
            "rewards": np.array([x[2] for x in steps], np.float64),
            "dones": np.array([x[3] for x in steps], bool),
        }
        return arrays, {"episodes_done": self._episodes_done}

    def _load_train_state(self, arrays, meta):
        n = len(arrays["rewards"])
        self._episode = [
            (arrays["obs"][t], arrays["actions"][t], float(arrays["rewards"][t]), bool(arrays["dones"][t]))
            for t in range(n)
        ]
        self._episodes_done = int(meta["episodes_done"])

    def _observe(self, obs, actions, rewards, next_obs, terminated, truncated, extra):
        reward = float(rewards[0])
        if truncated[0] and not terminated[0]:
            reward += self.gamma * float(self._values(next_obs)[0])
        done = bool(terminated[0] or truncated[0])
        self._episode.append((obs[0].reshape(-1), actions[0], reward, done))
        self._episodes_done += done

    def _maybe_train(self, next_obs):
        if self._episodes_done < self.episodes_per_update:
            return None
        obs = np.stack([s[0] for s in self._episode]).astype(np.float32)
        actions = np.stack([s[1] for s in self._episode])
        returns = np.zeros(len(self._episode), np.float32)
        g = 0.0
        for t in reversed(range(len(self._episode))):  # returns-to-go, restarting at each episode end
            _, _, r, done = self._episode[t]
            g = r + self.gamma * g * (not done)
            returns[t] = g
        self._episode, self._episodes_done = [], 0
        self._decay_lr()
        act_dtype = torch.float32 if self.action_kind_ == "continuous" else torch.long
        obs_t = torch.from_numpy(obs).to(self.device_)
        act_t = torch.from_numpy(actions).to(self.device_, dtype=act_dtype)
        ret_t = torch.from_numpy(returns).to(self.device_)
        log_prob, entropy, values = self.policy_.evaluate_actions(obs_t, act_t)
        advantages = ret_t - values.detach()  # the baseline removes what the state alone predicts
        return self._policy_gradient_step(log_prob, entropy, values, ret_t, advantages)
