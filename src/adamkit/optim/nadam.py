"""NAdam (Dozat): Adam with Nesterov momentum, via the momentum-cache schedule μ_t."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .adam import decayed_moments
from .common import (
    Convention,
    check_betas,
    check_common,
    decay_scalars,
    direction,
    lerp,
    weight_decayed,
    with_defaults,
)

CONVENTIONS = {
    "torch": Convention("torch", dict(lr=2e-3, eps=1e-8, momentum_decay=4e-3)),
    "keras": Convention(
        "Keras", dict(lr=1e-3, eps=1e-7, momentum_decay=1.0), decoupled_decay=True, float32_decay=True,
        buffer_dtype_scalars=True, keras_order=True,
    ),
}  # fmt: skip


@elementwise
def nadam_rule(p, g, m, v, g_coef, m_coef, beta1_c, beta2, beta2_c, bc2, eps, l2, decay, sign,
               keras_order, lr, mu_c, mu_next, bc1, bc1_next):  # fmt: skip
    """Adam's moments, then ``d = √(v / bc2) + ε;  p ← p + g_coef · g/d + m_coef · m/d``.

    ``keras_order``: the same formula in Keras's order of operations (``v ← v + (1−β2)(g² − v)``,
    ``m̂ = μ_{t+1}·m/(1−Π_{t+1}) + (1−μ_t)·g/(1−Π_t)``, ``p ← p − m̂·lr/d``; ``mu_c = 1−μ_t``,
    ``bc1 = 1−Π_t``, ``bc1_next = 1−Π_{t+1}``), so that float32 agrees with Keras to rounding.
    """
    if keras_order:
        p, g = weight_decayed(p, g, l2, decay, sign)
        m, v = lerp(m, g, beta1_c), lerp(v, g * g, beta2_c)
        m_hat = mu_next * m / bc1_next + mu_c * g / bc1
        return p - m_hat * lr / (np.sqrt(v / bc2) + eps), m, v
    p, g, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    d = np.sqrt(v / bc2) + eps
    p = p + g_coef * (g / d)
    return p + m_coef * (m / d), m, v


def momentum_cache(beta1: Any, momentum_decay: Any, t: Any, x: Any = float) -> Any:
    """``μ_t = β1 · (1 − ½ · 0.96^(t·ψ))``, computed in the number type ``x``."""
    return beta1 * (x(1.0) - x(0.5) * x(0.96) ** (t * momentum_decay))


class NAdam(Optimizer):
    r"""NAdam; torch.optim.NAdam's semantics and defaults unless a convention says otherwise.

    With Adam's moments ``m, v``, ``μ_t = β1·(1 − ½·0.96^(t·ψ))`` and ``Π_t = μ_1⋯μ_t``::

        p ← p − lr · [ (1−μ_t)/(1−Π_t) · g + μ_{t+1}/(1−Π_{t+1}) · m ] / (√(v/(1−β2ᵗ)) + ε)

    ``convention="torch"``: ``lr=2e-3, eps=1e-8, momentum_decay ψ=4e-3``; weight decay as L2, or decoupled
    ``p ← (1 − lr·λ)p`` with ``decoupled_weight_decay=True`` (NAdamW).
    ``convention="keras"``: Keras's Nadam, ``lr=1e-3, eps=1e-7`` and its schedule ``μ_t = β1·(1 − ½·0.96^t)``
    (that is ``ψ = 1``); weight decay decoupled.
    State slots: ``exp_avg``, ``exp_avg_sq``; host scalar ``mu_product`` (Π_t).
    """

    _LOW_PRECISION = True

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
        weight_decay: float = 0.0,
        momentum_decay: float | None = None,
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
        defaults = with_defaults(
            CONVENTIONS, convention, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(CONVENTIONS))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_range("momentum_decay", group["momentum_decay"], 0.0)
        check_bool("decoupled_weight_decay", group["decoupled_weight_decay"])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        lr, (beta1, beta2), psi = group["lr"], group["betas"], group["momentum_decay"]
        form = CONVENTIONS[group["convention"]]
        l2, decay = decay_scalars(group, group["decoupled_weight_decay"] or form.decoupled_decay, form.float32_decay)
        # Keras computes all of these in the variable's dtype; torch in Python floats, but keeps Π_t in a float32
        # tensor (and multiplies it by μ_t in float32)
        x = run.dtype.type if form.buffer_dtype_scalars else float
        store = x if form.buffer_dtype_scalars else np.float32
        mu, mu_next = momentum_cache(x(beta1), x(psi), x(t), x), momentum_cache(x(beta1), x(psi), x(t + 1), x)
        mu_product = store(store(run.scalars.get("mu_product", 1.0)) * store(mu))
        run.scalars["mu_product"] = float(mu_product)
        mu_product = x(mu_product)
        g_coef = -x(lr) * (x(1) - mu) / (x(1) - mu_product)
        m_coef = (-x(lr) * mu_next) / (x(1) - mu_product * mu_next)
        bc2 = x(1) - x(beta2) ** x(t)
        keras = (form.keras_order, x(lr), x(1) - mu, mu_next, x(1) - mu_product, x(1) - mu_product * mu_next)
        scalars = (g_coef, m_coef, 1 - beta1, beta2, 1 - beta2, bc2, group["eps"], l2, decay, direction(group), *keras)
        return nadam_rule, ("exp_avg", "exp_avg_sq"), scalars
