"""Evaluation: metrics against scikit-learn's own functions on the same predictions, curve end
points, calibration, leakage-free cross-validation, the corrected t-test, learning curves, the
commands, and report.html rendered in headless Chromium."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from deepatlas import MLPClassifier, MLPRegressor, Perceptron, load_dataset
from deepatlas.errors import InputError
from deepatlas.evaluation import (
    compare,
    corrected_ttest,
    cross_validate,
    development_data,
    epochs_curve,
    evaluate,
    holm,
    learning_curve,
    make_splits,
)
from deepatlas.runs import train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


# ---- shared fitted models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp_run(digits, tmp_path_factory):
    """A finished MLP run directory on digits (trained in-process: cheaper than a subprocess)."""
    out = tmp_path_factory.mktemp("mlp-run")
    model = MLPClassifier(hidden_sizes=(32,), epochs=15, lr=3e-3, dropout=0.0)
    train_run(model, digits, out, data_spec="digits")
    return out, model


@pytest.fixture(scope="module")
def perceptron_digits(digits):
    return Perceptron().fit(digits.X_train, digits.y_train)


# ---- classifiers: numbers against scikit-learn ---------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")  # float32 softmax, in this test's own call
def test_classifier_metrics_match_sklearn(mlp_run, digits):
    _, model = mlp_run
    X, y = digits.X_test, digits.y_test
    r = evaluate(model, X, y)
    pred, P = model.predict(X), model.predict_proba(X)
    m = r["metrics"]
    assert m["accuracy"] > 0.9  # 64-32-10 MLP, 15 epochs, seeded digits split
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["precision_macro"] == pytest.approx(precision_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, P), rel=1e-5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, P, multi_class="ovr", average="macro"), rel=1e-6)
    Y = label_binarize(y, classes=model.classes_)
    assert m["average_precision"] == pytest.approx(average_precision_score(Y, P, average="macro"), rel=1e-6)
    p, rc, f, s = precision_recall_fscore_support(y, pred)
    for j, c in enumerate(model.classes_):
        row = r["per_class"][str(c)]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[j], rc[j], f[j], s[j]))
    counts = r["confusion_matrix"]["counts"]
    np.testing.assert_array_equal(counts, confusion_matrix(y, pred))
    np.testing.assert_allclose(r["confusion_matrix"]["normalized"].sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(r["confusion_matrix"]["normalized"]), rc)


def test_roc_and_pr_curves_end_points(mlp_run, digits):
    _, model = mlp_run
    X, y = digits.X_test, digits.y_test
    r = evaluate(model, X, y)
    P = model.predict_proba(X)
    curves = list(r["roc"]["per_class"].values()) + [r["roc"]["micro"], r["roc"]["macro"]]
    assert len(curves) == 12
    for c in curves:
        assert (c["fpr"][0], c["tpr"][0]) == (0.0, 0.0)
        assert (c["fpr"][-1], c["tpr"][-1]) == (1.0, 1.0)
        assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["tpr"]) >= 0)
    for j, c in enumerate(model.classes_):
        assert r["roc"]["per_class"][str(c)]["auc"] == pytest.approx(roc_auc_score(y == c, P[:, j]))
        pr = r["pr"]["per_class"][str(c)]
        # scikit-learn's convention: recall falls from 1 to 0, and the last point is (recall 0, precision 1)
        assert pr["recall"][0] == 1.0 and (pr["recall"][-1], pr["precision"][-1]) == (0.0, 1.0)
        assert pr["ap"] == pytest.approx(average_precision_score(y == c, P[:, j]))
    Y = label_binarize(y, classes=model.classes_)
    assert r["roc"]["micro"]["auc"] == pytest.approx(roc_auc_score(Y, P, average="micro"))
    assert r["pr"]["micro"]["ap"] == pytest.approx(average_precision_score(Y, P, average="micro"))


class _Fixed(ClassifierMixin, BaseEstimator):
    """Returns the probability rows it was given; the first feature is the row index."""

    def __init__(self, proba=None):
        self.proba = proba

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.asarray(self.proba)[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_expected_calibration_error_exact_cases():
    X = np.arange(10, dtype=float)[:, None]
    y = np.array([0, 0] + [1] * 8)
    calibrated = _Fixed(np.tile([0.2, 0.8], (10, 1))).fit(X, y)  # says 0.8, right 8 times in 10
    assert evaluate(calibrated, X, y)["metrics"]["ece"] == pytest.approx(0.0, abs=1e-12)
    sure = _Fixed(np.tile([0.0, 1.0], (10, 1))).fit(X, y)  # says 1.0, right 8 times in 10
    r = evaluate(sure, X, y)
    assert r["metrics"]["ece"] == pytest.approx(0.2)
    assert r["calibration"]["count"][-1] == 10 and r["calibration"]["count"].sum() == 10


def test_ece_matches_a_plain_loop(mlp_run, digits):
    _, model = mlp_run
    r = evaluate(model, digits.X_test, digits.y_test, n_bins=10)
    P = model.predict_proba(digits.X_test)
    conf, hit = P.max(axis=1), model.classes_[P.argmax(axis=1)] == digits.y_test
    ece = 0.0
    for lo in np.arange(10) / 10:
        inside = (conf > lo) & (conf <= lo + 0.1) if lo > 0 else conf <= 0.1
        if inside.any():
            ece += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    assert r["metrics"]["ece"] == pytest.approx(ece, rel=1e-3)
    assert 0.0 <= r["calibration"]["mce"] <= 1.0


def test_decision_function_only_classifier(perceptron_digits, digits):
    model = perceptron_digits
    X, y = digits.X_test, digits.y_test
    r = evaluate(model, X, y)
    assert r["scores_from"] == "decision_function"
    assert r["metrics"]["log_loss"] is None and r["metrics"]["ece"] is None and r["calibration"] is None
    assert "gives no probabilities" in r["notes"][0]
    S = model.decision_function(X)
    Y = label_binarize(y, classes=model.classes_)
    assert r["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(Y, S, average="macro"))
    assert r["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, model.predict(X)))
    blobs = load_dataset("blobs")
    binary = Perceptron().fit(blobs.X_train, blobs.y_train)
    rb = evaluate(binary, blobs.X_test, blobs.y_test)
    s = binary.decision_function(blobs.X_test)
    assert rb["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(blobs.y_test, s))
    assert rb["metrics"]["average_precision"] == pytest.approx(average_precision_score(blobs.y_test, s))
    assert list(rb["roc"]["per_class"]) == ["0", "1"]


def _regression_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)
    return X, y.astype(np.float32)


def test_regressor_metrics_and_plots(tmp_path):
    X, y = _regression_data()
    model = MLPRegressor(hidden_sizes=(16,), epochs=60, lr=1e-2, dropout=0.0).fit(X[:200], y[:200])
    r = evaluate(model, X[200:], y[200:], out=tmp_path)
    pred = model.predict(X[200:])
    m = r["metrics"]
    assert m["r2"] > 0.9
    assert m["r2"] == pytest.approx(r2_score(y[200:], pred), rel=1e-6)
    assert m["mse"] == pytest.approx(mean_squared_error(y[200:], pred), rel=1e-6)
    assert m["mae"] == pytest.approx(mean_absolute_error(y[200:], pred), rel=1e-6)
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["predicted_vs_true.png", "residuals.png"]
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["metrics"]["r2"] == pytest.approx(m["r2"]) and "y_pred" not in saved


def test_evaluate_rejects_mismatched_data(perceptron_digits, digits):
    X, y = digits.X_test, digits.y_test
    with pytest.raises(InputError) as e:
        evaluate(perceptron_digits, X.reshape(len(X), -1)[:, :10], y)
    assert str(e.value) == "X has 10 features per sample, but the model was trained on 64 features."
    with pytest.raises(InputError) as e:
        evaluate(perceptron_digits, X, np.where(y == 9, 12, y))
    assert str(e.value) == (
        "y holds labels [12] that the model was not trained on; its classes are [0, 1, 2, 3, 4, 5, 6, 7, ...]."
    )
    with pytest.raises(InputError) as e:
        evaluate(perceptron_digits, X[y == 3], y[y == 3])
    assert str(e.value) == "y holds a single class (3); ROC, precision-recall and balanced scores need at least 2."


# ---- cross-validation ----------------------------------------------------------------------------------
def test_cross_validation_fits_each_fold_on_its_own_training_part(digits):
    X, y = development_data(digits)
    cv = cross_validate(Perceptron(), X, y, folds=4, seed=3, return_estimators=True)
    from sklearn.model_selection import RepeatedStratifiedKFold

    splits = list(RepeatedStratifiedKFold(n_splits=4, n_repeats=1, random_state=3).split(X, y))
    flat = X.reshape(len(X), -1).astype(np.float64)
    assert len(cv["estimators"]) == 4 and len({id(e) for e in cv["estimators"]}) == 4
    for (train, test), est, acc in zip(splits, cv["estimators"], cv["scores"]["accuracy"]):
        # the standardisation statistics come from this fold's training rows, never its test rows
        np.testing.assert_allclose(est.mean_, flat[train].mean(axis=0), rtol=1e-6, atol=1e-9)
        assert not np.allclose(est.mean_, flat.mean(axis=0))
        assert acc == pytest.approx(accuracy_score(y[test], est.predict(X[test])))
        # stratified: every class's share of the test fold is within one sample of its share overall
        counts = np.bincount(y[test], minlength=10)
        assert np.all(np.abs(counts - np.bincount(y, minlength=10) / 4) <= 1)
    assert cv["n_test"] == [len(t) for _, t in splits]
    assert cv["summary"]["accuracy"]["mean"] > 0.9
    again = cross_validate(Perceptron(), X, y, folds=4, seed=3)
    for k, v in cv["scores"].items():  # same seed, same numbers (NaN log loss included)
        np.testing.assert_array_equal(again["scores"][k], v)


def test_cross_validation_of_an_mlp_and_of_a_regressor():
    xor = load_dataset("xor:n=200")
    X, y = development_data(xor)
    mlp = MLPClassifier(hidden_sizes=(16,), epochs=20, lr=0.05, dropout=0.0, early_stopping=False)
    cv = cross_validate(mlp, X, y, folds=3, repeats=2, seed=0, return_estimators=True)
    assert len(cv["scores"]["accuracy"]) == 6 and cv["folds"] == 3 and cv["repeats"] == 2
    flat = X.reshape(len(X), -1)
    for (train, _), est in zip(make_splits(X, y, "classification", folds=3, repeats=2, seed=0), cv["estimators"]):
        np.testing.assert_allclose(est.mean_, flat[train].mean(axis=0), rtol=1e-5, atol=1e-6)  # fold's rows only
    assert not hasattr(mlp, "module_")  # the estimator passed in is never fitted: each fold has a clone
    assert cv["summary"]["accuracy"]["mean"] > 0.85  # XOR needs the hidden layer
    assert np.isfinite(cv["scores"]["log_loss"]).all()
    from sklearn.linear_model import Ridge

    Xr, yr = _regression_data(120)
    rcv = cross_validate(Ridge(), Xr, yr, folds=3)
    assert set(rcv["scores"]) == {"mse", "rmse", "mae", "r2"}
    assert rcv["summary"]["r2"]["mean"] > 0.95


def test_cross_validation_bad_input():
    X = np.zeros((12, 2))
    y = np.array([0] * 9 + [1] * 3)
    with pytest.raises(InputError) as e:
        cross_validate(Perceptron(), X, y, folds=5)
    assert str(e.value) == (
        "The number of folds (5) is larger than the smallest class: label 1 has only 3 samples; use at most 3 folds."
    )
    with pytest.raises(InputError) as e:
        cross_validate(Perceptron(), X, np.ones(12, dtype=int), folds=3)
    assert str(e.value) == "y holds a single class (1); cross-validation needs at least 2 classes."
    with pytest.raises(InputError) as e:
        cross_validate(Perceptron(), X, y, folds=1)
    assert str(e.value) == "folds must be an int >= 2. Got 1 instead."


# ---- comparison and the corrected t-test -----------------------------------------------------------------
def test_corrected_resampled_ttest_against_the_formula():
    from scipy import stats

    a = np.array([0.91, 0.93, 0.90, 0.94, 0.92])
    b = np.array([0.89, 0.90, 0.90, 0.91, 0.88])
    r = corrected_ttest(a, b, n_train=800, n_test=200)
    d = a - b
    t = d.mean() / math.sqrt((1 / 5 + 200 / 800) * d.var(ddof=1))
    assert r["t"] == pytest.approx(t) and r["df"] == 4
    assert r["p"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    naive = stats.ttest_rel(a, b).pvalue
    assert r["p"] > naive  # the correction for overlapping training sets is more cautious
    assert corrected_ttest(a, a, 800, 200)["p"] == 1.0
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_compare_uses_identical_folds_and_finds_the_real_difference():
    xor = load_dataset("xor:n=200")
    X, y = development_data(xor)
    models = {
        "perceptron": Perceptron(),
        "mlp": MLPClassifier(hidden_sizes=(16,), epochs=20, lr=0.05, dropout=0.0, early_stopping=False),
    }
    r = compare(models, X, y, folds=5, repeats=2, seed=0)
    assert r["metric"] == "accuracy" and r["n_train_mean"] == 128 and r["n_test_mean"] == 32
    assert r["models"]["perceptron"]["summary"]["accuracy"]["mean"] < 0.75  # a line cannot separate XOR
    assert r["models"]["mlp"]["summary"]["accuracy"]["mean"] > 0.9
    (win,) = r["pairs"]
    assert win["df"] == 9 and win["significant"] and win["p"] < 0.01  # measured: p = 0.002
    assert win["verdict"] == "mlp is better than perceptron (significant at alpha=0.05)"
    # three models: Holm's adjustment; an identical model on identical folds differs by exactly 0
    three = compare({"a": Perceptron(), "b": Perceptron(), "c": Perceptron(shuffle=False)}, X, y, folds=3)
    pairs = {(p["a"], p["b"]): p for p in three["pairs"]}
    assert len(pairs) == 3 and all(p["p_holm"] >= p["p"] for p in pairs.values())
    same = pairs[("a", "b")]
    assert same["mean_difference"] == 0.0 and same["p"] == 1.0 and not same["significant"]
    assert same["verdict"] == "a and b score the same"
    assert three["models"]["a"]["scores"]["f1_macro"] == three["models"]["b"]["scores"]["f1_macro"]
    with pytest.raises(InputError) as e:
        compare({"p": Perceptron(), "q": Perceptron()}, X, y, metric="log_loss")
    assert str(e.value) == "metric 'log_loss' is not defined for p (no probabilities); choose another metric."


# ---- learning curves -------------------------------------------------------------------------------------
def test_learning_curve_against_size_and_epochs(digits):
    X, y = development_data(digits)
    lc = learning_curve(Perceptron(), X, y, train_sizes=(0.1, 0.5, 1.0), folds=3, seed=0)
    assert lc["train_sizes"] == sorted(lc["train_sizes"]) and len(lc["train_sizes"]) == 3
    assert np.asarray(lc["val_scores"]).shape == (3, 3)
    assert lc["val_mean"][-1] > lc["val_mean"][0] + 0.05  # more data, better validation accuracy
    mlp = MLPClassifier(hidden_sizes=(16,), epochs=8, lr=1e-2, patience=1)
    ec = epochs_curve(mlp, digits.X_train, digits.y_train, digits.X_val, digits.y_val)
    assert ec["epochs"] == list(range(1, 9))  # early stopping is switched off for the curve
    assert ec["method"] == "one fit, scored after every epoch"
    assert ec["val_scores"][-1] > ec["val_scores"][0] and ec["train_scores"][-1] > 0.9
    pc = epochs_curve(Perceptron(epochs=4), digits.X_train, digits.y_train, digits.X_val, digits.y_val)
    assert pc["epochs"] == [1, 2, 3, 4] and pc["method"].startswith("refitted")


# ---- the commands -----------------------------------------------------------------------------------------
def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    return proc.stderr.strip()


def test_evaluate_command_writes_results_and_report(cli, mlp_run, tmp_path, request):
    run, model = mlp_run
    proc = cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "report.html" in proc.stdout
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["split"] == "test" and ev["n_samples"] == 360 and ev["data"] == "digits"
    assert ev["metrics"]["accuracy"] > 0.9
    assert sorted(ev["plots"]) == sorted(f"plots/{n}.png" for n in ("confusion_matrix", "roc", "pr", "reliability"))
    page = (run / "report.html").read_text()
    assert page.count("<img ") == 5  # the training curves and the four evaluation plots
    assert "src='data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    alone = tmp_path / "copy" / "report.html"  # opens without the run directory beside it
    alone.parent.mkdir()
    shutil.copy(run / "report.html", alone)
    # Everything above ran; without Chromium (outside CI) the rendering check is skipped, with its reason.
    seen = _render(alone, tmp_path, request.getfixturevalue("chromium"))
    assert len(seen["images"]) == 5
    assert all(img["w"] > 0 and img["h"] > 0 for img in seen["images"]), seen["images"]
    assert seen["errors"] == [] and seen["console"] == []


def test_evaluate_command_on_a_regression_run(cli, tmp_path):
    X, y = _regression_data(200)
    csv = tmp_path / "reg.csv"
    csv.write_text("a,b,c,target\n" + "".join(",".join(f"{v:.5f}" for v in [*r, t]) + "\n" for r, t in zip(X, y)))
    ds = load_dataset(str(csv))
    assert ds.task == "regression"
    run = tmp_path / "run"
    train_run(MLPRegressor(hidden_sizes=(16,), epochs=50, lr=1e-2, dropout=0.0), ds, run, data_spec=str(csv))
    proc = cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "r2" in proc.stdout and "mae" in proc.stdout
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["n_samples"] == len(ds.y_test) and ev["metrics"]["r2"] > 0.9
    assert sorted(ev["plots"]) == ["plots/predicted_vs_true.png", "plots/residuals.png"]
    assert (run / "report.html").read_text().count("<img ") == 3  # training curves + the two plots


def test_the_browser_check_catches_broken_pages(tmp_path, chromium):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head></head><body><img src='missing.png' alt='m'>"
        "<script>throw new Error('boom')</script></body></html>"
    )
    seen = _render(bad, tmp_path, chromium)
    assert seen["images"][0]["w"] == 0
    assert any("boom" in e for e in seen["errors"]) and any("boom" in c for c in seen["console"])


def test_evaluate_command_errors(cli, tmp_path):
    ds = load_dataset("digits")
    run = tmp_path / "run"
    train_run(Perceptron(epochs=3), ds, run, data_spec="digits")
    msg = _one_line_error(cli("evaluate", str(run), "--data", "blobs"))
    assert (
        msg
        == f"deepatlas evaluate: error: --data 'blobs' has 2 features per sample, but run {str(run)!r} was trained on 64."
    )
    csv = tmp_path / "other.csv"
    rows = [",".join([f"f{i}" for i in range(64)] + ["label"])]
    rows += [",".join(["0.5"] * 64 + [str(label)]) for label in [0, 11] * 10]
    csv.write_text("\n".join(rows) + "\n")
    msg = _one_line_error(cli("evaluate", str(run), "--data", str(csv)))
    assert msg == (
        f"deepatlas evaluate: error: --data {str(csv)!r} has labels [11] that run {str(run)!r} was not trained on; "
        "its classes are [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]."
    )


def test_cv_command(cli, tmp_path):
    proc = cli("cv", "perceptron", "--data", "digits", "--folds", "3", "--out", str(tmp_path / "cv"))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "±" in proc.stdout
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert len(saved["scores"]["accuracy"]) == 3 and saved["summary"]["accuracy"]["mean"] > 0.9
    assert (tmp_path / "cv" / "plots" / "cv_box.png").exists() and (tmp_path / "cv" / "report.html").exists()
    dev_y = development_data(load_dataset("digits"))[1]
    label = int(np.bincount(dev_y).argmin())
    smallest = int(np.bincount(dev_y).min())
    msg = _one_line_error(cli("cv", "perceptron", "--data", "digits", "--folds", "1000", "--out", str(tmp_path / "x")))
    assert msg == (
        f"deepatlas cv: error: The number of folds (1000) is larger than the smallest class: label {label} "
        f"has only {smallest} samples; use at most {smallest} folds."
    )


def test_compare_and_learning_curve_commands(cli, tmp_path):
    out = tmp_path / "cmp"
    proc = cli(
        "compare",
        "perceptron",
        "perceptron",
        "--data",
        "digits",
        "--folds",
        "3",
        "--set",
        "2.shuffle=false",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((out / "compare.json").read_text())
    assert list(saved["models"]) == ["perceptron#1", "perceptron#2"]
    assert saved["models"]["perceptron#2"]["params"]["shuffle"] is False
    assert saved["pairs"][0]["verdict"] in proc.stdout
    assert (out / "plots" / "compare_box.png").exists()
    lc = tmp_path / "lc"
    proc = cli(
        "learning-curve",
        "perceptron",
        "--data",
        "blobs",
        "--folds",
        "3",
        "--sizes",
        "0.2,1",
        "--epochs-curve",
        "--set",
        "epochs=3",
        "--out",
        str(lc),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((lc / "learning_curve.json").read_text())["train_sizes"][0] < 60
    assert json.loads((lc / "epochs_curve.json").read_text())["epochs"] == [1, 2, 3]
    assert {p.name for p in (lc / "plots").iterdir()} == {"learning_curve.png", "epochs_curve.png"}


def test_compare_settings_per_model():
    from deepatlas.commands.compare import build_models

    models = build_models(["mlp", "perceptron", "mlp"], "classification", {"epochs": 7, "3.dropout": 0.5, "seed": 1})
    assert list(models) == ["mlp#1", "perceptron", "mlp#3"]
    assert [m.epochs for m in models.values()] == [7, 7, 7]
    assert (models["mlp#1"].dropout, models["mlp#3"].dropout) == (0.3, 0.5)
    assert models["perceptron"].seed == 1
    with pytest.raises(InputError) as e:
        build_models(["perceptron", "mlp"], "classification", {"cnn.lr": 1.0})
    assert str(e.value) == (
        "--set cnn.lr=...: 'cnn' names no model in the comparison; use one of perceptron, mlp or a position 1..2."
    )
    with pytest.raises(InputError) as e:
        build_models(["perceptron", "mlp"], "classification", {"hiden_sizes": (8,)})
    assert str(e.value) == (
        "--set hiden_sizes=...: no model in the comparison has a parameter 'hiden_sizes'. Did you mean 'hidden_sizes'?"
    )


# ---- headless Chromium ----------------------------------------------------------------------------------
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource'));
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('rejection: ' + e.reason); });
['error', 'warn'].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__errors.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
});
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight};
  });
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: images, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _render(page: Path, tmp_path: Path, chromium: str) -> dict:
    """Open a copy of ``page`` with a probe script first in <head> in headless Chromium; return
    each image's natural size, the errors the page raised and Chromium's own console lines."""
    import html as html_mod
    import re

    probed = page.with_name(f"probed-{page.name}")
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    profile = tmp_path / f"chromium-profile-{page.stem}"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            probed.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no probe output; chromium said: {proc.stderr[-2000:]}"
    seen = json.loads(html_mod.unescape(found.group(1)))
    seen["console"] = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return seen
