"""RMSprop (Hinton): steps scaled by a running root-mean-square of the gradients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_common, check_unit, decay_scalars, direction, lerp, weight_decayed, with_defaults


@dataclass(frozen=True)
class RMSpropConvention(Convention):
    lr_in_momentum: bool = False  #: ``b ← μ·b + lr·g/√s;  p ← p − b`` (else ``b ← μ·b + g/√s;  p ← p − lr·b``)


CONVENTIONS = {
    "torch": RMSpropConvention("torch", dict(lr=1e-2, alpha=0.99, eps=1e-8)),
    "keras": RMSpropConvention(
        "Keras", dict(lr=1e-3, alpha=0.9, eps=1e-7), decoupled_decay=True, float32_decay=True, eps_in_root=True,
        lr_in_momentum=True,
    ),
}  # fmt: skip


@elementwise
def square_average(p, g, sq, alpha, alpha_c, l2, decay, sign):
    """Weight decay, then ``s ← α·s + (1−α)·g²``."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    return p, g, alpha * sq + alpha_c * g * g


@elementwise
def rms_scaled(g, mean_square, eps_out):
    """``g / (√mean_square + eps_out)``; callers add ``eps_in`` to the mean square first, as Keras does."""
    return g / (np.sqrt(mean_square) + eps_out)


@elementwise
def rmsprop_rule(p, g, sq, lr, alpha, alpha_c, eps_in, eps_out, l2, decay, sign):
    """``p ← p − lr · g / √s``  (with ε placed per convention)."""
    p, g, sq = square_average(p, g, sq, alpha, alpha_c, l2, decay, sign)
    return p - lr * rms_scaled(g, sq + eps_in, eps_out), sq


@elementwise
def rmsprop_centered_rule(p, g, sq, ga, lr, alpha, alpha_c, eps_in, eps_out, l2, decay, sign):
    """Centered: ``ḡ ← ḡ + (1−α)(g − ḡ);  p ← p − lr · g / √(s + eps_in − ḡ²)``."""
    p, g, sq = square_average(p, g, sq, alpha, alpha_c, l2, decay, sign)
    ga = lerp(ga, g, alpha_c)
    return p - lr * rms_scaled(g, sq + eps_in - ga * ga, eps_out), sq, ga


@elementwise
def rmsprop_momentum_rule(p, g, sq, buf, lr_in, lr_out, momentum, alpha, alpha_c, eps_in, eps_out, l2, decay, sign):
    """``b ← μ·b + lr_in · g / √s;  p ← p − lr_out · b``  (torch: lr_in = 1, lr_out = lr; Keras: swapped)."""
    p, g, sq = square_average(p, g, sq, alpha, alpha_c, l2, decay, sign)
    buf = momentum * buf + lr_in * rms_scaled(g, sq + eps_in, eps_out)
    return p - lr_out * buf, sq, buf


@elementwise
def rmsprop_centered_momentum_rule(
    p, g, sq, ga, buf, lr_in, lr_out, momentum, alpha, alpha_c, eps_in, eps_out, l2, decay, sign
):
    """Centered and with momentum: ``b ← μ·b + lr_in · g / √(s − ḡ²);  p ← p − lr_out · b``."""
    p, g, sq = square_average(p, g, sq, alpha, alpha_c, l2, decay, sign)
    ga = lerp(ga, g, alpha_c)
    buf = momentum * buf + lr_in * rms_scaled(g, sq + eps_in - ga * ga, eps_out)
    return p - lr_out * buf, sq, ga, buf


class RMSprop(Optimizer):
    r"""RMSprop; torch.optim.RMSprop's semantics and defaults unless a convention says otherwise.

    ``s ← α·s + (1−α)·g²``; centered: ``ḡ ← α·ḡ + (1−α)·g`` and ``s − ḡ²`` replaces ``s`` below.

    ``convention="torch"`` (``lr=1e-2, alpha=0.99, eps=1e-8``; ε outside the root; weight decay as L2)::

        momentum = 0:  p ← p − lr · g / (√s + ε)
        momentum > 0:  b ← μ·b + g / (√s + ε);   p ← p − lr·b

    ``convention="keras"`` (``lr=1e-3``, Keras's ``rho`` is ``alpha=0.9``, ``eps=1e-7``; ε inside the root;
    decoupled weight decay ``p ← (1 − lr·λ)p``)::

        momentum = 0:  p ← p − lr · g / √(s + ε)
        momentum > 0:  b ← μ·b + lr · g / √(s + ε);   p ← p − b

    State slots: ``square_avg`` (and ``grad_avg`` when centered, ``momentum_buffer`` when momentum > 0).
    """

    _STATIONARY = frozenset(
        {rmsprop_rule, rmsprop_centered_rule, rmsprop_momentum_rule, rmsprop_centered_momentum_rule}
    )

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        alpha: float | None = None,
        eps: float | None = None,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
        state_dtype: str | None = None,
        stochastic_rounding: bool = True,
        seed: int = 0,
        kahan_sum: bool = False,
    ):
        defaults = with_defaults(
            CONVENTIONS, convention, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
            momentum=momentum, centered=centered, maximize=maximize,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        check_unit("alpha", group["alpha"])
        check_range("eps", group["eps"], 0.0)
        check_range("momentum", group["momentum"], 0.0)
        check_bool("centered", group["centered"])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        form = CONVENTIONS[group["convention"]]
        lr, alpha, mu, centered = group["lr"], group["alpha"], group["momentum"], group["centered"]
        l2, decay = decay_scalars(group, form.decoupled_decay, form.float32_decay)
        eps_in, eps_out = (group["eps"], 0.0) if form.eps_in_root else (0.0, group["eps"])
        tail = (alpha, 1 - alpha, eps_in, eps_out, l2, decay, direction(group))
        slots = ("square_avg", "grad_avg") if centered else ("square_avg",)
        if mu == 0:
            return (rmsprop_centered_rule if centered else rmsprop_rule), slots, (lr, *tail)
        lr_in, lr_out = (lr, 1.0) if form.lr_in_momentum else (1.0, lr)
        rule = rmsprop_centered_momentum_rule if centered else rmsprop_momentum_rule
        return rule, (*slots, "momentum_buffer"), (lr_in, lr_out, mu, *tail)
