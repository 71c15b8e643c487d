"""AdaGrad (Duchi et al.): per-coordinate steps scaled by the root of the summed squared gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_common, decay_scalars, direction, weight_decayed, with_defaults

CONVENTIONS = {
    "torch": Convention("torch", dict(lr=1e-2, eps=1e-10, initial_accumulator_value=0.0)),
    "keras": Convention(
        "Keras", dict(lr=1e-3, eps=1e-7, initial_accumulator_value=0.1), decoupled_decay=True, float32_decay=True,
        eps_in_root=True,
    ),
    "dezero": Convention("DeZero", dict(lr=1e-3, eps=1e-8, initial_accumulator_value=0.0), dezero_order=True),
}  # fmt: skip


@elementwise
def adagrad_rule(p, g, h, lr_t, eps_in, eps_out, l2, decay, sign, lr_first):
    """``h ← h + g²;  p ← p − lr_t · g / (√(h + eps_in) + eps_out)``; ``lr_first``: ``(lr_t·g)/(...)``, DeZero's
    order of operations, else torch's ``lr_t·(g/(...))``."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    h = h + g * g
    if lr_first:
        return p - lr_t * g / (np.sqrt(h + eps_in) + eps_out), h
    return p - lr_t * (g / (np.sqrt(h + eps_in) + eps_out)), h


class Adagrad(Optimizer):
    r"""AdaGrad; torch.optim.Adagrad's semantics and defaults unless a convention says otherwise.

    ``convention="torch"`` (``lr=1e-2, eps=1e-10``, accumulator starts at 0; weight decay as L2)::

        h ← h + g²;   p ← p − lr/(1 + (t−1)·lr_decay) · g / (√h + ε)

    ``convention="keras"`` (``lr=1e-3, eps=1e-7``, accumulator starts at 0.1; decoupled weight decay)::

        h ← h + g²;   p ← p − lr · g / √(h + ε)

    ``convention="dezero"`` (DeZero's AdaGrad: ``lr=1e-3, eps=1e-8``): the torch formula.
    State slot: ``sum``.
    """

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float | None = None,
        eps: float | None = None,
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
            CONVENTIONS, convention, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        check_range("lr_decay", group["lr_decay"], 0.0)
        check_range("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_range("eps", group["eps"], 0.0)

    def _slot_fill(self, group: dict[str, Any], slot: str) -> float:
        return group["initial_accumulator_value"]

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        form = CONVENTIONS[group["convention"]]
        l2, decay = decay_scalars(group, form.decoupled_decay, form.float32_decay)
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        eps_in, eps_out = (group["eps"], 0.0) if form.eps_in_root else (0.0, group["eps"])
        return adagrad_rule, ("sum",), (lr_t, eps_in, eps_out, l2, decay, direction(group), form.dezero_order)
