"""Environments: the ``env`` parameter's constraint, building (one copy or a vector of them) and the
seeds of evaluation episodes.

Truncation (a time limit) is not termination: :func:`make_vec_env` resets a finished copy in the
same step and hands its true final observation over in ``info["final_obs"]``, so value targets
bootstrap through a time limit instead of treating it as the end of the world (Pardo et al., 2018,
"Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

from typing import Any

from deepatlas._validation import Constraint
from deepatlas.errors import InputError

# Episode seeds: training resets its vector environment with the agent's seed; ``evaluate``'s
# default episodes start at seed + EVALUATE_OFFSET, the periodic evaluations that choose the best
# weights (``eval_freq``) at seed + SELECT_OFFSET, so the three never share an episode.
EVALUATE_OFFSET = 10_000
SELECT_OFFSET = 20_000


class EnvSpec(Constraint):
    """A registered Gymnasium id (a string) or a ``gymnasium.Env`` instance."""

    description = "a Gymnasium environment id (str) or a gymnasium.Env"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str):
            return True
        import gymnasium as gym

        return isinstance(value, gym.Env)


def env_id_of(env) -> str:
    """The id under which ``env`` (a string or an Env with a spec) can be built again."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def make_env(env, *, render_mode: str | None = None):
    """Build one environment from an id, with a one-line error that lists close ids."""
    from deepatlas._optional import require

    gym = require("rl", "deepatlas's RL agents", "gymnasium")

    if not isinstance(env, str):
        if render_mode is None:
            return env
        env = env_id_of(env)
    if env not in gym.envs.registry:
        import difflib

        ids = [k for k in gym.envs.registry if "/" not in k or "/" in env]  # namespaced ids only if asked
        close = difflib.get_close_matches(env, ids, n=3, cutoff=0.6)
        hint = (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
        raise InputError(f"Unknown Gymnasium environment {env!r}.{hint}")
    try:
        return gym.make(env, render_mode=render_mode) if render_mode else gym.make(env)
    except gym.error.DependencyNotInstalled as exc:
        raise InputError(f"Environment {env!r} needs a package that is not installed: {exc}") from None


def make_vec_env(env, n_envs: int):
    """``n_envs`` copies in a ``gymnasium.vector.SyncVectorEnv`` that resets finished copies in the
    same step (the final observation is in ``info["final_obs"]``)."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    first = make_env(env)
    fns = [lambda: first] + [lambda: make_env(env_id_of(env))] * (n_envs - 1)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def first_episode_seed(agent_seed: int | None, seed: int | None, offset: int) -> int:
    """The seed of the first of a series of episodes (episode ``i`` gets this plus ``i``): ``seed``
    when given, else the agent's seed (``None`` counts as 0) plus ``offset``."""
    if seed is not None:
        return int(seed)
    return (0 if agent_seed is None else int(agent_seed)) + offset
