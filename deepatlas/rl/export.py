"""Inference path of the RL agents: observation -> greedy ``action`` (and ``q_values`` /
``logits``); reference ``predict(obs, deterministic=True)``.

Reference: Mnih et al. (2015), "Human-level control through deep reinforcement learning".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepatlas.export.adapters import (
    as_buffer,
    cpu_copy,
    example_batch,
)
from deepatlas.export.protocol import ExportSpec, register_exporter


# ---- RL agents: the greedy policy ----------------------------------------------------------------
class GreedyDiscrete(nn.Module):
    """Observations (B, *O) -> (action (B,) int64 = argmax of the head, the head's values (B, A))."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, obs: torch.Tensor):
        values = self.head(obs.flatten(1))  # (B, A): Q-values or policy logits
        return values.argmax(dim=1), values


class GaussianMean(nn.Module):
    """Observations (B, *O) -> the policy's mean action (B, D), clipped into the action box."""

    def __init__(self, actor: nn.Module, low, high):
        super().__init__()
        self.actor = actor
        self.register_buffer("low", as_buffer(low))
        self.register_buffer("high", as_buffer(high))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(self.actor(obs.flatten(1)), self.low), self.high)


_ROLLOUT_STEPS = 512


def greedy_rollouts(agent, n_steps: int = _ROLLOUT_STEPS, seed: int = 20_000) -> np.ndarray:
    """Observations the greedy policy meets in its environment (episodes seeded ``seed``, ``seed
    + 1``...), up to ``n_steps``: held-out inputs on the policy's own distribution."""
    from deepatlas.rl.envs import env_id_of, make_env

    env = make_env(env_id_of(agent.env))
    seen: list[np.ndarray] = []
    try:
        episode = 0
        while len(seen) < n_steps:
            obs, _ = env.reset(seed=seed + episode)
            done = False
            while not done and len(seen) < n_steps:
                seen.append(np.asarray(obs, np.float32))
                act = agent.predict(obs, deterministic=True)
                obs, _, term, trunc, _ = env.step(agent._single_env_action(act))
                done = term or trunc
            episode += 1
    finally:
        env.close()
    return np.stack(seen)


def policy_spec(agent, part=None) -> ExportSpec:
    from deepatlas.rl.envs import env_id_of

    agent._check_fitted()
    shape = tuple(int(s) for s in agent.obs_shape_)
    env_id = env_id_of(agent.env)
    meta = {"kind": "policy", "env": env_id, "action_kind": agent.action_kind_, "decision": "greedy"}
    try:
        observed = greedy_rollouts(agent)
        mean, std = observed.mean(axis=0), observed.std(axis=0) + 1e-3
    except Exception as exc:  # e.g. the environment's package is not installed here
        observed, mean, std = None, np.zeros(shape, np.float32), np.ones(shape, np.float32)
        meta["rollouts"] = f"none ({type(exc).__name__}: {str(exc).strip()[:200]}); random inputs only"

    def random_input(rng, n):  # on the scale of the observations the policy meets
        return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    if agent.action_kind_ == "discrete":
        head = agent.q_net_ if hasattr(agent, "q_net_") else agent.policy_.actor
        values = "q_values" if hasattr(agent, "q_net_") else "logits"
        module = GreedyDiscrete(cpu_copy(head))
        names = ("action", values)
        meta.update(n_actions=int(agent.n_actions_), action="argmax of " + values)
    elif hasattr(agent, "_export_policy"):  # SAC, TD3, DDPG: tanh, then scaled to the box, in the graph
        module = agent._export_policy()
        names = ("action",)
        meta.update(action="deterministic actor output squashed by tanh, scaled to the action box and clipped")
    else:
        module = GaussianMean(cpu_copy(agent.policy_.actor), agent.action_low_, agent.action_high_)
        names = ("action",)
        meta.update(action="mean of the Gaussian policy, clipped into the action box")
    return ExportSpec(
        module=module.eval(),
        example_input=example_batch(random_input),
        input_name="observation",
        output_names=names,
        metadata=meta,
        reference=lambda X: {"action": agent.predict(X, deterministic=True)},
        random_input=random_input,
        held_out=lambda X, label: (
            None if observed is None else (observed, f"{env_id} observations from greedy rollouts")
        ),
    )


from deepatlas.rl.base import Agent  # noqa: E402

register_exporter(Agent)(policy_spec)
