"""Twin delayed DDPG (TD3) and its ancestor DDPG: a deterministic actor climbs a learned Q-function.

References: Lillicrap et al. (2016), "Continuous control with deep reinforcement learning" (DDPG:
a deterministic policy gradient with replay and slowly moving target networks); Fujimoto, van Hoof
& Meger (2018), "Addressing Function Approximation Error in Actor-Critic Methods" (TD3's three
changes: the minimum of twin critics in the target, target policy smoothing — clipped Gaussian
noise on the target action — and actor and target updates delayed to every ``policy_delay``
critic updates).

DDPG here is TD3 without the three changes (one critic, no target noise, no delay), as
Stable-Baselines3 defines it, so the two differ only in what the ablation removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from deepatlas._validation import Interval
from deepatlas.registry import register_model
from deepatlas.rl.networks import AdamStep, adam
from deepatlas.rl.offpolicy import SMOKE, Critics, DeterministicActor, OffPolicyContinuous, polyak

# rl-baselines3-zoo's settings (td3.yml and ddpg.yml share them for these tasks).
_PENDULUM = dict(
    n_timesteps=20_000,
    gamma=0.98,
    buffer_size=200_000,
    learning_starts=10_000,
    action_noise=0.1,
    gradient_steps=1,
    train_freq=1,
    lr=1e-3,
    hidden_sizes=(400, 300),
)
_MUJOCO = dict(
    n_timesteps=1_000_000,
    learning_starts=10_000,
    action_noise=0.1,
    train_freq=1,
    gradient_steps=1,
    lr=1e-3,
    batch_size=256,
    hidden_sizes=(400, 300),
)
_ZOO = {
    "Pendulum-v1": _PENDULUM,
    "MountainCarContinuous-v0": dict(n_timesteps=300_000, action_noise=0.5),
    "LunarLanderContinuous-v3": dict(
        n_timesteps=300_000,
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=10_000,
        action_noise=0.1,
        gradient_steps=1,
        train_freq=1,
        lr=1e-3,
        hidden_sizes=(400, 300),
    ),
    # The zoo's MuJoCo entries (written for the -v4 tasks; v5 has the same dynamics).
    "HalfCheetah-v5": _MUJOCO,
    "Hopper-v5": _MUJOCO,
    "Walker2d-v5": _MUJOCO,
    "Ant-v5": _MUJOCO,
}


@register_model(
    "td3",
    task="rl",
    description="twin delayed DDPG (twin Q, target smoothing, delayed actor; continuous actions)",
    smoke=SMOKE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class TD3(OffPolicyContinuous):
    """TD3 for Box observations and 1-D Box actions.

    Defaults are Stable-Baselines3's (lr 1e-3, layers 400 and 300, buffer 10^6, batch 256,
    tau 0.005, policy delay 2, target noise 0.2 clipped at 0.5), plus Gaussian exploration noise of
    standard deviation 0.1 (SB3 has none by default; the zoo adds this one everywhere).

    >>> agent = TD3("Pendulum-v1", seed=0).learn(20_000)      # doctest: +SKIP
    """

    hidden_sizes: tuple = (400, 300)
    """Widths of the hidden layers of the actor and of each critic, input side first."""
    action_noise: float = 0.1
    """Standard deviation (>= 0) of the Gaussian noise added to the actor's normalised action
    (range [-1, 1]) while exploring."""
    policy_delay: int = 2
    """Update the actor and the target networks once every this many critic updates."""
    target_policy_noise: float = 0.2
    """Standard deviation (>= 0) of the Gaussian noise on the target action (target smoothing)."""
    target_noise_clip: float = 0.5
    """The target noise is clipped to [-this, this] (>= 0)."""

    _parameter_constraints: ClassVar[dict] = {
        "action_noise": Interval(float, 0, None, "left"),
        "policy_delay": Interval(int, 1, None),
        "target_policy_noise": Interval(float, 0, None, "left"),
        "target_noise_clip": Interval(float, 0, None, "left"),
    }
    _n_critics: ClassVar[int] = 2
    _zoo: ClassVar[dict] = _ZOO

    def _build_networks(self, device) -> None:
        hidden, act, n = tuple(self.hidden_sizes), self.activation, self._n_critics
        self.actor_ = DeterministicActor(self.obs_dim_, hidden, self.action_dim_, act).to(device)
        self.actor_target_ = DeterministicActor(self.obs_dim_, hidden, self.action_dim_, act).to(device)
        self.critic_ = Critics(self.obs_dim_, self.action_dim_, hidden, act, n).to(device)
        self.critic_target_ = Critics(self.obs_dim_, self.action_dim_, hidden, act, n).to(device)
        for target, online in ((self.actor_target_, self.actor_), (self.critic_target_, self.critic_)):
            target.load_state_dict(online.state_dict())
            target.requires_grad_(False)
        self._opt = adam(self.actor_.parameters(), device, lr=self.lr)
        self._critic_opt = adam(self.critic_.parameters(), device, lr=self.lr)
        self._actor_step, self._critic_step = AdamStep(self._opt), AdamStep(self._critic_opt)
        # both target networks follow in one fused Polyak call (loading a state copies into these tensors)
        self._targets = [*self.critic_target_.parameters(), *self.actor_target_.parameters()]
        self._onlines = [*self.critic_.parameters(), *self.actor_.parameters()]
        self._n_updates = 0

    def _networks(self):
        return {"actor": self.actor_, "critic": self.critic_}

    def _checkpoint_modules(self):
        return {**self._networks(), "actor_target": self.actor_target_, "critic_target": self.critic_target_}

    def _optimizers(self):
        return {"optim": self._opt, "critic_optim": self._critic_opt}

    def _counters(self):
        return {"n_updates": self._n_updates}

    def _set_counters(self, meta):
        self._n_updates = int(meta["n_updates"])

    def _explore(self, obs_t):
        actions = self.actor_(obs_t).cpu().numpy()
        if self.action_noise > 0:
            actions = actions + self._rng.normal(0.0, self.action_noise, size=actions.shape).astype(actions.dtype)
        return actions.clip(-1.0, 1.0)

    def _update(self, batches, n_steps):
        obs, actions, rewards, next_obs, dones = batches  # (S, B, O), (S, B, D), (S, B), (S, B, O), (S, B)
        critic_losses, actor_losses = [], []
        for s in range(n_steps):
            critic_loss, actor_loss = self.train_step(obs[s], actions[s], rewards[s], next_obs[s], dones[s])
            critic_losses.append(critic_loss)
            if actor_loss is not None:
                actor_losses.append(actor_loss)
        logs = {"critic_loss": float(torch.stack(critic_losses).mean())}
        if actor_losses:
            logs["actor_loss"] = float(torch.stack(actor_losses).mean())
        return logs

    def target_q(self, rewards, next_obs, dones) -> torch.Tensor:
        """``r + gamma (1 - done) min_i Q'_i(s', clip(mu'(s') + clip(eps, -c, c), -1, 1))``, (B,)."""
        with torch.no_grad():  # (modules called through forward: Module.__call__'s dispatch costs a small layer)
            next_actions = self.actor_target_.forward(next_obs)
            if self.target_policy_noise > 0:
                noise = torch.randn(next_actions.shape, generator=self._gen, device=next_actions.device)
                noise = (noise * self.target_policy_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (next_actions + noise).clamp(-1.0, 1.0)
            next_q = self.critic_target_.forward(next_obs, next_actions).min(dim=0).values
            return rewards + self.gamma * (1.0 - dones) * next_q

    def train_step(self, obs, actions, rewards, next_obs, dones):
        """One critic update on a batch, and every ``policy_delay``-th time an actor update and
        both target updates; returns (critic loss, actor loss or None)."""
        self._n_updates += 1
        target = self.target_q(rewards, next_obs, dones)
        q = self.critic_.forward(obs, actions)  # (n, B)
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()
        self._critic_step.zero_grad()
        critic_loss.backward()
        self._critic_step()
        if self._n_updates % self.policy_delay:
            return critic_loss.detach(), None
        # The actor climbs the first (just updated) critic; the critic's gradients are not formed.
        actor_loss = -self.critic_.single(0, obs, self.actor_.forward(obs), frozen=True).mean()
        self._actor_step.zero_grad()
        actor_loss.backward()
        self._actor_step()
        polyak(self._targets, self._onlines, self.tau)
        return critic_loss.detach(), actor_loss.detach()


@register_model(
    "ddpg",
    task="rl",
    description="deep deterministic policy gradient (TD3's ablation: one critic, no smoothing, no delay)",
    smoke=SMOKE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class DDPG(TD3):
    """DDPG: TD3 with one critic, no target policy smoothing and no delay (Stable-Baselines3's
    definition); the same defaults otherwise.

    >>> agent = DDPG("Pendulum-v1", seed=0).learn(20_000)     # doctest: +SKIP
    """

    policy_delay: int = 1
    """Update the actor and the target networks once every this many critic updates."""
    target_policy_noise: float = 0.0
    """Standard deviation (>= 0) of the Gaussian noise on the target action (0: none, as DDPG)."""
    target_noise_clip: float = 0.0
    """The target noise is clipped to [-this, this] (>= 0)."""

    _n_critics: ClassVar[int] = 1
