"""One registry of models: ``register_model``, ``create_model``, ``list_models``.

A registry name (``"mlp"``) may stand for several estimator classes, one per task: the dataset's
task (``classification``, ``regression``, ``tagging``, ``generative``, ``transform``, ``rl``...)
picks the class, so ``deepatlas train mlp --data <regression data>`` builds an ``MLPRegressor``.
The first class registered under a name is its default.

Model modules register themselves on import; :func:`_ensure_loaded` imports every module of
``deepatlas.models`` and its family sub-packages (and ``deepatlas.rl`` when present) the first time the registry is queried,
so adding a family means adding a file.

The card index. Importing every model module imports torch and each family's stack (seconds), so
``deepatlas list`` reads ``_cards.json`` instead: one summary per name (description, family, tasks,
export, variant) and the modules that register it, written from the live registry by
``python -m deepatlas.registry`` and used only while a hash of the registering packages'
declarations (``register_model``/``register_exporter`` calls and the files holding them) matches
the one it records. ``@register_model`` stays the single source of truth:
a stale or missing index is ignored (the registry is loaded, as before), and
``tests/test_registry_index.py`` fails until the committed index matches the live registry. The same
index lets :func:`get_entry` (``create_model``, ``deepatlas train``) import only the modules that
register the one name asked for.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepatlas._validation import suggest
from deepatlas.errors import InputError

_PACKAGES = ("deepatlas.models", "deepatlas.rl")


@dataclass
class ModelCard:
    """What the registry knows of one (name, task): the class, the variant's defaults, and the
    settings that other parts read instead of keeping side tables.

    defaults : parameter values that make this variant (``gru`` is the RNN estimator with
        ``cell="gru"``); applied by :func:`create_model` under the caller's own values.
    smoke : a seconds-long fit for the contract tests (``tests/test_contract.py``) and
        ``benchmarks/gpu_check.py``: ``{"data": "<dataset spec>", "params": {...}}``; an RL
        agent's ``data`` is its environment and ``total_timesteps`` its budget for ``learn``.
    tuning_space : the default search space of ``deepatlas tune`` (see :mod:`deepatlas.tuning`);
        ``None`` gives the generic space over the common parameters the class has.
    """

    name: str
    task: str
    cls: type
    description: str = ""
    family: str = ""
    defaults: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)
    tuning_space: dict | None = None
    module: str = ""  # the module whose import registers this card (what the card index records)

    @property
    def exporter(self):
        """The function that exports this card's models to ONNX, or ``None`` (see :mod:`deepatlas.export.protocol`)."""
        return exporter_of(self.cls)

    def create(self, **params):
        return self.cls(**{**self.defaults, **params})


@dataclass
class ModelEntry:
    """A registry name and its cards, one per task; the first registered task is the default."""

    name: str
    description: str
    family: str
    cards: dict[str, ModelCard] = field(default_factory=dict)

    @property
    def default_task(self) -> str:
        return next(iter(self.cards))

    @property
    def classes(self) -> dict[str, type]:
        return {task: card.cls for task, card in self.cards.items()}


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(
    name: str,
    *,
    task: str = "classification",
    description: str = "",
    family: str = "",
    defaults: dict | None = None,
    smoke: dict | None = None,
    tuning_space: dict | None = None,
):
    """Class decorator: make ``cls`` available as ``create_model(name, task=task)``.

    Stack it to register one class under several names: a variant is a set of ``defaults``, not a
    class of its own.

    Example
    -------
    >>> @register_model("gru", task="classification", defaults={"cell": "gru"})
    ... @register_model("rnn", task="classification", description="tanh recurrent network")
    ... class RNNClassifier(...): ...
    """

    registering_module = sys._getframe(1).f_globals.get("__name__", "")

    def decorate(cls: type) -> type:
        parts = cls.__module__.split(".")
        fam = family or (parts[2] if len(parts) > 2 and parts[0] == "deepatlas" else parts[-1])
        entry = _REGISTRY.setdefault(name, ModelEntry(name, description, fam))
        if description and not entry.description:
            entry.description = description
        entry.cards[task] = ModelCard(
            name,
            task,
            cls,
            description or entry.description,
            entry.family,
            dict(defaults or {}),
            dict(smoke or {}),
            tuning_space,
            registering_module or cls.__module__,
        )
        return cls

    return decorate


# ---- exporters: registered for a class, found through the MRO --------------------------------------
_EXPORTERS: dict[type, Callable[..., Any]] = {}
_PARTS: dict[type, tuple[str, ...]] = {}


def register_exporter(cls: type, parts: tuple[str, ...] = ()):
    """Decorator: ``fn(estimator, part) -> ExportSpec`` exports instances of ``cls`` and of its
    subclasses (found through the method resolution order, so a user's subclass keeps its
    export); ``parts`` names its inference paths when there are several (the first is the default).
    Families register their adapters in their ``export`` module (:mod:`deepatlas.export.protocol`)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_exporter takes the estimator class, not {cls!r}.")

    def decorate(fn):
        _EXPORTERS[cls] = fn
        if parts:
            _PARTS[cls] = tuple(parts)
        return fn

    return decorate


def _registered(estimator_or_class) -> type | None:
    """The nearest class in the MRO with a registered exporter (family adapters register on import)."""
    _ensure_loaded()
    cls = estimator_or_class if isinstance(estimator_or_class, type) else type(estimator_or_class)
    return next((k for k in cls.__mro__ if k in _EXPORTERS), None)


def exporter_of(cls: type) -> Callable[..., Any] | None:
    """The export function that covers ``cls`` (its own ``_export_module`` counts), or ``None``."""
    if hasattr(cls, "_export_module"):
        return cls._export_module
    found = _registered(cls)
    return _EXPORTERS[found] if found is not None else None


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(info.name)


# ---- the card index: list the cards, and load one name, without importing every model module -------
_INDEX_FILE = Path(__file__).with_name("_cards.json")
_ROOT = Path(__file__).parent


_DECLARATIONS = re.compile(r"register_model\(|register_exporter\(|def _export_module")


def _calls(text: str) -> list[str]:
    """Each registration-relevant declaration of a source file: the whole ``register_model(...)``
    and ``register_exporter(...)`` calls (parentheses balanced) and ``_export_module`` methods."""
    found = []
    for m in _DECLARATIONS.finditer(text):
        end = m.end()
        if text[end - 1] == "(":
            depth = 1
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
        found.append(text[m.start() : end].strip())
    return found


def _sources_digest() -> str:
    """A hash of what the card index depends on in the registering packages' sources: every
    ``register_model``/``register_exporter`` call and ``_export_module`` method, with the name of
    the file that holds it (not the rest of the code, so that an ordinary edit of a model, or a new
    helper module, does not make the index stale; what this misses, such as a renamed class or a
    registration through a variable, ``tests/test_startup.py`` catches against the live registry)."""
    digest = hashlib.sha256()
    for pkg_name in _PACKAGES:
        folder = _ROOT.joinpath(*pkg_name.split(".")[1:])
        for f in sorted(folder.rglob("*.py")):
            calls = _calls(f.read_text(encoding="utf-8"))
            if calls:
                digest.update("\0".join([f.relative_to(_ROOT).as_posix(), *calls]).encode() + b"\1")
    return digest.hexdigest()[:20]


def _summary(entry: ModelEntry, entries: list[ModelEntry]) -> dict:
    """What ``deepatlas list`` shows of one name, and the modules that register it."""
    card = entry.cards[entry.default_task]
    base = None
    if card.defaults:  # a variant: another name's class with other defaults
        base = next(
            (
                e.name
                for e in entries
                if e is not entry and any(c.cls is card.cls and not c.defaults for c in e.cards.values())
            ),
            card.cls.__name__,
        )
    return {
        "name": entry.name,
        "description": entry.description,
        "family": entry.family,
        "tasks": list(entry.cards),
        "exports": any(c.exporter is not None for c in entry.cards.values()),
        "variant_of": base,
        "settings": ", ".join(f"{k}={v!r}" for k, v in card.defaults.items()),
        "modules": list(dict.fromkeys(c.module for c in entry.cards.values())),
    }


def build_index() -> dict:
    """The card index from the live registry (every model module imported)."""
    entries = model_entries()
    return {"sources": _sources_digest(), "models": [_summary(e, entries) for e in entries]}


def write_index(path: Path | None = None) -> Path:
    """Write :func:`build_index` to ``_cards.json`` (``python -m deepatlas.registry``)."""
    from deepatlas._io import write_json

    path = Path(path or _INDEX_FILE)
    write_json(path, build_index())
    return path


@functools.cache
def _index() -> dict[str, dict] | None:
    """The card index by name when it was written from the current sources, else ``None``."""
    try:
        data = json.loads(_INDEX_FILE.read_text(encoding="utf-8"))
        if data.get("sources") != _sources_digest():
            return None
        return {m["name"]: m for m in data["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_summaries() -> list[dict]:
    """One summary per registry name, sorted (what ``deepatlas list`` prints): from the card
    index when it is current (no model module imported), else from the live registry."""
    index = None if _loaded else _index()
    if index is not None:
        return [index[n] for n in sorted(index)]
    entries = model_entries()
    return [_summary(e, entries) for e in entries]


def _load_for(key: str) -> None:
    """Import only the modules that register ``key`` (from a current card index); the whole
    registry when the index is stale or does not know the name."""
    if _loaded:
        return
    known = _index() or {}
    summary = known.get(key)
    if summary is None:
        _ensure_loaded()
        return
    for module in summary["modules"]:
        importlib.import_module(module)
    entry = _REGISTRY.get(key)
    if entry is None or set(entry.cards) != set(summary["tasks"]):
        _ensure_loaded()
        return
    entry.cards = {task: entry.cards[task] for task in summary["tasks"]}  # the default task first, as in a full load


def get_entry(name: str) -> ModelEntry:
    key = name.lower() if isinstance(name, str) else name
    if isinstance(key, str):
        _load_for(key)
    else:
        _ensure_loaded()
    if key not in _REGISTRY:
        hint = suggest(str(name), _REGISTRY) or f" Known models: {', '.join(sorted(_REGISTRY))}."
        raise InputError(f"Unknown model {name!r}.{hint}")
    return _REGISTRY[key]


def get_card(name: str, task: str | None = None) -> ModelCard:
    """The card registered as ``name`` for ``task`` (default: the name's first task)."""
    entry = get_entry(name)
    if task is None:
        return entry.cards[entry.default_task]
    if task not in entry.cards:
        if entry.default_task in ("transform", "generative"):
            return entry.cards[entry.default_task]  # unsupervised: any dataset's X will do
        raise InputError(f"Model {name!r} does not support {task} data; it supports: {', '.join(entry.cards)}.")
    return entry.cards[task]


def get_model_class(name: str, task: str | None = None) -> type:
    """The estimator class registered as ``name`` for ``task`` (default: the name's first task)."""
    return get_card(name, task).cls


def cards() -> list[ModelCard]:
    """Every card, by name, then in registration order of the tasks."""
    _ensure_loaded()
    return [card for n in sorted(_REGISTRY) for card in _REGISTRY[n].cards.values()]


def card_of(estimator, task: str | None = None) -> ModelCard | None:
    """The card of an estimator instance: of its class (or nearest registered base class), the
    one whose variant defaults it matches most closely, e.g. ``RNNClassifier(cell="gru")`` -> ``gru``."""
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    for klass in type(estimator).__mro__:
        found = [c for c in cards() if c.cls is klass and (task is None or c.task == task)]
        matching = [c for c in found if all(params.get(k) == v for k, v in c.defaults.items())]
        if matching:
            return max(matching, key=lambda c: len(c.defaults))
    return None


def name_of(estimator, task: str | None = None) -> str:
    """The registry name of an estimator instance (its class name when it is not registered)."""
    card = card_of(estimator, task)
    return card.name if card is not None else type(estimator).__name__


def create_model(name: str, task: str | None = None, **params):
    """Build the estimator registered as ``name`` with ``params``.

    Unknown parameter names raise an error that suggests the closest valid names.

    >>> model = create_model("mlp", hidden_sizes=(64,), epochs=20)
    """
    card = get_card(name, task)
    valid = card.cls._get_param_names()
    for key in params:
        if key not in valid:
            hint = suggest(key, valid) or f" Valid parameters: {', '.join(valid)}."
            raise InputError(f"Unknown parameter {key!r} for model {name!r} ({card.cls.__name__}).{hint}")
    return card.create(**params)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registry names matching a shell-style ``pattern``, e.g. ``list_models("*gan*")``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern.lower()))


def model_entries() -> list[ModelEntry]:
    _ensure_loaded()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def build_model(name: str, task: str | None, params: dict):
    """:func:`create_model` for the command line and tuning, which pass ``seed`` (and ``verbose``)
    to every model: those two are dropped for a model that lacks them; any other unknown name
    still fails with a "did you mean" hint. ``params`` is not modified."""
    valid = get_model_class(name, task)._get_param_names()
    kept = {k: v for k, v in params.items() if k in valid or k not in ("seed", "verbose")}
    return create_model(name, task, **kept)


if __name__ == "__main__":  # python -m deepatlas.registry: rewrite the card index from the live registry
    from deepatlas import registry as _live  # the package's module (this file runs as __main__)

    print(f"wrote {_live.write_index()} ({len(_live.model_summaries())} names)")
