"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 70,000 grey 28x28 pictures of clothing in ten
classes, a drop-in replacement for MNIST that is harder to score on (scikit-learn's best
classifier in the authors' benchmark table reaches about 0.897 test accuracy).

The files are the four gzipped IDX files of the original release, read from Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``) or from a folder the
user names with ``fashion-mnist:path=DIR``. Nothing is downloaded. The split is the standard
one, 60,000 training and 10,000 test images, with a seeded, stratified validation split taken
from the training part.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, register_dataset
from deepatlas.data.files import read_idx
from deepatlas.errors import InputError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the IDX files."""

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_dir(path: str | None = None) -> Path:
    """The folder holding the four IDX files: ``path`` when given, else Debian's; one line naming
    the package and the option when they are not there."""
    folder = Path(path) if path is not None else DEBIAN_DIR
    missing = [stem for pair in FILES.values() for stem in pair if _find(folder, stem) is None]
    if missing:
        if path is not None:
            raise InputError(
                f"Dataset 'fashion-mnist': folder {str(folder)!r} lacks {', '.join(missing)} (.gz or plain IDX files)."
            )
        raise InputError(
            f"Dataset 'fashion-mnist' needs its IDX files: install Debian's package 'dataset-fashion-mnist' "
            f"(apt-get install dataset-fashion-mnist, into {DEBIAN_DIR}) or pass fashion-mnist:path=DIR."
        )
    return folder


def available(path: str | None = None) -> bool:
    try:
        fashion_dir(path)
    except InputError:
        return False
    return True


@lru_cache(maxsize=2)
def fashion_arrays(path: str | None = None) -> dict[str, np.ndarray]:
    """``{"X_train", "y_train", "X_test", "y_test"}``: images as uint8 ``(n, 28, 28)``, labels int64."""
    folder = fashion_dir(path)
    out: dict[str, np.ndarray] = {}
    for part, (images, labels) in FILES.items():
        X = read_idx(_find(folder, images))
        y = read_idx(_find(folder, labels))
        if X.ndim != 3 or X.dtype != np.uint8 or len(X) != len(y):
            raise InputError(
                f"Dataset 'fashion-mnist': {images} in {str(folder)!r} must hold uint8 images (n, rows, cols) "
                f"matching its {len(y)} labels. Got {X.dtype} {X.shape} instead."
            )
        out[f"X_{part}"], out[f"y_{part}"] = X, y.astype(np.int64)
    return out


@register_dataset(
    "fashion-mnist",
    task="classification",
    description="Fashion-MNIST: 28x28 grey clothing images, 10 classes, standard 60,000/10,000 split "
    "(Debian's dataset-fashion-mnist, or path=DIR)",
)
def fashion_mnist(path: str | None = None, val: float = 0.1, seed: int = 0) -> Dataset:
    """``val`` (a fraction of the 60,000 training images, stratified, drawn with ``seed``) is the
    validation split; the 10,000 test images are the standard test set."""
    from sklearn.model_selection import train_test_split

    if path is not None and not isinstance(path, str):
        raise InputError(f"Dataset option 'path' of 'fashion-mnist' must be a folder. Got {path!r} instead.")
    if not isinstance(val, (int, float)) or isinstance(val, bool) or not 0 < val < 1:
        raise InputError(f"Dataset option 'val' of 'fashion-mnist' must be a fraction in (0, 1). Got {val!r} instead.")
    a = fashion_arrays(path)
    tr, va = train_test_split(np.arange(len(a["y_train"])), test_size=val, random_state=seed, stratify=a["y_train"])

    def images(X):
        return (X.astype(np.float32) / 255.0)[:, None]  # (n, 1, 28, 28) in [0, 1]

    return Dataset(
        "fashion-mnist",
        "classification",
        images(a["X_train"][tr]),
        a["y_train"][tr],
        images(a["X_train"][va]),
        a["y_train"][va],
        images(a["X_test"]),
        a["y_test"],
        description=f"Fashion-MNIST, standard split: {len(tr)} train / {len(va)} validation (seed {seed}) / "
        f"{len(a['y_test'])} test",
        meta={"image": True, "class_names": list(CLASSES)},
    )
