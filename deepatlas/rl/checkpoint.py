"""An agent's checkpoint: everything ``learn`` needs to go on exactly as if it had never stopped.

One file, ``checkpoint.safetensors``, written by the training loop's writer
(:func:`deepatlas.training.callbacks.write_checkpoint`: a temporary file renamed over the old
one, so a kill during the save keeps the previous checkpoint). Its tensors:

* ``net.<name>.*``: every network (a DQN's target network too), ``optim.*``: the optimiser
  (``<name>.*`` for the others of an agent with several: SAC's and TD3's ``critic_optim``);
* ``best.<name>.*``: the best-evaluated weights so far (``eval_freq``);
* ``train.*``: the algorithm's store (a replay buffer's rows, a rollout so far, REINFORCE's episodes);
* ``loop.*``: the observations in hand and each copy's running return and length;
* ``env.*``: the arrays of the vector environment's state (:func:`deepatlas.rl.envs.vec_env_state`);
* ``rng``, ``torch_rng`` (and ``cuda_rng``): the agent's torch generator and the global one.

Its JSON metadata (``kind: "agent"``): the step count, the episode, update and evaluation
histories, the best score and step, the evaluation and checkpoint counters, whether a callback
stopped the run, the optimiser's groups (a decayed learning rate), the NumPy generator's
bit-generator state (exploration, minibatch order), the algorithm's counters and the rest of the
environment state. The exploration schedule is a function of the step count and the budget.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from deepatlas.errors import InputError
from deepatlas.rl.envs import restore_vec_env_state, vec_env_state
from deepatlas.training.callbacks import (
    CHECKPOINT_FILE,
    load_optimizer,
    optimizer_tensors,
    read_checkpoint,
    write_checkpoint,
)


def _from_numpy(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def _to_numpy(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    n = len(prefix) + 1
    return {k[n:]: v.numpy().copy() for k, v in tensors.items() if k.startswith(prefix + ".")}


def _module_states(prefix: str, modules: dict) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}.{k}": v for name, m in modules.items() for k, v in m.items()}


def save_checkpoint(directory: str | os.PathLike, agent, envs) -> None:
    """Write the agent's training state and ``envs``' state to ``directory/checkpoint.safetensors``."""
    nets = {name: m.state_dict() for name, m in agent._checkpoint_modules().items()}
    tensors = _module_states("net", nets)
    opt_meta = {}
    for name, opt in agent._optimizers().items():  # "optim" keeps the plain ``optim.*`` names
        opt_tensors, opt_meta[name] = optimizer_tensors(opt)
        tensors.update({name + k[len("optim") :]: v for k, v in opt_tensors.items()})
    best = None
    if agent._best is not None:
        score, step, state = agent._best
        best = {"score": score, "step": step}
        tensors.update(_module_states("best", state))
    train_arrays, train_meta = agent._train_state()
    tensors.update(_from_numpy(train_arrays, "train"))
    loop = {"obs": agent._obs, "ep_return": agent._ep_return, "ep_length": agent._ep_length}
    tensors.update(_from_numpy(loop, "loop"))
    env_arrays, env_meta = vec_env_state(envs)
    tensors.update(_from_numpy(env_arrays, "env"))
    tensors["rng"] = agent._gen.get_state()
    tensors["torch_rng"] = torch.get_rng_state()
    if agent.device_.type == "cuda":
        tensors["cuda_rng"] = torch.cuda.get_rng_state(agent.device_)
    meta = {
        "kind": "agent",
        "class": type(agent).__name__,
        "step": int(agent.num_timesteps_),
        "total_timesteps": int(agent.total_timesteps_),
        "history": agent.history_,
        "updates": agent.train_history_,
        "evaluations": agent.eval_history_,
        "best": best,
        "evals_done": int(agent._evals_done),
        "checkpoints_done": int(agent._checkpoints_done),
        "stopped": bool(agent._stopped),
        "optimizer": opt_meta.pop("optim"),
        "optimizers": opt_meta,
        "numpy_rng": agent._rng.bit_generator.state,
        "train": train_meta,
        "env": env_meta,
    }
    write_checkpoint(directory, tensors, meta)


def restore_checkpoint(directory: str | os.PathLike, agent, envs) -> bool:
    """Load the checkpoint in ``directory`` into a freshly built ``agent`` (inside its seeded
    block) and ``envs``; False when there is none. A checkpoint that does not fit the agent is one
    :class:`InputError` naming the file."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        tensors, meta = read_checkpoint(directory)
    except FileNotFoundError:
        return False
    except ValueError as exc:
        raise InputError(f"Checkpoint {str(path)!r} is damaged: {exc}.") from None
    name = type(agent).__name__
    if meta.get("kind") != "agent" or meta.get("class") != name:
        found = meta.get("class") if meta.get("kind") == "agent" else "a training loop"
        raise InputError(f"Checkpoint {str(path)!r} was written by {found}, not by a {name}.")
    try:
        _restore(tensors, meta, agent, envs)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(
            f"Checkpoint {str(path)!r} does not fit this {name} ({type(exc).__name__}: {detail})."
        ) from None
    return True


def _restore(tensors: dict, meta: dict, agent, envs) -> None:
    device = agent.device_
    for name, module in agent._checkpoint_modules().items():
        prefix = f"net.{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    saved = {"optim": meta["optimizer"], **meta.get("optimizers", {})}
    for name, opt in agent._optimizers().items():
        own = {"optim" + k[len(name) :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        load_optimizer(opt, own, saved[name], device)
    agent._best = None
    if meta["best"] is not None:
        state = {}
        for name in agent._networks():
            prefix = f"best.{name}."
            state[name] = {k[len(prefix) :]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        agent._best = (float(meta["best"]["score"]), int(meta["best"]["step"]), state)
    agent._load_train_state(_to_numpy(tensors, "train"), meta["train"])
    loop = _to_numpy(tensors, "loop")
    agent._obs, agent._ep_return, agent._ep_length = loop["obs"], loop["ep_return"], loop["ep_length"]
    restore_vec_env_state(envs, _to_numpy(tensors, "env"), meta["env"])
    agent.num_timesteps_ = int(meta["step"])
    agent.history_ = list(meta["history"])
    agent.train_history_ = list(meta["updates"])
    agent.eval_history_ = list(meta["evaluations"])
    agent._evals_done = int(meta["evals_done"])
    agent._checkpoints_done = int(meta["checkpoints_done"])
    agent._stopped = bool(meta["stopped"])
    agent._rng.bit_generator.state = meta["numpy_rng"]
    agent._gen.set_state(tensors["rng"])
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["cuda_rng"], device)
