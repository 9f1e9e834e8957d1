"""Every hyperparameter is documented where it is declared and constrained; `deepatlas list` prints
the cards and `deepatlas list --params NAME` the parameters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from deepatlas._params import describe_params, field_docs
from deepatlas._validation import _constraints_of
from deepatlas.cli import main
from deepatlas.commands.list import params_lines
from deepatlas.registry import cards


@pytest.mark.parametrize("card", cards(), ids=lambda c: f"{c.name}-{c.task}")
def test_every_field_has_a_doc_and_a_constraint(card):
    docs, constraints = field_docs(card.cls), _constraints_of(card.cls)
    names = [f.name for f in dataclasses.fields(card.cls)]
    assert [n for n in names if not docs.get(n, "").strip()] == [], f"{card.cls.__name__}: fields without a doc"
    assert [n for n in names if n not in constraints] == [], f"{card.cls.__name__}: fields without a constraint"


@dataclass(kw_only=True)
class _Base:
    width: int = 4
    """Units per layer."""
    depth: int = 2
    """Layers."""
    undocumented: int = 0


@dataclass(kw_only=True)
class _Leaf(_Base):
    width: int = 8  # a new default keeps the base's doc
    depth: int = 3
    """Layers, counting the output layer."""
    extra: str = "x"
    """A field of the leaf
    over two lines."""


def test_field_docs_follow_the_mro_and_describe_params_orders_leaf_fields_first():
    assert field_docs(_Leaf) == {
        "width": "Units per layer.",
        "depth": "Layers, counting the output layer.",
        "extra": "A field of the leaf\nover two lines.",
    }
    params = describe_params(_Leaf, {"width": 16})
    assert [(p.name, p.default, p.doc) for p in params] == [
        ("extra", "x", "A field of the leaf\nover two lines."),
        ("width", 16, "Units per layer."),
        ("depth", 3, "Layers, counting the output layer."),
        ("undocumented", 0, ""),
    ]
    assert {p.allowed for p in params} == {""}  # no _parameter_constraints


def test_describe_params_applies_variant_defaults_and_constraints():
    (cell,) = [p for p in describe_params(cards_by("gru", "classification").cls, {"cell": "gru"}) if p.name == "cell"]
    assert cell.default == "gru"
    assert cell.allowed == "one of 'rnn', 'gru', 'lstm', 'peephole-lstm'"
    assert cell.doc.startswith("The recurrence:")


def cards_by(name, task):
    return next(c for c in cards() if c.name == name and c.task == task)


def test_list_params_prints_default_allowed_values_and_meaning(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list", "--params", "gru", "--task", "regression"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gru (regression): RNNRegressor with cell='gru'; other tasks: classification, tagging (--task)"
    i = lines.index("  cell = 'gru'  (one of 'rnn', 'gru', 'lstm', 'peephole-lstm')")
    assert lines[i + 1 : i + 3] == [
        "      The recurrence: `rnn` (tanh), `gru`, `lstm` (torch's fused cells) or",
        "      `peephole-lstm` (an LSTM whose gates also read the cell state).",
    ]
    assert lines[-2:] == [
        "  verbose = False  (a bool)",
        "      Print progress (a bar per epoch or step) while fitting.",
    ]
    assert all(len(line) <= 80 for line in lines[1:])
    # every field of the class is listed once
    fields = {f.name for f in dataclasses.fields(cards_by("gru", "regression").cls)}
    assert {line.split(" = ")[0].strip() for line in lines if line.startswith("  ") and " = " in line} == fields
    assert params_lines("mlp", width=80)[0] == "mlp (classification): MLPClassifier; other tasks: regression (--task)"


def test_list_params_of_an_unknown_model_is_one_line_with_a_hint(capsys):
    assert main(["list", "--params", "rnnn"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["deepatlas list: error: Unknown model 'rnnn'. Did you mean 'rnn'?"]


def test_list_prints_one_line_per_card_with_family_tasks_export_and_variant_defaults(capsys):
    assert main(["list", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "  gru                  = rnn with cell='gru': gated recurrent unit network (fused nn.GRU)  "
        "[rnn: classification, regression, tagging; ONNX]"
    ) in lines
    assert (
        "  mlp                  multilayer perceptron (dense layers, softmax output)  [mlp: classification, regression; ONNX]"
    ) in lines
    for card in cards():  # the export column follows the cards' exporters
        (line,) = [line for line in lines if line.startswith(f"  {card.name} ")]
        exports = any(c.exporter is not None for c in cards() if c.name == card.name)
        assert line.endswith("; ONNX]" if exports else "; no export]")
    assert len(lines) == 1 + len({c.name for c in cards()})


def test_help_lists_every_hyperparameter_with_its_doc():
    import pydoc

    from deepatlas.models.mlp import MLPClassifier

    text = pydoc.render_doc(MLPClassifier, renderer=pydoc.plaintext)
    assert "Parameters" in text and "hidden_sizes : tuple, default (256, 256)" in text
    assert "fast_step : bool, default True" in text
    assert MLPClassifier.__doc__.startswith("Multilayer perceptron classifier.")
