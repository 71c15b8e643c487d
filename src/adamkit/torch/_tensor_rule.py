"""Evaluate an adamkit elementwise rule on whole torch tensors (any device, any floating dtype).

A rule is plain Python over arithmetic operators and a few NumPy functions (``np.sqrt``, ``np.maximum``, ...).
:func:`torch_rule` returns the *same code object* bound to globals in which ``np`` is a namespace of torch
functions, and every rule it calls (``lerp``, ``weight_decayed``, ...) is translated the same way. The math
therefore still exists once; this only swaps the library the rule's few function calls resolve to.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import numpy as np
import torch


def _tensors(*xs):
    """Scalars become tensors like the first tensor argument (torch.maximum and friends want two tensors)."""
    ref = next(x for x in xs if isinstance(x, torch.Tensor))
    return [x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=ref.dtype, device=ref.device) for x in xs]


class _TorchNumpy:
    """The subset of NumPy that rules use, as torch functions."""

    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    sign = staticmethod(torch.sign)
    square = staticmethod(torch.square)

    @staticmethod
    def maximum(a, b):
        return torch.maximum(*_tensors(a, b))

    @staticmethod
    def minimum(a, b):
        return torch.minimum(*_tensors(a, b))

    @staticmethod
    def where(cond, a, b):
        return torch.where(cond, *_tensors(a, b))

    def __getattr__(self, name: str):
        raise NotImplementedError(
            f"adamkit.torch: a rule calls np.{name}, which has no torch counterpart here yet "
            "(add it to adamkit/torch/_tensor_rule.py:_TorchNumpy)"
        )


_NP = _TorchNumpy()


@functools.cache
def torch_rule(rule: Callable) -> Callable:
    """``rule`` with ``np`` (and every adamkit rule it calls) resolved to torch versions."""
    namespace = dict(rule.__globals__)
    for name in rule.__code__.co_names:
        value = namespace.get(name)
        if value is np:
            namespace[name] = _NP
        elif isinstance(value, types.FunctionType) and value.__module__.startswith("adamkit."):
            namespace[name] = torch_rule(value)
    return types.FunctionType(rule.__code__, namespace, rule.__name__, rule.__defaults__, rule.__closure__)
