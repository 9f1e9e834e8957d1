r'''Hyperparameter documentation read from where each parameter is declared.

A string literal right under a dataclass field documents that field (as CleanRL does)::

    hidden_size: int = 64
    """Units in each recurrent layer (per direction)."""

Python keeps no trace of such a string at run time, so :func:`field_docs` reads them from the
source with :mod:`ast` (each file parsed once, about 15 ms, and only when asked: nothing happens at
import). The nearest class in the method resolution order that documents a field wins, so a leaf
that re-declares a field only to change its default keeps its base's doc, or may give its own.
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
from pathlib import Path
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
def _class_nodes(filename: str) -> dict[str, ast.ClassDef]:
    """Every class statement of a source file by qualified name; each file is parsed once."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    found: dict[str, ast.ClassDef] = {}

    def visit(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = node
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def _class_node(cls: type) -> ast.ClassDef | None:
    try:
        filename = inspect.getsourcefile(cls)
    except TypeError:  # built-in
        return None
    node = _class_nodes(filename).get(cls.__qualname__) if filename else None
    if node is None:  # e.g. a class made inside a function: let inspect find it
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            return None
        node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__), None)
    return node


@functools.cache
def _own_field_docs(cls: type) -> dict[str, str]:
    """Docs of the fields that ``cls``'s own class body declares (empty when it has no source)."""
    if not vars(cls).get("__annotations__"):
        return {}
    node = _class_node(cls)
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
    """Every field of the dataclass ``cls``, with its default (overridden by ``defaults``, e.g. a
    card's variant defaults), its allowed values and its doc. The fields that ``cls`` itself
    introduces come first, those of its bases after them (the root's ``seed``, ``device``,
    ``verbose`` last), each group in declaration order."""
    from deepatlas._validation import _constraints_of

    constraints = _constraints_of(cls)
    docs = field_docs(cls)
    overrides = defaults or {}
    out = []
    mro = cls.__mro__

    def introduced_by(f) -> int:  # MRO position of the farthest base that declares the field
        return max(i for i, klass in enumerate(mro) if f.name in vars(klass).get("__annotations__", {}))

    for f in sorted(dataclasses.fields(cls), key=introduced_by):
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


def params_doc(cls: type, defaults: dict | None = None) -> str:
    """A numpydoc ``Parameters`` section for ``cls`` (name, type, default, meaning, allowed
    values), e.g. to append to a class docstring so that ``help()`` shows the field docs."""
    types = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
             for f in dataclasses.fields(cls)}  # fmt: skip
    lines = ["Parameters", "----------"]
    for p in describe_params(cls, defaults):
        default = "required" if p.default is dataclasses.MISSING else f"default {p.default!r}"
        lines.append(f"{p.name} : {types[p.name]}, {default}")
        text = p.doc or "(not documented)"
        if p.allowed:
            text += f" Allowed: {p.allowed}."
        lines += textwrap.wrap(text, 96, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)
