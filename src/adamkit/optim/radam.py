"""RAdam (Liu et al.): Adam whose adaptive step is rectified by the variance of its second moment."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .adam import decayed_moments
from .common import check_betas, check_common, decay_scalars, direction


@elementwise
def radam_rule(p, g, m, v, lr, bc1, bc2_sqrt, rect, eps, adaptive, beta1_c, beta2, beta2_c, l2, decay, sign):
    """Adam's moments; ``p ← p − m/bc1 · lr · bc2_sqrt/(√v + ε) · r`` when ``adaptive``, else ``p − m/bc1 · lr``."""
    p, _, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    if adaptive:
        return p - m / bc1 * lr * (bc2_sqrt / (np.sqrt(v) + eps)) * rect, m, v
    return p - m / bc1 * lr, m, v


def rectification(beta2: float, t: int) -> tuple[bool, float]:
    """``ρ_∞ = 2/(1−β2) − 1``, ``ρ_t = ρ_∞ − 2tβ2ᵗ/(1−β2ᵗ)``; adaptive when ``ρ_t > 5``, with
    ``r_t = √((ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t))``."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * (beta2**t) / (1 - beta2**t)
    if rho_t <= 5.0:
        return False, 1.0
    return True, math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


class RAdam(Optimizer):
    r"""RAdam; torch.optim.RAdam's semantics and defaults (``lr=1e-3, eps=1e-8``).

    With Adam's moments ``m, v`` and the rectification of :func:`rectification`::

        ρ_t > 5:   p ← p − lr · m/(1−β1ᵗ) · √(1−β2ᵗ)/(√v + ε) · r_t
        else:      p ← p − lr · m/(1−β1ᵗ)

    Weight decay as L2, or decoupled ``p ← (1 − lr·λ)p`` with ``decoupled_weight_decay=True``.
    State slots: ``exp_avg``, ``exp_avg_sq``.
    """

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
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
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, convention=convention,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, ("torch",))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_bool("decoupled_weight_decay", group["decoupled_weight_decay"])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        (beta1, beta2), lr = group["betas"], group["lr"]
        l2, decay = decay_scalars(group, group["decoupled_weight_decay"])
        adaptive, rect = rectification(beta2, t)
        scalars = (
            lr, 1 - beta1**t, math.sqrt(1 - beta2**t), rect, group["eps"], adaptive,
            1 - beta1, beta2, 1 - beta2, l2, decay, direction(group),
        )  # fmt: skip
        return radam_rule, ("exp_avg", "exp_avg_sq"), scalars
