"""Exact resume at any kill point (issue #29, point 2).

A run is killed (``KeyboardInterrupt``, as Ctrl-C) right after the checkpoint of a chosen epoch —
before, at and after the best epoch and after the last one — or in the middle of writing a
checkpoint (the final one included); a fresh estimator then resumes from what is on disk. Its
weights, history, best epoch and predictions must equal the uninterrupted run's, bit for bit:
early stopping's state (best score, best weights, patience counter) and every callback's state
travel in the checkpoint, and the checkpoint is one file renamed into place, so a kill while it
is written leaves the previous one.

Reinforcement-learning agents (a DQN, off-policy, and a PPO, on-policy) are killed the same way
around their best periodic evaluation: networks (the target network too), optimiser, replay or
rollout buffer, evaluation history, best weights, every RNG and the vector environment's state
travel in :mod:`deepatlas.rl.checkpoint`, and ``deepatlas rl train --resume`` gives the same run
directory as the uninterrupted run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file, save_file

from deepatlas import create_model
from deepatlas.data import load_dataset
from deepatlas.training import callbacks


class Killed(KeyboardInterrupt):
    pass


def _kill_after_checkpoint(monkeypatch, stop: int) -> None:
    save = callbacks.save_checkpoint

    def save_then_stop(directory, loop, epoch):
        save(directory, loop, epoch)
        if epoch == stop:
            raise Killed

    monkeypatch.setattr(callbacks, "save_checkpoint", save_then_stop)


def _kill_inside_checkpoint(monkeypatch, stop: int) -> None:
    """The ``stop``-th checkpoint write dies halfway: half a file on disk, then the interrupt."""
    write, calls = safetensors.torch.save_file, [0]

    def half_then_stop(tensors, filename, metadata=None):
        calls[0] += 1
        if calls[0] != stop:
            return write(tensors, filename, metadata=metadata)
        write(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(len(f.read()) // 2)
        raise Killed

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_stop)


def _fit(make, fit, tmp_path=None, resume=False):
    model = make()
    kwargs = {} if tmp_path is None else {"checkpoint_dir": tmp_path, "resume": resume}
    return fit(model, **kwargs)


def _same(full, resumed, predict) -> None:
    assert resumed.history_ == full.history_
    assert resumed.n_epochs_ == full.n_epochs_
    assert getattr(resumed, "best_epoch_", None) == getattr(full, "best_epoch_", None)
    a, b = full.module_.state_dict(), resumed.module_.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    np.testing.assert_array_equal(predict(full), predict(resumed))


def _kill_and_resume(monkeypatch, tmp_path, make, fit, predict, full, kill, stop) -> None:
    out = tmp_path / f"{kill.__name__}-{stop}"
    with monkeypatch.context() as m:
        kill(m, stop)
        with pytest.raises(Killed):
            _fit(make, fit, out)
    before = {p.name for p in out.iterdir()}
    assert before == {"checkpoint.safetensors"}  # one file; no half-written temporary left behind
    _same(full, _fit(make, fit, out, resume=True), predict)


# ---- the MLP with early stopping, on the default (autograd-free, fused Adam) step ----------------
def _mlp_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=240) > 0).astype(np.int64)  # noisy: validation loss turns
    return X, y


def _mlp():
    return create_model("mlp", hidden_sizes=(32,), lr=0.003, batch_size=32, epochs=40, patience=3, seed=2)


def _mlp_fit(model, **kw):
    X, y = _mlp_data()
    return model.fit(X, y, **kw)


def _mlp_predict(model):
    return model.predict_proba(_mlp_data()[0])


@pytest.fixture(scope="module")
def mlp_full():
    full = _fit(_mlp, _mlp_fit)
    best, n = full.best_epoch_, full.n_epochs_
    assert 3 <= best and best + 3 == n < 40, (best, n)  # early stopping ended it, three epochs after the best
    return full


@pytest.mark.parametrize("offset", [-1, 0, 1, 3])  # before, at, after the best epoch; the last one
def test_mlp_killed_after_a_checkpoint(monkeypatch, tmp_path, mlp_full, offset):
    stop = mlp_full.best_epoch_ + offset
    _kill_and_resume(monkeypatch, tmp_path, _mlp, _mlp_fit, _mlp_predict, mlp_full, _kill_after_checkpoint, stop)


@pytest.mark.parametrize("where", ["best", "last"])
def test_mlp_killed_inside_a_checkpoint(monkeypatch, tmp_path, mlp_full, where):
    stop = mlp_full.best_epoch_ if where == "best" else mlp_full.n_epochs_
    _kill_and_resume(monkeypatch, tmp_path, _mlp, _mlp_fit, _mlp_predict, mlp_full, _kill_inside_checkpoint, stop)


def test_uninterrupted_checkpointed_run_is_the_plain_run(tmp_path, mlp_full):
    _same(mlp_full, _fit(_mlp, _mlp_fit, tmp_path), _mlp_predict)
    meta = json.loads(
        safetensors.safe_open(tmp_path / "checkpoint.safetensors", "pt").metadata()["deepatlas.checkpoint"]
    )
    assert meta["epoch"] == mlp_full.n_epochs_ and meta["stopped"]
    [(name, state)] = meta["callbacks"].items()
    assert name == "EarlyStopping.0"
    assert state["values"]["best_epoch"] == mlp_full.best_epoch_ - 1 and state["values"]["wait"] == 3


def test_older_two_file_checkpoint_still_resumes(monkeypatch, tmp_path):
    """A checkpoint written before the metadata moved into the file (``checkpoint.json`` beside
    the tensors, no callback state) resumes as before; early stopping off, so nothing is lost."""

    def make():
        return create_model("mlp", hidden_sizes=(16,), batch_size=32, epochs=5, early_stopping=False, seed=1)

    full = _fit(make, _mlp_fit)
    with monkeypatch.context() as m:
        _kill_after_checkpoint(m, 2)
        with pytest.raises(Killed):
            _fit(make, _mlp_fit, tmp_path)
    path = tmp_path / "checkpoint.safetensors"
    tensors, meta = callbacks.read_checkpoint(tmp_path)
    del meta["callbacks"], meta["stopped"]
    save_file(tensors, path)  # no metadata
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    resumed = _fit(make, _mlp_fit, tmp_path, resume=True)
    _same(full, resumed, _mlp_predict)
    assert not (tmp_path / "checkpoint.json").exists()  # the new checkpoint replaced both files
    assert "deepatlas.checkpoint" in safetensors.safe_open(path, "pt").metadata()
    assert load_file(path).keys() >= tensors.keys()


# ---- a GRU with early stopping (autograd step) ----------------------------------------------------
def _gru_data():
    return load_dataset("adding:T=6,n=300")


def _gru():
    return create_model("gru", task="regression", hidden_size=8, lr=0.1, batch_size=32, epochs=15, patience=1, seed=0)


def _gru_fit(model, **kw):
    ds = _gru_data()
    return model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val), **kw)


def _gru_predict(model):
    return model.predict(_gru_data().X_test)


@pytest.fixture(scope="module")
def gru_full():
    return _fit(_gru, _gru_fit)


@pytest.mark.parametrize("kill", ["at-best", "inside-last"])
def test_gru_killed_and_resumed(monkeypatch, tmp_path, gru_full, kill):
    assert gru_full.best_epoch_ < gru_full.n_epochs_ < 15  # early stopping ended it
    if kill == "at-best":
        stop, how = gru_full.best_epoch_, _kill_after_checkpoint
    else:
        stop, how = gru_full.n_epochs_, _kill_inside_checkpoint
    _kill_and_resume(monkeypatch, tmp_path, _gru, _gru_fit, _gru_predict, gru_full, how, stop)


# ---- a GAN on ring8 (two players, two optimisers, noise from the loop's generator) --------------
def _gan_data():
    return load_dataset("ring8:n=512").X_train


def _gan(**kw):
    return create_model("gan", hidden_sizes=(16, 16), batch_size=64, epochs=4, seed=0, **kw)


def _gan_fit(model, **kw):
    return model.fit(_gan_data(), **kw)


def _gan_predict(model):
    return model.sample(64, seed=3)


@pytest.fixture(scope="module")
def gan_full():
    return _fit(_gan, _gan_fit)


@pytest.mark.parametrize("kill", ["after-2", "inside-last", "after-last"])
def test_gan_killed_and_resumed(monkeypatch, tmp_path, gan_full, kill):
    how = _kill_inside_checkpoint if kill.startswith("inside") else _kill_after_checkpoint
    stop = 2 if kill == "after-2" else gan_full.n_epochs_
    _kill_and_resume(monkeypatch, tmp_path, _gan, _gan_fit, _gan_predict, gan_full, how, stop)


@pytest.mark.slow
def test_gan_with_several_critic_steps_resumes_its_logged_generator_loss(monkeypatch, tmp_path):
    """With ``n_critic`` > 1 an epoch's first batches log the generator loss of the epoch before
    (the loop's own state, in the checkpoint)."""

    def make():
        return _gan(n_critic=3, lr_schedule="linear")

    full = _fit(make, _gan_fit)
    _kill_and_resume(monkeypatch, tmp_path, make, _gan_fit, _gan_predict, full, _kill_after_checkpoint, 2)


# ---- reinforcement-learning agents: DQN (replay buffer, target network) and PPO (rollouts) -------
# Tiny CartPole budgets whose periodic evaluations peak in the middle, so a kill lands before, at
# and after the best one. Checkpoints fall every `freq` steps (mid-rollout for PPO) and at the end.
_RL = {
    "dqn": dict(
        total=1000,
        freq=200,
        params=dict(
            hidden_sizes=(16,),
            learning_starts=100,
            buffer_size=500,  # wraps: rows are overwritten in place before the end
            target_update_interval=100,
            n_envs=2,
            eval_freq=200,
            eval_episodes=2,
            lr=0.005,
            seed=1,
        ),
    ),
    "ppo": dict(
        total=640,
        freq=96,
        params=dict(
            hidden_sizes=(16,),
            n_steps=32,
            batch_size=32,
            n_epochs=4,
            n_envs=2,
            lr=0.003,
            linear_decay=True,  # the decayed learning rate and clip range follow the step count
            eval_freq=128,
            eval_episodes=2,
            seed=1,
        ),
    ),
}


def _agent(algo):
    return create_model(algo, "rl", env="CartPole-v1", **_RL[algo]["params"])


def _learn(algo, out=None, resume=False):
    kw = {} if out is None else {"checkpoint_dir": out, "resume": resume, "checkpoint_freq": _RL[algo]["freq"]}
    return _agent(algo).learn(_RL[algo]["total"], **kw)


def _rl_kill_after_checkpoint(monkeypatch, stop: int) -> None:
    from deepatlas.rl import checkpoint

    save = checkpoint.save_checkpoint

    def save_then_stop(directory, agent, envs):
        save(directory, agent, envs)
        if agent.num_timesteps_ == stop:
            raise Killed

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop)


def _same_agent(full, resumed) -> None:
    assert resumed.num_timesteps_ == full.num_timesteps_
    assert resumed.history_ == full.history_ and resumed.train_history_ == full.train_history_
    assert resumed.eval_history_ == full.eval_history_
    assert (resumed.best_eval_return_, resumed.best_eval_step_) == (full.best_eval_return_, full.best_eval_step_)
    for name, module in full._checkpoint_modules().items():  # a DQN's target network too
        a, b = module.state_dict(), resumed._checkpoint_modules()[name].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    opt_a, opt_b = full._opt.state_dict(), resumed._opt.state_dict()
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for i, slots in opt_a["state"].items():
        for k, v in slots.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt_b["state"][i][k])), (i, k)
    (rows_a, meta_a), (rows_b, meta_b) = full._train_state(), resumed._train_state()
    assert meta_a == meta_b and rows_a.keys() == rows_b.keys()  # the replay buffer / the rollout so far
    for field in rows_a:
        np.testing.assert_array_equal(rows_a[field], rows_b[field])
    obs = np.random.default_rng(0).normal(0, 0.5, size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(full.predict(obs), resumed.predict(obs))
    assert full.evaluate(3) == resumed.evaluate(3)


@pytest.fixture(scope="module")
def rl_full():
    return {algo: _learn(algo) for algo in _RL}


def _rl_kill_and_resume(monkeypatch, tmp_path, full, algo, kill, stop) -> None:
    out = tmp_path / f"{algo}-{kill.__name__}-{stop}"
    with monkeypatch.context() as m:
        kill(m, stop)
        with pytest.raises(Killed):
            _learn(algo, out)
    assert {p.name for p in out.iterdir()} == {"checkpoint.safetensors"}
    _same_agent(full, _learn(algo, out, resume=True))


@pytest.mark.parametrize(
    "algo, where",
    [(a, w) for a in _RL for w in ("before-best", "at-best", "after-best", "final")],
)
def test_agent_killed_after_a_checkpoint(monkeypatch, tmp_path, rl_full, algo, where):
    full, freq, total = rl_full[algo], _RL[algo]["freq"], _RL[algo]["total"]
    best = full.best_eval_step_
    checkpoints = list(range(freq, total, freq)) + [total]
    at = max(c for c in checkpoints if c <= best)
    assert at == best, (algo, best)  # a checkpoint right after the best evaluation
    assert checkpoints[0] < best < max(e["step"] for e in full.eval_history_), full.eval_history_
    stop = {
        "before-best": max(c for c in checkpoints if c < best),
        "at-best": best,
        "after-best": min(c for c in checkpoints if c > best),
        "final": total,
    }[where]
    _rl_kill_and_resume(monkeypatch, tmp_path, full, algo, _rl_kill_after_checkpoint, stop)


@pytest.mark.parametrize("algo, where", [("dqn", "best"), ("dqn", "final"), ("ppo", "final")])
def test_agent_killed_inside_a_checkpoint(monkeypatch, tmp_path, rl_full, algo, where):
    full, freq, total = rl_full[algo], _RL[algo]["freq"], _RL[algo]["total"]
    nth = full.best_eval_step_ // freq if where == "best" else len(range(freq, total, freq)) + 1
    _rl_kill_and_resume(monkeypatch, tmp_path, full, algo, _kill_inside_checkpoint, nth)


@pytest.mark.parametrize(
    "algo, env, params, total, freq",
    [  # REINFORCE keeps whole episodes of its own; Pendulum's continuous actions and its last torque
        ("reinforce", "CartPole-v1", dict(episodes_per_update=2), 500, 125),
        ("ppo", "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=2, n_envs=2), 800, 100),
    ],
)
def test_other_agents_and_environments_resume_exactly(monkeypatch, tmp_path, algo, env, params, total, freq):
    def learn(**kw):
        return create_model(algo, "rl", env=env, hidden_sizes=(8,), seed=0, **params).learn(total, **kw)

    full = learn()
    with monkeypatch.context() as m:
        _rl_kill_after_checkpoint(m, 3 * freq)
        with pytest.raises(Killed):
            learn(checkpoint_dir=tmp_path, checkpoint_freq=freq)
    resumed = learn(checkpoint_dir=tmp_path, resume=True, checkpoint_freq=freq)
    assert resumed.history_ == full.history_ and resumed.train_history_ == full.train_history_
    a, b = full.policy_.state_dict(), resumed.policy_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    obs = np.random.default_rng(0).normal(0, 0.5, size=(16, *full.obs_shape_)).astype(np.float32)
    np.testing.assert_array_equal(full.predict(obs), resumed.predict(obs))


def test_agent_checkpoint_holds_the_environment_and_the_run_state(tmp_path, rl_full):
    """What makes the resume exact is in the file: the CartPoles' physical state and generators,
    the time limits' step counts, the replay rows, the exploration generator and the counters."""
    from deepatlas.training.callbacks import read_checkpoint

    full = rl_full["dqn"]
    _learn("dqn", tmp_path)  # uninterrupted: the last checkpoint is the final one
    tensors, meta = read_checkpoint(tmp_path)
    assert meta["kind"] == "agent" and meta["class"] == "DQN" and meta["step"] == 1000 and not meta["stopped"]
    assert meta["history"] == full.history_
    assert meta["evaluations"] == full.eval_history_[:-1]  # the final evaluation follows the final checkpoint
    assert meta["best"] == {"score": full.best_eval_return_, "step": full.best_eval_step_}
    assert meta["train"]["pos"] == 1000 % 500 and meta["train"]["full"]
    assert tensors["train.obs"].shape == (500, 4)
    assert {"net.q_net.0.weight", "net.target_net.0.weight", "best.q_net.0.weight", "loop.obs", "rng"} <= set(tensors)
    layers = {(layer["path"], layer["class"]): layer["attrs"] for layer in meta["env"]["layers"]}
    assert "_autoreset_envs" in layers[("vector", "SyncVectorEnv")]
    for i in range(2):
        assert "_elapsed_steps" in layers[(f"copy {i} layer 0", "TimeLimit")]
        cartpole = layers[(f"copy {i} layer 3", "CartPoleEnv")]
        assert cartpole["_np_random"]["generator"]["bit_generator"] == "PCG64"
        assert tensors["env." + cartpole["state"]["array"]].shape == (4,)


def test_environment_state_that_cannot_be_saved_is_named_and_the_cli_trains_without_checkpoints(
    monkeypatch, tmp_path, capsys
):
    from deepatlas.cli import main
    from deepatlas.rl import envs as rl_envs

    vec = rl_envs.make_vec_env("CartPole-v1", 2)
    vec.reset(seed=0)
    vec.envs[1].unwrapped.world = object()  # as a physics engine's world would be
    with pytest.raises(rl_envs.EnvStateError) as err:
        rl_envs.vec_env_state(vec)
    assert str(err.value) == "attribute 'world' of CartPoleEnv is a builtins.object"
    vec.close()

    saves = []
    monkeypatch.setattr(rl_envs, "checkpoint_problem", lambda env, n: "attribute 'world' of X is a Box2D.b2World")
    monkeypatch.setattr("deepatlas.rl.checkpoint.save_checkpoint", lambda *a: saves.append(a))
    out = tmp_path / "run"
    argv = ["rl", "train", "a2c", "--steps", "50", "--eval-episodes", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "note: no checkpoints for 'CartPole-v1', whose state cannot be saved "
        "(attribute 'world' of X is a Box2D.b2World)"
    ]
    assert saves == [] and (out / "metrics.json").exists()


def test_rl_cli_resumes_exactly_and_refuses_like_train(monkeypatch, tmp_path, capsys):
    """``deepatlas rl train --out`` killed after a checkpoint and ``--resume``d writes the run the
    uninterrupted command writes; a finished run, a missing checkpoint and changed settings are
    refused with train's lines; more ``--steps`` are allowed and recorded in config.json."""
    from safetensors.torch import load_file

    from deepatlas.cli import main

    base = ["rl", "train", "dqn", "--steps", "1000", "--checkpoint-every", "200", "--eval-episodes", "2", "--quiet"]
    base += [f"--set={k}={v!r}" for k, v in _RL["dqn"]["params"].items() if k != "seed"]
    base += ["--seed", "1"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*base, "--out", str(full)]) == 0
    with monkeypatch.context() as m:
        _rl_kill_after_checkpoint(m, 600)
        assert main([*base, "--out", str(cut)]) == 130
    assert {p.name for p in cut.iterdir()} == {"checkpoint.safetensors", "config.json"}
    assert main([*base, "--out", str(cut), "--resume"]) == 0
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("history.json", "updates.json", "config.json"):
        assert (cut / name).read_text() == (full / name).read_text(), name
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (full, cut)]
    for m in metrics:
        m.pop("fit_seconds")
    assert metrics[0] == metrics[1]
    assert not (cut / "checkpoint.safetensors").exists()
    capsys.readouterr()

    def refused(argv, line):
        assert main(argv) == 2
        *notes, err = capsys.readouterr().err.strip().splitlines()
        assert err == f"deepatlas rl: error: {line}"
        assert all(n.startswith("note: ") for n in notes), notes  # e.g. which preset it starts from

    refused(
        [*base, "--out", str(cut), "--resume"],
        f"--resume: --out {str(cut)!r} holds a finished run (metrics.json); there is nothing to continue. "
        "Train into another directory, or pass --overwrite instead to move it aside and start again.",
    )
    refused(
        [*base, "--out", str(full)],
        f"--out {str(full)!r} already holds a finished run; choose another directory, "
        "or pass --overwrite to move it aside and start again.",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(
        [*base, "--out", str(empty), "--resume"],
        f"--resume: --out {str(empty)!r} holds no checkpoint (checkpoint.safetensors) to continue from.",
    )
    more = tmp_path / "more"
    with monkeypatch.context() as m:
        _rl_kill_after_checkpoint(m, 400)
        assert main([*base, "--out", str(more)]) == 130
    capsys.readouterr()
    refused(
        [*base, "--out", str(more), "--resume", "--set", "lr=0.01", "--set", "gamma=0.9"],
        f"--resume: the run in --out {str(more)!r} was started with other settings: gamma 0.99 (now 0.9); "
        "lr 0.005 (now 0.01). Resume with the same settings (only --steps may grow).",
    )
    refused(
        [*base, "--out", str(more), "--resume", "--steps", "800"],
        f"--resume: the run in --out {str(more)!r} was started with other settings: total_timesteps 1000 "
        "(now 800). Resume with the same settings (only --steps may grow).",
    )
    assert main([*base, "--out", str(more), "--resume", "--steps", "1200"]) == 0
    assert json.loads((more / "config.json").read_text())["total_timesteps"] == 1200
    assert json.loads((more / "metrics.json").read_text())["total_timesteps"] == 1200


def test_rl_cli_killed_inside_the_final_save_resumes(monkeypatch, tmp_path):
    """Killed after the run directory's weights and full config.json are written but before
    metrics.json: ``--resume`` starts from the final checkpoint and writes the same run."""
    from safetensors.torch import load_file

    from deepatlas import saving
    from deepatlas.cli import main

    base = ["rl", "train", "ppo", "--steps", "384", "--checkpoint-every", "100", "--eval-episodes", "2", "--quiet"]
    base += ["--set=n_steps=32", "--set=n_envs=2", "--set=hidden_sizes=(8,)", "--set=eval_freq=128"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*base, "--out", str(full)]) == 0
    save = saving.save_model

    def save_then_stop(estimator, directory, *, extra_config=None):
        save(estimator, directory, extra_config=extra_config)
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(saving, "save_model", save_then_stop)
        assert main([*base, "--out", str(cut)]) == 130
    assert {p.name for p in cut.iterdir()} == {"checkpoint.safetensors", "config.json", "model.safetensors"}
    assert main([*base, "--out", str(cut), "--resume"]) == 0
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (cut / "history.json").read_text() == (full / "history.json").read_text()
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (full, cut)]
    assert [m.pop("fit_seconds") > 0 for m in metrics] == [True, True] and metrics[0] == metrics[1]
