"""The battery of user mistakes (issue #29, point 5): each one ends in one line on stderr that
names what is wrong, exit status 2 and no traceback.

One row per mistake in ``CASES``; the test runs every row through ``deepatlas.cli.main`` in this
process (no subprocess: ~1 s per row saved). A row is

- ``id``: a short name (the pytest id);
- ``argv``: the command line, a tuple of strings in which ``{tmp}`` is this row's empty temporary
  folder and ``{run}`` a fresh copy of a small trained run (perceptron on blobs, trained once per
  module); or a function ``setup(ctx) -> argv`` that first damages files (``ctx.tmp``,
  ``ctx.run()``);
- ``exit``: the expected exit status (2 for a user mistake);
- ``words``: strings that must all appear in stderr;
- ``after``: optionally ``check(ctx)``, e.g. that nothing was half-written.

A new command or a new refusal adds rows here: append them to the table (in your own
``CASES += [...]`` block if you like), keeping the existing rows as they are.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from deepatlas.cli import main


@dataclass
class Ctx:
    """What a row's setup and check see: its temporary folder and the trained run to copy."""

    tmp: Path
    _trained: Path

    def run(self, name: str = "run") -> Path:
        """A fresh copy of the small trained run, at ``tmp/name`` (copied once per name)."""
        path = self.tmp / name
        if not path.exists():
            shutil.copytree(self._trained, path)
        return path


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...] | Callable[[Ctx], Sequence[str]]
    exit: int = 2
    words: tuple[str, ...] = ()
    after: Callable[[Ctx], None] | None = None


def _config(ctx: Ctx, edit: Callable[[dict], None]) -> Path:
    """A copy of the run whose config.json went through ``edit``."""
    run = ctx.run()
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    return run


def _predict(run: Path, ctx: Ctx) -> list[str]:
    """``predict RUN`` on two rows of the run's two features."""
    (ctx.tmp / "x.csv").write_text("a,b\n1,2\n")
    return ["predict", str(run), "--input", str(ctx.tmp / "x.csv")]


def _damaged(name: str, content: bytes | None) -> Callable[[Ctx], list[str]]:
    """Setup: ``predict`` on a copy of the run whose file ``name`` holds ``content`` (None: removed)."""

    def setup(ctx: Ctx) -> list[str]:
        path = ctx.run() / name
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
        return _predict(ctx.run(), ctx)

    return setup


CASES: list[Case] = [
    # --- run directories (issue #29 point 5, part A) ---
    Case("run-missing", ("predict", "{tmp}/nope", "--input", "{tmp}/x.csv"), 2, ("nope", "does not exist")),
    Case(
        "run-no-weights",
        _damaged("model.safetensors", None),
        2,
        ("model.safetensors",),
    ),
    Case(
        "config-not-json",
        _damaged("config.json", b"{not json"),
        2,
        ("config.json",),
    ),
    Case(
        "config-no-model-key",
        lambda ctx: _predict(_config(ctx, lambda c: c.pop("model")), ctx),
        2,
        ("config.json", "model"),
    ),
]


def _tensors(edit: Callable[[dict], None]) -> Callable[[Ctx], list[str]]:
    """Setup: ``predict`` on a copy of the run whose tensors went through ``edit``."""

    def setup(ctx: Ctx) -> list[str]:
        from safetensors.torch import load_file, save_file

        path = ctx.run() / "model.safetensors"
        tensors = load_file(str(path))
        edit(tensors)
        save_file(tensors, str(path))
        return _predict(ctx.run(), ctx)

    return setup


def _nan(tensors: dict) -> None:
    tensors["W"].view(-1)[0] = float("nan")


def _inf(tensors: dict) -> None:
    tensors["scale_"].view(-1)[-1] = float("inf")


def _nothing_at(*names: str) -> Callable[[Ctx], None]:
    """Check: none of ``names`` (relative to the row's temporary folder) was written."""

    def check(ctx: Ctx) -> None:
        for name in names:
            assert not (ctx.tmp / name).exists(), name

    return check


def _file(name: str) -> Callable[[Ctx], list[str]]:
    """Setup: a plain file ``tmp/name``; returns no argv (used inside other setups)."""

    def setup(ctx: Ctx) -> None:
        (ctx.tmp / name).write_text("not a folder\n")

    return setup


def _with(setup: Callable[[Ctx], object], *argv: str) -> Callable[[Ctx], list[str]]:
    """Setup: run ``setup(ctx)``, then ``argv`` with ``{tmp}`` and ``{run}`` filled in."""

    def both(ctx: Ctx) -> list[str]:
        setup(ctx)
        return [a.replace("{tmp}", str(ctx.tmp)).replace("{run}", str(ctx.run())) for a in argv]

    return both


def _x_csv(ctx: Ctx) -> None:
    (ctx.tmp / "x.csv").write_text("a,b\n1,2\n")


# --- damaged run directories: load() checks config.json against its schema and the tensors ---
CASES += [
    Case("config-not-utf8", _damaged("config.json", b'{"model": "\xe9"}'), 2, ("config.json", "not UTF-8")),
    Case("config-not-object", _damaged("config.json", b"[1, 2]"), 2, ("config.json", "expected a JSON object")),
    Case(
        "config-extra-key",
        lambda ctx: _predict(_config(ctx, lambda c: c.update(colour="blue")), ctx),
        2,
        ("config.json", "unexpected key", "'colour'"),
    ),
    Case(
        "config-no-params",
        lambda ctx: _predict(_config(ctx, lambda c: c.pop("params")), ctx),
        2,
        ("config.json", "missing key", "'params'"),
    ),
    Case(
        "config-params-not-object",
        lambda ctx: _predict(_config(ctx, lambda c: c.update(params=[1])), ctx),
        2,
        ("config.json", "'params'", "an object", "a list"),
    ),
    Case(
        "config-model-not-string",
        lambda ctx: _predict(_config(ctx, lambda c: c.update(model=3)), ctx),
        2,
        ("config.json", "'model'", "a string", "an integer"),
    ),
    Case(
        "config-unknown-model",
        lambda ctx: _predict(_config(ctx, lambda c: c.update(model="zzz")), ctx),
        2,
        ("config.json", "Unknown model 'zzz'"),
    ),
    Case(
        "config-unknown-param",
        lambda ctx: _predict(_config(ctx, lambda c: c["params"].update(bogus=1)), ctx),
        2,
        ("config.json", "unknown parameter", "'bogus'", "Perceptron"),
    ),
    Case(
        "config-param-out-of-range",
        lambda ctx: _predict(_config(ctx, lambda c: c["params"].update(lr="fast")), ctx),
        2,
        ("config.json", "The 'lr' parameter of Perceptron must be a float", "Got 'fast' instead"),
    ),
    Case(
        "config-fitted-missing-key",
        lambda ctx: _predict(_config(ctx, lambda c: c["fitted"].pop("classes_")), ctx),
        2,
        ("config.json", "'fitted' has no 'classes_'"),
    ),
    Case("weights-truncated", _damaged("model.safetensors", b"\x08\x00"), 2, ("model.safetensors", "cannot be read")),
    Case(
        "weights-missing-tensor",
        _tensors(lambda t: t.pop("W")),
        2,
        ("model.safetensors", "no tensor 'W'", "Perceptron needs"),
    ),
    Case("weights-nan", _tensors(_nan), 2, ("model.safetensors", "tensor 'W'", "non-finite", "nan")),
    Case("weights-inf", _tensors(_inf), 2, ("model.safetensors", "tensor 'scale_'", "non-finite", "inf")),
    Case(
        "evaluate-damaged-run",
        lambda ctx: ["evaluate", str(_config(ctx, lambda c: c.pop("fitted")))],
        2,
        ("config.json", "missing key", "'fitted'"),
    ),
]

# --- output paths: checked before any work starts, nothing half-written ---
CASES += [
    Case(
        "train-out-is-file",
        _with(_file("taken"), "train", "perceptron", "--data", "blobs", "--out", "{tmp}/taken"),
        2,
        ("--out", "taken", "is a file"),
    ),
    Case(
        "train-out-under-file",
        _with(_file("taken"), "train", "perceptron", "--data", "blobs", "--out", "{tmp}/taken/run"),
        2,
        ("--out", "cannot be written", "is a file"),
    ),
    Case(
        "train-out-unwritable",
        ("train", "perceptron", "--data", "blobs", "--out", "/proc/deepatlas-run"),
        2,
        ("--out", "/proc/deepatlas-run", "cannot be written"),
    ),
    Case(
        "predict-output-is-folder",
        _with(_x_csv, "predict", "{run}", "--input", "{tmp}/x.csv", "--output", "{tmp}"),
        2,
        ("--output", "is a directory", "expected a file name"),
    ),
    Case(
        "predict-output-under-file",
        _with(_x_csv, "predict", "{run}", "--input", "{tmp}/x.csv", "--output", "{tmp}/x.csv/p.csv"),
        2,
        ("--output", "cannot be written", "is a file"),
    ),
    Case(
        "predict-output-unwritable",
        _with(_x_csv, "predict", "{run}", "--input", "{tmp}/x.csv", "--output", "/proc/deepatlas.csv"),
        2,
        ("--output", "/proc/deepatlas.csv", "cannot be written"),
    ),
    Case(
        "export-out-is-folder",
        ("export", "{run}", "--out", "{tmp}"),
        2,
        ("--out", "is a directory"),
        _nothing_at("run/model.onnx", "run/model.onnx.json"),
    ),
    Case(
        "export-openvino-out-not-xml",
        ("export", "{run}", "--format", "openvino", "--out", "{tmp}/model"),
        2,
        ("--out", "NAME.xml", "found no suffix"),
        _nothing_at("model", "model.bin", "model.onnx", "run/model.onnx"),
    ),
    Case(
        "export-out-under-file",
        _with(_file("taken"), "export", "{run}", "--out", "{tmp}/taken/model.onnx"),
        2,
        ("--out", "cannot be written", "is a file"),
        _nothing_at("run/model.onnx"),
    ),
    Case(
        "sample-out-is-folder",
        ("sample", "{run}", "--out", "{tmp}"),
        2,
        ("--out", "is a directory"),
    ),
    Case(
        "sample-out-under-file",
        _with(_file("taken"), "sample", "{run}", "--out", "{tmp}/taken/grid.png"),
        2,
        ("--out", "cannot be written", "is a file"),
    ),
]


# --- seeds, devices, resource limits, torchrun, serve (issue #29 point 5, part B) ---
def _csv_long_field(ctx: Ctx) -> None:
    """A CSV whose second row holds a field of 200,000 characters (the reader's limit is 128 KiB)."""
    rows = ["a,b,y", '1,"' + "x" * 200_000 + '",0'] + [f"{i},{i},{i % 2}" for i in range(20)]
    (ctx.tmp / "long.csv").write_text("\n".join(rows) + "\n")


def _bomb_folder(ctx: Ctx) -> None:
    """An image folder (two classes of 8x8 PNGs) with one 20000x10000 PNG: 200 million pixels,
    over Pillow's decompression-bomb limit, in a 24 KB file."""
    from PIL import Image

    for c in "ab":
        (ctx.tmp / "images" / c).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (8, 8), 40 * i).save(ctx.tmp / "images" / c / f"{i}.png")
    Image.new("1", (20000, 10000)).save(ctx.tmp / "images" / "b" / "bomb.png")


_LISTENING: list = []


def _port_in_use(ctx: Ctx) -> list[str]:
    """Setup: a socket listening on a free loopback port (closed by ``_close_port``); serve there."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _LISTENING.append(sock)
    return ["serve", str(ctx.run()), "--port", str(sock.getsockname()[1])]


def _close_port(ctx: Ctx) -> None:
    while _LISTENING:
        _LISTENING.pop().close()


def _cuda_missing() -> bool:
    import torch

    return not torch.cuda.is_available()


_TRAIN = ("train", "perceptron", "--data", "blobs", "--out", "{tmp}/r")
_LIMIT = ("would take about", "GiB of memory", "over the limit of 4 GiB", "DEEPATLAS_MAX_DATA_BYTES")
CASES += [
    Case("seed-2**32", (*_TRAIN, "--seed", "4294967296"), 2, ("--seed", "[0, 4294967295]", "4294967296")),
    Case("seed-negative", (*_TRAIN, "--seed", "-1"), 2, ("--seed", "[0, 4294967295]")),
    Case(
        "set-seed-2**32",
        (*_TRAIN, "--set", "seed=4294967296"),
        2,
        ("'seed' parameter of Perceptron", "[0, 4294967295]"),
        _nothing_at("r"),
    ),
    Case(
        "dataset-seed-2**32",
        ("train", "mlp", "--data", "adding:seed=4294967296", "--out", "{tmp}/r"),
        2,
        ("Dataset option 'seed' of 'adding'", "[0, 4294967295]"),
    ),
    Case("evaluate-seed-2**32", ("evaluate", "{run}", "--seed", str(2**40)), 2, ("--seed", "[0, 4294967295]")),
    *(
        [
            Case(
                "device-cuda-missing",
                ("train", "mlp", "--data", "blobs", "--out", "{tmp}/r", "--set", "device='cuda'"),
                2,
                ("'device' parameter of MLPClassifier", "'cuda'", "device='cpu'"),
                _nothing_at("r"),
            )
        ]
        if _cuda_missing()
        else []
    ),
    Case(
        "adding-T=1e8",
        ("train", "lstm", "--data", "adding:T=100000000", "--out", "{tmp}/r"),
        2,
        ("adding:T=100000000", *_LIMIT),
    ),
    Case(
        "xor-n=1e10",
        ("train", "mlp", "--data", "xor:n=10000000000", "--out", "{tmp}/r"),
        2,
        ("xor:n=10000000000", *_LIMIT),
    ),
    Case(
        "bouncing-balls-size",
        ("train", "rtrbm", "--data", "bouncing-balls:size=10000", "--out", "{tmp}/r"),
        2,
        ("bouncing-balls:", "size=10000", *_LIMIT),
    ),
    Case("copy-T=1e8", ("train", "lstm", "--data", "copy:T=100000000", "--out", "{tmp}/r"), 2, ("copy:", *_LIMIT)),
    Case(
        "ratings-1e6x1e5",
        ("train", "rbm-cf", "--data", "ratings:n_users=1000000,n_items=100000", "--out", "{tmp}/r"),
        2,
        ("ratings:n_users=1000000,n_items=100000", *_LIMIT),
    ),
    Case(
        "image-bomb",
        _with(_bomb_folder, "train", "mlp", "--data", "{tmp}/images", "--out", "{tmp}/r"),
        2,
        ("images", "too large", "decompression bomb", "MAX_IMAGE_PIXELS"),
    ),
    Case(
        "csv-field-over-128KiB",
        _with(_csv_long_field, "train", "mlp", "--data", "{tmp}/long.csv", "--out", "{tmp}/r"),
        2,
        ("long.csv", "row 2", "131072 characters"),
    ),
    Case(
        "nproc-not-data-parallel",
        ("train", "rbm", "--data", "digits", "--nproc", "2", "--out", "{tmp}/r"),
        2,
        ("RBM does not train data-parallel", "--nproc"),
        _nothing_at("r"),
    ),
    Case("serve-port-in-use", _port_in_use, 2, ("cannot listen on 127.0.0.1:", "in use", "--port"), _close_port),
]


# --- a perceptron's plain tensors are shape-checked on load; rl train and transfer refuse like train --
def _user_folder(ctx: Ctx) -> None:
    (ctx.tmp / "mine").mkdir()
    (ctx.tmp / "mine" / "notes.txt").write_text("mine\n")


def _user_folder_untouched(ctx: Ctx) -> None:
    assert [p.name for p in (ctx.tmp / "mine").iterdir()] == ["notes.txt"]
    assert (ctx.tmp / "mine" / "notes.txt").read_text() == "mine\n"


CASES += [
    Case(
        "weights-misshaped-plain-tensor",
        _tensors(lambda t: t.update(W=t["W"][:, :-1].contiguous())),
        2,
        ("model.safetensors", "tensor 'W'", "has shape", "Perceptron"),
    ),
    Case(
        "weights-misshaped-statistics",
        _tensors(lambda t: t.update(mean_=t["mean_"][:1].contiguous())),
        2,
        ("model.safetensors", "tensor 'mean_'", "has shape [1]", "needs [2]"),
    ),
    Case("rl-resume-finished-run", ("rl", "train", "dqn", "--out", "{run}", "--resume"), 2, ("finished run",)),
    Case(
        "rl-resume-nothing",
        ("rl", "train", "dqn", "--out", "{tmp}/none", "--resume"),
        2,
        ("--resume", "does not exist"),
        _nothing_at("none"),
    ),
    Case("rl-out-finished-run", ("rl", "train", "ppo", "--out", "{run}"), 2, ("already holds a finished run",)),
    Case(
        "transfer-out-finished-run",
        ("transfer", "--from", "{run}", "--data", "blobs", "--out", "{run}"),
        2,
        ("already holds a finished run", "--overwrite"),
    ),
    Case(
        "transfer-out-non-empty-folder",
        _with(_user_folder, "transfer", "--from", "{run}", "--data", "blobs", "--out", "{tmp}/mine"),
        2,
        ("non-empty folder", "--overwrite"),
        lambda ctx: _user_folder_untouched(ctx),
    ),
]


# --- a user's own files (issue #28): raw tables, label files, predict and evaluate inputs ---
def _messy_csv(ctx: Ctx) -> None:
    """30 rows: an ID, a numeric column with a gap, a text category, free text, a label."""
    rows = ["id,age,city,note,label"]
    for i in range(30):
        rows.append(f"{100 + i},{'' if i == 4 else 20 + i},{'abc'[i % 3]},text {i},{'yn'[i % 2]}")
    (ctx.tmp / "m.csv").write_text("\n".join(rows) + "\n")


def _idx_pair(ctx: Ctx) -> None:
    import struct

    for name, shape in (("imgs-idx3-ubyte", (12, 2, 2)), ("imgs-idx1-ubyte", (12,))):
        head = struct.pack(">BBBB", 0, 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
        (ctx.tmp / name).write_bytes(head + bytes(int(np.prod(shape))))


_OUT = ("--out", "{tmp}/r")


def _label_gap(ctx: Ctx) -> None:
    (ctx.tmp / "l.csv").write_text("a,label\n" + "1,x\n2,y\n" * 6 + "2,NA\n")


def _npy(ctx: Ctx) -> None:
    np.save(ctx.tmp / "X.npy", np.zeros((12, 2), np.float32))
    np.save(ctx.tmp / "y.npy", np.zeros(5, np.int64))


CASES += [
    Case(
        "csv-every-problem-column",
        _with(_messy_csv, "train", "mlp", "--data", "{tmp}/m.csv", "--impute", "none", "--categorical", "age", *_OUT),
        2,
        ("3 problems", "'age'", "--impute median", "--categorical city", "'note'", "--drop note"),
        _nothing_at("r"),
    ),
    Case(
        "csv-free-text-column",
        _with(_messy_csv, "train", "mlp", "--data", "{tmp}/m.csv", "--out", "{tmp}/r"),
        2,
        ("1 problem", "column 'note' holds text with a different value in every row", "--drop note"),
        _nothing_at("r"),
    ),
    Case(
        "csv-drop-unknown-column",
        _with(_messy_csv, "train", "mlp", "--data", "{tmp}/m.csv", "--drop", "note", "zip", "--out", "{tmp}/r"),
        2,
        ("--drop names 'zip', which is not a column",),
    ),
    Case(
        "csv-missing-label",
        _with(_label_gap, "train", "mlp", "--data", "{tmp}/l.csv", "--out", "{tmp}/r"),
        2,
        ("target column 'label' has 1 missing value(s) ('NA')", "row 14"),
    ),
    Case(
        "idx-not-mnist-named",
        _with(_idx_pair, "train", "mlp", "--data", "{tmp}/imgs-idx3-ubyte"),
        2,
        ("--labels FILE",),
    ),
    Case(
        "idx-labels-file-missing",
        _with(_idx_pair, "train", "mlp", "--data", "{tmp}/imgs-idx3-ubyte", "--labels", "{tmp}/none"),
        2,
        ("--labels file", "does not exist"),
    ),
    Case("npy-without-labels", _with(_npy, "train", "mlp", "--data", "{tmp}/X.npy"), 2, ("an .npy", "--labels FILE")),
    Case(
        "npy-labels-wrong-count",
        _with(_npy, "train", "mlp", "--data", "{tmp}/X.npy", "--labels", "{tmp}/y.npy"),
        2,
        ("has 5 labels", "12 samples"),
    ),
    Case("predict-id-on-npz", _with(_x_csv, "predict", "{run}", "--input", "{tmp}/x.csv", "--id", "a"), 2, ("--id",)),
    Case(
        "evaluate-split-of-a-file",
        _with(_x_csv, "evaluate", "{run}", "--data", "{tmp}/x.csv", "--split", "val"),
        2,
        ("--split applies to the run's own data", "scored whole"),
    ),
    Case("impute-unknown", ("train", "mlp", "--data", "blobs", "--impute", "zero"), 2, ("--impute", "invalid choice")),
]


# --- vision runs (issue #19): predict's image inputs, COCO folders, empty scene sets ---
@functools.cache
def _vision_run() -> Path:
    """A detector trained once for these rows (1 epoch on 40 scenes of 32x32), outside any row's folder."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="deepatlas-vision-")) / "det"
    argv = ["train", "detector", "--data", "scenes:n=40,size=32", "--set", "channels=(4,8,8)", "--epochs", "1"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    return out


def _vision_predict(make_input: Callable[[Path], str]) -> Callable[[Ctx], list[str]]:
    """Setup: ``predict`` of the detector run on what ``make_input(tmp)`` writes, into tmp/out."""

    def setup(ctx: Ctx) -> list[str]:
        return ["predict", str(_vision_run()), "--input", make_input(ctx.tmp), "--output", str(ctx.tmp / "out")]

    return setup


def _png(shape: tuple[int, ...]) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        from PIL import Image

        Image.fromarray(np.zeros(shape, np.uint8)).save(tmp / "img.png")
        return str(tmp / "img.png")

    return make


def _coco(edit: Callable[[dict], None]) -> Callable[[Ctx], list[str]]:
    """Setup: ``train detector`` on a 12-image COCO folder (one 4x4 box each) after ``edit``."""

    def setup(ctx: Ctx) -> list[str]:
        from PIL import Image

        folder = ctx.tmp / "coco"
        folder.mkdir()
        images, anns = [], []
        for i in range(12):
            Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / f"{i}.png")
            images.append({"id": i, "file_name": f"{i}.png", "width": 16, "height": 16})
            anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 4, 4]})
        doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
        edit(doc)
        (folder / "annotations.json").write_text(json.dumps(doc))
        return ["train", "detector", "--data", str(folder), "--epochs", "1", "--out", str(ctx.tmp / "r")]

    return setup


CASES += [
    Case(
        "vision-rgb-image",
        _vision_predict(_png((32, 32, 3))),
        2,
        ("is RGB (3 channels)", "grey images (1 channel)"),
        _nothing_at("out"),
    ),
    Case("vision-image-size", _vision_predict(_png((40, 32))), 2, ("is 32x40", "trained on 32x32"), _nothing_at("out")),
    Case(
        "vision-input-not-image",
        _vision_predict(lambda tmp: (tmp / "x.csv").write_text("a\n1\n") and str(tmp / "x.csv")),
        2,
        ("x.csv", "is not an image", ".png"),
        _nothing_at("out"),
    ),
    Case(
        "vision-input-folder-empty",
        _vision_predict(lambda tmp: (tmp / "none").mkdir() or str(tmp / "none")),
        2,
        ("--input folder", "holds no images"),
        _nothing_at("out"),
    ),
    Case(
        "coco-box-outside-image",
        _coco(lambda d: d["annotations"][3].update(bbox=[10, 10, 8, 4])),
        2,
        ("annotations.json", "annotation 3", "bbox [10.0, 10.0, 8.0, 4.0] outside its image '3.png' (16x16)"),
        _nothing_at("r"),
    ),
    Case(
        "coco-unknown-category",
        _coco(lambda d: d["annotations"][0].update(category_id=5)),
        2,
        ("annotation 0 has category_id 5", "'categories' does not list"),
        _nothing_at("r"),
    ),
    Case(
        "coco-empty-scene-set",
        _coco(lambda d: d.update(images=[], annotations=[])),
        2,
        ("annotations.json", "lists no images"),
        _nothing_at("r"),
    ),
    Case(
        "scenes-empty",
        ("train", "detector", "--data", "scenes:n=0", "--out", "{tmp}/r"),
        2,
        ("'n' of 'scenes'", "Got 0"),
        _nothing_at("r"),
    ),
]


# ---- sequence-to-sequence and question answering (issue #22) -----------------------------------------
def _pairs(text: str):
    def setup(ctx: Ctx):
        (ctx.tmp / "pairs.tsv").write_text(text, encoding="utf-8")
        return ["train", "seq2seq", "--data", str(ctx.tmp / "pairs.tsv"), "--out", str(ctx.tmp / "r"), "--epochs", "1"]

    return setup


def _story_without_question(ctx: Ctx):
    run = ctx.tmp / "qa"
    assert (
        main(
            [
                "train",
                "memnet",
                "--data",
                "babi:task=1,n_train=60,n_test=20",
                "--epochs",
                "1",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    (ctx.tmp / "stories.csv").write_text(
        'story\n"1 Mary went to the kitchen.\n2 Where is Mary?"\n"1 John moved to the office."\n'
    )
    return ["predict", str(run), "--input", str(ctx.tmp / "stories.csv"), "--output", str(ctx.tmp / "p.csv")]


CASES += [
    Case(
        "pairs-missing-tab",
        _pairs("hello\thola\n" * 5 + "cat gato\n" + "dog\tperro\n" * 6),
        2,
        ("pairs.tsv", "line 6 has no tab", "'source<TAB>target'"),
        _nothing_at("r"),
    ),
    Case(
        "pairs-empty-side",
        _pairs("hello\thola\n" * 3 + "\tgato\n" + "dog\tperro\n" * 8),
        2,
        ("line 4 has an empty source",),
    ),
    Case(
        "pairs-line-too-long",
        _pairs("hello\thola\n" * 3 + "x" * 1200 + "\ty\n" + "dog\tperro\n" * 8),
        2,
        ("line 4 has 1202 characters", "over the limit of 1000"),
        _nothing_at("r"),
    ),
    Case(
        "story-without-question",
        _story_without_question,
        2,
        ("X[1]: the story has no question", "ending in '?'"),
        _nothing_at("p.csv"),
    ),
]


# ---- speech (issue #23): a folder of WAV files with transcripts.csv -----------------------------------
def _wav_folder(
    bad: str | None = None, rate: int = 16000, channels: int = 1, transcript: str = "12"
) -> Callable[[Ctx], list[str]]:
    """Setup: train a tiny speech-ctc on ten WAV files (one of them ``bad``: empty, zero-length, corrupt)."""

    def setup(ctx: Ctx) -> list[str]:
        sf = pytest.importorskip("soundfile")
        folder = ctx.tmp / "voices"
        folder.mkdir()
        rows = ["file,transcript"]
        for i in range(10):
            wave = (0.2 * np.sin(np.arange(rate // 2) * (0.05 + 0.01 * i))).astype(np.float32)
            sf.write(folder / f"u{i}.wav", np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
            rows.append(f"u{i}.wav,{transcript if i == 3 else '12'}")
        if bad == "empty":
            (folder / "u5.wav").write_bytes(b"")
        elif bad == "zero":
            sf.write(folder / "u5.wav", np.zeros(0, np.float32), rate)
        elif bad == "corrupt":
            (folder / "u5.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk" * 3)
        (folder / "transcripts.csv").write_text("\n".join(rows) + "\n")
        out = ["--out", str(ctx.tmp / "run"), "--quiet", "--epochs", "1"]
        tiny = ["--set", "hidden_size=4", "--set", "n_mels=8", "--set", "alphabet='0123456789'"]
        return ["train", "speech-ctc", "--data", str(folder), *out, *tiny]

    return setup


CASES += [
    Case("wav-zero-length", _wav_folder("zero"), 2, ("u5.wav", "holds no samples (zero length)")),
    Case("wav-empty-file", _wav_folder("empty"), 2, ("u5.wav", "is empty (0 bytes)")),
    Case("wav-corrupt", _wav_folder("corrupt"), 2, ("u5.wav", "cannot be read as audio")),
    Case("wav-transcript-outside-alphabet", _wav_folder(transcript="1a"), 2, ("'1a'", "not in the alphabet")),
    Case("wav-other-rate-resampled", _wav_folder(rate=8000), 0, ("resampled from 8000 Hz to 16000 Hz",)),
    Case("wav-stereo-mixed-down", _wav_folder(channels=2), 0, ("2 channels mixed down to mono",)),
]


# ---- language models: CoNLL files, text columns, sentences (issue #21) ----------------------------------
def _conll(text: str | bytes, *extra: str):
    def setup(ctx: Ctx):
        f = ctx.tmp / "train.conll"
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["train", "ner", "--data", str(f), "--out", str(ctx.tmp / "r"), "--epochs", "1", *extra]

    return setup


def _reviews_with_a_blank(ctx: Ctx):
    rows = ["review,label"] + [f"text number {i},{'ab'[i % 2]}" for i in range(12)]
    rows[5] = ",a"
    (ctx.tmp / "rev.csv").write_text("\n".join(rows) + "\n")
    return [
        "train",
        "text-classifier",
        "--data",
        str(ctx.tmp / "rev.csv"),
        "--text",
        "review",
        "--out",
        str(ctx.tmp / "r"),
    ]


def _ner_predict_empty_line(ctx: Ctx):
    run = ctx.tmp / "ner"
    argv = ["train", "ner", "--data", "ner-synth:n=60", "--epochs", "1", "--out", str(run), "--quiet"]
    argv += ["--set", "hidden=4", "--set", "word_dim=4", "--set", "char_size=4", "--set", "char_dim=2"]
    assert main(argv) == 0
    (ctx.tmp / "in.txt").write_text("Anna moved to Paris .\n\nBob stayed .\n")
    return ["predict", str(run), "--input", str(ctx.tmp / "in.txt"), "--output", str(ctx.tmp / "out.csv")]


CASES += [
    Case(
        "conll-malformed-line",
        _conll("EU B-ORG\nrejects\n"),
        2,
        ("train.conll", "line 2 has 1 column", "token and its tag"),
        _nothing_at("r"),
    ),
    Case(
        "conll-i-without-b",
        _conll("EU O\nUnion I-ORG\n"),
        2,
        ("line 2: tag 'I-ORG' follows 'O'", "IOB2", "B-ORG"),
        _nothing_at("r"),
    ),
    Case("conll-bioes-unclosed", _conll("EU S-ORG\nbig B-ORG\nfirm O\n"), 2, ("BIOES", "E-ORG"), _nothing_at("r")),
    Case("conll-no-sentence", _conll("\n-DOCSTART- O\n\n"), 2, ("has no sentences",), _nothing_at("r")),
    Case(
        "conll-not-utf8", _conll(b"EU B-ORG\nM\xfcnchen B-LOC\n"), 2, ("is not UTF-8 text", "byte 10"), _nothing_at("r")
    ),
    Case(
        "val-without-conll",
        ("train", "ner", "--data", "ner-synth", "--val", "{tmp}/v.conll", "--out", "{tmp}/r"),
        2,
        ("--val and --test go with CoNLL files",),
        _nothing_at("r"),
    ),
    Case(
        "text-column-missing-values",
        _reviews_with_a_blank,
        2,
        ("text column 'review' is empty", "row 6"),
        _nothing_at("r"),
    ),
    Case("ner-predict-empty-sentence", _ner_predict_empty_line, 2, ("sentence 2 is empty",), _nothing_at("out.csv")),
]


# ---- recognition (issue #20): open-set splits and the identification gallery ---------------------------
@functools.cache
def _embedding_run() -> Path:
    """An embedding trained once for these rows (1 epoch on digits' first 7 identities)."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="deepatlas-recognition-")) / "emb"
    argv = ["train", "embedding", "--data", "digits:open_set=7", "--set", "channels=(4,)", "--epochs", "1"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    return out


def _identity_folder(ctx: Ctx) -> list[str]:
    """Setup: 4 identities of 8x8 images, the last with one image; open_set=2 tests on c and d."""
    from PIL import Image

    for name, n in (("a", 5), ("b", 5), ("c", 5), ("d", 1)):
        (ctx.tmp / "ids" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(ctx.tmp / "ids" / name / f"{i}.png")
    return ["train", "embedding", "--data", f"{ctx.tmp / 'ids'}:open_set=2", "--out", str(ctx.tmp / "r")]


def _gallery_wrong_size(ctx: Ctx) -> list[str]:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(ctx.tmp / "probe.png")
    (ctx.tmp / "gallery" / "ann").mkdir(parents=True)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(ctx.tmp / "gallery" / "ann" / "1.png")
    run = str(_embedding_run())
    return [
        "predict",
        run,
        "--input",
        str(ctx.tmp / "probe.png"),
        "--gallery",
        str(ctx.tmp / "gallery"),
        "--output",
        str(ctx.tmp / "out"),
    ]


CASES += [
    Case(
        "open-set-one-test-identity",
        ("train", "embedding", "--data", "digits:open_set=9", "--out", "{tmp}/r"),
        2,
        ("open_set=9 leaves 1 test identity of 10", "at least 2 are needed"),
        _nothing_at("r"),
    ),
    Case(
        "open-set-identity-with-one-image",
        _identity_folder,
        2,
        ("test identity 'd' has 1 image", "at least 2 images"),
        _nothing_at("r"),
    ),
    Case(
        "gallery-image-wrong-size",
        _gallery_wrong_size,
        2,
        ("--gallery image", "1.png", "is 10x10", "trained on 8x8"),
        _nothing_at("out"),
    ),
]


# --- continuous-control agents and the rl-apps environments (issue #24) ------------------------------
_HIDDEN_PLUGIN: dict = {}


def _without_highway_env(ctx: Ctx) -> list[str]:
    """rl train on highway-fast-v0 as if highway-env were not installed (``import highway_env`` fails)."""
    import gymnasium as gym

    _HIDDEN_PLUGIN["module"] = sys.modules.get("highway_env")
    _HIDDEN_PLUGIN["spec"] = gym.envs.registry.pop("highway-fast-v0", None)
    sys.modules["highway_env"] = None
    return ["rl", "train", "dqn", "--env", "highway-fast-v0", "--steps", "10", "--out", str(ctx.tmp / "r")]


def _restore_highway_env(ctx: Ctx) -> None:
    import gymnasium as gym

    if _HIDDEN_PLUGIN.get("module") is None:
        sys.modules.pop("highway_env", None)
    else:
        sys.modules["highway_env"] = _HIDDEN_PLUGIN["module"]
    if _HIDDEN_PLUGIN.get("spec") is not None:
        gym.envs.registry["highway-fast-v0"] = _HIDDEN_PLUGIN["spec"]
    assert not (ctx.tmp / "r").exists()


CASES += [
    Case(
        "rl-continuous-agent-discrete-env",
        ("rl", "train", "sac", "--env", "CartPole-v1", "--steps", "10", "--out", "{tmp}/r"),
        2,
        ("SAC supports 1-D Box (continuous) action spaces", "'CartPole-v1' has Discrete(2)", "Use DQN, PPO"),
        _nothing_at("r"),
    ),
    Case(
        "rl-discrete-agent-continuous-env",
        ("rl", "train", "dqn", "--env", "Pendulum-v1", "--steps", "10", "--out", "{tmp}/r"),
        2,
        ("DQN supports Discrete action spaces", "'Pendulum-v1' has Box(", "Use SAC, TD3, DDPG"),
        _nothing_at("r"),
    ),
    Case(
        "rl-env-extra-missing",
        _without_highway_env,
        2,
        ("Environment 'highway-fast-v0' needs highway-env: pip install 'deepatlas[rl-apps]'",),
        _restore_highway_env,
    ),
    Case(
        "rl-image-observations-mlp-policy",
        ("rl", "train", "td3", "--env", "CarRacing-v3", "--steps", "10", "--out", "{tmp}/r"),
        2,
        ("TD3 has an MLP policy for vector observations", "'CarRacing-v3' gives images", "(96, 96, 3)"),
        _nothing_at("r"),
    ),
    Case(
        "rl-preset-unknown-env",
        ("rl", "train", "sac", "--env", "CartPole-v1", "--preset", "zoo", "--steps", "10", "--out", "{tmp}/r"),
        2,
        ("No zoo preset for SAC on 'CartPole-v1'", "presets exist for:", "Pendulum-v1"),
        _nothing_at("r"),
    ),
]


def _run_main(argv: Sequence[str], capsys) -> tuple[int, str]:
    """``main(argv)`` in this process: its exit status and stderr (with any traceback in it)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        print(traceback.format_exc(), file=sys.stderr)
        code = 1
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    code = main(["train", "perceptron", "--data", "blobs", "--out", str(out), "--quiet", "--epochs", "3"])
    assert code == 0
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_error(case: Case, tmp_path, trained, capsys):
    ctx = Ctx(tmp_path, trained)
    if callable(case.argv):
        argv = list(case.argv(ctx))
    else:
        argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(ctx.run())) for a in case.argv]
    capsys.readouterr()
    code, err = _run_main(argv, capsys)
    assert "Traceback" not in err, err
    assert code == case.exit, err
    if case.exit == 2:
        assert len(err.strip().splitlines()) == 1, err
    for word in case.words:
        assert word in err, f"{word!r} not in {err!r}"
    if case.after is not None:
        case.after(ctx)
