"""Issue #28: a user's own table (raw columns, IDs, text categories, missing values) from the Python
API and the CLI, column names (``feature_names_in_``), whole-file evaluation, label files, image
input to predict, named records for the server, and the API mistakes that must not escape."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from deepatlas.cli import main
from deepatlas.errors import InputError
from deepatlas.preprocessing import TabularPreprocessor

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = dict(epochs=15, device="cpu", hidden_sizes=(16,), early_stopping=False)


def _people(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """An ID, a numeric column with gaps, a text category, a number, a string label."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice"], n)
    income = rng.normal(50, 10, n).round(1)
    age = rng.integers(18, 80, n).astype(float)
    age[::9] = np.nan
    label = np.where((city == "paris") | (income > 55), "yes", "no")
    return pd.DataFrame({"id": np.arange(1000, 1000 + n), "age": age, "city": city, "income": income, "label": label})


def _write_csv(df: pd.DataFrame, path) -> str:
    df.to_csv(path, index=False, na_rep="")
    return str(path)


# ---- the preprocessor itself ------------------------------------------------------------------
def test_every_problem_column_is_named_once_with_its_fix():
    df = _people().drop(columns="label")
    df["note"] = [f"free text {i}" for i in range(len(df))]  # a different value in every row
    with pytest.raises(InputError) as err:
        TabularPreprocessor(categorical=["age"], impute="none", drop=["nope"]).fit(df, where="Data file 'p.csv'")
    assert str(err.value) == (
        "Data file 'p.csv' has 4 problems: --drop names 'nope', which is not a column; "
        "column 'age' has 9 missing value(s) (first in row 2): --impute median (or mean, most_frequent), or "
        "--drop age; column 'city' holds text (e.g. 'nice'): --categorical city to encode it (or --categorical "
        "auto), or --drop city; column 'note' holds text (e.g. 'free text 0'): --categorical note to encode it "
        "(or --categorical auto), or --drop note."
    )
    with pytest.raises(InputError, match=r"column 'note' holds text with a different value in every row"):
        TabularPreprocessor().fit(df)


def test_identifier_note_imputation_and_unseen_categories():
    df = _people().drop(columns="label")
    pre = TabularPreprocessor().fit(df)
    assert pre.notes_[0].startswith("column 'id' looks like an identifier (a different integer in every row)")
    assert pre.numeric_ == ["id", "age", "income"] and pre.categories_ == {"city": ["lyon", "nice", "paris"]}
    assert pre.fill_["age"] == float(np.nanmedian(df["age"]))
    new = pd.DataFrame({"id": [1, 2], "age": [None, 30.0], "city": ["berlin", "nice"], "income": [40.0, 60.0]})
    X, report = pre.transform(new)
    assert X.shape == (2, 6) and report == {"missing": {"age": 1}, "unseen": {"city": {"berlin": 1}}}
    assert X[0, 1] == pre.fill_["age"] and list(X[0, 3:]) == [0, 0, 0] and list(X[1, 3:]) == [0, 1, 0]


def test_saved_as_json_and_rebuilt_to_the_same_numbers():
    df = _people().drop(columns="label")
    pre = TabularPreprocessor(drop=["id"], impute="mean").fit(df)
    config = json.loads(json.dumps(pre.to_config()))  # JSON only: nothing pickled
    again = TabularPreprocessor.from_config(config)
    np.testing.assert_array_equal(pre.transform(df)[0], again.transform(df)[0])
    with pytest.raises(InputError, match="cannot be rebuilt"):
        TabularPreprocessor.from_config({**config, "categories": {"city": []}})


# ---- the Python API ----------------------------------------------------------------------------
def test_feature_names_in_reorder_missing_and_arrays():
    from deepatlas.models.mlp import MLPClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    model = MLPClassifier(**FAST).fit(X, y)
    assert model.feature_names_in_.dtype == object and list(model.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(model.predict_proba(X[["c", "a", "b"]]), model.predict_proba(X))
    with pytest.raises(InputError) as err:
        model.predict(X[["a", "b"]].assign(d=1.0))
    assert str(err.value).startswith(
        "The columns of X do not match the feature names MLPClassifier was fitted with: missing 'c'; unexpected 'd'"
    )
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X.to_numpy())
    model.fit(X.to_numpy(), y)  # a refit on an array forgets the names, as in scikit-learn
    assert not hasattr(model, "feature_names_in_")


def test_a_raw_dataframe_fits_predicts_saves_and_loads(tmp_path):
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.saving import load, save_model

    df = _people(120)
    X, y = df.drop(columns=["id", "label"]), df["label"]
    model = MLPClassifier(**{**FAST, "epochs": 60}).fit(X, y)
    assert model.preprocessor_.categorical_ == ["city"] and model.score(X, y) > 0.8
    save_model(model, tmp_path / "m")
    again = load(tmp_path / "m")
    shuffled = X[["income", "city", "age"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing ages are filled (and said so)
        np.testing.assert_array_equal(again.predict_proba(shuffled), model.predict_proba(X))
    with pytest.warns(UserWarning, match=r"1 value\(s\) of categories unseen in training.*'rome'"):
        again.predict(pd.DataFrame({"age": [30.0], "city": ["rome"], "income": [50.0]}))


def test_api_mistakes_raise_value_or_type_errors_naming_the_argument(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.saving import save_model

    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(
        TypeError, match=r"save_model: the argument 'estimator' must be a deepatlas estimator, got Pipeline"
    ):
        save_model(make_pipeline(StandardScaler(), MLPClassifier()), tmp_path / "p")
    labels = np.array(["a", "b"] * 9 + ["a", None], dtype=object)
    with pytest.raises(ValueError, match=r"^y has 1 missing label\(s\) \(first at row 19\)"):
        MLPClassifier(**FAST).fit(X, labels)
    with pytest.raises(ValueError, match=r"^y has 1 missing label"):
        MLPClassifier(**FAST).fit(pd.DataFrame(X, columns=["a", "b"]), pd.Series(labels).replace({None: np.nan}))


# ---- the CLI -----------------------------------------------------------------------------------
def _main(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def people_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("people")
    data = _write_csv(_people(120), tmp / "people.csv")
    run = tmp / "run"
    code = main(["train", "mlp", "--data", data, "--drop", "id", "--epochs", "40", "--out", str(run), "--quiet"])
    assert code == 0
    return tmp, run


def test_train_on_a_raw_csv_records_its_encoding(people_run):
    _, run = people_run
    config = json.loads((run / "config.json").read_text())
    assert config["feature_names_in"] == ["age", "city", "income"] and config["sample_shape"] == [5]
    assert config["preprocessing"]["drop"] == ["id"] and config["preprocessing"]["fill"]["city"] in (
        "lyon",
        "nice",
        "paris",
    )


def test_train_notes_the_identifier_and_the_imputation(tmp_path, capsys):
    data = _write_csv(_people(), tmp_path / "p.csv")
    code, _, err = _main(
        capsys, "train", "perceptron", "--data", data, "--epochs", "2", "--out", tmp_path / "r", "--quiet"
    )
    assert code == 0
    assert (
        "note: column 'id' looks like an identifier (a different integer in every row); it is used as a feature: --drop id if it is one"
        in err
    )
    assert "note: one-hot encoded 1 categorical column(s): city (3)" in err


def test_predict_takes_raw_columns_with_id_unseen_and_missing(people_run, capsys):
    tmp, run = people_run
    (tmp / "new.csv").write_text("income,id,city,age\n60,7,paris,\n40,8,berlin,33\n")
    code, out, err = _main(capsys, "predict", run, "--input", tmp / "new.csv", "--id", "id")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "id,prediction,proba_no,proba_yes" and [row.split(",")[0] for row in lines[1:]] == ["7", "8"]
    assert "note: filled 1 missing value(s) from training statistics: age (1)" in err
    assert "note: 1 value(s) of categories unseen in training, encoded as all zeros: city: 1 ('berlin')" in err


def test_evaluate_a_file_scores_every_row(people_run, capsys):
    tmp, run = people_run
    test = _write_csv(_people(37, seed=5).drop(columns="id"), tmp / "test.csv")
    code, out, _ = _main(capsys, "evaluate", run, "--data", test, "--out", tmp / "ev")
    assert code == 0 and "scored all 37 rows of the file" in out
    result = json.loads((tmp / "ev" / "evaluation.json").read_text())
    assert result["n_samples"] == 37 and result["split"] == "all"
    code, out, _ = _main(capsys, "evaluate", run, "--out", tmp / "ev2")  # the run's own test split
    assert code == 0 and "(test split, 24 samples)" in out


# ---- label files (point 9) ---------------------------------------------------------------------
def _idx(path, array: np.ndarray) -> None:
    import struct

    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_idx_pairs_follow_mnist_names_or_labels(tmp_path):
    from deepatlas.data import load_dataset

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (30, 4, 4)), np.arange(30) % 3
    _idx(tmp_path / "train-images-idx3-ubyte", images)
    _idx(tmp_path / "train-labels-idx1-ubyte", labels)
    assert load_dataset(str(tmp_path / "train-images-idx3-ubyte")).sample_shape == (1, 4, 4)
    _idx(tmp_path / "imgs-idx3-ubyte", images)
    _idx(tmp_path / "imgs-idx1-ubyte", labels)  # not MNIST's naming: not guessed
    with pytest.raises(InputError) as err:
        load_dataset(str(tmp_path / "imgs-idx3-ubyte"))
    assert "give it with --labels FILE" in str(err.value)
    ds = load_dataset(str(tmp_path / "imgs-idx3-ubyte"), labels=str(tmp_path / "imgs-idx1-ubyte"))
    assert len(ds.X_train) + len(ds.X_val) + len(ds.X_test) == 30
    np.save(tmp_path / "y.npy", labels[:29])
    with pytest.raises(InputError, match=r"has 29 labels, but IDX file 'imgs-idx3-ubyte' has 30 samples"):
        load_dataset(str(tmp_path / "imgs-idx3-ubyte"), labels=str(tmp_path / "y.npy"))


def test_npy_pair_and_image_folder_with_a_labels_csv(tmp_path):
    from PIL import Image

    from deepatlas.data import load_dataset

    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    with pytest.raises(InputError, match="--labels FILE"):
        load_dataset(str(tmp_path / "X.npy"))
    ds = load_dataset(str(tmp_path / "X.npy"), labels=str(tmp_path / "y.npy"))
    assert ds.task == "classification" and ds.n_features == 3
    folder = tmp_path / "imgs"
    folder.mkdir()
    rows = ["file,label"]
    for i in range(20):
        Image.fromarray(np.full((5, 6), 10 * i, np.uint8)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,{'dark' if i < 10 else 'light'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(str(folder), labels=str(tmp_path / "labels.csv"))
    assert ds.sample_shape == (1, 5, 6) and sorted(ds.classes) == ["dark", "light"]


# ---- predict from images, far inputs, named records (point 10) --------------------------------
def test_predict_images_and_a_warning_for_inputs_far_from_training(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "train"
    for label, level in (("dark", 30), ("light", 220)):
        (root / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((6, 6), level + i, np.uint8)).save(root / label / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "mlp", "--data", str(root), "--epochs", "30", "--out", str(run), "--quiet"]) == 0
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.full((12, 12), 225, np.uint8)).save(big / "a.png")
    Image.fromarray(np.full((6, 6), 25, np.uint8)).save(big / "b.png")
    code, out, err = _main(capsys, "predict", run, "--input", big)
    assert code == 0
    assert out.splitlines() == [
        "file,prediction,proba_dark,proba_light",
        *[line for line in out.splitlines()[1:]],
    ] and [row.split(",")[:2] for row in out.splitlines()[1:]] == [["a.png", "light"], ["b.png", "dark"]]
    assert "note: resized 1 of 2 image(s) (from 12x12) to 6x6, the training size" in err
    np.savez(tmp_path / "raw.npz", X=np.full((4, 36), 200.0, np.float32))  # 0-255 pixels into a 0-1 model
    code, _, err = _main(capsys, "predict", run, "--input", tmp_path / "raw.npz")
    assert code == 0 and "warning: 100% of the input values lie more than 10 training standard deviations" in err


def test_the_server_takes_named_records(people_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from deepatlas.serving.app import create_app

    _, run = people_run
    client = TestClient(create_app(run, backend="torch"))
    assert client.get("/v1/metadata").json()["columns"] == ["age", "city", "income"]
    records = [{"age": 41, "city": "lyon", "income": 55.0}, {"age": None, "city": "rome", "income": "40"}]
    reply = client.post("/v1/predict", json={"instances": records})
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2
    assert reply.json()["unseen"] == {"city": {"rome": 1}}  # reported per request
    assert reply.json()["warnings"] == [
        "filled 1 missing value(s) from training statistics: age (1)",
        "1 value(s) of categories unseen in training, encoded as all zeros: city: 1 ('rome')",
    ]
    encoded = json.loads((run / "config.json").read_text())  # the same rows as numbers give the same answer
    from deepatlas.preprocessing import TabularPreprocessor as T

    X, _ = T.from_config(encoded["preprocessing"]).transform(pd.DataFrame(records, dtype=object))
    assert client.post("/v1/predict", json={"instances": X.tolist()}).json() == {
        "predictions": reply.json()["predictions"]
    }  # numbers: nothing filled or unseen to report
    bad = client.post("/v1/predict", json={"instances": [{"age": 1, "income": 2}]})
    assert bad.status_code == 422 and "missing 'city'" in bad.json()["detail"]


def test_resume_refuses_other_table_options(tmp_path):
    from deepatlas.data import load_dataset
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.runs import _differences, run_settings

    data = _write_csv(_people(), tmp_path / "p.csv")
    first = run_settings(MLPClassifier(), load_dataset(data, preprocess={"drop": ["id"]}), data, 0)
    again = run_settings(MLPClassifier(), load_dataset(data, preprocess={"drop": ["id"]}), data, 0)
    other = run_settings(MLPClassifier(), load_dataset(data, preprocess={"impute": "mean"}), data, 0)
    assert first["preprocessing"] == {"drop": ["id"], "categorical": "auto", "impute": "median", "id": None}
    assert _differences(first, again, more_epochs=True) == []
    assert _differences(first, other, more_epochs=True) == ["--drop ['id'] (now [])", "--impute 'median' (now 'mean')"]
    as_id = run_settings(MLPClassifier(), load_dataset(data, preprocess={"id_column": "id"}), data, 0)
    assert _differences(first, as_id, more_epochs=True) == ["--drop ['id'] (now [])", "--id None (now 'id')"]
    older = {**first, "preprocessing": {k: v for k, v in first["preprocessing"].items() if k != "id"}}
    assert _differences(older, again, more_epochs=True) == []  # a run started before --id


# ---- preprocessing options from the Python API, the same model as the CLI ------------------------
def _with_note(n: int = 80) -> pd.DataFrame:
    """_people with a free-text column (a different value in every row): it must be dropped."""
    df = _people(n)
    df.insert(1, "note", [f"free text {i}" for i in range(n)])  # the label stays last: the target
    return df


OPTIONS = {"drop": ["note"], "id": "id", "categorical": ["city"], "impute": "mean"}


def test_preprocess_parameter_sets_the_options_and_is_saved(tmp_path):
    from sklearn.base import clone

    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.saving import load, save_model

    df = _with_note()
    X, y = df.drop(columns="label"), df["label"]
    with pytest.raises(InputError, match=r"column 'note' holds text with a different value in every row"):
        MLPClassifier(**FAST).fit(X, y)  # without options, the free text is refused
    model = MLPClassifier(**FAST, preprocess=OPTIONS).fit(X, y)
    pre = model.preprocessor_
    assert (pre.drop, pre.id_column, pre.categorical, pre.impute) == (["note"], "id", ["city"], "mean")
    assert pre.dropped_ == ["note", "id"] and list(model.feature_names_in_) == ["age", "city", "income"]
    assert pre.fill_["age"] == pytest.approx(float(np.nanmean(df["age"])))
    assert clone(model).get_params()["preprocess"] == OPTIONS  # clone, GridSearchCV and CV folds carry it
    save_model(model, tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.preprocess == OPTIONS and again.preprocessor_.to_config() == pre.to_config()
    np.testing.assert_array_equal(again.predict_proba(X.iloc[:5]), model.predict_proba(X.iloc[:5]))


def test_preprocess_parameter_mistakes_are_one_line():
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.models.text.classifier import WordTextClassifier

    X, y = _people().drop(columns="label"), _people()["label"]
    cases = [
        ({"impute": "max"}, "The 'preprocess' parameter of MLPClassifier['impute'] must be one of median, mean, "
         "most_frequent, none. Got 'max' instead."),
        ({"dorp": ["id"]}, "The 'preprocess' parameter of MLPClassifier has unknown key(s) 'dorp'; the keys are "
         "drop, categorical, impute, id."),
        ({"drop": [3]}, "The 'preprocess' parameter of MLPClassifier['drop'] must be a list of column names "
         "(strings). Got [3] instead."),
    ]  # fmt: skip
    for options, message in cases:
        with pytest.raises(InputError) as err:
            MLPClassifier(**FAST, preprocess=options).fit(X, y)
        assert str(err.value) == message
    with pytest.raises(InputError, match=r"preprocess\['id'\] names 'ident', which is not a column"):
        MLPClassifier(**FAST, preprocess={"id": "ident"}).fit(X, y)
    with pytest.raises(InputError, match=r"applies to models that read feature tables; WordTextClassifier reads text"):
        WordTextClassifier(preprocess={"drop": ["id"]}).fit(["a b", "c d"], ["x", "y"])


def test_api_and_cli_give_the_same_model_with_the_same_options(tmp_path, capsys):
    from deepatlas.data.core import infer_task, split
    from deepatlas.models.mlp import MLPClassifier
    from deepatlas.saving import load

    data = _write_csv(_with_note(), tmp_path / "p.csv")
    run = tmp_path / "run"
    code, _, err = _main(
        capsys, "train", "mlp", "--data", data, "--drop", "note", "--id", "id", "--categorical", "city",
        "--impute", "mean", "--epochs", "8", "--out", run, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    df = pd.read_csv(data)  # the API reads the same file, and splits it as the CLI does
    X, labels = df.drop(columns="label"), df["label"].to_numpy(dtype=object)
    y, _ = infer_task(labels, None)
    train, _, val, _, test, _ = split(np.arange(len(df)), y, seed=0, stratify=True)
    model = MLPClassifier(preprocess=OPTIONS, epochs=8, seed=0).fit(
        X.iloc[train], labels[train], validation_data=(X.iloc[val], labels[val])
    )
    cli = load(run)
    assert json.loads((run / "config.json").read_text())["preprocessing"] == model.preprocessor_.to_config()
    np.testing.assert_array_equal(cli.predict_proba(X.iloc[test]), model.predict_proba(X.iloc[test]))
    (tmp_path / "new.csv").write_text("id,note,age,city,income\n77,x,30,paris,52\n78,y,,lyon,41\n")
    code, out, _ = _main(capsys, "predict", run, "--input", tmp_path / "new.csv")
    assert code == 0 and out.splitlines()[0] == "id,prediction,proba_no,proba_yes"  # the run's --id, kept
    assert [row.split(",")[0] for row in out.splitlines()[1:]] == ["77", "78"]


# ---- every problem column of a predict file, at once ----------------------------------------------
def test_a_predict_file_reports_every_problem_column(people_run, capsys):
    tmp, run = people_run
    (tmp / "bad.csv").write_text("age,city,income\nold,paris,50\n30,lyon,high\n31,nice,n/a-ish\n")
    code, _, err = _main(capsys, "predict", run, "--input", tmp / "bad.csv")
    assert code == 2 and err.count("\n") == 1
    assert err.strip() == (
        f"deepatlas predict: error: --input file {str(tmp / 'bad.csv')!r} has 2 problems: column 'age' is numeric "
        "in training, but holds 'old' (1 such value(s), first in row 2); column 'income' is numeric in training, "
        "but holds 'high' (2 such value(s), first in row 3)."
    )
    rng = np.random.default_rng(0)  # a run without a table encoding (an .npz): its CSV input read as numbers
    np.savez(tmp / "xy.npz", X=rng.normal(size=(30, 3)).astype(np.float32), y=np.arange(30) % 2)
    assert (
        main(
            ["train", "perceptron", "--data", str(tmp / "xy.npz"), "--epochs", "2", "--out", str(tmp / "np"), "--quiet"]
        )
        == 0
    )
    (tmp / "bad3.csv").write_text("a,b,c\nx,1,2\n3,,inf\n")
    code, _, err = _main(capsys, "predict", tmp / "np", "--input", tmp / "bad3.csv")
    assert code == 2 and err.strip() == (
        f"deepatlas predict: error: Data file {str(tmp / 'bad3.csv')!r}: feature column 'a' is not numeric (row 2 "
        "has 'x'); column 'b' has a missing value in row 3; column 'c' has a non-finite value (inf) in row 3."
    )


# ---- inputs far outside the training data: API, CLI and server ------------------------------------
def test_far_inputs_warn_from_the_api_naming_each_column():
    from deepatlas.models.mlp import MLPRegressor
    from deepatlas.preprocessing import FarFromTrainingWarning

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.uniform(0, 1, 60), "c": rng.normal(size=60)})
    model = MLPRegressor(**FAST).fit(X, X["a"] + X["b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(X)  # the training data: no warning
    far = X.assign(b=X["b"] * 255, c=X["c"] + 100)
    with pytest.warns(FarFromTrainingWarning) as record:
        model.predict(far)
    (message,) = [str(w.message) for w in record]
    assert message.startswith("MLPRegressor: 2 input columns lie more than 10 training standard deviations from the "
                              "training mean: 'b' (")  # fmt: skip
    assert "'c' (100% of its values, up to 10" in message and "'a'" not in message
    assert message.endswith("were they scaled as the training data was?")


def test_far_inputs_warn_once_in_predict_and_per_request_in_the_server(people_run, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepatlas.serving.app import create_app

    tmp, run = people_run
    (tmp / "far.csv").write_text("age,city,income\n30,paris,50000\n40,lyon,61000\n")  # income in units, not thousands
    code, _, err = _main(capsys, "predict", run, "--input", tmp / "far.csv")
    assert code == 0 and err.count("warning:") == 1
    assert (
        "warning: 1 input column lies more than 10 training standard deviations from the training mean: 'income' (100% of its values"
        in err
    )
    client = TestClient(create_app(run, backend="torch"))
    reply = client.post("/v1/predict", json={"instances": [{"age": 30, "city": "paris", "income": 50000}]}).json()
    assert reply["warnings"][0].startswith(
        "1 input column lies more than 10 training standard deviations from the training mean: 'income'"
    )
    assert "unseen" not in reply
    near = client.post("/v1/predict", json={"instances": [{"age": 30, "city": "paris", "income": 50}]}).json()
    assert set(near) == {"predictions"}


# ---- cv, compare and tune take the table options ---------------------------------------------------
def test_cv_compare_and_tune_take_the_table_options(tmp_path, capsys):
    data = _write_csv(_with_note(60), tmp_path / "p.csv")
    table = ["--drop", "note", "--id", "id", "--impute", "mean"]
    code, _, err = _main(
        capsys, "cv", "perceptron", "--data", data, "--folds", "2", "--epochs", "2", "--out", tmp_path / "cv"
    )
    assert code == 2 and "column 'note' holds text with a different value in every row" in err and "--drop note" in err
    code, out, err = _main(
        capsys, "cv", "perceptron", "--data", data, *table, "--folds", "2", "--epochs", "2", "--out", tmp_path / "cv"
    )
    assert code == 0, err
    assert "looks like an identifier" not in err  # --id: left out, not noted
    code, _, err = _main(capsys, "compare", "perceptron", "perceptron", "--data", data, *table, "--set", "2.lr=0.01",
                         "--folds", "2", "--epochs", "2", "--out", tmp_path / "cmp")  # fmt: skip
    assert code == 0, err
    pytest.importorskip("optuna")
    code, _, err = _main(capsys, "tune", "perceptron", "--data", data, *table, "--trials", "1", "--epochs", "2",
                         "--out", tmp_path / "tune", "--quiet", "--then-train")  # fmt: skip
    assert code == 0, err
    config = json.loads((tmp_path / "tune" / "best-run" / "config.json").read_text())
    assert config["preprocessing"]["drop"] == ["note"] and config["preprocessing"]["id"] == "id"
