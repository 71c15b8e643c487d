"""Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms"): the sign of an interpolated momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import check_betas, check_common, decay_scalars, direction, with_defaults

DEFAULTS = {"torch": dict(lr=1e-4, weight_decay=0.0)}


@elementwise
def lion_rule(p, g, m, lr, beta1, beta1_c, beta2, beta2_c, decay, sign):
    """``p ← decay·p;  p ← p − lr·sign(β1·m + (1−β1)·g);  m ← β2·m + (1−β2)·g``."""
    p, g = decay * p, sign * g
    c = beta1 * m + beta1_c * g
    return p - lr * np.sign(c), beta2 * m + beta2_c * g


class Lion(Optimizer):
    r"""Lion; the semantics and defaults of lion-pytorch 0.2.5 (``lion_pytorch.Lion``)::

        p ← (1 − lr·λ)·p                              (weight_decay: decoupled)
        p ← p − lr · sign(β1·m + (1−β1)·g)
        m ← β2·m + (1−β2)·g

    Lion's update has the same size ``lr`` in every coordinate: use a learning rate 3-10× smaller than AdamW's and
    a weight decay 3-10× larger. ``maximize=True`` ascends (``g`` negated). State slot: ``exp_avg``.
    """

    _STATIONARY = frozenset({lion_rule})

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
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
            DEFAULTS, convention, lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize
        )
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_betas(group["betas"])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        (beta1, beta2), lr = group["betas"], group["lr"]
        _, decay = decay_scalars(group, decoupled=True)
        scalars = (lr, beta1, 1 - beta1, beta2, 1 - beta2, decay, direction(group))
        return lion_rule, ("exp_avg",), scalars
