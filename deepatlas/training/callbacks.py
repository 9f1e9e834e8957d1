"""Callbacks: progress bar, early stopping, per-epoch checkpoints.

A callback sees the :class:`~deepatlas.training.loop.TrainingLoop` once per epoch, so none of
them costs anything on the per-step path.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


class Callback:
    def on_train_begin(self, loop) -> None: ...

    def on_epoch_end(self, loop, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, loop) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over epochs with the latest losses; silent when stderr is not a terminal."""

    def __init__(self, desc: str = "training", enabled: bool | None = None) -> None:
        self.desc = desc
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def on_train_begin(self, loop) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=loop.epochs, initial=loop.start_epoch, desc=self.desc, unit="epoch", leave=False)

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "epoch"}, refresh=False)

    def on_train_end(self, loop) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.
    ``mode`` is ``"min"`` for losses and ``"max"`` for scores such as ``val_accuracy``."""

    def __init__(
        self, patience: int = 10, monitor: str = "val_loss", mode: str = "min", min_delta: float = 0.0
    ) -> None:
        self.patience = patience
        self.monitor = monitor
        self.sign = 1.0 if mode == "min" else -1.0
        self.min_delta = min_delta
        self.best = float("inf")
        self.best_epoch = -1
        self.best_state = None
        self.wait = 0

    def on_epoch_end(self, loop, epoch, logs) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        value = self.sign * value
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in loop.module.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                loop.stop_training = True

    def on_train_end(self, loop) -> None:
        if self.best_state is not None:
            loop.module.load_state_dict(self.best_state)
            loop.best_epoch = self.best_epoch + 1


class Checkpoint(Callback):
    """Write ``checkpoint.safetensors`` + ``checkpoint.json`` after every epoch, atomically.

    The checkpoint holds the module, the optimiser state and the batch-order generator, so a run
    resumed with :func:`restore` continues exactly as if it had never stopped.
    """

    def __init__(self, directory: str | os.PathLike, every: int = 1) -> None:
        self.directory = Path(directory)
        self.every = every

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if (epoch + 1) % self.every == 0 or loop.stop_training:
            save_checkpoint(self.directory, loop, epoch + 1)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            name = f"optim.{idx}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(directory: Path, loop, epoch: int) -> None:
    from safetensors.torch import save_file

    from deepatlas._io import atomic_path, atomic_write_text

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in loop.module.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(loop.optimizer)
    tensors.update(opt_tensors)
    tensors["rng"] = loop.generator.get_state()
    tensors["torch_rng"] = torch.get_rng_state()  # dropout masks and other global draws
    with atomic_path(directory / "checkpoint.safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {"epoch": epoch, "history": loop.history, "optimizer": opt_meta}
    atomic_write_text(directory / "checkpoint.json", json.dumps(meta))


def restore_checkpoint(directory: Path, loop) -> bool:
    """Load a checkpoint written by :class:`Checkpoint` into ``loop``; False when there is none."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / "checkpoint.safetensors").exists() or not (directory / "checkpoint.json").exists():
        return False
    tensors = load_file(str(directory / "checkpoint.safetensors"))
    meta = json.loads((directory / "checkpoint.json").read_text())
    device = next(loop.module.parameters()).device
    loop.module.load_state_dict({k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")})
    slots: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            slots.setdefault(int(idx), {})[key] = value.to(device) if key != "step" else value
    for name, value in meta["optimizer"]["scalars"].items():
        _, idx, key = name.split(".", 2)
        slots.setdefault(int(idx), {})[key] = value
    loop.optimizer.load_state_dict({"state": slots, "param_groups": meta["optimizer"]["param_groups"]})
    loop.generator.set_state(tensors["rng"])
    torch.set_rng_state(tensors["torch_rng"])
    loop.history = meta["history"]
    loop.start_epoch = int(meta["epoch"])
    return True
