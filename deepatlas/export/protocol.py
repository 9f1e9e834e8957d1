"""The inference-module protocol: what a family provides so that its models can be exported and served.

A fitted estimator describes its inference path as an :class:`ExportSpec`: a plain ``nn.Module``
that maps raw inputs (before any preprocessing) to the outputs a user wants, with the saved
preprocessing inside the graph, plus an example input and metadata. Two ways to provide one:

* the estimator defines ``_export_module(self, part=None)`` returning an :class:`ExportSpec`, or
  the short form ``(module, example_input, metadata)``; families with several inference paths
  (an autoencoder's encoder and decoder) list them in a class attribute ``_export_parts`` and
  receive the chosen name as ``part``;
* or an exporter function is registered for the class with :func:`register_exporter`, found
  through the method resolution order (each family registers its adapters in its own
  ``export`` module, e.g. :mod:`deepatlas.models.rnn.export`, imported with the registry);
  ``parts=`` names its inference paths when there are several.

:func:`inference_spec` dispatches: the estimator's own ``_export_module`` first, then the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from deepatlas.errors import InputError

DOCS = "docs/results-deployment.md"


@dataclass
class ExportSpec:
    """One exportable inference path.

    module : maps ``example_input``-like tensors (raw, un-preprocessed) to one tensor or a tuple
        of tensors, one per name in ``output_names``. It is run in ``eval()`` mode on the CPU.
    example_input : a small batch (``B >= 2``, so that the batch axis is not specialised to 1).
    metadata : JSON-able facts for the sidecar and the server, e.g. ``kind`` (``classifier``,
        ``regressor``, ``encoder``, ``decoder``, ``generator``, ``policy``, ``transform``),
        ``classes`` (labels in output order), ``decision`` (``argmax`` over ``probabilities`` or
        ``scores``; ``sign`` for a single score), ``preprocessing``.
    dynamic_axes : input axes that vary, ``{0: "batch"}`` always, plus e.g. ``{1: "time"}``.
    reference : the estimator's own public outputs on raw inputs, ``X -> {output name: array}``
        (e.g. ``predict_proba``); the module must reproduce them, which catches a wrong wrapper.
    random_input : ``(rng, n) -> array`` of ``n`` random raw inputs on the data's scale; default:
        standard normal in the example's shape and dtype. It may take ``grow=k`` to lengthen
        the dynamic non-batch axes by ``k`` (to check another sequence length).
    resizable : the non-batch dynamic axes are sizes the model takes but does not need (an image
        CNN's height and width, freed by its global pooling), so a format that fixes every axis
        (TFLite) fixes them at the example's size, the training size, instead of refusing; a
        sequence's time axis is not (an unrolled recurrence). Default ``False``.
    held_out : ``(X, label) -> (inputs, label)`` or ``None``: turns a run's held-out data inputs
        ``X`` (``None`` when the run records no data) into this path's inputs, e.g. a decoder's
        codes ``encoder(X_test)``, or observations from a policy's own rollouts; ``None`` when
        there are none (a generator's noise: random inputs only). Default: the data as they are.
    """

    module: nn.Module
    example_input: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)
    input_name: str = "input"
    output_names: tuple[str, ...] = ("output",)
    dynamic_axes: dict[int, str] = field(default_factory=lambda: {0: "batch"})
    reference: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    random_input: Callable[[np.random.Generator, int], np.ndarray] | None = None
    held_out: Callable[[np.ndarray | None, str], tuple[np.ndarray, str] | None] | None = None
    resizable: bool = False

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.example_input.shape[1:])

    def at_example_size(self) -> ExportSpec:
        """This path with only the batch axis dynamic (a :attr:`resizable` model for TFLite)."""
        return replace(self, dynamic_axes={0: self.dynamic_axes.get(0, "batch")})

    def random_inputs(self, rng: np.random.Generator, n: int, grow: int = 0) -> np.ndarray:
        """``n`` random inputs; ``grow`` lengthens the dynamic non-batch axes (default sampler only)."""
        if self.random_input is not None:
            if grow:
                import inspect

                if "grow" in inspect.signature(self.random_input).parameters:
                    return np.asarray(self.random_input(rng, n, grow=grow))
            return np.asarray(self.random_input(rng, n))
        dtype = self.example_input.numpy().dtype
        if not np.issubdtype(dtype, np.floating):
            raise InputError(
                f"ExportSpec.random_input is required for {dtype} inputs (a standard normal cannot be drawn)."
            )
        shape = [s + grow if ax + 1 in self.dynamic_axes else s for ax, s in enumerate(self.sample_shape)]
        return rng.standard_normal((n, *shape)).astype(dtype)


# The exporter table lives with the model cards in the registry (below the models, which
# register their adapters on import); this module re-exports it for the adapters.
from deepatlas.registry import _EXPORTERS, _PARTS, _registered, exporter_of, register_exporter  # noqa: E402, F401


def export_parts(estimator) -> tuple[str, ...]:
    """The inference paths an estimator offers (``()`` for one): its ``_export_parts``, else the
    ``parts`` its registered exporter declared."""
    own = tuple(getattr(estimator, "_export_parts", ()) or ())
    if own or hasattr(estimator, "_export_module"):
        return own
    return _PARTS.get(_registered(estimator), ())


def has_inference_path(estimator) -> bool:
    return exporter_of(type(estimator)) is not None


def inference_spec(estimator, part: str | None = None) -> ExportSpec:
    """The :class:`ExportSpec` of a fitted estimator (``part`` picks one of ``_export_parts``)."""
    name = type(estimator).__name__
    parts = export_parts(estimator)
    if part is not None and part not in parts:
        known = f"one of {', '.join(repr(p) for p in parts)}" if parts else "none (it has one inference path)"
        raise InputError(f"--part {part!r} is not an inference path of {name}; expected {known}.")
    if hasattr(estimator, "_export_module"):
        spec = estimator._export_module(part) if parts else estimator._export_module()
    elif (found := _registered(estimator)) is not None:
        spec = _EXPORTERS[found](estimator, part if part is not None or not parts else parts[0])
    else:
        raise InputError(
            f"{name} has no inference path to export: it defines no _export_module() and no exporter is "
            f"registered for it (see {DOCS})."
        )
    return as_spec(spec, name)


def as_spec(spec, owner: str = "model") -> ExportSpec:
    """Accept an :class:`ExportSpec` or the short form ``(module, example_input, metadata)``."""
    if isinstance(spec, ExportSpec):
        out = spec
    elif isinstance(spec, tuple) and len(spec) == 3:
        module, example, meta = spec
        meta = dict(meta or {})
        kwargs = {k: meta.pop(k) for k in ("input_name", "output_names", "dynamic_axes") if k in meta}
        if "output_names" in kwargs:
            kwargs["output_names"] = tuple(kwargs["output_names"])
        if "dynamic_axes" in kwargs:
            kwargs["dynamic_axes"] = {int(k): str(v) for k, v in kwargs["dynamic_axes"].items()}
        out = ExportSpec(module=module, example_input=example, metadata=meta, **kwargs)
    else:
        raise InputError(
            f"{owner}._export_module() must return an ExportSpec or (module, example_input, metadata). "
            f"Got {type(spec).__name__} instead."
        )
    if not isinstance(out.module, nn.Module):
        raise InputError(f"{owner}'s export module must be a torch nn.Module. Got {type(out.module).__name__} instead.")
    if not isinstance(out.example_input, torch.Tensor) or out.example_input.ndim < 1:
        raise InputError(f"{owner}'s example_input must be a batched torch.Tensor.")
    out.dynamic_axes = {0: "batch", **out.dynamic_axes}
    return out


def inference_paths() -> dict[str, bool]:
    """``{"name/task (Class)": has an inference path}`` over the whole registry: which models export."""
    from deepatlas.registry import model_entries

    out = {}
    for entry in model_entries():
        for task, cls in entry.classes.items():
            out[f"{entry.name}/{task} ({cls.__name__})"] = exporter_of(cls) is not None
    return out
