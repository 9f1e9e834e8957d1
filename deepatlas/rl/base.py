"""The agent loop: :class:`Agent` owns ``learn`` (the interaction with a vector environment),
periodic evaluation that keeps the best weights, ``evaluate``/``predict``/``record``, and saving.

An agent is an :class:`~deepatlas.estimator.Estimator` (a dataclass over scikit-learn's
``BaseEstimator``: ``get_params``/``clone`` work and ``config.json`` stores the parameters), built
as ``Agent(env, **params)``. An algorithm overrides four hooks:

* ``_build(device)``: its networks and optimiser, from ``self.obs_shape_`` and the action space;
* ``_act(obs) -> (actions, extra)``: the actions to play now (exploration included);
* ``_observe(obs, actions, rewards, next_obs, terminated, truncated, extra)``: store a transition;
* ``_maybe_train(next_obs) -> dict | None``: update when its schedule says so; return the logs.

Environments (and why a time limit is not an end) are in :mod:`deepatlas.rl.envs`, experience
stores in :mod:`deepatlas.rl.buffers`, shared network pieces in :mod:`deepatlas.rl.networks`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepatlas._validation import Interval, TupleOf
from deepatlas.device import make_generator, resolve_device, seeded
from deepatlas.errors import InputError, InputTypeError
from deepatlas.estimator import Estimator
from deepatlas.rl import checkpoint as _checkpoint
from deepatlas.rl.envs import (
    EVALUATE_OFFSET,
    SELECT_OFFSET,
    EnvSpec,
    env_id_of,
    first_episode_seed,
    make_env,
    make_vec_env,
)

CHECKPOINT_FREQ = 10_000  # environment steps between two checkpoints of ``learn(checkpoint_dir=...)``


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """``start`` -> ``end`` linearly over the first ``fraction`` of training, then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, progress / fraction)


@dataclass(eq=False, repr=False, kw_only=True)
class Agent(Estimator):
    """Common parameters and the interaction loop of every agent.

    With ``eval_freq > 0``, the greedy policy plays ``eval_episodes`` evaluation episodes every
    ``eval_freq`` steps (and at the end), and ``learn`` ends with the weights that scored best (the
    practice of Stable-Baselines3's ``EvalCallback`` and of rl-baselines3-zoo's published scores).
    Those episodes are seeded apart from ``evaluate``'s default ones (``seed + 20,000 + i`` against
    ``seed + 10,000 + i``), so a final evaluation is not scored on the episodes that chose the
    weights. ``eval_history_`` keeps every score.
    """

    env: Any = field(default="CartPole-v1", kw_only=False)
    """The environment: a registered Gymnasium id such as ``"CartPole-v1"``, or a ``gymnasium.Env``
    (its copies are built again from its id). Observations must be a Box."""
    gamma: float = 0.99
    """Discount factor in [0, 1] of future rewards: a reward ``k`` steps ahead counts ``gamma**k``."""
    lr: float = 1e-3
    """Learning rate of the optimiser (> 0)."""
    hidden_sizes: tuple = (64, 64)
    """Widths of the hidden layers of each network, input side first."""
    eval_freq: int = 0
    """Evaluate the greedy policy every this many environment steps (summed over the copies) and
    keep the best weights; 0 turns periodic evaluation off."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation (>= 1); their mean return is the score."""
    n_envs: int = 1
    """Copies of the environment stepped side by side; every copy's step counts toward
    ``total_timesteps``."""

    _parameter_constraints: ClassVar[dict] = {
        "env": EnvSpec(),
        "gamma": Interval(float, 0, 1, "both"),
        "lr": Interval(float, 0, None, "neither"),
        "hidden_sizes": TupleOf(),
        "eval_freq": Interval(int, 0, None),
        "eval_episodes": Interval(int, 1, None),
        "n_envs": Interval(int, 1, None),
    }
    _fitted_attr: ClassVar[str] = "obs_shape_"  # set by ``learn`` (and by loading) once the spaces are read
    _continuous_actions: ClassVar[bool] = False  # whether Box action spaces are supported
    _discrete_actions: ClassVar[bool] = True  # whether Discrete action spaces are supported
    _task: ClassVar[str] = "rl"
    _zoo: ClassVar[dict] = {}  # env id -> rl-baselines3-zoo hyperparameters (plus "n_timesteps")

    # ---- hooks an algorithm overrides ----------------------------------------------------------
    def _build(self, device: torch.device) -> None:
        raise NotImplementedError

    def _act(self, obs: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _observe(self, obs, actions, rewards, next_obs, terminated, truncated, extra) -> None:
        raise NotImplementedError

    def _maybe_train(self, next_obs: np.ndarray) -> dict | None:
        raise NotImplementedError

    def _networks(self) -> dict[str, nn.Module]:
        """The modules saved in ``model.safetensors``, by prefix."""
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers a checkpoint holds, by name (``"optim"``: the one in ``self._opt``)."""
        return {"optim": self._opt}

    def _checkpoint_modules(self) -> dict[str, nn.Module]:
        """The modules a checkpoint holds: :meth:`_networks` and any other (a target network)."""
        return self._networks()

    def _train_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The algorithm's own training state for a checkpoint: (arrays, JSON)."""
        raise NotImplementedError

    def _load_train_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        raise NotImplementedError

    def _policy_action(self, obs_t: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """(B, obs_dim) -> (B,) discrete actions or (B, act_dim) continuous ones (unclipped)."""
        raise NotImplementedError

    # ---- spaces ------------------------------------------------------------------------------------
    def _read_spaces(self, env) -> None:
        import gymnasium as gym

        name = type(self).__name__
        obs_space, act_space = env.single_observation_space, env.single_action_space
        env_id = env_id_of(self.env)
        if not isinstance(obs_space, gym.spaces.Box):
            raise InputError(f"{name} needs a Box observation space; environment {env_id!r} has {obs_space!r}.")
        if len(obs_space.shape) == 3 or (obs_space.dtype == np.uint8 and len(obs_space.shape) >= 2):
            raise InputError(
                f"{name} has an MLP policy for vector observations; environment {env_id!r} gives images "
                f"{obs_space!r}. Use a vector observation (e.g. highway-env's Kinematics) or flatten it with a wrapper."
            )
        self.obs_shape_ = tuple(int(s) for s in obs_space.shape)
        if isinstance(act_space, gym.spaces.Discrete) and self._discrete_actions:
            self.action_kind_, self.n_actions_, self.action_dim_ = "discrete", int(act_space.n), 1
            self.action_low_ = self.action_high_ = None
        elif isinstance(act_space, gym.spaces.Box) and self._continuous_actions and len(act_space.shape) == 1:
            self.action_kind_, self.n_actions_, self.action_dim_ = "continuous", 0, int(act_space.shape[0])
            self.action_low_ = np.asarray(act_space.low, np.float32)
            self.action_high_ = np.asarray(act_space.high, np.float32)
        else:
            if not self._discrete_actions:
                kinds, extra = "1-D Box (continuous)", " Use DQN, PPO, A2C or REINFORCE for discrete actions."
            elif self._continuous_actions:
                kinds, extra = "Discrete or 1-D Box", ""
            else:
                kinds, extra = "Discrete", " Use SAC, TD3, DDPG, PPO, A2C or REINFORCE for continuous actions."
            raise InputError(f"{name} supports {kinds} action spaces; environment {env_id!r} has {act_space!r}.{extra}")

    @property
    def obs_dim_(self) -> int:
        return int(np.prod(self.obs_shape_))

    def _single_env_action(self, action: np.ndarray):
        """One action from :meth:`predict` as a single (not vector) environment takes it."""
        return action.item() if self.action_kind_ == "discrete" else action

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Continuous actions are clipped into the box before they reach the environment."""
        if self.action_kind_ == "continuous":
            return np.clip(actions, self.action_low_, self.action_high_)
        return actions

    # ---- learning ----------------------------------------------------------------------------------
    def _check_timesteps(self, total_timesteps) -> int:
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, np.integer)):
            raise InputTypeError(
                f"total_timesteps must be a positive int. Got {type(total_timesteps).__name__} {total_timesteps!r} instead."
            )
        if total_timesteps <= 0:
            raise InputError(f"total_timesteps must be a positive int. Got {total_timesteps} instead.")
        return int(total_timesteps)

    def learn(
        self,
        total_timesteps: int,
        *,
        callback=None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        checkpoint_freq: int = CHECKPOINT_FREQ,
    ) -> Agent:
        """Interact with the environment for ``total_timesteps`` steps (summed over the copies)
        and train; returns ``self``. ``callback(agent, logs)`` is called after every episode and
        every update; it may return ``False`` to stop.

        With ``checkpoint_dir``, ``checkpoint.safetensors`` there is replaced every
        ``checkpoint_freq`` steps and at the end (:mod:`deepatlas.rl.checkpoint`: networks,
        optimiser, buffers, counters, histories, best weights, every RNG and the environments'
        state); with ``resume=True`` a checkpoint found there is continued, and the run ends
        exactly as the uninterrupted one would (``total_timesteps`` may be larger than before).
        """
        self._validate_params()  # and refuses torchrun: agents do not train data-parallel
        total = self._check_timesteps(total_timesteps)
        if checkpoint_dir is not None and (
            isinstance(checkpoint_freq, bool)
            or not isinstance(checkpoint_freq, (int, np.integer))
            or checkpoint_freq <= 0
        ):
            raise InputError(f"checkpoint_freq must be a positive int. Got {checkpoint_freq!r} instead.")
        envs = make_vec_env(self.env, self.n_envs)
        self._read_spaces(envs)
        device = resolve_device(self.device)
        self.device_ = device
        self.total_timesteps_ = total
        self.num_timesteps_ = 0
        self.history_: list[dict] = []  # one record per finished episode
        self.train_history_: list[dict] = []  # one record per update
        self._rng = np.random.default_rng(self.seed)
        bar = None
        start = time.perf_counter()
        try:
            # Everything random (initial weights, exploration, sampled actions, minibatch order)
            # comes from the seed, without touching the caller's global RNG.
            with seeded(self.seed):
                self._gen = make_generator(self.seed, device)
                self._build(device)
                self.eval_history_: list[dict] = []
                self._best = None
                self._evals_done = self._checkpoints_done = 0
                self._stopped = False
                if not (
                    resume and checkpoint_dir is not None and _checkpoint.restore_checkpoint(checkpoint_dir, self, envs)
                ):
                    self._obs, _ = envs.reset(seed=None if self.seed is None else int(self.seed))
                    self._ep_return = np.zeros(self.n_envs)
                    self._ep_length = np.zeros(self.n_envs, np.int64)
                bar = self._progress_bar(total)
                self._run(envs, total, bar, callback, checkpoint_dir, int(checkpoint_freq))
                if checkpoint_dir is not None:
                    _checkpoint.save_checkpoint(checkpoint_dir, self, envs)
                if self.eval_freq:
                    self._keep_best(final=True)
        finally:
            envs.close()
            if bar is not None:
                bar.close()
        self.fit_seconds_ = time.perf_counter() - start
        for m in self._networks().values():
            m.eval()
        return self

    def fit(self, total_timesteps: int, *, callback=None, **checkpointing) -> Agent:
        """:meth:`learn` under scikit-learn's name (the not-fitted message asks for ``fit``)."""
        return self.learn(total_timesteps, callback=callback, **checkpointing)

    def _run(self, envs, total: int, bar, callback, checkpoint_dir=None, checkpoint_freq: int = 0) -> None:
        """Step from where the loop state (``_obs``, ``_ep_return``, ``_ep_length``, the counters)
        stands: a fresh start or a checkpoint."""
        n = self.n_envs
        t = self.num_timesteps_
        while t < total and not self._stopped:
            obs = self._obs
            actions, extra = self._act(obs)
            next_obs, rewards, terminated, truncated, info = envs.step(self._env_actions(actions))
            t += n
            self.num_timesteps_ = t
            done = terminated | truncated
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                for i in np.flatnonzero(done):
                    real_next[i] = info["final_obs"][i]
            self._observe(obs, actions, rewards, real_next, terminated, truncated, extra)
            self._ep_return += rewards
            self._ep_length += 1
            self._obs = next_obs
            stop = False
            for i in np.flatnonzero(done):
                rec = {"step": t, "return": float(self._ep_return[i]), "length": int(self._ep_length[i])}
                self.history_.append(rec)
                self._ep_return[i], self._ep_length[i] = 0.0, 0
                if callback is not None and callback(self, rec) is False:
                    stop = True
            logs = self._maybe_train(next_obs)
            if logs is not None:
                logs["step"] = t
                self.train_history_.append(logs)
                self._check_finite(logs)
                if callback is not None and callback(self, logs) is False:
                    stop = True
            if bar is not None:
                bar.update(min(n, total - bar.n))
                if self.history_:
                    recent = [h["return"] for h in self.history_[-20:]]
                    bar.set_postfix(
                        {"ep_return": f"{np.mean(recent):.1f}", "episodes": len(self.history_)}, refresh=False
                    )
            if self.eval_freq and t // self.eval_freq > self._evals_done and t < total:
                self._evals_done = t // self.eval_freq
                self._keep_best()
            if stop:
                self._stopped = True
            elif checkpoint_dir is not None and t // checkpoint_freq > self._checkpoints_done and t < total:
                self._checkpoints_done = t // checkpoint_freq
                _checkpoint.save_checkpoint(checkpoint_dir, self, envs)

    def _keep_best(self, final: bool = False) -> None:
        """Score the greedy policy on the evaluation episodes; remember the best weights, and at
        the end (``final``) put them back."""
        nets = self._networks()
        modes = {k: m.training for k, m in nets.items()}
        for m in nets.values():
            m.eval()
        base = first_episode_seed(self.seed, None, SELECT_OFFSET)
        score = self.evaluate(self.eval_episodes, seed=base)["mean_reward"]
        for k, m in nets.items():
            m.train(modes[k])
        self.eval_history_.append({"step": int(self.num_timesteps_), "mean_reward": score})
        if self._best is None or score > self._best[0]:
            state = {k: {n: v.detach().clone() for n, v in m.state_dict().items()} for k, m in nets.items()}
            self._best = (score, int(self.num_timesteps_), state)
        if final:
            score, step, state = self._best
            for k, m in nets.items():
                m.load_state_dict(state[k])
            self.best_eval_return_, self.best_eval_step_ = score, step
            self._best = None

    def _check_finite(self, logs: dict) -> None:
        from deepatlas.errors import TrainingDiverged

        bad = [k for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(
                f"Training diverged: the {bad[0]} became {logs[bad[0]]} at step {logs['step']}. "
                f"Try a lower learning rate (lr={self.lr:g} now)."
            )

    def _progress_bar(self, total: int):
        if not (self.verbose and sys.stderr.isatty()):
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=self.num_timesteps_,
            desc=f"{type(self).__name__} {env_id_of(self.env)}",
            unit="step",
            leave=False,
        )

    def _progress(self) -> float:
        """Fraction of the training budget spent, in [0, 1]."""
        return self.num_timesteps_ / self.total_timesteps_

    # ---- inference ---------------------------------------------------------------------------------
    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs, np.float32).reshape(len(obs), -1), device=self.device_)

    def predict(self, obs, deterministic: bool = True) -> np.ndarray:
        """The action for one observation (shape ``obs_shape``) or a batch ``(n, *obs_shape)``.

        Discrete actions come back as ints (shape ``()`` or ``(n,)``), continuous ones clipped into
        the action box (shape ``(act_dim,)`` or ``(n, act_dim)``).
        """
        self._check_fitted()
        arr = np.asarray(obs, dtype=np.float32)
        single = arr.shape == self.obs_shape_
        if not single and arr.shape[1:] != self.obs_shape_:
            raise InputError(
                f"obs must have shape {self.obs_shape_} for one observation or (n, {', '.join(map(str, self.obs_shape_))}) for a "
                f"batch. Got shape {arr.shape} instead."
            )
        batch = arr[None] if single else arr
        with torch.no_grad():
            actions = self._policy_action(self._obs_tensor(batch), deterministic).cpu().numpy()
        actions = self._env_actions(actions)
        return actions[0] if single else actions

    def evaluate(self, n_episodes: int = 20, *, deterministic: bool = True, seed: int | None = None) -> dict:
        """Play ``n_episodes`` episodes side by side (episode ``i`` seeded with ``seed + i``;
        default seed: the agent's seed plus 10,000, so they differ from the training episodes).

        Returns ``{"mean_reward", "std_reward", "episode_returns", "episode_lengths"}``, and where
        the environment reports them in ``info`` (highway-env does), the driving measures:
        ``collision_rate`` (the share of episodes with a crash) and ``mean_speed`` (over every step).
        """
        self._check_fitted()
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes <= 0:
            raise InputError(f"n_episodes must be a positive int. Got {n_episodes!r} instead.")
        base = first_episode_seed(self.seed, seed, EVALUATE_OFFSET)
        envs = [make_env(env_id_of(self.env)) for _ in range(n_episodes)]
        obs = np.stack([np.asarray(e.reset(seed=base + i)[0], np.float32) for i, e in enumerate(envs)])
        returns = np.zeros(n_episodes)
        lengths = np.zeros(n_episodes, np.int64)
        active = np.ones(n_episodes, bool)
        crashed = np.zeros(n_episodes, bool)
        speeds: list[float] = []
        seen_crash = False
        while active.any():
            idx = np.flatnonzero(active)
            acts = self.predict(obs[idx], deterministic=deterministic)
            for j, i in enumerate(idx):
                o, r, term, trunc, info = envs[i].step(self._single_env_action(acts[j]))
                obs[i] = o
                returns[i] += r
                lengths[i] += 1
                if "crashed" in info:
                    seen_crash = True
                    crashed[i] |= bool(info["crashed"])
                if "speed" in info:
                    speeds.append(float(info["speed"]))
                if term or trunc:
                    active[i] = False
        for e in envs:
            e.close()
        result = {
            "mean_reward": float(returns.mean()),
            "std_reward": float(returns.std()),
            "episode_returns": returns.tolist(),
            "episode_lengths": lengths.tolist(),
        }
        if seen_crash:
            result["collision_rate"] = float(crashed.mean())
        if speeds:
            result["mean_speed"] = float(np.mean(speeds))
        return result

    def record(self, out, *, n_episodes: int = 1, seed: int | None = None, every: int = 2, width: int = 300) -> dict:
        """Write an animated GIF (or, for an ``.mp4`` path, an H.264 video through imageio) of
        ``n_episodes`` deterministic episodes (frames from ``render_mode="rgb_array"``, every
        ``every``-th frame, scaled to ``width`` pixels)."""
        from pathlib import Path

        from PIL import Image

        self._check_fitted()
        if n_episodes <= 0 or every <= 0:
            raise InputError(f"n_episodes and every must be positive. Got {n_episodes} and {every} instead.")
        env = make_env(env_id_of(self.env), render_mode="rgb_array")
        base = first_episode_seed(self.seed, seed, EVALUATE_OFFSET)
        from gymnasium.error import DependencyNotInstalled

        try:
            frames, returns = self._film(env, n_episodes, base, every)
        except DependencyNotInstalled as exc:  # pygame draws the classic-control environments
            raise InputError(
                f"Rendering {env_id_of(self.env)!r} needs a package that is not installed: {exc}"
            ) from None
        finally:
            env.close()
        images = []
        for f in frames:
            img = Image.fromarray(np.asarray(f, np.uint8))
            if img.width > width:
                img = img.resize((width, round(img.height * width / img.width)))
            images.append(img)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp{out.suffix or '.gif'}")
        fps = env.metadata.get("render_fps", 30) / every
        if out.suffix.lower() == ".mp4":  # a video, through imageio's FFmpeg plugin (the rl-apps extra)
            from deepatlas._optional import require

            iio = require("rl-apps", "Recording an MP4", "imageio.v3")
            block = [img.crop((0, 0, img.width // 16 * 16, img.height // 16 * 16)) for img in images]  # H.264 blocks
            iio.imwrite(tmp, np.stack([np.asarray(img.convert("RGB")) for img in block]), fps=fps, codec="libx264")
        else:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        tmp.replace(out)
        return {"frames": len(images), "returns": returns}

    def _film(self, env, n_episodes: int, base: int, every: int) -> tuple[list, list]:
        frames, returns = [], []
        for ep in range(n_episodes):
            obs, _ = env.reset(seed=base + ep)
            total, done, k = 0.0, False, 0
            while not done:
                if k % every == 0:
                    frames.append(env.render())
                act = self.predict(obs)
                obs, r, term, trunc, _ = env.step(self._single_env_action(act))
                total += float(r)
                done = term or trunc
                k += 1
            frames.append(env.render())
            returns.append(total)
        return frames, returns

    # ---- persistence -------------------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        tensors = {}
        for prefix, module in self._networks().items():
            for k, v in module.state_dict().items():
                tensors[f"{prefix}.{k}"] = v.detach().cpu()
        meta = {
            "env_id": env_id_of(self.env),
            "obs_shape_": list(self.obs_shape_),
            "action_kind_": self.action_kind_,
            "n_actions_": self.n_actions_,
            "action_dim_": self.action_dim_,
            "action_low_": None if self.action_low_ is None else self.action_low_.tolist(),
            "action_high_": None if self.action_high_ is None else self.action_high_.tolist(),
            "num_timesteps_": int(getattr(self, "num_timesteps_", 0)),
            "n_episodes_": len(getattr(self, "history_", [])),
        }
        return tensors, meta

    def _restore_state(self, tensors, meta) -> None:
        if not isinstance(self.env, str) or self.env != meta["env_id"]:
            self.env = meta["env_id"]
        self.obs_shape_ = tuple(meta["obs_shape_"])
        self.action_kind_ = meta["action_kind_"]
        self.n_actions_ = int(meta["n_actions_"])
        self.action_dim_ = int(meta["action_dim_"])
        lo, hi = meta.get("action_low_"), meta.get("action_high_")
        self.action_low_ = None if lo is None else np.asarray(lo, np.float32)
        self.action_high_ = None if hi is None else np.asarray(hi, np.float32)
        self.num_timesteps_ = int(meta.get("num_timesteps_", 0))
        self.total_timesteps_ = max(self.num_timesteps_, 1)
        self.device_ = resolve_device(self.device)
        self._rng = np.random.default_rng(self.seed)
        with seeded(self.seed):
            self._gen = make_generator(self.seed, self.device_)
            self._build(self.device_)
        for prefix, module in self._networks().items():
            state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            module.load_state_dict(state)
            module.eval()

    def save(self, directory) -> None:
        """Write ``config.json`` and ``model.safetensors`` (the run-directory format)."""
        from deepatlas.saving import save_model

        save_model(self, directory, extra_config={"env": env_id_of(self.env)})

    @classmethod
    def load(cls, directory) -> Agent:
        """Rebuild an agent saved with :meth:`save` (or by ``deepatlas rl train``)."""
        from deepatlas.saving import load

        agent = load(directory)
        if not isinstance(agent, cls):
            raise InputError(f"Run {str(directory)!r} holds a {type(agent).__name__}, not a {cls.__name__}.")
        return agent

    @classmethod
    def zoo_params(cls, env_id: str) -> tuple[dict, int]:
        """The rl-baselines3-zoo hyperparameters for ``env_id`` and their training budget."""
        if env_id not in cls._zoo:
            known = ", ".join(sorted(cls._zoo)) or "none"
            raise InputError(f"No zoo preset for {cls.__name__} on {env_id!r}; presets exist for: {known}.")
        params = dict(cls._zoo[env_id])
        return params, int(params.pop("n_timesteps"))
