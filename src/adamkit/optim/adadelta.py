"""AdaDelta (Zeiler): unit-consistent steps from running averages of squared gradients and updates."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_common, decay_scalars, direction, weight_decayed, with_defaults

CONVENTIONS = {
    "torch": Convention("torch", dict(lr=1.0, rho=0.9, eps=1e-6)),
    "keras": Convention("Keras", dict(lr=1e-3, rho=0.95, eps=1e-7), decoupled_decay=True, float32_decay=True),
    "dezero": Convention("DeZero", dict(lr=1.0, rho=0.95, eps=1e-6), dezero_order=True),
}


@elementwise
def adadelta_rule(p, g, sq, acc, lr, rho, rho_c, eps, l2, decay, sign, one_root):
    """``s ← ρs + (1−ρ)g²;  Δ = √(a + ε)/√(s + ε) · g;  a ← ρa + (1−ρ)Δ²;  p ← p − lr·Δ``.

    ``one_root``: ``Δ = √((a + ε)/(s + ε)) · g``, DeZero's order of operations (torch: two roots)."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    sq = rho * sq + rho_c * g * g
    if one_root:
        delta = np.sqrt((acc + eps) / (sq + eps)) * g
    else:
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
    acc = rho * acc + rho_c * delta * delta
    return p - lr * delta, sq, acc


class Adadelta(Optimizer):
    r"""AdaDelta; torch.optim.Adadelta's semantics and defaults unless a convention says otherwise.

    All conventions share the formula::

        s ← ρ·s + (1−ρ)·g²;   Δ = √(a + ε) / √(s + ε) · g;   a ← ρ·a + (1−ρ)·Δ²;   p ← p − lr·Δ

    ``convention="torch"``: ``lr=1.0, rho=0.9, eps=1e-6``, weight decay as L2 into the gradient.
    ``convention="keras"``: ``lr=1e-3, rho=0.95, eps=1e-7``, decoupled weight decay ``p ← (1 − lr·λ)p``.
    ``convention="dezero"``: DeZero's AdaDelta has no learning rate: ``lr=1.0, rho=0.95, eps=1e-6``.
    State slots: ``square_avg``, ``acc_delta``.
    """

    _STATIONARY = frozenset({adadelta_rule})

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        rho: float | None = None,
        eps: float | None = None,
        weight_decay: float = 0.0,
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
            CONVENTIONS, convention, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize
        )
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        check_range("rho", group["rho"], 0.0, 1.0)
        check_range("eps", group["eps"], 0.0)

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        form = CONVENTIONS[group["convention"]]
        l2, decay = decay_scalars(group, form.decoupled_decay, form.float32_decay)
        rho = group["rho"]
        scalars = (group["lr"], rho, 1 - rho, group["eps"], l2, decay, direction(group), form.dezero_order)
        return adadelta_rule, ("square_avg", "acc_delta"), scalars
