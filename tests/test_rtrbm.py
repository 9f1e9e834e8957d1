"""The bouncing-balls generator's physics and the recurrent temporal RBM (deepatlas/models/rbm/rtrbm.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.data.bouncing_balls import BOX, render, simulate
from deepatlas.errors import InputError
from deepatlas.models.rbm.rtrbm import RTRBM, next_frame_windows, previous_frame_error, write_gif
from deepatlas.saving import load, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RADIUS = 1.2


@pytest.fixture(scope="module")
def trajectories():
    return simulate(200, 3, np.random.default_rng(0), n=20, radius=RADIUS)


# ---- the generator's physics ----------------------------------------------------------------------
def test_kinetic_energy_is_conserved(trajectories):
    _, V = trajectories
    energy = 0.5 * (V**2).sum(axis=(2, 3))  # (n, T), equal masses
    np.testing.assert_allclose(energy, energy[:, :1].repeat(energy.shape[1], 1), rtol=1e-9)


def test_balls_collide_and_never_overlap(trajectories):
    P, V = trajectories
    gaps = [np.hypot(*(P[:, :, i] - P[:, :, j]).transpose(2, 0, 1)) for i, j in itertools.combinations(range(3), 2)]
    assert min(g.min() for g in gaps) >= 2 * RADIUS - 1e-6
    # some pairs touch (collisions happen), and each ball's speed changes only through them
    assert min(g.min() for g in gaps) < 2 * RADIUS + 0.1
    speeds = np.hypot(V[..., 0], V[..., 1])
    assert (np.abs(np.diff(speeds, axis=1)) > 1e-6).any()


def test_balls_stay_inside_the_box_and_bounce_off_the_walls(trajectories):
    P, V = trajectories
    assert P.min() >= RADIUS - 1e-9 and P.max() <= BOX - RADIUS + 1e-9
    flips = np.sign(V[:, 1:]) != np.sign(V[:, :-1])
    assert flips.any()


def test_frames_show_the_balls_in_the_unit_interval():
    P, _ = simulate(5, 2, np.random.default_rng(1), radius=RADIUS)
    frames = render(P[0], 15, RADIUS)
    assert frames.shape == (5, 225) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    # the pixel under the first ball's centre is lit (rows follow x, columns y)
    row, col = (P[0, 0, 0] / BOX * 15).astype(int)
    assert frames[0].reshape(15, 15)[row, col] > 0.9


def test_the_dataset_is_seeded_and_split_by_sequence():
    a = load_dataset("bouncing-balls:n=20,T=6,size=8,balls=2")
    b = load_dataset("bouncing-balls:n=20,T=6,size=8,balls=2")
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert a.X_train.shape[1:] == (6, 64) and a.task == "generative" and a.y_train is None
    assert len(a.X_train) + len(a.X_val) + len(a.X_test) == 20
    c = load_dataset("bouncing-balls:n=20,T=6,size=8,balls=2,seed=1")
    assert not np.array_equal(a.X_train, c.X_train)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bouncing-balls:T=1", "Dataset option 'T' must be an int >= 2. Got 1 instead."),
        (
            "bouncing-balls:balls=40",
            "40 balls of radius 1.2 do not fit in the box; use fewer balls or a smaller radius.",
        ),
        ("bouncing-balls:radius=9", "Dataset option 'radius' must be a number in [0.2, 3]. Got 9 instead."),
    ],
)
def test_bad_dataset_options_fail_in_one_line(spec, message):
    with pytest.raises(InputError) as err:
        load_dataset(spec)
    assert str(err.value) == message


# ---- the RTRBM ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def balls():
    return load_dataset("bouncing-balls:n=200,T=20,size=15")


@pytest.fixture(scope="module")
def fitted(balls):
    return RTRBM(n_hidden=100, epochs=30, lr=0.02, batch_size=5, device="cpu").fit(balls.X_train)


def test_a_small_rtrbm_predicts_the_next_frame_better_than_the_previous_frame(fitted, balls):
    err = fitted.next_frame_error(balls.X_test)
    copy = previous_frame_error(balls.X_test)
    assert err < copy, (err, copy)  # 0.0318 against 0.0327 when written
    assert fitted.history_[-1]["next_frame_mse"] < fitted.history_[0]["next_frame_mse"]


def test_shapes_of_predict_transform_and_sample(fitted, balls):
    X = balls.X_test
    pred = fitted.predict(X)
    assert pred.shape == X.shape and 0 <= pred.min() and pred.max() <= 1
    np.testing.assert_array_equal(fitted.predict_next(X), pred[:, -1])
    np.testing.assert_allclose(fitted.predict_next(X[0]), pred[0, -1], rtol=1e-5, atol=1e-7)
    assert fitted.transform(X).shape == (*X.shape[:2], 100)
    s = fitted.sample(7, 3, seed=1)
    assert s.shape == (3, 7, 225)
    np.testing.assert_array_equal(s, fitted.sample(7, 3, seed=1))
    assert fitted.score(X) == -fitted.next_frame_error(X)


def test_frames_as_images_keep_their_shape(balls):
    X = balls.X_train[:20].reshape(20, balls.X_train.shape[1], 15, 15)
    est = RTRBM(n_hidden=8, epochs=1, device="cpu").fit(X)
    assert est.predict(X[:2]).shape == (2, 20, 15, 15)
    assert est.predict_next(X[0]).shape == (15, 15)
    assert est.sample(4).shape == (1, 4, 15, 15)


def test_backpropagation_through_time_matches_autograd_of_the_bias_path():
    """With the CD estimates g_t held fixed, the BPTT gradients equal autograd's gradient of
    sum_t g_t . b_t + sum_t (v_t W) . [r_t computed with W] with respect to the recurrent path."""
    torch.manual_seed(0)
    nv, nh, B, T = 5, 4, 3, 6
    est = RTRBM(n_hidden=nh, k=1, device="cpu")
    est.W_ = torch.randn(nv, nh)
    est.W_rec_ = torch.randn(nh, nh)
    est.b_visible_, est.b_hidden_, est.b_init_ = torch.randn(nv), torch.randn(nh), torch.randn(nh)
    V = torch.rand(B, T, nv)
    gen = torch.Generator().manual_seed(3)
    dW, d_rec, _, d_hidden, d_init = est._gradients(V, gen)
    # the same CD estimates again (same generator state), then autograd through r
    gen = torch.Generator().manual_seed(3)
    R, Bias = est._states(V)
    h = (torch.rand(R.shape, generator=gen) < R).float()
    q = torch.sigmoid(torch.sigmoid(h @ est.W_.T + est.b_visible_) @ est.W_ + Bias)
    G = (R - q).detach()
    W = est.W_.clone().requires_grad_()
    Wr = est.W_rec_.clone().requires_grad_()
    bh = est.b_hidden_.clone().requires_grad_()
    bi = est.b_init_.clone().requires_grad_()
    r = torch.sigmoid(V[:, 0] @ W + bi)
    surrogate = (G[:, 0] * bi).sum()
    for t in range(1, T):
        b = bh + r @ Wr
        surrogate = surrogate + (G[:, t] * b).sum()
        r = torch.sigmoid(V[:, t] @ W + b)
    surrogate.backward()
    v_neg = torch.sigmoid(h @ est.W_.T + est.b_visible_)
    cd_W = V.reshape(-1, nv).T @ R.reshape(-1, nh) - v_neg.reshape(-1, nv).T @ q.reshape(-1, nh)
    torch.testing.assert_close(d_rec, Wr.grad)
    torch.testing.assert_close(d_hidden, bh.grad)
    torch.testing.assert_close(d_init, bi.grad)
    torch.testing.assert_close(dW - cd_W, W.grad)


def test_save_and_load_round_trip(fitted, balls, tmp_path):
    save_model(fitted, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert type(loaded) is RTRBM
    np.testing.assert_array_equal(loaded.predict(balls.X_test), fitted.predict(balls.X_test))
    np.testing.assert_array_equal(loaded.sample(5, 2, seed=0), fitted.sample(5, 2, seed=0))


def test_fit_dataset_writes_a_gif_and_metrics(tmp_path):
    ds = load_dataset("bouncing-balls:n=20,T=6,size=8,balls=1")
    est = RTRBM(n_hidden=8, epochs=2, device="cpu").fit_dataset(ds, checkpoint_dir=tmp_path)
    from PIL import Image

    with Image.open(tmp_path / "plots" / "samples.gif") as gif:
        assert gif.n_frames == 6
    assert (tmp_path / "plots" / "next_frame.png").exists()
    metrics = est.dataset_metrics(ds)
    assert set(metrics) == {
        "test_next_frame_mse",
        "test_next_frame_mse_previous_frame",
        "test_next_frame_mse_mean_frame",
    }


def test_next_frame_windows_pad_with_blank_frames():
    X = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3) / 24
    W, y = next_frame_windows(X, 2)
    assert W.shape == (6, 2, 3) and y.shape == (6, 3)
    np.testing.assert_array_equal(W[0, 0], 0)
    np.testing.assert_array_equal(W[0, 1], X[0, 0])
    np.testing.assert_array_equal(y[0], X[0, 1])
    np.testing.assert_array_equal(W[2], X[0, 1:3])


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (
            np.zeros((4, 5)),
            "RTRBM expects sequences of frames, shape (n_sequences, steps, pixels) (or (n, steps, H, W)). "
            "Got shape (4, 5) instead.",
        ),
        (np.zeros((4, 1, 5)), "RTRBM needs at least 1 sequence of at least 2 frames. Got shape (4, 1, 5)."),
        (
            np.full((4, 3, 5), 2.0),
            "X has values outside [0, 1] (min 2, max 2), but RTRBM reads each value as a "
            "probability: scale X to [0, 1] (e.g. sklearn's MinMaxScaler) (binary or grey-level frames).",
        ),
        (
            [np.zeros((3, 5)), np.zeros((4, 5))],
            "RTRBM needs sequences of one length and frame size; got sequences of different shapes.",
        ),
    ],
)
def test_bad_input_fails_in_one_line(X, message):
    with pytest.raises(InputError) as err:
        RTRBM(epochs=1, device="cpu").fit(X)
    assert str(err.value) == message


def test_predict_checks_the_frame_size(fitted):
    with pytest.raises(InputError, match=r"^X has 99 pixels per frame, but RTRBM was trained on 225\.$"):
        fitted.predict(np.zeros((2, 3, 99)))
    with pytest.raises(InputError, match=r"^T must be a positive int\. Got 0 instead\.$"):
        fitted.sample(0)


def test_write_gif_refuses_frames_that_are_not_square(tmp_path):
    with pytest.raises(InputError, match="not square"):
        write_gif(np.zeros((1, 3, 10)), tmp_path / "x.gif")


@pytest.mark.slow
def test_on_the_default_data_the_rtrbm_beats_the_previous_frame():
    ds = load_dataset("bouncing-balls")
    est = RTRBM(device="cpu").fit(ds.X_train)
    assert est.next_frame_error(ds.X_test) < previous_frame_error(ds.X_test)  # 0.0325 against 0.0339 when written
