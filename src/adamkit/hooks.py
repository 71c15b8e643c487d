"""Hooks: gradient and parameter transforms that run, in order, before every update.

Attach with ``opt.add_hook(hook)``; they work for ``step(grads)``, ``step()`` and ``update()`` alike.
Each hook first ``check``\\ s (no writes), all of them before any runs, so a refused step changes nothing;
then it transforms the flat buffers in place. Parameters skipped this step (grad None, frozen) are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_bool, check_range

if TYPE_CHECKING:
    from .optimizer import Optimizer


class Hook:
    """Base hook: override ``__call__`` (and ``check`` if it can refuse a step)."""

    def check(self, opt: Optimizer, skip: set[str]) -> None:
        """Raise if the step must be refused; must not write to parameters, gradients or state."""

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def active_arrays(opt: Optimizer, skip: set[str]) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """``(group, params, grads)`` over the parameters not in ``skip``: whole packed buffers where nothing is
    skipped, else one (1-D) view per active tensor."""
    for group, flat in opt.flat_buffers():
        if flat.data is not None and not any(seg.name in skip for seg in flat.segments):
            yield group, flat.data, flat.grad
            continue
        for seg, p in zip(flat.segments, flat.params):
            if seg.name not in skip:
                yield group, p.reshape(-1), flat.grad[seg.offset : seg.offset + seg.size]


class WeightDecay(Hook):
    """L2 regularization into the gradient: ``g ← g + rate·p`` (≡ adding ``rate/2·‖p‖²`` to the loss)."""

    def __init__(self, rate: float):
        self.rate = check_range("rate", rate, 0.0)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for _, p, g in active_arrays(opt, skip):
            g += p.dtype.type(self.rate) * p


class DecoupledWeightDecay(Hook):
    """Decoupled decay (Loshchilov & Hutter): ``p ← (1 − lr·rate)·p``, or ``p ← (1 − rate)·p`` when
    ``lr_independent`` (the paper's form, whose decay does not follow the learning-rate schedule)."""

    def __init__(self, rate: float, lr_independent: bool = False):
        self.rate = check_range("rate", rate, 0.0)
        self.lr_independent = check_bool("lr_independent", lr_independent)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for group, p, _ in active_arrays(opt, skip):
            factor = 1.0 - self.rate * (1.0 if self.lr_independent else group["lr"])
            p *= p.dtype.type(factor)


class ClipGradNorm(Hook):
    """Scale all gradients by ``min(1, max_norm / (‖g‖ + 1e-6))``, ``‖g‖`` the global 2-norm over every
    parameter (one reduction per flat buffer) — ``torch.nn.utils.clip_grad_norm_``.

    A non-finite gradient norm refuses the step with ``FloatingPointError``: nothing is updated, so NaN
    never spreads into the parameters.
    """

    def __init__(self, max_norm: float):
        self.max_norm = check_range("max_norm", max_norm, 0.0)

    @staticmethod
    def total_norm(opt: Optimizer, skip: set[str]) -> float:
        return math.sqrt(sum(float(np.linalg.norm(g)) ** 2 for _, _, g in active_arrays(opt, skip)))

    def check(self, opt: Optimizer, skip: set[str]) -> None:
        norm = self.total_norm(opt, skip)
        if not math.isfinite(norm):
            raise FloatingPointError(f"ClipGradNorm: the gradient norm is {norm}; step refused, nothing updated")

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        coef = min(1.0, self.max_norm / (self.total_norm(opt, skip) + 1e-6))
        for _, _, g in active_arrays(opt, skip):
            g *= g.dtype.type(coef)


class ClipGradValue(Hook):
    """Clip every gradient element to ``[−limit, limit]`` — ``torch.nn.utils.clip_grad_value_``."""

    def __init__(self, limit: float):
        self.limit = check_range("limit", limit, 0.0)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for _, _, g in active_arrays(opt, skip):
            np.clip(g, -self.limit, self.limit, out=g)


class FreezeParam(Hook):
    """Skip the named parameters: they, their state and their step count stay exactly as they are."""

    def __init__(self, *names: str):
        if not names:
            raise ValueError("FreezeParam needs at least one parameter name")
        self.names = tuple(names)

    def check(self, opt: Optimizer, skip: set[str]) -> None:
        """Validate the names and mark them skipped already here, so later hooks' checks leave them out."""
        unknown = [n for n in self.names if n not in opt.params]
        if unknown:
            raise KeyError(f"FreezeParam: unknown parameter names {unknown}; known: {list(opt.params)}")
        skip.update(self.names)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        skip.update(self.names)
