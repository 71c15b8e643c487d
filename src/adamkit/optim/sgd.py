"""Stochastic gradient descent, with optional (Nesterov) momentum, in torch's and Keras/DeZero's forms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_common, decay_scalars, direction, weight_decayed, with_defaults


def velocity_nesterov(mu: float) -> tuple[float, float]:
    """Keras's Nesterov in velocity form: ``p ← p + μ·v − lr·g``."""
    return mu, 1.0


def expanded_nesterov(mu: float) -> tuple[float, float]:
    """*Deep Learning from Scratch*'s Nesterov: ``p ← p + μ²·v − (1 + μ)·lr·g``."""
    return mu * mu, 1.0 + mu


@dataclass(frozen=True)
class SGDConvention(Convention):
    """SGD's knobs: the momentum form, and Nesterov's weights ``(a, b)`` in ``p ← p + a·v − b·lr·g``."""

    velocity: bool = False  #: ``v ← μ·v − lr·g;  p ← p + v`` (else torch's ``b ← μ·b + g;  p ← p − lr·b``)
    nesterov_weights: Callable[[float], tuple[float, float]] | None = None  #: velocity form's Nesterov, if any


CONVENTIONS = {
    "torch": SGDConvention("torch", dict(lr=1e-3)),
    "keras": SGDConvention(
        "Keras", dict(lr=1e-2), decoupled_decay=True, float32_decay=True, velocity=True,
        nesterov_weights=velocity_nesterov,
    ),
    "dezero": SGDConvention("DeZero", dict(lr=1e-2), velocity=True),
    "scratch": SGDConvention("scratch", dict(lr=1e-2), velocity=True, nesterov_weights=expanded_nesterov),
}  # fmt: skip


@elementwise
def sgd_rule(p, g, lr, l2, decay, sign):
    """``p ← p − lr·g``."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    return (p - lr * g,)


@elementwise
def momentum_rule(p, g, buf, lr, l2, decay, sign, buf_decay, keep, momentum, nesterov):
    """torch: ``b ← μ·b + (1 − dampening)·g;  p ← p − lr·b``  (nesterov: ``p ← p − lr·(g + μ·b)``).

    On the first step torch sets ``b = g``: ``buf_decay = 0, keep = 1`` then, else ``buf_decay = μ``.
    """
    p, g = weight_decayed(p, g, l2, decay, sign)
    buf = buf_decay * buf + keep * g
    if nesterov:
        g = g + momentum * buf
    else:
        g = buf
    return p - lr * g, buf


@elementwise
def velocity_rule(p, g, v, lr, l2, decay, sign, momentum, v_weight, g_weight):
    """Keras/DeZero/the textbook: ``v ← μ·v − lr·g;  p ← p + a·v − b·lr·g``.

    ``(a, b)``: ``(1, 0)`` plain momentum ``p ← p + v``; Nesterov ``(μ, 1)`` in Keras's form ``p ← p − lr·g + μ·v``,
    ``(μ², 1 + μ)`` in *Deep Learning from Scratch*'s ``p ← p + μ²·v − (1 + μ)·lr·g``.
    """
    p, g = weight_decayed(p, g, l2, decay, sign)
    v = momentum * v - lr * g
    return p + v_weight * v - g_weight * (lr * g), v


class SGD(Optimizer):
    r"""Stochastic gradient descent; torch.optim.SGD's semantics and defaults unless a convention says otherwise.

    ``g`` is the gradient, negated when ``maximize``.

    ``convention="torch"`` (default, ``lr=1e-3``; weight decay as L2, ``g ← g + λp``)::

        momentum = 0:   p ← p − lr·g
        momentum > 0:   b ← μ·b + (1 − dampening)·g       (b = g on the first step)
                        p ← p − lr·b                      (nesterov: p ← p − lr·(g + μ·b))

    ``convention="keras"`` (``lr=1e-2``; weight decay decoupled, ``p ← (1 − lr·λ)p`` first)::

        v ← μ·v − lr·g;   p ← p + v                       (nesterov: p ← p − lr·g + μ·v)

    ``convention="dezero"`` (DeZero's SGD / MomentumSGD, ``lr=1e-2``; weight decay as L2)::

        v ← μ·v − lr·g;   p ← p + v

    ``convention="scratch"`` (*Deep Learning from Scratch*'s SGD / Momentum / Nesterov, ``lr=1e-2``)::

        v ← μ·v − lr·g;   p ← p + v                       (nesterov: p ← p + μ²·v − (1 + μ)·lr·g)

    State slot: ``momentum_buffer`` (torch) or ``velocity`` (the others), only when momentum > 0.
    """

    _STATIONARY = frozenset({sgd_rule, velocity_rule})  # momentum_rule's first step differs

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
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
            CONVENTIONS, convention, lr=lr, momentum=momentum, dampening=dampening,
            weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        form = CONVENTIONS[group["convention"]]
        momentum = check_range("momentum", group["momentum"], 0.0)
        dampening = check_range("dampening", group["dampening"], 0.0, 1.0)
        if dampening and form.velocity:
            raise ValueError(f"dampening must be 0 with convention={group['convention']!r} (a torch option)")
        if check_bool("nesterov", group["nesterov"]) and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        if group["nesterov"] and form.velocity and form.nesterov_weights is None:
            raise ValueError(f"nesterov=True has no {form.name} form; use convention='torch' or 'keras'")

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        lr, mu, form = group["lr"], group["momentum"], CONVENTIONS[group["convention"]]
        l2, decay = decay_scalars(group, form.decoupled_decay, form.float32_decay)
        common = (lr, l2, decay, direction(group))
        if mu == 0:
            return sgd_rule, (), common
        if form.velocity:
            weights = form.nesterov_weights(mu) if group["nesterov"] else (1.0, 0.0)
            return velocity_rule, ("velocity",), (*common, mu, *weights)
        first = t == 1 or "momentum_buffer" not in run.state
        buf_decay, keep = (0.0, 1.0) if first else (mu, 1.0 - group["dampening"])
        return momentum_rule, ("momentum_buffer",), (*common, buf_decay, keep, mu, group["nesterov"])
