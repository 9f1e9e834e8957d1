r'''Hyperparameter documentation read from where each parameter is declared.

A string literal right under a dataclass field documents that field (as CleanRL does)::

    hidden_size: int = 64
    """Units in each recurrent layer (per direction)."""

Python keeps no trace of such a string at run time, so :func:`field_docs` parses each class's
source with :mod:`ast` (the nearest class in the method resolution order that documents a field
wins, so a leaf that re-declares a field to change its default keeps the base's doc or gives its own).
:func:`describe_params` joins the docs with the defaults (a card's variant defaults first) and the
allowed values of :mod:`deepatlas._validation`; ``deepatlas list --params NAME`` prints them.

The building blocks of the search spaces that model cards declare (``tuning_space=``) live here
too, so that a model module and :mod:`deepatlas.tuning` share them without importing each other.
'''

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

# ---- search-space building blocks (see deepatlas.tuning) --------------------------------------
SPACE_LR = {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}
SPACE_BATCH = {"type": "categorical", "choices": [32, 64, 128, 256]}
SPACE_DROPOUT = {"type": "float", "low": 0.0, "high": 0.5}


@dataclass(frozen=True)
class ParamInfo:
    """One hyperparameter: its default, its allowed values (``""`` when unconstrained), its doc."""

    name: str
    default: Any
    allowed: str
    doc: str


@functools.cache
def _own_field_docs(cls: type) -> dict[str, str]:
    """Docs of the fields that ``cls``'s own class body declares (empty when it has no source)."""
    if "__annotations__" not in vars(cls):
        return {}
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__), None)
    if node is None:
        return {}
    docs: dict[str, str] = {}
    body = node.body
    for stmt, nxt in zip(body, body[1:] + [None]):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field name: doc}`` for every documented field of ``cls`` and its bases. The nearest
    class in the method resolution order that documents a field gives its doc; a leaf that
    re-declares a field only to change its default keeps the doc of the base that declared it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_own_field_docs(klass))
    return docs


def describe_params(cls: type, defaults: dict | None = None) -> list[ParamInfo]:
    """Every field of the dataclass ``cls`` in declaration order, with its default (overridden by
    ``defaults``, e.g. a card's variant defaults), its allowed values and its doc."""
    from deepatlas._validation import _constraints_of

    constraints = _constraints_of(cls)
    docs = field_docs(cls)
    overrides = defaults or {}
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in overrides:
            default = overrides[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        constraint = constraints.get(f.name)
        out.append(ParamInfo(f.name, default, constraint.description if constraint else "", docs.get(f.name, "")))
    return out
