"""Deep RL against Stable-Baselines3 with the rl-baselines3-zoo hyperparameters on both sides.

For each seed, our agent and SB3's are trained back to back in this process (one torch thread
each), timed on ``learn`` only, and scored on the same 20 seeded evaluation episodes (episode
``i`` reset with seed ``10_000 + seed + i``, greedy actions). A seed counts as solved when the
mean return is at least 475 (CartPole-v1's threshold).

    nice -n 10 .venv/bin/python benchmarks/bench_rl.py --algos dqn ppo --seeds 0 1 2 3 4
    nice -n 10 .venv/bin/python benchmarks/bench_rl.py --algos dqn --env Acrobot-v1 --seeds 0 --no-peer

Stable-Baselines3 is a benchmark-only dependency (``pip install stable-baselines3``); deepatlas
never imports it. Results are appended, one JSON line per run, to ``--log``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

SOLVED = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def evaluate_policy(predict, env_id: str, n_episodes: int, seed: int) -> float:
    """Mean return of ``predict(obs) -> action`` over ``n_episodes`` seeded episodes."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(predict(obs)))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


EVAL = {"freq": 0, "episodes": 10}  # --eval-freq: keep the best policy of periodic evaluations, both sides
THREADS = {"n": 1}  # --threads: both sides


def run_ours(algo: str, env_id: str, seed: int, steps: int | None):
    from deepatlas.registry import get_model_class

    cls = get_model_class(algo, "rl")
    params, n = cls.zoo_params(env_id)
    params = dict(params, threads=THREADS["n"])  # the same count as SB3's (ours sets its own for learn)
    agent = cls(env_id, seed=seed, device="cpu", eval_freq=EVAL["freq"], eval_episodes=EVAL["episodes"], **params)
    start, cpu = time.perf_counter(), time.process_time()
    agent.learn(steps or n)
    return time.perf_counter() - start, time.process_time() - cpu, lambda obs: agent.predict(obs)


def run_sb3(algo: str, env_id: str, seed: int, steps: int | None):
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    from deepatlas.registry import get_model_class

    params, n = get_model_class(algo, "rl").zoo_params(env_id)
    if algo == "dqn":
        model = sb3.DQN(
            "MlpPolicy",
            env_id,
            learning_rate=params["lr"],
            batch_size=params["batch_size"],
            buffer_size=params["buffer_size"],
            learning_starts=params["learning_starts"],
            gamma=params["gamma"],
            target_update_interval=params["target_update_interval"],
            train_freq=params["train_freq"],
            gradient_steps=params["gradient_steps"],
            exploration_fraction=params["exploration_fraction"],
            exploration_final_eps=params["exploration_final_eps"],
            policy_kwargs=dict(net_arch=list(params["hidden_sizes"])),
            seed=seed,
            device="cpu",
        )
    elif algo == "ppo":
        lr, clip = params["lr"], params["clip_range"]
        decay = params.get("linear_decay", False)
        model = sb3.PPO(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=params["n_envs"], seed=seed),
            n_steps=params["n_steps"],
            batch_size=params["batch_size"],
            gae_lambda=params["gae_lambda"],
            gamma=params["gamma"],
            n_epochs=params["n_epochs"],
            ent_coef=params["ent_coef"],
            learning_rate=(lambda p: lr * p) if decay else lr,
            clip_range=(lambda p: clip * p) if decay else clip,
            seed=seed,
            device="cpu",
        )
    else:
        raise SystemExit(f"no Stable-Baselines3 peer for {algo}")
    callback, best_dir = None, None
    if EVAL["freq"]:
        import tempfile

        from stable_baselines3.common.callbacks import EvalCallback

        best_dir = tempfile.mkdtemp(prefix="sb3-best-")
        eval_env = make_vec_env(env_id, n_envs=1, seed=20_000 + seed)
        n_envs = params.get("n_envs", 1) if algo == "ppo" else 1
        callback = EvalCallback(  # eval_freq counts calls, one per step of the vectorised env
            eval_env, n_eval_episodes=EVAL["episodes"], eval_freq=max(EVAL["freq"] // n_envs, 1),
            best_model_save_path=best_dir, deterministic=True, verbose=0,
        )  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(steps or n, callback=callback)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if best_dir is not None:
        from pathlib import Path

        if (Path(best_dir) / "best_model.zip").exists():
            model = type(model).load(Path(best_dir) / "best_model.zip", device="cpu")
    return seconds, cpu_seconds, lambda obs: model.predict(obs, deterministic=True)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=["dqn", "ppo"])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, help="override the zoo budget (quick checks only)")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--no-peer", action="store_true", help="skip Stable-Baselines3")
    ap.add_argument("--peer-seeds", nargs="+", type=int, help="run Stable-Baselines3 on these seeds only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", default="bench_rl.jsonl", help="append one JSON line per run here")
    ap.add_argument(
        "--eval-freq", type=int, default=0,
        help="both sides evaluate the greedy policy every N steps on 10 separately seeded episodes and keep the best",
    )  # fmt: skip
    args = ap.parse_args()
    EVAL["freq"] = args.eval_freq
    torch.set_num_threads(args.threads)
    THREADS["n"] = args.threads
    threshold = SOLVED.get(args.env, float("inf"))
    runners = [("deepatlas", run_ours)] + ([] if args.no_peer else [("sb3", run_sb3)])
    results: dict[tuple[str, str], list[dict]] = {}
    for algo in args.algos:
        for seed in args.seeds:
            for who, fn in runners:  # back to back, so both see the same machine load
                if who == "sb3" and args.peer_seeds is not None and seed not in args.peer_seeds:
                    continue
                seconds, cpu_seconds, predict = fn(algo, args.env, seed, args.steps)
                score = evaluate_policy(predict, args.env, args.episodes, 10_000 + seed)
                rec = {
                    "algo": algo,
                    "env": args.env,
                    "who": who,
                    "seed": seed,
                    "steps": args.steps,
                    "eval_freq": args.eval_freq,
                    "seconds": round(seconds, 2),
                    "cpu_seconds": round(cpu_seconds, 2),
                    "mean_reward": score,
                    "solved": score >= threshold,
                }
                results.setdefault((algo, who), []).append(rec)
                print(json.dumps(rec), flush=True)
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
    print(f"\n{'algo':<5} {'who':<10} {'median wall s':>13} {'median cpu s':>12} {'solved':>7}  returns")
    for (algo, who), recs in results.items():
        wall = statistics.median(r["seconds"] for r in recs)
        cpu = statistics.median(r["cpu_seconds"] for r in recs)
        solved = sum(r["solved"] for r in recs)
        returns = " / ".join(f"{r['mean_reward']:.1f}" for r in recs)
        print(f"{algo:<5} {who:<10} {wall:>13.1f} {cpu:>12.1f} {solved:>4}/{len(recs)}  {returns}")
    for algo in args.algos:
        if (algo, "sb3") in results:
            peer = {r["seed"]: r for r in results[(algo, "sb3")]}
            ours = {r["seed"]: r for r in results[(algo, "deepatlas")] if r["seed"] in peer}
            for key in ("seconds", "cpu_seconds"):
                a = [ours[s][key] for s in peer]
                b = [peer[s][key] for s in peer]
                per_seed = " ".join(f"{x / y:.2f}" for x, y in zip(a, b))
                ratio = statistics.median(a) / statistics.median(b)
                print(f"{algo}: {key} ratio ours / SB3 = {ratio:.2f} (medians over paired seeds; per seed {per_seed})")


if __name__ == "__main__":
    main()
