"""Deep reinforcement learning agents on Gymnasium: DQN, REINFORCE, A2C, PPO, and for continuous
actions SAC, TD3 and DDPG.

>>> from deepatlas.rl import PPO
>>> agent = PPO("CartPole-v1", n_envs=8, n_steps=32, seed=0).learn(20_000)   # doctest: +SKIP
>>> agent.evaluate(20)["mean_reward"]                                         # doctest: +SKIP

Imported lazily, like the package itself: ``import deepatlas.rl`` does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Agent": "deepatlas.rl.base",
    "DQN": "deepatlas.rl.dqn",
    "REINFORCE": "deepatlas.rl.policy_gradient",
    "A2C": "deepatlas.rl.policy_gradient",
    "PPO": "deepatlas.rl.ppo",
    "SAC": "deepatlas.rl.sac",
    "TD3": "deepatlas.rl.td3",
    "DDPG": "deepatlas.rl.td3",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepatlas.rl' has no attribute {name!r}")


def __dir__():
    return __all__
