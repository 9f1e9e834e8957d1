"""``deepatlas sample RUN``: draw from a trained generative model (GAN, VAE, RBM, DBN, language model).

The model decides what a sample is and how it is written: it implements
``write_samples(out, *, n, prompt, label, temperature, seed) -> str`` and returns a one-line
summary (e.g. the file written, or the generated text itself).
"""

from __future__ import annotations

from deepatlas.commands._args import seed_arg
from deepatlas.errors import InputError


def cmd_sample(args) -> int:
    from deepatlas.saving import load

    if args.n is not None and args.n <= 0:
        raise InputError(f"-n must be a positive int. Got {args.n} instead.")
    if args.out:
        from deepatlas._io import check_writable

        check_writable(args.out, "--out")  # before the model is loaded and sampled
    model = load(args.run)
    if not hasattr(model, "write_samples"):
        raise InputError(f"Run {args.run!r} holds a {type(model).__name__}, which cannot generate samples.")
    message = model.write_samples(
        args.out, n=args.n, prompt=args.prompt, label=args.label, temperature=args.temperature, seed=args.seed
    )
    if message:
        print(message)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate samples from a trained generative model or language model")
    p.add_argument("run", help="run directory")
    p.add_argument("-n", type=int, default=None, help="number of samples (default: the model's own, e.g. 64 images)")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="where to write them (e.g. grid.png); default: standard output for text, samples.png for images",
    )
    p.add_argument("--prompt", help="text to start from (language models)")
    p.add_argument("--label", help="class to condition on (conditional models)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (language models)")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_sample)
