"""Experience stores: :class:`ReplayBuffer` (off-policy, DQN) and :class:`RolloutBuffer` (on-policy,
with returns and advantages by GAE)."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """A circular store of transitions in NumPy arrays (off-policy agents).

    Rows go in one vector step at a time; :meth:`sample` draws ``n`` batches at once and moves them
    to the device in one copy, since the buffer does not change during a training phase. With
    float actions (the continuous agents) the five fields are column blocks of one float32 array
    (``obs | actions | reward | next_obs | done``), so that a sample is one gather of whole rows
    (one ``np.take`` and one tensor) instead of five.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dtype=np.int64, action_dim: int = 1) -> None:
        self.capacity = capacity
        self.pos = 0
        self.full = False
        self._packed = None
        if action_dtype == np.int64:
            self.obs = np.zeros((capacity, obs_dim), np.float32)
            self.next_obs = np.zeros((capacity, obs_dim), np.float32)
            self.actions = np.zeros((capacity,), action_dtype)
            self.rewards = np.zeros(capacity, np.float32)
            self.dones = np.zeros(capacity, np.float32)  # 1 only where the episode truly terminated
            return
        o, d = obs_dim, action_dim
        self._packed = np.zeros((capacity, 2 * o + d + 2), np.float32)
        self._cols = (slice(0, o), slice(o, o + d), o + d, slice(o + d + 1, 2 * o + d + 1), 2 * o + d + 1)
        p = self._packed
        self.obs, self.actions, self.rewards = p[:, :o], p[:, o : o + d], p[:, o + d]
        self.next_obs, self.dones = p[:, o + d + 1 : 2 * o + d + 1], p[:, 2 * o + d + 1]

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        n = len(obs)
        if self.pos + n <= self.capacity:  # the common case: one slice, no index array
            idx = slice(self.pos, self.pos + n)
        else:
            idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.dones[idx] = terminated
        self.pos = (self.pos + n) % self.capacity
        self.full = self.full or self.pos < n

    _FIELDS = ("obs", "next_obs", "actions", "rewards", "dones")

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """The stored rows where they lie (sampling draws positions) and the write position."""
        n = len(self)
        return {f: getattr(self, f)[:n].copy() for f in self._FIELDS}, {"pos": self.pos, "full": self.full}

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Refill from :meth:`state_dict`. The capacity may have grown (a run resumed with a larger
        budget): the rows then go in oldest first and the buffer fills on from there."""
        size, pos, full = len(arrays["rewards"]), int(meta["pos"]), bool(meta["full"])
        if size > self.capacity:
            raise ValueError(f"the replay buffer holds {size} rows, more than its capacity {self.capacity}")
        grown = size < self.capacity and full
        order = (pos + np.arange(size)) % size if grown else slice(None)
        for f in self._FIELDS:
            rows = arrays[f]
            if rows.shape != (size, *getattr(self, f).shape[1:]):
                raise ValueError(f"replay buffer field {f!r} has shape {tuple(rows.shape)}")
            getattr(self, f)[:size] = rows[order]
        self.pos, self.full = (size, False) if grown else (pos, full)

    def sample(self, n_batches: int, batch_size: int, rng: np.random.Generator, device) -> tuple:
        """``n_batches`` uniform batches as tensors of shape (n_batches, batch_size, ...)."""
        idx = rng.integers(0, len(self), size=(n_batches, batch_size))
        if self._packed is not None:
            rows = torch.from_numpy(np.take(self._packed, idx, axis=0)).to(device, non_blocking=True)
            return tuple(rows[..., c] for c in self._cols)

        def t(a):
            return torch.from_numpy(a[idx]).to(device, non_blocking=True)

        return t(self.obs), t(self.actions), t(self.rewards), t(self.next_obs), t(self.dones)


class RolloutBuffer:
    """``n_steps`` vector steps of on-policy experience, then returns and advantages by GAE.

    Generalised advantage estimation (Schulman et al., 2016, "High-Dimensional Continuous Control
    Using Generalized Advantage Estimation"): ``A_t = sum_k (gamma*lam)^k delta_{t+k}`` with
    ``delta_t = r_t + gamma V(s_{t+1}) (1 - done_t) - V(s_t)``; ``lam = 1`` is the Monte Carlo
    return minus the baseline, ``lam = 0`` the one-step TD error.
    """

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, action_shape: tuple, action_dtype) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = np.zeros((n_steps, n_envs, obs_dim), np.float32)
        self.actions = np.zeros((n_steps, n_envs, *action_shape), action_dtype)
        self.rewards = np.zeros((n_steps, n_envs), np.float32)
        self.dones = np.zeros((n_steps, n_envs), np.float32)  # the episode ended after this step
        self.values = np.zeros((n_steps, n_envs), np.float32)
        self.log_probs = np.zeros((n_steps, n_envs), np.float32)
        self.pos = 0

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add(self, obs, actions, rewards, dones, values, log_probs) -> None:
        p = self.pos
        self.obs[p], self.actions[p], self.rewards[p] = obs, actions, rewards
        self.dones[p], self.values[p], self.log_probs[p] = dones, values, log_probs
        self.pos += 1

    _FIELDS = ("obs", "actions", "rewards", "dones", "values", "log_probs")

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """The rollout so far (the first ``pos`` steps) and its position (for a checkpoint)."""
        return {f: getattr(self, f)[: self.pos].copy() for f in self._FIELDS}, {"pos": self.pos}

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        pos = int(meta["pos"])
        for f in self._FIELDS:
            rows = arrays[f]
            if rows.shape != (pos, *getattr(self, f).shape[1:]):
                raise ValueError(f"rollout buffer field {f!r} has shape {tuple(rows.shape)}")
            getattr(self, f)[:pos] = rows
        self.pos = pos

    def returns_and_advantages(self, last_values: np.ndarray, gamma: float, lam: float):
        """(returns, advantages), each (n_steps, n_envs)."""
        adv = np.zeros_like(self.rewards)
        gae = np.zeros(self.n_envs, np.float32)
        next_values = last_values.astype(np.float32)
        for t in reversed(range(self.n_steps)):
            not_done = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_values * not_done - self.values[t]
            gae = delta + gamma * lam * not_done * gae
            adv[t] = gae
            next_values = self.values[t]
        self.pos = 0
        return adv + self.values, adv
