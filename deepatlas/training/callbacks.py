"""Callbacks: progress bar, early stopping, per-epoch checkpoints.

A callback sees the :class:`~deepatlas.training.loop.TrainingLoop` once per epoch, so none of
them costs anything on the per-step path. A callback that holds state across epochs (early
stopping's best score, weights and patience counter) has a ``state_dict()`` /
``load_state_dict()`` pair; the checkpoint saves it, so a resumed run decides as the
uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


class Callback:
    """Hooks called by the loop. A callback with state across epochs also defines
    ``state_dict() -> dict`` (values: JSON, a tensor, or a dict of tensors) and
    ``load_state_dict(state)``; :class:`Checkpoint` saves it and :func:`restore_checkpoint`
    gives it back."""

    def on_train_begin(self, loop) -> None: ...

    def on_epoch_end(self, loop, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, loop) -> None: ...


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is no terminal but tqdm draws a widget)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # an IPython without a running shell
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def progress_mode(enabled: bool | None) -> str:
    """``bar`` (stdout and stderr both on a terminal, or a notebook), ``lines`` (one plain line
    per epoch on stderr, when the output is being logged or piped: ``> train.log 2>&1``) or
    ``off``; ``enabled=None`` picks by where the output goes."""
    if enabled is False:
        return "off"
    if (sys.stderr.isatty() and sys.stdout.isatty()) or in_notebook():
        return "bar"
    return "lines"


def _fmt_logs(logs: dict) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "epoch" and isinstance(v, (int, float)))


class ProgressBar(Callback):
    """Progress per epoch with the latest losses: tqdm's notebook-aware bar (``tqdm.auto``) in a
    terminal or a notebook, left on screen at the end; one plain line per epoch when stderr goes
    to a file or a pipe (``epoch 3/100 loss 0.21 val_accuracy 0.97``); nothing when disabled."""

    def __init__(self, desc: str = "training", enabled: bool | None = None) -> None:
        self.desc = desc
        self.mode = progress_mode(enabled)
        self.enabled = self.mode != "off"
        self.bar = None

    def on_train_begin(self, loop) -> None:
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=loop.epochs, initial=loop.start_epoch, desc=self.desc, unit="epoch", leave=True)

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "epoch"}, refresh=False)
        elif self.mode == "lines":
            print(f"{self.desc} epoch {epoch + 1}/{loop.epochs} {_fmt_logs(logs)}", file=sys.stderr, flush=True)

    def on_train_end(self, loop) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _lr_of(loop) -> float | None:
    groups = getattr(getattr(loop, "optimizer", None), "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


class CSVLogger(Callback):
    """``log.csv`` in ``directory``: one row per epoch with every logged value and the learning
    rate. A resumed run keeps the rows up to its checkpoint's epoch and appends after them."""

    def __init__(self, directory: str | os.PathLike, filename: str = "log.csv") -> None:
        self.path = Path(directory) / filename
        self.columns: list[str] | None = None

    def on_train_begin(self, loop) -> None:
        import csv

        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict] = []
        if loop.start_epoch and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as f:
                kept = [
                    r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) <= loop.start_epoch
                ]
        self.columns = list(kept[0]) if kept else None
        self._rows = kept
        self._write()

    def _write(self) -> None:
        import csv

        from deepatlas._io import atomic_path

        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            if self.columns:
                writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self._rows)

    def on_epoch_end(self, loop, epoch, logs) -> None:
        row = {"epoch": epoch + 1, **{k: v for k, v in logs.items() if k != "epoch"}, "lr": _lr_of(loop)}
        if self.columns is None:
            self.columns = list(row)
        self._rows.append(row)
        self._write()


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``directory`` through ``torch.utils.tensorboard``: every logged
    value and the learning rate as scalars, and each parameter tensor as a histogram, per epoch.
    A resumed run purges the events after its checkpoint's epoch."""

    def __init__(self, directory: str | os.PathLike, histograms: bool = True) -> None:
        self.directory = Path(directory)
        self.histograms = histograms
        self.writer = None

    def on_train_begin(self, loop) -> None:
        from deepatlas._optional import require

        require("tensorboard", "--log tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.directory), purge_step=loop.start_epoch + 1 if loop.start_epoch else None)

    def on_epoch_end(self, loop, epoch, logs) -> None:
        step = epoch + 1
        for k, v in logs.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, step)
        lr = _lr_of(loop)
        if lr is not None:
            self.writer.add_scalar("lr", lr, step)
        if self.histograms:
            for name, p in loop.module.named_parameters():
                self.writer.add_histogram(name, p.detach().float().cpu(), step)
        self.writer.flush()

    def on_train_end(self, loop) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def epoch_logger(kind: str, directory: str | os.PathLike) -> Callback:
    """The per-epoch log callback of ``kind`` (``csv``: ``DIR/log.csv``; ``tensorboard``: ``DIR/tensorboard/``)."""
    if kind == "csv":
        return CSVLogger(directory)
    if kind == "tensorboard":
        return TensorBoardLogger(Path(directory) / "tensorboard")
    raise ValueError(f"The 'log' parameter must be 'csv' or 'tensorboard'. Got {kind!r} instead.")


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

    def state_dict(self) -> dict:
        best = None if self.best == float("inf") else self.best  # JSON has no infinity
        return {"best": best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best = float("inf") if state["best"] is None else float(state["best"])
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.best_state = state["best_state"]


class Checkpoint(Callback):
    """Write ``checkpoint.safetensors`` after every epoch, as one file replaced in one step.

    The file holds the module, the optimiser state, the batch-order generator, the global RNG,
    any state of the loop itself and of every callback with a ``state_dict`` (early stopping's
    best weights among them) as tensors, and the epoch, history and the rest as JSON in its
    ``metadata``. It is written beside the old one and renamed over it, so a run killed during
    the save keeps the previous checkpoint; one resumed with :func:`restore_checkpoint`
    continues exactly as if it had never stopped.
    """

    def __init__(self, directory: str | os.PathLike, every: int = 1) -> None:
        self.directory = Path(directory)
        self.every = every

    def on_epoch_end(self, loop, epoch, logs) -> None:
        if (epoch + 1) % self.every == 0 or loop.stop_training:
            save_checkpoint(self.directory, loop, epoch + 1)


CHECKPOINT_FILE = "checkpoint.safetensors"
LEGACY_JSON = "checkpoint.json"  # the metadata of checkpoints written before it moved into the file
_META_KEY = "deepatlas.checkpoint"


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state as tensors (``optim.<param>.<slot>``) and JSON (groups, scalars)."""
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


def _stateful_callbacks(loop) -> dict[str, Callback]:
    """The loop's callbacks with state, named ``<class>.<n>`` (the n-th of that class), a name
    that does not depend on callbacks without state inserted around them."""
    named, seen = {}, {}
    for cb in loop.callbacks:
        if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None)):
            cls = type(cb).__name__
            seen[cls] = seen.get(cls, -1) + 1
            named[f"{cls}.{seen[cls]}"] = cb
    return named


def _callback_states(loop) -> tuple[dict[str, torch.Tensor], dict]:
    """Every stateful callback's state: tensors under ``callback.<name>.<key>[.<sub>]``, the
    rest as JSON, with a note of which keys were tensors."""
    tensors, meta = {}, {}
    for name, cb in _stateful_callbacks(loop).items():
        values, kinds = {}, {}
        for key, value in cb.state_dict().items():
            prefix = f"callback.{name}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[prefix] = value.detach().cpu().contiguous()
                kinds[key] = "tensor"
            elif isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
                tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in value.items()})
                kinds[key] = list(value)
            else:
                values[key] = value
        meta[name] = {"values": values, "tensors": kinds}
    return tensors, meta


def save_checkpoint(directory: Path, loop, epoch: int) -> None:
    tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in loop.module.state_dict().items()}
    opt_tensors, opt_meta = optimizer_tensors(loop.optimizer)
    tensors.update(opt_tensors)
    tensors["rng"] = loop.generator.get_state()
    tensors["torch_rng"] = torch.get_rng_state()  # dropout masks and other global draws
    device = next(loop.module.parameters()).device
    if device.type == "cuda":
        tensors["cuda_rng"] = torch.cuda.get_rng_state(device)
    tensors.update({f"loop.{k}": v.detach().cpu().contiguous() for k, v in loop.extra_state().items()})
    cb_tensors, cb_meta = _callback_states(loop)
    tensors.update(cb_tensors)
    meta = {
        "epoch": epoch,
        "history": loop.history,
        "optimizer": opt_meta,
        "stopped": bool(loop.stop_training),
        "callbacks": cb_meta,
    }
    if getattr(loop, "scheduler", None) is not None:  # counters and rates: JSON
        meta["scheduler"] = loop.scheduler.state_dict()
    write_checkpoint(directory, tensors, meta)


def write_checkpoint(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``directory/checkpoint.safetensors`` as one unit: ``tensors`` with ``meta`` (JSON)
    in its metadata, into a temporary file beside the old one, then renamed over it. A training
    loop's checkpoint and an agent's (``meta["kind"] == "agent"``, :mod:`deepatlas.rl`) share it."""
    from safetensors.torch import save_file

    from deepatlas._io import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(directory / CHECKPOINT_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    (directory / LEGACY_JSON).unlink(missing_ok=True)  # an older run's metadata, now superseded


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of the checkpoint in ``directory``; a checkpoint of the older
    two-file format (``checkpoint.json`` beside the tensors) reads too, without callback state.
    Raises ``FileNotFoundError`` when there is none and ``ValueError`` naming the file when it
    is damaged."""
    from safetensors import SafetensorError, safe_open

    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{CHECKPOINT_FILE} is missing")
    try:
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{CHECKPOINT_FILE} cannot be read ({first})") from None
    where = f"{CHECKPOINT_FILE} (its metadata)"
    if text is None:  # the older format
        where = LEGACY_JSON
        if not (directory / LEGACY_JSON).is_file():
            raise ValueError(f"{LEGACY_JSON} is missing")
        try:
            text = (directory / LEGACY_JSON).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where} cannot be read ({type(exc).__name__})") from None
    try:
        meta = json.loads(text)
        # A training loop counts epochs; an agent (kind "agent") environment steps.
        int(meta["step" if meta.get("kind") == "agent" else "epoch"]), list(meta["history"]), dict(meta["optimizer"])
        dict(meta.get("callbacks", {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where} cannot be read ({type(exc).__name__})") from None
    missing = [k for k in ("rng", "torch_rng") if k not in tensors]
    if missing:
        raise ValueError(f"{CHECKPOINT_FILE} cannot be read (no tensor {missing[0]!r})")
    return tensors, meta


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict, device) -> None:
    """Give ``optimizer`` back the state :func:`optimizer_tensors` saved (``meta``: its JSON part)."""
    slots: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            slots.setdefault(int(idx), {})[key] = value.to(device) if key != "step" else value
    for name, value in meta["scalars"].items():
        _, idx, key = name.split(".", 2)
        slots.setdefault(int(idx), {})[key] = value
    # A composite optimiser (a GAN's two players) may have no param_groups of its own.
    current = getattr(optimizer, "param_groups", None) or [{}] * len(meta["param_groups"])
    groups = [  # JSON made the tuples (Adam's betas) lists
        {k: tuple(v) if isinstance(v, list) and isinstance(now.get(k), tuple) else v for k, v in saved.items()}
        for saved, now in zip(meta["param_groups"], current, strict=False)
    ]
    optimizer.load_state_dict({"state": slots, "param_groups": groups})


def checkpoint_problem(directory: str | os.PathLike) -> str | None:
    """What is wrong with the checkpoint in ``directory`` (missing or damaged), or None."""
    try:
        read_checkpoint(directory)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    return None


def restore_checkpoint(directory: Path, loop) -> bool:
    """Load a checkpoint written by :class:`Checkpoint` into ``loop`` (module, optimiser, RNGs,
    history, loop and callback state); False when there is none."""
    try:
        tensors, meta = read_checkpoint(directory)
    except FileNotFoundError:
        return False
    if meta.get("kind") == "agent":
        raise ValueError(f"{CHECKPOINT_FILE} is an agent's checkpoint, not a training loop's")
    device = next(loop.module.parameters()).device
    loop.module.load_state_dict({k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")})
    load_optimizer(loop.optimizer, tensors, meta["optimizer"], device)
    loop.generator.set_state(tensors["rng"])
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["cuda_rng"], device)
    loop.load_extra_state({k[len("loop.") :]: v.to(device) for k, v in tensors.items() if k.startswith("loop.")})
    saved = meta.get("callbacks", {})
    for name, cb in _stateful_callbacks(loop).items():
        if name not in saved:
            continue  # an older checkpoint, or a callback added since: it starts afresh
        state = dict(saved[name]["values"])
        for key, kind in saved[name]["tensors"].items():
            prefix = f"callback.{name}.{key}"
            if kind == "tensor":
                state[key] = tensors[prefix].to(device)
            else:
                state[key] = {k: tensors[f"{prefix}.{k}"].to(device) for k in kind}
        cb.load_state_dict(state)
    if getattr(loop, "scheduler", None) is not None and "scheduler" in meta:
        loop.scheduler.load_state_dict(meta["scheduler"])
    loop.history = meta["history"]
    loop.start_epoch = int(meta["epoch"])
    loop.stop_training = bool(meta.get("stopped", False))  # early stopping had ended the run
    return True
