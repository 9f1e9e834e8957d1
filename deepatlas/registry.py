"""One registry of models: ``register_model``, ``create_model``, ``list_models``.

A registry name (``"mlp"``) may stand for several estimator classes, one per task: the dataset's
task (``classification``, ``regression``, ``tagging``, ``generative``, ``transform``, ``rl``...)
picks the class, so ``deepatlas train mlp --data <regression data>`` builds an ``MLPRegressor``.
The first class registered under a name is its default.

Model modules register themselves on import; :func:`_ensure_loaded` imports every module of
``deepatlas.models`` and its family sub-packages (and ``deepatlas.rl`` when present) the first time the registry is queried,
so adding a family means adding a file.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field

from deepatlas._validation import suggest
from deepatlas.errors import InputError

_PACKAGES = ("deepatlas.models", "deepatlas.rl")


@dataclass
class ModelEntry:
    name: str
    description: str
    family: str
    classes: dict[str, type] = field(default_factory=dict)  # task -> estimator class

    @property
    def default_task(self) -> str:
        return next(iter(self.classes))


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name: str, *, task: str = "classification", description: str = "", family: str = ""):
    """Class decorator: make ``cls`` available as ``create_model(name, task=task)``.

    Example
    -------
    >>> @register_model("mlp", task="classification", description="multilayer perceptron")
    ... class MLPClassifier(...): ...
    """

    def decorate(cls: type) -> type:
        entry = _REGISTRY.setdefault(name, ModelEntry(name, description, family or cls.__module__.rsplit(".", 1)[-1]))
        if description and not entry.description:
            entry.description = description
        entry.classes[task] = cls
        names = dict(getattr(cls, "_registry_names", {}))
        names[task] = name
        cls._registry_names = names
        cls._registry_name = names.get(task, name)
        return cls

    return decorate


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


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    key = name.lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        hint = suggest(str(name), _REGISTRY) or f" Known models: {', '.join(sorted(_REGISTRY))}."
        raise InputError(f"Unknown model {name!r}.{hint}")
    return _REGISTRY[key]


def get_model_class(name: str, task: str | None = None) -> type:
    """The estimator class registered as ``name`` for ``task`` (default: the name's first task)."""
    entry = get_entry(name)
    if task is None:
        return entry.classes[entry.default_task]
    if task not in entry.classes:
        if entry.default_task in ("transform", "generative"):
            return entry.classes[entry.default_task]  # unsupervised: any dataset's X will do
        raise InputError(f"Model {name!r} does not support {task} data; it supports: {', '.join(entry.classes)}.")
    return entry.classes[task]


def create_model(name: str, task: str | None = None, **params):
    """Build the estimator registered as ``name`` with ``params``.

    Unknown parameter names raise an error that suggests the closest valid names.

    >>> model = create_model("mlp", hidden_sizes=(64,), epochs=20)
    """
    cls = get_model_class(name, task)
    valid = cls._get_param_names()
    for key in params:
        if key not in valid:
            hint = suggest(key, valid) or f" Valid parameters: {', '.join(valid)}."
            raise InputError(f"Unknown parameter {key!r} for model {name!r} ({cls.__name__}).{hint}")
    return cls(**params)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registry names matching a shell-style ``pattern``, e.g. ``list_models("*gan*")``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern.lower()))


def model_entries() -> list[ModelEntry]:
    _ensure_loaded()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
