"""Adamax (Kingma & Ba §7.1): Adam with the infinity norm in place of the second moment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_betas, check_common, decay_scalars, direction, lerp, weight_decayed, with_defaults


@dataclass(frozen=True)
class AdamaxConvention(Convention):
    eps_in_max: bool = False  #: ``u ← max(β2·u, |g| + ε)`` (else ``u ← max(β2·u, |g|)``, ε added to u in the update)


CONVENTIONS = {
    "torch": AdamaxConvention("torch", dict(lr=2e-3, eps=1e-8), eps_in_max=True),
    "keras": AdamaxConvention("Keras", dict(lr=1e-3, eps=1e-7), decoupled_decay=True, float32_decay=True),
}


@elementwise
def adamax_rule(p, g, m, u, step_size, beta1_c, beta2, eps_in, eps_out, l2, decay, sign):
    """``m ← m + (1−β1)(g − m);  u ← max(β2·u, |g| + eps_in);  p ← p − step_size · m / (u + eps_out)``."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    m = lerp(m, g, beta1_c)
    u = np.maximum(beta2 * u, np.abs(g) + eps_in)
    return p - step_size * (m / (u + eps_out)), m, u


class Adamax(Optimizer):
    r"""Adamax; torch.optim.Adamax's semantics and defaults unless a convention says otherwise.

    ``m ← β1·m + (1−β1)·g``, and with ``c = 1 − β1ᵗ``:

    ``convention="torch"`` (``lr=2e-3, eps=1e-8``; weight decay as L2)::

        u ← max(β2·u, |g| + ε);   p ← p − lr/c · m / u

    ``convention="keras"`` (``lr=1e-3, eps=1e-7``; decoupled weight decay ``p ← (1 − lr·λ)p``)::

        u ← max(β2·u, |g|);       p ← p − lr/c · m / (u + ε)

    State slots: ``exp_avg``, ``exp_inf``.
    """

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
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
            CONVENTIONS, convention, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize
        )
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        form = CONVENTIONS[group["convention"]]
        (beta1, beta2), eps = group["betas"], group["eps"]
        l2, decay = decay_scalars(group, form.decoupled_decay, form.float32_decay)
        eps_in, eps_out = (eps, 0.0) if form.eps_in_max else (0.0, eps)
        step_size = group["lr"] / (1 - beta1**t)
        scalars = (step_size, 1 - beta1, beta2, eps_in, eps_out, l2, decay, direction(group))
        return adamax_rule, ("exp_avg", "exp_inf"), scalars
