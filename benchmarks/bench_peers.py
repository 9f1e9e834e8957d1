"""deepatlas against the tools a user would pick instead, on the same network, data, optimiser,
batch, epochs and threads (issue #27, point 1):

- ``skorch``: ``NeuralNetClassifier`` around the identical ``nn.Module`` (the registry's
  ``mlp_stack`` / ``conv_stack`` network, written in plain torch and checked layer for layer),
  cross-entropy on its logits, torch's Adam;
- ``keras``: Keras 3 on its PyTorch backend (``KERAS_BACKEND=torch``) with the same layers
  (``Dense``/``Dropout``; ``Conv -> BatchNormalization -> ReLU -> MaxPooling(same) ->
  GlobalAveragePooling -> Dense``, batch-norm momentum and epsilon set to torch's), Adam with
  torch's epsilon 1e-8;
- ``lightning``: ``lightning.Trainer.fit`` with its defaults (logger, checkpoint, progress bar and
  model summary on, as a user keeps them) over a shuffled ``DataLoader``; ``lightning-bare``: the
  same with logger, checkpointing, progress bar and summary off;
- ``sklearn``: scikit-learn's ``MLPClassifier`` (MLP only; it has no dropout);
- ``deepatlas``: ``MLPClassifier`` / ``CNNClassifier`` with those settings, early stopping off and
  a constant learning rate (the CNN's default one-cycle schedule off, as the peers have none).

Every run is a fresh Python process per tool (``--worker``): it imports what its tool needs (timed),
then for each case fits once and fits a second model (``warm``: the fit alone). The first case's
import + first fit is the cold start, what ``python train.py`` costs. Runs alternate over the tools (A B C A B C ...) so that the
load of a shared machine falls on all alike; each figure is the median of ``--repeats`` runs. The
peers get inputs standardised beforehand (not timed); deepatlas standardises its own (timed).

    python benchmarks/bench_peers.py [--repeats 5] [--threads 1] [--only mlp] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

LR = 1e-3
PEERS = ("deepatlas", "sklearn", "skorch", "keras", "lightning", "lightning-bare")
# (model, data) -> settings. Sizes are cut so that the whole comparison fits on two shared cores;
# the MLP is the 100-unit network with the default dropout, the CNN two blocks of the
# registry's Conv-BatchNorm-ReLU-MaxPool (its default is three, of 32/64/128 channels).
CASES = {
    ("mlp", "digits"): {"hidden": (100,), "dropout": 0.3, "batch": 200, "epochs": 20, "rows": None},
    ("mlp", "fashion-mnist"): {"hidden": (100,), "dropout": 0.3, "batch": 200, "epochs": 3, "rows": 3000},
    ("mlp", "mnist1d"): {"hidden": (100,), "dropout": 0.3, "batch": 200, "epochs": 10, "rows": None},
    ("cnn", "digits"): {"channels": (16, 32), "dropout": 0.0, "batch": 100, "epochs": 3, "rows": None},
    ("cnn", "fashion-mnist"): {"channels": (16, 32), "dropout": 0.0, "batch": 100, "epochs": 2, "rows": 1000},
    ("cnn", "mnist1d"): {"channels": (16, 32), "dropout": 0.0, "batch": 100, "epochs": 2, "rows": None},
}


# ---- data (prepared once by the parent, read by the workers with numpy only) --------------------
def prepare(data: str, rows: int | None, path: str) -> None:
    """Training rows (train + validation split, the first ``rows`` of a seeded shuffle) and the test
    set: raw for deepatlas, standardised (training statistics) for the peers: per input value for
    the MLP (``Xs``), per channel for the CNN (``Xc``)."""
    from deepatlas.data import load_dataset

    ds = load_dataset(data)
    X = np.concatenate([ds.X_train, ds.X_val]) if ds.X_val is not None else ds.X_train
    y = np.concatenate([ds.y_train, ds.y_val]) if ds.y_val is not None else ds.y_train
    if rows is not None and rows < len(X):
        keep = np.random.default_rng(0).permutation(len(X))[:rows]
        X, y = X[keep], y[keep]
    Xt, yt = ds.X_test, ds.y_test
    flat = X.reshape(len(X), -1)
    mean, std = flat.mean(0), flat.std(0)
    std = np.where(std > 1e-8, std, 1.0)

    def scaled(A):
        return ((A.reshape(len(A), -1) - mean) / std).reshape(A.shape).astype(np.float32)

    # For the CNN, one mean and scale per channel (here one channel), as deepatlas's CNN standardises:
    # per-pixel statistics would undo the convolution's translation equivariance.
    mu, sd = float(X.mean()), float(X.std()) or 1.0
    np.savez(path, X=X.astype(np.float32), y=y.astype(np.int64), Xt=Xt.astype(np.float32), yt=yt.astype(np.int64),
             Xs=scaled(X), Xts=scaled(Xt), Xc=((X - mu) / sd).astype(np.float32),
             Xtc=((Xt - mu) / sd).astype(np.float32))  # fmt: skip


# ---- the contenders (each imports what it needs inside, so the worker times it) -----------------
def torch_module(model: str, shape: tuple, n_classes: int, cfg: dict):
    """The registry's network for these settings, written in plain torch as a skorch or Lightning
    user writes it (so their import cost holds no deepatlas); ``check_modules`` asserts it is
    the network deepatlas's ``mlp_stack`` / ``conv_stack`` build."""
    from torch import nn

    if model == "mlp":
        layers, width = [nn.Flatten()], int(np.prod(shape))
        for h in cfg["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(cfg["dropout"])] if cfg["dropout"] else [])
            width = h
        return nn.Sequential(*layers, nn.Linear(width, n_classes))
    two_d = len(shape) == 3
    conv, norm, pool, gpool = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
        if two_d
        else (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d)
    )
    layers = [] if len(shape) > 1 else [nn.Unflatten(1, (1, shape[0]))]
    c_in = shape[0] if len(shape) > 1 else 1
    for c in cfg["channels"]:
        layers += [conv(c_in, c, 3, padding=1), norm(c), nn.ReLU(), pool(2, ceil_mode=True)]
        c_in = c
    layers += [gpool(1), nn.Flatten()] + ([nn.Dropout(cfg["dropout"])] if cfg["dropout"] else [])
    return nn.Sequential(*layers, nn.Linear(c_in, n_classes))


def check_modules(model: str, shape: tuple, n_classes: int, cfg: dict) -> None:
    """The peers' network is deepatlas's, layer for layer."""
    if model == "mlp":
        from deepatlas.models.layers import mlp_stack

        ours = mlp_stack(int(np.prod(shape)), cfg["hidden"], n_classes, "relu", cfg["dropout"])
    else:
        from deepatlas.models.cnn import conv_stack

        ours = conv_stack(shape, cfg["channels"], 3, n_classes, cfg["dropout"])
    theirs = torch_module(model, shape, n_classes, cfg)
    assert str(ours) == str(theirs), f"the peers' {model} differs from deepatlas's:\n{ours}\n{theirs}"


def fit_deepatlas(model, d, cfg, seed):
    # scheduler=None: the peers' constant-rate Adam (the CNN's default is a one-cycle schedule)
    common = dict(epochs=cfg["epochs"], batch_size=cfg["batch"], lr=LR, early_stopping=False, device="cpu", seed=seed,
                  scheduler=None)  # fmt: skip
    if model == "mlp":
        from deepatlas.models.mlp import MLPClassifier

        est = MLPClassifier(hidden_sizes=cfg["hidden"], dropout=cfg["dropout"], **common)
    else:
        from deepatlas.models.cnn import CNNClassifier

        est = CNNClassifier(channels=cfg["channels"], dropout=cfg["dropout"], **common)
    est.fit(d["X"], d["y"])
    return lambda: float((est.predict(d["Xt"]) == d["yt"]).mean())


def fit_sklearn(model, d, cfg, seed):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    assert model == "mlp", "scikit-learn has no CNN"
    X = d["Xs"].reshape(len(d["Xs"]), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = SkMLP(hidden_layer_sizes=cfg["hidden"], solver="adam", learning_rate_init=LR, batch_size=cfg["batch"],
                    max_iter=cfg["epochs"], n_iter_no_change=cfg["epochs"], tol=0.0, alpha=0.0,
                    random_state=seed).fit(X, d["y"])  # fmt: skip
    return lambda: float(est.score(d["Xts"].reshape(len(d["Xts"]), -1), d["yt"]))


def fit_skorch(model, d, cfg, seed):
    import torch
    from skorch import NeuralNetClassifier

    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        torch_module(model, d["Xs"].shape[1:], int(d["y"].max()) + 1, cfg),
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=LR,
        max_epochs=cfg["epochs"],
        batch_size=cfg["batch"],
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    ).fit(d["Xs"], d["y"])
    return lambda: float((net.predict(d["Xts"]) == d["yt"]).mean())


def keras_model(model: str, shape: tuple, n_classes: int, cfg: dict):
    """The same layers in Keras (channels last, its default)."""
    import keras
    from keras import layers

    if model == "mlp":
        stack = [keras.Input((int(np.prod(shape)),))]
        for h in cfg["hidden"]:
            stack.append(layers.Dense(h, activation="relu"))
            if cfg["dropout"]:
                stack.append(layers.Dropout(cfg["dropout"]))
        return keras.Sequential([*stack, layers.Dense(n_classes)])
    two_d = len(shape) == 3
    conv, pool, gpool = (
        (layers.Conv2D, layers.MaxPooling2D, layers.GlobalAveragePooling2D)
        if two_d
        else (layers.Conv1D, layers.MaxPooling1D, layers.GlobalAveragePooling1D)
    )
    stack = [keras.Input((*shape[1:], shape[0]) if two_d else (shape[-1], 1))]
    for c in cfg["channels"]:
        stack += [conv(c, 3, padding="same"), layers.BatchNormalization(momentum=0.9, epsilon=1e-5), layers.ReLU(),
                  pool(2, padding="same")]  # fmt: skip
    stack.append(gpool())
    if cfg["dropout"]:
        stack.append(layers.Dropout(cfg["dropout"]))
    return keras.Sequential([*stack, layers.Dense(n_classes)])


def _keras_inputs(model, X):
    if model == "mlp":
        return X.reshape(len(X), -1)
    return np.moveaxis(X, 1, -1) if X.ndim == 4 else X[..., None]  # channels last


def fit_keras(model, d, cfg, seed):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    keras.utils.set_random_seed(seed)
    net = keras_model(model, d["Xs"].shape[1:], int(d["y"].max()) + 1, cfg)
    net.compile(
        optimizer=keras.optimizers.Adam(LR, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    net.fit(_keras_inputs(model, d["Xs"]), d["y"], batch_size=cfg["batch"], epochs=cfg["epochs"], shuffle=True,
            verbose=0)  # fmt: skip
    Xt = _keras_inputs(model, d["Xts"])
    return lambda: float((net.predict(Xt, batch_size=1024, verbose=0).argmax(1) == d["yt"]).mean())


def fit_lightning(model, d, cfg, seed, bare=False):
    import lightning as L
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    torch.manual_seed(seed)
    lit = Classifier(torch_module(model, d["Xs"].shape[1:], int(d["y"].max()) + 1, cfg))
    loader = DataLoader(TensorDataset(torch.from_numpy(d["Xs"]), torch.from_numpy(d["y"])), batch_size=cfg["batch"],
                        shuffle=True)  # fmt: skip
    off = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_epochs=cfg["epochs"], accelerator="cpu", devices=1, default_root_dir=root,
                            **(off if bare else {}))  # fmt: skip
        trainer.fit(lit, loader)

    def accuracy():
        lit.eval()
        with torch.no_grad():
            return float((lit.net(torch.from_numpy(d["Xts"])).argmax(1).numpy() == d["yt"]).mean())

    return accuracy


FITS = {
    "deepatlas": fit_deepatlas,
    "sklearn": fit_sklearn,
    "skorch": fit_skorch,
    "keras": fit_keras,
    "lightning": fit_lightning,
    "lightning-bare": lambda *a: fit_lightning(*a, bare=True),
}
IMPORTS = {  # what each tool's user imports before fitting (timed as the import cost)
    "deepatlas": "import deepatlas.models.mlp, deepatlas.models.cnn",
    "sklearn": "import sklearn.neural_network",
    "skorch": "import torch, skorch",
    "keras": "import keras",
    "lightning": "import torch, lightning",
    "lightning-bare": "import torch, lightning",
}


def worker(spec: dict) -> dict:
    """One fresh-process run of one tool over every case: import, then per case a first fit and a
    second (warm) fit with their test accuracy. The first case's first fit is the cold start."""
    threads = spec["threads"]
    os.environ["KERAS_BACKEND"] = "torch"
    t0 = time.perf_counter()
    exec(IMPORTS[spec["peer"]], {})  # noqa: S102  (a fixed table above)
    if spec["peer"] != "sklearn":
        import torch

        torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    out = {"import": time.perf_counter() - t0, "cases": {}}
    fit = FITS[spec["peer"]]
    for case in spec["cases"]:
        d = dict(np.load(case["data_path"]))
        if case["model"] == "cnn":  # the CNN's peers read per-channel standardised inputs
            d["Xs"], d["Xts"] = d["Xc"], d["Xtc"]
        t1 = time.perf_counter()
        fit(case["model"], d, case["cfg"], spec["seed"])
        t2 = time.perf_counter()
        acc = fit(case["model"], d, case["cfg"], spec["seed"])
        t3 = time.perf_counter()
        out["cases"][case["name"]] = {"first_fit": t2 - t1, "warm": t3 - t2, "acc": acc()}
    return out


def run_worker(spec: dict, timeout: float) -> dict | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]),
               OPENBLAS_NUM_THREADS=str(spec["threads"]), KERAS_BACKEND="torch", PYTHONWARNINGS="ignore")  # fmt: skip
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                             env=env, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        print(f"  {spec['peer']} timed out after {timeout:.0f} s", file=sys.stderr)
        return None
    if out.returncode != 0:
        print(f"  {spec['peer']} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="JSON", help="print the tables of a saved --json run and stop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("mlp", "cnn"), help="one model family")
    parser.add_argument("--data", nargs="*", default=None, help="datasets (default: digits fashion-mnist mnist1d)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", help="write every run's numbers here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        print(f"{saved['rounds']} rounds, {saved['threads']} thread(s)")
        report(saved["runs"], [{"name": k, "cfg": v} for k, v in saved["cases"].items()])
        return
    names = [(m, dn) for (m, dn) in CASES if (args.only in (None, m)) and (args.data is None or dn in args.data)]
    runs: dict[str, list[dict]] = {p: [] for p in args.peers}
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for model, data in names:
            cfg = CASES[(model, data)]
            path = os.path.join(tmp, f"{data}-{cfg['rows']}.npz")
            if not os.path.exists(path):
                prepare(data, cfg["rows"], path)
            with np.load(path) as arrays:
                check_modules(model, arrays["Xs"].shape[1:], int(arrays["y"].max()) + 1, cfg)
            cases.append({"name": f"{model}/{data}", "model": model, "cfg": cfg, "data_path": path})
        for r in range(args.repeats):
            for p in args.peers:  # interleaved: one fresh process of each tool per round
                mine = [c for c in cases if not (p == "sklearn" and c["model"] != "mlp")]
                spec = {"peer": p, "cases": mine, "threads": args.threads, "seed": r}
                res = run_worker(spec, args.timeout)
                if res is not None:
                    runs[p].append(res)
            print(f"round {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
            if args.json:  # after every round, so that a cut-short run keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({"threads": args.threads, "rounds": r + 1, "cases": CASES_JSON(names), "runs": runs}, f,
                              indent=1)  # fmt: skip
    report(runs, cases)


def CASES_JSON(names):  # noqa: N802
    return {f"{m}/{d}": CASES[(m, d)] for m, d in names}


def _table(title: str, columns: list[str], rows: dict[str, tuple], timed: int) -> None:
    """A markdown table of ``rows`` (tool -> values) with deepatlas's value of column ``timed`` as a
    fraction of each tool's in the last column."""
    print(f"\n### {title}\n")
    print("| tool | " + " | ".join(columns) + " | deepatlas / tool |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for p, vals in rows.items():
        ratio = f"{rows['deepatlas'][timed] / vals[timed]:.2f}" if "deepatlas" in rows else "-"
        print(f"| {p} | " + " | ".join(f"{v:.4f}" if c == "test acc" else f"{v:.2f}" for c, v in zip(columns, vals))
              + f" | {ratio} |")  # fmt: skip


def report(runs: dict[str, list[dict]], cases: list[dict]) -> None:
    """Markdown tables: the cold start (a fresh process's import and first fit of the first case),
    and per case the warm fit; deepatlas's time as a fraction of each tool's."""
    med = statistics.median
    done = {p: v for p, v in runs.items() if v}
    first = cases[0]["name"]
    cold = {
        p: (med(r["import"] for r in v), med(r["import"] + r["cases"][first]["first_fit"] for r in v))
        for p, v in done.items()
    }
    _table(f"Fresh process: import, and import + first fit of {first}", ["import s", "import + first fit s"], cold, 1)
    for case in cases:
        name = case["name"]
        rows = {
            p: (med(r["cases"][name]["warm"] for r in v), med(r["cases"][name]["acc"] for r in v))
            for p, v in done.items()
            if name in v[0]["cases"]
        }
        _table(f"{name}: {case['cfg']}", ["warm fit s", "test acc"], rows, 0)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
