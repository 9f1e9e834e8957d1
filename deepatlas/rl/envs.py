"""Environments: the ``env`` parameter's constraint, building (one copy or a vector of them) and the
seeds of evaluation episodes.

Truncation (a time limit) is not termination: :func:`make_vec_env` resets a finished copy in the
same step and hands its true final observation over in ``info["final_obs"]``, so value targets
bootstrap through a time limit instead of treating it as the end of the world (Pardo et al., 2018,
"Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


# Environments outside Gymnasium's own package, or that need an engine it does not bring; all come
# with the ``rl-apps`` extra. highway-env registers its ids when imported.
_PLUGINS = {
    "highway_env": (
        "highway-env",
        (
            "highway",
            "merge",
            "roundabout",
            "parking",
            "intersection",
            "racetrack",
            "exit",
            "lane-keeping",
            "two-way",
            "u-turn",
        ),
    ),
}
_ENGINES = {"gymnasium.envs.mujoco": "MuJoCo", "gymnasium.envs.box2d": "Box2D"}  # entry point -> what it needs


def _needs_extra(env: str, what: str):
    from deepatlas._optional import MissingExtra

    return MissingExtra(f"Environment {env!r} needs {what}: pip install 'deepatlas[rl-apps]'")


def _import_plugin(env: str, registry) -> None:
    """Import the package that registers ``env`` (highway-env's ids), or say which extra brings it."""
    import importlib

    for module, (what, prefixes) in _PLUGINS.items():
        if env.split("-v")[0].startswith(prefixes) and env not in registry:
            try:
                importlib.import_module(module)
            except ImportError:
                raise _needs_extra(env, what) from None


def make_env(env, *, render_mode: str | None = None):
    """Build one environment from an id, with a one-line error that lists close ids (or names the
    extra to install)."""
    from deepatlas._optional import require

    gym = require("rl", "deepatlas's RL agents", "gymnasium")

    if not isinstance(env, str):
        if render_mode is None:
            return env
        env = env_id_of(env)
    _import_plugin(env, gym.envs.registry)
    if env not in gym.envs.registry:
        import difflib

        ids = [k for k in gym.envs.registry if "/" not in k or "/" in env]  # namespaced ids only if asked
        close = difflib.get_close_matches(env, ids, n=3, cutoff=0.6)
        hint = (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
        raise InputError(f"Unknown Gymnasium environment {env!r}.{hint}")
    try:
        built = gym.make(env, render_mode=render_mode) if render_mode else gym.make(env)
    except (gym.error.DependencyNotInstalled, ImportError) as exc:
        entry = str(gym.envs.registry[env].entry_point)
        engine = next((what for prefix, what in _ENGINES.items() if entry.startswith(prefix)), None)
        if engine is not None and render_mode is None:
            raise _needs_extra(env, engine) from None
        raise InputError(f"Environment {env!r} needs a package that is not installed: {exc}") from None
    if render_mode == "rgb_array":
        _draw_offscreen(built)
        renderer = getattr(built.unwrapped, "mujoco_renderer", None)
        if renderer is not None:
            _headless_gl()
            _follow_the_body(renderer)
    return built


def _follow_the_body(renderer) -> None:
    """Film a MuJoCo task through its model's ``track`` camera when the default view follows nothing.

    Gymnasium 1.x renders MuJoCo tasks from a free camera set by the task's default camera settings;
    HalfCheetah-v5's and Ant-v5's give only a distance, so a body that runs forward leaves the
    picture within a few hundred steps. Their models carry a camera named ``track`` that follows the
    body; tasks whose settings name a body to track (Hopper, Walker2d, Humanoid) keep their view."""
    if getattr(renderer, "camera_id", None) != -1 or "trackbodyid" in (renderer.default_cam_config or {}):
        return
    import mujoco

    track = mujoco.mj_name2id(renderer.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    if track != -1:
        renderer.camera_id = track


def _headless_gl() -> None:
    """On Linux without a display, let MuJoCo draw through EGL unless the user chose (``MUJOCO_GL``).

    Gymnasium reads ``MUJOCO_GL`` when the first frame is drawn; unset, it tries GLFW first, which
    needs a display and fails inside MuJoCo with a bare ``FatalError``."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("MUJOCO_GL", "egl")


def _draw_offscreen(env) -> None:
    """highway-env's viewer draws nothing (black frames) when ``SDL_VIDEODRIVER=dummy``, the usual
    setting on a machine without a display, although its ``rgb_array`` frames come from an
    offscreen surface that needs none: build the viewer now and let it draw."""
    import os

    base = env.unwrapped
    if os.environ.get("SDL_VIDEODRIVER") != "dummy" or not type(base).__module__.startswith("highway_env."):
        return
    from highway_env.envs.common.graphics import EnvViewer

    if getattr(base, "viewer", None) is None:
        base.viewer = EnvViewer(base)
    if base.viewer.offscreen:
        base.viewer.enabled = True


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


# ---- checkpointing a vector environment -----------------------------------------------------------
# Every layer of every copy (the vector env, each wrapper, the bare env) is saved attribute by
# attribute: numbers, strings, arrays, NumPy generators (their bit-generator state) and tuples,
# lists and dicts of those. So a CartPole's ``state`` and ``np_random``, a TimeLimit's step count,
# OrderEnforcing's reset flag and the vector env's autoreset flags all come back. Configuration
# (spaces, specs, the wrapped env, the env factories) is rebuilt by ``make_vec_env`` instead.
_NOT_STATE = frozenset(
    {"env", "envs", "env_fns", "metadata", "spec", "_saved_kwargs", "_cached_spec", "_metadata", "render_mode"}
)


class EnvStateError(ValueError):
    """An environment holds state that :func:`vec_env_state` cannot save (a physics engine's world)."""


def _layers(envs):
    """(path, object) for the vector env and every layer of every copy, outermost first."""
    yield "vector", envs
    for i, env in enumerate(envs.envs):
        depth = 0
        while True:
            yield f"copy {i} layer {depth}", env
            if not hasattr(env, "env"):
                break
            env, depth = env.env, depth + 1


def _skipped(name: str, value) -> bool:
    import enum

    import gymnasium as gym

    return (
        name in _NOT_STATE
        or isinstance(value, (gym.Space, gym.Env, gym.envs.registration.EnvSpec, enum.Enum))
        or callable(value)
    )


def vec_env_state(envs) -> tuple[dict[str, np.ndarray], dict]:
    """The internal state of a ``SyncVectorEnv`` and its copies: ``(arrays, meta)`` (meta is JSON).
    Raises :class:`EnvStateError` naming the first attribute it cannot save."""
    arrays: dict[str, np.ndarray] = {}

    def encode(value, where: str):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
            key = str(len(arrays))
            arrays[key] = np.array(value)  # a copy (0-d for a NumPy scalar)
            return {"array": key, "scalar": isinstance(value, np.generic)}
        if isinstance(value, np.random.Generator):
            return {"generator": value.bit_generator.state}
        if isinstance(value, (tuple, list)):
            return {type(value).__name__: [encode(v, where) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
        raise EnvStateError(f"{where} is a {type(value).__module__}.{type(value).__name__}")

    layers = []
    for path, obj in _layers(envs):
        attrs = {}
        for name, value in vars(obj).items():
            if not _skipped(name, value):
                attrs[name] = encode(value, f"attribute {name!r} of {type(obj).__name__}")
        layers.append({"path": path, "class": type(obj).__name__, "attrs": attrs})
    return arrays, {"layers": layers}


def restore_vec_env_state(envs, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Put back what :func:`vec_env_state` saved into freshly built ``envs`` of the same kind."""

    def decode(value):
        if not isinstance(value, dict):
            return value
        if "array" in value:
            arr = np.array(arrays[value["array"]])
            return arr[()] if value["scalar"] else arr
        if "generator" in value:
            gen = np.random.Generator(getattr(np.random, value["generator"]["bit_generator"])())
            gen.bit_generator.state = value["generator"]
            return gen
        if "tuple" in value:
            return tuple(decode(v) for v in value["tuple"])
        if "list" in value:
            return [decode(v) for v in value["list"]]
        return {k: decode(v) for k, v in value["dict"].items()}

    layers = list(_layers(envs))
    saved = [(s["path"], s["class"]) for s in meta["layers"]]
    built = [(path, type(obj).__name__) for path, obj in layers]
    if saved != built:
        raise ValueError(f"the environment's layers {built} are not the saved ones {saved}")
    for (_, obj), state in zip(layers, meta["layers"], strict=True):
        for name, value in state["attrs"].items():
            setattr(obj, name, decode(value))


def checkpoint_problem(env, n_envs: int = 1) -> str | None:
    """Why the environment's state cannot be checkpointed, or None when it can."""
    envs = make_vec_env(env, n_envs)
    try:
        envs.reset(seed=0)
        vec_env_state(envs)
    except EnvStateError as exc:
        return str(exc)
    finally:
        envs.close()
    return None
