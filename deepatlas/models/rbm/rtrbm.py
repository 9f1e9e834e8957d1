"""The recurrent temporal RBM (RTRBM) of Sutskever, Hinton & Taylor (2008), "The recurrent temporal
restricted Boltzmann machine" (NIPS 21), for sequences of frames in [0, 1].

The model. At each step ``t`` an RBM with weights ``W`` (visible x hidden) and visible bias
``b_v`` models the frame ``v_t``; its hidden bias is dynamic: ``b_t = b_h + r_{t-1} W'`` for
``t > 0`` and ``b_0 = b_init`` at the first frame. The state ``r_t`` is the expected hidden vector
of that RBM given the frame, ``r_t = sigmoid(v_t W + b_t)``: a deterministic recurrent network
whose units are the RBM's own hidden units. So ``log P(v_1..T) = sum_t log P_RBM(v_t; b_t)``, and
the whole sequence's likelihood is a sum of per-step RBM likelihoods linked through ``r``.

What we implement (the paper's algorithm, section 3, on minibatches of whole sequences):

1. Forward: ``r_t`` and ``b_t`` for every step (a loop over time, one matrix product a step).
2. CD-k at every step at once (the biases ``b_t`` are fixed by step 1): the positive hidden
   statistics are ``r_t`` themselves; the negative phase samples ``h ~ Bernoulli(r_t)`` and runs
   ``k`` sweeps, visible units as probabilities (mean field, as the data are soft discs), hidden
   units sampled between sweeps and as probabilities ``q_t`` at the end. This gives the CD
   gradient for ``W`` and ``b_v`` and, for the dynamic bias, ``g_t = r_t - q_t``, the CD estimate
   of ``d log P(v_t) / d b_t``.
3. Backpropagation through time of the bias path only: ``b_t`` depends on ``r_{t-1}``, which
   depends on ``v_{t-1}``, ``W``, ``W'``, ``b_h`` and ``r_{t-2}``. With ``d_t = dL/dr_t`` (``d_{T-1} = 0``)
   and ``u_t = r_t (1 - r_t) d_t``, ``d_{t-1} = (g_t + u_t) W'^T``; then
   ``dW' = sum_{t>0} r_{t-1}^T (g_t + u_t)``, ``db_h = sum_{t>0} (g_t + u_t)``,
   ``db_init = g_0 + u_0`` and ``W`` gains ``sum_t v_t^T u_t`` beside its CD term. These are the
   paper's equations; like the paper we treat the CD estimates ``g_t`` as the gradients they
   approximate. ``bptt=False`` keeps only the one-step term (``u = 0``): ``W'`` still learns from
   ``g_t``, but no error flows further back (an ablation, not the paper's model).

The update is the gradient averaged over the frames of the batch, with momentum and L2 weight
decay on ``W`` and ``W'``; there is no autograd (the CD estimate is not the gradient of a
computable loss). Simplifications against the paper: binary-probability visible units only; no
sparsity or other regularisers; fixed CD-k instead of the paper's schedule; the hidden units of
the negative phase are not propagated into ``r`` (the paper does not either).

Inference. ``predict(X)`` returns, for every step ``t``, the prediction of frame ``t + 1`` from
frames ``0..t``: the next step's RBM (hidden bias ``b_{t+1} = b_h + r_t W'``) started at the
current frame and run ``mean_field_steps`` deterministic up-down passes,
``h = sigmoid(v W + b_{t+1})``, ``v = sigmoid(h W^T + b_v)``. One pass is the default because it
predicts best: on ``bouncing-balls`` (150 hidden units, 30 epochs) the error fell steadily with
one pass, while three passes were worse, and a start from the dynamic bias alone
(``h = sigmoid(b_{t+1})``, no frame) got worse as training went on (0.09 against 0.03 per pixel):
trained with CD-1 for a few epochs, the model's own mean-field fixed points are not the data's
frames, so the prediction is anchored at the current frame and moved by the dynamic bias.
``predict_next(frames)`` is its last row. ``sample(T, n_sequences)`` runs the generative model:
Gibbs sampling of each frame's RBM (25 sweeps as in the paper, from the previous frame), then
``r_t`` from that frame. ``transform`` gives the states ``r_t``.

Export: none. Every inference path runs a loop over time in Python (the state recursion, then
the mean-field iterations); an ONNX graph traced from it would be fixed at one sequence length,
and the contract test (tests/test_contract.py) demands parity for every registered exporter.

Reference: Sutskever, Hinton & Taylor (2008), "The recurrent temporal restricted Boltzmann
machine", Advances in Neural Information Processing Systems 21; the bouncing-balls data of
:mod:`deepatlas.data.bouncing_balls` follow its experiments.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from deepatlas._io import atomic_path
from deepatlas._validation import Boolean, Interval
from deepatlas.device import make_generator, resolve_device
from deepatlas.errors import InputError
from deepatlas.estimator import Estimator
from deepatlas.models.base import check_features
from deepatlas.models.rbm.rbm import check_unit_interval, one_thread
from deepatlas.registry import register_model

_MONITOR = 64  # training sequences scored once per epoch for history_


def as_frames(X, owner: str, *, n_features: int | None = None, min_steps: int = 1) -> np.ndarray:
    """``(n, T, ...)`` numbers in [0, 1] -> ``(n, T, nv)`` float32, with one-line errors."""
    if isinstance(X, (list, tuple)) and X and len({np.shape(s) for s in X}) > 1:
        raise InputError(f"{owner} needs sequences of one length and frame size; got sequences of different shapes.")
    arr = check_features(X, owner)
    if arr.ndim < 3:
        raise InputError(
            f"{owner} expects sequences of frames, shape (n_sequences, steps, pixels) (or (n, steps, H, W)). "
            f"Got shape {arr.shape} instead."
        )
    if arr.shape[0] == 0 or arr.shape[1] < min_steps:
        raise InputError(f"{owner} needs at least 1 sequence of at least {min_steps} frames. Got shape {arr.shape}.")
    flat = arr.reshape(arr.shape[0], arr.shape[1], -1).astype(np.float32, copy=False)
    if n_features is not None and flat.shape[2] != n_features:
        raise InputError(f"X has {flat.shape[2]} pixels per frame, but {owner} was trained on {n_features}.")
    check_unit_interval(flat, owner, hint="(binary or grey-level frames)")
    return np.ascontiguousarray(flat)


@register_model(
    "rtrbm",
    task="generative",
    description="recurrent temporal RBM for sequences of frames (CD-k per step + BPTT of the bias path)",
    smoke={"data": "bouncing-balls:n=40,T=8,size=8,balls=1", "params": {"n_hidden": 8, "epochs": 2}},
)
@dataclass(eq=False, repr=False, kw_only=True)
class RTRBM(Estimator):
    """Recurrent temporal RBM: a sequence of RBMs whose hidden biases follow a recurrent state.

    ``fit(X)`` takes ``X`` of shape ``(n_sequences, steps, pixels)`` (or ``(n, steps, H, W)``)
    with values in [0, 1]; ``predict(X)`` gives each step's prediction of the next frame,
    ``predict_next(frames)`` the frame after a sequence, ``sample(T, n_sequences)`` generated
    sequences, ``transform(X)`` the hidden states ``r_t``. No ONNX export: inference loops over time
    in Python (see the module docstring).

    >>> from deepatlas.data import load_dataset
    >>> ds = load_dataset("bouncing-balls:n=60,T=10,size=10")
    >>> RTRBM(n_hidden=32, epochs=2).fit(ds.X_train).predict(ds.X_test).shape
    (12, 10, 100)
    """

    n_hidden: int = 150
    """Hidden units of each step's RBM; they are also the recurrent state ``r_t``."""
    k: int = 1
    """Gibbs sweeps of the negative phase at each step (CD-k)."""
    lr: float = 0.01
    """Step size of the update, averaged over the frames of a batch."""
    momentum: float = 0.9
    """Fraction of the previous update added to the next one; 0 turns momentum off."""
    weight_decay: float = 1e-3
    """L2 shrinkage of the visible-hidden and hidden-hidden weights per update (biases are not decayed)."""
    epochs: int = 30
    """Passes over the training sequences (a fixed budget: no early stopping)."""
    batch_size: int = 10
    """Whole sequences per update."""
    bptt: bool = True
    """Backpropagate the CD estimate of each step's hidden-bias gradient through the recurrent state to earlier
    steps (the paper's algorithm); False keeps only the one-step term (an ablation)."""
    mean_field_steps: int = 1
    """Deterministic up-down passes of the next step's RBM, from the current frame, behind each next-frame
    prediction (one predicts best; see the module docstring)."""

    _parameter_constraints: ClassVar[dict] = {
        "n_hidden": Interval(int, 1, None),
        "k": Interval(int, 1, None),
        "lr": Interval(float, 0, None, "neither"),
        "momentum": Interval(float, 0, 1, "left"),
        "weight_decay": Interval(float, 0, None),
        "epochs": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "bptt": Boolean(),
        "mean_field_steps": Interval(int, 1, None),
    }
    _fitted_attr: ClassVar[str] = "W_"
    _NAMES: ClassVar[tuple[str, ...]] = ("W_", "W_rec_", "b_visible_", "b_hidden_", "b_init_")

    # ---- the recurrence -----------------------------------------------------------------------
    def _states(self, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``V`` (B, T, nv) -> states ``r`` (B, T, nh) and the dynamic hidden biases ``b`` (B, T, nh)."""
        pre = V @ self.W_  # (B, T, nh)
        R, Bias = torch.empty_like(pre), torch.empty_like(pre)
        Bias[:, 0] = self.b_init_
        R[:, 0] = torch.sigmoid(pre[:, 0] + self.b_init_)
        for t in range(1, V.shape[1]):
            torch.addmm(self.b_hidden_, R[:, t - 1], self.W_rec_, out=Bias[:, t])
            R[:, t] = torch.sigmoid(pre[:, t] + Bias[:, t])
        return R, Bias

    def _mean_field(self, V: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Visible probabilities after ``mean_field_steps`` up-down passes of the RBM with hidden bias
        ``bias``, started from the frames ``V`` (each step's prediction starts from its current frame)."""
        v = V
        for _ in range(self.mean_field_steps):
            h = torch.sigmoid(v @ self.W_ + bias)
            v = torch.sigmoid(h @ self.W_.T + self.b_visible_)
        return v

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn from sequences ``X`` (n, T, pixels) in [0, 1] (``y`` is ignored); returns ``self``."""
        self._validate_params()
        name = type(self).__name__
        frames = as_frames(X, name, min_steps=2)
        self.frame_shape_ = tuple(int(s) for s in np.shape(X)[2:])
        n, T, nv = frames.shape
        nh = self.n_hidden
        self.n_features_in_ = nv
        device = resolve_device(self.device)
        gen = make_generator(self.seed, device)
        Xt = torch.as_tensor(frames, device=device)
        p = np.clip(frames.reshape(-1, nv).mean(0), 1e-3, 1 - 1e-3)
        self.W_ = torch.randn(nv, nh, generator=gen, device=device) * 0.01
        self.W_rec_ = torch.randn(nh, nh, generator=gen, device=device) * 0.01
        self.b_visible_ = torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32, device=device)
        self.b_hidden_ = torch.zeros(nh, device=device)
        self.b_init_ = torch.zeros(nh, device=device)
        self.history_ = []
        monitor = Xt[torch.randperm(n, generator=gen, device=gen.device)[:_MONITOR].to(device)]
        start = time.perf_counter()
        small = device.type == "cpu" and nv * nh * self.batch_size * T < 2**24
        with one_thread() if small else contextlib.nullcontext(), torch.no_grad():
            self._train(Xt, gen, monitor)
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = self.epochs
        return self

    def _train(self, X: torch.Tensor, gen: torch.Generator, monitor: torch.Tensor) -> None:
        n, T, nv = X.shape
        B = min(self.batch_size, n)
        params = [getattr(self, a) for a in self._NAMES]
        velocity = [torch.zeros_like(p) for p in params]
        decay = 1.0 - self.lr * self.weight_decay
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=gen, device=gen.device).to(X.device)
            for i in range(0, (n // B) * B, B):
                grads = self._gradients(X[order[i : i + B]], gen)
                for p, v, g in zip(params, velocity, grads, strict=True):
                    v.mul_(self.momentum).add_(g, alpha=self.lr / (B * T))
                    p.add_(v)
                self.W_.mul_(decay)
                self.W_rec_.mul_(decay)
            error = self._next_frame_error_t(monitor)
            if not math.isfinite(error):
                from deepatlas.errors import TrainingDiverged

                raise TrainingDiverged(
                    f"Training diverged: the next-frame error became {error} at epoch {epoch + 1}. "
                    f"Try a lower learning rate (lr={self.lr:g} now)."
                )
            self.history_.append({"epoch": epoch + 1, "next_frame_mse": error})
            if self.verbose:
                print(
                    f"[{type(self).__name__}] epoch {epoch + 1}/{self.epochs}: next-frame MSE {error:.5f}", flush=True
                )

    def _gradients(self, V: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
        """CD-k at every step plus backpropagation through time of the bias path (module docstring);
        summed over the batch's frames, in the order of ``_NAMES``."""
        B, T, nv = V.shape
        W = self.W_
        R, Bias = self._states(V)
        h = (torch.rand(R.shape, generator=gen, device=R.device) < R).float()
        for step in range(self.k):
            v_neg = torch.sigmoid(h @ W.T + self.b_visible_)
            q = torch.sigmoid(v_neg @ W + Bias)
            if step < self.k - 1:
                h = (torch.rand(q.shape, generator=gen, device=q.device) < q).float()
        G = R - q  # CD estimate of d log P(v_t) / d b_t, (B, T, nh)
        Vf, vf = V.reshape(-1, nv), v_neg.reshape(-1, nv)
        dW = Vf.T @ R.reshape(-1, R.shape[2]) - vf.T @ q.reshape(-1, q.shape[2])
        d_visible = (Vf - vf).sum(0)
        if self.bptt:
            U = torch.zeros_like(R)  # dL / d(pre-activation of r_t)
            delta = torch.zeros_like(R[:, 0])  # dL / d r_t
            for t in range(T - 1, -1, -1):
                U[:, t] = R[:, t] * (1 - R[:, t]) * delta
                if t > 0:
                    delta = (G[:, t] + U[:, t]) @ self.W_rec_.T
            dW += Vf.T @ U.reshape(-1, U.shape[2])
            G = G + U
        nh = R.shape[2]
        d_rec = R[:, :-1].reshape(-1, nh).T @ G[:, 1:].reshape(-1, nh)
        d_hidden = G[:, 1:].sum((0, 1))
        d_init = G[:, 0].sum(0)
        return [dW, d_rec, d_visible, d_hidden, d_init]

    # ---- inference ----------------------------------------------------------------------------
    def _tensor(self, X, min_steps: int = 1) -> torch.Tensor:
        self._check_fitted()
        frames = as_frames(X, type(self).__name__, n_features=self.n_features_in_, min_steps=min_steps)
        return torch.as_tensor(frames, device=self.W_.device)

    @torch.no_grad()
    def _predict_t(self, V: torch.Tensor) -> torch.Tensor:
        R, _ = self._states(V)
        return self._mean_field(V, R @ self.W_rec_ + self.b_hidden_)  # (B, T, nv): row t predicts frame t + 1

    def _shaped(self, out: torch.Tensor) -> np.ndarray:
        arr = out.cpu().numpy()
        return arr.reshape(*arr.shape[:-1], *self.frame_shape_)

    def predict(self, X) -> np.ndarray:
        """Row ``t`` of each sequence: the predicted frame ``t + 1`` given frames ``0..t``; same shape as ``X``."""
        V = self._tensor(X)
        with one_thread():
            return self._shaped(self._predict_t(V))

    def predict_next(self, frames) -> np.ndarray:
        """The frame after each sequence: ``(T, pixels)`` -> ``(pixels,)``, ``(n, T, pixels)`` -> ``(n, pixels)``
        (frames of shape (H, W) keep it)."""
        arr = np.asarray(frames)
        single = arr.ndim == 1 + len(getattr(self, "frame_shape_", (0,)))
        out = self.predict(arr[None] if single else arr)[:, -1]
        return out[0] if single else out

    def transform(self, X) -> np.ndarray:
        """The recurrent states ``r_t`` (expected hidden units), ``(n, T, n_hidden)``."""
        V = self._tensor(X)
        with one_thread(), torch.no_grad():
            return self._states(V)[0].cpu().numpy()

    @torch.no_grad()
    def _next_frame_error_t(self, V: torch.Tensor) -> float:
        return float(((self._predict_t(V)[:, :-1] - V[:, 1:]) ** 2).mean())

    def next_frame_error(self, X) -> float:
        """Mean squared error per pixel of the predictions of frames ``1..T-1`` of ``X``."""
        V = self._tensor(X, min_steps=2)
        with one_thread():
            return self._next_frame_error_t(V)

    def score(self, X, y=None) -> float:
        """Minus the next-frame error (greater is better, as scikit-learn expects)."""
        return -self.next_frame_error(X)

    @torch.no_grad()
    def sample(self, T: int = 30, n_sequences: int = 1, *, gibbs_steps: int = 25, seed=None) -> np.ndarray:
        """``n_sequences`` generated sequences of ``T`` frames, ``(n_sequences, T, *frame shape)``.

        Each frame is drawn by ``gibbs_steps`` Gibbs sweeps of its RBM (hidden units sampled,
        visible units kept as probabilities, which are also what is returned), starting from noise
        for the first frame and from the previous frame afterwards; the state ``r_t`` then follows
        from the frame."""
        self._check_fitted()
        for name, value in (("T", T), ("n_sequences", n_sequences), ("gibbs_steps", gibbs_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int. Got {value!r} instead.")
        dev = self.W_.device
        gen = make_generator(self.seed if seed is None else seed, dev)
        W, bv = self.W_, self.b_visible_
        v = torch.rand(n_sequences, self.n_features_in_, generator=gen, device=dev)
        bias = self.b_init_.expand(n_sequences, -1)
        out = torch.empty(n_sequences, T, self.n_features_in_, device=dev)
        with one_thread():
            for t in range(T):
                for _ in range(gibbs_steps):
                    p = torch.sigmoid(v @ W + bias)
                    h = (torch.rand(p.shape, generator=gen, device=dev) < p).float()
                    v = torch.sigmoid(h @ W.T + bv)
                out[:, t] = v
                r = torch.sigmoid(v @ W + bias)
                bias = r @ self.W_rec_ + self.b_hidden_
        return self._shaped(out)

    # ---- run directories: deepatlas train / sample ----------------------------------------------
    def fit_dataset(self, ds, *, checkpoint_dir=None, resume: bool = False):
        """``deepatlas train``: fit on the training sequences; write a GIF of generated sequences and
        a strip of next-frame predictions into ``checkpoint_dir/plots``. Fitting has no checkpoints:
        ``resume`` refits."""
        self.fit(ds.X_train)
        if checkpoint_dir is not None:
            plots = Path(checkpoint_dir) / "plots"
            write_gif(self.sample(ds.X_train.shape[1], 4, seed=0), plots / "samples.gif")
            write_prediction_strip(self, ds.X_test[:1], plots / "next_frame.png")
        return self

    def dataset_metrics(self, ds) -> dict:
        """Next-frame mean squared error per pixel on the test sequences, beside two baselines: the
        previous frame as the prediction, and the mean training frame."""
        X = self._tensor(ds.X_test, min_steps=2).cpu().numpy()
        mean_frame = self._tensor(ds.X_train).cpu().numpy().mean((0, 1))
        return {
            "test_next_frame_mse": self.next_frame_error(ds.X_test),
            "test_next_frame_mse_previous_frame": float(((X[:, 1:] - X[:, :-1]) ** 2).mean()),
            "test_next_frame_mse_mean_frame": float(((X[:, 1:] - mean_frame) ** 2).mean()),
        }

    def write_samples(self, out=None, *, n=None, prompt=None, label=None, temperature=1.0, seed=0) -> str:
        """``deepatlas sample``: ``n`` (default 4) generated sequences side by side as an animated GIF."""
        del prompt, label, temperature
        n = 4 if n is None else n
        path = Path(out or "samples.gif")
        write_gif(self.sample(30, n, seed=seed), path)
        return f"wrote {n} generated sequences of 30 frames to {path}"

    # ---- persistence ----------------------------------------------------------------------------
    def _fitted_state(self):
        self._check_fitted()
        tensors = {a: getattr(self, a).detach().cpu().contiguous() for a in self._NAMES}
        meta = {
            "n_features_in_": self.n_features_in_,
            "frame_shape_": list(self.frame_shape_),
            "n_epochs_": self.n_epochs_,
        }
        return tensors, meta

    def _restore_state(self, tensors, meta):
        device = resolve_device(self.device)
        for a in self._NAMES:
            setattr(self, a, tensors[a].to(device).clone())  # fresh, aligned memory: bit-identical products
        self.n_features_in_ = int(meta["n_features_in_"])
        self.frame_shape_ = tuple(meta["frame_shape_"])
        self.n_epochs_ = meta.get("n_epochs_")


# ---- pictures ---------------------------------------------------------------------------------------
def _as_grid(frames: np.ndarray) -> np.ndarray:
    """(n, T, pixels or H, W) -> (T, H, n * (W + 1) - 1) images side by side (square frames assumed
    when flat)."""
    n, T = frames.shape[:2]
    flat = frames.reshape(n, T, -1)
    side = math.isqrt(flat.shape[2])
    if side * side != flat.shape[2]:
        raise InputError(f"Frames of {flat.shape[2]} pixels are not square; pass them as (n, T, H, W).")
    imgs = flat.reshape(n, T, side, side) if frames.ndim == 3 else frames.reshape(n, T, *frames.shape[2:])
    H, W = imgs.shape[2:]
    grid = np.ones((T, H, n * (W + 1) - 1), np.float32) * 0.5
    for i in range(n):
        grid[:, :, i * (W + 1) : i * (W + 1) + W] = imgs[i]
    return grid


def write_gif(frames: np.ndarray, path: Path, *, scale: int = 8, ms: int = 100) -> Path:
    """Sequences ``(n, T, ...)`` in [0, 1] side by side, one GIF frame per step, pixels ``scale`` times."""
    from PIL import Image

    grid = np.clip(_as_grid(frames), 0, 1)
    images = [
        Image.fromarray((255 * g).astype(np.uint8)).resize((g.shape[1] * scale, g.shape[0] * scale), Image.NEAREST)
        for g in grid
    ]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0)
    return Path(path)


def write_prediction_strip(model: RTRBM, X: np.ndarray, path: Path) -> Path:
    """The frames of one sequence (top) and the model's prediction of each from the frames before it (bottom)."""
    from deepatlas.plotting import new_figure, save_figure

    pred = model.predict(X)[0]  # row t predicts frame t + 1
    truth = _as_grid(np.asarray(X)[:1])[1:]
    guess = _as_grid(pred[None])[:-1]
    T = min(len(truth), 10)
    fig, axes = new_figure(2, T, figsize=(1.1 * T, 2.5), squeeze=False)
    for t in range(T):
        for row, img in ((0, truth[t]), (1, guess[t])):
            axes[row, t].imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[row, t].axis("off")
        axes[0, t].set_title(f"t={t + 1}", fontsize=7)
    fig.suptitle("frames (top) and next-frame predictions from the frames before (bottom)", fontsize=8)
    return save_figure(fig, path)


# ---- baselines on the same data -------------------------------------------------------------------
def frame_rbm_next_frame_error(rbm, X) -> float:
    """Next-frame error of a per-frame RBM (fitted on single frames, no time): its prediction of frame
    ``t + 1`` is its one-pass mean-field reconstruction of frame ``t``, ``sigmoid(sigmoid(v W + c) W^T + b)``,
    the best a model without a state can do beyond copying (a cleaned-up current frame)."""
    V = np.asarray(X, dtype=np.float32)
    V = V.reshape(V.shape[0], V.shape[1], -1)
    H = 1.0 / (1.0 + np.exp(-(V @ rbm.components_.T + rbm.intercept_hidden_)))
    recon = 1.0 / (1.0 + np.exp(-(H @ rbm.components_ + rbm.intercept_visible_)))
    return float(((recon[:, :-1] - V[:, 1:]) ** 2).mean())


def previous_frame_error(X) -> float:
    """Next-frame error of predicting each frame by the one before it."""
    V = np.asarray(X, dtype=np.float32)
    V = V.reshape(V.shape[0], V.shape[1], -1)
    return float(((V[:, 1:] - V[:, :-1]) ** 2).mean())


def next_frame_windows(X, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs for a sequence regressor: the ``length`` frames up to ``t`` (blank frames before the start)
    -> frame ``t + 1``, for every ``t < T - 1``; ``(n (T - 1), length, pixels)`` and ``(n (T - 1), pixels)``."""
    V = np.asarray(X, dtype=np.float32)
    V = V.reshape(V.shape[0], V.shape[1], -1)
    n, T, nv = V.shape
    padded = np.concatenate([np.zeros((n, length - 1, nv), np.float32), V], axis=1)
    windows = np.stack([padded[:, t : t + length] for t in range(T - 1)], axis=1)  # (n, T - 1, length, nv)
    return windows.reshape(-1, length, nv), V[:, 1:].reshape(-1, nv)
