"""One contract over the whole registry: every card (registry name and task, variants included)
fits its smoke settings (``ModelCard.smoke``) and keeps the same promises.

- clone / ``get_params`` / ``set_params`` round-trip, and the variant's defaults applied;
- every hyperparameter has a constraint (their docs are checked in tests/test_params.py);
- one not-fitted message from the main inference method before ``fit``;
- same seed -> same outputs and weights, the caller's global torch and NumPy RNG untouched;
- save -> load -> identical outputs;
- ONNX export parity where the card has an exporter;
- ``precision="bf16"`` reaches the training loop (autocast on during training forwards);
- under a simulated two-process world: every training forward through the DDP wrapper for a
  data-parallel family, the one-line refusal before any work for every other family;
- a run saved by the old layout (class names in config.json) still loads, by registry name.

A small adapter (:func:`_fit`, :func:`_outputs`, :func:`_infer`) is the only place that knows
how a family is fed: RL agents ``learn`` on an environment, the language model reads a text,
everything else takes ``fit(X, y)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from deepatlas._validation import _constraints_of
from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.registry import cards, create_model
from deepatlas.saving import load, save_model
from deepatlas.training import Callback
from deepatlas.training import distributed as dist

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py

CARDS = cards()
IDS = [f"{c.name}/{c.task}" for c in CARDS]
MAX_TRAIN = 240  # training rows kept of a smoke dataset (validation and test: a quarter of that)


def over(selected):
    return pytest.mark.parametrize("card", selected, ids=[f"{c.name}/{c.task}" for c in selected])


every_card = over(CARDS)


# ---- the adapter: data, fit, outputs ----------------------------------------------------------------
@functools.cache
def _dataset(spec: str):
    ds = load_dataset(spec)
    if ds.task != "text":  # a corpus is one string per split
        for part, cap in (("train", MAX_TRAIN), ("val", MAX_TRAIN // 4), ("test", MAX_TRAIN // 4)):
            for kind in ("X", "y"):
                arr = getattr(ds, f"{kind}_{part}")
                if arr is not None:
                    setattr(ds, f"{kind}_{part}", arr[:cap])
    return ds


def _data(card):
    return None if card.task == "rl" else _dataset(card.smoke["data"])


def _make(card, **params):
    base = dict(card.smoke["params"], device="cpu")
    if card.task == "rl":
        base["env"] = card.smoke["data"]
    return card.create(**{**base, **params})


def _fit(card, est, **kwargs):
    if card.task == "rl":
        return est.learn(card.smoke["total_timesteps"], **kwargs)
    ds = _data(card)
    if card.task == "text":
        return est.fit(str(ds.X_train[0]), **kwargs)
    return est.fit(ds.X_train, ds.y_train, **kwargs)


def _observations(est, n=16):
    shape = getattr(est, "obs_shape_", (4,))  # the environment's (an unfitted agent refuses any)
    return np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)


def _outputs(card, est) -> dict:
    """What the fitted model computes, by every inference method it has, on the smoke test split."""
    if card.task == "rl":
        return {"predict": est.predict(_observations(est))}
    ds = _data(card)
    if card.task == "text":
        return {"sample": est.sample(40, seed=0), "bits": est.bits_per_char(str(ds.X_test[0])[:600])}
    out = {m: getattr(est, m)(ds.X_test) for m in ("predict_proba", "predict", "transform") if hasattr(est, m)}
    if card.task == "generative" and hasattr(est, "sample"):
        out["sample"] = est.sample(8, seed=0)
    assert out, f"{card.name}: no inference method"
    return out


def _infer(card, est):
    """The card's main inference method, called as a user would right after fitting."""
    if card.task == "rl":
        return est.predict(_observations(est))
    if card.task == "text":
        return est.sample(10)
    order = ("sample", "transform", "predict") if card.task == "generative" else ("predict", "transform", "sample")
    method = next(m for m in order if hasattr(est, m))
    return est.sample(8) if method == "sample" else getattr(est, method)(_data(card).X_test)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], str):
            assert a[key] == b[key], key
        else:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def _weights(est) -> dict[str, torch.Tensor]:
    return est._fitted_state()[0]


# ---- parameters ---------------------------------------------------------------------------------
@every_card
def test_clone_and_params_round_trip(card):
    est = _make(card)
    params = est.get_params(deep=False)
    assert set(params) == {f.name for f in dataclasses.fields(card.cls)}
    for key, value in card.defaults.items():  # the variant is its defaults
        assert params[key] == value, key
    copy = clone(est)
    assert type(copy) is card.cls and copy is not est
    assert copy.get_params(deep=False) == params
    for key, value in params.items():
        assert copy.set_params(**{key: value}) is copy
    assert copy.get_params(deep=False) == params


@every_card
def test_every_parameter_has_a_constraint(card):
    fields = [f.name for f in dataclasses.fields(card.cls)]
    missing = sorted(set(fields) - set(_constraints_of(card.cls)))
    assert missing == [], f"{card.cls.__name__} parameters without a constraint: {missing}"


@every_card
def test_not_fitted_error_before_fit(card):
    est = _make(card)
    with pytest.raises(NotFittedError) as err:
        _infer(card, est)
    name = card.cls.__name__
    assert str(err.value) == f"This {name} instance is not fitted yet. Call 'fit' with appropriate arguments first."


# ---- reproducibility and persistence ---------------------------------------------------------------
@every_card
def test_same_seed_same_model_and_the_callers_rng_untouched(card):
    _data(card)  # loading a dataset may draw from the global RNG; only fit is under test
    torch.manual_seed(1234)
    np.random.seed(1234)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = _fit(card, _make(card, seed=7))
    assert torch.equal(torch.get_rng_state(), torch_state), "fit drew from torch's global generator"
    np_after = np.random.get_state()
    assert np.array_equal(np_after[1], np_state[1]) and np_after[2] == np_state[2], "fit drew from NumPy's global RNG"
    second = _fit(card, _make(card, seed=7))
    _assert_same(_outputs(card, first), _outputs(card, second))
    w1, w2 = _weights(first), _weights(second)
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.equal(w1[key], w2[key]), key


@every_card
def test_save_load_gives_identical_outputs(card, tmp_path):
    est = _fit(card, _make(card))
    save_model(est, tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["model"], config["class"]) == (card.name, card.cls.__name__)
    loaded = load(tmp_path / "run")
    assert type(loaded) is card.cls
    keep = {k: v for k, v in est.get_params(deep=False).items() if k != "device"}  # load picks "auto"
    assert {k: v for k, v in loaded.get_params(deep=False).items() if k != "device"} == keep
    _assert_same(_outputs(card, est), _outputs(card, loaded))


# The peephole LSTM steps through time in Python: an ONNX graph would be fixed at one length, so
# its export is refused (tested below) instead of exported wrong.
PEEPHOLE = [c for c in CARDS if c.defaults.get("cell") == "peephole-lstm"]
EXPORTABLE = [c for c in CARDS if c.exporter is not None and c not in PEEPHOLE]


@over(PEEPHOLE)
def test_a_peephole_network_refuses_export_with_one_line(card, tmp_path):
    from deepatlas.export import export

    est = _fit(card, _make(card))
    message = (
        f"{type(est).__name__} with cell='peephole-lstm' does not export: its time loop runs in Python and ONNX "
        "would fix it at one sequence length. Serve the run with the torch backend, or train cell='lstm'."
    )
    with pytest.raises(InputError) as err:
        export(est, tmp_path / "m.onnx", exporter="torchscript")
    assert str(err.value) == message
    assert not (tmp_path / "m.onnx").exists()


@over(EXPORTABLE)
def test_export_parity(card, tmp_path):
    from deepatlas.export import TOLERANCE, export, export_parts

    est = _fit(card, _make(card))
    for part in export_parts(est) or (None,):
        # TorchScript keeps the check at ~0.1 s a model; the pipeline raises ParityError itself
        # when onnxruntime and torch (or the module and the estimator) disagree.
        result = export(est, tmp_path / f"{part}.onnx", part=part, exporter="torchscript")
        assert {"reference", "random"} <= set(result.parity), result.parity
        for key in ("reference", "held_out", "random"):
            if key in result.parity:
                assert result.parity[key]["max_scaled_diff"] <= TOLERANCE, (part, key, result.parity[key])


def test_only_models_without_a_fixed_graph_have_no_exporter():
    """The iterative sparse coders stop at a tolerance; the RTRBM steps through time in Python; HOG + SVM is
    scikit-image and scikit-learn."""
    assert sorted(f"{c.name}/{c.task}" for c in CARDS if c.exporter is None) == [
        "conv-sparse-coding/transform",
        "dictionary-learning/transform",
        "hog-svm/classification",  # scikit-image's HOG features and a scikit-learn SVM: no torch graph to export
        "rtrbm/generative",  # its inference loops over time in Python (deepatlas/models/rbm/rtrbm.py)
        "sparse-coding/transform",
    ]


# ---- the training loop: precision, data parallelism -------------------------------------------------
class AutocastProbe(Callback):
    """Records, for every forward of the loop's module in training mode, whether CPU autocast was on."""

    def __init__(self):
        self.seen: list[bool] = []
        self.module = None

    def on_train_begin(self, loop):
        self.module = loop.module
        self.handle = loop.module.register_forward_pre_hook(self._record)

    def _record(self, module, args):
        if module.training:
            self.seen.append(torch.is_autocast_enabled("cpu"))

    def on_train_end(self, loop):
        self.handle.remove()


WITH_PRECISION = [c for c in CARDS if "precision" in c.cls._get_param_names()]


@over(WITH_PRECISION)
def test_bf16_precision_reaches_the_loop(card):
    probe = AutocastProbe()
    _fit(card, _make(card, precision="bf16"), callbacks=[probe])
    assert probe.seen, "no training forward reached the loop's module"
    assert all(probe.seen), (
        f"{sum(not s for s in probe.seen)} of {len(probe.seen)} training forwards ran without autocast"
    )
    assert len(probe.module._forward_pre_hooks) == 0
    fp32 = AutocastProbe()
    _fit(card, _make(card), callbacks=[fp32])
    # fp32: no forward under autocast (the MLP's hand-written fp32 step calls no forward at all)
    assert not any(fp32.seen)


class CountingWrapper(nn.Module):
    """Stands in for DistributedDataParallel: counts the forwards that go through it."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.module(*args, **kwargs)


@pytest.fixture
def two_process_world(monkeypatch):
    """WORLD_SIZE=2 without a process group: joining it is a no-op, wrapping counts forwards."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    world = {"joined": 0, "wrappers": [], "plain_training_calls": []}

    def ensure_initialized(device):
        world["joined"] += 1
        return True

    def wrap(module, device):
        wrapper = CountingWrapper(module)
        counter = [0]

        def count(mod, args):
            if mod.training:
                counter[0] += 1

        module.register_forward_pre_hook(count)
        world["wrappers"].append(wrapper)
        world["plain_training_calls"].append(counter)
        return wrapper

    monkeypatch.setattr(dist, "ensure_initialized", ensure_initialized)
    monkeypatch.setattr(dist, "wrap", wrap)
    return world


@every_card
def test_two_process_world_trains_through_the_wrapper_or_refuses(card, two_process_world):
    world = two_process_world
    est = _make(card)
    if getattr(card.cls, "_data_parallel", False):
        _fit(card, est)
        assert world["joined"] >= 1 and world["wrappers"], "no DDP wrapper was made"
        for wrapper, plain in zip(world["wrappers"], world["plain_training_calls"]):
            assert wrapper.calls > 0, "no training forward went through the wrapper"
            # Every training-mode forward of the plain module came through the wrapper.
            assert plain[0] == wrapper.calls, (plain[0], wrapper.calls)
    else:
        with pytest.raises(InputError) as err:
            _fit(card, est)
        assert str(err.value) == (
            f"{card.cls.__name__} does not train data-parallel; run it as a single process "
            "(without torchrun or --nproc)."
        )
        assert world == {"joined": 0, "wrappers": [], "plain_training_calls": []}
        with pytest.raises(NotFittedError):
            check_is_fitted(est)


# ---- saved runs of the old layout ---------------------------------------------------------------
def test_a_run_of_the_old_layout_loads_by_registry_name(tmp_path):
    """Before model cards, an LSTM regressor was its own class, LSTMRegressor; config.json named it.
    Runs are keyed by registry name and task, so that run still loads, as the RNN estimator."""
    ds = load_dataset("adding:T=5,n=60")
    est = create_model("lstm", task="regression", hidden_size=8, epochs=2, device="cpu").fit(ds.X_train, ds.y_train)
    run = tmp_path / "old-run"
    save_model(est, run)
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["task"], config["params"]["cell"]) == ("lstm", "regression", "lstm")
    config["class"] = "LSTMRegressor"  # what the old code wrote
    (run / "config.json").write_text(json.dumps(config))
    loaded = load(run)
    assert type(loaded).__name__ == "RNNRegressor" and loaded.cell == "lstm"
    np.testing.assert_array_equal(loaded.predict(ds.X_test), est.predict(ds.X_test))


def test_every_registered_class_is_public():
    import deepatlas

    for card in CARDS:
        assert getattr(deepatlas, card.cls.__name__) is card.cls, card.cls.__name__
