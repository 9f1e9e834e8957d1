"""The applications of issue #24 on the ``rl-apps`` extra: MuJoCo, highway-env (driving measures),
LunarLander (Box2D), MP4 recording, and ONNX export of a squashed policy.

Where a package of the extra is missing the test is skipped with the reason, except under
``CI=true``: ``.ci/run`` installs ``.[all,dev]`` and ``all`` includes ``rl-apps``, so CI must run them."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium", reason="the RL agents need the [rl] extra")


def need(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        reason = f"{module} is not installed (pip install 'deepatlas[rl-apps]'; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)


@pytest.mark.slow  # importing highway-env / MuJoCo and stepping them: seconds each
def test_highway_evaluation_reports_the_driving_measures():
    need("highway_env")
    from deepatlas.rl import DQN

    agent = DQN("highway-fast-v0", seed=0, hidden_sizes=(16,), learning_starts=10, device="cpu").learn(20)
    result = agent.evaluate(2, seed=5)
    assert set(result) >= {"mean_reward", "collision_rate", "mean_speed"}
    assert 0.0 <= result["collision_rate"] <= 1.0 and 15.0 <= result["mean_speed"] <= 40.0
    assert agent.obs_shape_ == (5, 5)  # the kinematics observation, flattened by the MLP


@pytest.mark.slow  # importing highway-env / MuJoCo and stepping them: seconds each
def test_mujoco_task_trains_and_saves(tmp_path):
    need("mujoco")
    from deepatlas.rl import SAC

    agent = SAC("InvertedPendulum-v5", seed=0, hidden_sizes=(16,), learning_starts=50, batch_size=16, device="cpu")
    agent.learn(120)
    obs = np.zeros((3, 4), np.float32)
    assert agent.predict(obs).shape == (3, 1) and np.abs(agent.predict(obs)).max() <= 3.0
    agent.save(tmp_path / "run")
    np.testing.assert_array_equal(SAC.load(tmp_path / "run").predict(obs), agent.predict(obs))


def test_mujoco_without_the_engine_names_the_extra(monkeypatch):
    from deepatlas._optional import MissingExtra
    from deepatlas.rl.envs import make_env

    def fail(*args, **kwargs):
        raise gym.error.DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')

    monkeypatch.setattr(gym, "make", fail)
    with pytest.raises(MissingExtra) as err:
        make_env("Hopper-v5")
    assert str(err.value) == "Environment 'Hopper-v5' needs MuJoCo: pip install 'deepatlas[rl-apps]'"
    with pytest.raises(MissingExtra) as err:
        make_env("LunarLander-v3")
    assert str(err.value) == "Environment 'LunarLander-v3' needs Box2D: pip install 'deepatlas[rl-apps]'"


def test_lunar_lander_builds_for_dqn_and_continuous_for_sac():
    need("Box2D")
    from deepatlas.rl import DQN, SAC

    dqn = DQN("LunarLander-v3", seed=0, hidden_sizes=(8,), learning_starts=10, device="cpu").learn(30)
    assert dqn.action_kind_ == "discrete" and dqn.n_actions_ == 4
    sac = SAC("LunarLanderContinuous-v3", seed=0, hidden_sizes=(8,), learning_starts=10, batch_size=8, device="cpu")
    assert sac.learn(30).action_dim_ == 2


def test_record_writes_an_mp4(tmp_path):
    need("imageio_ffmpeg")
    from deepatlas.rl import TD3

    agent = TD3("Pendulum-v1", seed=0, hidden_sizes=(8,), learning_starts=10, batch_size=8, device="cpu").learn(20)
    out = tmp_path / "pendulum.mp4"
    result = agent.record(out, every=20)
    assert out.stat().st_size > 1000 and result["frames"] == 11
    iio = need("imageio.v3")
    assert iio.imread(out).shape[0] == 11  # every frame kept


def test_a_filmed_mujoco_runner_stays_in_the_picture(monkeypatch):
    """HalfCheetah's default view follows nothing; frames come through the model's tracking camera
    (and through EGL when there is no display), so the body is still in view 20 m further on."""
    need("mujoco")
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    from deepatlas.rl.envs import make_env

    def body_share(frame):  # the cheetah's brown: red > green > blue by a margin; the floor and sky are not
        r, g, b = (frame[..., i].astype(int) for i in range(3))
        return float(((r > g + 20) & (g > b + 20)).mean())

    def filmed(follow: bool):
        env = make_env("HalfCheetah-v5", render_mode="rgb_array")
        base = env.unwrapped
        if not follow:
            base.mujoco_renderer.camera_id = -1  # Gymnasium's own free view
        env.reset(seed=0)
        start = env.render()
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[0] += 20.0
        base.set_state(qpos, qvel)
        return body_share(start), body_share(env.render())

    at_start, far = filmed(follow=True)
    assert at_start > 0.01 and far > 0.5 * at_start, (at_start, far)
    free_start, free_far = filmed(follow=False)
    assert free_start > 0.005 and free_far < 0.1 * free_start, (free_start, free_far)  # what the default did


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_onnx_export_squashes_and_scales_in_the_graph(algo, tmp_path):
    need("onnxruntime")
    import onnxruntime as ort

    from deepatlas.export import TOLERANCE, export
    from deepatlas.export.protocol import inference_spec
    from deepatlas.registry import get_model_class
    from deepatlas.rl.offpolicy import ScaledPolicy

    agent = get_model_class(algo, "rl")("Pendulum-v1", seed=0, hidden_sizes=(8,), learning_starts=10, batch_size=8)
    agent.set_params(device="cpu").learn(20)
    assert isinstance(inference_spec(agent).module, ScaledPolicy)
    result = export(agent, tmp_path / "policy.onnx", exporter="torchscript")  # raises ParityError on a mismatch
    assert result.parity["reference"]["max_scaled_diff"] <= TOLERANCE
    # Far-out observations saturate tanh: the graph still returns torques inside [-2, 2], as predict does.
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 50
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    (graph,) = session.run(None, {"observation": obs})
    np.testing.assert_allclose(graph, agent.predict(obs), rtol=1e-5, atol=1e-5)
    assert graph.shape == (64, 1) and np.abs(graph).max() <= 2.0
