"""Deep RL agents: short learning runs, the API contract, persistence, the CLI and error messages.

The learning tests use a few thousand steps of CartPole-v1, where a random policy scores about 22
and an untrained greedy one about 9; the full quality runs (5 seeds, the zoo budgets, the
comparison with Stable-Baselines3) are in benchmarks/bench_rl.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepatlas.errors import InputError, InputTypeError
from deepatlas.rl import A2C, DQN, PPO, REINFORCE

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


# ---- it learns -----------------------------------------------------------------------------------
def test_dqn_learns_cartpole_with_zoo_settings_in_3000_steps():
    params, _ = DQN.zoo_params("CartPole-v1")
    agent = DQN("CartPole-v1", seed=0, **params).learn(3_000)
    assert agent.evaluate(10)["mean_reward"] >= 100


def test_eval_freq_ends_with_the_best_evaluated_weights(monkeypatch):
    params, _ = DQN.zoo_params("CartPole-v1")
    agent = DQN("CartPole-v1", seed=0, eval_freq=1_000, eval_episodes=5, **params)
    # Script the scores so that the best evaluation is neither the first nor the last, and keep
    # the weights each evaluation saw.
    scores, seen = iter([10.0, 50.0, 20.0, 30.0]), []

    def scripted(n_episodes, *, deterministic=True, seed=None):
        assert (n_episodes, seed) == (5, 20_000)  # the eval episodes, apart from evaluate's default
        seen.append({k: v.clone() for k, v in agent.q_net_.state_dict().items()})
        return {"mean_reward": next(scores)}

    monkeypatch.setattr(agent, "evaluate", scripted)
    agent.learn(4_000)
    assert agent.eval_history_ == [
        {"step": 1_000, "mean_reward": 10.0},
        {"step": 2_000, "mean_reward": 50.0},
        {"step": 3_000, "mean_reward": 20.0},
        {"step": 4_000, "mean_reward": 30.0},  # at the end
    ]
    assert (agent.best_eval_return_, agent.best_eval_step_) == (50.0, 2_000)
    final = agent.q_net_.state_dict()
    assert all(torch.equal(final[k], seen[1][k]) for k in final)  # the weights of step 2,000 are back
    assert not all(torch.equal(seen[3][k], seen[1][k]) for k in final)  # (training moved them on)
    # Real evaluations draw no randomness: the training trajectory is the one without them.
    evaluated = DQN("CartPole-v1", seed=0, eval_freq=1_000, eval_episodes=5, **params).learn(4_000)
    plain = DQN("CartPole-v1", seed=0, **params).learn(4_000)
    assert [h["return"] for h in plain.history_] == [h["return"] for h in evaluated.history_]
    assert evaluated.best_eval_return_ == max(e["mean_reward"] for e in evaluated.eval_history_)


def test_ppo_learns_cartpole_with_zoo_settings_in_6000_steps():
    params, _ = PPO.zoo_params("CartPole-v1")
    agent = PPO("CartPole-v1", seed=0, **params).learn(6_000)
    assert agent.evaluate(10)["mean_reward"] >= 100


def test_a2c_learns_cartpole_over_8_vector_copies():
    agent = A2C("CartPole-v1", n_envs=8, seed=0).learn(10_000)
    assert agent.evaluate(10)["mean_reward"] >= 150


def test_reinforce_with_baseline_learns_cartpole():
    agent = REINFORCE("CartPole-v1", lr=3e-3, episodes_per_update=2, seed=0).learn(10_000)
    assert agent.train_history_, "REINFORCE never updated"
    assert agent.evaluate(10)["mean_reward"] >= 150


# ---- the contract --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: DQN(learning_starts=50, seed=3),
        lambda: DQN(learning_starts=50, double=True, dueling=True, seed=3),
        lambda: REINFORCE(episodes_per_update=1, seed=3),
        lambda: A2C(n_envs=2, seed=3),
        lambda: PPO(n_envs=2, n_steps=32, batch_size=16, n_epochs=2, seed=3),
    ],
    ids=["dqn", "double-dueling-dqn", "reinforce", "a2c", "ppo"],
)
def test_same_seed_same_numbers_and_save_load_round_trip(make, tmp_path):
    import deepatlas

    a, b = make().learn(400), make().learn(400)
    assert a.history_ == b.history_ and a.train_history_ == b.train_history_
    assert all(np.isfinite(v) for rec in a.train_history_ for v in rec.values())
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    assert np.array_equal(a.predict(obs), b.predict(obs))

    a.save(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "rl" and config["params"]["env"] == "CartPole-v1"
    loaded = deepatlas.load(tmp_path / "run")
    assert type(loaded) is type(a)
    assert np.array_equal(loaded.predict(obs), a.predict(obs))
    assert type(a).load(tmp_path / "run").get_params() == a.get_params()


def test_predict_shapes_for_discrete_and_continuous_actions():
    dqn = DQN(learning_starts=10, seed=0).learn(50)
    assert dqn.predict(np.zeros(4)).shape == () and dqn.predict(np.zeros((5, 4))).shape == (5,)
    assert set(np.unique(dqn.predict(np.random.default_rng(0).normal(size=(50, 4))))) <= {0, 1}

    ppo = PPO("Pendulum-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0).learn(128)
    single, batch = ppo.predict(np.zeros(3)), ppo.predict(np.ones((6, 3)) * 50, deterministic=False)
    assert single.shape == (1,) and batch.shape == (6, 1)
    assert np.all(np.abs(batch) <= 2.0)  # clipped into Pendulum's action box [-2, 2]
    assert torch.isfinite(ppo.policy_.log_std).all()


def test_a2c_and_reinforce_take_continuous_actions():
    for agent in (A2C("Pendulum-v1", n_envs=2, seed=0), REINFORCE("Pendulum-v1", episodes_per_update=1, seed=0)):
        agent.learn(400)
        assert agent.predict(np.zeros(3)).shape == (1,)
        assert agent.train_history_


def test_exploration_rate_follows_the_linear_schedule():
    agent = DQN(exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1)
    agent.total_timesteps_ = 1000
    for steps, eps in ((0, 1.0), (250, 0.55), (500, 0.1), (900, 0.1)):
        agent.num_timesteps_ = steps
        assert agent.exploration_rate() == pytest.approx(eps)


def test_gae_matches_a_hand_computed_example():
    from deepatlas.rl.buffers import RolloutBuffer

    buf = RolloutBuffer(n_steps=3, n_envs=1, obs_dim=1, action_shape=(), action_dtype=np.int64)
    for r, d, v in ((1.0, 0.0, 0.5), (2.0, 1.0, 0.2), (3.0, 0.0, 0.1)):
        buf.add(np.zeros((1, 1)), np.zeros(1), np.array([r]), np.array([d]), np.array([v]), np.zeros(1))
    returns, adv = buf.returns_and_advantages(np.array([0.4]), gamma=0.9, lam=0.5)
    d2 = 3.0 + 0.9 * 0.4 - 0.1  # the last step bootstraps from V(s_3) = 0.4
    d1 = 2.0 - 0.2  # the episode ended after step 1: no bootstrap
    d0 = 1.0 + 0.9 * 0.2 - 0.5
    expected = [d0 + 0.45 * d1, d1, d2]
    assert adv[:, 0] == pytest.approx(expected)
    assert returns[:, 0] == pytest.approx(np.array(expected) + [0.5, 0.2, 0.1])


def test_registry_and_sklearn_clone():
    from sklearn.base import clone

    from deepatlas.registry import create_model, list_models

    assert {"dqn", "ppo", "a2c", "reinforce"} <= set(list_models())
    agent = create_model("ppo", "rl", env="Acrobot-v1", lr=1e-3)
    assert isinstance(agent, PPO) and clone(agent).get_params() == agent.get_params()


# ---- errors --------------------------------------------------------------------------------------
def test_unknown_environment_lists_close_matches():
    with pytest.raises(InputError) as err:
        DQN("CartPole-v2").learn(10)
    # the closest ids come first; how many more follow depends on what else registered environments
    assert str(err.value).startswith("Unknown Gymnasium environment 'CartPole-v2'. Did you mean 'CartPole-v1' or ")
    with pytest.raises(InputError) as err:
        DQN("NoSuchThing").learn(10)
    assert str(err.value) == "Unknown Gymnasium environment 'NoSuchThing'."


def test_unsupported_action_space():
    with pytest.raises(InputError) as err:
        DQN("Pendulum-v1").learn(10)
    assert str(err.value) == (
        "DQN supports Discrete action spaces; environment 'Pendulum-v1' has Box(-2.0, 2.0, (1,), float32). "
        "Use SAC, TD3, DDPG, PPO, A2C or REINFORCE for continuous actions."
    )


@pytest.mark.parametrize(
    "value, kind, message",
    [
        (0, InputError, "total_timesteps must be a positive int. Got 0 instead."),
        (-5, InputError, "total_timesteps must be a positive int. Got -5 instead."),
        ("100", InputTypeError, "total_timesteps must be a positive int. Got str '100' instead."),
    ],
)
def test_total_timesteps_must_be_positive(value, kind, message):
    with pytest.raises(kind) as err:
        PPO().learn(value)
    assert str(err.value) == message


def test_parameter_messages_and_unfitted_agent():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(
        InputError, match=r"^The 'lr' parameter of DQN must be a float in the range \(0, inf\)\. Got -1 instead\.$"
    ):
        DQN(lr=-1).learn(10)
    with pytest.raises(
        InputError,
        match=r"^The 'n_envs' parameter of REINFORCE must be an int in the range \[1, 1\]\. Got 2 instead\.$",
    ):
        REINFORCE(n_envs=2).learn(10)
    with pytest.raises(NotFittedError) as err:
        PPO().predict(np.zeros(4))
    assert str(err.value) == "This PPO instance is not fitted yet. Call 'fit' with appropriate arguments first."
    agent = DQN(learning_starts=10).learn(20)
    with pytest.raises(InputError) as err:
        agent.predict(np.zeros(5))
    assert (
        str(err.value) == "obs must have shape (4,) for one observation or (n, 4) for a batch. Got shape (5,) instead."
    )
    with pytest.raises(InputError, match=r"^No zoo preset for REINFORCE on 'CartPole-v1'; presets exist for: none\.$"):
        REINFORCE.zoo_params("CartPole-v1")


def test_fit_is_learn():
    a = REINFORCE(episodes_per_update=1, seed=3).fit(200)
    b = REINFORCE(episodes_per_update=1, seed=3).learn(200)
    assert a.history_ == b.history_ and a.train_history_ == b.train_history_


def test_every_agent_field_is_documented_where_it_is_declared():
    import ast
    import dataclasses
    import inspect

    from deepatlas.rl.base import Agent
    from deepatlas.rl.policy_gradient import OnPolicyAgent

    documented: dict[type, set] = {}
    for cls in (Agent, DQN, OnPolicyAgent, A2C, REINFORCE, PPO):
        body = ast.parse(inspect.getsource(cls)).body[0].body
        documented[cls] = {
            node.target.id
            for node, after in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        }
        declared = {n.target.id for n in body if isinstance(n, ast.AnnAssign) and "ClassVar" not in ast.unparse(n)}
        assert declared <= documented[cls], f"{cls.__name__}: {sorted(declared - documented[cls])} undocumented"
    for cls in (DQN, A2C, REINFORCE, PPO):
        for f in dataclasses.fields(cls):
            owner = next(k for k in cls.__mro__ if f.name in k.__dict__.get("__annotations__", {}))
            root = {"seed", "device", "threads", "verbose", "preprocess"}  # the Estimator root's, documented there
            assert f.name in documented.get(owner, root), (cls.__name__, f.name)


# ---- the command line ----------------------------------------------------------------------------
@pytest.fixture
def one_thread_cli(cli, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the subprocess's torch: one thread for tiny networks
    return cli


def test_cli_train_evaluate_record(one_thread_cli, tmp_path):
    import deepatlas

    cli = one_thread_cli

    run = tmp_path / "run"
    done = cli(
        "rl",
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--steps",
        "512",
        "--seed",
        "1",
        "--set",
        "n_envs=2",
        "--set",
        "n_steps=64",
        "--set",
        "eval_freq=256",  # keep the best of the evaluations at steps 256 and 512
        "--set",
        "eval_episodes=2",
        "--eval-episodes",
        "3",
        "--out",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    assert f"-> {run}" in done.stdout and "mean_reward" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_eval_episodes"] == 3 and len(metrics["eval_returns"]) == 3
    assert metrics["mean_reward"] == pytest.approx(np.mean(metrics["eval_returns"]))
    assert metrics["total_timesteps"] == 512
    assert [e["step"] for e in metrics["eval_history"]] == [256, 512]
    assert metrics["best_eval_return"] == max(e["mean_reward"] for e in metrics["eval_history"])
    assert (run / "plots" / "returns.png").stat().st_size > 1000
    assert json.loads((run / "history.json").read_text())[0].keys() == {"step", "return", "length"}
    agent = deepatlas.load(run)
    assert isinstance(agent, PPO) and agent.n_envs == 2 and agent.seed == 1
    assert agent.evaluate(3)["mean_reward"] == pytest.approx(metrics["mean_reward"])

    ev = cli("rl", "evaluate", str(run), "--episodes", "3")
    assert ev.returncode == 0, ev.stderr
    assert (
        ev.stdout.strip()
        == f"CartPole-v1: mean_reward {metrics['mean_reward']:.2f} ± {metrics['std_reward']:.2f} over 3 episodes"
    )

    gif = tmp_path / "play.gif"
    rec = cli("rl", "record", str(run), "--out", str(gif), "--every", "4")
    assert rec.returncode == 0, rec.stderr
    from PIL import Image

    with Image.open(gif) as img:
        assert img.format == "GIF" and img.n_frames > 2


def test_cli_errors_exit_2_with_one_line(one_thread_cli, tmp_path):
    cli = one_thread_cli
    bad_env = cli("rl", "train", "dqn", "--env", "CartPole-v2", "--steps", "10", "--out", str(tmp_path / "a"))
    assert bad_env.returncode == 2
    assert bad_env.stderr.startswith(
        "deepatlas rl: error: Unknown Gymnasium environment 'CartPole-v2'. Did you mean 'CartPole-v1' or "
    )
    assert bad_env.stderr.count("\n") == 1
    not_agent = cli("rl", "train", "mlp", "--steps", "10", "--out", str(tmp_path / "b"))
    assert not_agent.returncode == 2
    assert not_agent.stderr == (
        "deepatlas rl: error: Model 'mlp' is not a reinforcement-learning agent; agents: a2c, ddpg, dqn, ppo, reinforce, sac, td3.\n"
    )
    no_steps = cli("rl", "train", "dqn", "--steps", "0", "--out", str(tmp_path / "c"))
    assert (
        no_steps.returncode == 2
        and no_steps.stderr == "deepatlas rl: error: --steps must be a positive int. Got 0 instead.\n"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


# ---- the game and the road (Box2D, highway-env: the rl-apps extra) ---------------------------------
@pytest.mark.slow  # 1,000,000 steps: 135-200 s of CPU on one thread (docs/results-rl-games.md)
@pytest.mark.parametrize("env_id", ["LunarLander-v3", "LunarLanderContinuous-v3"])
def test_ppo_with_its_default_preset_solves_lunar_lander(env_id):
    pytest.importorskip("Box2D", reason="LunarLander needs Box2D: pip install 'deepatlas[rl-apps]'")
    params, steps = PPO.zoo_params(env_id)  # what `deepatlas rl train ppo --env LunarLander-v3` starts from
    agent = PPO(env_id, seed=0, device="cpu", **params).learn(steps)
    assert agent.evaluate(100)["mean_reward"] >= 200  # "solved": 100 seeded episodes


@pytest.mark.slow  # importing highway-env and stepping it: seconds
@pytest.mark.parametrize("driver", [None, "dummy"])  # SDL_VIDEODRIVER=dummy: highway-env alone would draw nothing
def test_highway_episode_is_recorded_with_the_road_drawn(driver, monkeypatch, tmp_path):
    pytest.importorskip("highway_env", reason="highway-env is not installed: pip install 'deepatlas[rl-apps]'")
    if driver is None:
        monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    else:
        monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    from PIL import Image, ImageSequence

    agent = DQN("highway-fast-v0", seed=0, hidden_sizes=(16,), learning_starts=10, device="cpu").learn(20)
    result = agent.record(tmp_path / "drive.gif", every=1)
    with Image.open(tmp_path / "drive.gif") as gif:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    assert result["frames"] >= 2 and len(result["returns"]) == 1
    assert all(f.shape == (75, 300, 3) and f.std() > 5 for f in frames)  # lanes and cars, not a blank frame
