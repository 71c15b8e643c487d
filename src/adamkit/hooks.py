"""Hooks: gradient transforms that run, in order, before every update, and parameter decay inside it.

Attach with ``opt.add_hook(hook)``; they work for ``step(grads)``, ``step()`` and ``update()`` alike.
Each hook first ``check``\\ s its settings (they may have been changed since construction) and may mark
parameters skipped; then gradient hooks transform **a scratch copy** of the step's gradients, so a hook that
refuses the step (a non-finite norm) leaves ``opt.grads``, the caller's gradients and everything else as they
were. A decay hook changes no array: its factor joins the rule's own decay scalar (``p ← decay·p`` before the
update), inside the same kernel. Parameters skipped this step (grad None, frozen) are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_bool, check_range
from .reduce import sum_of_squares

if TYPE_CHECKING:
    from .optimizer import Optimizer


class Hook:
    """Base hook: override ``__call__`` to transform gradients (``check`` to validate settings or skip
    parameters, ``decay`` to shrink parameters inside the update)."""

    #: Whether ``__call__`` transforms gradients (then the step gives hooks a scratch copy to transform).
    transforms_grads = True

    def check(self, opt: Optimizer, skip: set[str]) -> None:
        """Before every step: validate the settings (they may have been changed since construction) and mark
        skipped parameters; must not write to parameters, gradients or state."""
        self.validate()

    def validate(self) -> None:
        """Raise, naming the setting, if one is out of its range."""

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        """Transform the step's gradients (``active_arrays``) in place; raise to refuse the step."""

    def decay(self, group: dict[str, Any]) -> float:
        """A factor on the parameters of ``group``, applied inside the update before the rule (1: none)."""
        return 1.0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def active_arrays(
    opt: Optimizer, skip: set[str], *, per_tensor: bool = False
) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """``(group, params, grads)`` over the parameters not in ``skip``: whole packed buffers where nothing is
    skipped (unless ``per_tensor``), else one (1-D) view per active tensor. ``grads`` is the step's scratch
    gradient."""
    for group, flat in opt.flat_buffers():
        grad = flat.work if flat.work is not None else flat.grad
        if not per_tensor and flat.data is not None and not any(seg.name in skip for seg in flat.segments):
            yield group, flat.data, grad
            continue
        for seg, p in zip(flat.segments, flat.params):
            if seg.name not in skip:
                yield group, p.reshape(-1), grad[seg.offset : seg.offset + seg.size]


class WeightDecay(Hook):
    """L2 regularization into the gradient: ``g ← g + rate·p`` (≡ adding ``rate/2·‖p‖²`` to the loss)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.validate()

    def validate(self) -> None:
        check_range("WeightDecay.rate", self.rate, 0.0, high_open=True)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for _, p, g in active_arrays(opt, skip):
            g += p.dtype.type(self.rate) * p


class DecoupledWeightDecay(Hook):
    """Decoupled decay (Loshchilov & Hutter): ``p ← (1 − lr·rate)·p``, or ``p ← (1 − rate)·p`` when
    ``lr_independent`` (the paper's form, whose decay does not follow the learning-rate schedule)."""

    transforms_grads = False

    def __init__(self, rate: float, lr_independent: bool = False):
        self.rate, self.lr_independent = rate, lr_independent
        self.validate()

    def validate(self) -> None:
        check_range("DecoupledWeightDecay.rate", self.rate, 0.0, high_open=True)
        check_bool("DecoupledWeightDecay.lr_independent", self.lr_independent)

    def decay(self, group: dict[str, Any]) -> float:
        return 1.0 - self.rate * (1.0 if self.lr_independent else group["lr"])


class ClipGradNorm(Hook):
    """Scale all gradients by ``min(1, max_norm / (‖g‖ + 1e-6))``, ``‖g‖`` the global 2-norm over every
    parameter (one reduction per flat buffer) — ``torch.nn.utils.clip_grad_norm_``.

    A non-finite gradient norm (after the hooks before this one) refuses the step with ``FloatingPointError``:
    nothing is updated, so NaN never spreads into the parameters. The norm is a fixed-order reduction
    (``adamkit.reduce``): the same bytes whatever the thread count.
    """

    def __init__(self, max_norm: float):
        self.max_norm = max_norm
        self.validate()

    def validate(self) -> None:
        check_range("ClipGradNorm.max_norm", self.max_norm, 0.0, high_open=True)

    @staticmethod
    def total_norm(opt: Optimizer, skip: set[str]) -> float:
        return math.sqrt(sum_of_squares(g for _, _, g in active_arrays(opt, skip)))

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        norm = self.total_norm(opt, skip)
        if not math.isfinite(norm):
            raise FloatingPointError(f"ClipGradNorm: the gradient norm is {norm}; step refused, nothing updated")
        coef = min(1.0, self.max_norm / (norm + 1e-6))
        for _, _, g in active_arrays(opt, skip):
            g *= g.dtype.type(coef)


class ClipGradValue(Hook):
    """Clip every gradient element to ``[−limit, limit]`` — ``torch.nn.utils.clip_grad_value_``."""

    def __init__(self, limit: float):
        self.limit = limit
        self.validate()

    def validate(self) -> None:
        check_range("ClipGradValue.limit", self.limit, 0.0, high_open=True)

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for _, _, g in active_arrays(opt, skip):
            np.clip(g, -self.limit, self.limit, out=g)


class FreezeParam(Hook):
    """Skip the named parameters: they, their state and their step count stay exactly as they are."""

    transforms_grads = False

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
