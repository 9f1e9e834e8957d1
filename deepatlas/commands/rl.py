"""``deepatlas rl train|evaluate|record``: train an agent on a Gymnasium environment, score it, film it.

    deepatlas rl train dqn --env CartPole-v1 --preset zoo --seed 1 --out runs/dqn-cartpole
    deepatlas rl evaluate runs/dqn-cartpole --episodes 20
    deepatlas rl record runs/dqn-cartpole --out cartpole.gif
    deepatlas rl train sac --env Pendulum-v1 --steps 20000 --out runs/sac-pendulum
    deepatlas rl record runs/sac-pendulum --out pendulum.mp4

A run directory has the layout of ``deepatlas train``'s: ``config.json`` and ``model.safetensors``
(``deepatlas.load(RUN)`` gives the agent back), ``history.json`` (one record per training
episode), ``updates.json`` (one per update), ``plots/returns.png`` and, written last,
``metrics.json`` with ``mean_reward`` over the evaluation episodes. While it trains,
``checkpoint.safetensors`` is replaced every ``--checkpoint-every`` steps (:mod:`deepatlas.rl.checkpoint`),
and ``--resume`` continues an interrupted run exactly; ``--out``, ``--overwrite`` and ``--resume``
refuse what ``deepatlas train`` refuses (:func:`deepatlas.runs.check_out_dir`), with ``--steps``
as the budget that may grow.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from deepatlas._optional import require
from deepatlas.commands._args import seed_arg
from deepatlas.errors import InputError

DEFAULT_STEPS = 50_000
CHECKPOINT_FREQ = 10_000  # deepatlas.rl.base.CHECKPOINT_FREQ (not imported: `--help` loads no torch)


def _positive(flag: str, value) -> None:
    if value is not None and value <= 0:
        raise InputError(f"{flag} must be a positive int. Got {value} instead.")


def _agent_class(name: str):
    from deepatlas.registry import get_entry, model_entries

    entry = get_entry(name)
    if "rl" not in entry.classes:
        agents = ", ".join(e.name for e in model_entries() if "rl" in e.classes) or "none"
        raise InputError(f"Model {name!r} is not a reinforcement-learning agent; agents: {agents}.")
    return entry.classes["rl"]


def plot_returns(history: list[dict], path, title: str, eval_mean: float | None = None):
    """Each training episode's return against the step it ended at, with a moving mean of 20."""
    import numpy as np

    from deepatlas.plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(6, 3.6))
    if history:
        steps = np.array([h["step"] for h in history])
        returns = np.array([h["return"] for h in history])
        ax.plot(steps, returns, ".", markersize=3, alpha=0.35, color="tab:blue", label="episode return")
        csum = np.concatenate([[0.0], np.cumsum(returns)])
        lo = np.maximum(np.arange(len(returns)) + 1 - 20, 0)  # a trailing window of up to 20 episodes
        smooth = (csum[1:] - csum[lo]) / (np.arange(len(returns)) + 1 - lo)
        ax.plot(steps, smooth, color="tab:blue", label="mean of the last 20 episodes")
    if eval_mean is not None:
        ax.axhline(eval_mean, linestyle="--", color="tab:green", label=f"evaluation {eval_mean:.1f}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def cmd_train(args) -> int:
    require("rl", "deepatlas rl")
    from sklearn.base import clone

    from deepatlas import __version__
    from deepatlas._io import check_writable, write_json
    from deepatlas.commands._args import params_from_set
    from deepatlas.registry import create_model
    from deepatlas.rl.envs import checkpoint_problem, env_id_of, make_env, make_vec_env
    from deepatlas.runs import check_out_dir, claim_run_dir, removed_if_it_fails, run_settings, starts_afresh
    from deepatlas.saving import save_model

    _positive("--steps", args.steps)
    _positive("--eval-episodes", args.eval_episodes)
    _positive("--checkpoint-every", args.checkpoint_every)
    if args.seed < 0:
        raise InputError(f"--seed must be a non-negative int. Got {args.seed} instead.")
    cls = _agent_class(args.algo)
    if args.resume and not args.out:
        raise InputError("--resume needs --out DIR: the run directory whose checkpoint to continue.")
    out = Path(args.out) if args.out else Path("runs") / f"{args.algo}-{args.env}-{time.strftime('%Y%m%d-%H%M%S')}"
    # The same refusals as `deepatlas train` (deepatlas.runs): never overwrite by accident.
    check_out_dir(out, resume=args.resume, overwrite=args.overwrite)
    check_writable(out, "--out", directory=True)
    make_env(args.env).close()  # an unknown id fails here, before anything is written
    params, steps = {}, DEFAULT_STEPS
    if args.preset is None and getattr(cls, "_zoo_by_default", False) and args.env in cls._zoo:
        args.preset = "zoo"  # the agent's own defaults are generic; the zoo tuned these per environment
        print(
            f"note: {args.algo} on {args.env} starts from the rl-baselines3-zoo settings (--preset none: the agent's defaults)",
            file=sys.stderr,
        )
    if args.preset == "zoo":
        params, steps = cls.zoo_params(args.env)
    params.update(params_from_set(args.set))
    if "env" in params:
        raise InputError("Choose the environment with --env ID, not --set env=...")
    params["seed"] = args.seed
    if args.steps is not None:
        steps = args.steps
    agent = create_model(args.algo, "rl", env=args.env, **params)
    agent._validate_params()  # every parameter checked before the run directory is claimed
    probe = make_vec_env(args.env, 1)
    try:  # an action or observation space the agent cannot take is refused before anything is written
        clone(agent)._read_spaces(probe)
    finally:
        probe.close()
    settings = run_settings(agent, "rl", args.env, args.seed, total_timesteps=steps)
    fresh = starts_afresh(out, resume=args.resume, overwrite=args.overwrite)
    note = claim_run_dir(out, settings, resume=args.resume, overwrite=args.overwrite, budget="--steps")
    if note:
        print(note, file=sys.stderr)
    checkpoints = out
    problem = checkpoint_problem(args.env, agent.n_envs)
    if problem:  # e.g. a physics engine's world: the run trains, but cannot be resumed
        checkpoints = None
        print(f"note: no checkpoints for {args.env!r}, whose state cannot be saved ({problem})", file=sys.stderr)
    if not args.quiet:
        agent.set_params(verbose=True)
    with removed_if_it_fails(out, fresh):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").unlink(missing_ok=True)
        write_json(out / "config.json", settings)  # for --resume to check; replaced when the run ends
        agent.learn(steps, checkpoint_dir=checkpoints, resume=args.resume, checkpoint_freq=args.checkpoint_every)
        agent.set_params(verbose=False)
        evaluation = agent.evaluate(args.eval_episodes)
        save_model(
            agent,
            out,
            extra_config={
                "env": env_id_of(agent.env),
                "data": env_id_of(agent.env),
                "data_task": "rl",
                "seed": args.seed,
                "total_timesteps": steps,
                "preset": args.preset,
                "package_version": __version__,
            },
        )
        write_json(out / "history.json", agent.history_)
        write_json(out / "updates.json", agent.train_history_)
    title = f"{type(agent).__name__} on {args.env} (seed {args.seed})"
    plot_returns(agent.history_, out / "plots" / "returns.png", title, evaluation["mean_reward"])
    last = [h["return"] for h in agent.history_[-20:]]
    metrics = {
        "mean_reward": evaluation["mean_reward"],
        "std_reward": evaluation["std_reward"],
        "n_eval_episodes": args.eval_episodes,
        "eval_returns": evaluation["episode_returns"],
        "train_episodes": len(agent.history_),
        "last_train_returns_mean": sum(last) / len(last) if last else None,
        "total_timesteps": agent.num_timesteps_,
        "fit_seconds": agent.fit_seconds_,
        **{k: evaluation[k] for k in ("collision_rate", "mean_speed") if k in evaluation},  # highway-env
    }
    if getattr(agent, "eval_history_", None):  # eval_freq > 0: the weights kept are the best evaluated
        metrics.update(
            best_eval_return=agent.best_eval_return_,
            best_eval_step=agent.best_eval_step_,
            eval_history=agent.eval_history_,
        )
    (out / "checkpoint.safetensors").unlink(missing_ok=True)
    write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    if args.quiet:
        print(out)
    else:
        print(
            f"{args.algo} on {args.env}: mean_reward {evaluation['mean_reward']:.1f} ± {evaluation['std_reward']:.1f} "
            f"over {args.eval_episodes} episodes after {agent.num_timesteps_} steps "
            f"(fit {agent.fit_seconds_:.1f} s) -> {out}"
        )
    return 0


def _load_agent(run: str):
    require("rl", "deepatlas rl")
    from deepatlas.rl.base import Agent
    from deepatlas.saving import load

    agent = load(run)
    if not isinstance(agent, Agent):
        raise InputError(f"Run {run!r} holds a {type(agent).__name__}, not a reinforcement-learning agent.")
    return agent


def cmd_evaluate(args) -> int:
    _positive("--episodes", args.episodes)
    agent = _load_agent(args.run)
    result = agent.evaluate(args.episodes, deterministic=not args.stochastic, seed=args.seed)
    driving = "".join(
        f", {label} {result[key]:.{digits}f}"
        for key, label, digits in (("collision_rate", "collision rate", 2), ("mean_speed", "mean speed", 1))
        if key in result
    )
    print(
        f"{agent.env}: mean_reward {result['mean_reward']:.2f} ± {result['std_reward']:.2f} "
        f"over {args.episodes} episodes{driving}"
    )
    return 0


def cmd_record(args) -> int:
    _positive("--episodes", args.episodes)
    _positive("--every", args.every)
    agent = _load_agent(args.run)
    out = Path(args.out) if args.out else Path(args.run) / "episode.gif"
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise InputError(f"--out must name a .gif or .mp4 file. Got {str(out)!r} instead.")
    result = agent.record(out, n_episodes=args.episodes, seed=args.seed, every=args.every)
    returns = ", ".join(f"{r:.1f}" for r in result["returns"])
    print(f"wrote {out} ({result['frames']} frames; episode return {returns})")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("rl", help="reinforcement learning on Gymnasium: train, evaluate, record")
    rl = p.add_subparsers(dest="rl_command", metavar="ACTION", parser_class=type(p))
    rl.required = True

    t = rl.add_parser("train", help="train an agent (dqn, reinforce, a2c, ppo, sac, td3, ddpg) into a run directory")
    t.add_argument(
        "algo", help="agent name: dqn, reinforce, a2c, ppo (discrete or continuous); sac, td3, ddpg (continuous)"
    )
    t.add_argument("--env", default="CartPole-v1", help="Gymnasium environment id (default CartPole-v1)")
    t.add_argument("--steps", type=int, help=f"environment steps (default: the preset's, else {DEFAULT_STEPS:,})")
    t.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    t.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="set any agent parameter (a Python/JSON literal); repeatable",
    )
    t.add_argument(
        "--preset",
        choices=("zoo", "none"),
        help="zoo: start from the rl-baselines3-zoo hyperparameters for --env (dqn's default where the zoo covers "
        "--env); none: the agent's own defaults",
    )
    t.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes after training (default 20)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<algo>-<env>-<time>)")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its checkpoint (same settings; --steps may grow)",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out: its old contents are first moved aside to DIR.old-<time>",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=CHECKPOINT_FREQ,
        metavar="STEPS",
        help=f"replace RUN/checkpoint.safetensors every STEPS environment steps and at the end (default {CHECKPOINT_FREQ:,})",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar; print only the run directory")
    t.set_defaults(func=cmd_train)

    e = rl.add_parser("evaluate", help="mean return of a trained agent over fresh episodes")
    e.add_argument("run", help="run directory")
    e.add_argument("--episodes", type=int, default=20, help="episodes (default 20)")
    e.add_argument(
        "--seed", type=seed_arg, default=None, help="seed of the first episode (default: agent seed + 10000)"
    )
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the greedy one")
    e.set_defaults(func=cmd_evaluate)

    r = rl.add_parser("record", help="write an animated GIF or an MP4 video of the trained agent playing")
    r.add_argument("run", help="run directory")
    r.add_argument(
        "--out", metavar="FILE", help="GIF or MP4 (imageio, the rl-apps extra) to write (default RUN/episode.gif)"
    )
    r.add_argument("--episodes", type=int, default=1, help="episodes to film (default 1)")
    r.add_argument("--every", type=int, default=2, help="keep every N-th frame (default 2)")
    r.add_argument("--seed", type=seed_arg, default=None, help="seed of the first episode")
    r.set_defaults(func=cmd_record)
