"""Adam, AMSGrad and AdamW: one set of moment updates, two conventions (torch and Keras)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_bool, check_choice, check_range
from ..elementwise import elementwise
from ..flat import FlatBuffer
from ..optimizer import Optimizer, Params, Plan
from .common import check_betas, check_common, direction, l2_gradient

DEFAULT_EPS = {"torch": 1e-8, "keras": 1e-7}


@elementwise
def adam_moments(g, m, v, beta1_c, beta2, beta2_c):
    """``m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²``  (``beta*_c`` are the complements 1 − β)."""
    m = m + beta1_c * (g - m)
    v = beta2 * v + beta2_c * g * g
    return m, v


@elementwise
def adam_step(p, m, v, step_size, bc2_sqrt, eps):
    """``p ← p − step_size · m / (√v / bc2_sqrt + ε)``."""
    return p - step_size * (m / (np.sqrt(v) / bc2_sqrt + eps))


@elementwise
def decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign):
    """Decoupled decay ``p ← decay·p``, L2 gradient ``sign·g + l2·p``, then the two moments."""
    p = decay * p
    m, v = adam_moments(l2_gradient(p, g, sign, l2), m, v, beta1_c, beta2, beta2_c)
    return p, m, v


@elementwise
def adam_rule(p, g, m, v, step_size, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign):
    """Adam: moments, then ``p ← p − step_size · m / (√v / bc2_sqrt + ε)``."""
    p, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    return adam_step(p, m, v, step_size, bc2_sqrt, eps), m, v


@elementwise
def amsgrad_rule(p, g, m, v, v_max, step_size, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign):
    """AMSGrad: as Adam, with ``v_max ← max(v_max, v)`` (over the raw v) in the denominator."""
    p, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    v_max = np.maximum(v_max, v)
    return adam_step(p, m, v_max, step_size, bc2_sqrt, eps), m, v, v_max


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), torch.optim.Adam's semantics and defaults.

    With ``g`` negated when ``maximize``, at step ``t``::

        m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²

    ``convention="torch"`` (default; PyTorch, optax, the paper's Algorithm 1), ``eps=1e-8``::

        g ← g + λ·p                                   (weight_decay: L2 into the gradient)
        p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)

    ``convention="keras"`` (Keras 3, TensorFlow, DeZero: "epsilon hat", paper §2), ``eps=1e-7``::

        p ← (1 − lr·λ)·p                              (weight_decay: decoupled, as Keras does)
        p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε̂)

    ``amsgrad=True`` keeps ``v_max ← max(v_max, v)`` over the raw ``v`` and uses it in place of ``v``
    (both conventions). State slots: ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``).
    ``eps=None`` takes the convention's default.
    """

    _decoupled = False
    _default_weight_decay = {"torch": 0.0, "keras": 0.0}

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
        weight_decay: float | None = None,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
    ):
        check_choice("convention", convention, tuple(DEFAULT_EPS))
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=DEFAULT_EPS[convention] if eps is None else eps,
            weight_decay=self._default_weight_decay[convention] if weight_decay is None else weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            convention=convention,
        )
        super().__init__(params, defaults, engine=engine)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group)
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_bool("amsgrad", group["amsgrad"])

    def _plan(self, group: dict[str, Any], flat: FlatBuffer, t: int) -> Plan:
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        keras = group["convention"] == "keras"
        decoupled = self._decoupled or keras
        if keras:  # Keras computes its step size in the variable's dtype
            x = flat.dtype.type
            step_size = x(lr) * np.sqrt(x(1) - x(beta2) ** x(t)) / (x(1) - x(beta1) ** x(t))
            bc2_sqrt = 1.0
        else:
            step_size = lr / (1 - beta1**t)
            bc2_sqrt = math.sqrt(1 - beta2**t)
        scalars = (
            step_size,
            1 - beta1,
            beta2,
            1 - beta2,
            bc2_sqrt,
            group["eps"],
            0.0 if decoupled else wd,
            1 - lr * wd if decoupled else 1.0,
            direction(group),
        )
        if group["amsgrad"]:
            return amsgrad_rule, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), scalars
        return adam_rule, ("exp_avg", "exp_avg_sq"), scalars


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), torch.optim.AdamW's semantics.

    As :class:`Adam`, but weight decay shrinks the parameters before the update, in both conventions::

        p ← (1 − lr·λ)·p

    Default ``weight_decay``: 1e-2 (torch), 0.004 (keras).
    """

    _decoupled = True
    _default_weight_decay = {"torch": 1e-2, "keras": 0.004}
