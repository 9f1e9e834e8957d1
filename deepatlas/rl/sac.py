"""Soft actor-critic: an off-policy actor-critic that maximises the return plus the policy's entropy.

References: Haarnoja, Zhou, Abbeel & Levine (2018), "Soft Actor-Critic: Off-Policy Maximum Entropy
Deep Reinforcement Learning with a Stochastic Actor"; Haarnoja et al. (2018), "Soft Actor-Critic
Algorithms and Applications" (twin Q-networks with the minimum in the target, the temperature
``alpha`` learned so that the policy's entropy stays near a target, ``-dim(A)`` by default).

One update, as in Stable-Baselines3 (so the zoo's settings carry over): the temperature first
(``loss = -log_alpha * (log pi(a|s) + target_entropy)``), then both critics toward
``r + gamma (1 - done) (min_i Q'_i(s', a') - alpha log pi(a'|s'))`` with ``a' ~ pi(.|s')``, then the
actor (``alpha log pi(a|s) - min_i Q_i(s, a)``), then the target critics by Polyak averaging.
Every term uses the temperature from before the step, so its Adam step is taken with the actor's
(one backward pass, one fused step; the numbers are those of the order above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from deepatlas._validation import AnyOf, Interval, Options
from deepatlas.registry import register_model
from deepatlas.rl.networks import AdamStep, adam
from deepatlas.rl.offpolicy import SMOKE, Critics, OffPolicyContinuous, SquashedGaussianActor, polyak


class Temperature(nn.Module):
    """SAC's entropy weight ``alpha``, kept as its logarithm (so it stays positive)."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(float(init)).log())

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


_PENDULUM = dict(n_timesteps=20_000, lr=1e-3)
# The zoo's MuJoCo entries set only these two and so keep SB3's learning rate, 3e-4 (ours is 1e-3).
_MUJOCO = dict(n_timesteps=1_000_000, learning_starts=10_000, lr=3e-4)


@register_model(
    "sac",
    task="rl",
    description="soft actor-critic (twin Q, learned temperature; continuous actions)",
    smoke=SMOKE,
)
@dataclass(eq=False, repr=False, kw_only=True)
class SAC(OffPolicyContinuous):
    """Soft actor-critic for Box observations and 1-D Box actions.

    Defaults are Stable-Baselines3's (buffer 10^6, batch 256, tau 0.005, one gradient step per
    environment step, two 256-unit layers, learned temperature), except the learning rate: 1e-3,
    the zoo's value for Pendulum-v1, which solves it within 20,000 steps.

    >>> agent = SAC("Pendulum-v1", seed=0).learn(20_000)      # doctest: +SKIP
    >>> agent.evaluate(10)["mean_reward"]                      # doctest: +SKIP
    """

    ent_coef: str | float = "auto"
    """Entropy weight ``alpha``: ``"auto"`` learns it (starting at 1) toward ``target_entropy``;
    a number > 0 keeps it fixed."""
    target_entropy: str | float = "auto"
    """Entropy the learned temperature aims at: ``"auto"`` is ``-dim(action)``, or any number."""
    target_update_interval: int = 1
    """Update the target critics every this many gradient steps."""

    _parameter_constraints: ClassVar[dict] = {
        "ent_coef": AnyOf((Options(("auto",)), Interval(float, 0, None, "neither"))),
        "target_entropy": AnyOf((Options(("auto",)), Interval(float, None, None))),
        "target_update_interval": Interval(int, 1, None),
    }
    _zoo: ClassVar[dict] = {
        "Pendulum-v1": _PENDULUM,
        "MountainCarContinuous-v0": dict(
            n_timesteps=50_000,
            lr=3e-4,
            buffer_size=50_000,
            batch_size=512,
            ent_coef=0.1,
            train_freq=32,
            gradient_steps=32,
            gamma=0.9999,
            tau=0.01,
            learning_starts=0,
            hidden_sizes=(64, 64),
        ),
        "LunarLanderContinuous-v3": dict(
            n_timesteps=500_000,
            lr=7.3e-4,
            buffer_size=1_000_000,
            batch_size=256,
            gamma=0.99,
            tau=0.01,
            train_freq=1,
            gradient_steps=1,
            learning_starts=10_000,
            hidden_sizes=(400, 300),
        ),
        # The zoo's MuJoCo entries (written for the -v4 tasks; v5 has the same dynamics).
        "HalfCheetah-v5": _MUJOCO,
        "Hopper-v5": _MUJOCO,
        "Walker2d-v5": _MUJOCO,
        "Ant-v5": _MUJOCO,
    }

    @property
    def target_entropy_(self) -> float:
        return -float(self.action_dim_) if self.target_entropy == "auto" else float(self.target_entropy)

    def _build_networks(self, device) -> None:
        hidden, act = tuple(self.hidden_sizes), self.activation
        self.actor_ = SquashedGaussianActor(self.obs_dim_, hidden, self.action_dim_, act).to(device)
        self.critic_ = Critics(self.obs_dim_, self.action_dim_, hidden, act, 2).to(device)
        self.critic_target_ = Critics(self.obs_dim_, self.action_dim_, hidden, act, 2).to(device)
        self.critic_target_.load_state_dict(self.critic_.state_dict())
        self.critic_target_.requires_grad_(False)
        learned = self.ent_coef == "auto"
        self.temperature_ = Temperature(1.0 if learned else self.ent_coef).to(device)
        self.temperature_.requires_grad_(learned)
        # One optimiser for the actor and the temperature (their losses share no parameter, see
        # train_step): one Adam step where Stable-Baselines3 takes two.
        params = [*self.actor_.parameters(), *(self.temperature_.parameters() if learned else ())]
        self._opt = adam(params, device, lr=self.lr)
        self._critic_opt = adam(self.critic_.parameters(), device, lr=self.lr)
        self._actor_step, self._critic_step = AdamStep(self._opt), AdamStep(self._critic_opt)
        self._targets, self._onlines = list(self.critic_target_.parameters()), list(self.critic_.parameters())
        self._n_updates = 0

    def _networks(self):
        return {"actor": self.actor_, "critic": self.critic_}

    def _checkpoint_modules(self):
        return {**self._networks(), "critic_target": self.critic_target_, "temperature": self.temperature_}

    def _optimizers(self):
        return {"optim": self._opt, "critic_optim": self._critic_opt}

    def _counters(self):
        return {"n_updates": self._n_updates}

    def _set_counters(self, meta):
        self._n_updates = int(meta["n_updates"])

    def _explore(self, obs_t):
        return self.actor_.sample(obs_t, self._gen, with_log_prob=False)[0].cpu().numpy()

    def _update(self, batches, n_steps):
        obs, actions, rewards, next_obs, dones = batches  # (S, B, O), (S, B, D), (S, B), (S, B, O), (S, B)
        logs = torch.zeros(4, n_steps, device=self.device_)
        for s in range(n_steps):
            logs[:, s] = self.train_step(obs[s], actions[s], rewards[s], next_obs[s], dones[s])
        critic, actor, alpha, entropy = logs.mean(dim=1).tolist()
        return {"critic_loss": critic, "actor_loss": actor, "ent_coef": alpha, "entropy": entropy}

    def train_step(self, obs, actions, rewards, next_obs, dones) -> torch.Tensor:
        """One SAC update on a batch; returns (critic loss, actor loss, alpha used, entropy estimate)."""
        pi_actions, log_prob = self.actor_.sample(obs, self._gen)  # (B, D), (B,)
        log_alpha = self.temperature_.log_alpha
        alpha = log_alpha.detach().exp()  # this step uses the value before its own change
        with torch.no_grad():
            next_actions, next_log_prob = self.actor_.sample(next_obs, self._gen)
            next_q = self.critic_target_.forward(next_obs, next_actions).min(dim=0).values - alpha * next_log_prob
            target = rewards + self.gamma * (1.0 - dones) * next_q  # (B,)
        q = self.critic_.forward(obs, actions)  # (2, B)
        critic_loss = 0.5 * ((q - target) ** 2).mean(dim=1).sum()
        self._critic_step.zero_grad()
        critic_loss.backward()
        self._critic_step()
        # The actor climbs the (just updated) critics; their gradients are not formed.
        q_pi = self.critic_.forward(obs, pi_actions, frozen=True).min(dim=0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        loss = actor_loss
        if self.ent_coef == "auto":
            # The temperature's loss shares no parameter with the actor's (alpha is detached in
            # one, log pi in the other), so one backward pass and one Adam step (one optimiser
            # over both, each parameter with its own moments) give each its own update; alpha
            # is read before this step changes it, as above.
            loss = actor_loss - (log_alpha * (log_prob.detach() + self.target_entropy_)).mean()
        self._actor_step.zero_grad()
        loss.backward()
        self._actor_step()
        self._n_updates += 1
        if self._n_updates % self.target_update_interval == 0:
            polyak(self._targets, self._onlines, self.tau)
        return torch.stack([critic_loss.detach(), actor_loss.detach(), alpha, -log_prob.detach().mean()])
