"""torchvision's own model code beside the project's CPU torch, for the vision peers (issue #19).

Why this loader exists: the only torchvision wheel for torch 2.13.0 is 0.28.0 (its metadata pins
``torch==2.13.0``), and it is built against CUDA torch: its C++ operator library ``_C.so`` links
``libc10_cuda.so`` and ``libtorch_cuda.so``, which the CPU build ``2.13.0+cpu`` does not ship. The
library then fails to load, torchvision marks its C++ operators as absent, and ``import
torchvision`` stops at ``RuntimeError: operator torchvision::nms does not exist`` (its fake-tensor
registrations name ``torchvision::nms`` and ``torchvision::qnms`` unconditionally). PyTorch's CPU
wheel index, which would hold a CPU build, is not reachable from the development machine.

What it does, before ``import torchvision``: it defines the schemas of the two operators that
torchvision's Python code needs to import (``torchvision::nms`` and ``torchvision::qnms``) with
:class:`torch.library.Library`, registering only those not already defined (so a torchvision whose
``_C.so`` does load keeps its own kernels and this module changes nothing), gives ``nms`` a CPU
kernel written in plain torch/NumPy (greedy non-maximum suppression over one IoU matrix; ``qnms``,
NMS on quantised boxes, gets a schema only), and afterwards tells ``torchvision.extension`` that
its operators are there. Everything else is torchvision's own code: the SSDlite, FCOS and LR-ASPP
networks, their box coders, anchor generators, matchers, losses and post-processing. The one
difference is speed: the detectors' final NMS runs this Python fallback instead of torchvision's
C++ kernel (it selects the same boxes up to ties in score), so their inference latency carries a
little Python overhead; the other C++ operators (RoI align/pool, deformable convolution) stay
absent, and none of the models used here calls them.

The wheel is never installed into the project's virtual environment (packages there, torchmetrics
among them, probe ``import torchvision`` and would fail on it without this module). It is unpacked
into a folder of its own, by default ``~/.cache/deepatlas/torchvision-0.28.0`` (``--torchvision DIR``
or the ``DEEPATLAS_TORCHVISION`` environment variable choose another), with one command::

    pip install --no-deps --target ~/.cache/deepatlas/torchvision-0.28.0 torchvision==0.28.0

and this module puts that folder at the front of ``sys.path`` for the benchmark's process only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import torch

VERSION = "0.28.0"
DEFAULT_DIR = Path.home() / ".cache" / "deepatlas" / f"torchvision-{VERSION}"
_LIBRARY = None  # the torch.library.Library holding our definitions; kept alive for the process


def default_dir() -> Path:
    return Path(os.environ.get("DEEPATLAS_TORCHVISION") or DEFAULT_DIR)


def install_command(folder: Path) -> str:
    return f"pip install --no-deps --target {folder} torchvision=={VERSION}"


def nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: indices of the kept boxes ``[x0, y0, x1, y1]`` by decreasing score; a box is
    dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold`` (torchvision's
    rule)."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = dets[order].detach().to(torch.float64).cpu().numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    ix = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    with np.errstate(divide="ignore", invalid="ignore"):
        over = inter / (area[:, None] + area[None, :] - inter) > iou_threshold
    suppressed = np.zeros(len(b), bool)
    keep = []
    for i in range(len(b)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def _register_missing_ops() -> list[str]:
    """Define ``torchvision::nms`` (with :func:`nms_cpu` as its CPU kernel) and
    ``torchvision::qnms`` where they are not defined yet; returns the names registered."""
    global _LIBRARY
    missing = [name for name in ("nms", "qnms") if not hasattr(torch.ops.torchvision, name)]
    if not missing:
        return []
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for name in missing:
        _LIBRARY.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    if "nms" in missing:
        _LIBRARY.impl("nms", nms_cpu, "CPU")
    return missing


def load(folder: str | Path | None = None):
    """``torchvision`` ready for CPU use, or ``None`` after one printed line saying how to get it.

    An importable torchvision in the environment is used as it is when its C++ operators load;
    otherwise the wheel unpacked in ``folder`` (default :func:`default_dir`) is imported with the
    operators above."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    folder = Path(folder) if folder else default_dir()
    if (folder / "torchvision" / "__init__.py").is_file():
        sys.path.insert(0, str(folder))
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        print(
            f"torchvision peers skipped: torchvision {VERSION} is not unpacked in {folder}; "
            f"get it with: {install_command(folder)}",
            flush=True,
        )
        return None
    for lib in Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:  # a build that matches this torch registers its own operators here
            torch.ops.load_library(str(lib))
        except OSError:  # the CUDA-linked 0.28.0 beside a CPU torch
            pass
    registered = _register_missing_ops()
    import torchvision
    import torchvision.extension

    if registered:
        torchvision.extension._has_ops = lambda: True  # ops/boxes.py asks this before calling nms
    return torchvision


def describe(tv) -> str:
    """One line: which torchvision and whether its NMS is the Python fallback."""
    fallback = _LIBRARY is not None
    where = Path(tv.__file__).parent.parent
    return f"torchvision {tv.__version__} from {where}" + (
        " (C++ ops absent: nms is the Python fallback of benchmarks/_torchvision_cpu.py)" if fallback else ""
    )
