"""Continuous control, driving and a game against Stable-Baselines3, on the same settings.

For each seed, our agent and SB3's are trained back to back in this process (so both see the
same machine load; ``--threads N`` gives both N torch threads, else each runs at its own default: one
thread for ours, torch's one per core for SB3), with the same hyperparameters (the rl-baselines3-zoo's
where our ``--preset zoo`` has them, else each side's defaults as documented below), the same
number of steps, timed on ``learn`` only, and scored on the same seeded evaluation episodes
(episode ``i`` reset with seed ``10_000 + seed + i``, deterministic actions). On highway-env the
driving measures are reported too: the collision rate (episodes that end in a crash) and the mean
speed (m/s, over every step).

    nice -n 10 .venv/bin/python benchmarks/bench_rl_sb3.py --algo sac --env Pendulum-v1 --seeds 0 1 2
    nice -n 10 .venv/bin/python benchmarks/bench_rl_sb3.py --algo td3 --env Pendulum-v1 --seeds 0 1 2
    nice -n 10 .venv/bin/python benchmarks/bench_rl_sb3.py --algo sac --env InvertedPendulum-v5 --steps 10000
    nice -n 10 .venv/bin/python benchmarks/bench_rl_sb3.py --algo dqn --env highway-fast-v0 --steps 2000 --episodes 10

Stable-Baselines3 comes from the ``bench`` extra, MuJoCo, highway-env and Box2D from ``rl-apps``.
Results are appended, one JSON line per run, to ``--log``; the table at the end gives each side's
median return and seed spread and the wall-time ratio ours / SB3 (medians over paired seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

SOLVED = {
    "Pendulum-v1": -200.0,
    "InvertedPendulum-v5": 950.0,
    "LunarLander-v3": 200.0,
    "LunarLanderContinuous-v3": 200.0,
    "CartPole-v1": 475.0,
}


def evaluate_policy(predict, env_id: str, n_episodes: int, seed: int) -> dict:
    """Mean return of ``predict(obs) -> action`` over ``n_episodes`` seeded episodes, and where the
    environment reports them (highway-env) the collision rate and the mean speed."""
    from deepatlas.rl.envs import make_env

    env = make_env(env_id)
    returns, crashes, speeds = [], [], []
    discrete = hasattr(env.action_space, "n")
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done, crashed = 0.0, False, False
        while not done:
            action = predict(obs)
            obs, r, term, trunc, info = env.step(int(action) if discrete else np.asarray(action))
            total += float(r)
            done = term or trunc
            crashed = crashed or bool(info.get("crashed", False))
            if "speed" in info:
                speeds.append(float(info["speed"]))
        returns.append(total)
        crashes.append(crashed)
    env.close()
    out = {"mean_reward": float(np.mean(returns)), "std_reward": float(np.std(returns))}
    if speeds:
        out.update(collision_rate=float(np.mean(crashes)), mean_speed=float(np.mean(speeds)))
    return out


PRESET = {"name": "zoo"}  # --preset
THREADS = {"n": None}  # --threads: None leaves each side at its default


def _params(algo: str, env_id: str, steps: int | None) -> tuple[dict, int]:
    from deepatlas.registry import get_model_class

    cls = get_model_class(algo, "rl")
    if PRESET["name"] == "zoo" and env_id in cls._zoo:
        params, n = cls.zoo_params(env_id)
    else:  # no preset: both sides on our defaults (which are SB3's, see each agent's docstring)
        params, n = {}, 20_000
    if THREADS["n"] is not None:  # our agents set their own count for learn (default: one thread)
        params = dict(params, threads=THREADS["n"])
    return params, steps or n


def run_ours(algo: str, env_id: str, seed: int, steps: int | None):
    from deepatlas.registry import get_model_class

    params, n = _params(algo, env_id, steps)
    agent = get_model_class(algo, "rl")(env_id, seed=seed, device="cpu", **params)
    start, cpu = time.perf_counter(), time.process_time()
    agent.learn(n)
    return time.perf_counter() - start, time.process_time() - cpu, lambda obs: agent.predict(obs)


def _sb3_model(algo: str, env_id: str, seed: int, params: dict, agent):
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    from deepatlas.rl.envs import make_env

    env = make_vec_env(lambda: make_env(env_id), n_envs=agent.n_envs, seed=seed)
    common = dict(
        learning_rate=agent.lr,
        gamma=agent.gamma,
        policy_kwargs=dict(net_arch=list(agent.hidden_sizes)),
        seed=seed,
        device="cpu",
    )
    if algo in ("sac", "td3", "ddpg"):
        common.update(
            buffer_size=agent.buffer_size,
            learning_starts=agent.learning_starts,
            batch_size=agent.batch_size,
            tau=agent.tau,
            train_freq=agent.train_freq,
            gradient_steps=agent.gradient_steps,
        )
        if algo == "sac":
            return sb3.SAC("MlpPolicy", env, ent_coef=agent.ent_coef, target_entropy=agent.target_entropy, **common)
        d = env.action_space.shape[0]
        noise = NormalActionNoise(np.zeros(d), agent.action_noise * np.ones(d)) if agent.action_noise else None
        if algo == "ddpg":
            return sb3.DDPG("MlpPolicy", env, action_noise=noise, **common)
        return sb3.TD3(
            "MlpPolicy",
            env,
            action_noise=noise,
            policy_delay=agent.policy_delay,
            target_policy_noise=agent.target_policy_noise,
            target_noise_clip=agent.target_noise_clip,
            **common,
        )
    if algo == "dqn":
        return sb3.DQN(
            "MlpPolicy",
            env,
            buffer_size=agent.buffer_size,
            learning_starts=agent.learning_starts,
            batch_size=agent.batch_size,
            tau=agent.tau,
            train_freq=agent.train_freq,
            gradient_steps=agent.gradient_steps,
            target_update_interval=agent.target_update_interval,
            exploration_fraction=agent.exploration_fraction,
            exploration_initial_eps=agent.exploration_initial_eps,
            exploration_final_eps=agent.exploration_final_eps,
            max_grad_norm=agent.max_grad_norm,
            **common,
        )
    if algo == "ppo":
        lr, clip = agent.lr, agent.clip_range
        common.update(learning_rate=(lambda p: lr * p) if agent.linear_decay else lr)
        return sb3.PPO(
            "MlpPolicy",
            env,
            n_steps=agent.n_steps,
            batch_size=agent.batch_size,
            n_epochs=agent.n_epochs,
            gae_lambda=agent.gae_lambda,
            clip_range=(lambda p: clip * p) if agent.linear_decay else clip,
            ent_coef=agent.ent_coef,
            vf_coef=agent.vf_coef,
            max_grad_norm=agent.max_grad_norm,
            **common,
        )
    raise SystemExit(f"no Stable-Baselines3 peer for {algo}")


def run_sb3(algo: str, env_id: str, seed: int, steps: int | None):
    from deepatlas.registry import get_model_class

    params, n = _params(algo, env_id, steps)
    agent = get_model_class(algo, "rl")(env_id, seed=seed, device="cpu", **params)  # the settings, read back
    model = _sb3_model(algo, env_id, seed, params, agent)
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(n)
    return time.perf_counter() - start, time.process_time() - cpu, lambda obs: model.predict(obs, deterministic=True)[0]


def summarise(results: dict) -> list[str]:
    lines = [f"{'algo':<5} {'env':<20} {'who':<10} {'median s':>9} {'median return':>14} {'spread':>16}  solved"]
    for (algo, env_id, who), recs in results.items():
        scores = [r["mean_reward"] for r in recs]
        solved = sum(r["mean_reward"] >= SOLVED.get(env_id, float("inf")) for r in recs)
        lines.append(
            f"{algo:<5} {env_id:<20} {who:<10} {statistics.median(r['seconds'] for r in recs):>9.1f} "
            f"{statistics.median(scores):>14.1f} {f'[{min(scores):.1f}, {max(scores):.1f}]':>16}  {solved}/{len(recs)}"
        )
    for (algo, env_id, who), recs in results.items():
        peer = {r["seed"]: r for r in results.get((algo, env_id, "sb3"), [])}
        if who != "deepatlas" or not peer:
            continue
        ours = {r["seed"]: r for r in recs if r["seed"] in peer}
        a = [ours[s]["seconds"] for s in ours]
        b = [peer[s]["seconds"] for s in ours]
        per_seed = " ".join(f"{x / y:.2f}" for x, y in zip(a, b))
        lines.append(
            f"{algo} {env_id}: wall-time ratio ours / SB3 = {statistics.median(a) / statistics.median(b):.2f} "
            f"(medians over paired seeds; per seed {per_seed})"
        )
    return lines


def _commit() -> str | None:
    """The checkout's commit (with ``+`` when it has uncommitted changes), for the JSON lines."""
    import subprocess
    from pathlib import Path

    git = ["git", "-C", str(Path(__file__).resolve().parent)]  # this checkout, wherever the script is run from
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algo", nargs="+", default=["sac", "td3"])
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="override the preset's budget (both sides)")
    ap.add_argument("--episodes", type=int, default=20)
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--no-peer", action="store_true", help="skip Stable-Baselines3")
    side.add_argument("--peer-only", action="store_true", help="run Stable-Baselines3's half only")
    ap.add_argument(
        "--preset", choices=("zoo", "none"), default="zoo",
        help="zoo: the rl-baselines3-zoo settings where our preset has them; none: our defaults on both sides",
    )  # fmt: skip
    ap.add_argument(
        "--threads", type=int,
        help="torch threads for both sides' training; default: each side's own (ours: one thread, its "
        "threads='auto'; SB3: torch's default, one per core). 1 gives the steadiest CPU ratios",
    )  # fmt: skip
    ap.add_argument("--log", default="bench_rl_sb3.jsonl", help="append one JSON line per run here")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        THREADS["n"] = args.threads
    PRESET["name"] = args.preset
    runners = ([] if args.peer_only else [("deepatlas", run_ours)]) + ([] if args.no_peer else [("sb3", run_sb3)])
    provenance = {"commit": _commit(), "threads": args.threads or f"defaults (SB3 {torch.get_num_threads()})"}
    results: dict[tuple, list[dict]] = {}
    for algo in args.algo:
        for seed in args.seeds:
            for who, fn in runners:  # interleaved: ours then SB3's on each seed
                seconds, cpu_seconds, predict = fn(algo, args.env, seed, args.steps)
                score = evaluate_policy(predict, args.env, args.episodes, 10_000 + seed)
                rec = {
                    "algo": algo,
                    "env": args.env,
                    "who": who,
                    "seed": seed,
                    "steps": args.steps,
                    "preset": args.preset,
                }
                rec.update(seconds=round(seconds, 2), cpu_seconds=round(cpu_seconds, 2), **score, **provenance)
                rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                results.setdefault((algo, args.env, who), []).append(rec)
                print(json.dumps(rec), flush=True)
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
    print("\n" + "\n".join(summarise(results)))


if __name__ == "__main__":
    main()
