"""Built-in datasets, user-file loaders and their error messages."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from deepatlas.data import list_datasets, load_dataset, parse_spec
from deepatlas.errors import InputError


def test_builtin_datasets_have_fixed_splits():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.X_train.shape == (1293, 1, 8, 8) and a.X_val.shape == (144, 1, 8, 8) and a.X_test.shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.X_train.min() == 0.0 and a.X_train.max() == 1.0
    m = load_dataset("mnist1d")
    assert (len(m.X_train) + len(m.X_val), len(m.X_test)) == (4000, 1000)  # the standard split
    assert m.sample_shape == (40,)


@pytest.mark.parametrize("name", ["xor", "circles", "moons", "blobs", "spirals"])
def test_toy_datasets(name):
    ds = load_dataset(name)
    assert ds.task == "classification" and ds.sample_shape == (2,)
    assert set(np.unique(ds.y_train)) == {0, 1}


def test_dataset_options_and_listing():
    assert parse_spec("adding:T=200,n=20000") == ("adding", {"T": 200, "n": 20000})
    assert len(load_dataset("xor:n=100").X_train) == 72
    names = {d.name for d in list_datasets()}
    assert {"digits", "mnist1d", "xor", "circles", "moons", "blobs", "spirals"} <= names


def test_dataset_errors():
    with pytest.raises(InputError) as err:
        load_dataset("digitz")
    assert str(err.value) == "Unknown dataset 'digitz', and no file of that name exists. Did you mean 'digits'?"
    with pytest.raises(InputError) as err:
        load_dataset("xor:nosie=3")
    assert str(err.value) == "Unknown option 'nosie' for dataset 'xor'. Did you mean 'noise'?"
    with pytest.raises(InputError) as err:
        load_dataset("xor:n=-3")
    assert str(err.value) == "Dataset option 'n' must be an int >= 20. Got -3 instead."


# ---- user files ------------------------------------------------------------------------------
def _write(path, text):
    path.write_text(text)
    return str(path)


def _table(rows=40, label=lambda i: "cat" if i % 2 else "dog"):
    lines = ["a,b,label"] + [f"{i * 0.1:.2f},{(i % 7) * 1.5},{label(i)}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def test_csv_with_text_labels(tmp_path):
    ds = load_dataset(_write(tmp_path / "d.csv", _table()))
    assert ds.task == "classification" and ds.feature_names == ["a", "b"] and ds.target_name == "label"
    assert list(ds.classes) == ["cat", "dog"]
    assert len(ds.X_train) + len(ds.X_val) + len(ds.X_test) == 40


def test_csv_target_column_and_regression(tmp_path):
    path = _write(tmp_path / "r.csv", "y,x1,x2\n" + "".join(f"{i * 0.37:.3f},{i},{i % 3}\n" for i in range(50)))
    ds = load_dataset(path, target="y")
    assert ds.task == "regression" and ds.feature_names == ["x1", "x2"]


@pytest.mark.parametrize(
    "text, target, message",
    [
        ("", None, "Data file '{p}' is empty."),
        ("a,b,label\n", None, "Data file '{p}' has a header but no data rows."),
        # text and missing feature values are encoded and imputed now (tests/test_tabular.py)
        (
            "a,b,label\n1,red,x\n",
            None,
            "Data file '{p}' has 1 rows; at least 10 are needed to split train, validation and test.",
        ),
        ("a,b,label\n1,inf,x\n", None, "Data file '{p}': column 'b' has a non-finite value (inf) in row 2."),
        ("a,b,label\n1,2,x\n", "kind", "Data file '{p}' has no column 'kind'; its columns are: a, b, label."),
    ],
)
def test_csv_errors(tmp_path, text, target, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_dataset(str(path), target=target)
    assert str(err.value) == message.format(p=path)


def test_missing_file():
    with pytest.raises(InputError) as err:
        load_dataset("nowhere/data.csv")
    assert str(err.value) == "Data file 'nowhere/data.csv' does not exist."


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(30, 3)), y=np.arange(30) % 3)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.task == "classification" and ds.sample_shape == (3,)
    np.savez(tmp_path / "noy.npz", X=rng.normal(size=(30, 3)))
    with pytest.raises(InputError, match=r"has no array 'y' \(the targets\)\.$"):
        load_dataset(str(tmp_path / "noy.npz"))
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}] * 12, dtype=object), y=np.arange(12))
    with pytest.raises(InputError, match="object arrays are refused"):
        load_dataset(str(tmp_path / "obj.npz"))


def _idx(path, array, code):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


def test_mnist_idx_pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 6, 5))
    _idx(tmp_path / "train-images-idx3-ubyte.gz", images, 0x08)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(20) % 2, 0x08)
    ds = load_dataset(str(tmp_path / "train-images-idx3-ubyte.gz"))
    assert ds.sample_shape == (1, 6, 5) and ds.X_train.max() <= 1.0
    with gzip.open(tmp_path / "t-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 20, 6, 5) + b"\x00" * 10)
    _idx(tmp_path / "t-labels-idx1-ubyte.gz", np.arange(20) % 2, 0x08)
    with pytest.raises(InputError, match=r"is truncated: expected 600 values, found 10\.$"):
        load_dataset(str(tmp_path / "t-images-idx3-ubyte.gz"))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("circle", "square"):
        (tmp_path / label).mkdir()
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, size=(7, 9), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    ds = load_dataset(str(tmp_path))
    assert ds.sample_shape == (1, 7, 9) and list(ds.classes) == ["circle", "square"]
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "square" / "odd.png")
    with pytest.raises(InputError, match=r"is 4x4, but earlier images are 9x7; resize them to one size\.$"):
        load_dataset(str(tmp_path))


def test_split_of_a_small_set_stratifies_only_the_parts_that_can_hold_every_class():
    from deepatlas.data.core import split

    X, y = np.arange(48.0).reshape(24, 2), np.repeat(np.arange(4), 6)  # 4 classes of 6: validation gets 2 rows
    X_tr, y_tr, X_va, y_va, X_te, y_te = split(X, y)
    assert (len(X_tr), len(X_va), len(X_te)) == (17, 2, 5)
    assert sorted(set(y_te)) == [0, 1, 2, 3]  # the 5-row test part is stratified: every class is in it
    assert sorted(np.concatenate([X_tr, X_va, X_te]).ravel()) == list(np.arange(48.0))  # nothing lost or repeated
