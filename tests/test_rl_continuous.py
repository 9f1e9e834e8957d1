"""Continuous-control agents (SAC, TD3, DDPG): their updates on hand-made batches, the squashed
Gaussian, short runs, saving, checkpoints, export and bad input. The 20,000-step Pendulum targets
and the applications (MuJoCo, highway-env, LunarLander) are slow tests here and in
benchmarks/bench_rl_sb3.py."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium", reason="the RL agents need the [rl] extra")

from deepatlas.errors import InputError  # noqa: E402
from deepatlas.rl import DDPG, DQN, SAC, TD3  # noqa: E402
from deepatlas.rl.offpolicy import squashed_gaussian_log_prob  # noqa: E402

TARGET_ID = "deepatlas-test/Target-v0"


class Target(gym.Env):
    """A contextual bandit in 10-step episodes: observe x ~ U(-1, 1), act a in [-2, 2], reward
    -(a - 1.5 x)^2. A uniformly random policy scores about -20.8 per episode, the best 0."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        reward = -float((np.asarray(action, np.float32)[0] - 1.5 * self.x[0]) ** 2)
        self.x = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self.x.copy(), reward, False, False, {}


if TARGET_ID not in gym.envs.registry:
    gym.register(TARGET_ID, entry_point=Target, max_episode_steps=10)

SMALL = dict(hidden_sizes=(32, 32), learning_starts=100, batch_size=64, lr=3e-3, device="cpu")
AGENTS = [SAC, TD3, DDPG]


def _built(cls, **params):
    """An agent whose networks exist (a learn shorter than ``learning_starts``: no update yet)."""
    agent = cls(TARGET_ID, seed=0, **{**SMALL, **params})
    agent.learn(4)
    return agent


def _batch(agent, n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 1, generator=g) * 2 - 1
    actions = torch.rand(n, 1, generator=g) * 2 - 1
    rewards = torch.randn(n, generator=g)
    next_obs = torch.rand(n, 1, generator=g) * 2 - 1
    dones = (torch.rand(n, generator=g) < 0.2).float()
    return obs, actions, rewards, next_obs, dones


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


# ---- the squashed Gaussian --------------------------------------------------------------------------
def test_squashed_gaussian_density_matches_a_numerical_integral():
    mean, log_std = torch.tensor([0.3], dtype=torch.float64), torch.tensor([-0.2], dtype=torch.float64)
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
    density = squashed_gaussian_log_prob(torch.atanh(a)[:, None], mean, log_std).exp()
    assert torch.trapezoid(density, a).item() == pytest.approx(1.0, abs=1e-4)
    # P(a < 0.5) = P(u < atanh 0.5) under N(0.3, e^-0.4)
    below = a < 0.5
    cdf = 0.5 * (1 + math.erf((math.atanh(0.5) - 0.3) / (math.exp(-0.2) * math.sqrt(2))))
    assert torch.trapezoid(density[below], a[below]).item() == pytest.approx(cdf, abs=1e-4)
    # Far in the tail (tanh(u) rounds to 1 in float32) the log-probability stays finite.
    far = squashed_gaussian_log_prob(torch.tensor([[30.0]]), torch.tensor([0.0]), torch.tensor([0.0]))
    assert torch.isfinite(far).all()


def test_squashed_gaussian_sums_over_dimensions():
    u = torch.tensor([[0.2, -1.1]])
    mean, log_std = torch.tensor([0.0, 0.5]), torch.tensor([-0.3, 0.1])
    joint = squashed_gaussian_log_prob(u, mean, log_std)
    parts = sum(squashed_gaussian_log_prob(u[:, i : i + 1], mean[i : i + 1], log_std[i : i + 1]) for i in range(2))
    torch.testing.assert_close(joint, parts)


# ---- SAC's temperature -----------------------------------------------------------------------------
@pytest.mark.parametrize("target, direction", [(5.0, +1), (-5.0, -1)])
def test_sac_temperature_moves_toward_the_entropy_target(target, direction):
    # A 1-D squashed policy has entropy below log 2 < 5: alpha must grow to push the entropy up;
    # with a target of -5 the policy is more random than asked, so alpha shrinks. Adam's first
    # step moves log alpha by exactly lr against the sign of the gradient.
    agent = _built(SAC, target_entropy=target)
    before = agent.temperature_.log_alpha.item()
    agent.train_step(*_batch(agent))
    assert agent.temperature_.log_alpha.item() - before == pytest.approx(direction * agent.lr, rel=1e-3)


def test_sac_default_entropy_target_is_minus_the_action_dimension():
    assert _built(SAC).target_entropy_ == -1.0
    fixed = _built(SAC, ent_coef=0.2)
    before = fixed.temperature_().item()
    fixed.train_step(*_batch(fixed))
    assert fixed.temperature_().item() == pytest.approx(0.2) == before
    assert not fixed.temperature_.log_alpha.requires_grad


# ---- TD3: target smoothing and delayed updates -------------------------------------------------------
def test_td3_target_is_the_smoothed_minimum_of_twin_critics():
    agent = _built(TD3, target_policy_noise=100.0, target_noise_clip=0.3)
    obs, actions, rewards, next_obs, dones = _batch(agent)
    state = agent._gen.get_state()
    got = agent.target_q(rewards, next_obs, dones)
    agent._gen.set_state(state)
    noise = torch.randn((len(obs), 1), generator=agent._gen)  # the draw target_q made
    with torch.no_grad():
        # Noise of std 100 is clipped to exactly +-0.3, then the action to [-1, 1].
        smoothed = (agent.actor_target_(next_obs) + 0.3 * noise.sign()).clamp(-1, 1)
        q1 = agent.critic_target_.single(0, next_obs, smoothed)
        q2 = agent.critic_target_.single(1, next_obs, smoothed)
        want = rewards + agent.gamma * (1 - dones) * torch.minimum(q1, q2)
    torch.testing.assert_close(got, want)
    agent.set_params(target_policy_noise=0.0)
    with torch.no_grad():
        plain = agent.critic_target_(next_obs, agent.actor_target_(next_obs)).min(0).values
    torch.testing.assert_close(agent.target_q(rewards, next_obs, dones), rewards + agent.gamma * (1 - dones) * plain)


def test_td3_delays_the_actor_and_target_updates():
    agent = _built(TD3, policy_delay=2, tau=0.1)
    batch = _batch(agent)
    actor0, critic0 = _params(agent.actor_), _params(agent.critic_)
    actor_t0, critic_t0 = _params(agent.actor_target_), _params(agent.critic_target_)
    _, actor_loss = agent.train_step(*batch)  # update 1: the critics only
    assert actor_loss is None
    assert all(torch.equal(a, b) for a, b in zip(actor0, agent.actor_.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(critic0, agent.critic_.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(actor_t0, agent.actor_target_.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(critic_t0, agent.critic_target_.parameters()))
    _, actor_loss = agent.train_step(*batch)  # update 2: actor, then both targets by Polyak
    assert actor_loss is not None
    assert not any(torch.equal(a, b) for a, b in zip(actor0, agent.actor_.parameters()))
    for old, online, new in zip(actor_t0 + critic_t0, [*agent.actor_.parameters(), *agent.critic_.parameters()],
                                [*agent.actor_target_.parameters(), *agent.critic_target_.parameters()]):  # fmt: skip
        torch.testing.assert_close(new, old + 0.1 * (online.detach() - old))


def test_ddpg_is_td3_without_twin_critics_smoothing_or_delay():
    agent = _built(DDPG)
    assert agent.critic_.n == 1 and agent.policy_delay == 1 and agent.target_policy_noise == 0
    actor0 = _params(agent.actor_)
    _, actor_loss = agent.train_step(*_batch(agent))
    assert actor_loss is not None
    assert not any(torch.equal(a, b) for a, b in zip(actor0, agent.actor_.parameters()))


# ---- runs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.__name__)
def test_a_short_run_beats_a_random_policy(cls):
    # A random policy scores about -20.8 per episode on Target (see its docstring).
    agent = cls(TARGET_ID, seed=0, **SMALL).learn(1_500)
    assert agent.evaluate(20)["mean_reward"] > -3.0


@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.__name__)
def test_save_load_same_actions_and_same_seed_same_numbers(cls, tmp_path):
    a = cls(TARGET_ID, seed=3, **SMALL).learn(300)
    b = cls(TARGET_ID, seed=3, **SMALL).learn(300)
    obs = np.linspace(-1, 1, 7, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(a.predict(obs), b.predict(obs))
    a.save(tmp_path / "run")
    loaded = cls.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded.predict(obs), a.predict(obs))
    assert loaded.predict(obs).shape == (7, 1) and np.abs(loaded.predict(obs)).max() <= 2.0


@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.__name__)
def test_resume_from_a_checkpoint_ends_as_the_uninterrupted_run(cls, tmp_path):
    params = dict(SMALL, learning_starts=50)
    whole = cls("Pendulum-v1", seed=1, **params).learn(240)
    cls("Pendulum-v1", seed=1, **params).learn(120, checkpoint_dir=tmp_path)
    resumed = cls("Pendulum-v1", seed=1, **params).learn(240, checkpoint_dir=tmp_path, resume=True)
    for key, value in whole._fitted_state()[0].items():
        torch.testing.assert_close(resumed._fitted_state()[0][key], value, rtol=0, atol=0)
    assert resumed.history_ == whole.history_ and resumed.train_history_ == whole.train_history_


def test_actions_are_scaled_to_the_box():
    agent = _built(SAC)
    # The actor works in [-1, 1]; Target's box is [-2, 2].
    with torch.no_grad():
        normed = agent.actor_.deterministic(torch.tensor([[0.4]]))
    np.testing.assert_allclose(agent.predict(np.array([0.4], np.float32)), 2.0 * normed.numpy()[0], rtol=1e-6)


# ---- bad input -----------------------------------------------------------------------------------------
def test_continuous_agent_on_discrete_actions_and_the_reverse():
    with pytest.raises(InputError) as err:
        SAC("CartPole-v1").learn(10)
    assert str(err.value) == (
        "SAC supports 1-D Box (continuous) action spaces; environment 'CartPole-v1' has Discrete(2). "
        "Use DQN, PPO, A2C or REINFORCE for discrete actions."
    )
    with pytest.raises(InputError) as err:
        DQN("Pendulum-v1").learn(10)
    assert str(err.value).startswith("DQN supports Discrete action spaces; environment 'Pendulum-v1' has Box(")
    assert str(err.value).endswith("Use SAC, TD3, DDPG, PPO, A2C or REINFORCE for continuous actions.")


def test_image_observations_are_refused_by_the_mlp_policy():
    class Camera(Target):
        observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros((16, 16, 3), np.uint8), {}

    env = Camera()
    with pytest.raises(InputError) as err:
        TD3(env).learn(10)
    assert str(err.value) == (
        "TD3 has an MLP policy for vector observations; environment 'Camera' gives images "
        "Box(0, 255, (16, 16, 3), uint8). Use a vector observation (e.g. highway-env's Kinematics) or "
        "flatten it with a wrapper."
    )


def test_missing_extra_names_it(monkeypatch):
    from deepatlas._optional import MissingExtra

    monkeypatch.delitem(gym.envs.registry, "highway-fast-v0", raising=False)
    monkeypatch.setitem(sys.modules, "highway_env", None)  # `import highway_env` fails
    with pytest.raises(MissingExtra) as err:
        DQN("highway-fast-v0").learn(10)
    assert str(err.value) == "Environment 'highway-fast-v0' needs highway-env: pip install 'deepatlas[rl-apps]'"


def test_preset_for_an_unknown_environment():
    with pytest.raises(InputError) as err:
        SAC.zoo_params("CartPole-v1")
    assert str(err.value).startswith("No zoo preset for SAC on 'CartPole-v1'; presets exist for: ")
    assert "Pendulum-v1" in str(err.value)


def test_mujoco_presets_are_the_zoos():
    # The zoo's SAC MuJoCo entries set only the budget and learning_starts, so SB3's learning
    # rate (3e-4) applies, not our default 1e-3; its TD3 entries set 1e-3 and the rest.
    params, n = SAC.zoo_params("Hopper-v5")
    assert (params, n) == ({"learning_starts": 10_000, "lr": 3e-4}, 1_000_000)
    params, n = TD3.zoo_params("HalfCheetah-v5")
    assert n == 1_000_000 and params["lr"] == 1e-3 and params["hidden_sizes"] == (400, 300)
    assert (params["learning_starts"], params["action_noise"], params["batch_size"]) == (10_000, 0.1, 256)


def test_unbounded_action_box_is_refused():
    class Free(Target):
        action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    with pytest.raises(InputError, match=r"^TD3 needs a bounded action box \(its actor ends in tanh\)"):
        TD3(Free()).learn(10)


# ---- the targets (slow) ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cls", [SAC, TD3], ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", range(5))
def test_pendulum_is_solved_with_defaults_within_20000_steps(cls, seed):
    torch.set_num_threads(1)
    agent = cls("Pendulum-v1", seed=seed, device="cpu").learn(20_000)
    assert agent.evaluate(20)["mean_reward"] >= -200.0


# ---- the speed-ups keep the arithmetic ----------------------------------------------------------------
def test_stacked_critics_equal_separate_networks():
    from deepatlas.rl.networks import mlp
    from deepatlas.rl.offpolicy import Critics

    torch.manual_seed(0)
    critics = Critics(3, 2, (16, 8), "relu", 2)
    torch.manual_seed(0)  # the same draws build the same two nn.Linear stacks
    nets = [mlp(5, (16, 8), 1, "relu") for _ in range(2)]
    obs, actions = torch.randn(7, 3), torch.rand(7, 2) * 2 - 1
    want = torch.stack([net(torch.cat([obs, actions], 1)).squeeze(1) for net in nets])
    torch.testing.assert_close(critics(obs, actions), want)
    torch.testing.assert_close(critics.single(1, obs, actions), want[1])
    assert critics(obs, actions, frozen=True).requires_grad is False
    # a run saved with one nn.Linear stack per critic (before the stacking) loads into the same numbers
    old = {f"qs.{i}.{k}": v for i, net in enumerate(nets) for k, v in net.state_dict().items()}
    loaded = Critics(3, 2, (16, 8), "relu", 2)
    loaded.load_state_dict(old)
    torch.testing.assert_close(loaded(obs, actions), want)


def test_direct_adam_step_equals_optimizer_step_and_follows_a_loaded_state():
    from deepatlas.rl.networks import AdamStep, adam

    def run(direct: bool, n: int = 4, load_at: int = 2):
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        opt = adam(net.parameters(), torch.device("cpu"), lr=0.01)
        step = AdamStep(opt)
        x = torch.randn(16, 4)
        for i in range(n):
            if i == load_at:  # as a resumed checkpoint does: the state is replaced
                opt.load_state_dict(opt.state_dict())
            loss = net(x).pow(2).mean()
            if direct:
                step.zero_grad()
                loss.backward()
                step()
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return [p.detach() for p in net.parameters()], opt.state_dict()

    (p_direct, s_direct), (p_opt, s_opt) = run(True), run(False)
    for a, b in zip(p_direct, p_opt):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for k in s_opt["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(s_direct["state"][k][name], s_opt["state"][k][name], rtol=0, atol=0)


def test_polyak_moves_each_target_parameter_a_tau_share_toward_the_online_one():
    from deepatlas.rl.offpolicy import polyak

    torch.manual_seed(0)
    target, online = ([*torch.nn.Linear(3, 2).parameters()] for _ in range(2))
    before = [t.detach().clone() for t in target]
    polyak(target, online, 0.1)
    for t, b, o in zip(target, before, online, strict=True):
        torch.testing.assert_close(t.detach(), 0.9 * b + 0.1 * o.detach(), rtol=0, atol=1e-7)
        assert not torch.equal(t, b)
