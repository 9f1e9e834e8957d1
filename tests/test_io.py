"""The bottom-layer file helpers: whole files or nothing, usual permissions, JSON of NumPy values."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from deepatlas._io import atomic_path, atomic_savez, atomic_write_text, read_json, to_jsonable, write_json


def test_atomic_write_replaces_whole_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"x": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert read_json(target) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_savez_writes_the_exact_name(tmp_path):
    atomic_savez(tmp_path / "s.npz", X=np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]
    with np.load(tmp_path / "s.npz") as f:
        assert f["X"].tolist() == [0, 1, 2]


def test_to_jsonable():
    value = {"t": (1, np.int64(2)), "a": np.array([0.5]), "nan": math.nan, 3: np.float32(1.5), "o": object}
    out = to_jsonable(value)
    assert out["t"] == [1, 2] and out["a"] == [0.5] and out["nan"] is None and out["3"] == 1.5
    assert isinstance(out["o"], str)
