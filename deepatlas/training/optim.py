"""torch's optimisers without the ``torch._dynamo`` import on first use.

``torch.optim.Optimizer`` wraps ``add_param_group`` (called by every constructor), ``zero_grad``,
``state_dict`` and ``load_state_dict`` in ``torch._disable_dynamo``, and every ``step`` in
``_use_grad_for_differentiable``; both import ``torch._dynamo`` the first time they run. That
import pulls in the compiler stack (sympy, torch.fx's symbolic shapes, the dynamo variable
tracker): measured with ``python -X importtime`` it is ~1.2 s of a digits MLP's first fit on a
quiet 2-core machine (the second fit in the same process does not pay it), paid by every
``deepatlas train``, every atlas worker and every test process.

Outside ``torch.compile`` those wrappers do nothing but that: ``torch._dynamo.disable`` only
matters while a compiled frame is being traced, and ``_use_grad`` sets the grad mode around the
step and adds graph breaks, which are no-ops in eager mode. Nothing can be compiling while
``torch._dynamo`` has not been imported, so the classes here call the unwrapped functions in that
case (setting the grad mode as ``_use_grad`` does) and torch's own wrappers once it has been
imported (a user who compiles keeps torch's behaviour). They are subclasses: ``isinstance(opt,
torch.optim.Adam)`` holds, and their state dicts are torch's.
"""

from __future__ import annotations

import functools
import inspect
import sys

import torch
from torch.optim.optimizer import Optimizer, _use_grad_for_differentiable


def _dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def _eager_method(wrapped):
    """``Optimizer.<name>`` without its ``_disable_dynamo`` wrapper while dynamo is not loaded."""
    plain = wrapped.__wrapped__

    @functools.wraps(plain)
    def method(*args, **kwargs):
        return (wrapped if _dynamo_loaded() else plain)(*args, **kwargs)

    return method


def _eager_step(cls: type[Optimizer]):
    """``cls.step`` without ``_use_grad_for_differentiable`` (and its dynamo import) while dynamo
    is not loaded; the grad mode is set exactly as that wrapper sets it."""
    plain = inspect.unwrap(cls.step)  # under torch's profiling and grad-mode wrappers
    wrapped = _use_grad_for_differentiable(plain)

    @functools.wraps(plain)
    def step(self, *args, **kwargs):
        if _dynamo_loaded():
            return wrapped(self, *args, **kwargs)
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return plain(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return step


_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _eager_class(cls: type[Optimizer]) -> type[Optimizer]:
    namespace = {name: _eager_method(getattr(Optimizer, name)) for name in _METHODS}
    namespace["step"] = _eager_step(cls)
    namespace["__module__"] = __name__
    namespace["__doc__"] = f"``torch.optim.{cls.__name__}`` that imports ``torch._dynamo`` only when it is in use."
    return type(cls.__name__, (cls,), namespace)


Adam = _eager_class(torch.optim.Adam)
AdamW = _eager_class(torch.optim.AdamW)
SGD = _eager_class(torch.optim.SGD)
RMSprop = _eager_class(torch.optim.RMSprop)

__all__ = ["SGD", "Adam", "AdamW", "RMSprop"]
