"""Driving on highway-env against Stable-Baselines3, with the simulator's share of the time.

``bench_rl_sb3.py`` does the pairing (same settings read back into SB3, ours then SB3's on each
seed in one process, the same seeded evaluation episodes); this script adds what highway-env
needs to read those numbers: the CPU time spent inside the simulator (``reset`` and ``step`` of
highway-env's environment, timed with ``time.process_time`` around each call) is split off, so
each run reports its total CPU seconds, the simulator's, and the agent's (the rest: networks,
updates, replay, bookkeeping). One highway-fast-v0 step costs about 20 ms of CPU, far more than a
DQN update on 256 × 256 units, so the total ratio ours / SB3 is bound near 1 by the simulator that
both sides share; the agent-only ratio is what the agent code controls.

    nice -n 10 .venv/bin/python benchmarks/bench_rl_highway.py --algo dqn --seeds 0 1 2
    nice -n 10 .venv/bin/python benchmarks/bench_rl_highway.py --algo ppo --seeds 0 --no-peer --save runs/ppo-highway

Settings: ``--preset zoo`` (the default) is highway-env's own SB3 settings (its
``scripts/sb3_highway_dqn.py`` and ``sb3_highway_ppo.py``; the zoo has no highway entry), 20,000
steps. Results are appended, one JSON line per run, to ``--log``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rl_sb3 as pair  # noqa: E402  (the sibling script: settings, SB3 peers, evaluation)

SIM = {"cpu": 0.0, "calls": 0}


def time_simulator(env_id: str) -> None:
    """Wrap ``reset`` and ``step`` of the class that defines them for ``env_id`` (highway-env's
    AbstractEnv) so that their CPU time accumulates in ``SIM``."""
    from deepatlas.rl.envs import make_env

    env = make_env(env_id)
    cls = type(env.unwrapped)
    env.close()
    for name in ("reset", "step"):
        owner = next(c for c in cls.__mro__ if name in c.__dict__)
        original = owner.__dict__[name]

        def timed(self, *args, _original=original, **kwargs):
            start = time.process_time()
            try:
                return _original(self, *args, **kwargs)
            finally:
                SIM["cpu"] += time.process_time() - start
                SIM["calls"] += 1

        setattr(owner, name, timed)


def run_ours(algo: str, env_id: str, seed: int, steps: int | None, save: str | None):
    from deepatlas.registry import get_model_class

    params, n = pair._params(algo, env_id, steps)
    agent = get_model_class(algo, "rl")(env_id, seed=seed, device="cpu", **params)
    start, cpu = time.perf_counter(), time.process_time()
    agent.learn(n)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if save:
        agent.save(f"{save}-seed{seed}")
    return wall, cpu, lambda obs: agent.predict(obs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algo", nargs="+", default=["dqn"])
    ap.add_argument("--env", default="highway-fast-v0")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="override the preset's budget (both sides)")
    ap.add_argument("--episodes", type=int, default=50, help="seeded evaluation episodes per run")
    ap.add_argument("--no-peer", action="store_true", help="skip Stable-Baselines3")
    ap.add_argument("--preset", choices=("zoo", "none"), default="zoo")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", metavar="PREFIX", help="save our agent to PREFIX-seedS (for `deepatlas rl record`)")
    ap.add_argument("--log", default="bench_rl_highway.jsonl", help="append one JSON line per run here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pair.THREADS["n"] = args.threads  # our agent too (it sets its own count for learn)
    pair.PRESET["name"] = args.preset
    time_simulator(args.env)
    runners = [("deepatlas", lambda *a: run_ours(*a, args.save))]
    if not args.no_peer:
        runners.append(("sb3", pair.run_sb3))
    results: dict[tuple, dict[int, dict]] = {}
    for algo in args.algo:
        for seed in args.seeds:
            for who, fn in runners:  # interleaved: ours then SB3's on each seed
                SIM.update(cpu=0.0, calls=0)
                wall, cpu, predict = fn(algo, args.env, seed, args.steps)
                sim_cpu, sim_calls = SIM["cpu"], SIM["calls"]
                score = pair.evaluate_policy(predict, args.env, args.episodes, 10_000 + seed)
                rec = dict(algo=algo, env=args.env, who=who, seed=seed, steps=args.steps, preset=args.preset)
                rec.update(
                    seconds=round(wall, 2),
                    cpu_seconds=round(cpu, 2),
                    sim_cpu_seconds=round(sim_cpu, 2),
                    agent_cpu_seconds=round(cpu - sim_cpu, 2),
                    sim_calls=sim_calls,
                    **score,
                )
                results.setdefault((algo, who), {})[seed] = rec
                print(json.dumps(rec), flush=True)
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
    for algo in args.algo:
        ours, peer = results.get((algo, "deepatlas"), {}), results.get((algo, "sb3"), {})
        for seed in sorted(set(ours) & set(peer)):
            a, b = ours[seed], peer[seed]
            print(
                f"{algo} seed {seed}: return {a['mean_reward']:.2f} vs {b['mean_reward']:.2f}; ratios ours / SB3: "
                f"wall {a['seconds'] / b['seconds']:.2f}, CPU {a['cpu_seconds'] / b['cpu_seconds']:.2f}, "
                f"agent-only CPU {a['agent_cpu_seconds'] / b['agent_cpu_seconds']:.2f}"
            )
        if ours and peer:
            common = sorted(set(ours) & set(peer))
            med = {k: statistics.median(ours[s][k] / peer[s][k] for s in common) for k in ("seconds", "cpu_seconds")}
            print(
                f"{algo}: median ratios over {len(common)} seeds: wall {med['seconds']:.2f}, CPU {med['cpu_seconds']:.2f}"
            )


if __name__ == "__main__":
    main()
